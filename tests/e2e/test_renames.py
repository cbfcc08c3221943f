"""A done image renamed in its folder: the new name gets its sidecar, the old name's goes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from tests.helpers import ACCOUNT_A, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator


def test_a_renamed_image_leaves_no_sidecar_at_its_old_name(
    start_agent: Callable[..., AgentProcess], drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A, "recursive": True}])
    (drop / "sub").mkdir()
    old = drop / "a.png"
    old.write_bytes(png_bytes(31))
    first = wait_sidecar(old)
    new = drop / "sub" / "b.png"
    os.rename(old, new)
    second = wait_sidecar(new)
    assert second["fileID"] == first["fileID"] and second["file"].endswith("b.png")
    wait_for(lambda: not sidecar_of(old).exists(), 15, "the old name's sidecar removed")
    assert len(emulator.uploads) == 1  # the same bytes: the fileID is reused, nothing uploaded again


def test_an_old_sidecar_changed_since_is_left_alone(
    start_agent: Callable[..., AgentProcess], drop: Path
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    old = drop / "a.png"
    old.write_bytes(png_bytes(32))
    wait_sidecar(old)
    # Someone rewrites the old sidecar (a new inode): it is no longer the one the agent left there.
    record = json.loads(sidecar_of(old).read_text())
    record["note"] = "kept by hand"
    tmp = drop / ".edit"
    tmp.write_text(json.dumps(record))
    os.rename(tmp, sidecar_of(old))
    os.rename(old, drop / "b.png")
    wait_sidecar(drop / "b.png")
    assert json.loads(sidecar_of(old).read_text())["note"] == "kept by hand"
