"""The API token (where it is looked up, what is refused before it is sent or printed) and the proxy
credentials of the environment, each registered with `watcher.redact` before anything else.

Any problem is a `ConfigError` that names the source, never the value. See docs/architecture.md, 'Config
and service'.
"""

from __future__ import annotations

import base64
import os
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from watcher.config.load import (
    CREDENTIAL_NAME,
    MAX_TOKEN_FILE_BYTES,
    TOKEN_ENV,
    Config,
    ConfigError,
    open_secret_file,
    os_reason,
    shown_path,
)
from watcher.redact import register_secret


@dataclass(frozen=True)
class ResolvedToken:
    value: str
    source: str  # where it came from, safe to print

    def __repr__(self) -> str:
        return f"ResolvedToken(source={self.source!r}, value=<redacted>)"


def resolve_token(config: Config | None, env: Mapping[str, str] | None = None) -> ResolvedToken | None:
    """The API token, looked up in order: $USEAPI_TOKEN, api.token, api.token_file, the systemd credential.

    Whatever the source, the token is registered with `watcher.redact` and must be one line of visible
    ASCII: whitespace, control or non-ASCII characters inside it would make requests refuse the header
    (quoting it in the error) or send something the API cannot match. Any problem is a `ConfigError`
    that names the source, never the value.
    """
    env = os.environ if env is None else env
    try:
        return _resolve_token(config, env)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot read the API token ({type(exc).__name__})") from None


def _resolve_token(config: Config | None, env: Mapping[str, str]) -> ResolvedToken | None:
    from_env = env.get(TOKEN_ENV, "")
    if from_env.strip():
        return _checked(from_env, f"environment variable {TOKEN_ENV}")
    api = config.settings.api if config else None
    if api is not None and api.token and api.token.strip():
        register_secret(api.token.strip())
        _refuse_readable_by_others(config.source if config else None, "api.token")
        return _checked(api.token, "api.token in the config file")
    if api is not None and api.token_file:
        if "\0" in api.token_file:
            raise ConfigError("api.token_file: the path contains a NUL character")
        token_path = Path(os.path.expanduser(api.token_file))
        if not token_path.is_absolute() and config is not None:
            token_path = config.source.resolve().parent / token_path
        source = f"api.token_file ({shown_path(token_path)})"
        return _checked(_read_token_file(token_path, "api.token_file", private=True), source)
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials and "\0" not in credentials:
        cred = Path(credentials) / CREDENTIAL_NAME
        try:
            os.stat(cred)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ConfigError(
                f"systemd credential: cannot reach {shown_path(cred)}: {os_reason(exc)}"
            ) from None
        # systemd makes $CREDENTIALS_DIRECTORY private to the service, whatever the file's mode.
        text = _read_token_file(cred, "systemd credential", private=False)
        return _checked(text, f"systemd credential {CREDENTIAL_NAME}")
    return None


def _read_token_file(path: Path, key: str, *, private: bool) -> str:
    shown = shown_path(path)
    try:
        with open_secret_file(path) as f:
            if private:
                _refuse_mode(os.fstat(f.fileno()).st_mode, key, path)
            data = f.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read the token file {shown}: {os_reason(exc)}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(f"{key}: {shown} is larger than {MAX_TOKEN_FILE_BYTES >> 10} KiB: not a token file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{key}: the token file {shown} is not UTF-8 text (its value is not shown)"
        ) from None
    if not text.strip():
        raise ConfigError(f"{key}: the token file {shown} is empty")
    return text


def _checked(text: str, source: str) -> ResolvedToken:
    token = text.strip()
    register_secret(token)  # even when refused below: nothing may print it
    problem = _token_problem(token)
    if problem is not None:
        raise ConfigError(f"{source}: the token {problem} (its value is not shown)")
    return ResolvedToken(token, source)


def _token_problem(token: str) -> str | None:
    """What is wrong with `token` (leading and trailing whitespace already gone), or None."""
    for c in token:
        if "\x21" <= c <= "\x7e":
            continue
        if len(f"a{c}a".splitlines()) > 1:  # \n, \r, \x85, \u2028 and every other line boundary
            return "holds a line break; put exactly one token, on one line"
        if c.isspace():
            return "holds a space or another blank; a token has none"
        if unicodedata.category(c) == "Cc":
            return "holds a control character"
        return "holds a character that is not ASCII; check the encoding (a byte order mark?)"
    return None


def _refuse_readable_by_others(source: Path | None, key: str) -> None:
    if source is None:
        return
    try:
        mode = source.stat().st_mode
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot check who may read {shown_path(source)}: {os_reason(exc)}"
        ) from None
    _refuse_mode(mode, key, source)


def _refuse_mode(mode: int, key: str, path: Path) -> None:
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return
    shown = shown_path(path)
    if key == "api.token":
        raise ConfigError(
            f"api.token: {shown} holds the token inline and other users can read it; "
            f"run `chmod 600 {shown}`, or move the token to api.token_file or ${TOKEN_ENV}"
        )
    raise ConfigError(
        f"{key}: other users can read the token file {shown}; run `chmod 600 {shown}`, "
        f"or hand it to the service as the systemd credential {CREDENTIAL_NAME}"
    )


def is_proxy_variable(name: str) -> bool:
    """HTTPS_PROXY, http_proxy, ALL_PROXY, NO_PROXY...: what requests and curl read, in any case."""
    return name.lower().endswith("_proxy")


def register_proxy_secrets(env: Mapping[str, str] | None = None) -> None:
    """Register the password (and user:password, and its Basic form) of every proxy URL in the
    environment with `watcher.redact`, at start: a proxy error, a hook's output or a copy of the
    variable must not print it. A hook may be given them (`hooks.pass_proxy`), never the token."""
    env = os.environ if env is None else env
    for name, value in env.items():
        if not is_proxy_variable(name) or name.lower() == "no_proxy":
            continue
        try:
            parts = urlsplit(value if "://" in value else f"http://{value}")
        except ValueError:
            continue
        if parts.password is None:
            continue
        userinfo = parts.netloc.rpartition("@")[0]
        user, password = unquote(parts.username or ""), unquote(parts.password)
        basic = base64.b64encode(f"{user}:{password}".encode(errors="surrogateescape")).decode()
        for secret in (userinfo, parts.password, password, f"{user}:{password}", basic):
            register_secret(secret, passable=True)
