"""done_dir / failed_dir against a dropper (THREAT_MODEL.md): symlinks planted at or below the done
folder, a planted record naming another file's done sidecar, and a burst of colliding names.

The dropper is uid 65534 where it matters: the links and the record are theirs, in a drop folder they
own, pointing at a folder only root can write to. The agent runs as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes, sha256
from tests.helpers.other_user import AS_NOBODY, NOBODY
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile


def as_dropper(*argv: str, data: bytes | None = None) -> None:
    """Run `argv` as the dropper (uid/gid 65534, no other groups)."""
    done = subprocess.run([*AS_NOBODY, *argv], input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, f"{argv} as uid {NOBODY}: {done.stderr.decode(errors='replace')}"


@pytest.fixture
def place() -> Iterator[Path]:
    """A world-traversable folder holding `drop/` (owned by the dropper) and `outside/` (root's, 0755)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as a second user (uid 65534)")
    top = Path(tempfile.mkdtemp(prefix="mmw-done-", dir="/tmp"))
    try:
        top.chmod(0o755)
        (top / "drop").mkdir()
        os.chown(top / "drop", NOBODY, NOBODY)
        (top / "outside").mkdir(mode=0o755)
        probe = subprocess.run([*AS_NOBODY, "touch", str(top / "outside" / "probe")], capture_output=True)
        assert probe.returncode != 0, "the dropper must not be able to write outside on its own"
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def in_outside(place: Path) -> list[Path]:
    return sorted((place / "outside").rglob("*"))


def attempted(agent: AgentProcess, name: str, place: Path) -> Callable[[], object]:
    """Something appeared outside, or the log says the file could not be moved: the attempt is over."""
    return lambda: in_outside(place) or _line_about(agent, name, "cannot move")


@pytest.mark.parametrize("spelled", ["relative", "absolute"])
def test_a_done_folder_planted_as_a_symlink_writes_nothing_where_it_points(
    start_agent: Callable[..., AgentProcess], place: Path, spelled: str
) -> None:
    drop, outside = place / "drop", place / "outside"
    done_dir = "done" if spelled == "relative" else str(drop / "done")
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "done_dir": done_dir}])
    as_dropper("ln", "-s", str(outside), str(drop / "done"))
    image = drop / "a.png"
    as_dropper("tee", str(image), data=png_bytes(8101))

    wait_for(attempted(agent, "a.png", place), 30, "a write outside, or a line saying a.png stays")
    assert in_outside(place) == [], "the agent wrote through the planted symlink"
    assert read_json(sidecar_of(image))["sha256"] == sha256(png_bytes(8101))  # type: ignore[index]
    line = _line_about(agent, "a.png", "cannot move")
    assert line is not None and "done is a symlink" in line and "stays" in line, line


def test_a_subfolder_of_the_done_folder_planted_as_a_symlink_writes_nothing_where_it_points(
    start_agent: Callable[..., AgentProcess], place: Path
) -> None:
    drop, outside = place / "drop", place / "outside"
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "recursive": True, "done_dir": "done"}])
    as_dropper("mkdir", "-p", str(drop / "done"), str(drop / "sub"))
    as_dropper("ln", "-s", str(outside), str(drop / "done" / "sub"))
    image = drop / "sub" / "b.png"
    as_dropper("tee", str(image), data=png_bytes(8102))

    wait_for(attempted(agent, "b.png", place), 30, "a write outside, or a line saying b.png stays")
    assert in_outside(place) == [], "the agent wrote through the planted symlink"
    assert image.exists() and sidecar_of(image).exists()
    # One clear line naming the link (not a bare "Not a directory").
    line = _line_about(agent, "b.png", "cannot move")
    assert line is not None and "done/sub is a symlink" in line, line


def test_a_planted_record_naming_another_files_done_sidecar_changes_nothing(
    tmp_path: Path, place: Path, emulator: Emulator
) -> None:
    drop = place / "drop"
    folders = [{"path": str(drop), "account": ACCOUNT_A, "done_dir": "done"}]
    agent = AgentProcess(tmp_path, emulator.base_url, folders)
    try:
        agent.start()
        (drop / "victim.png").write_bytes(png_bytes(8201))  # someone else's image, uploaded and moved
        victim = drop / "done" / "victim.png"
        wait_sidecar(victim, timeout=30)
        wait_for(lambda: not (drop / "victim.png.json").exists(), 10, "the move to finish")
        assert agent.stop() == 0
        before = sidecar_of(victim).read_bytes()

        # The dropper plants an "interrupted move": a record with no file beside it, naming the victim's
        # done file and describing it exactly (size, mtime and inode are there for anyone to stat).
        st = victim.stat()
        planted = {"fileID": "user:4242-minimax:111111-file:666", "ossPath": "https://evil.example/x",
                   "account": ACCOUNT_A, "file": "victim.png", "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                   "ino": st.st_ino, "sha256": "0" * 64, "movingTo": str(victim)}  # fmt: skip
        as_dropper("tee", str(drop / "victim.png.json"), data=json.dumps(planted).encode())

        agent.start()
        control = drop / "control.png"
        control.write_bytes(png_bytes(8202))
        wait_sidecar(drop / "done" / "control.png", timeout=30)  # the start-up scan is long over
        assert sidecar_of(victim).read_bytes() == before, "a planted record rewrote another file's sidecar"
    finally:
        code = agent.stop()
    assert code == 0, agent.log()


def test_a_burst_of_colliding_names_moves_every_file_with_its_own_sidecar(
    start_agent: Callable[..., AgentProcess], drop: Path
) -> None:
    groups, per_group = 16, 10
    done = drop / "done"
    done.mkdir()
    for g in range(groups):
        (done / f"g{g}.png").write_bytes(b"an older file, kept")  # every burst name collides from here on
    start_agent([{"path": str(drop), "account": ACCOUNT_A, "done_dir": "done"}], concurrency=8)
    # g0.png wants g0-1.png, which g0-1.png wants too, and so on: many moves race for each free name.
    names = [f"g{g}.png" if i == 0 else f"g{g}-{i}.png" for g in range(groups) for i in range(per_group)]
    payload = {name: png_bytes(8300 + n) for n, name in enumerate(names)}
    for name, data in payload.items():
        (drop / name).write_bytes(data)

    def left_in_drop() -> list[str]:
        return sorted(p.name for p in drop.iterdir() if p.is_file() and not p.name.startswith("."))

    wait_for(lambda: not left_in_drop(), 90, "every file of the burst to leave the drop folder")
    moved: dict[str, str] = {}  # sha256 -> where it went
    for path in done.iterdir():
        if path.name.endswith(".json") or path.name.startswith("."):
            continue
        record = read_json(sidecar_of(path))
        if record is None:
            assert path.read_bytes() == b"an older file, kept", f"{path.name} has no sidecar"
            continue
        assert record["file"] == path.name, f"{path.name}'s sidecar names {record['file']}"
        assert record["sha256"] == sha256(path.read_bytes()), f"{path.name}'s sidecar describes another file"
        moved[record["sha256"]] = path.name
    assert sorted(moved) == sorted(sha256(data) for data in payload.values())
    assert sum(1 for p in done.iterdir() if p.read_bytes() == b"an older file, kept") == groups


def _line_about(agent: AgentProcess, name: str, word: str) -> str | None:
    return next((line for line in agent.log().splitlines() if name in line and word in line), None)
