"""The steps of `service install` that are more than files: the token, check-config, systemd's side.

Also what the unit's ExecStart= will run (`installed_command`, `runtime_paths`), which must be where the
unit's sandbox lets the service see it.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import yaml

import watcher
from watcher.config.load import MAX_TOKEN_FILE_BYTES, TOKEN_ENV, ConfigError
from watcher.config.token import resolve_token
from watcher.service.plan import REAL_ROOT, ExistingFile, Host, Progress, Step
from watcher.service.units import (
    LIFECYCLE_KEYS,
    SERVICE_USER,
    TOKEN_FILE,
    UNIT_NAME,
    PlanError,
    refuse_hidden,
)

START_TIMEOUT = 330.0
CHECK_UNIT = "minimax-watcher-check-config"
# Exit statuses of a transient check-config, and what they mean for the service.
CHECK_FAILURES = {
    78: "the agent refuses the config",
    203: "systemd cannot execute the command as the service user",
    217: f"the user {SERVICE_USER} does not exist",
    226: "systemd cannot set up the sandbox (does every ReadWritePaths= folder exist?)",
    243: f"systemd cannot load {TOKEN_FILE} as the credential useapi-token",
}


# ---- what runs the service ------------------------------------------------------------------------------


def installed_command(argv0: str | None = None, executable: str | None = None) -> str:
    """The `minimax-watcher` script this process runs from: the one the unit's ExecStart= must name."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    candidates = [os.path.join(os.path.dirname(executable), "minimax-watcher")]
    if os.path.basename(argv0) == "minimax-watcher":
        candidates.insert(0, os.path.abspath(argv0))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.normpath(candidate)
    raise PlanError(
        f"cannot find the installed minimax-watcher command (looked for {' and '.join(candidates)}); "
        "run service install as /path/to/venv/bin/minimax-watcher"
    )


def runtime_paths(command: str) -> list[tuple[str, list[str]]]:
    """What the service will run, each under every name it is reached by (links resolved)."""

    def names(path: str) -> list[str]:
        return list(dict.fromkeys([os.path.normpath(path), os.path.realpath(path)]))

    found = [("the minimax-watcher command", names(command))]
    try:
        with open(command, "rb") as f:
            first = f.readline(4096).decode("utf-8", "replace")
    except OSError:
        first = ""
    interpreter = first[2:].strip().split(" ")[0] if first.startswith("#!") else ""
    if interpreter.startswith("/") and os.path.basename(interpreter) != "env":
        found.append(("the Python it runs on", names(interpreter)))
    found.append(("the Python running this command", names(sys.executable)))
    found.append(("the installed watcher package", names(os.path.dirname(watcher.__file__))))
    found.append(("Python's standard library", names(os.path.dirname(os.__file__))))
    return found


def refuse_hidden_runtime(runtime: Sequence[tuple[str, list[str]]]) -> None:
    for what, paths in runtime:
        try:
            refuse_hidden(what, paths)
        except PlanError as exc:
            raise PlanError(
                f"{exc}, so it could not start.\n"
                "Install minimax-watcher in a venv the service can see, made with the system's Python, "
                "and run service install from there:\n"
                "  /usr/bin/python3 -m venv /opt/minimax-watcher\n"
                "  /opt/minimax-watcher/bin/pip install minimax-watcher   # or the path of a checkout\n"
                "  /opt/minimax-watcher/bin/minimax-watcher service install"
            ) from None


# ---- the token ------------------------------------------------------------------------------------------


def token_source(stdin: TextIO) -> str:
    return "systemd-ask-password" if stdin.isatty() else "standard input"


def read_token(stdin: TextIO) -> str:
    """The token, from the terminal without echo or from stdin; never from argv or the environment."""
    source = token_source(stdin)
    if stdin.isatty():
        if shutil.which("systemd-ask-password"):
            result = subprocess.run(
                ["systemd-ask-password", "--timeout=0", "useapi.net token (user:...):"],
                stdout=subprocess.PIPE,
                text=True,
            )
            if result.returncode != 0:
                raise PlanError("no token was entered")
            text = result.stdout
        else:
            text = getpass.getpass("useapi.net token (user:...): ")
    else:
        text = stdin.read(MAX_TOKEN_FILE_BYTES + 1)
    if len(text) > MAX_TOKEN_FILE_BYTES:
        raise PlanError(f"the token on {source} is larger than {MAX_TOKEN_FILE_BYTES >> 10} KiB")
    try:
        # The agent's own check of a token, which also registers it for redaction.
        token = resolve_token(None, env={TOKEN_ENV: text})
    except ConfigError as exc:
        raise PlanError(
            str(exc).replace(f"environment variable {TOKEN_ENV}", f"the token from {source}")
        ) from None
    if token is None:
        raise PlanError(
            f"no token on {source}; pipe it in (`service install < token-file`) or run on a terminal"
        )
    return token.value


class TokenFile(ExistingFile):
    """The token, root-only (0600), where the unit's LoadCredential= reads it; asked for if absent."""

    def __init__(self, ask: Callable[[], str], source: str) -> None:
        super().__init__(
            title=f"token {TOKEN_FILE}",
            path=TOKEN_FILE,
            mode=0o600,
            owner="root",
            group="root",
            create=self._line,
            create_text=f"store the token read from {source}",
            restarts=True,
        )
        self._ask = ask
        self._value: str | None = None

    def _line(self) -> str:
        if self._value is None:
            self._value = self._ask()
        return self._value + "\n"

    def _blank(self, host: Host) -> bool:
        try:
            text = host.read(self.path)
        except PermissionError:
            return False
        return text is not None and not text.decode(errors="replace").strip()

    def prepare(self, host: Host, progress: Progress) -> None:
        if host.look(self.path) is None or self._blank(host):
            self._line()

    def pending(self, host: Host, progress: Progress) -> str | None:
        if self._blank(host):
            return f"{self.create_text} (the file is empty)"
        return super().pending(host, progress)

    def apply(self, host: Host, progress: Progress) -> str | None:
        if self._blank(host):
            with host.place(self.path, create=False) as (folder, name, _):
                os.unlink(name, dir_fd=folder)
        return super().apply(host, progress)


# ---- systemd --------------------------------------------------------------------------------------------


def unit_state(host: Host, *properties: str) -> dict[str, str]:
    """Properties of the unit as systemd has it now (a unit it does not know is inactive)."""
    result = host.run(["systemctl", "show", *(f"--property={p}" for p in properties), UNIT_NAME])
    if result.returncode != 0:
        # Typically "System has not been booted with systemd": nothing here could run the service.
        raise PlanError(f"cannot ask systemd about {UNIT_NAME}: {result.stderr.strip()}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def systemd_missing(host: Host) -> str | None:
    """Why this machine cannot run the service under systemd (no systemctl, or systemd not running:
    a container, another init), or None; checked before anything changes, not at its first command."""
    if host.root != REAL_ROOT:
        return None  # a temporary root: its systemd steps are left out anyway
    if shutil.which("systemctl") is None:
        return "no systemctl on $PATH"
    if not os.path.isdir("/run/systemd/system"):  # sd_booted(): systemd is not the init here
        return "systemd is not running on this machine (no /run/systemd/system)"
    return None


def is_enabled(host: Host) -> bool:
    return host.run(["systemctl", "is-enabled", UNIT_NAME]).stdout.strip() == "enabled"


class CheckConfig(Step):
    """check-config as a transient unit with the service's user, groups, sandbox and credential."""

    is_check = True

    def __init__(self, command: str, config: str, settings: list[tuple[str, str]]) -> None:
        self.title = "check-config as the service"
        self.command, self.config, self.settings = command, config, settings

    def pending(self, host: Host, progress: Progress) -> str | None:
        return (
            f"run `{self.command} check-config` as {SERVICE_USER}, in the unit's sandbox, with its credential"
        )

    def apply(self, host: Host, progress: Progress) -> str | None:
        properties = [
            f"{key}={value.replace('%%', '%')}" for key, value in self.settings if key not in LIFECYCLE_KEYS
        ]
        args = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", f"--unit={CHECK_UNIT}"]
        args += ["--service-type=exec", "--property=WorkingDirectory=/"]
        args += [f"--property={p}" for p in properties]
        # --strict: the hook programs too, found as the service will look for them.
        args += ["--", self.command, "check-config", "--strict", "--config", self.config]
        result = host.run(args)
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            meaning = CHECK_FAILURES.get(result.returncode, "it failed")
            raise PlanError(
                f"check-config, run as the service would run, exited with {result.returncode}: {meaning}"
                + (f"\n{output}" if output else "")
                + f"\n(systemd's side of it: journalctl -u {CHECK_UNIT})"
            )
        try:
            token = yaml.safe_load(result.stdout)["api"]["token"]
        except (yaml.YAMLError, TypeError, KeyError):
            raise PlanError(
                f"check-config, run as the service would run, printed what it should not:\n{output}"
            ) from None
        if "credential" not in str(token):
            raise PlanError(
                f"check-config, run as the service would run, finds no token from the credential: {token}"
            )
        return f"ok (token {token})"


def needs_daemon_reload(host: Host, progress: Progress) -> str | None:
    if progress.units_changed:
        return "the unit files changed"
    state = unit_state(host, "NeedDaemonReload")
    return "systemd has not read the current unit files" if state.get("NeedDaemonReload") == "yes" else None


class StartService(Step):
    """The service active (READY=1 received), restarted if what it runs with has changed."""

    def __init__(self, timeout: float = START_TIMEOUT) -> None:
        self.title = UNIT_NAME
        self.timeout = timeout

    def pending(self, host: Host, progress: Progress) -> str | None:
        active = unit_state(host, "ActiveState")["ActiveState"] == "active"
        if active and not progress.restart_needed:
            return None
        verb = "restart it (what it runs with changed)" if active else "start it"
        return f"{verb}, and wait for READY=1 (the first scan of every folder)"

    def apply(self, host: Host, progress: Progress) -> str | None:
        verb = "restart" if unit_state(host, "ActiveState")["ActiveState"] == "active" else "start"
        since = int(time.time()) - 1
        host.run(["systemctl", "reset-failed", UNIT_NAME])
        try:
            result = host.run(["systemctl", verb, UNIT_NAME], timeout=self.timeout)
            failed = result.returncode != 0
        except PlanError:
            failed = True
        state = unit_state(host, "ActiveState", "SubState", "Result", "StatusText")
        if failed or state["ActiveState"] != "active":
            journal = host.run(["journalctl", "--no-pager", "-q", "-u", UNIT_NAME, f"--since=@{since}"])
            raise PlanError(
                f"{UNIT_NAME} did not start: {state['ActiveState']} ({state['SubState']}, result "
                f"{state['Result']}). Its journal since the {verb}:\n{journal.stdout.rstrip()}"
            )
        return f"active: {state['StatusText']}"
