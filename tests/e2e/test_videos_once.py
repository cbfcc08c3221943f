"""Credits are spent once per version of a file, prompt and settings (SPEC §8, THREAT_MODEL rule 5),
and again only when the operator asks (`minimax-watcher retry`), with the real agent and emulator.

"Never" is proved by a later image: the pipeline offers images to the generator in the order their
sidecars are written and the generator takes its offers in order, so once a later image's video is
done, the generator has decided about everything offered before it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes, sha256
from tests.helpers.videos import command, generate, is_mp4, status_json, video_record_of, wait_video
from watcher.emulator import Emulator, Fault


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Videos made in a second (the shared fixture's take three)."""
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1) as emu:
        yield emu


def file_id_of(image: Path) -> str:
    sidecar = read_json(sidecar_of(image))
    assert sidecar is not None, f"no sidecar for {image}"
    return str(sidecar["fileID"])


def created_for(emulator: Emulator, image: Path) -> int:
    """How many videos/create named `image`'s current fileID."""
    return sum(1 for c in emulator.creates if c.body.get("fileID") == file_id_of(image))


def settled_by(drop: Path, name: str, seed: int) -> None:
    """A later image whose video ends: everything offered before it has been decided."""
    (drop / name).write_bytes(png_bytes(seed))
    assert wait_video(drop / name)["status"] == "done"


def test_one_video_per_version_across_restart_record_deletion_and_reupload(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}])
    image = drop / "cat.png"
    image.write_bytes(png_bytes(25000))
    first = wait_video(image)
    assert first["status"] == "done", first

    # A restart: the folder is scanned again, the journal read again.
    assert agent.stop() == 0, agent.log()
    agent.start()
    settled_by(drop, "after-restart.png", 25001)
    assert len(emulator.creates) == 2 and created_for(emulator, image) == 1

    # The video record is for people: deleting it (a dropper can) asks for nothing.
    video_record_of(image).unlink()
    settled_by(drop, "after-record.png", 25002)
    assert len(emulator.creates) == 3 and created_for(emulator, image) == 1

    # Deleting the sidecar has the image taken again: the same bytes, a sidecar written again, the
    # same video.
    old_sidecar = read_json(sidecar_of(image))
    sidecar_of(image).unlink()
    again = wait_sidecar(image)
    assert again["sha256"] == old_sidecar["sha256"]  # type: ignore[index]
    settled_by(drop, "after-sidecar.png", 25003)
    assert len(emulator.creates) == 4
    assert sum(1 for c in emulator.creates if c.body["fileID"] in (again["fileID"], first["fileID"])) == 1

    # New bytes are a new version: a new video, beside the first.
    image.write_bytes(png_bytes(25009))
    changed = wait_sidecar(image, timeout=20, differs_from=again["sha256"])
    assert changed["sha256"] == sha256(png_bytes(25009))
    second = wait_video(image, status="done")
    assert second["fileID"] == changed["fileID"] and second["videoId"] != first["videoId"]
    assert second["video"] == "videos/cat-1.mp4" and is_mp4(drop / "videos" / "cat-1.mp4")
    assert is_mp4(drop / "videos" / "cat.mp4")  # the first video is kept
    assert len(emulator.creates) == 5


def test_retry_asks_again_for_a_video_refused_by_moderation(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("status", status=422, target="create"))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}])
    image = drop / "risky.png"
    image.write_bytes(png_bytes(25010))
    failed = wait_video(image)
    assert failed["status"] == "failed" and failed["error"], failed
    assert failed["videoId"] is None and failed["video"] is None
    [folder] = status_json(agent.workdir)["folders"]
    assert folder["videos"]["failed"] == 1

    # Failed for good: nothing more happens on its own (a later image's video proves it decided).
    settled_by(drop, "later.png", 25011)
    assert created_for(emulator, image) == 1

    result = command(agent.workdir, "retry", str(image))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"{image}: video failed (")
    assert "a new video will be requested" in result.stdout
    done = wait_video(image, status="done")
    assert done["error"] is None and is_mp4(drop / "videos" / "risky.mp4")
    assert created_for(emulator, image) == 2 and [c.status for c in emulator.creates] == [422, 200, 200]
    [folder] = status_json(agent.workdir)["folders"]
    assert (folder["videos"]["done"], folder["videos"]["failed"]) == (2, 0)
    state = agent.workdir / "state" / "minimax-watcher" / "retry"
    wait_for(lambda: not any(state.iterdir()), 20, "the retry request taken and deleted")


def test_retry_asks_for_a_video_of_an_image_done_before_generate_was_on(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    agent: AgentProcess = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "old.png"
    image.write_bytes(png_bytes(25020))
    sidecar = wait_sidecar(image)
    config = yaml.safe_load(agent.config_path.read_text())
    config["folders"][0]["generate"] = generate()
    agent.config_path.write_text(yaml.safe_dump(config))
    agent.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in agent.log(), 20, "the reload")
    assert not video_record_of(image).exists() and emulator.creates == []

    result = command(agent.workdir, "retry", str(image))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{image}: done, no video: a video will be requested"
    record = wait_video(image)
    assert record["status"] == "done" and record["fileID"] == sidecar["fileID"], record
    assert is_mp4(drop / "videos" / "old.mp4")
    [create] = emulator.creates
    assert create.body["fileID"] == sidecar["fileID"]

    # Asking again for a video that is done spends nothing.
    again = command(agent.workdir, "retry", str(image))
    assert again.returncode == 0, again.stderr
    assert "nothing to retry" in again.stdout.splitlines()[0]
    settled_by(drop, "later.png", 25021)
    assert len(emulator.creates) == 2


def test_a_video_generating_at_kill_9_is_polled_after_the_restart_not_asked_for_again(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.configure(generation_seconds=6)
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}])
    image = drop / "slow.png"
    image.write_bytes(png_bytes(25030))
    asked = wait_video(image, status="generating")
    assert agent.proc is not None
    agent.proc.kill()
    agent.proc.wait()
    agent.proc = None

    agent.start()
    record = wait_video(image, status="done")

    assert record["videoId"] == asked["videoId"] and is_mp4(drop / "videos" / "slow.mp4")
    [create] = emulator.creates
    assert create.video_id == asked["videoId"]
    assert {p.video_id for p in emulator.polls} == {asked["videoId"]}
