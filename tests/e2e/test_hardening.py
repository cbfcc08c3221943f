"""What an attacker or a careless writer tries against the running agent: planted sidecars, new bytes
behind an old size and mtime, dot-folders."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.helpers import ACCOUNT_A, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.images import png_bytes, sha256
from watcher.emulator import Emulator


def test_a_planted_sidecar_never_lends_its_file_id_to_the_victims_image(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    victim_bytes = png_bytes(1201)
    decoy = drop / "decoy.png"
    decoy.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (len(victim_bytes) - 8))
    st = decoy.stat()
    fake = "user:4242-minimax:111111-file:666666666"
    planted = {"fileID": fake, "ossPath": "https://evil.example/x.png", "account": ACCOUNT_A,
               "file": "decoy.png", "size": st.st_size, "mtime_ns": st.st_mtime_ns,
               "sha256": sha256(victim_bytes), "contentType": "image/png",
               "uploadedAt": "2026-11-30T00:00:00Z"}  # fmt: skip
    sidecar_of(decoy).write_text(json.dumps(planted))
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])

    victim = drop / "victim.png"
    victim.write_bytes(victim_bytes)
    sidecar = wait_sidecar(victim)
    assert sidecar["fileID"] != fake
    [upload] = [u for u in emulator.uploads if u.file_id == sidecar["fileID"]]
    assert upload.sha256 == sha256(victim_bytes)


def test_new_bytes_renamed_in_with_the_old_size_and_mtime_are_uploaded(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "render.png"
    first = png_bytes(1202)
    image.write_bytes(first)
    before = wait_sidecar(image)
    assert before["sha256"] == sha256(first)

    second = bytearray(first)
    second[-20] ^= 0xFF  # same size, different bytes
    staged = tmp_path / "staged.png"
    staged.write_bytes(bytes(second))
    old = image.stat()
    os.utime(staged, ns=(old.st_atime_ns, old.st_mtime_ns))  # what `cp -p` or `rsync -a` leave
    os.rename(staged, image)

    after = wait_sidecar(image, differs_from=before["sha256"])
    assert after["sha256"] == sha256(bytes(second))
    assert after["ino"] == image.stat().st_ino
    assert any(u.sha256 == sha256(bytes(second)) for u in emulator.uploads)


def test_the_same_bytes_restored_under_a_new_inode_reuse_their_file_id_without_an_upload(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "restored.png"
    image.write_bytes(png_bytes(1203))
    sidecar = wait_sidecar(image)
    uploads = len(emulator.uploads)

    copy = tmp_path / "backup.png"
    shutil.copy2(image, copy)  # a restore from backup: same bytes and mtime, another inode
    os.rename(copy, image)
    new_ino = image.stat().st_ino
    assert new_ino != sidecar["ino"]

    def rewritten() -> dict[str, object] | None:
        data = read_json(sidecar_of(image))
        return data if data is not None and data.get("ino") == new_ino else None

    again = wait_for(rewritten, 15, "the sidecar naming the new inode")
    assert again["fileID"] == sidecar["fileID"]
    assert len(emulator.uploads) == uploads, "the same bytes must not be uploaded again"


def test_a_sidecar_from_before_inodes_were_recorded_still_counts(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    image = drop / "old.png"
    image.write_bytes(png_bytes(1204))
    st = image.stat()
    old_format = {"fileID": "user:4242-minimax:111111-file:1", "ossPath": "https://o/x.png",
                  "account": ACCOUNT_A, "file": "old.png", "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                  "sha256": sha256(png_bytes(1204)), "contentType": "image/png",
                  "uploadedAt": "2026-01-01T00:00:00Z"}  # fmt: skip
    sidecar_of(image).write_text(json.dumps(old_format))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    control = drop / "control.png"
    control.write_bytes(png_bytes(1205))
    wait_sidecar(control)
    assert [u.sha256 for u in emulator.uploads] == [sha256(png_bytes(1205))]
    status = agent.notify.wait("STATUS", timeout=10)  # a status line at READY or later
    wait_for(
        lambda: any(
            "1 uploaded since start" in d.fields["STATUS"] for d in agent.notify.with_field("STATUS")
        ),
        15,
        "the status line after the control file",
    )
    last = agent.notify.with_field("STATUS")[-1].fields["STATUS"]
    assert "0 pending" in last and status is not None


def test_files_in_dot_folders_are_never_uploaded_whenever_they_arrive(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    hidden = drop / "sub" / ".cache"
    hidden.mkdir(parents=True)
    (hidden / "before.png").write_bytes(png_bytes(1206))
    start_agent([{"path": str(drop), "account": ACCOUNT_A, "recursive": True}])
    (hidden / "during.png").write_bytes(png_bytes(1207))
    (drop / ".late").mkdir()
    (drop / ".late" / "moved.png").write_bytes(png_bytes(1208))
    control = drop / "sub" / "control.png"
    control.write_bytes(png_bytes(1209))
    wait_sidecar(control)
    assert [u.sha256 for u in emulator.uploads] == [sha256(png_bytes(1209))]
    for name in ("before.png", "during.png"):
        assert not sidecar_of(hidden / name).exists()


def test_a_touch_alone_is_seen_at_once_not_at_the_next_rescan(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    """`touch` changes only attributes (IN_ATTRIB, no write): the new mtime is a new version of the
    file, and the agent must look at it now, not in `rescan_seconds`."""
    start_agent([{"path": str(drop), "account": ACCOUNT_A}], rescan_seconds=300)
    image = drop / "touched.png"
    image.write_bytes(png_bytes(1301))
    first = wait_sidecar(image)
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 5_000_000_000))

    def described_again() -> dict[str, object] | None:
        data = read_json(sidecar_of(image))
        return data if data is not None and data["mtime_ns"] != first["mtime_ns"] else None

    again = wait_for(described_again, 15, "a sidecar for the touched file")
    assert again["mtime_ns"] == image.stat().st_mtime_ns
