"""Which files a folder takes, as users configure it: include and exclude globs, a folder's own settle time."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers import ACCOUNT_A, sidecar_of, wait_sidecar
from tests.helpers.images import png_bytes, sha256
from watcher.emulator import Emulator


def test_include_and_exclude_globs_pick_the_files_of_a_recursive_folder(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    start_agent(
        [
            {
                "path": str(drop),
                "account": ACCOUNT_A,
                "recursive": True,
                "include": ["renders/**/*.png", "final-*.png"],
                "exclude": ["**/preview/**"],
            }
        ]
    )
    wanted = [drop / "renders" / "a.png", drop / "renders" / "shot1" / "b.png", drop / "final-c.png"]
    unwanted = [
        drop / "renders" / "shot1" / "preview" / "p.png",
        drop / "other.png",
        drop / "x" / "final-d.png",
    ]
    for i, path in enumerate(wanted + unwanted):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(5000 + i))
    for path in wanted:
        wait_sidecar(path)
    control = drop / "final-zz.png"
    control.write_bytes(png_bytes(5099))
    wait_sidecar(control)  # written after the unwanted ones: by now they would have been uploaded
    uploaded = {u.sha256 for u in emulator.uploads}
    for i, path in enumerate(unwanted, start=len(wanted)):
        assert sha256(png_bytes(5000 + i)) not in uploaded, path
        assert not sidecar_of(path).exists()


def test_a_folders_own_settle_time_is_waited_out(start_agent, tmp_path: Path, drop: Path) -> None:
    slow = tmp_path / "slow"
    slow.mkdir()
    start_agent(
        [
            {"path": str(drop), "account": ACCOUNT_A},
            {"path": str(slow), "account": ACCOUNT_A, "settle_seconds": 4},
        ],
        settle_seconds=0.5,
    )
    # A PNG cut before its IEND chunk: its close event does not shorten the wait, the settle time rules.
    data = png_bytes(5100)[:-12]
    started = time.monotonic()
    (drop / "fast.png").write_bytes(data)
    (slow / "patient.png").write_bytes(data)
    wait_sidecar(drop / "fast.png", timeout=10)
    assert not sidecar_of(slow / "patient.png").exists()
    wait_sidecar(slow / "patient.png", timeout=15)
    assert time.monotonic() - started >= 4
