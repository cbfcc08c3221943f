"""The agent's side of a video's end: what moves along with an image into done_dir, and under which
names (real files, no-follow moves)."""

from __future__ import annotations

import os
from pathlib import Path

from watcher.disk.mover import Mover
from watcher.video.outcomes import companions


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_companions_are_the_video_record_the_prompt_and_the_end_frame_with_its_records(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop"
    image = touch(drop / "sub" / "cat.png")
    touch(drop / "sub" / "cat.end.jpg")
    assert companions(str(drop), str(image)) == [
        "cat.png.video.json",
        "cat.txt",
        "cat.end.jpg",
        "cat.end.jpg.json",
        "cat.end.jpg.error.json",
    ]
    os.unlink(drop / "sub" / "cat.end.jpg")
    assert companions(str(drop), str(image)) == ["cat.png.video.json", "cat.txt"]


def test_companions_move_under_the_images_new_name_never_over_a_taken_one_nor_through_a_link(
    tmp_path: Path,
) -> None:
    drop, done = tmp_path / "drop", tmp_path / "drop" / "done"
    image = touch(drop / "cat.png")
    for name in ("cat.png.video.json", "cat.txt", "cat.end.png", "cat.end.png.json"):
        touch(drop / name, name.encode())
    outside = touch(tmp_path / "secret")
    (drop / "cat.end.png.error.json").symlink_to(outside)  # a dropper's link under a companion's name
    touch(done / "cat-1.txt", b"someone else's")  # a taken name where the file moves
    moved = touch(done / "cat-1.png")  # the image itself moved as cat-1.png (cat.png was taken)
    os.unlink(image)

    Mover(None).move_along(str(drop), str(image), str(moved), str(done), companions(str(drop), str(image)))

    assert (done / "cat-1.png.video.json").read_bytes() == b"cat.png.video.json"
    assert (done / "cat-1.end.png").read_bytes() == b"cat.end.png"
    assert (done / "cat-1.end.png.json").read_bytes() == b"cat.end.png.json"
    assert (done / "cat-1.txt").read_bytes() == b"someone else's"  # never replaced
    assert (drop / "cat.txt").exists()  # so it stays, said in the log
    assert (drop / "cat.end.png.error.json").is_symlink()  # not the agent's to move
    assert not (done / "cat-1.end.png.error.json").exists() and outside.read_bytes() == b"x"
