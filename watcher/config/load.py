"""Loading the YAML config: resolving its folders and programs, with errors that name the key.

Every problem raises `ConfigError` (exit 78; a running agent refuses the reload and keeps its config), and
no other exception leaves `load_config`, whatever the input. See docs/architecture.md, 'Config and service'.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from pydantic import ValidationError

from watcher.config.generate import GenerateSettings
from watcher.config.schema import (
    DEFAULT_BASE_URL,
    HOOK_KEYS,
    ApiSettings,
    ConfigError,
    FolderSettings,
    HooksSettings,
    Listen,
    MediaKind,
    MetricsSettings,
    Settings,
    abbreviated,
    parse_listen,
)
from watcher.config.yaml_words import Yaml11Word, safe_load
from watcher.core.folders import Folder, is_inside
from watcher.core.video import VideoSettings, canonical_json

__all__ = [
    "DEFAULT_BASE_URL",
    "HOOK_KEYS",
    "ApiSettings",
    "Config",
    "ConfigError",
    "FolderSettings",
    "GenerateSettings",
    "HooksSettings",
    "Listen",
    "MediaKind",
    "MetricsSettings",
    "Settings",
    "load_config",
    "parse_listen",
]
from watcher.redact import register_secret

EX_CONFIG = 78
CONFIG_ENV = "MINIMAX_WATCHER_CONFIG"
TOKEN_ENV = "USEAPI_TOKEN"
CREDENTIAL_NAME = "useapi-token"
SYSTEM_CONFIG = Path("/etc/minimax-watcher/config.yaml")
# Far above any real config or token file; a path to /dev/zero or a disk image fails fast instead.
MAX_CONFIG_BYTES = 1 << 20
MAX_TOKEN_FILE_BYTES = 64 << 10


@dataclass(frozen=True)
class Config:
    source: Path
    settings: Settings
    folders: tuple[Folder, ...]
    # What only `run` and `scan` would refuse (a hook program not found), when loaded for reading.
    warnings: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return self.settings.api.base_url


def with_base_url(config: Config, base_url: str) -> Config:
    """The same config uploading to `base_url` (the built-in emulator's, for --emulate)."""
    api = config.settings.api.model_copy(update={"base_url": base_url})
    settings = config.settings.model_copy(update={"api": api})
    return Config(config.source, settings, config.folders, config.warnings)


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    local = Path("config.yaml")
    if os.path.exists(local):  # never raises: a working directory we cannot read just has no config
        return local
    return SYSTEM_CONFIG


def load_config(path: Path, *, for_reading: bool = False) -> Config:
    """Read, validate and resolve the config file at `path`; any problem is a `ConfigError`.

    `for_reading` (status, check-config, scan --dry-run, retry, upload: commands that run no hook):
    a hook program that cannot be found is a line in `Config.warnings`, not an error.
    """
    try:
        return _load_config(path, for_reading)
    except ConfigError:
        raise
    except Exception as exc:
        # The cases known to fail are named below; this keeps any other failure a refused config
        # (78 at start, the old config kept on reload) instead of a crash. The exception's text may
        # quote the file's content, so only its kind is told.
        raise ConfigError(f"{shown_path(path)}: cannot load the config ({type(exc).__name__})") from None


def _load_config(path: Path, for_reading: bool) -> Config:
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
        hooks, problems = _resolve_hooks(settings.hooks, base)
        problems += _hooks_where_droppers_write(hooks, folders)
        if problems and not for_reading:
            raise ConfigError(problems[0])
        settings = settings.model_copy(update={"hooks": hooks})
    except ConfigError as exc:
        raise ConfigError(f"{shown}: {exc}") from None
    warnings = tuple(f"{shown}: {p}; `run` and `scan` would refuse this config" for p in problems)
    return Config(source=path, settings=settings, folders=folders, warnings=warnings)


def _parse_yaml(text: str, shown: str) -> Any:
    try:
        return safe_load(text)
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
            message = "unknown key (check its spelling against docs/config.md or `minimax-watcher check-config --sample`)"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "bool_type" and isinstance(error.get("input"), Yaml11Word):
            message = f"{error['input']!r} is not a boolean in this config: write true or false"
        lines.append(f"{abbreviated(key) or '(top level)'}: {message}")
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
        generate=_resolve_generate(resolved, f"folders[{index}]", folder),
    )


def _resolve_generate(folder: Path, key: str, settings: FolderSettings) -> VideoSettings | None:
    generate: GenerateSettings | None = settings.generate
    if generate is None:
        return None
    if "image" not in settings.media:
        raise ConfigError(f"{key}.generate: videos are made from images; add image to {key}.media")
    output_dir = _resolve_dir(folder, f"{key}.generate.output_dir", generate.output_dir, same_fs=False)
    return VideoSettings(
        model=generate.model,
        output_dir=output_dir,
        prompt=generate.prompt,
        params_json=canonical_json(generate.params),
        max_jobs=generate.max_jobs,
        max_per_day=generate.max_per_day,
        poll_seconds=generate.poll_seconds,
        require_prompt_file=generate.require_prompt_file,
    )


def _resolve_move_dir(folder: Path, key: str, value: str | None) -> str | None:
    """A done_dir/failed_dir as an absolute path, checked: a folder the agent can make, not the watched
    folder or above it, and on the folder's filesystem (moves are renames; see `watcher.disk.mover`)."""
    if value is None:
        return None
    return _resolve_dir(folder, key, value, same_fs=True)


def _resolve_dir(folder: Path, key: str, value: str, *, same_fs: bool) -> str:
    """A folder the agent makes and writes below the watched `folder` (or elsewhere, absolute): never
    the folder itself or above it; on its filesystem when `same_fs` (the moves rename)."""
    if "\0" in value:
        raise ConfigError(f"{key}: the path contains a NUL character")
    path = Path(os.path.normpath(folder / os.path.expanduser(value)))
    if path == folder or is_inside(str(folder), str(path)):
        example = "videos" if key.endswith("output_dir") else "done"
        raise ConfigError(
            f"{key}: {shown_path(path)} is the watched folder or above it; name a folder of its own, "
            f"e.g. {example}"
        )
    existing = path
    try:
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"{key}: {shown_path(existing)} is not a directory")
        other_fs = existing.stat().st_dev != folder.stat().st_dev
    except OSError as exc:
        raise ConfigError(f"{key}: cannot reach {shown_path(path)}: {os_reason(exc)}") from None
    if same_fs and other_fs:
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


def _resolve_hooks(
    hooks: HooksSettings, base: Path, env: Mapping[str, str] | None = None
) -> tuple[HooksSettings, list[str]]:
    """`hooks` with each program as the absolute path that will run, and what is wrong with any of them
    (not found, not executable): such a hook is kept as written.

    A path with a slash is relative to the config file's folder `base`, as folders are; a command name
    (no slash) is looked up on $PATH now, once: the program checked is the program run, whatever the
    hook's environment says later, and a typo is a config error rather than a failure per event.
    """
    resolved: dict[str, list[str]] = {}
    problems = []
    for hook in HOOK_KEYS:
        argv = hooks.argv(hook)
        if argv is not None:
            try:
                resolved[hook] = [_hook_program(f"hooks.{hook}", argv[0], base, env), *argv[1:]]
            except ConfigError as exc:
                problems.append(str(exc))
    return hooks.model_copy(update=resolved), problems


def _hook_program(key: str, program: str, base: Path, env: Mapping[str, str] | None) -> str:
    """The absolute path of a hook's program, checked to be an executable regular file."""
    env = os.environ if env is None else env
    if "/" not in program:
        search = env.get("PATH", os.defpath)
        found = shutil.which(program, path=search)
        if found is None:
            raise ConfigError(
                f"{key}: no program {abbreviated(program)!r} on $PATH ({abbreviated(search)}); "
                "give its absolute path, or one relative to the config file's folder (./hooks/...)"
            )
        program = os.path.abspath(found)
    else:
        program = os.path.normpath(base / os.path.expanduser(program))
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
    return program


def _hooks_where_droppers_write(hooks: HooksSettings, folders: tuple[Folder, ...]) -> list[str]:
    """A hook program inside a watched folder (or a folder the agent moves dropped files to) can be
    replaced by any dropper, and would then run as the agent: each such hook is a problem."""
    problems = []
    for hook in HOOK_KEYS:
        argv = hooks.argv(hook)
        if argv is None or not os.path.isabs(argv[0]):
            continue  # not found: already a problem
        places = {argv[0], os.path.realpath(argv[0])}
        for folder in folders:
            roots = [folder.path, folder.done_dir, folder.failed_dir]
            roots += [folder.generate.output_dir] if folder.generate is not None else []
            inside = next(
                (
                    r
                    for r in roots
                    if r and any(is_inside(p, q) for p in places for q in (r, os.path.realpath(r)))
                ),
                None,
            )
            if inside is not None:
                problems.append(
                    f"hooks.{hook}: the program {shown_path(argv[0])} lies in {shown_path(inside)}, where "
                    "droppers write: any of them could replace it and it would run as the agent; move it out"
                )
                break
    return problems


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
    for i, a in enumerate(folders):
        for key, moved in (("done_dir", a.done_dir), ("failed_dir", a.failed_dir)):
            for j, b in enumerate(folders):
                if moved is not None and j != i and (moved == b.path or is_inside(moved, b.path)):
                    raise ConfigError(
                        f"folders[{i}].{key}: {moved} is inside folders[{j}].path {b.path}: files moved "
                        "there would be uploaded again from that folder"
                    )
        if a.generate is not None:
            _check_output_dir(folders, i, a.generate.output_dir)


def _check_output_dir(folders: tuple[Folder, ...], i: int, output: str) -> None:
    key = f"folders[{i}].generate.output_dir"
    for j, b in enumerate(folders):
        if j != i and (output == b.path or is_inside(output, b.path) or is_inside(b.path, output)):
            raise ConfigError(
                f"{key}: {shown_path(output)} overlaps folders[{j}].path {shown_path(b.path)}: the videos "
                "would be uploaded from that folder; choose a folder of their own"
            )
    for name, moved in (("done_dir", folders[i].done_dir), ("failed_dir", folders[i].failed_dir)):
        if moved is not None and (output == moved or is_inside(output, moved) or is_inside(moved, output)):
            raise ConfigError(
                f"{key}: {shown_path(output)} overlaps folders[{i}].{name} {shown_path(moved)}; keep the "
                "videos and the moved files in folders of their own"
            )


def os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def shown_path(path: Path | str) -> str:
    """A path as an error message shows it: a 5,000-character one would bury the message."""
    return abbreviated(str(path))


def open_secret_file(path: Path) -> BinaryIO:
    """A file that holds a secret (the token, the page's password), opened for reading. Only a regular
    file: a FIFO or a device planted at its name would block the start (OSError, said as the others)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file (a FIFO, a device or a folder)")
    return os.fdopen(fd, "rb")
