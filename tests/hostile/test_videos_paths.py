"""A dropper's paths and prompt files against the videos (THREAT_MODEL.md rule 1, paths; rule 2, names a
dropper controls are input): `output_dir` and what lies below it are reached without following a link,
an MP4 already there is never replaced, a planted video record is replaced, not written through; a
prompt file that is a FIFO, huge, not UTF-8 or a link fails that image's video alone, and nothing hangs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN
from tests.helpers.images import png_bytes
from tests.hostile.videos_kit import assert_mp4, generating, video_record_of, wait_video
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1) as emu:
        yield emu


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside every watched one, where the agent must write nothing."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def test_an_output_dir_that_is_a_symlink_is_not_followed(
    start_agent, drop: Path, outside: Path, emulator: Emulator
) -> None:
    start_agent([generating(drop, ACCOUNT_A)])
    (drop / "videos").symlink_to(outside)
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2601))
    record = wait_video(image)
    assert record["status"] == "failed", record
    assert f"{drop / 'videos'} is a symlink or lies below one, which is never followed" in record["error"]
    assert record["video"] is None
    assert list(outside.iterdir()) == []
    # The agent goes on: with a real folder in its place, the next image gets its video.
    (drop / "videos").unlink()
    (drop / "videos").mkdir()
    after = drop / "after.png"
    after.write_bytes(png_bytes(2602))
    assert wait_video(after)["status"] == "done"
    assert_mp4(drop / "videos" / "after.mp4")
    assert list(outside.iterdir()) == []


def test_a_symlinked_subfolder_below_output_dir_is_not_followed(
    start_agent, drop: Path, outside: Path, emulator: Emulator
) -> None:
    folder = generating(drop, ACCOUNT_A)
    start_agent([{**folder, "recursive": True}])
    (drop / "sub").mkdir()
    (drop / "videos").mkdir()
    (drop / "videos" / "sub").symlink_to(outside)
    image = drop / "sub" / "shot.png"
    image.write_bytes(png_bytes(2611))
    record = wait_video(image, timeout=120)
    assert record["status"] == "failed", record
    assert f"{drop / 'videos' / 'sub'} is a symlink or lies below one" in record["error"]
    assert list(outside.iterdir()) == []
    assert (drop / "videos" / "sub").is_symlink()


def test_an_mp4_already_there_is_never_replaced(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([generating(drop, ACCOUNT_A)])
    (drop / "videos").mkdir()
    theirs = drop / "videos" / "shot.mp4"
    theirs.write_bytes(b"someone else's video")
    image = drop / "shot.png"
    image.write_bytes(png_bytes(2621))
    record = wait_video(image)
    assert record["status"] == "done" and record["video"] == "videos/shot-1.mp4", record
    assert theirs.read_bytes() == b"someone else's video"
    assert_mp4(drop / "videos" / "shot-1.mp4")


def test_a_planted_video_record_symlink_is_replaced_not_written_through(
    start_agent, drop: Path, outside: Path, emulator: Emulator
) -> None:
    target = outside / "precious.json"
    target.write_text("precious")
    image = drop / "shot.png"
    video_record_of(image).symlink_to(target)
    start_agent([generating(drop, ACCOUNT_A)])
    image.write_bytes(png_bytes(2631))
    record = wait_video(image)
    assert record["status"] == "done"
    assert target.read_text() == "precious"
    assert not video_record_of(image).is_symlink()


def fifo(path: Path) -> None:
    os.mkfifo(path)


def huge(path: Path) -> None:
    path.write_bytes(b"a slow pan " * ((10 << 20) // 11 + 1))


def not_utf8(path: Path) -> None:
    path.write_bytes(b"a slow \xff\xfe pan \xc3")


def shadow(path: Path) -> None:
    path.symlink_to("/etc/shadow")


@pytest.mark.parametrize(
    "make", [fifo, huge, not_utf8, shadow], ids=["fifo", "10MB", "not-utf8", "etc-shadow"]
)
def test_a_hostile_prompt_file_fails_that_image_alone(
    start_agent, drop: Path, emulator: Emulator, make
) -> None:  # type: ignore[no-untyped-def]
    make(drop / "bad.txt")
    start_agent([generating(drop, ACCOUNT_A)])
    bad, good = drop / "bad.png", drop / "good.png"
    bad.write_bytes(png_bytes(2641))
    good.write_bytes(png_bytes(2642))
    record = wait_video(bad)
    assert record["status"] == "failed" and "prompt file" in record["error"], record
    assert wait_video(good)["status"] == "done"
    # Only the good image was sent, with the folder's prompt; nothing of the bad file went anywhere.
    [create] = emulator.creates
    assert create.body["prompt"] == "a slow pan"
    assert not any("root:" in str(c.body) for c in emulator.creates)
