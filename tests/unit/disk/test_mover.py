"""Moving a file and its record to done_dir / failed_dir: names, clashes, symlinks, and every crash
point finished (or left to be moved again) from the agent's own journal."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.images import png_bytes
from tests.helpers.imports import imports_of
from watcher.disk import mover as mover_module
from watcher.disk.mover import MOVING_KEY, Mover
from watcher.state.journal import Journal
from watcher.state.moves import move_journal


def dropped(root: Path, relative: str, n: int = 1) -> tuple[Path, dict[str, Any]]:
    """A file and the sidecar the agent wrote for it; the sidecar as a dict too."""
    image = root / relative
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(png_bytes(n))
    st = image.stat()
    record = {
        "fileID": "user:1-minimax:2-file:3",
        "file": image.name,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ino": st.st_ino,
    }
    (root / (relative + ".json")).write_text(json.dumps(record))
    return image, record


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, done = tmp_path / "drop", tmp_path / "drop" / "done"
    root.mkdir()
    return root, done


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def move(mover: Mover, image: Path, record: dict[str, Any], root: Path, done: Path) -> str | None:
    return mover.move(str(image), ".json", str(root), str(done), record)


def live_moves(state: Path) -> list[Any]:
    return list(move_journal(state).read())


def test_the_pair_moves_keeping_its_sub_path_and_the_record_names_the_file(
    tree: tuple[Path, Path], state: Path
) -> None:
    root, done = tree
    image, record = dropped(root, "sub/a.png")
    target = move(Mover(move_journal(state)), image, record, root, done)
    assert target == str(done / "sub" / "a.png")
    assert not image.exists() and not Path(str(image) + ".json").exists()
    moved = json.loads(Path(target + ".json").read_text())
    assert moved["file"] == "a.png" and moved["fileID"] == record["fileID"]
    assert Path(target).read_bytes() == png_bytes(1)
    assert live_moves(state) == []  # marked done


def test_a_taken_name_is_never_overwritten(tree: tuple[Path, Path], state: Path) -> None:
    root, done = tree
    (done / "sub").mkdir(parents=True)
    (done / "sub" / "a.png").write_bytes(b"someone else's")
    (done / "sub" / "a-1.png.json").write_text("{}")  # a record alone also takes the name
    image, record = dropped(root, "sub/a.png", 2)
    target = move(Mover(move_journal(state)), image, record, root, done)
    assert target == str(done / "sub" / "a-2.png")
    assert (done / "sub" / "a.png").read_bytes() == b"someone else's"
    assert (done / "sub" / "a-1.png.json").read_text() == "{}"
    assert json.loads(Path(target + ".json").read_text())["file"] == "a-2.png"


def test_a_name_taken_between_the_look_and_the_link_goes_to_the_next_name(
    tree: tuple[Path, Path], state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, done = tree
    done.mkdir()
    (done / "a.png").write_bytes(b"another move's, linked a moment ago")
    looked = mover_module._exists
    # The race of two moves of one burst: the look says free, the name is taken by the time of the link.
    monkeypatch.setattr(mover_module, "_exists", lambda fd, name: name != "a.png" and looked(fd, name))
    image, record = dropped(root, "a.png", 3)
    target = move(Mover(move_journal(state)), image, record, root, done)
    assert target == str(done / "a-1.png")
    assert (done / "a.png").read_bytes() == b"another move's, linked a moment ago"
    assert json.loads((done / "a-1.png.json").read_text())["file"] == "a-1.png"


class Crash(BaseException):
    """A kill -9 at this point: nothing after it runs, not even an `except Exception`."""


def crash(*_: object, **__: object) -> None:
    raise Crash


def crash_on_second(real: Any) -> Any:
    calls = []

    def call(*args: object) -> Any:
        calls.append(args)
        if len(calls) == 2:
            raise Crash
        return real(*args)

    return call


CRASH_POINTS = {
    "before the link": lambda mp: mp.setattr(mover_module.os, "link", crash),
    "after the link": lambda mp: mp.setattr(mover_module, "_write_record", crash),
    "after the record at its new name": lambda mp: mp.setattr(mover_module, "_leave", crash),
    "after the file left": lambda mp: mp.setattr(
        mover_module, "_unlink", crash_on_second(mover_module._unlink)
    ),
    "before the move is marked done": lambda mp: mp.setattr(Journal, "remove", crash),
}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_move_cut_at_any_point_is_finished_or_left_to_be_moved_again(
    tree: tuple[Path, Path], state: Path, point: str
) -> None:
    root, done = tree
    image, record = dropped(root, "deep/er/b.png", 4)
    with pytest.MonkeyPatch.context() as mp:
        CRASH_POINTS[point](mp)
        with pytest.raises(Crash):
            move(Mover(move_journal(state)), image, record, root, done)

    restarted = Mover(move_journal(state))
    restarted.recover()
    target = done / "deep" / "er" / "b.png"
    if point == "before the link":
        # Untouched: beside its record, the start-up scan moves it (and finds the name free).
        assert image.exists() and not target.exists()
        assert move(restarted, image, record, root, done) == str(target)
    assert not image.exists() and not Path(str(image) + ".json").exists()
    assert target.read_bytes() == png_bytes(4)
    assert json.loads(Path(str(target) + ".json").read_text())["file"] == "b.png"
    assert live_moves(state) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.png", "b.png.json"]


def test_a_record_with_moving_to_is_not_acted_on_and_loses_the_key_when_moved(
    tree: tuple[Path, Path], state: Path, tmp_path: Path
) -> None:
    root, done = tree
    done.mkdir()
    (done / "real.png").write_bytes(png_bytes(6))  # someone's file, already moved
    (done / "real.png.json").write_text('{"theirs": true}')
    # An orphan record naming that file, as versions before the journal wrote them, and one beside
    # a file naming somewhere else: recovery reads only the journal, so neither does anything.
    (root / "real.png.json").write_text(json.dumps({MOVING_KEY: str(done / "real.png"), "size": 1}))
    image, record = dropped(root, "x.png", 7)
    record[MOVING_KEY] = str(tmp_path / "etc" / "x.png")
    Mover(move_journal(state)).recover()
    assert (done / "real.png.json").read_text() == '{"theirs": true}'
    assert image.exists() and not (tmp_path / "etc").exists()

    target = move(Mover(move_journal(state)), image, record, root, done)  # as the start-up scan does
    assert target == str(done / "x.png")
    assert MOVING_KEY not in json.loads((done / "x.png.json").read_text())


@pytest.mark.parametrize("planted", ["done", "done/sub"])
def test_a_symlink_at_or_below_the_done_folder_is_not_followed(
    tree: tuple[Path, Path], state: Path, tmp_path: Path, planted: str
) -> None:
    root, done = tree
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / planted).parent.mkdir(parents=True, exist_ok=True)
    (root / planted).symlink_to(outside)
    image, record = dropped(root, "sub/a.png", 5)
    with pytest.raises(OSError) as caught:
        move(Mover(move_journal(state)), image, record, root, done)
    assert caught.value.errno == errno.ELOOP
    assert "symlink" in mover_module.why_not_moved(caught.value)
    assert list(outside.iterdir()) == []
    assert image.exists() and Path(str(image) + ".json").exists()
    assert live_moves(state) == []


def test_an_absolute_done_folder_outside_is_made_and_its_own_name_is_not_followed(
    tree: tuple[Path, Path], state: Path, tmp_path: Path
) -> None:
    root, _ = tree
    done = tmp_path / "elsewhere" / "done"
    image, record = dropped(root, "a.png", 8)
    assert move(Mover(move_journal(state)), image, record, root, done) == str(
        done / "a.png"
    )  # made, parents too

    outside = tmp_path / "outside"
    outside.mkdir()
    linked = tmp_path / "elsewhere" / "linked"
    linked.symlink_to(outside)
    image, record = dropped(root, "b.png", 9)
    with pytest.raises(OSError):
        move(Mover(move_journal(state)), image, record, root, linked)
    assert list(outside.iterdir()) == [] and image.exists()


def test_a_file_changed_since_its_record_stays(tree: tuple[Path, Path], state: Path) -> None:
    root, done = tree
    image, record = dropped(root, "a.png", 10)
    image.write_bytes(png_bytes(11))
    with pytest.raises(OSError) as caught:
        move(Mover(move_journal(state)), image, record, root, done)
    assert caught.value.errno == errno.ESTALE
    assert image.read_bytes() == png_bytes(11) and not (done / "a.png").exists()


def test_moves_without_a_state_folder_still_happen(tree: tuple[Path, Path]) -> None:
    root, done = tree
    image, record = dropped(root, "a.png", 12)
    assert move(Mover(None), image, record, root, done) == str(done / "a.png")
    assert os.path.exists(str(done / "a.png.json"))


def test_a_journalled_move_whose_new_name_now_holds_another_file_writes_nothing_there(
    tree: tuple[Path, Path], state: Path
) -> None:
    root, done = tree
    image, record = dropped(root, "c.png", 13)
    with pytest.MonkeyPatch.context() as mp:
        CRASH_POINTS["after the link"](mp)
        with pytest.raises(Crash):
            move(Mover(move_journal(state)), image, record, root, done)
    (done / "c.png").unlink()  # while the agent is down: someone else's file takes the name, maybe
    (done / "c.png").write_bytes(b"another file")  # even the inode number, which ext4 reuses at once
    Mover(move_journal(state)).recover()
    assert not (done / "c.png.json").exists()
    assert image.read_bytes() == png_bytes(13) and Path(str(image) + ".json").exists()
    assert live_moves(state) == []


def test_a_done_folder_below_another_watched_folder_is_reached_from_that_folder(
    tree: tuple[Path, Path], state: Path, tmp_path: Path
) -> None:
    root, _ = tree
    other, outside = tmp_path / "other-drop", tmp_path / "outside"
    other.mkdir()
    outside.mkdir()
    (other / "x").symlink_to(outside)  # planted by that folder's dropper, on the way to done
    done = other / "x" / "done"
    image, record = dropped(root, "a.png", 14)
    with pytest.raises(OSError) as caught:
        Mover(move_journal(state), lambda: [str(root), str(other)]).move(
            str(image), ".json", str(root), str(done), record
        )
    assert caught.value.errno == errno.ELOOP
    assert list(outside.iterdir()) == [] and image.exists()


def test_disk_imports_nothing_from_state() -> None:
    """The mover takes its journal (`MoveJournal`) from whoever builds it: `state` builds on `disk`, not
    the other way round."""
    for module, imported in imports_of("watcher.disk").items():
        assert not {name for name in imported if name.startswith("watcher.state")}, module
