"""The config's `metrics` key: off unless `listen` is set, and a `listen` refused at load unless it is an
IP address and a port (binding it is `watcher.report.metrics`'s, at start: tests/unit/report/test_metrics.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from watcher.config.effective import describe_effective
from watcher.config.load import ConfigError, load_config


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def config_with(tmp_path: Path, drop: Path, metrics_yaml: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"{metrics_yaml}folders:\n  - path: {drop}\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize(
    "metrics_yaml",
    [
        "",
        "metrics:\n",  # every key under it commented out, as in the shipped config.yaml
        "metrics: {}\n",
        "metrics:\n  # listen: 127.0.0.1:9464\n",
    ],
)
def test_metrics_are_off_unless_listen_is_set(tmp_path: Path, drop: Path, metrics_yaml: str) -> None:
    config = load_config(config_with(tmp_path, drop, metrics_yaml))
    assert config.settings.metrics.listen is None
    assert describe_effective(config, None)["metrics"] == "off"


@pytest.mark.parametrize(
    ("written", "listen"),
    [
        ("127.0.0.1:9464", "127.0.0.1:9464"),
        ("0.0.0.0:9100", "0.0.0.0:9100"),
        ('"[::1]:9464"', "[::1]:9464"),
        ('"[::]:65535"', "[::]:65535"),
        ("10.1.2.3:1", "10.1.2.3:1"),
    ],
)
def test_a_listen_address_is_accepted(tmp_path: Path, drop: Path, written: str, listen: str) -> None:
    config = load_config(config_with(tmp_path, drop, f"metrics:\n  listen: {written}\n"))
    assert config.settings.metrics.listen == listen
    described = describe_effective(config, None)
    assert described["metrics"] == {"listen": listen}
    # check-config prints it as YAML: what it prints must read back as the same address.
    assert yaml.safe_load(yaml.safe_dump(described))["metrics"]["listen"] == listen


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("9464", "must be HOST:PORT as text, e.g. 127.0.0.1:9464, not 9464"),  # a number to YAML
        ('"9464"', "must be HOST:PORT with HOST an IP address"),
        ('":9464"', "must be HOST:PORT with HOST an IP address"),
        ("localhost:9464", "the host must be an IP address such as 127.0.0.1, not 'localhost'"),
        ("127.0.0.1:0", "the port must be a number from 1 to 65535, not '0'"),
        ("127.0.0.1:65536", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:http", "the port must be a number from 1 to 65535, not 'http'"),
        ('"::1:9464"', 'an IPv6 address goes in brackets, e.g. "[::1]:9464"'),
        ('"[fe80::zz]:9464"', "is not an IPv6 address in brackets"),
        ("300.1.1.1:9464", "the host must be an IP address"),
        ("[127.0.0.1, 9464]", "must be HOST:PORT"),  # the unquoted [..] YAML reads as a list
        ("null", None),
    ],
)
def test_a_bad_listen_is_a_config_error_naming_the_key(
    tmp_path: Path, drop: Path, written: str, says: str | None
) -> None:
    path = config_with(tmp_path, drop, f"metrics:\n  listen: {written}\n")
    if says is None:  # an explicit null is the same as leaving listen out
        assert load_config(path).settings.metrics.listen is None
        return
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "metrics.listen: " in message
    assert says in message


def test_unknown_keys_under_metrics_are_refused(tmp_path: Path, drop: Path) -> None:
    path = config_with(tmp_path, drop, "metrics:\n  listen: 127.0.0.1:9464\n  port: 9464\n")
    with pytest.raises(ConfigError, match=r"metrics\.port: unknown key"):
        load_config(path)
