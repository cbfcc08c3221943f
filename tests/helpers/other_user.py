"""`python -m watcher` as another user (uid/gid 65534, `nobody`), wherever the checkout lives.

Root reads every file and enters every folder, so a test of what the service user cannot reach runs
the agent as `nobody`. That user must then reach an interpreter, this checkout's `watcher` and its
dependencies. A clone in a world-readable place gives it all three; a clone under a 0700 directory
(a home, `mktemp -d`) gives it none, and the agent dies with `No module named watcher` instead of
doing what the test looks at. Then a copy of the package and its dependencies goes to a 0755 folder
under /tmp, for as long as the session lasts, run by the first interpreter of this Python version
that `nobody` can execute.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import watcher

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGE = Path(watcher.__file__).resolve().parent
# What `python -m watcher` needs at start; then whether the interpreter reaches its own file, and
# where its `watcher` came from. setpriv execs with root's capabilities still held, so an interpreter
# under /root or a 0700 clone does start, then misses its own library: a pyenv build falls back to the
# system's libpython and stdlib, and runs only by that accident. Such an interpreter is refused.
PROBE = (
    "import os, sys, requests, watchdog.observers, pydantic, yaml, watcher.cli.main, watcher;"
    "print(sys.version_info[0], sys.version_info[1], os.access(sys.executable, os.X_OK), watcher.__file__)"
)


@dataclass(frozen=True)
class OtherUser:
    """How to run `python -m watcher` as `nobody`: the interpreter and, for a copy, where it lies."""

    python: str
    copy: Path | None  # the world-readable copy on PYTHONPATH, or None when the checkout is reachable
    build_seconds: float = 0.0

    def argv(self, *args: str) -> list[str]:
        return [*AS_NOBODY, self.python, "-m", "watcher", *args]

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        if self.copy is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.copy), base.get("PYTHONPATH")) if p)
        return env

    def run(
        self, *args: str, env: Mapping[str, str], cwd: Path | str = "/", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`python -m watcher <args>` as `nobody`, from `cwd` (not the checkout's folder, which it may not enter)."""
        return subprocess.run(
            self.argv(*args), env=self.env(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
        )


@contextmanager
def other_user() -> Iterator[OtherUser]:
    """An `OtherUser` for the session, or a skip saying why there is none and what to do about it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the agent as another user (setpriv to uid 65534)")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run the agent as another user than root")
    if probe(sys.executable, None, PACKAGE) is None:
        yield OtherUser(sys.executable, None)
        return
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="mmw-nobody-", dir="/tmp"))
    try:
        site = folder / "site-packages"
        copy_runtime(site)
        make_world_readable(folder)
        failures = []
        for python in interpreters():
            failure = probe(python, site, site / "watcher")
            if failure is None:
                yield OtherUser(python, site, time.monotonic() - started)
                return
            failures.append(f"{python}: {failure}")
        pytest.skip(
            f"NOT TESTED: no interpreter of Python {sys.version_info[0]}.{sys.version_info[1]} runs this "
            f"checkout's agent as uid {NOBODY}, not even from a world-readable copy in {folder}: "
            + "; ".join(failures)
            + ". Install a python3 that user can execute (e.g. /usr/bin/python3.X from the distribution), "
            "or put the checkout and its venv where every user can read them"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def probe(python: str, copy: Path | None, package: Path) -> str | None:
    """Why `python` as `nobody` cannot run `package` from "/", or None when it can."""
    runner = OtherUser(python, copy)
    argv = [*AS_NOBODY, python, "-c", PROBE]
    try:
        done = subprocess.run(
            argv, env=runner.env(os.environ), cwd="/", capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    said = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        return said.splitlines()[-1] if said else f"exit status {done.returncode}"
    major, minor, reachable, found = done.stdout.split(maxsplit=3)
    if (int(major), int(minor)) != sys.version_info[:2]:
        return f"is Python {major}.{minor}, not {sys.version_info[0]}.{sys.version_info[1]}"
    if reachable != "True":
        return (
            f"uid {NOBODY} cannot reach the interpreter's own file (it started only by setpriv's privileges)"
        )
    if Path(found.strip()).resolve().parent != package.resolve():
        return f"imports another watcher ({found.strip()}), not {package}"
    return None


def interpreters() -> list[str]:
    """This Python's interpreters, the venv's first, then the system's of the same version."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    base = getattr(sys, "_base_executable", sys.executable)
    candidates = [sys.executable, base, os.path.realpath(sys.executable), os.path.realpath(base)]
    candidates += [f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    return [c for i, c in enumerate(candidates) if c not in candidates[:i] and os.access(c, os.X_OK)]


def copy_runtime(site: Path) -> None:
    """This checkout's `watcher` and, as installed here, every distribution it needs at run time."""
    shutil.copytree(PACKAGE, site / "watcher")
    for dist in runtime_distributions():
        for file in dist.files or ():
            if ".." in file.parts:  # console scripts and the like, outside site-packages
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                (site / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, site / file)


def runtime_distributions() -> list[importlib.metadata.Distribution]:
    """The project's dependencies (pyproject.toml, not a possibly stale install's metadata), transitively.

    A requirement only for an extra is left out; one behind any other marker is taken when installed
    here (a copy too many is harmless; one missing, the probe reports).
    """
    with (CHECKOUT / "pyproject.toml").open("rb") as f:
        pending = [name for name in map(requirement_name, tomllib.load(f)["project"]["dependencies"]) if name]
    found: dict[str, importlib.metadata.Distribution] = {}
    while pending:
        name = pending.pop()
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[name] = dist
        pending += [n for n in map(requirement_name, dist.requires or ()) if n]
    return list(found.values())


def requirement_name(requirement: str) -> str | None:
    """The normalized distribution name of a requirement, or None for one needed only by an extra."""
    spec, _, marker = requirement.partition(";")
    if re.search(r"\bextra\s*==", marker):
        return None
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def make_world_readable(top: Path) -> None:
    """Folders 0755 and files 0644 (0755 if executable): a umask of 077 where the clone was made must not matter."""
    for folder, _, files in os.walk(top):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)
