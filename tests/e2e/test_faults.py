"""Nothing lost: faults, crashes, stops and bad input, each injected for real."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, TOKEN, error_record_of, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import jpeg_bytes, png_bytes, sha256
from tests.helpers.other_user import OtherUser
from watcher.emulator import Emulator, Fault


def assert_sidecar_describes(image: Path, emulator: Emulator, account: str = ACCOUNT_A) -> dict[str, object]:
    """The sidecar names exactly the file's bytes, and the emulator did receive those bytes under that fileID."""
    data = image.read_bytes()
    text = sidecar_of(image).read_text()
    sidecar = json.loads(text)
    st = image.stat()
    assert sidecar["sha256"] == sha256(data), image.name
    assert (sidecar["size"], sidecar["mtime_ns"]) == (st.st_size, st.st_mtime_ns), image.name
    uploads = {u.file_id: u for u in emulator.uploads}
    upload = uploads.get(sidecar["fileID"])
    assert upload is not None, f"{image.name}: fileID {sidecar['fileID']} was never issued"
    assert upload.sha256 == sidecar["sha256"] and upload.account == account, image.name
    return sidecar


# ---- crashes and stops ---------------------------------------------------------------------------


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path, drop: Path, emulator: Emulator) -> None:
    rng = random.Random(20261129)
    agent = AgentProcess(
        tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}], settle_seconds=0.5
    )
    images: list[Path] = []
    for round_no in range(4):
        agent.start()
        batch = [drop / f"r{round_no}-{i:03}.png" for i in range(100)]
        images += batch

        def write(batch: list[Path] = batch, round_no: int = round_no) -> None:
            for i, image in enumerate(batch):
                image.write_bytes(png_bytes(round_no * 1000 + i, size=40))

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(rng.uniform(0.1, 1.5))  # the random moment of the crash is the point of this test
        assert agent.proc is not None
        agent.proc.kill()
        agent.proc.wait()
        agent.proc = None
        writer.join()
        if agent.notify is not None:
            agent.notify.close()
            agent.notify = None

    agent.start()
    try:
        for image in images:
            wait_sidecar(image, timeout=60)
        for image in images:
            assert_sidecar_describes(image, emulator)
    finally:
        assert agent.stop() == 0, agent.log()
    leftovers = [p for p in os.listdir(drop) if p.startswith(".") and p != ".minimax-watcher.lock"]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    assert len(emulator.uploads) >= len(images)
    assert TOKEN not in agent.log()


def test_sigterm_during_a_long_upload_stops_fast_and_the_next_start_finishes_it(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("slow", delay=60))
    agent = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    agent.start()
    image = drop / "large.png"
    image.write_bytes(png_bytes(600, size=600))
    emulator.wait_for_held(1, timeout=20)

    started = time.monotonic()
    assert agent.stop(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert not sidecar_of(image).exists(), "an upload cut short must leave no sidecar"

    agent.start()
    try:
        wait_sidecar(image, timeout=20)
        assert_sidecar_describes(image, emulator)
    finally:
        assert agent.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to bind-mount the folder read-only")
def test_unwritable_sidecar_keeps_the_file_id_and_writes_it_later(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("slow", delay=1.0))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "blocked.png"
    image.write_bytes(png_bytes(610))
    emulator.wait_for_held(1, timeout=20)
    subprocess.run(["mount", "--bind", str(drop), str(drop)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(drop)], check=True)
        wait_for(lambda: "sidecar cannot be written" in agent.log(), 20, "the error about the sidecar")
        assert not sidecar_of(image).exists()
    finally:
        subprocess.run(["umount", str(drop)], check=True)

    wait_sidecar(image, timeout=40)
    assert_sidecar_describes(image, emulator)
    assert len(emulator.uploads) == 1, "the sidecar must be written without uploading again"
    assert "ERROR" in agent.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to bind-mount the folder read-only")
def test_unwritten_sidecar_survives_a_restart_without_a_second_upload(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("slow", delay=1.0))
    agent = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    agent.start()
    image = drop / "kept.png"
    image.write_bytes(png_bytes(615))
    emulator.wait_for_held(1, timeout=20)
    subprocess.run(["mount", "--bind", str(drop), str(drop)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(drop)], check=True)
        wait_for(lambda: "sidecar cannot be written" in agent.log(), 20, "the error about the sidecar")
        assert agent.stop() == 0
    finally:
        subprocess.run(["umount", str(drop)], check=True)

    agent.start()
    try:
        wait_sidecar(image, timeout=20)
        assert_sidecar_describes(image, emulator)
        assert len(emulator.uploads) == 1, "the kept fileID must be written, not uploaded again"
    finally:
        assert agent.stop() == 0


# ---- the API misbehaves --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("reset"),
        Fault("no_file_id"),
        Fault("non_json"),
        Fault("status", status=500),
        Fault("status", status=502),
        Fault("status", status=504),
        Fault("status", status=408),
        Fault("status", status=429),
    ],
    ids=lambda f: f.kind if f.kind != "status" else str(f.status),
)
def test_temporary_faults_end_in_a_correct_sidecar(
    start_agent, drop: Path, emulator: Emulator, fault: Fault
) -> None:
    emulator.add_fault(fault)
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "flaky.png"
    image.write_bytes(png_bytes(620))

    wait_sidecar(image, timeout=30)

    assert_sidecar_describes(image, emulator)
    assert len(emulator.requests) == 2
    assert not error_record_of(image).exists()


def test_an_outage_holds_the_backlog_and_probes_one_upload_at_a_time(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("status", status=503, times=-1))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    images = [drop / f"backlog-{i:02}.png" for i in range(30)]
    for i, image in enumerate(images):
        image.write_bytes(png_bytes(800 + i))
    wait_for(lambda: "holding its files" in agent.log(), 20, "the backlog to be held")
    held_at = len(emulator.requests)
    # Let the outage last through a probe, answered: a "try now" sent while the probe is still in
    # flight is used up before its 503 comes back, and the next probe would then wait a minute.
    wait_for(lambda: "still failing" in agent.log(), 30, "a probe during the outage, refused")
    assert len(emulator.requests) > held_at

    assert len(emulator.requests) < len(images), (
        "every file retried on its own instead of one probe at a time"
    )
    emulator.clear_faults()
    agent.signal(signal.SIGHUP)  # the operator's "try now"; without it the next probe comes by backoff
    for image in images:
        wait_sidecar(image, timeout=60)
        assert_sidecar_describes(image, emulator)
    assert "accepts uploads again" in agent.log()


def test_retry_after_as_an_http_date_is_honoured(start_agent, drop: Path, emulator: Emulator) -> None:
    from email.utils import formatdate

    not_before = int(time.time()) + 4  # an HTTP date has whole seconds
    emulator.add_fault(Fault("status", status=503, retry_after=formatdate(not_before, usegmt=True)))
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "later.png"
    image.write_bytes(png_bytes(621))

    wait_sidecar(image, timeout=30)

    first, second = emulator.requests
    assert first.status == 503
    assert second.received_at >= not_before - 0.05, "the retry came before the Retry-After date"


def test_http_400_writes_an_error_record_and_is_not_retried(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("status", status=400, times=-1))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "rejected.png"
    image.write_bytes(png_bytes(630))

    record = wait_for(lambda: read_json(error_record_of(image)), 20, "the error record")
    assert record["code"] == 400
    assert record["error"].startswith("HTTP 400")
    (drop / "sentinel.png").write_bytes(png_bytes(631))
    wait_for(lambda: len(emulator.requests) >= 2, 20, "the sentinel's request")
    assert [r.sha256 for r in emulator.requests].count(sha256(png_bytes(630))) == 1

    # A new version of the file is tried again, and its success removes the error record.
    emulator.clear_faults()
    agent.signal(signal.SIGHUP)  # not needed for the retry; proves reload does not resurrect the old one
    image.write_bytes(png_bytes(632))
    wait_sidecar(image)
    assert not error_record_of(image).exists()


def test_deleting_an_error_record_asks_for_another_try(start_agent, drop: Path, emulator: Emulator) -> None:
    emulator.add_fault(Fault("status", status=400))
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "retry-me.png"
    image.write_bytes(png_bytes(635))
    wait_for(lambda: read_json(error_record_of(image)), 20, "the error record")

    error_record_of(image).unlink()

    wait_sidecar(image)
    assert_sidecar_describes(image, emulator)
    assert [r.status for r in emulator.requests] == [400, 200]


def test_account_pause_resumes_when_the_api_accepts_again(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("status", status=401, times=-1))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "held.png").write_bytes(png_bytes(640))
    wait_for(lambda: "paused" in agent.log(), 20, "the account pause")
    assert "refused the token" in agent.log()

    emulator.clear_faults()
    agent.signal(signal.SIGHUP)  # an operator who fixed the token reloads: the probe goes at once

    wait_sidecar(drop / "held.png", timeout=20)
    assert not error_record_of(drop / "held.png").exists()


# ---- bad input -----------------------------------------------------------------------------------


def test_zero_byte_file_waits_until_it_has_content(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "empty.png"
    image.touch()
    (drop / "sentinel.png").write_bytes(png_bytes(650))
    wait_sidecar(drop / "sentinel.png")
    assert not sidecar_of(image).exists() and not error_record_of(image).exists()
    assert len(emulator.requests) == 1

    image.write_bytes(png_bytes(651))
    assert wait_sidecar(image)["sha256"] == sha256(png_bytes(651))


def test_file_deleted_during_its_upload_leaves_nothing(start_agent, drop: Path, emulator: Emulator) -> None:
    emulator.add_fault(Fault("slow", delay=1.0))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "gone.png"
    image.write_bytes(png_bytes(660))
    emulator.wait_for_held(1, timeout=20)
    image.unlink()
    (drop / "sentinel.png").write_bytes(png_bytes(661))

    wait_sidecar(drop / "sentinel.png")
    wait_for(lambda: "disappeared" in agent.log() or "changed" in agent.log(), 10, "the discard to be logged")
    assert not sidecar_of(image).exists()


def test_file_rewritten_during_its_upload_gets_its_final_bytes(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("slow", delay=1.0))
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "moving.png"
    image.write_bytes(png_bytes(670))
    emulator.wait_for_held(1, timeout=20)
    image.write_bytes(png_bytes(671, size=70))

    sidecar = wait_sidecar(image, timeout=20)

    assert sidecar["sha256"] == sha256(png_bytes(671, size=70))
    assert_sidecar_describes(image, emulator)


def test_file_renamed_during_its_upload_is_uploaded_under_its_new_name(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("slow", delay=1.0))
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "before.png"
    image.write_bytes(png_bytes(680))
    emulator.wait_for_held(1, timeout=20)
    os.rename(image, drop / "after.png")

    wait_sidecar(drop / "after.png", timeout=20)
    assert_sidecar_describes(drop / "after.png", emulator)
    assert not sidecar_of(image).exists()


def test_jpeg_named_png_is_sent_as_jpeg_and_truncated_png_still_uploads(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "photo.png").write_bytes(jpeg_bytes(690))
    truncated = png_bytes(691)[:-20]
    (drop / "cut.png").write_bytes(truncated)

    assert wait_sidecar(drop / "photo.png")["contentType"] == "image/jpeg"
    # Not complete: it gets the full settle time, then goes as what its first bytes say it is.
    assert wait_sidecar(drop / "cut.png")["sha256"] == sha256(truncated)


def test_text_named_jpg_and_oversized_file_get_error_records(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "readme.jpg").write_text("plain text")
    huge = drop / "huge.png"
    with huge.open("wb") as f:
        f.write(png_bytes(700))
        f.truncate(5 * 1000**3 + 1)  # sparse: costs no disk

    text_record = wait_for(lambda: read_json(error_record_of(drop / "readme.jpg")), 20, "text error record")
    huge_record = wait_for(lambda: read_json(error_record_of(huge)), 20, "oversize error record")

    assert text_record["code"] == "not_an_image"
    assert huge_record["code"] == "too_large" and "5 GB" in huge_record["error"]
    assert emulator.requests == []


def test_unreadable_file_gets_an_error_record(emulator: Emulator, nobody: OtherUser) -> None:
    """Root reads everything, so the agent runs as `nobody` here, as the service user would."""
    shared = Path(tempfile.mkdtemp(prefix="mmw-shared-", dir="/tmp"))
    shared.chmod(0o755)  # `nobody` enters it, wherever the checkout and pytest's tmp_path live
    drop = shared / "drop"
    drop.mkdir()
    drop.chmod(0o777)
    secret = drop / "secret.png"
    secret.write_bytes(png_bytes(710))
    secret.chmod(0o000)
    (drop / "open.png").write_bytes(png_bytes(711))
    config = shared / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "api": {"base_url": emulator.base_url},
                "settle_seconds": 0.5,
                "folders": [{"path": str(drop), "account": ACCOUNT_A}],
            }
        )
    )
    config.chmod(0o644)
    env = dict(os.environ, USEAPI_TOKEN=TOKEN)
    try:
        result = nobody.run("scan", "--config", str(config), env=env)
        # The readable file first: an agent that never ran (exit status 1 too) is told apart here.
        assert sidecar_of(drop / "open.png").exists(), result.stderr
        assert result.returncode == 1, result.stderr
        record = read_json(error_record_of(secret))
        assert record is not None and record["code"] == "unreadable", result.stderr
        assert "permission" in record["error"].lower()

        # Fixing the permissions is enough: the file need not change for its next try.
        secret.chmod(0o644)
        again = nobody.run("scan", "--config", str(config), env=env)
        assert again.returncode == 0, again.stderr
        assert json.loads(sidecar_of(secret).read_text())["sha256"] == sha256(png_bytes(710))
        assert not error_record_of(secret).exists()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_directories_fifos_and_sockets_named_png_are_ignored(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    (drop / "folder.png").mkdir()
    os.mkfifo(drop / "fifo.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(drop / "sock.png"))
    try:
        start_agent([{"path": str(drop), "account": ACCOUNT_A, "recursive": True}])
        os.mkfifo(drop / "later-fifo.png")
        (drop / "sentinel.png").write_bytes(png_bytes(720))
        wait_sidecar(drop / "sentinel.png")
    finally:
        sock.close()
    assert len(emulator.requests) == 1
    for name in ("folder.png", "fifo.png", "sock.png", "later-fifo.png"):
        assert not (drop / (name + ".json")).exists()
        assert not (drop / (name + ".error.json")).exists()


def test_awkward_names_are_handled(start_agent, drop: Path, emulator: Emulator) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    names = ["with space.png", "ünïcödé-画像.png", "new\nline.png", "quote'\"$(x).jpg"]
    for i, name in enumerate(names):
        (drop / name).write_bytes(png_bytes(730 + i) if name.endswith(".png") else jpeg_bytes(730 + i))

    for name in names:
        sidecar = wait_sidecar(drop / name)
        assert sidecar["file"] == name
    assert "new\nline" not in agent.log(), "a newline in a file name must not split a log line"


def test_symlink_planted_at_the_sidecar_name_is_replaced_not_followed(
    start_agent, drop: Path, tmp_path: Path, emulator: Emulator
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (drop / "trap.png.json").symlink_to(victim)
    (drop / "trap.png").write_bytes(png_bytes(740))
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])

    wait_for(lambda: not (drop / "trap.png.json").is_symlink(), 20, "the link to be replaced")

    assert victim.read_text() == "precious"
    assert_sidecar_describes(drop / "trap.png", emulator)


def test_folder_deleted_and_recreated_is_watched_again(start_agent, drop: Path, emulator: Emulator) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    shutil.rmtree(drop)
    wait_for(lambda: "removed or moved away" in agent.log(), 10, "the lost folder to be noticed")
    drop.mkdir()
    (drop / "again.png").write_bytes(png_bytes(750))

    wait_sidecar(drop / "again.png", timeout=30)
    (drop / "after.png").write_bytes(png_bytes(751))
    wait_sidecar(drop / "after.png", timeout=10)


@pytest.mark.slow
def test_burst_of_10000_small_files(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}], concurrency=8)
    images = [drop / f"b{i:05}.png" for i in range(10_000)]
    for i, image in enumerate(images):
        image.write_bytes(png_bytes(10_000 + i, size=8))

    wait_for(lambda: len(emulator.uploads) >= len(images), 300, "10,000 uploads", interval=0.5)
    for image in images:
        wait_sidecar(image, timeout=30)
    assert len({u.sha256 for u in emulator.uploads}) == len(images)
    assert len(emulator.uploads) == len(images), "no file may be uploaded twice in a plain burst"


def test_a_file_name_that_is_not_utf8_gets_its_sidecar(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    name = b"latin1-\xe9t\xe9.png"  # a name written by a program in a Latin-1 locale
    with open(os.path.join(os.fsencode(drop), name), "wb") as f:
        f.write(png_bytes(960))
    sidecar_name = os.path.join(os.fsencode(drop), name + b".json")

    def sidecar() -> dict[str, object] | None:
        try:
            with open(sidecar_name, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None

    record = wait_for(sidecar, 20, "the sidecar of a non-UTF-8 name")
    assert record["sha256"] == sha256(png_bytes(960))
    assert os.fsencode(record["file"]) == name
    assert len(emulator.uploads) == 1
