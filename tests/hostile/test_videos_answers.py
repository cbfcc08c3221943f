"""A hostile or broken API's answers to videos/create and to polls (SPEC §8 "Answers"; THREAT_MODEL.md
rule 5, money): an account out of credits or on hold is paused (said, shown, no more creates) while
uploads go on; refusals and moderation end that image's video with the reason; busy and failing servers
are waited out, never counted as a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, wait_for, wait_sidecar
from tests.helpers.images import png_bytes
from tests.hostile.videos_kit import (
    assert_mp4,
    cli,
    folder_videos,
    generating,
    hook_runs,
    recording_hook,
    video_account,
    wait_video,
)
from watcher.emulator import Emulator
from watcher.emulator.faults import Fault

pytestmark = pytest.mark.hostile


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1) as emu:
        yield emu


@pytest.mark.parametrize(
    ("status", "said"),
    [(412, "no credits left: top it up at useapi.net"), (596, "on hold at useapi.net")],
    ids=["412-no-credits", "596-on-hold"],
)
def test_an_account_without_credits_or_on_hold_is_paused_and_uploads_go_on(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator, status: int, said: str
) -> None:
    program, runs = recording_hook(tmp_path)
    emulator.add_fault(Fault("status", target="create", status=status, account=ACCOUNT_A))
    start_agent([generating(drop, ACCOUNT_A)], hooks={"on_attention": [str(program)]})
    first = drop / "first.png"
    first.write_bytes(png_bytes(2401))
    emulator.wait_for_records("create", 1, 60)

    [attention] = wait_for(lambda: hook_runs(runs, "attention"), 60, "on_attention for the paused account")
    assert said in attention["env"]["MINIMAX_MESSAGE"] and attention["env"]["MINIMAX_ACCOUNT"] == ACCOUNT_A
    account = wait_for(
        lambda: (found := video_account(tmp_path, ACCOUNT_A))["paused_until"] and found,
        30,
        "paused in status",
    )
    assert said in account["pause_reason"]
    text = cli("status", cwd=tmp_path).stdout
    assert "paused until" in text and said in text

    # Uploads go on in that folder; the new image waits with the first, no create is sent for either.
    second = drop / "second.png"
    second.write_bytes(png_bytes(2402))
    wait_sidecar(second, timeout=30)
    wait_for(lambda: folder_videos(tmp_path, drop)["queued"] == 2, 30, "both images queued behind the pause")
    assert len(emulator.creates) == 1 and emulator.creates[0].status == status
    assert len(hook_runs(runs, "attention")) == 1  # said once, not once per image


def test_422_fails_that_video_with_the_reason_and_the_next_image_gets_its_video(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("status", target="create", status=422))
    start_agent([generating(drop, ACCOUNT_A)])
    refused = drop / "refused.png"
    refused.write_bytes(png_bytes(2411))
    record = wait_video(refused)
    assert record["status"] == "failed" and "422" in record["error"] and "moderation" in record["error"]
    assert record["video"] is None
    fine = drop / "fine.png"
    fine.write_bytes(png_bytes(2412))
    assert wait_video(fine)["status"] == "done"
    assert len(emulator.creates) == 2


@pytest.mark.parametrize("final", [5, 7, 14])
def test_a_moderated_video_is_recorded_moderated(
    start_agent, drop: Path, emulator: Emulator, final: int
) -> None:
    emulator.add_fault(Fault("final", target="create", video_status=final))
    start_agent([generating(drop, ACCOUNT_A)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2420 + final))
    record = wait_video(image)
    assert record["status"] == "moderated", record
    assert record["statusLabel"] == "moderated" and f"status {final}" in record["error"]
    assert record["video"] is None and not (drop / "videos").exists()
    assert len(emulator.creates) == 1 and not emulator.downloads


def test_404_while_polling_fails_the_video(start_agent, drop: Path, emulator: Emulator) -> None:
    emulator.configure(generation_seconds=30)
    emulator.add_fault(Fault("status", target="poll", status=404))
    start_agent([generating(drop, ACCOUNT_A)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2431))
    record = wait_video(image)
    assert record["status"] == "failed" and "404" in record["error"], record
    assert len(emulator.polls) == 1 and len(emulator.creates) == 1 and not emulator.downloads


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, "1"), (502, None), (503, None)], ids=["429-retry-after", "502", "503"]
)
def test_a_busy_or_failing_server_is_waited_out_not_counted_as_a_failure(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator, status: int, retry_after: str | None
) -> None:
    emulator.add_fault(Fault("status", target="create", status=status, retry_after=retry_after))
    emulator.add_fault(Fault("status", target="poll", status=status, retry_after=retry_after, times=2))
    start_agent([generating(drop, ACCOUNT_A, max_per_day=1)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2440 + status % 10))
    record = wait_video(image, timeout=150)  # 502 and 503 wait a backoff of about 20 s
    assert record["status"] == "done" and record["error"] is None, record
    assert [c.status for c in emulator.creates] == [status, 200]
    assert [p.status for p in emulator.polls][:2] == [status, status]
    assert_mp4(drop / record["video"])
    # The refused create spent nothing: the one that made the video is the day's only one.
    assert video_account(tmp_path, ACCOUNT_A)["today"] == 1
