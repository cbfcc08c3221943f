"""The plan of `service install`/`uninstall` as data: a list of steps, each knowing whether it is done.

`run_plan` applies them in order, so a second run changes nothing and a dry run touches nothing. Steps
reach the machine through `Host`, rooted at `/` (a temporary folder in the unit tests).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from watcher.service import paths as service_paths
from watcher.service.paths import entry, open_file, open_folder, refused_links
from watcher.service.units import PlanError

REAL_ROOT = Path("/")


@dataclass(frozen=True)
class Host:
    """The machine the service is installed on: its files below `root`, its users, its commands."""

    root: Path = REAL_ROOT

    def at(self, path: str) -> Path:
        """Where `path` (a path on the installed machine) is, for this process."""
        return Path(path) if self.root == REAL_ROOT else self.root / path.lstrip("/")

    def resolve(self, path: str) -> str:
        """`path` with its symlinks resolved, as the installed machine sees it."""
        if self.root == REAL_ROOT:
            return os.path.realpath(path)
        root = os.path.realpath(self.root)
        real = os.path.realpath(self.at(path))
        if real != root and not real.startswith(root + "/"):
            return os.path.normpath(path)
        return "/" + os.path.relpath(real, root).removeprefix(".")

    def look(self, path: str, *, link_ok: bool = False) -> os.stat_result | None:
        """The stat of `path`, reached without following a link (`service_paths.look`); None: absent."""
        return service_paths.look(str(self.root), path, self.owner_text, link_ok=link_ok)

    def read(self, path: str) -> bytes | None:
        return service_paths.read_file(str(self.root), path, self.owner_text)

    @contextmanager
    def place(
        self, path: str, *, create: bool = True, link_ok: bool = False
    ) -> Iterator[tuple[int, str, os.stat_result | None]]:
        """For a change to `path`: its folder's descriptor (made, with the folders on the way, if missing
        and `create`), its name there and its stat (None: absent), every component checked as `look` does.
        """
        root, names = str(self.root), self.owner_text
        with refused_links(path), service_paths.parent_of(root, path, names, create=create) as found:
            if found is None:
                raise FileNotFoundError(errno.ENOENT, "a folder on the way does not exist", path)
            yield *found, entry(*found, path, path, names, link_ok=link_ok)

    def listdir(self, path: str) -> list[str]:
        """The names in the folder `path`, reached as `look` does; [] when it does not exist."""
        st = self.look(path)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return []
        with self.place(path, create=False) as (folder, name, _):
            fd = open_folder(folder, name, path)
            try:
                return os.listdir(fd)
            finally:
                os.close(fd)

    def uid(self, user: str) -> int | None:
        if self.root == REAL_ROOT:
            try:
                return pwd.getpwnam(user).pw_uid
            except KeyError:
                return None
        return self._lookup("/etc/passwd", user)

    def gid(self, group: str) -> int | None:
        if self.root == REAL_ROOT:
            try:
                return grp.getgrnam(group).gr_gid
            except KeyError:
                return None
        return self._lookup("/etc/group", group)

    def _lookup(self, database: str, name: str) -> int | None:
        try:
            lines = self.at(database).read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name:
                return int(fields[2])
        return None

    def owner_text(self, st: os.stat_result) -> str:
        return f"{self._name('/etc/passwd', st.st_uid)}:{self._name('/etc/group', st.st_gid)}"

    def _name(self, database: str, number: int) -> str:
        try:
            if self.root == REAL_ROOT:
                return (
                    pwd.getpwuid(number).pw_name
                    if database == "/etc/passwd"
                    else grp.getgrgid(number).gr_name
                )
            for line in self.at(database).read_text().splitlines():
                fields = line.split(":")
                if len(fields) > 2 and fields[2] == str(number):
                    return fields[0]
        except (KeyError, OSError):
            pass
        return str(number)

    def run(
        self, args: Sequence[str], *, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """A command, its output captured; never with a secret among `args` (argv is public)."""
        try:
            return subprocess.run(
                list(args),
                input=input,
                stdin=subprocess.DEVNULL if input is None else None,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except FileNotFoundError:
            raise PlanError(f"{args[0]} is not installed; service install needs systemd") from None
        except subprocess.TimeoutExpired:
            raise PlanError(f"`{' '.join(args)}` did not finish in {timeout:.0f} s") from None


@dataclass
class Progress:
    """What the steps so far changed (or would change), which later steps depend on."""

    dry_run: bool
    changes: int = 0
    units_changed: bool = False  # systemd must re-read its unit files
    restart_needed: bool = False  # a running service must restart to see the change


class Step:
    """One thing the installed service needs (or, for uninstall, must not find)."""

    title: str  # what the output names it by
    units: bool = False  # a change here is to unit files: daemon-reload
    restarts: bool = False  # a change here reaches the service only at its next start
    is_check: bool = False  # looks, changes nothing: always runs (except in a dry run), never "unchanged"

    def check(self, host: Host) -> None:
        """PlanError for what must not be done at all; run for every step before anything changes,
        and in a dry run too."""

    def prepare(self, host: Host, progress: Progress) -> None:
        """Gather input before anything is changed (the token), so a refusal leaves the machine as it was."""

    def pending(self, host: Host, progress: Progress) -> str | None:
        """What `apply` would do, or None when it is already so."""
        raise NotImplementedError

    def apply(self, host: Host, progress: Progress) -> str | None:
        """Do it; raise PlanError if it cannot be done. What it returns is printed after the change."""
        raise NotImplementedError


def run_plan(steps: Sequence[Step], host: Host, *, dry_run: bool, out: TextIO) -> Progress:
    progress = Progress(dry_run)
    for step in steps:
        step.check(host)
    if not dry_run:
        for step in steps:
            step.prepare(host, progress)
    for step in steps:
        change = step.pending(host, progress)
        if change is None:
            print(f"  {step.title}: unchanged", file=out, flush=True)
            continue
        if dry_run:
            print(f"  {step.title}: would {change}", file=out, flush=True)
        else:
            print(f"  {step.title}: {change}", file=out, flush=True)
            outcome = step.apply(host, progress)
            if outcome:
                print(f"    {outcome}", file=out, flush=True)
        if not step.is_check:
            progress.changes += 1
            progress.units_changed |= step.units
            progress.restart_needed |= step.restarts
    return progress


# ---- files and folders ----------------------------------------------------------------------------------


def _mode(st: os.stat_result) -> int:
    return stat.S_IMODE(st.st_mode)


def _ids(host: Host, owner: str, group: str) -> tuple[int, int]:
    uid, gid = host.uid(owner), host.gid(group)
    if uid is None or gid is None:
        raise PlanError(f"no user {owner} or no group {group} on this machine")
    return uid, gid


def write_file(host: Host, path: str, data: bytes, mode: int, owner: str, group: str) -> None:
    """Write beside it and rename over it: at no moment is the file partial, or readable by others."""
    uid, gid = _ids(host, owner, group)
    with host.place(path) as (folder, name, _):
        temporary = f".{name}.service-install"
        try:
            os.unlink(temporary, dir_fd=folder)
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600, dir_fd=folder)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(data)
                f.flush()
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)


@dataclass
class PathStep(Step):
    """A step that changes the file or folder `path`, refused if a link or another user could redirect it."""

    title: str
    path: str

    def check(self, host: Host) -> None:
        host.look(self.path)


@dataclass
class InstalledFile(PathStep):
    """A file with exactly this content, mode and owner."""

    content: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    units: bool = False
    restarts: bool = False
    differs: str = "it differs from the shipped file"

    def pending(self, host: Host, progress: Progress) -> str | None:
        st = host.look(self.path)
        if st is None:
            return f"write ({self.owner}:{self.group} {self.mode:04o})"
        current = host.read(self.path) if stat.S_ISREG(st.st_mode) else None
        if current != self.content.encode():
            return f"replace: {self.differs}"
        if not _owned(host, st, self.owner, self.group, self.mode):
            return (
                f"set {self.owner}:{self.group} {self.mode:04o} (now {host.owner_text(st)} {_mode(st):04o})"
            )
        return None

    def apply(self, host: Host, progress: Progress) -> str | None:
        write_file(host, self.path, self.content.encode(), self.mode, self.owner, self.group)
        return None


def _owned(host: Host, st: os.stat_result, owner: str, group: str, mode: int) -> bool:
    return (st.st_uid, st.st_gid, _mode(st)) == (host.uid(owner), host.gid(group), mode)


@dataclass
class ExistingFile(PathStep):
    """A file someone else wrote (the config, the token), with this mode and owner; `create` writes it
    when it does not exist."""

    mode: int
    owner: str
    group: str
    create: Callable[[], str] | None = None
    create_text: str = "write it"
    restarts: bool = False

    def pending(self, host: Host, progress: Progress) -> str | None:
        st = host.look(self.path)
        if st is None:
            if self.create is None:
                raise PlanError(f"{self.path} does not exist") from None
            return f"{self.create_text} ({self.owner}:{self.group} {self.mode:04o})"
        if not stat.S_ISREG(st.st_mode):
            raise PlanError(f"{self.path} is not a regular file")
        if not _owned(host, st, self.owner, self.group, self.mode):
            return (
                f"set {self.owner}:{self.group} {self.mode:04o} (now {host.owner_text(st)} {_mode(st):04o})"
            )
        return None

    def apply(self, host: Host, progress: Progress) -> str | None:
        uid, gid = _ids(host, self.owner, self.group)
        with host.place(self.path) as (folder, name, st):
            if st is not None:
                fd = open_file(folder, name)
                try:
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, self.mode)
                finally:
                    os.close(fd)
                return None
        assert self.create is not None
        write_file(host, self.path, self.create().encode(), self.mode, self.owner, self.group)
        return None


@dataclass
class Directory(PathStep):
    """A directory that exists with `required` among its mode bits, and this owner and group (None: any).

    Created with `create_mode`, root-owned unless `owner` says otherwise; parents it needs are created
    0755. An existing directory keeps its other mode bits, and its owner when `owner` is None: a drop
    folder with files in it stays its owner's.
    """

    create_mode: int
    required: int = 0
    owner: str | None = None
    group: str | None = None

    def pending(self, host: Host, progress: Progress) -> str | None:
        st = host.look(self.path)
        if st is None:
            return f"create ({self.owner or 'root'}:{self.group or 'root'} {self.create_mode:04o})"
        if not stat.S_ISDIR(st.st_mode):
            raise PlanError(f"{self.path} exists and is not a directory")
        uid = st.st_uid if self.owner is None else host.uid(self.owner)
        gid = st.st_gid if self.group is None else host.gid(self.group)
        if (st.st_uid, st.st_gid) == (uid, gid) and _mode(st) & self.required == self.required:
            return None
        owner, group = host.owner_text(st).split(":", 1)
        wanted = f"{self.owner or owner}:{self.group or group} {_mode(st) | self.required:04o}"
        return f"set {wanted} (now {owner}:{group} {_mode(st):04o})"

    def apply(self, host: Host, progress: Progress) -> str | None:
        uid = -1 if self.owner is None else host.uid(self.owner)
        gid = -1 if self.group is None else host.gid(self.group)
        if uid is None or gid is None:
            raise PlanError(f"no user {self.owner} or no group {self.group} on this machine")
        with host.place(self.path) as (folder, name, st):
            if st is None:
                os.mkdir(name, 0o700, dir_fd=folder)
            fd = open_folder(folder, name, self.path)
            try:
                os.fchown(fd, uid, gid)  # -1: as it is (root, for a folder just made)
                # After the chown, which may clear the setgid bit; and whatever the umask.
                os.fchmod(fd, self.create_mode if st is None else _mode(os.fstat(fd)) | self.required)
            finally:
                os.close(fd)
        return None


@dataclass
class RemovedFile(PathStep):
    """For uninstall: a file that must not be there."""

    units: bool = True

    def check(self, host: Host) -> None:
        host.look(self.path, link_ok=True)  # removing a link does nothing through it

    def pending(self, host: Host, progress: Progress) -> str | None:
        return "remove" if host.look(self.path, link_ok=True) is not None else None

    def apply(self, host: Host, progress: Progress) -> str | None:
        with host.place(self.path, create=False, link_ok=True) as (folder, name, _):
            os.unlink(name, dir_fd=folder)
        return None


@dataclass
class EmptyDirectoryRemoved(PathStep):
    """For uninstall: a directory gone, unless something besides `leaving` (removed before it) is in it."""

    leaving: str

    def others(self, host: Host) -> list[str]:
        return sorted(name for name in host.listdir(self.path) if name != self.leaving)

    def pending(self, host: Host, progress: Progress) -> str | None:
        st = host.look(self.path)
        if st is None or not stat.S_ISDIR(st.st_mode) or self.others(host):
            return None
        return "remove (empty)"

    def apply(self, host: Host, progress: Progress) -> str | None:
        with host.place(self.path, create=False) as (folder, name, _):
            os.rmdir(name, dir_fd=folder)
        return None


@dataclass
class Command(Step):
    """A command run when `needed` says so: `needed(host, progress)` returns the reason, or None."""

    title: str
    args: Sequence[str]
    needed: Callable[[Host, Progress], str | None] = field(default=lambda host, progress: "run it")

    def pending(self, host: Host, progress: Progress) -> str | None:
        reason = self.needed(host, progress)
        return None if reason is None else f"run `{' '.join(self.args)}` ({reason})"

    def apply(self, host: Host, progress: Progress) -> str | None:
        result = host.run(self.args)
        if result.returncode != 0:
            raise PlanError(f"`{' '.join(self.args)}` failed ({result.returncode}): {result.stderr.strip()}")
        return None
