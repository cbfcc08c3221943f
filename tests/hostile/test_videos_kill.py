"""kill -9 at every step of a video (THREAT_MODEL.md rule 5, money; operator mistakes): never two
creates for one intent, never a lost video.

The real agent, killed with SIGKILL while the emulator holds its create, while the video generates and
while its MP4 trickles in; then started again on the same state folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, wait_for, wait_sidecar
from tests.helpers.images import png_bytes
from tests.hostile.videos_kit import (
    VIDEO_DEADLINE,
    assert_mp4,
    cli,
    folder_videos,
    generating,
    hook_runs,
    killed,
    leftovers,
    recording_hook,
    video_record,
    wait_video,
)
from watcher.emulator import Emulator
from watcher.emulator.faults import Fault

pytestmark = pytest.mark.hostile


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Videos take a second (the conftest's start_agent uses this one)."""
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1) as emu:
        yield emu


def test_kill_9_while_the_create_is_in_flight_makes_it_unknown_until_the_operator_retries(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    program, runs = recording_hook(tmp_path)
    emulator.add_fault(Fault("slow", target="create", delay=120))
    agent = start_agent([generating(drop, ACCOUNT_A)], hooks={"on_attention": [str(program)]})
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2301))
    wait_sidecar(image, timeout=30)
    emulator.wait_for_held(1, VIDEO_DEADLINE)  # the create's body is in; its answer never leaves
    killed(agent)

    agent.start()
    record = wait_video(image)
    assert record["status"] == "unknown", record
    assert record["videoId"] is None and "videos/create" in (record["error"] or ""), record
    said = f"{image}: the agent stopped before videos/create answered: it may have spent credits"
    wait_for(lambda: said in agent.log(), 30, "the log to say so")
    [attention] = wait_for(lambda: hook_runs(runs, "attention"), 60, "on_attention for the lost answer")
    assert "shot.png" in attention["env"]["MINIMAX_MESSAGE"]
    assert attention["env"]["MINIMAX_ACCOUNT"] == ACCOUNT_A
    assert len(emulator.creates) == 1
    assert cli("status", cwd=tmp_path).returncode in (0, 1)  # 1 once status sees the unknown video
    # Not sent again on its own: the agent's own status says it has nothing left to do.
    wait_for(lambda: folder_is_settled(tmp_path, drop, unknown=1), 30, "the status to show 1 unknown")
    assert len(emulator.creates) == 1

    result = cli("retry", str(image), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = wait_video(image, {"done"})
    assert len(emulator.creates) == 2
    assert_mp4(drop / record["video"])


def folder_is_settled(cwd: Path, folder: Path, **counts: int) -> bool:
    videos = folder_videos(cwd, folder)
    return (
        videos["queued"] == 0 and videos["generating"] == 0 and all(videos[k] == v for k, v in counts.items())
    )


def test_kill_9_while_the_video_generates_resumes_polling_after_the_restart(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    emulator.configure(generation_seconds=6)
    agent = start_agent([generating(drop, ACCOUNT_A)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2302))
    submitted = wait_video(image, {"generating"})
    assert submitted["videoId"]
    killed(agent)
    polls_before = len(emulator.polls)

    agent.start()
    record = wait_video(image)
    assert record["status"] == "done", record
    assert record["videoId"] == submitted["videoId"]
    assert len(emulator.creates) == 1
    assert len(emulator.polls) > polls_before  # polled after the restart, by the videoId it had
    assert {p.video_id for p in emulator.polls} == {submitted["videoId"]}
    assert_mp4(drop / record["video"])


def test_kill_9_during_the_download_fetches_it_again_and_leaves_no_temporary(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("slow", target="download", delay=120))
    agent = start_agent([generating(drop, ACCOUNT_A)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2303))
    videos = drop / "videos"
    wait_for(lambda: videos.is_dir() and leftovers(videos), VIDEO_DEADLINE, "the MP4's temporary to appear")
    assert len(emulator.downloads) == 1
    killed(agent)
    assert video_record(image)["status"] == "generating"  # type: ignore[index]

    agent.start()
    record = wait_video(image)
    assert record["status"] == "done", record
    assert len(emulator.downloads) == 2 and len(emulator.creates) == 1
    assert record["video"] == "videos/shot.mp4"
    assert_mp4(drop / record["video"])
    assert sorted(p.name for p in videos.iterdir()) == ["shot.mp4"], leftovers(videos)
    assert (
        json.loads((drop / "shot.png.video.json").read_text())["size"] == (videos / "shot.mp4").stat().st_size
    )
