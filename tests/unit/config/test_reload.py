"""Unit tests for `watcher.config.reload`: what a SIGHUP brings, or why the running config stays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from watcher.config.load import Config, load_config
from watcher.config.reload import reloaded
from watcher.config.schema import ConfigError
from watcher.core.api_owner import ApiOwner

OWNER = ApiOwner("https://api.useapi.net/v1/minimax", "1")


class FakeClient:
    """A client made for a config: whose it is, and whether it was closed."""

    def __init__(self, owner: ApiOwner) -> None:
        self.owner = owner
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def config(tmp_path: Path) -> Config:
    drop = tmp_path / "drop"
    drop.mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(f"metrics:\n  listen: 127.0.0.1:9464\nfolders:\n  - path: {drop}\n")
    os.chmod(path, 0o600)
    return load_config(path)


def test_the_new_config_comes_with_its_client_and_moves_the_metrics_server(config: Config) -> None:
    made: list[FakeClient] = []
    listened: list[str | None] = []

    def client_for(new: Config) -> FakeClient:
        made.append(FakeClient(OWNER))
        return made[-1]

    new, client = reloaded(lambda: config, client_for, listened.append, OWNER)

    assert (new, client) == (config, made[0])
    assert listened == ["127.0.0.1:9464"]
    assert not client.closed


def test_another_token_user_is_refused_and_its_client_closed(config: Config) -> None:
    other = FakeClient(ApiOwner(OWNER.base_url, "2"))

    with pytest.raises(ConfigError, match=r"the token's user or the base URL changed .*restart the agent"):
        reloaded(lambda: config, lambda new: other, lambda listen: None, OWNER)

    assert other.closed


def test_a_config_that_does_not_load_is_refused_before_any_client_is_made(config: Config) -> None:
    def broken() -> Config:
        raise ConfigError("folders: required")

    made: list[Config] = []
    with pytest.raises(ConfigError, match="folders: required"):
        reloaded(broken, lambda new: made.append(new) or FakeClient(OWNER), lambda listen: None, OWNER)
    assert made == []
