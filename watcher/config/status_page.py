"""The status page's settings (SPEC §9) resolved for serving: where it listens, and its password read
from `status_page.password_file` (private to its owner, as the token file). Problems are `ConfigError`s."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from watcher.config.load import (
    Config,
    ConfigError,
    Listen,
    open_secret_file,
    os_reason,
    parse_listen,
    shown_path,
)
from watcher.redact import register_secret

MAX_PASSWORD_FILE_BYTES = 4096
# Shorter is guessed over HTTP; and the password is redacted from every answer and log line, so a short
# one ("true", "path") would be cut out of /api/status's own JSON.
MIN_PASSWORD_CHARACTERS = 12


@dataclass(frozen=True)
class PageSettings:
    listen: Listen
    password: bytes | None = field(default=None, repr=False)  # None: loopback, no password asked


def page_settings(config: Config) -> PageSettings | None:
    """The page's settings, or None when `status_page.listen` is unset; reads the password file."""
    settings = config.settings.status_page
    if settings.listen is None:
        return None
    try:
        listen = parse_listen(settings.listen)
    except ValueError as exc:
        raise ConfigError(f"status_page.listen: {exc}") from None
    if settings.password_file is None:
        return PageSettings(listen)  # loopback: the schema refuses anything else without a password
    if "\0" in settings.password_file:
        raise ConfigError("status_page.password_file: the path contains a NUL character")
    path = Path(os.path.expanduser(settings.password_file))
    if not path.is_absolute():
        path = config.source.resolve().parent / path
    return PageSettings(listen, _read_password(path))


def _read_password(path: Path) -> bytes:
    key, shown = "status_page.password_file", shown_path(path)
    try:
        with open_secret_file(path) as f:
            if os.fstat(f.fileno()).st_mode & (stat.S_IRGRP | stat.S_IROTH):
                raise ConfigError(f"{key}: other users can read {shown}; run `chmod 600 {shown}`")
            data = f.read(MAX_PASSWORD_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read the password file {shown}: {os_reason(exc)}") from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        raise ConfigError(f"{key}: {shown} is larger than 4 KiB: not a password file")
    password = data.strip()
    if not password or b"\n" in password:
        raise ConfigError(f"{key}: {shown} must hold the password on one line (it is empty or holds more)")
    try:
        text = password.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {shown} is not UTF-8 text (its value is not shown)") from None
    if len(text) < MIN_PASSWORD_CHARACTERS:
        raise ConfigError(
            f"{key}: the password in {shown} has {len(text)} characters; use at least "
            f"{MIN_PASSWORD_CHARACTERS} (`openssl rand -base64 18 > {shown}` makes one)"
        )
    register_secret(text)  # nothing the agent prints may quote it
    return password
