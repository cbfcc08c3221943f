"""The start-up helper process: it checks directories against the index, and nothing it says or fails
to say changes what a walk reports. Real files, a real index, a real child process."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, TOKEN
from tests.helpers.images import png_bytes
from watcher.core.folders import Folder
from watcher.core.messages import FoundFile, ScanBatch, ScanFinished
from watcher.core.signature import record_id_of, signature_of
from watcher.disk.records import build_sidecar
from watcher.scan import inventory
from watcher.scan import scanner as scanner_module
from watcher.scan.helper import SharedHelper, WalkHelper, _checked
from watcher.scan.inventory import walk_candidates
from watcher.scan.scanner import Scanner
from watcher.state.index import HistoryIndex

DIRECTORIES = 6
PER_DIRECTORY = 4


@pytest.fixture(autouse=True)
def helper_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper starts as soon as there are two directories to share, not after thousands of files."""
    monkeypatch.setattr(inventory, "HELPER_AFTER_ENTRIES", 0)
    monkeypatch.setattr(inventory, "HELPER_AFTER_DIRECTORIES", 2)


def write_done(image: Path, history: HistoryIndex, seed: int) -> None:
    image.write_bytes(png_bytes(seed))
    signature = signature_of(os.stat(image))
    sidecar = image.with_name(image.name + ".json")
    record = build_sidecar(image_path=str(image), account=ACCOUNT_A, file_id=f"user:1-minimax:{ACCOUNT_A}-file:{seed}",
                           oss_path=f"oss/{seed}", signature=signature, sha256="0" * 64,
                           content_type="image/png")  # fmt: skip
    sidecar.write_text(json.dumps(record))
    history.put(str(image), signature, ACCOUNT_A, record_id_of(os.stat(sidecar)))


@pytest.fixture
def done_tree(tmp_path: Path) -> Iterator[tuple[Path, HistoryIndex]]:
    """A recursive folder of done images, each with its sidecar and its row in a committed index."""
    root = tmp_path / "drop"
    state = tmp_path / "state"
    state.mkdir()
    history = HistoryIndex(state)
    for d in range(DIRECTORIES):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(PER_DIRECTORY):
            write_done(root / f"d{d}" / f"img{i}.png", history, 100 * d + i)
    history.close()  # committed: the helper reads the file, as at a start
    reopened = HistoryIndex(state)
    yield root, reopened
    reopened.close()


class Walk:
    """One walk's report: each file reported with its state, and the known files that vanished."""

    def __init__(self, root: Path, history: HistoryIndex, *, helper: bool, kill_helper: bool = False) -> None:
        self.vanished: list[str] = []
        self.helpers: list[WalkHelper] = []

        def start_helper() -> WalkHelper | None:
            started = WalkHelper.start(history.file)  # type: ignore[arg-type]
            assert started is not None
            if kill_helper:
                os.kill(started._process.pid, signal.SIGKILL)
            self.helpers.append(started)
            return started

        shared = SharedHelper(start_helper)
        try:
            found = walk_candidates(str(root), True, ACCOUNT_A, known_in=history.known_in,
                                    on_vanished=lambda d, names: self.vanished.extend(f"{d}/{n}" for n in names),
                                    helper=shared if helper else None)  # fmt: skip
            self.reported = sorted((os.path.relpath(f.path, root), f.state.name) for f in found)
        finally:
            shared.close()


def disturb(root: Path, history: HistoryIndex) -> dict[str, str]:
    """What a user did while the agent was stopped, and what the next walk must say of each file."""
    (root / "d0" / "img0.png").write_bytes(png_bytes(9000))  # new bytes
    (root / "d1" / "img1.png.json").write_text("{}")  # its sidecar edited in place (same inode)
    (root / "d2" / "img2.png").unlink()
    (root / "d2" / "img2.png.json").unlink()
    (root / "d3" / "new.png").write_bytes(png_bytes(9001))  # arrived meanwhile
    sidecar = root / "d4" / "img3.png.json"
    touched = sidecar.read_text()
    sidecar.write_text(touched)  # the same text rewritten in place: a sidecar still valid, read again
    return {
        "d0/img0.png": "PENDING",
        "d1/img1.png": "PENDING",
        "d3/new.png": "PENDING",
        "d4/img3.png": "DONE",
    }


def test_a_walk_with_the_helper_reports_exactly_what_one_process_reports(
    done_tree: tuple[Path, HistoryIndex],
) -> None:
    root, history = done_tree
    expected = disturb(root, history)
    alone = Walk(root, history, helper=False)
    shared = Walk(root, history, helper=True)
    assert dict(alone.reported) == expected
    assert shared.reported == alone.reported
    assert sorted(shared.vanished) == sorted(alone.vanished) == [f"{root}/d2/img2.png"]
    assert len(shared.helpers) == 1 and shared.helpers[0].answered > 0  # it did share the work


def test_a_helper_that_dies_hands_its_directories_back(done_tree: tuple[Path, HistoryIndex]) -> None:
    root, history = done_tree
    expected = disturb(root, history)
    shared = Walk(root, history, helper=True, kill_helper=True)
    assert dict(shared.reported) == expected
    assert shared.vanished == [f"{root}/d2/img2.png"]
    assert shared.helpers[0].answered == 0 and not shared.helpers[0].alive


def test_a_subfolder_swapped_for_a_link_lists_nothing_outside_through_the_helper(
    done_tree: tuple[Path, HistoryIndex], tmp_path: Path
) -> None:
    root, history = done_tree
    outside = tmp_path / "outside"
    outside.mkdir()
    # The rows of d5 stay in the index; d5 itself becomes a link to a folder with a same-named image.
    for name in os.listdir(root / "d5"):
        os.replace(root / "d5" / name, outside / name)
    (root / "d5").rmdir()
    (root / "d5").symlink_to(outside)
    (outside / "extra.png").write_bytes(png_bytes(9002))
    shared = Walk(root, history, helper=True)
    assert shared.reported == []
    assert shared.helpers[0].answered > 0


def test_the_helper_gets_no_token_and_no_python_path(
    done_tree: tuple[Path, HistoryIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, history = done_tree
    monkeypatch.setenv("USEAPI_TOKEN", TOKEN)
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_CTYPE", raising=False)
    helper = WalkHelper.start(history.file)  # type: ignore[arg-type]
    assert helper is not None
    try:
        environ = Path(f"/proc/{helper._process.pid}/environ").read_bytes()
        assert TOKEN.encode() not in environ
        assert environ.split(b"\0")[:-1] == [b"LANG=C.UTF-8"]
        helper.send(str(root), ACCOUNT_A, str(root / "d0"))
        answers = list(helper.answers(str(root), wait=True))
        assert [(folder, sorted(checked[0])) for folder, checked in answers if checked is not None] == [
            (str(root / "d0"), [f"img{i}.png" for i in range(PER_DIRECTORY)])
        ]
    finally:
        helper.close()
    assert helper._process.returncode == 0  # it ended on its own once the pipe was closed


@pytest.mark.parametrize(
    "answer",
    [None, "x", (["a"],), (["a"], "b"), ([1], []), (["a"], [None]), {"a": 1}],
)
def test_an_answer_in_another_shape_is_no_answer(answer: object) -> None:
    assert _checked(answer) is None


def test_an_answer_in_its_shape_is_taken() -> None:
    assert _checked((["a.png"], ["gone.png"])) == ({"a.png"}, ["gone.png"])


@pytest.fixture
def running_helper(done_tree: tuple[Path, HistoryIndex]) -> Iterator[tuple[Path, WalkHelper]]:
    """The done tree, and a helper reading its index (closed afterwards)."""
    root, history = done_tree
    helper = WalkHelper.start(history.file)  # type: ignore[arg-type]
    assert helper is not None
    try:
        yield root, helper
    finally:
        helper.close()


def test_answers_are_kept_apart_by_watched_folder_and_dropped_ones_are_never_taken(
    running_helper: tuple[Path, WalkHelper],
) -> None:
    root, helper = running_helper
    # Two watched folders as the helper sees them: the tree itself, and one of its subfolders.
    whole, part = str(root), str(root / "d1")
    helper.send(whole, ACCOUNT_A, str(root / "d0"))
    helper.send(part, ACCOUNT_A, part)
    helper.send(whole, ACCOUNT_A, str(root / "d2"))
    assert helper.holds(part, part) and helper.outstanding(whole) == 2
    taken = [(folder, checked) for folder, checked in helper.answers(part, wait=True)]
    assert [(folder, len(checked[0])) for folder, checked in taken if checked] == [(part, PER_DIRECTORY)]
    helper.drop(whole)  # its walk ended: what was sent for it must never serve a later walk
    assert not helper.holds(whole, str(root / "d0")) and helper.outstanding(whole) == 0
    assert list(helper.answers(whole, wait=True)) == []
    helper.send(whole, ACCOUNT_A, str(root / "d0"))  # asked again: this answer is taken
    assert [folder for folder, checked in helper.answers(whole, wait=True) if checked] == [str(root / "d0")]
    assert helper.answered == 2  # the answers taken: the two dropped ones are not


class Collected:
    def __init__(self) -> None:
        self.found: list[FoundFile] = []
        self.finished: list[ScanFinished] = []
        self.scanner: Scanner | None = None

    def __call__(self, message: object) -> None:
        if isinstance(message, ScanBatch):
            self.found.extend(message.files)
            assert self.scanner is not None
            self.scanner.batch_taken()
        elif isinstance(message, ScanFinished):
            self.finished.append(message)


def start_up_scans(folders: list[Folder], history: HistoryIndex) -> Collected:
    """The scanner's start-up round over `folders`, as an agent's start asks for it."""
    collected = Collected()
    scanner = Scanner(collected, history)
    collected.scanner = scanner
    for folder in folders:
        scanner.scan(folder, initial=True)
    scanner.start()
    deadline = time.monotonic() + 30
    while len(collected.finished) < len(folders):
        assert time.monotonic() < deadline, "the start-up scans did not finish"
        time.sleep(0.01)
    scanner.stop()
    return collected


def test_a_start_with_many_flat_folders_shares_the_ones_waiting_and_reports_the_same(
    done_tree: tuple[Path, HistoryIndex], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root, history = done_tree
    expected = disturb(root, history)
    # Every subdirectory of the tree is a flat watched folder of its own.
    folders = [
        Folder(str(root / f"d{d}"), ACCOUNT_A, recursive=False, polling=False) for d in range(DIRECTORIES)
    ]
    with caplog.at_level(logging.DEBUG, logger="watcher.scan.helper"):
        monkeypatch.setattr(scanner_module, "HELPER_AFTER_ENTRIES", 10**9)
        alone = start_up_scans(folders, history)
        assert "start-up helper" not in caplog.text
        monkeypatch.setattr(scanner_module, "HELPER_AFTER_ENTRIES", 0)
        monkeypatch.setattr(scanner_module, "HELPER_AFTER_DIRECTORIES", 2)
        shared = start_up_scans(folders, history)
    checked = [line for line in caplog.text.splitlines() if "the start-up helper checked" in line]
    assert checked and int(checked[-1].split("checked ")[1].split()[0]) > 0  # it did share the work

    def report(collected: Collected) -> list[tuple[str, str]]:
        return sorted((os.path.relpath(f.path, root), f.state.name) for f in collected.found)

    assert dict(report(alone)) == expected
    assert report(shared) == report(alone)
    assert sorted(f.folder.path for f in shared.finished) == sorted(f.path for f in folders)


def test_a_directory_sent_to_a_helper_that_has_just_died_comes_back_to_the_walk(
    running_helper: tuple[Path, WalkHelper],
) -> None:
    root, helper = running_helper
    os.kill(helper._process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while helper.alive:  # its reader sees the pipe close
        assert time.monotonic() < deadline, "the helper's end was not noticed"
        time.sleep(0.01)
    # What a walk does when the helper dies between its `alive` check and the send.
    helper.send(str(root), ACCOUNT_A, str(root / "d0"))
    assert list(helper.answers(str(root), wait=True)) == [(str(root / "d0"), None)]
