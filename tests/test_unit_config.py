"""Unit tests for `watcher.config`: loading real YAML files, precise errors, and the token's resolution."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from watcher.config import (
    DEFAULT_BASE_URL,
    ConfigError,
    ResolvedToken,
    default_config_path,
    describe_effective,
    load_config,
    resolve_token,
)

TOKEN = "user:12345-abcdefghijklmnop"


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def write_config(folder: Path, text: str, name: str = "config.yaml", mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# --- valid configs -------------------------------------------------------------------------------


def test_minimal_config_gets_the_defaults(tmp_path: Path, drop: Path) -> None:
    config = load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n"))
    assert config.settings.settle_seconds == 2
    assert config.settings.concurrency == 4
    assert config.base_url == DEFAULT_BASE_URL
    assert config.settings.api.token_file is None
    assert len(config.folders) == 1
    folder = config.folders[0]
    assert folder.path == str(drop)
    assert folder.account is None
    assert folder.account_key == ""
    assert folder.recursive is False
    assert folder.polling is False


def test_full_config_with_a_relative_path_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (tmp_path / "srv" / "alice").mkdir(parents=True)
    (etc / "bob").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    path = write_config(
        etc,
        """
api:
  base_url: http://127.0.0.1:8080/v1/minimax/
settle_seconds: 0.5
concurrency: 8
folders:
  - path: ../srv/alice
    account: "123456"
    recursive: true
    polling: true
  - path: bob
""",
    )
    config = load_config(path)
    assert config.settings.settle_seconds == 0.5
    assert config.settings.concurrency == 8
    assert config.base_url == "http://127.0.0.1:8080/v1/minimax"  # trailing slash dropped
    alice, bob = config.folders
    assert alice.path == str(tmp_path / "srv" / "alice")
    assert (alice.account, alice.recursive, alice.polling) == ("123456", True, True)
    assert alice.account_key == "123456"
    assert bob.path == str(etc / "bob")
    assert bob.account is None


def test_integer_settle_seconds_is_accepted(tmp_path: Path, drop: Path) -> None:
    config = load_config(write_config(tmp_path, f"settle_seconds: 3\nfolders:\n  - path: {drop}\n"))
    assert config.settings.settle_seconds == 3.0


# --- errors name the key -------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"setle_seconds: 2\nfolders:\n  - path: {drop}\n"))
    assert "setle_seconds" in message
    assert "unknown key" in message


def test_unknown_key_inside_a_folder(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f'folders:\n  - path: {drop}\n    acount: "1"\n'))
    assert "folders[0].acount" in message
    assert "unknown key" in message


def test_unknown_key_inside_api(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"api:\n  tokenfile: x\nfolders:\n  - path: {drop}\n"))
    assert "api.tokenfile" in message


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('settle_seconds: "2"\n', "settle_seconds"),
        ("concurrency: 1.5\n", "concurrency"),
        ('concurrency: "4"\n', "concurrency"),
        ("settle_seconds: 0\n", "settle_seconds"),
        ("concurrency: 0\n", "concurrency"),
        ("api:\n  base_url: ftp://example.com\n", "api.base_url"),
    ],
)
def test_wrong_top_level_types_and_values(tmp_path: Path, drop: Path, snippet: str, key: str) -> None:
    message = config_error(write_config(tmp_path, snippet + f"folders:\n  - path: {drop}\n"))
    assert f"{key}:" in message


def test_recursive_must_be_a_boolean(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f'folders:\n  - path: {drop}\n    recursive: "yes"\n'))
    assert "folders[0].recursive" in message
    assert "bool" in message


def test_bare_integer_account_suggests_quoting(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {drop}\n    account: 123456\n"))
    assert "folders[0].account" in message
    assert '"123456"' in message
    assert "quote" in message


def test_non_numeric_account_is_refused(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f'folders:\n  - path: {drop}\n    account: "alice"\n'))
    assert "folders[0].account" in message


def test_missing_folders(tmp_path: Path) -> None:
    message = config_error(write_config(tmp_path, "settle_seconds: 2\n"))
    assert "folders" in message
    assert "missing" in message


def test_empty_folders_list(tmp_path: Path) -> None:
    assert "folders" in config_error(write_config(tmp_path, "folders: []\n"))


def test_empty_file(tmp_path: Path) -> None:
    assert "folders" in config_error(write_config(tmp_path, ""))


def test_folder_missing_on_disk(tmp_path: Path) -> None:
    message = config_error(write_config(tmp_path, "folders:\n  - path: nowhere\n"))
    assert "folders[0].path" in message
    assert "does not exist" in message
    assert str(tmp_path / "nowhere") in message


def test_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    message = config_error(write_config(tmp_path, "folders:\n  - path: afile\n"))
    assert "folders[0].path" in message
    assert "not a directory" in message


def test_same_folder_twice(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {drop}\n  - path: ./drop/\n"))
    assert "folders[1].path" in message
    assert "folders[0]" in message
    assert "same folder" in message


def test_same_folder_twice_through_a_symlink(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "alias").symlink_to(drop)
    message = config_error(write_config(tmp_path, "folders:\n  - path: drop\n  - path: alias\n"))
    assert "folders[1].path" in message


def test_nested_folders(tmp_path: Path, drop: Path) -> None:
    (drop / "inner").mkdir()
    message = config_error(write_config(tmp_path, "folders:\n  - path: drop/inner\n  - path: drop\n"))
    assert "folders[1].path" in message
    assert "nested" in message


def test_sibling_folders_with_a_common_prefix_are_not_nested(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "drop2").mkdir()
    config = load_config(write_config(tmp_path, "folders:\n  - path: drop\n  - path: drop2\n"))
    assert [f.path for f in config.folders] == [str(drop), str(tmp_path / "drop2")]


def test_invalid_yaml_names_the_line(tmp_path: Path, drop: Path) -> None:
    message = config_error(write_config(tmp_path, f"folders:\n  - path: {drop}\n  bad: [\n"))
    assert "YAML" in message
    assert "line 3" in message


def test_missing_config_file(tmp_path: Path) -> None:
    assert "not found" in config_error(tmp_path / "absent.yaml")


def test_default_config_path_prefers_the_environment(tmp_path: Path) -> None:
    assert default_config_path({"MINIMAX_WATCHER_CONFIG": "/x/y.yaml"}) == Path("/x/y.yaml")


# --- the token -----------------------------------------------------------------------------------


def test_env_token_wins_over_token_file(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "token").write_text("user:1-from-file\n")
    config = load_config(write_config(tmp_path, f"api:\n  token_file: token\nfolders:\n  - path: {drop}\n"))
    token = resolve_token(config, {"USEAPI_TOKEN": f"  {TOKEN}\n"})
    assert token is not None
    assert token.value == TOKEN
    assert "USEAPI_TOKEN" in token.source


def test_blank_env_token_is_ignored(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "token").write_text("user:1-from-file\n")
    config = load_config(write_config(tmp_path, f"api:\n  token_file: token\nfolders:\n  - path: {drop}\n"))
    token = resolve_token(config, {"USEAPI_TOKEN": "   "})
    assert token is not None
    assert token.value == "user:1-from-file"


def test_token_file_is_read_stripped_and_relative_to_the_config(
    tmp_path: Path, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text(f"\n  {TOKEN}  \n\n")
    monkeypatch.chdir(drop)
    config = load_config(write_config(tmp_path, f"api:\n  token_file: token\nfolders:\n  - path: {drop}\n"))
    token = resolve_token(config, {})
    assert token is not None
    assert token.value == TOKEN
    assert "api.token_file" in token.source


def test_token_file_wins_over_the_systemd_credential(tmp_path: Path, drop: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "useapi-token").write_text("user:2-credential\n")
    (tmp_path / "token").write_text("user:1-from-file\n")
    config = load_config(write_config(tmp_path, f"api:\n  token_file: token\nfolders:\n  - path: {drop}\n"))
    token = resolve_token(config, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert token is not None
    assert token.value == "user:1-from-file"


def test_systemd_credential_is_used_last(tmp_path: Path, drop: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "useapi-token").write_text(f"{TOKEN}\n")
    config = load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n"))
    token = resolve_token(config, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert token is not None
    assert token.value == TOKEN
    assert "credential" in token.source


def test_no_token_anywhere_is_none(tmp_path: Path, drop: Path) -> None:
    config = load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n"))
    assert resolve_token(config, {"CREDENTIALS_DIRECTORY": str(tmp_path / "nocreds")}) is None


def test_empty_or_missing_token_file_is_a_config_error(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "empty").write_text("\n  \n")
    config = load_config(write_config(tmp_path, f"api:\n  token_file: empty\nfolders:\n  - path: {drop}\n"))
    with pytest.raises(ConfigError, match=r"api\.token_file.*empty"):
        resolve_token(config, {})
    config = load_config(write_config(tmp_path, f"api:\n  token_file: absent\nfolders:\n  - path: {drop}\n"))
    with pytest.raises(ConfigError, match=r"api\.token_file"):
        resolve_token(config, {})


def test_inline_token_refused_when_others_can_read_the_config(tmp_path: Path, drop: Path) -> None:
    path = write_config(tmp_path, f'api:\n  token: "{TOKEN}"\nfolders:\n  - path: {drop}\n', mode=0o644)
    config = load_config(path)
    with pytest.raises(ConfigError) as info:
        resolve_token(config, {})
    message = str(info.value)
    assert "api.token" in message
    assert "chmod 600" in message
    assert TOKEN not in message


def test_inline_token_refused_when_only_the_group_can_read(tmp_path: Path, drop: Path) -> None:
    path = write_config(tmp_path, f'api:\n  token: "{TOKEN}"\nfolders:\n  - path: {drop}\n', mode=0o640)
    with pytest.raises(ConfigError):
        resolve_token(load_config(path), {})


def test_inline_token_accepted_at_mode_600(tmp_path: Path, drop: Path) -> None:
    path = write_config(tmp_path, f'api:\n  token: "{TOKEN}"\nfolders:\n  - path: {drop}\n', mode=0o600)
    token = resolve_token(load_config(path), {})
    assert token is not None
    assert token.value == TOKEN
    assert "api.token" in token.source


def test_resolved_token_repr_and_str_never_show_it() -> None:
    token = ResolvedToken(TOKEN, "environment variable USEAPI_TOKEN")
    assert TOKEN not in repr(token)
    assert TOKEN not in str(token)
    assert "abcdefghijklmnop" not in f"{token!r} {[token]}"
    assert "redacted" in repr(token)


def test_config_repr_never_shows_an_inline_token(tmp_path: Path, drop: Path) -> None:
    path = write_config(tmp_path, f'api:\n  token: "{TOKEN}"\nfolders:\n  - path: {drop}\n')
    config = load_config(path)
    assert TOKEN not in repr(config)
    assert TOKEN not in repr(config.settings)


def test_describe_effective_never_contains_the_token(tmp_path: Path, drop: Path) -> None:
    path = write_config(
        tmp_path, f'api:\n  token: "{TOKEN}"\nfolders:\n  - path: {drop}\n    account: "42"\n'
    )
    config = load_config(path)
    token = resolve_token(config, {})
    assert token is not None and token.value == TOKEN
    described = describe_effective(config, token)
    text = json.dumps(described)
    assert TOKEN not in text
    assert "abcdefghijklmnop" not in text
    assert "redacted" in described["api"]["token"]
    assert described["folders"] == [
        {"path": str(drop), "account": "42", "recursive": False, "polling": False}
    ]
    assert described["settle_seconds"] == 2
    assert described["concurrency"] == 4
    assert describe_effective(config, None)["api"]["token"] == "<none found>"
