"""What `service install` puts where, in systemd's own syntax, and what the unit's sandbox lets it see.

The shipped files are package data in `watcher/service/files/`; `systemd/` holds the same files for
installs by hand (a unit test keeps the two identical).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import ValidationError

from watcher.config import yaml_words
from watcher.config.load import MAX_CONFIG_BYTES, Settings
from watcher.core.folders import is_inside

UNIT_NAME = "minimax-watcher.service"
SERVICE_USER = "minimax-watcher"
DROP_GROUP = "minimax-drop"
CONFIG_DIR = "/etc/minimax-watcher"
DEFAULT_CONFIG = "/etc/minimax-watcher/config.yaml"
TOKEN_FILE = "/etc/minimax-watcher/token"  # the shipped unit's LoadCredential= names this file
STATE_DIR = "/var/lib/minimax-watcher"  # the shipped unit's StateDirectory=
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
# Sorts before `override.conf`, which `systemctl edit` writes: a site's own changes come after ours.
DROPIN_DIR = f"/etc/systemd/system/{UNIT_NAME}.d"
DROPIN_PATH = f"{DROPIN_DIR}/10-service-install.conf"
SYSUSERS_PATH = "/etc/sysusers.d/minimax-watcher.conf"

# What the shipped unit hides from the service, and which of its lines does it.
HIDDEN = {
    "/root": "ProtectHome=yes",
    "/home": "ProtectHome=yes",
    "/run/user": "ProtectHome=yes",
    "/tmp": "PrivateTmp=yes",
    "/var/tmp": "PrivateTmp=yes",
}
# [Service] lines about the service's life rather than what its processes see: left out when
# check-config runs as a transient unit with the service's sandbox.
LIFECYCLE_KEYS = frozenset(
    {
        "Type",
        "NotifyAccess",
        "ExecCondition",
        "ExecStartPre",
        "ExecStart",
        "ExecStartPost",
        "ExecReload",
        "ExecStop",
        "ExecStopPost",
        "Restart",
        "RestartSec",
        "RestartPreventExitStatus",
        "TimeoutStartSec",
        "TimeoutStopSec",
        "WatchdogSec",
    }
)


class PlanError(Exception):
    """The installation cannot go ahead as asked; the message says why and what to do."""


def shipped_file(name: str) -> str:
    """One of the files in watcher/service/files/, as text."""
    return resources.files("watcher.service").joinpath("files", name).read_text(encoding="utf-8")


# ---- what the sandbox hides -----------------------------------------------------------------------------


def hidden_by_sandbox(path: str) -> str | None:
    """Why the service cannot see `path` (an absolute, normalised path), or None if it can."""
    for prefix, directive in HIDDEN.items():
        if path == prefix or is_inside(path, prefix):
            return f"the unit's {directive} hides {prefix} from the service"
    return None


def refuse_hidden(what: str, paths: Iterable[str]) -> None:
    """PlanError if the service could not see one of `paths` (the same thing under several names)."""
    named = list(paths)
    for path in named:
        reason = hidden_by_sandbox(path)
        if reason is not None:
            shown = path if path == named[0] else f"{named[0]}, which is {path}"
            raise PlanError(f"{what} is {shown}, and {reason}")


# ---- unit-file syntax -----------------------------------------------------------------------------------


def unit_word(text: str, *, in_command: bool) -> str:
    """`text` as one word of a unit-file value: quoted if it holds blanks or quotes, `%` (and `$` in
    a command line, which systemd would expand) doubled. Control characters cannot be written."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise PlanError(f"{text!r} holds a control character, which a unit file cannot hold")
    word = text.replace("%", "%%")
    if in_command:
        word = word.replace("$", "$$")
    if not word or any(c in word for c in " \t\"'\\;"):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def render_dropin(command: str, config: str, writable: Sequence[str]) -> str:
    """The drop-in `service install` writes: ExecStart= at this command and this config, and
    ReadWritePaths= exactly the config's folders (the shipped /srv/drop cleared first)."""
    exec_line = " ".join(unit_word(w, in_command=True) for w in (command, "run", "--config", config))
    lines = [
        "# Written by `minimax-watcher service install`, which rewrites it: run it again after changing the",
        "# config's folders. Your own changes go in another drop-in (`systemctl edit minimax-watcher`).",
        "[Service]",
        "ExecStart=",
        f"ExecStart={exec_line}",
        "# The config's folders: the only places, besides its state folder, where the service may write.",
        "ReadWritePaths=",
        *(f"ReadWritePaths={unit_word(path, in_command=False)}" for path in writable),
    ]
    return "\n".join(lines) + "\n"


def service_settings(*unit_texts: str) -> list[tuple[str, str]]:
    """The [Service] lines of a unit and its drop-ins, in order (empty assignments included)."""
    settings: list[tuple[str, str]] = []
    for text in unit_texts:
        section = ""
        logical = ""
        for raw in text.splitlines():
            line = logical + raw.strip()
            if line.endswith("\\"):
                logical = line[:-1] + " "
                continue
            logical = ""
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif section == "Service" and "=" in line:
                key, value = line.split("=", 1)
                settings.append((key.strip(), value.strip()))
    return settings


def dropin_values(text: str, key: str) -> list[str]:
    """The words assigned to `key` in a drop-in this module wrote (for `uninstall` to say what it keeps)."""
    words: list[str] = []
    for found, value in service_settings(text):
        if found == key:
            words = [] if not value else [*words, *_unit_words(value)]
    return words


def _unit_words(value: str) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = started = False
    for c in value:
        if escaped:
            current.append(c)
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
        elif c == '"':
            quoted, started = not quoted, True
        elif c in " \t" and not quoted:
            if started:
                words.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
            started = True
    if started:
        words.append("".join(current))
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


# ---- the config's folders -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigFolders:
    """What the installation needs from a config: the folders it names, and the folders written into."""

    folders: tuple[str, ...]  # to create (group minimax-drop, setgid, group-writable)
    writable: tuple[str, ...]  # ReadWritePaths=: the folders, and done_dir/failed_dir outside them


def config_folders(text: str, config_dir: str) -> ConfigFolders:
    """The folders a config names, as absolute normalised paths, without requiring that they exist.

    `load_config` insists that every folder exists, which the installation is about to make true; this
    reads the same schema, and raises ValueError (with the schema's complaint) for a config it refuses.
    A relative path is relative to the config's folder (`config_dir`), as for the agent.
    """
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ValueError("larger than the agent reads")
    raw = yaml_words.safe_load(text)  # the YAML the agent reads
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    if settings.api.token or settings.api.token_file:
        raise PlanError(
            "the config sets api.token or api.token_file; the service takes the token as the systemd "
            f"credential useapi-token (from {TOKEN_FILE}), and the agent would look at the config's "
            "first. Remove that key, then run service install again (it asks for the token)"
        )
    folders: list[str] = []
    writable: list[str] = []
    for entry in raw["folders"]:
        folder = _absolute(entry["path"], config_dir)
        folders.append(folder)
        writable.append(folder)
        for key in ("done_dir", "failed_dir"):
            value: Any = entry.get(key)
            if isinstance(value, str) and value:
                target = _absolute(value, folder)
                if not is_inside(target, folder) and target not in writable:
                    writable.append(target)
    for i, a in enumerate(folders):
        for b in folders[:i]:
            if a == b or is_inside(a, b) or is_inside(b, a):
                raise PlanError(
                    f"the config lists {b} and {a}: the same folder twice, or one inside the other"
                )
    return ConfigFolders(tuple(folders), tuple(writable))


def _absolute(path: str, base: str) -> str:
    if "\0" in path:
        raise PlanError("a folder's path in the config contains a NUL character")
    expanded = os.path.expanduser(path)
    return posixpath.normpath(posixpath.join(base, expanded))
