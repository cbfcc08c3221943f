"""Unit tests for `watcher.video.prompt`: prompt files and end frames as a dropper may leave them, on
real files (FIFOs, sockets, symlinks, huge and broken files among them)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from watcher.core.video import MAX_PROMPT_CHARS
from watcher.video.prompt import MAX_PROMPT_BYTES, PromptFile, end_frame_of, read_prompt

SETTLE = 2.0


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def settled(path: Path) -> None:
    old = time.time() - 60
    os.utime(path, (old, old), follow_symlinks=False)


def prompt_of(drop: Path, image: str = "shot.png", now: float | None = None) -> PromptFile:
    return read_prompt(
        str(drop), f"{drop}/{image}", settle_seconds=SETTLE, now=time.time() if now is None else now
    )


def write_prompt(drop: Path, data: bytes, name: str = "shot.txt") -> Path:
    path = drop / name
    path.write_bytes(data)
    settled(path)
    return path


def test_absent(drop: Path) -> None:
    assert prompt_of(drop) == PromptFile(None, None, False)


def test_a_settled_prompt_is_read_and_stripped(drop: Path) -> None:
    write_prompt(drop, "  slow dolly in,\nthen a pan à gauche \n\n".encode())
    assert prompt_of(drop) == PromptFile("slow dolly in,\nthen a pan à gauche", None, False)


def test_the_prompt_beside_an_image_below_the_folder(drop: Path) -> None:
    (drop / "a" / "b").mkdir(parents=True)
    write_prompt(drop, b"deep", "a/b/shot.txt")
    assert prompt_of(drop, "a/b/shot.png").text == "deep"
    assert prompt_of(drop, "a/b/shot.jpeg").text == "deep"  # the stem is what counts
    assert prompt_of(drop, "shot.png").text is None


def test_a_byte_order_mark_is_dropped(drop: Path) -> None:
    write_prompt(drop, b"\xef\xbb\xbfhello")
    assert prompt_of(drop).text == "hello"


def test_an_empty_prompt_file_counts_as_none(drop: Path) -> None:
    write_prompt(drop, b" \n\t\n")
    assert prompt_of(drop) == PromptFile(None, None, False)


def test_a_prompt_still_being_written_waits(drop: Path) -> None:
    path = drop / "shot.txt"
    path.write_bytes(b"half a sente")
    assert prompt_of(drop) == PromptFile(None, None, True)
    assert prompt_of(drop, now=time.time() + SETTLE + 1).text == "half a sente"
    settled(path)
    assert prompt_of(drop).text == "half a sente"


def test_the_longest_prompt_passes_in_any_script(drop: Path) -> None:
    for char in ("a", "é", "漢", "😀"):
        write_prompt(drop, (char * MAX_PROMPT_CHARS).encode())
        assert prompt_of(drop).text == char * MAX_PROMPT_CHARS


def test_a_prompt_one_character_too_long_is_refused(drop: Path) -> None:
    write_prompt(drop, b"a" * (MAX_PROMPT_CHARS + 1))
    result = prompt_of(drop)
    assert result.text is None and not result.waiting
    assert result.error is not None and f"longer than {MAX_PROMPT_CHARS} characters" in result.error


def test_a_10_mb_prompt_file_is_refused_at_once(drop: Path) -> None:
    path = drop / "shot.txt"
    with open(path, "wb") as out:
        out.truncate(10 << 20)
    settled(path)
    started = time.monotonic()
    result = prompt_of(drop)
    assert time.monotonic() - started < 0.5
    assert result.text is None and result.error is not None and "longer than" in result.error
    assert MAX_PROMPT_BYTES < 10 << 20


def test_invalid_utf8_is_refused_and_named(drop: Path) -> None:
    write_prompt(drop, "café au lait".encode("latin-1"))  # not UTF-8
    result = prompt_of(drop)
    assert result.text is None
    assert result.error == (
        "the prompt file shot.txt is not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8"
    )


def test_a_fifo_is_refused_at_once(drop: Path) -> None:
    fifo = drop / "shot.txt"
    os.mkfifo(fifo)
    settled(fifo)
    result: list[PromptFile] = []
    reader = threading.Thread(target=lambda: result.append(prompt_of(drop)))
    reader.start()
    reader.join(timeout=5)
    if reader.is_alive():  # unblock it so the test leaves no thread behind, then fail
        with open(fifo, "wb"):
            pass
        reader.join()
        pytest.fail("reading a FIFO prompt file blocked")
    assert result[0].text is None and result[0].error is not None and "a FIFO" in result[0].error


def test_a_socket_is_refused(drop: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(drop / "shot.txt"))
        result = prompt_of(drop)
    assert result.text is None and result.error is not None and "socket" in result.error


def test_a_folder_is_refused(drop: Path) -> None:
    (drop / "shot.txt").mkdir()
    result = prompt_of(drop)
    assert result.text is None and result.error is not None and "a folder" in result.error


def test_a_symlink_to_a_secret_is_never_read(drop: Path) -> None:
    (drop / "shot.txt").symlink_to("/etc/passwd")
    result = prompt_of(drop)
    assert result.text is None and result.error is not None and "symlink" in result.error


def test_a_prompt_below_a_symlinked_folder_is_never_read(drop: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_prompt(elsewhere, b"secret")
    (drop / "sub").symlink_to(elsewhere)
    result = prompt_of(drop, "sub/shot.png")
    assert result.text is None and result.error is not None and "symlink" in result.error


def test_an_unreadable_prompt_says_why(drop: Path) -> None:
    (drop / "shot.txt").write_bytes(b"x")
    result = read_prompt(str(drop / "elsewhere"), f"{drop}/shot.png", settle_seconds=0, now=time.time())
    assert (
        result.text is None and result.error is not None and "not inside the watched folder" in result.error
    )


def touch(path: Path) -> Path:
    path.write_bytes(b"image")
    return path


def test_the_end_frame_of_an_image(drop: Path) -> None:
    touch(drop / "shot.png")
    assert end_frame_of(str(drop), f"{drop}/shot.png") is None
    touch(drop / "shot.end.webp")
    assert end_frame_of(str(drop), f"{drop}/shot.png") == f"{drop}/shot.end.webp"
    touch(drop / "shot.end.jpg")
    assert end_frame_of(str(drop), f"{drop}/shot.png") == f"{drop}/shot.end.jpg"  # .jpg before .webp


def test_an_end_frame_in_upper_case(drop: Path) -> None:
    touch(drop / "IMG_1.JPG")
    touch(drop / "IMG_1.end.JPG")
    assert end_frame_of(str(drop), f"{drop}/IMG_1.JPG") == f"{drop}/IMG_1.end.JPG"


def test_an_end_frame_that_is_not_a_regular_file_is_none(drop: Path, tmp_path: Path) -> None:
    touch(drop / "shot.png")
    outside = touch(tmp_path / "outside.png")
    (drop / "shot.end.png").symlink_to(outside)
    (drop / "shot.end.jpg").mkdir()
    os.mkfifo(drop / "shot.end.webp")
    assert end_frame_of(str(drop), f"{drop}/shot.png") is None


def test_an_end_frame_below_a_symlinked_folder_is_none(drop: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    touch(elsewhere / "shot.end.png")
    (drop / "sub").symlink_to(elsewhere)
    assert end_frame_of(str(drop), f"{drop}/sub/shot.png") is None
