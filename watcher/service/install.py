"""`minimax-watcher service install` and `service uninstall`: the manual steps of docs/service.md as one command.

`plan_install` turns a config into the steps (`watcher.service.plan`) that leave a running, hardened
service, checking what can be checked before anything changes; `plan_uninstall` removes the unit and its
drop-in, and nothing else.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from watcher.config.load import EX_CONFIG, ConfigError, load_config
from watcher.config.sample import render_sample
from watcher.service.plan import (
    Command,
    Directory,
    EmptyDirectoryRemoved,
    ExistingFile,
    Host,
    InstalledFile,
    Progress,
    RemovedFile,
    Step,
    run_plan,
)
from watcher.service.steps import (
    CheckConfig,
    StartService,
    TokenFile,
    installed_command,
    is_enabled,
    needs_daemon_reload,
    read_token,
    refuse_hidden_runtime,
    runtime_paths,
    systemd_missing,
    token_source,
    unit_state,
)
from watcher.service.units import (
    CONFIG_DIR,
    DEFAULT_CONFIG,
    DROP_GROUP,
    DROPIN_DIR,
    DROPIN_PATH,
    SERVICE_USER,
    STATE_DIR,
    SYSUSERS_PATH,
    TOKEN_FILE,
    UNIT_NAME,
    UNIT_PATH,
    ConfigFolders,
    PlanError,
    config_folders,
    dropin_values,
    refuse_hidden,
    render_dropin,
    service_settings,
    shipped_file,
)

# ---- the plans ------------------------------------------------------------------------------------------


def plan_install(
    host: Host,
    *,
    config: str | None,
    command: str,
    runtime: Sequence[tuple[str, list[str]]],
    ask_token: Callable[[], str],
    token_from: str,
    systemd: bool = True,
) -> tuple[list[Step], ConfigFolders]:
    """The steps of `service install`, after checking everything that can be checked without changes.

    Without a config, the steps end once the sample is written: no drop folder, token or unit before
    someone has edited it. `systemd=False` leaves out the steps that talk to systemd (for the unit
    tests' temporary roots, and a dry run on a machine without systemd).
    """
    refuse_hidden_runtime(runtime)
    config_path = posixpath.normpath(config or DEFAULT_CONFIG)
    refuse_hidden("the config", [config_path, host.resolve(config_path)])
    sample = host.look(config_path) is None  # a link, or a folder others could swap it in, is refused
    if sample and config is not None:
        raise PlanError(f"{config_path}: config file not found (leave --config out to start from a sample)")
    text = render_sample() if sample else _read_config(host, config_path)
    folders = _folders(host, config_path, text)
    for folder in folders.writable:
        refuse_hidden("a folder of the config", [folder, host.resolve(folder)])
    unit = shipped_file(UNIT_NAME)
    dropin = render_dropin(command, config_path, folders.writable)
    steps: list[Step] = [
        InstalledFile(f"sysusers.d {SYSUSERS_PATH}", SYSUSERS_PATH, shipped_file("sysusers.conf")),
        Command(
            f"user {SERVICE_USER}, group {DROP_GROUP}",
            ["systemd-sysusers", *_root_option(host), str(host.at(SYSUSERS_PATH))],
            needed=_missing_accounts,
        ),
        Directory(f"config folder {CONFIG_DIR}", CONFIG_DIR, create_mode=0o755),
        ExistingFile(
            f"config {config_path}",
            config_path,
            mode=0o640,
            owner="root",
            group=SERVICE_USER,
            create=render_sample if sample else None,
            create_text="write a commented sample (edit its folders, then run service install again)",
        ),
    ]
    if sample:
        return steps, folders  # its folders are examples: nothing is made for them, nothing started
    steps += [
        TokenFile(ask_token, token_from),
        *(
            Directory(f"folder {path}", path, create_mode=0o2775, required=0o2070, group=DROP_GROUP)
            for path in folders.writable
        ),
        Directory(
            f"state folder {STATE_DIR}", STATE_DIR, create_mode=0o700, owner=SERVICE_USER, group=SERVICE_USER
        ),
        InstalledFile(f"unit {UNIT_PATH}", UNIT_PATH, unit, units=True, restarts=True),
        InstalledFile(
            f"drop-in {DROPIN_PATH}",
            DROPIN_PATH,
            dropin,
            units=True,
            restarts=True,
            differs="the folders or the command changed",
        ),
    ]
    if systemd:
        steps += [
            CheckConfig(command, config_path, service_settings(unit, *_dropins(host, dropin))),
            Command("daemon-reload", ["systemctl", "daemon-reload"], needed=needs_daemon_reload),
            Command("enabled at boot", ["systemctl", "enable", UNIT_NAME], needed=_needs_enable),
            StartService(),
        ]
    return steps, folders


def _dropins(host: Host, ours: str) -> list[str]:
    """The unit's drop-ins in /etc as systemd will read them, in order, ours as it is about to be."""
    folder = host.at(DROPIN_DIR)
    names = {posixpath.basename(DROPIN_PATH)}
    if folder.is_dir():
        names |= {p.name for p in folder.iterdir() if p.name.endswith(".conf")}
    return [
        ours if name == posixpath.basename(DROPIN_PATH) else (folder / name).read_text()
        for name in sorted(names)
    ]


def _read_config(host: Host, path: str) -> str:
    try:
        return (host.read(path) or b"").decode("utf-8")
    except (OSError, UnicodeDecodeError):
        _refused_config(host, path)
        raise


def _folders(host: Host, config_path: str, text: str) -> ConfigFolders:
    try:
        return config_folders(text, posixpath.dirname(host.resolve(config_path)))
    except PlanError:
        raise
    except Exception:  # the same checks as the agent's: let load_config say what is wrong, its way
        _refused_config(host, config_path)
        raise PlanError(f"{config_path}: the config is refused") from None


def _refused_config(host: Host, path: str) -> None:
    try:
        load_config(host.at(path))
    except ConfigError as exc:
        raise PlanError(f"the agent would refuse the config: {exc}") from None


def _root_option(host: Host) -> list[str]:
    return [] if host.root == Path("/") else [f"--root={host.root}"]


def _missing_accounts(host: Host, progress: Progress) -> str | None:
    missing = [f"user {SERVICE_USER}"] if host.uid(SERVICE_USER) is None else []
    missing += [f"group {g}" for g in (SERVICE_USER, DROP_GROUP) if host.gid(g) is None]
    return f"to create {', '.join(missing)}" if missing else None


def _needs_enable(host: Host, progress: Progress) -> str | None:
    return None if is_enabled(host) else "to start it at boot"


def plan_uninstall(host: Host, *, systemd: bool = True) -> list[Step]:
    def needs_stop(host: Host, progress: Progress) -> str | None:
        active = unit_state(host, "ActiveState")["ActiveState"]
        if active in ("active", "activating", "reloading") or is_enabled(host):
            return "to stop it, and keep it from starting at boot"
        return None

    def failed(host: Host, progress: Progress) -> str | None:
        return "to forget its failure" if unit_state(host, "ActiveState")["ActiveState"] == "failed" else None

    files: list[Step] = [
        RemovedFile(f"drop-in {DROPIN_PATH}", DROPIN_PATH),
        EmptyDirectoryRemoved(
            f"drop-in folder {DROPIN_DIR}", DROPIN_DIR, leaving=posixpath.basename(DROPIN_PATH)
        ),
        RemovedFile(f"unit {UNIT_PATH}", UNIT_PATH),
    ]
    if not systemd:  # nothing runs it: the unit's files are all there is to remove
        return files
    return [
        Command(UNIT_NAME, ["systemctl", "disable", "--now", UNIT_NAME], needed=needs_stop),
        Command("failed state", ["systemctl", "reset-failed", UNIT_NAME], needed=failed),
        *files,
        Command("daemon-reload", ["systemctl", "daemon-reload"], needed=needs_daemon_reload),
    ]


# ---- the commands ---------------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`service install` and `service uninstall`, for watcher.cli.main."""
    service = commands.add_parser("service", help="install or uninstall the systemd service (as root)")
    service_actions = service.add_subparsers(dest="service_action", required=True, metavar="ACTION")
    install_parser = service_actions.add_parser(
        "install",
        help="user, group, folders, token, unit and drop-in, then enable --now and wait for READY "
        "(idempotent: run it again after adding a folder)",
    )
    install_parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="the config the service runs with (default /etc/minimax-watcher/config.yaml; if it does not "
        "exist, a commented sample is written there and install stops, exit 78, for you to edit it)",
    )
    uninstall_parser = service_actions.add_parser(
        "uninstall", help="stop and remove the unit and drop-in; keep config, token, folders and sidecars"
    )
    for action in (install_parser, uninstall_parser):
        action.add_argument("--dry-run", action="store_true", help="print every action and change nothing")


def install(config: Path | None, *, dry_run: bool, host: Host | None = None, out: TextIO = sys.stdout) -> int:
    host = host or Host()
    try:
        _require_root(dry_run, "install")
        command = installed_command()
        config_text = os.path.abspath(config) if config is not None else None
        no_systemd = systemd_missing(host)
        if no_systemd is not None and not dry_run:
            raise PlanError(
                f"{no_systemd}: the service needs systemd; nothing was changed (--dry-run shows the plan)"
            )
        steps, folders = plan_install(
            host,
            config=config_text,
            command=command,
            runtime=runtime_paths(command),
            ask_token=lambda: read_token(sys.stdin),
            token_from=token_source(sys.stdin),
            systemd=no_systemd is None,
        )
        config_path = config_text or DEFAULT_CONFIG
        sample = host.look(config_path) is None
        print(f"{'Dry run of ' if dry_run else ''}service install: {command}, config {config_path}", file=out)
        progress = run_plan(steps, host, dry_run=dry_run, out=out)
    except (PlanError, OSError) as exc:
        print(f"service install: {exc}", file=sys.stderr)
        return 1
    if sample:
        return _edit_the_sample(config_path, dry_run, out)
    if dry_run:
        print("Dry run: nothing was changed.", file=out)
        if no_systemd is not None:
            print(
                f"Without systemd here ({no_systemd}), the steps that need it are left out (check-config as "
                "the service, daemon-reload, enable, start), and service install itself would refuse to run.",
                file=out,
            )
        return 0
    if progress.changes == 0:
        print("Everything was already in place: nothing changed.", file=out)
    status = host.run(["systemctl", "status", "--no-pager", "--full", "--lines=0", UNIT_NAME])
    print(f"\n{status.stdout.rstrip()}\n", file=out)
    first = folders.folders[0]
    print(
        f"Drop a first image and read its sidecar:\n"
        f"  cp picture.png {first}/ && sleep 3 && cat {first}/picture.png.json\n"
        f"Whoever drops images needs the group {DROP_GROUP}: usermod -aG {DROP_GROUP} NAME\n"
        f"After adding a folder to the config, run service install again (it updates ReadWritePaths=);\n"
        f"after any other change, systemctl reload {UNIT_NAME.removesuffix('.service')}.",
        file=out,
    )
    return 0


def _edit_the_sample(config_path: str, dry_run: bool, out: TextIO) -> int:
    """No config was there: stop once the sample is written, and say what to edit. EX_CONFIG: the
    service is not installed yet, which a script running this must not take for success."""
    what = (
        f"any drop folder, token or service: edit {config_path} first, its `folders:` (the drop folders, "
        "each with its account; the token stays out of it: the next run asks for it, or reads it from "
        f"standard input). Then run again: {installed_command()} service install"
    )
    if dry_run:
        print(
            f"Dry run: nothing was changed. service install would write the sample and stop before {what}",
            file=out,
        )
    else:
        print(f"Stopped before {what}", file=out)
    return EX_CONFIG


def uninstall(*, dry_run: bool, host: Host | None = None, out: TextIO = sys.stdout) -> int:
    host = host or Host()
    try:
        _require_root(dry_run, "uninstall")
        try:
            dropin = host.at(DROPIN_PATH).read_text()
        except FileNotFoundError:
            dropin = ""
        others = EmptyDirectoryRemoved("", DROPIN_DIR, posixpath.basename(DROPIN_PATH)).others(host)
        no_systemd = systemd_missing(host)
        print(f"{'Dry run of ' if dry_run else ''}service uninstall", file=out)
        if no_systemd is not None:
            print(f"Without systemd here ({no_systemd}): nothing to stop; only the unit's files", file=out)
        run_plan(plan_uninstall(host, systemd=no_systemd is None), host, dry_run=dry_run, out=out)
    except (PlanError, OSError) as exc:
        print(f"service uninstall: {exc}", file=sys.stderr)
        return 1
    exec_start = dropin_values(dropin, "ExecStart")
    config = exec_start[exec_start.index("--config") + 1] if "--config" in exec_start else DEFAULT_CONFIG
    kept = [f"the config {config}", f"the token {TOKEN_FILE}"]
    kept += [f"the folder {f}, its images and sidecars" for f in dropin_values(dropin, "ReadWritePaths")]
    kept += [f"the state folder {STATE_DIR}", f"the user {SERVICE_USER} and the group {DROP_GROUP}"]
    kept += [f"the drop-in {DROPIN_DIR}/{name}, which is not service install's" for name in others]
    print(("Would keep" if dry_run else "Kept") + ":\n" + "".join(f"  {k}\n" for k in kept), end="", file=out)
    return 0


def _require_root(dry_run: bool, action: str) -> None:
    if os.geteuid() != 0 and not dry_run:
        raise PlanError(f"must run as root (sudo {installed_command()} service {action}); --dry-run need not")
