"""The YAML config: one schema, precise errors that name the key, and the token's resolution.

Every configuration problem raises `ConfigError`, whose message names the key and says what is wrong;
the CLI turns it into exit status 78 (EX_CONFIG), which systemd's RestartPreventExitStatus= understands.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from watcher.folders import Folder, is_inside

DEFAULT_BASE_URL = "https://api.useapi.net/v1/minimax"
EX_CONFIG = 78
CONFIG_ENV = "MINIMAX_WATCHER_CONFIG"
TOKEN_ENV = "USEAPI_TOKEN"
CREDENTIAL_NAME = "useapi-token"
SYSTEM_CONFIG = Path("/etc/minimax-watcher/config.yaml")


class ConfigError(Exception):
    """A configuration problem, with a message meant for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ApiSettings(_Strict):
    base_url: str = DEFAULT_BASE_URL
    token_file: str | None = None
    # Accepted for convenience on single-user machines, refused when others can read the config file.
    token: str | None = Field(default=None, repr=False)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class FolderSettings(_Strict):
    path: str
    account: str | None = None
    recursive: bool = False
    polling: bool = False

    @field_validator("account", mode="before")
    @classmethod
    def _account_is_quoted_digits(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(
                'must be a quoted string, e.g. account: "123456": YAML reads unquoted digits as a number '
                "(and a leading 0 as octal), so write the id exactly as useapi.net shows it, in quotes"
            )
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError('must be the numeric MiniMax account id, e.g. "123456"')
        return value.strip() if isinstance(value, str) else value


class Settings(_Strict):
    api: ApiSettings = ApiSettings()
    settle_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    rescan_seconds: Annotated[float, Field(ge=1)] = 300.0
    folders: Annotated[list[FolderSettings], Field(min_length=1)]


@dataclass(frozen=True)
class Config:
    source: Path
    settings: Settings
    folders: tuple[Folder, ...]

    @property
    def base_url(self) -> str:
        return self.settings.api.base_url


def with_base_url(config: Config, base_url: str) -> Config:
    """The same config uploading to `base_url` (the built-in emulator's, for --emulate)."""
    api = config.settings.api.model_copy(update={"base_url": base_url})
    return Config(config.source, config.settings.model_copy(update={"api": api}), config.folders)


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    local = Path("config.yaml")
    if local.exists():
        return local
    return SYSTEM_CONFIG


def load_config(path: Path) -> Config:
    """Read, validate and resolve the config file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (use --config or ${CONFIG_ENV})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping with at least a `folders` list")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + _describe_errors(exc)) from None
    base = path.resolve().parent
    try:
        folders = tuple(_resolve_folder(base, i, f) for i, f in enumerate(settings.folders))
        _check_folder_overlap(folders)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return Config(source=path, settings=settings, folders=folders)


def _describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(
            "."
        )
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against the README's config reference)"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{key or '(top level)'}: {message}")
    return "; ".join(lines)


def _resolve_folder(base: Path, index: int, folder: FolderSettings) -> Folder:
    key = f"folders[{index}].path"
    path = Path(os.path.expanduser(folder.path))
    if not path.is_absolute():
        path = base / path
    path = Path(os.path.normpath(path))
    if not path.exists():
        raise ConfigError(f"{key}: folder does not exist: {path}")
    if not path.is_dir():
        raise ConfigError(f"{key}: not a directory: {path}")
    return Folder(
        path=str(path.resolve()), account=folder.account, recursive=folder.recursive, polling=folder.polling
    )


def _check_folder_overlap(folders: tuple[Folder, ...]) -> None:
    for i, a in enumerate(folders):
        for j, b in enumerate(folders[:i]):
            if a.path == b.path:
                raise ConfigError(
                    f"folders[{i}].path: the same folder is already listed as folders[{j}]: {a.path}"
                )
            if is_inside(a.path, b.path) or is_inside(b.path, a.path):
                raise ConfigError(
                    f"folders[{i}].path: {a.path} and folders[{j}].path {b.path} are nested; "
                    "list each folder once (use recursive: true for subfolders)"
                )


@dataclass(frozen=True)
class ResolvedToken:
    value: str
    source: str  # where it came from, safe to print

    def __repr__(self) -> str:
        return f"ResolvedToken(source={self.source!r}, value=<redacted>)"


def resolve_token(config: Config | None, env: Mapping[str, str] | None = None) -> ResolvedToken | None:
    """The API token, looked up in order: $USEAPI_TOKEN, api.token, api.token_file, the systemd credential."""
    env = os.environ if env is None else env
    if env.get(TOKEN_ENV, "").strip():
        return ResolvedToken(env[TOKEN_ENV].strip(), f"environment variable {TOKEN_ENV}")
    api = config.settings.api if config else None
    if api is not None and api.token:
        _refuse_readable_inline_token(config.source if config else None)
        return ResolvedToken(api.token.strip(), "api.token in the config file")
    if api is not None and api.token_file:
        token_path = Path(os.path.expanduser(api.token_file))
        if not token_path.is_absolute() and config is not None:
            token_path = config.source.resolve().parent / token_path
        return ResolvedToken(_read_token_file(token_path, "api.token_file"), f"api.token_file ({token_path})")
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        cred = Path(credentials) / CREDENTIAL_NAME
        if cred.exists():
            return ResolvedToken(
                _read_token_file(cred, "systemd credential"), f"systemd credential {CREDENTIAL_NAME}"
            )
    return None


def _read_token_file(path: Path, key: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read the token file {path}: {exc.strerror}") from None
    if not token:
        raise ConfigError(f"{key}: the token file {path} is empty")
    return token


def _refuse_readable_inline_token(source: Path | None) -> None:
    if source is None:
        return
    mode = source.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        raise ConfigError(
            f"api.token: {source} holds the token inline and other users can read it; "
            f"run `chmod 600 {source}`, or move the token to api.token_file or ${TOKEN_ENV}"
        )


def describe_effective(config: Config, token: ResolvedToken | None) -> dict[str, Any]:
    """The effective config as plain data for `check-config`, token redacted."""
    s = config.settings
    return {
        "config": str(config.source),
        "api": {
            "base_url": s.api.base_url,
            "token": f"<redacted, from {token.source}>" if token else "<none found>",
        },
        "settle_seconds": s.settle_seconds,
        "concurrency": s.concurrency,
        "rescan_seconds": s.rescan_seconds,
        "folders": [
            {"path": f.path, "account": f.account, "recursive": f.recursive, "polling": f.polling}
            for f in config.folders
        ],
    }
