"""Image to video around the rest of the agent's life (SPEC §8), with the real agent and emulator: a
`done_dir` move that waits for the video, the one-pass `scan` (and its dry run), a reload that turns
`generate` on over done images, and the agent's own MP4s never taken for drops."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from tests.helpers.media import mp4_bytes
from tests.helpers.videos import command, generate, is_mp4, mp4s, status_json, video_record_of, wait_video
from watcher.emulator import Emulator
from watcher.emulator.faults import Fault


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Videos made in a second (the shared fixture's take three)."""
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1) as emu:
        yield emu


def test_done_dir_waits_for_the_video_then_takes_everything_that_belongs_to_the_image(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.configure(generation_seconds=4)  # long enough to look at the folder while it generates
    folder = {"path": str(drop), "account": ACCOUNT_A, "done_dir": "done", "generate": generate()}
    start_agent([folder])
    (drop / "cat.txt").write_text("the cat stretches")
    (drop / "cat.end.png").write_bytes(png_bytes(24001))
    (drop / "cat.png").write_bytes(png_bytes(24000))
    done = drop / "done"

    wait_video(drop / "cat.png", status="generating")
    # Uploaded, asked for, not yet made: everything stays where the dropper put it.
    for name in ("cat.png", "cat.png.json", "cat.txt", "cat.end.png", "cat.end.png.json"):
        assert (drop / name).exists(), name
    assert not (done / "cat.png").exists()

    record = wait_video(done / "cat.png", status="done")
    moved = ("cat.png", "cat.png.json", "cat.png.video.json", "cat.txt", "cat.end.png", "cat.end.png.json")
    wait_for(lambda: all((done / name).exists() for name in moved), 20, "the companions in done/")
    assert sorted(p.name for p in drop.iterdir() if not p.name.startswith(".")) == ["done", "videos"]
    assert record["prompt"] == "the cat stretches" and record["video"] == "videos/cat.mp4"
    assert is_mp4(drop / "videos" / "cat.mp4") and mp4s(done) == []
    end_sidecar = read_json(done / "cat.end.png.json")
    assert end_sidecar is not None and emulator.creates[0].body["end_frame_fileID"] == end_sidecar["fileID"]
    assert len(emulator.creates) == 1


def test_a_restart_while_the_video_generates_leaves_the_image_until_its_video_ends(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    """The start-up scan moves done files a stop left behind into done_dir, but not an image whose
    video is under way: that one moves with its video record when the video ends."""
    emulator.configure(generation_seconds=6)
    folder = {"path": str(drop), "account": ACCOUNT_A, "done_dir": "done", "generate": generate()}
    agent = start_agent([folder])
    (drop / "owl.png").write_bytes(png_bytes(24100))
    wait_video(drop / "owl.png", status="generating")
    assert agent.proc is not None
    agent.proc.kill()
    agent.proc.wait()
    agent.start()
    assert (drop / "owl.png").exists()  # READY: the start-up scan has passed over it and left it
    record = wait_video(drop / "done" / "owl.png", status="done")
    assert record["video"] == "videos/owl.mp4" and is_mp4(drop / "videos" / "owl.mp4")
    assert not (drop / "owl.png").exists() and len(emulator.creates) == 1


def test_scan_dry_run_counts_the_videos_then_scan_makes_them_and_exits_0(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    config = {
        "api": {"base_url": emulator.base_url},
        "settle_seconds": 0.5,
        "folders": [{"path": str(drop), "account": ACCOUNT_A, "generate": generate(max_per_day=1)}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (drop / "one.png").write_bytes(png_bytes(24010))
    (drop / "two.png").write_bytes(png_bytes(24011))
    (drop / "two.end.png").write_bytes(png_bytes(24012))  # uploaded, but not a video of its own

    dry = command(tmp_path, "scan", "--dry-run")

    assert dry.returncode == 0, dry.stderr
    assert f"2 videos would be requested for {drop} (account={ACCOUNT_A}, model I2V-2.3)" in dry.stdout
    assert "at most 1 a day (max_per_day)" in dry.stdout
    assert "no credits are spent" in dry.stdout
    assert emulator.all_requests == []
    assert not sidecar_of(drop / "one.png").exists()

    config["folders"][0]["generate"]["max_per_day"] = 5  # type: ignore[index]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = command(tmp_path, "scan")

    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("one", "two"):
        record = read_json(video_record_of(drop / f"{name}.png"))
        assert record is not None and record["status"] == "done", record
        assert is_mp4(drop / "videos" / f"{name}.mp4")
    assert not video_record_of(drop / "two.end.png").exists()
    assert len(emulator.creates) == 2 and len(emulator.uploads) == 3
    assert emulator.token_leaks == []


def test_scan_exits_1_when_a_video_it_asked_for_is_not_made(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    """A pipeline that runs `scan` for its videos learns from the exit status that one was refused."""
    config = {
        "api": {"base_url": emulator.base_url},
        "settle_seconds": 0.5,
        "folders": [{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    emulator.add_fault(Fault("final", target="create", video_status=7))  # moderated
    (drop / "bad.png").write_bytes(png_bytes(24030))

    result = command(tmp_path, "scan")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 video not made (failed, moderated or unknown)" in result.stderr, result.stderr
    assert read_json(video_record_of(drop / "bad.png"))["status"] == "moderated"  # type: ignore[index]
    assert sidecar_of(drop / "bad.png").exists() and len(emulator.creates) == 1


def reload_with_generate(agent: AgentProcess) -> None:
    config = yaml.safe_load(agent.config_path.read_text())
    config["folders"][0]["generate"] = generate()
    agent.config_path.write_text(yaml.safe_dump(config))
    reloads = agent.log().count("config reloaded")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: agent.log().count("config reloaded") > reloads, 20, "the reload")


def test_a_reload_that_turns_generate_on_spends_nothing_on_images_done_before(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "old.png").write_bytes(png_bytes(24020))
    wait_sidecar(drop / "old.png")

    reload_with_generate(agent)
    (drop / "new.png").write_bytes(png_bytes(24021))
    record = wait_video(drop / "new.png")

    assert record["status"] == "done", record
    [create] = emulator.creates
    assert create.body["fileID"] == read_json(sidecar_of(drop / "new.png"))["fileID"]  # type: ignore[index]
    # A restart rescans the folder with `generate` on from the start: old.png is still done, not a
    # candidate for a video; a third image proves the restarted agent is at work.
    assert agent.stop() == 0, agent.log()
    agent.start()
    (drop / "third.png").write_bytes(png_bytes(24022))
    wait_video(drop / "third.png", status="done")
    [folder] = status_json(agent.workdir)["folders"]
    assert (folder["videos"]["done"], folder["videos"]["queued"], folder["videos"]["generating"]) == (2, 0, 0)
    assert len(emulator.creates) == 2
    assert not video_record_of(drop / "old.png").exists()
    assert len(emulator.uploads) == 3


def test_the_agent_never_uploads_its_own_mp4s_even_where_videos_are_uploaded(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    folder = {"path": str(drop), "account": ACCOUNT_A, "media": ["image", "video"], "generate": generate()}
    agent = start_agent([folder], rescan_seconds=1)
    (drop / "clip.mp4").write_bytes(mp4_bytes(24030))  # a dropper's own video: uploaded
    (drop / "shot.png").write_bytes(png_bytes(24031))
    wait_sidecar(drop / "clip.mp4")
    wait_video(drop / "shot.png", status="done")
    made = drop / "videos" / "shot.mp4"
    assert is_mp4(made)

    # The next start counts what it finds in the folder: the MP4 it made is not a file waiting.
    assert agent.stop() == 0, agent.log()
    agent.start()
    wait_for(lambda: "ready: 1 folder, 2 files already uploaded, 0 pending, 0 failed" in agent.log(), 20,
             "the restarted agent's ready line")  # fmt: skip
    (drop / "later.png").write_bytes(png_bytes(24032))  # and it is at work: uploads go on
    wait_video(drop / "later.png", status="done")

    uploaded = {u.content_type for u in emulator.uploads}
    assert uploaded == {"image/png", "video/mp4"} and len(emulator.uploads) == 3
    assert [u.sha256 for u in emulator.uploads if u.content_type == "video/mp4"] == [
        read_json(sidecar_of(drop / "clip.mp4"))["sha256"]  # type: ignore[index]
    ]
    assert not sidecar_of(made).exists() and not sidecar_of(drop / "videos" / "later.mp4").exists()
