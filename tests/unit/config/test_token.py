"""Where the API token is looked up, and what is refused before it is ever sent or printed: real config
and token files, a real credentials folder; every refusal names the source, never the value."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.config_files import write_config, write_token
from watcher.config.load import Config, ConfigError, load_config
from watcher.config.token import ResolvedToken, resolve_token
from watcher.redact import redact

TOKEN = "user:12345-abcdefghijklmnop"


# --- where it is looked up ------------------------------------------------------------------------


def test_env_token_wins_over_token_file(tmp_path: Path, drop: Path) -> None:
    (tmp_path / "token").write_text("user:1-from-file\n")
    config = load_config(write_config(tmp_path, f"api:\n  token_file: token\nfolders:\n  - path: {drop}\n"))
    token = resolve_token(config, {"USEAPI_TOKEN": f"  {TOKEN}\n"})
    assert token is not None
    assert token.value == TOKEN
    assert "USEAPI_TOKEN" in token.source


def test_blank_env_token_is_ignored(tmp_path: Path, drop: Path) -> None:
    write_token(tmp_path / "token", "user:1-from-file\n")
    config = load_config(write_config(tmp_path, f"api:\n  token_file: token\nfolders:\n  - path: {drop}\n"))
    token = resolve_token(config, {"USEAPI_TOKEN": "   "})
    assert token is not None
    assert token.value == "user:1-from-file"


def test_token_file_is_read_stripped_and_relative_to_the_config(
    tmp_path: Path, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_token(tmp_path / "token", f"\n  {TOKEN}  \n\n")
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
    write_token(tmp_path / "token", "user:1-from-file\n")
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
    write_token(tmp_path / "empty", "\n  \n")
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


def test_token_file_readable_by_others_is_refused_like_an_inline_token(tmp_path: Path, drop: Path) -> None:
    for mode in (0o644, 0o640, 0o604):
        write_token(tmp_path / "token", f"{TOKEN}\n", mode=mode)
        config = load_config(
            write_config(tmp_path, f"api:\n  token_file: token\nfolders:\n  - path: {drop}\n")
        )
        with pytest.raises(ConfigError) as info:
            resolve_token(config, {})
        message = str(info.value)
        assert message.startswith("api.token_file: other users can read the token file")
        assert f"chmod 600 {tmp_path / 'token'}" in message
        assert TOKEN not in message


def test_systemd_credential_is_accepted_whatever_its_mode(tmp_path: Path, drop: Path) -> None:
    """systemd makes $CREDENTIALS_DIRECTORY private to the service; the file's mode says nothing."""
    creds = tmp_path / "creds"
    creds.mkdir()
    write_token(creds / "useapi-token", f"{TOKEN}\n", mode=0o444)
    config = load_config(write_config(tmp_path, f"folders:\n  - path: {drop}\n"))
    token = resolve_token(config, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert token is not None and token.value == TOKEN


# --- the token's characters ------------------------------------------------------------------------

# requests refuses a header value holding \r or \n (InvalidHeader, whose text quotes `Bearer <token>`),
# and http.client one holding a character beyond latin-1 (UnicodeEncodeError). The others pass them
# on, and no token holds them: a token is one word of visible ASCII.
REFUSED_BY_REQUESTS = {
    "newline": "\n",
    "carriage-return": "\r",
    "crlf": "\r\n",
    "u2028": "\u2028",
    "euro": "€",
}
PASSED_ON_BY_REQUESTS = {
    "space": " ",
    "tab": "\t",
    "vertical-tab": "\x0b",
    "form-feed": "\x0c",
    "nul": "\x00",
    "escape": "\x1b",
    "del": "\x7f",
    "nel": "\x85",
    "no-break-space": "\xa0",
    "e-acute": "é",
    "byte-order-mark": "\ufeff",
}
BAD_CHARACTERS = {**REFUSED_BY_REQUESTS, **PASSED_ON_BY_REQUESTS}
FIRST, SECOND = "user:4242-firstSECRET", "user:4243-secondSECRET"
SOURCES = {
    "env": "environment variable USEAPI_TOKEN",
    "inline": "api.token in the config file",
    "file": "api.token_file (",
    "credential": "systemd credential useapi-token",
}


def token_from(source: str, value: str, tmp_path: Path, drop: Path) -> tuple[Config, dict[str, str]]:
    """A config and environment that give `value` as the token through `source`."""
    api = ""
    env: dict[str, str] = {}
    if source == "env":
        env["USEAPI_TOKEN"] = value
    elif source == "inline":
        api = f"api:\n  token: {json.dumps(value)}\n"  # a JSON string is a YAML double-quoted scalar
    elif source == "file":
        write_token(tmp_path / "token", value + "\n")
        api = "api:\n  token_file: token\n"
    else:
        creds = tmp_path / "creds"
        creds.mkdir(exist_ok=True)
        write_token(creds / "useapi-token", value + "\n")
        env["CREDENTIALS_DIRECTORY"] = str(creds)
    return load_config(write_config(tmp_path, api + f"folders:\n  - path: {drop}\n")), env


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("character", BAD_CHARACTERS.values(), ids=BAD_CHARACTERS.keys())
def test_a_token_with_a_character_no_token_holds_is_refused_naming_only_its_source(
    tmp_path: Path, drop: Path, source: str, character: str
) -> None:
    value = FIRST + character + SECOND
    config, env = token_from(source, value, tmp_path, drop)
    with pytest.raises(ConfigError) as info:
        resolve_token(config, env)
    message = str(info.value)
    assert message.startswith(SOURCES[source]), message
    assert "value is not shown" in message
    assert "SECRET" not in message
    # Registered all the same: whatever quotes it later is redacted (requests, for one, with repr()).
    assert "SECRET" not in redact(f"Bearer {value} or {value!r}")


@pytest.mark.parametrize("source", SOURCES)
def test_whitespace_around_the_token_is_not_part_of_it(tmp_path: Path, drop: Path, source: str) -> None:
    config, env = token_from(source, f" \t{TOKEN}\r\n ", tmp_path, drop)
    token = resolve_token(config, env)
    assert token is not None and token.value == TOKEN
    assert token.source.startswith(SOURCES[source])


def test_the_resolved_token_is_registered_for_redaction(tmp_path: Path, drop: Path) -> None:
    config, env = token_from("file", TOKEN, tmp_path, drop)
    assert resolve_token(config, env) is not None
    assert redact(f"header Bearer {TOKEN}") == "header Bearer <redacted>"


def test_token_file_that_is_not_utf8_is_a_config_error(tmp_path: Path, drop: Path) -> None:
    write_token(tmp_path / "token", b"user:1-\xff\xfeSECRETVALUE\n")
    config = load_config(write_config(tmp_path, f"api:\n  token_file: token\nfolders:\n  - path: {drop}\n"))
    with pytest.raises(ConfigError, match=r"^api\.token_file: the token file .* is not UTF-8") as info:
        resolve_token(config, {})
    assert "SECRETVALUE" not in str(info.value)


@pytest.mark.parametrize(
    ("token_file", "expected"),
    [
        pytest.param("/" + "t" * 4999, "File name too long", id="5000-characters"),
        pytest.param("t/" * 2500, "File name too long", id="too-many-components"),
        pytest.param(".", "not a regular file", id="a-directory"),
        pytest.param("fifo", "not a regular file", id="a-fifo"),  # would block the start for good
        pytest.param("huge", "larger than 64 KiB", id="huge"),
    ],
)
def test_token_file_that_cannot_be_read_is_a_config_error(
    tmp_path: Path, drop: Path, token_file: str, expected: str
) -> None:
    write_token(tmp_path / "huge", "user:1-" + "x" * (1 << 20))
    os.mkfifo(tmp_path / "fifo", 0o600)
    config = load_config(
        write_config(tmp_path, f"api:\n  token_file: {json.dumps(token_file)}\nfolders:\n  - path: {drop}\n")
    )
    with pytest.raises(ConfigError, match=r"^api\.token_file: ") as info:
        resolve_token(config, {})
    assert expected in str(info.value)


def test_token_file_path_with_a_nul_is_a_config_error(tmp_path: Path, drop: Path) -> None:
    config = load_config(
        write_config(tmp_path, f'api:\n  token_file: "to\\0ken"\nfolders:\n  - path: {drop}\n')
    )
    with pytest.raises(ConfigError, match=r"^api\.token_file: .*NUL"):
        resolve_token(config, {})
