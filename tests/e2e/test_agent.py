"""End to end: the real agent process, real files and inotify, the real emulator over loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import (
    ACCOUNT,
    ACCOUNT_A,
    ACCOUNT_B,
    error_record_of,
    read_json,
    sidecar_of,
    wait_for,
    wait_sidecar,
)
from tests.helpers.agent import AgentProcess
from tests.helpers.images import jpeg_bytes, png_bytes, sha256, webp_bytes
from watcher.emulator import Emulator


def test_drop_gets_sidecar_with_file_id_and_sha256(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    data = png_bytes(1)
    (drop / "cat.png").write_bytes(data)

    sidecar = wait_sidecar(drop / "cat.png")

    [upload] = emulator.uploads
    assert sidecar["fileID"] == upload.file_id
    assert sidecar["fileID"].startswith(f"user:4242-minimax:{ACCOUNT_A}-file:")
    assert sidecar["sha256"] == sha256(data) == upload.sha256
    assert sidecar["size"] == len(data)
    assert sidecar["mtime_ns"] == (drop / "cat.png").stat().st_mtime_ns
    assert sidecar["contentType"] == "image/png" == upload.content_type
    assert sidecar["account"] == ACCOUNT_A
    assert sidecar["file"] == "cat.png"
    assert sidecar["uploadedAt"].endswith("Z")


def test_rsync_style_writer_uploads_once_under_the_final_name(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    data = png_bytes(2, size=200)
    temp = drop / ".photo.png.Xa1b2c"
    with temp.open("wb") as f:
        for i in range(0, len(data), 4096):
            f.write(data[i : i + 4096])
            f.flush()
    os.rename(temp, drop / "photo.png")

    sidecar = wait_sidecar(drop / "photo.png")

    assert sidecar["sha256"] == sha256(data)
    assert len(emulator.uploads) == 1
    assert not sidecar_of(temp).exists()


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (.ci/run installs it)")
def test_real_rsync_gives_one_upload(start_agent, drop: Path, tmp_path: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    source = tmp_path / "src"
    source.mkdir()
    data = png_bytes(3, size=300)
    (source / "render.png").write_bytes(data)

    subprocess.run(["rsync", "-a", str(source / "render.png"), str(drop) + "/"], check=True)

    sidecar = wait_sidecar(drop / "render.png")
    assert sidecar["sha256"] == sha256(data)
    assert [u.sha256 for u in emulator.uploads] == [sha256(data)]


def test_temporary_and_hidden_names_are_never_uploaded(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    ignored = [
        "a.png.part",
        "b.png.tmp",
        ".hidden.png",
        "c.png~",
        "d.jpg.crdownload",
        "e.png.partial",
        "f.jpeg.download",
        "g.png.swp",
        "notes.txt",
    ]
    for name in ignored:
        (drop / name).write_bytes(png_bytes(4))
    # A real candidate written after them: once it is done, the others have had the same chance.
    (drop / "sentinel.png").write_bytes(png_bytes(5))

    wait_sidecar(drop / "sentinel.png")

    assert len(emulator.uploads) == 1
    for name in ignored:
        assert not (drop / (name + ".json")).exists(), name


def test_slow_writer_is_uploaded_once_with_its_final_bytes(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}], settle_seconds=1.5)
    data = png_bytes(6, size=400)
    pieces = [data[i : i + len(data) // 6 + 1] for i in range(0, len(data), len(data) // 6 + 1)]
    with (drop / "slow.png").open("wb") as f:
        for piece in pieces:
            f.write(piece)
            f.flush()
            time.sleep(0.6)  # the writer's pause, shorter than settle_seconds: part of the scenario

    sidecar = wait_sidecar(drop / "slow.png")

    assert sidecar["sha256"] == sha256(data)
    assert [u.sha256 for u in emulator.uploads] == [sha256(data)]


def test_files_dropped_while_stopped_are_uploaded_at_start(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "first.png").write_bytes(png_bytes(7))
    wait_sidecar(drop / "first.png")
    assert agent.stop() == 0

    for i in range(5):
        (drop / f"offline-{i}.png").write_bytes(png_bytes(100 + i))
    agent.start()

    for i in range(5):
        assert wait_sidecar(drop / f"offline-{i}.png")["sha256"] == sha256(png_bytes(100 + i))
    # first.png was done before the restart and is not uploaded again.
    assert len(emulator.uploads) == 6


def test_two_folders_go_to_their_own_accounts(start_agent, tmp_path: Path, emulator: Emulator) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice.mkdir()
    bob.mkdir()
    start_agent([{"path": str(alice), "account": ACCOUNT_A}, {"path": str(bob), "account": ACCOUNT_B}])

    (alice / "a.png").write_bytes(png_bytes(8))
    (bob / "b.png").write_bytes(png_bytes(9))

    assert wait_sidecar(alice / "a.png")["account"] == ACCOUNT_A
    assert wait_sidecar(bob / "b.png")["account"] == ACCOUNT_B
    by_hash = {u.sha256: u.account for u in emulator.uploads}
    assert by_hash == {sha256(png_bytes(8)): ACCOUNT_A, sha256(png_bytes(9)): ACCOUNT_B}


def test_webp_is_sent_as_jpeg(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "still.webp").write_bytes(webp_bytes(1))
    (drop / "photo.JPG").write_bytes(jpeg_bytes(1))

    assert wait_sidecar(drop / "still.webp")["contentType"] == "image/jpeg"
    assert wait_sidecar(drop / "photo.JPG")["contentType"] == "image/jpeg"
    assert sorted(u.content_type or "" for u in emulator.uploads) == ["image/jpeg", "image/jpeg"]


def test_text_file_named_png_gets_an_error_record(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "fake.png").write_text("this is not an image\n")

    record = wait_for(lambda: read_json(error_record_of(drop / "fake.png")), 15, "the error record")

    assert record["error"] == "not a PNG, JPEG or WebP image"
    assert record["size"] == (drop / "fake.png").stat().st_size
    assert record["attempts"] >= 1
    assert not sidecar_of(drop / "fake.png").exists()
    assert emulator.requests == []


def test_fifo_named_png_does_not_block_other_files(start_agent, drop: Path, emulator: Emulator) -> None:
    os.mkfifo(drop / "pipe.png")
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "real.png").write_bytes(png_bytes(10))

    wait_sidecar(drop / "real.png")

    assert len(emulator.uploads) == 1
    assert not sidecar_of(drop / "pipe.png").exists()


def test_symlink_is_ignored(start_agent, drop: Path, tmp_path: Path, emulator: Emulator) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes(11))
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "link.png").symlink_to(outside)
    (drop / "sentinel.png").write_bytes(png_bytes(12))

    wait_sidecar(drop / "sentinel.png")

    assert [u.sha256 for u in emulator.uploads] == [sha256(png_bytes(12))]
    assert not (drop / "link.png.json").exists()


def test_replaced_file_is_uploaded_again(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "frame.png"
    image.write_bytes(png_bytes(13))
    first = wait_sidecar(image)

    image.write_bytes(png_bytes(14, size=80))
    second = wait_sidecar(image, differs_from=first["sha256"])

    assert second["sha256"] == sha256(png_bytes(14, size=80))
    assert second["fileID"] != first["fileID"]
    assert len(emulator.uploads) == 2


def test_directory_moved_in_is_uploaded_recursively(
    start_agent, drop: Path, tmp_path: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A, "recursive": True}])
    batch = tmp_path / "batch"
    (batch / "nested").mkdir(parents=True)
    names = ["batch/one.png", "batch/two.jpg", "batch/nested/three.png"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(png_bytes(20 + i) if name.endswith(".png") else jpeg_bytes(20 + i))

    os.rename(batch, drop / "batch")

    for name in names:
        wait_sidecar(drop / name)
    assert len(emulator.uploads) == 3


def test_identical_bytes_reuse_the_file_id(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "one.png").write_bytes(png_bytes(30))
    first = wait_sidecar(drop / "one.png")
    (drop / "copy.png").write_bytes(png_bytes(30))

    second = wait_sidecar(drop / "copy.png")

    assert second["fileID"] == first["fileID"]
    assert len(emulator.uploads) == 1


def test_no_reader_ever_sees_a_partial_sidecar(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    images = [drop / f"burst-{i:03}.png" for i in range(40)]
    bad: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            for image in images:
                try:
                    text = sidecar_of(image).read_text()
                except FileNotFoundError:
                    continue
                reads += 1
                try:
                    if not json.loads(text).get("fileID"):
                        bad.append(text)
                except ValueError:
                    bad.append(text)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i, image in enumerate(images):
            image.write_bytes(png_bytes(200 + i))
        for image in images:
            wait_sidecar(image)
    finally:
        stop.set()
        thread.join()
    assert reads > 0
    assert bad == []
    leftovers = [p for p in os.listdir(drop) if p.startswith(".") and p != ".minimax-watcher.lock"]
    assert not leftovers, "temporary files were left behind"


def test_temporary_api_failures_are_retried(start_agent, drop: Path, emulator: Emulator) -> None:
    from watcher.emulator import Fault

    emulator.add_fault(Fault("status", status=503, times=2))
    emulator.add_fault(Fault("status", status=429, retry_after="1"))
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "busy.png").write_bytes(png_bytes(40))

    sidecar = wait_sidecar(drop / "busy.png", timeout=30)

    assert [r.status for r in emulator.requests] == [503, 503, 429, 200]
    assert sidecar["fileID"] == emulator.uploads[0].file_id


def test_account_failure_pauses_that_account_only(start_agent, tmp_path: Path, emulator: Emulator) -> None:
    from watcher.emulator import Fault

    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice.mkdir()
    bob.mkdir()
    emulator.add_fault(Fault("status", status=402, times=-1, account=ACCOUNT_A))
    agent = start_agent(
        [{"path": str(alice), "account": ACCOUNT_A}, {"path": str(bob), "account": ACCOUNT_B}]
    )
    (alice / "a1.png").write_bytes(png_bytes(50))
    wait_for(lambda: emulator.requests, 15, "the first request")
    (alice / "a2.png").write_bytes(png_bytes(51))
    (bob / "b.png").write_bytes(png_bytes(52))

    wait_sidecar(bob / "b.png")
    wait_for(lambda: "paused" in agent.log(), 10, "the pause to be logged")

    assert [r.account for r in emulator.requests if r.status == 402] == [ACCOUNT_A]
    assert not sidecar_of(alice / "a1.png").exists()
    assert not error_record_of(alice / "a1.png").exists(), "account failures must not mark files failed"
    assert "subscription has expired" in agent.log()


def test_polling_folder_uploads_without_inotify(start_agent, drop: Path, emulator: Emulator) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "polling": True, "recursive": True}])
    assert "(polling, recursive" in agent.log()
    (drop / "sub").mkdir()
    (drop / "nfs.png").write_bytes(png_bytes(60))
    (drop / "sub" / "deep.jpg").write_bytes(jpeg_bytes(61))

    assert wait_sidecar(drop / "nfs.png")["sha256"] == sha256(png_bytes(60))
    assert wait_sidecar(drop / "sub" / "deep.jpg")["contentType"] == "image/jpeg"
    assert len(emulator.uploads) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to bind-mount over the watched folder")
def test_periodic_rescan_catches_files_whose_events_never_came(
    start_agent, tmp_path: Path, emulator: Emulator
) -> None:
    """Mounting another folder over the watched one hides every later write from the inotify watch,
    as an overflowed event queue or a network filesystem would: only the rescan can find them."""
    drop, other = tmp_path / "drop", tmp_path / "other"
    drop.mkdir()
    other.mkdir()
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}], rescan_seconds=1)
    subprocess.run(["mount", "--bind", str(other), str(drop)], check=True)
    try:
        (drop / "unseen.png").write_bytes(png_bytes(62))
        assert wait_sidecar(drop / "unseen.png", timeout=20)["sha256"] == sha256(png_bytes(62))
    finally:
        # The agent holds the folder's lock file open (one agent per folder): stop it to unmount.
        assert agent.stop() == 0
        subprocess.run(["umount", str(drop)], check=True)


# Debian's ImageMagick; some machines put a stand-in named `convert` earlier on PATH.
IMAGEMAGICK = "/usr/bin/convert" if os.path.exists("/usr/bin/convert") else None


@pytest.mark.skipif(
    IMAGEMAGICK is None, reason="ImageMagick is not installed (.ci/install-system-packages installs it)"
)
def test_imagemagick_writing_straight_into_the_folder_gives_one_upload_each(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    outputs = {"plasma.png": "plasma:fractal", "gradient.jpg": "gradient:red-blue", "flat.webp": "xc:green"}
    for name, source in outputs.items():
        subprocess.run([IMAGEMAGICK, "-size", "900x700", source, str(drop / name)], check=True)

    for name in outputs:
        sidecar = wait_sidecar(drop / name)
        assert sidecar["sha256"] == sha256((drop / name).read_bytes())
    assert len(emulator.uploads) == len(outputs)
    assert sorted(u.content_type or "" for u in emulator.uploads) == ["image/jpeg", "image/jpeg", "image/png"]


def test_cp_of_a_large_file_gives_one_upload_of_its_final_bytes(
    start_agent, drop: Path, tmp_path: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    source = tmp_path / "big.png"
    head = png_bytes(70)
    source.write_bytes(head[:-12] + os.urandom(40 << 20) + head[-12:])  # 40 MB, still ends with IEND

    subprocess.run(["cp", str(source), str(drop / "big.png")], check=True)

    sidecar = wait_sidecar(drop / "big.png", timeout=60)
    assert sidecar["sha256"] == sha256(source.read_bytes())
    assert [u.sha256 for u in emulator.uploads] == [sidecar["sha256"]]


def test_an_image_moved_with_its_sidecar_to_another_accounts_folder_is_uploaded_for_that_account(
    start_agent, tmp_path: Path, emulator: Emulator
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice.mkdir()
    bob.mkdir()
    start_agent([{"path": str(alice), "account": ACCOUNT_A}, {"path": str(bob), "account": ACCOUNT_B}])
    (alice / "shared.png").write_bytes(png_bytes(80))
    first = wait_sidecar(alice / "shared.png")

    # mv keeps the mtime, so the sidecar still "matches" the image: but not bob's account.
    os.rename(alice / "shared.png.json", bob / "shared.png.json")
    os.rename(alice / "shared.png", bob / "shared.png")

    def bobs() -> dict[str, object] | None:
        data = read_json(bob / "shared.png.json")
        return data if data and data["account"] == ACCOUNT_B else None

    second = wait_for(bobs, 20, "a sidecar for bob's account")
    assert second["fileID"] != first["fileID"]
    assert [u.account for u in emulator.uploads] == [ACCOUNT_A, ACCOUNT_B]


def test_the_log_names_a_folders_account_one_way_and_v_adds_the_agents_own_decisions(
    tmp_path: Path, emu: Emulator
) -> None:
    named, bare = tmp_path / "named", tmp_path / "bare"
    named.mkdir()
    bare.mkdir()
    agent = AgentProcess(
        tmp_path, emu.base_url, [{"path": str(named), "account": ACCOUNT}, {"path": str(bare)}]
    )
    agent.start(args=("-v",))
    try:
        (bare / "a.png").write_bytes(png_bytes(9301))
        (named / "b.png").write_bytes(png_bytes(9302))
        (bare / "notes.doc").write_text("not an image")
        wait_sidecar(bare / "a.png")
        wait_sidecar(named / "b.png")
        wait_for(lambda: "notes.doc: " in agent.log(), 10, "the ignored file's debug line")
    finally:
        assert agent.stop() == 0, agent.log()
    log = agent.log()

    assert f"watching {named} (inotify, account={ACCOUNT})" in log
    assert f"watching {bare} (inotify, the token's only account)" in log
    assert "account default" not in log and "default)" not in log
    # -v: the agent's own debug lines, not only urllib3's.
    assert f"{bare / 'a.png'}: finished (event)" in log
    assert f"{bare / 'a.png'}: settled ({len(png_bytes(9301))} bytes); queued for upload" in log
    assert (
        f"{bare / 'notes.doc'}: finished (event), not a candidate of {bare} (media, include, exclude)" in log
    )


def test_without_v_the_agents_debug_lines_stay_out(tmp_path: Path, emu: Emulator, drop: Path) -> None:
    agent = AgentProcess(tmp_path, emu.base_url, [{"path": str(drop)}])
    agent.start()
    try:
        (drop / "quiet.png").write_bytes(png_bytes(9303))
        wait_sidecar(drop / "quiet.png")
    finally:
        assert agent.stop() == 0, agent.log()
    assert "quiet.png: uploaded" in agent.log() and "(event)" not in agent.log()
