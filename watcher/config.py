"""The YAML config: one schema, and precise errors that name the key.

The schema is the single source of the config's documentation: every key carries its description and
example, and `watcher.config_sample.render_sample` turns them, with each key's default and bounds, into
the commented YAML that `check-config --sample` prints, the README's config reference shows and
`config.yaml` ships. The token is resolved in `watcher.credentials`.

Every configuration problem raises `ConfigError`, whose message names the key and says what is wrong;
the CLI turns it into exit status 78 (EX_CONFIG), which systemd's RestartPreventExitStatus= understands,
and a running agent refuses the reload and keeps its config. No other exception leaves `load_config` or
`watcher.credentials.resolve_token`, whatever the input.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import unicodedata
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from watcher.folders import Folder, is_inside

if TYPE_CHECKING:
    from watcher.credentials import ResolvedToken
from watcher.redact import register_secret

DEFAULT_BASE_URL = "https://api.useapi.net/v1/minimax"
EX_CONFIG = 78
CONFIG_ENV = "MINIMAX_WATCHER_CONFIG"
TOKEN_ENV = "USEAPI_TOKEN"
CREDENTIAL_NAME = "useapi-token"
SYSTEM_CONFIG = Path("/etc/minimax-watcher/config.yaml")
# Far above any real config or token file; a path to /dev/zero or a disk image fails fast instead.
MAX_CONFIG_BYTES = 1 << 20
MAX_TOKEN_FILE_BYTES = 64 << 10


MediaKind = Literal["image", "audio", "video"]


class ConfigError(Exception):
    """A configuration problem, with a message meant for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ApiSettings(_Strict):
    base_url: str = Field(
        DEFAULT_BASE_URL,
        description="The useapi.net MiniMax API the images are uploaded to; http:// or https://.",
    )
    token_file: str | None = Field(
        None,
        description=(
            "A file holding the token and nothing else, readable by its owner alone (chmod 600); a "
            "relative path is relative to the config file's folder. Or set $USEAPI_TOKEN, or hand the "
            "token to the service as the systemd credential useapi-token."
        ),
        examples=["/etc/minimax-watcher/token"],
    )
    token: str | None = Field(
        None,
        repr=False,
        description=(
            "The token itself, for single-user machines: refused unless the config file is readable "
            "by its owner alone (chmod 600)."
        ),
        examples=["user:12345-..."],
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if any(c.isspace() or unicodedata.category(c) == "Cc" for c in value):
            raise ValueError("must not contain spaces or control characters")
        try:
            parts = urllib.parse.urlsplit(value)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        if not parts.hostname:
            raise ValueError("must name a host, e.g. https://api.useapi.net/v1/minimax")
        return value.rstrip("/")


class Listen(NamedTuple):
    """A parsed `metrics.listen`: the address to bind, without brackets, and the port."""

    host: str
    port: int


LISTEN_EXAMPLE = "127.0.0.1:9464"


def parse_listen(value: str) -> Listen:
    """`127.0.0.1:9464`, `0.0.0.0:9464` or `[::1]:9464` as a `Listen`; anything else is a ValueError.

    The host is an IP address, never a name: a name would make the service's start depend on a resolver
    being up, and could resolve to an address other than the one the operator meant to expose. An empty
    host (`:9464`) is refused rather than read as "every interface": exposing the metrics beyond this
    machine must be written out, as 0.0.0.0 or [::].
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(
            f"must be HOST:PORT with HOST an IP address, e.g. {LISTEN_EXAMPLE} (this machine only), "
            '0.0.0.0:9464 (every IPv4 interface) or "[::]:9464" (every interface)'
        )
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, not {port_text[:20]!r}")
    port = int(port_text)
    if host.startswith("[") and host.endswith("]"):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host[:60]!r} is not an IPv6 address in brackets, e.g. [::1]:9464") from None
        return Listen(str(address), port)
    if ":" in host:
        raise ValueError(f'an IPv6 address goes in brackets, e.g. "[::1]:9464", not {value[:80]!r}')
    try:
        ipv4 = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"the host must be an IP address such as 127.0.0.1, not {host[:60]!r}") from None
    return Listen(str(ipv4), port)


class MetricsSettings(_Strict):
    listen: str | None = Field(
        None,
        description=(
            "HOST:PORT where Prometheus scrapes http://HOST:PORT/metrics; HOST is an IP address: "
            "127.0.0.1 for this machine only, 0.0.0.0 for every IPv4 interface, an IPv6 address in "
            'brackets and quotes ("[::1]:9464"). Unset, no metrics are served.'
        ),
        examples=[LISTEN_EXAMPLE],
    )

    @field_validator("listen", mode="before")
    @classmethod
    def _host_and_port(cls, value: Any) -> Any:
        if isinstance(value, str):
            parse_listen(value)
        elif value is not None:
            # `listen: 9464` is a number to YAML, and `listen: 1:30` a sexagesimal one.
            raise ValueError(f"must be HOST:PORT as text, e.g. {LISTEN_EXAMPLE}, not {repr(value)[:40]}")
        return value


HOOK_KEYS = ("on_upload", "on_failure", "on_attention")


class HooksSettings(_Strict):
    on_upload: list[str] | None = Field(
        None,
        min_length=1,
        description=(
            "Run after each sidecar is written (also for a reused fileID): the program and its "
            "arguments, run without a shell. The program is an absolute path or a command on $PATH."
        ),
        examples=[["/usr/local/bin/next-step", "--flag"]],
    )
    on_failure: list[str] | None = Field(
        None,
        min_length=1,
        description="Run after each error record is written; an argv list, as on_upload.",
        examples=[["/usr/local/bin/alert"]],
    )
    on_attention: list[str] | None = Field(
        None,
        min_length=1,
        description=(
            "Run when an account pauses or resumes and when a folder cannot be written; an argv list, "
            "as on_upload."
        ),
        examples=[["/usr/local/bin/page-someone"]],
    )
    timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description=(
            "A hook still running after this many seconds is killed (its whole process group) and "
            "counts as failed."
        ),
    )

    @field_validator(*HOOK_KEYS, mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            # `on_upload: /usr/bin/x --flag` would need a shell to split it; the agent runs none.
            raise ValueError(
                "must be a list, the program and its arguments, e.g. [/usr/local/bin/next-step, --flag]; "
                "it is run without a shell"
            )
        return value

    @field_validator(*HOOK_KEYS)
    @classmethod
    def _argv(cls, argv: list[str] | None) -> list[str] | None:
        if argv is None:
            return None
        for word in argv:
            if not word or "\0" in word:
                raise ValueError("each word of the command must be non-empty text without NUL characters")
        program = argv[0]
        if "/" in program and not program.startswith("/"):
            raise ValueError(
                f"{_abbreviated(program)!r}: the program must be an absolute path or a command name found "
                "on $PATH, not a relative path"
            )
        return argv

    def argv(self, hook: str) -> list[str] | None:
        """The command configured for `hook` (`on_upload`, `on_failure`, `on_attention`), or None."""
        value: list[str] | None = getattr(self, hook)
        return value

    @property
    def configured(self) -> bool:
        return any(self.argv(hook) for hook in HOOK_KEYS)


class FolderSettings(_Strict):
    path: str = Field(
        description=(
            "A folder to watch; it must exist. A relative path is relative to the config file's folder."
        ),
        examples=["/srv/drop/alice"],
    )
    account: str | None = Field(
        None,
        description=(
            "The numeric MiniMax account id configured on useapi.net, in quotes; may be left out when "
            "the token has exactly one MiniMax account."
        ),
        examples=["123456"],
    )
    recursive: bool = Field(
        False, description="Also watch its subfolders, including ones created or moved in later."
    )
    polling: bool = Field(
        False,
        description=(
            "Look for changes once a second instead of asking inotify: for NFS, SMB and FUSE mounts, "
            "where inotify sees nothing."
        ),
    )
    media: list[MediaKind] = Field(
        ["image"],
        min_length=1,
        description=(
            "Which kinds of file to upload: image (PNG, JPEG, WebP), audio (MP3, WAV), video (MP4). A file "
            "of a kind not listed is not a candidate at all."
        ),
    )
    include: list[str] = Field(
        ["**"],
        description=(
            "Globs on the path relative to the folder; only matching files are candidates. `*` matches "
            "within one name, `**` any number of folders."
        ),
    )
    exclude: list[str] = Field(
        [], description="Globs on the path relative to the folder; a matching file is never a candidate."
    )
    settle_seconds: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="This folder's own settle time, instead of the top-level settle_seconds.",
        examples=[10],
    )
    done_dir: str | None = Field(
        None,
        description=(
            "Once its sidecar is written, a file and its sidecar move here, keeping their path below the "
            "folder (a taken name gets -1, -2... before its extension). Relative to the folder, or "
            "absolute; on the same filesystem as the folder. Never watched, even inside the folder."
        ),
        examples=["done"],
    )
    failed_dir: str | None = Field(
        None,
        description=("A file that can never be uploaded moves here with its error record, as done_dir does."),
        examples=["failed"],
    )

    @field_validator("include", "exclude")
    @classmethod
    def _relative_globs(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            if not glob or glob.startswith("/") or "\0" in glob:
                raise ValueError(
                    f"{glob!r}: a glob on the path relative to the folder, e.g. renders/**/*.png"
                )
            if any(part == ".." for part in glob.split("/")):
                raise ValueError(f"{glob!r}: `..` cannot match anything inside the folder")
        return globs

    @field_validator("media")
    @classmethod
    def _no_repeats(cls, kinds: list[MediaKind]) -> list[MediaKind]:
        if len(set(kinds)) != len(kinds):
            raise ValueError("lists a kind twice")
        return kinds

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
    api: ApiSettings = Field(ApiSettings(), description="Where to upload, and with which token.")
    settle_seconds: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="A file is ready once its size and mtime have held still this long, in seconds.",
    )
    concurrency: int = Field(4, ge=1, le=64, description="Uploads in flight, all folders together.")
    rescan_seconds: float = Field(
        300.0,
        ge=1,
        description=(
            "Every folder is rescanned this often, in seconds, for what inotify missed (its queue can "
            "overflow, and network filesystems send nothing)."
        ),
    )
    metrics: MetricsSettings = Field(
        MetricsSettings(),
        description=(
            "Prometheus metrics (see the README's Monitoring section); off unless listen is set. Counters "
            "count from the agent's start and go on across reloads."
        ),
    )
    hooks: HooksSettings = Field(
        HooksSettings(),
        description=(
            "Programs run after the fact, never before the sidecar or error record is on disk: one "
            "process per event, at most `concurrency` at once, with MINIMAX_* variables and the record "
            "as JSON on stdin (see the README's Hooks section); never given the token. A hook that fails "
            "or times out is retried, up to 5 attempts; pending runs survive a restart, so a hook may "
            "run twice for one event and must tolerate that."
        ),
    )
    folders: list[FolderSettings] = Field(
        min_length=1, description="The drop folders, each listed once and none inside another."
    )

    @field_validator("metrics", "hooks", mode="before")
    @classmethod
    def _empty_section_is_off(cls, value: Any) -> Any:
        # `metrics:` or `hooks:` with every key under it commented out is YAML's null: off, as when absent.
        return {} if value is None else value


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
    if os.path.exists(local):  # never raises: a working directory we cannot read just has no config
        return local
    return SYSTEM_CONFIG


def load_config(path: Path) -> Config:
    """Read, validate and resolve the config file at `path`; any problem is a `ConfigError`."""
    try:
        return _load_config(path)
    except ConfigError:
        raise
    except Exception as exc:
        # The cases known to fail are named below; this keeps any other failure a refused config
        # (78 at start, the old config kept on reload) instead of a crash. The exception's text may
        # quote the file's content, so only its kind is told.
        raise ConfigError(f"{shown_path(path)}: cannot load the config ({type(exc).__name__})") from None


def _load_config(path: Path) -> Config:
    shown = shown_path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{shown}: config file not found (use --config or ${CONFIG_ENV})") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read the config file: {os_reason(exc)}") from None
    except ValueError:
        raise ConfigError(f"{shown}: the config file's path contains a NUL character") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{shown}: larger than {MAX_CONFIG_BYTES >> 20} MiB; is this the config file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{shown}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    raw = _parse_yaml(text, shown)
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: the config must be a mapping with at least a `folders` list")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{shown}: " + _describe_errors(exc)) from None
    if settings.api.token:
        # Before anything else can quote it, even if the config is refused later.
        register_secret(settings.api.token.strip())
    try:
        base = path.resolve().parent
        folders = tuple(_resolve_folder(base, i, f) for i, f in enumerate(settings.folders))
        _check_folder_overlap(folders)
        settings = settings.model_copy(update={"hooks": _resolve_hooks(settings.hooks)})
    except ConfigError as exc:
        raise ConfigError(f"{shown}: {exc}") from None
    return Config(source=path, settings=settings, folders=folders)


def _parse_yaml(text: str, shown: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{shown}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{shown}: not a usable config: its YAML is nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML builds dates and !!tagged values with Python's constructors, which raise these; their
        # text quotes the value, which could be the token.
        raise ConfigError(
            f"{shown}: not valid YAML: a value cannot be read ({type(exc).__name__}); "
            "check dates such as 2024-02-30 and explicit !!tags, or quote the value"
        ) from None


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
        lines.append(f"{_abbreviated(key) or '(top level)'}: {message}")
    return "; ".join(lines)


def _resolve_folder(base: Path, index: int, folder: FolderSettings) -> Folder:
    key = f"folders[{index}].path"
    if "\0" in folder.path:
        raise ConfigError(f"{key}: the path contains a NUL character")
    path = Path(os.path.expanduser(folder.path))
    if not path.is_absolute():
        path = base / path
    path = Path(os.path.normpath(path))
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{key}: folder does not exist: {shown_path(path)}") from None
    except OSError as exc:
        # ENAMETOOLONG, EACCES on a parent, ELOOP: said as the kernel says it.
        raise ConfigError(f"{key}: cannot reach the folder {shown_path(path)}: {os_reason(exc)}") from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(f"{key}: not a directory: {shown_path(path)}")
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{key}: cannot resolve the folder {shown_path(path)}: {os_reason(exc)}") from None
    return Folder(
        path=str(resolved),
        account=folder.account,
        recursive=folder.recursive,
        polling=folder.polling,
        media=frozenset(folder.media),
        include=tuple(folder.include),
        exclude=tuple(folder.exclude),
        settle_seconds=folder.settle_seconds,
        done_dir=_resolve_move_dir(resolved, f"folders[{index}].done_dir", folder.done_dir),
        failed_dir=_resolve_move_dir(resolved, f"folders[{index}].failed_dir", folder.failed_dir),
    )


def _resolve_move_dir(folder: Path, key: str, value: str | None) -> str | None:
    """A done_dir/failed_dir as an absolute path, checked: a folder the agent can make, not the watched
    folder or above it, and on the folder's filesystem (moves are renames; see `watcher.mover`)."""
    if value is None:
        return None
    if "\0" in value:
        raise ConfigError(f"{key}: the path contains a NUL character")
    path = Path(os.path.normpath(folder / os.path.expanduser(value)))
    if path == folder or is_inside(str(folder), str(path)):
        raise ConfigError(f"{key}: {shown_path(path)} is the watched folder or above it; name a folder for "
                          "the moved files, e.g. done")  # fmt: skip
    existing = path
    try:
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"{key}: {shown_path(existing)} is not a directory")
        same_fs = existing.stat().st_dev == folder.stat().st_dev
    except OSError as exc:
        raise ConfigError(f"{key}: cannot reach {shown_path(path)}: {os_reason(exc)}") from None
    if not same_fs:
        raise ConfigError(
            f"{key}: {shown_path(path)} is on another filesystem than the folder {shown_path(folder)}; "
            "files are moved by renaming, which only works within one filesystem: choose a folder on the "
            "same one"
        )
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{key}: {shown_path(path)} does not exist and cannot be made in {shown_path(existing)}"
        )
    return str(path)


def _resolve_hooks(hooks: HooksSettings, env: Mapping[str, str] | None = None) -> HooksSettings:
    """`hooks` with each program as the absolute path that will run, checked to exist and be executable.

    A command name is looked up on $PATH now, once: the program checked is the program run, whatever
    the hook's environment says later, and a typo is a config error rather than a failure per event.
    """
    env = os.environ if env is None else env
    resolved: dict[str, list[str]] = {}
    for hook in HOOK_KEYS:
        argv = hooks.argv(hook)
        if argv is None:
            continue
        key, program = f"hooks.{hook}", argv[0]
        if "/" not in program:
            search = env.get("PATH", os.defpath)
            found = shutil.which(program, path=search)
            if found is None:
                raise ConfigError(
                    f"{key}: no program {_abbreviated(program)!r} on $PATH ({_abbreviated(search)}); "
                    "give its absolute path"
                )
            program = os.path.abspath(found)
        try:
            mode = os.stat(program).st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"{key}: the program does not exist: {shown_path(program)}") from None
        except OSError as exc:
            raise ConfigError(
                f"{key}: cannot reach the program {shown_path(program)}: {os_reason(exc)}"
            ) from None
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{key}: not a program (a regular file): {shown_path(program)}")
        if not os.access(program, os.X_OK):
            raise ConfigError(f"{key}: the program is not executable (chmod +x?): {shown_path(program)}")
        resolved[hook] = [program, *argv[1:]]
    return hooks.model_copy(update=resolved)


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


def os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def shown_path(path: Path | str) -> str:
    """A path as an error message shows it: a 5,000-character one would bury the message."""
    return _abbreviated(str(path))


def _abbreviated(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else f"{text[:200]}…{text[-80:]} ({len(text)} characters)"


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
        "metrics": {"listen": s.metrics.listen} if s.metrics.listen else "off",
        "hooks": (
            {
                **{hook: s.hooks.argv(hook) for hook in HOOK_KEYS if s.hooks.argv(hook)},
                "timeout_seconds": s.hooks.timeout_seconds,
            }
            if s.hooks.configured
            else "off"
        ),
        "folders": [
            {
                "path": f.path,
                "account": f.account,
                "recursive": f.recursive,
                "polling": f.polling,
                "media": sorted(f.media),
                "include": list(f.include),
                "exclude": list(f.exclude),
                "settle_seconds": f.settle_seconds if f.settle_seconds is not None else s.settle_seconds,
                "done_dir": f.done_dir,
                "failed_dir": f.failed_dir,
            }
            for f in config.folders
        ],
    }
