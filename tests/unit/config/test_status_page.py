"""`status_page` in the config: `listen` as metrics.listen, a password file required beyond loopback and
read as the token file is (private, one line), every problem one line naming the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.config.effective import describe_effective
from watcher.config.load import Config, ConfigError, Listen, load_config
from watcher.config.status_page import page_settings
from watcher.redact import redact


def config(tmp_path: Path, page: Any) -> Config:
    (tmp_path / "drop").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"folders": [{"path": "drop"}], "status_page": page}))
    return load_config(path)


def test_off_unless_listen_is_set(tmp_path: Path) -> None:
    assert page_settings(config(tmp_path, None)) is None
    assert page_settings(config(tmp_path, {})) is None
    assert page_settings(config(tmp_path, {"password_file": "pw"})) is None


@pytest.mark.parametrize("listen", ["127.0.0.1:8765", "127.5.5.5:8765", "[::1]:8765"])
def test_loopback_needs_no_password(tmp_path: Path, listen: str) -> None:
    settings = page_settings(config(tmp_path, {"listen": listen}))
    assert settings is not None and settings.password is None and settings.listen.port == 8765


@pytest.mark.parametrize("listen", ["0.0.0.0:8765", "[::]:8765", "192.0.2.7:8765"])
def test_beyond_loopback_without_a_password_file_is_refused_in_one_line(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config(tmp_path, {"listen": listen})
    message = str(refused.value)
    assert "status_page: " in message and "add password_file" in message and "\n" not in message


@pytest.mark.parametrize(
    ("listen", "says"),
    [(8765, "HOST:PORT as text"), ("localhost:8765", "IP address"), ("127.0.0.1:0", "port")],
)
def test_listen_is_checked_as_metrics_listen_is(tmp_path: Path, listen: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=f"status_page.listen: .*{says}"):
        config(tmp_path, {"listen": listen})


def test_the_password_file_is_read_relative_to_the_config_private_and_redacted(tmp_path: Path) -> None:
    password = tmp_path / "page-password"
    password.write_text("  a-long-page-password \n")
    password.chmod(0o600)
    settings = page_settings(config(tmp_path, {"listen": "0.0.0.0:8765", "password_file": "page-password"}))
    assert settings == type(settings)(Listen("0.0.0.0", 8765), b"a-long-page-password")
    assert "a-long-page-password" not in repr(settings)
    assert redact("said a-long-page-password") == "said <redacted>"


@pytest.mark.parametrize(
    ("content", "mode", "says"),
    [
        ("pw-of-some-length\n", 0o640, "other users can read .*chmod 600"),
        ("\n\n", 0o600, ".*on one line"),
        ("two\nlines\n", 0o600, ".*on one line"),
        (None, 0o600, "cannot read the password file .*No such file"),
    ],
)
def test_a_bad_password_file_is_a_config_error(
    tmp_path: Path, content: str | None, mode: int, says: str
) -> None:
    password = tmp_path / "pw"
    if content is not None:
        password.write_text(content)
        password.chmod(mode)
    loaded = config(tmp_path, {"listen": "0.0.0.0:8765", "password_file": str(password)})
    with pytest.raises(ConfigError, match=f"status_page.password_file: {says}"):
        page_settings(loaded)


def test_a_fifo_as_the_password_file_is_a_config_error_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pw", 0o600)  # no writer: reading it would block the agent's start for good
    loaded = config(tmp_path, {"listen": "0.0.0.0:8765", "password_file": "pw"})
    with pytest.raises(ConfigError, match=r"status_page.password_file: cannot read .*not a regular file"):
        page_settings(loaded)


def test_check_config_shows_the_page_and_checks_its_password_file(tmp_path: Path) -> None:
    assert describe_effective(config(tmp_path, None), None)["status_page"] == "off"
    shown = describe_effective(config(tmp_path, {"listen": "127.0.0.1:8765"}), None)["status_page"]
    assert shown == {"listen": "127.0.0.1:8765", "password": "none (loopback only)"}
    password = tmp_path / "pw"
    password.write_text("a-long-page-password\n")
    password.chmod(0o600)
    beyond = config(tmp_path, {"listen": "0.0.0.0:8765", "password_file": "pw"})
    assert describe_effective(beyond, None)["status_page"] == {
        "listen": "0.0.0.0:8765",
        "password": "<redacted, from pw>",
    }
    password.chmod(0o644)
    with pytest.raises(ConfigError, match="other users can read"):
        describe_effective(beyond, None)
