"""A hostile or broken API and CDN against the videos (THREAT_MODEL.md rule 4, secrets; rule 3,
resources; rule 5, money): the token never goes to a download's host, a download that is not an MP4 or
is far too big fails, an odd videoId is never used, a video that never ends costs no memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, wait_for
from tests.helpers.images import png_bytes
from tests.hostile.videos_kit import assert_mp4, generating, rss_mb, video_record, wait_video
from watcher.emulator import Emulator
from watcher.emulator.faults import Fault

pytestmark = pytest.mark.hostile


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The API at 127.0.0.1, its download URLs at `localhost`: another host, as a CDN's are."""
    with Emulator(
        token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1, cdn_host="localhost"
    ) as emu:
        yield emu


def test_the_token_never_reaches_the_download_host(start_agent, drop: Path, emulator: Emulator) -> None:
    assert emulator.cdn_origin.startswith("http://localhost:") and "127.0.0.1" in emulator.base_url
    start_agent([generating(drop, ACCOUNT_A)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2701))
    record = wait_video(image)
    assert record["status"] == "done", record
    [download] = emulator.downloads
    assert download.status == 200 and download.path.endswith(".mp4")
    assert emulator.token_leaks == []
    assert "authorization" not in {name.lower() for name in download.headers}
    assert_mp4(drop / record["video"])


def test_a_download_of_html_fails_as_not_an_mp4(start_agent, drop: Path, emulator: Emulator) -> None:
    emulator.add_fault(Fault("html", target="download"))
    start_agent([generating(drop, ACCOUNT_A)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2711))
    record = wait_video(image)
    assert record["status"] == "failed" and "not an MP4" in record["error"], record
    assert record["video"] is None and record["videoId"]  # the video stays known by its videoId
    assert not any((drop / "videos").iterdir())


def test_a_download_of_10_gb_fails_as_too_big(start_agent, drop: Path, emulator: Emulator) -> None:
    emulator.add_fault(Fault("huge", target="download", size=10 << 30))
    start_agent([generating(drop, ACCOUNT_A)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2712))
    record = wait_video(image)
    assert record["status"] == "failed" and "limit" in record["error"], record
    assert not any((drop / "videos").iterdir())


ODD_IDS = {
    "dot-dot": "../../x",
    "10000-chars": "user:4242-minimax:111111-video:" + "9" * 10_000,
    "control-chars": "user:4242-minimax:111111-video:1\r\nX-Evil: 1\x00",
}


@pytest.mark.parametrize("odd", ODD_IDS.values(), ids=ODD_IDS.keys())
def test_an_odd_video_id_is_unknown_and_never_polled(
    start_agent, drop: Path, emulator: Emulator, odd: str
) -> None:
    emulator.add_fault(Fault("answer", target="create", answer={"videoId": odd}))
    agent = start_agent([generating(drop, ACCOUNT_A)])
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2720 + len(odd) % 10))
    record = wait_video(image)
    assert record["status"] == "unknown", record
    assert record["videoId"] is None and "videoId" in record["error"]
    assert len(emulator.creates) == 1
    # Decided: said in the log. Never polled, with it or anything else; never sent again.
    wait_for(lambda: "may have spent credits" in agent.log(), 30, "the log to say the create is unknown")
    assert emulator.polls == [] and emulator.downloads == []
    assert "\r\nX-Evil" not in agent.log()


def test_a_video_that_never_ends_stays_generating_without_growing_memory(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("never_ends", target="create"))
    agent = start_agent([generating(drop, ACCOUNT_A)])
    assert agent.proc is not None
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2731))
    emulator.wait_for_records("poll", 5, 60)
    start = rss_mb(agent.proc.pid)
    emulator.wait_for_records("poll", 25, 120)  # a poll a second: 20 more
    grown = rss_mb(agent.proc.pid) - start
    assert grown < 5, f"the agent grew by {grown:.1f} MB over 20 polls of one video"
    assert video_record(image)["status"] == "generating"  # type: ignore[index]
    assert len(emulator.creates) == 1 and emulator.downloads == []
    assert all(p.percent == 99 for p in emulator.polls[1:])
