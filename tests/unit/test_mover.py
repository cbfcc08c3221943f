"""Moving a file and its record to done_dir / failed_dir: names, clashes, and every crash point resumed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.images import png_bytes
from watcher.mover import MOVING_KEY, move_with_record, resume_move


def dropped(root: Path, relative: str, n: int = 1) -> Path:
    image = root / relative
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(png_bytes(n))
    st = image.stat()
    record = {"fileID": "user:1-minimax:2-file:3", "file": image.name, "size": st.st_size,
              "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}  # fmt: skip
    (root / (relative + ".json")).write_text(json.dumps(record))
    return image


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, done = tmp_path / "drop", tmp_path / "drop" / "done"
    root.mkdir()
    return root, done


def test_the_pair_moves_keeping_its_sub_path_and_the_record_names_the_file(tree: tuple[Path, Path]) -> None:
    root, done = tree
    image = dropped(root, "sub/a.png")
    target = move_with_record(str(image), ".json", str(root), str(done))
    assert target == str(done / "sub" / "a.png")
    assert not image.exists() and not Path(str(image) + ".json").exists()
    record = json.loads(Path(target + ".json").read_text())
    assert record["file"] == "a.png" and MOVING_KEY not in record
    assert Path(target).read_bytes() == png_bytes(1)


def test_a_taken_name_is_never_overwritten(tree: tuple[Path, Path]) -> None:
    root, done = tree
    (done / "sub").mkdir(parents=True)
    (done / "sub" / "a.png").write_bytes(b"someone else's")
    (done / "sub" / "a-1.png.json").write_text("{}")  # a record alone also takes the name
    image = dropped(root, "sub/a.png", 2)
    target = move_with_record(str(image), ".json", str(root), str(done))
    assert target == str(done / "sub" / "a-2.png")
    assert (done / "sub" / "a.png").read_bytes() == b"someone else's"
    assert json.loads(Path(target + ".json").read_text())["file"] == "a-2.png"


def crash_after(step: int, root: Path, done: Path, image: Path) -> None:
    """Leave the pair as a kill -9 after `step` of the move would (see watcher.mover)."""
    target = done / image.relative_to(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    record_path = Path(str(image) + ".json")
    record = json.loads(record_path.read_text())
    record.update(file=target.name, **{MOVING_KEY: str(target)})
    record_path.write_text(json.dumps(record))  # step 0: the intent, in the record
    if step >= 1:
        os.link(image, target)  # step 1, first half
    if step >= 2:
        image.unlink()  # step 1 done
    if step >= 3:
        final = {k: v for k, v in record.items() if k != MOVING_KEY}
        Path(str(target) + ".json").write_text(json.dumps(final))  # step 2, first half


@pytest.mark.parametrize("step", [0, 1, 2, 3])
def test_a_move_cut_at_any_point_is_finished_from_the_record(tree: tuple[Path, Path], step: int) -> None:
    root, done = tree
    image = dropped(root, "deep/er/b.png", 3)
    crash_after(step, root, done, image)
    target = resume_move(str(image), ".json", str(root), (str(done),))
    assert target == str(done / "deep" / "er" / "b.png")
    assert not image.exists() and not Path(str(image) + ".json").exists()
    assert Path(target).read_bytes() == png_bytes(3)
    assert MOVING_KEY not in json.loads(Path(target + ".json").read_text())


def test_a_planted_moving_to_outside_the_done_folder_is_refused(
    tree: tuple[Path, Path], tmp_path: Path
) -> None:
    root, done = tree
    image = dropped(root, "x.png", 4)
    record = json.loads(Path(str(image) + ".json").read_text())
    for evil in (str(tmp_path / "etc" / "x.png"), str(done) + "/../../escape.png", str(done) + "x/y.png"):
        record[MOVING_KEY] = evil
        Path(str(image) + ".json").write_text(json.dumps(record))
        assert resume_move(str(image), ".json", str(root), (str(done),)) is None
    assert image.exists() and not (tmp_path / "etc").exists() and not (tmp_path / "escape.png").exists()


def test_a_subfolder_of_the_done_folder_swapped_for_a_link_is_not_followed(
    tree: tuple[Path, Path], tmp_path: Path
) -> None:
    root, done = tree
    outside = tmp_path / "outside"
    outside.mkdir()
    done.mkdir()
    (done / "sub").symlink_to(outside)
    image = dropped(root, "sub/a.png", 5)
    with pytest.raises(OSError):
        move_with_record(str(image), ".json", str(root), str(done))
    assert list(outside.iterdir()) == []
    assert image.exists()


def test_a_planted_orphan_record_cannot_place_itself_beside_another_file_of_the_done_folder(
    tree: tuple[Path, Path],
) -> None:
    root, done = tree
    done.mkdir()
    (done / "real.png").write_bytes(png_bytes(6))  # someone's file, already moved, without a record
    planted = {
        "fileID": "user:1-minimax:2-file:666",
        "size": 1,
        "mtime_ns": 1,
        MOVING_KEY: str(done / "real.png"),
    }
    (root / "real.png.json").write_text(json.dumps(planted))  # no image beside it: an "interrupted move"
    assert resume_move(str(root / "real.png"), ".json", str(root), (str(done),)) is None
    assert not (done / "real.png.json").exists()
