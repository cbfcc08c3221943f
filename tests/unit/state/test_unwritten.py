"""The state folder's journal of sidecars waiting for their folder: appends, replay, torn lines, compaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.core.signature import FileSignature
from watcher.state.journal import COMPACT_AFTER
from watcher.state.unwritten import SIDECARS, UnwrittenSidecars

JOURNAL_FILE = SIDECARS.file

SIG = FileSignature(10, 20, 30)
_opened: list[UnwrittenSidecars] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    """Each store's writer thread ends with its test, as the agent's does at stop."""
    yield
    while _opened:
        _opened.pop().close()


def opened(state: Path | None) -> UnwrittenSidecars:
    store = UnwrittenSidecars(state)
    _opened.append(store)
    return store


def reopened(state: Path) -> UnwrittenSidecars:
    store = opened(state)
    store.load()
    return store


def test_what_was_added_and_not_discarded_is_there_after_a_restart(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.add("/d/a.png", {"fileID": "a"}, SIG)
    store.add("/d/b.png", {"fileID": "b"}, SIG)
    store.discard("/d/a.png")
    store.close()
    again = reopened(tmp_path)
    assert [p for p, _ in again.items()] == ["/d/b.png"]
    [(_, entry)] = again.items()
    assert entry.sidecar == {"fileID": "b"} and entry.signature == SIG


def test_each_change_appends_one_line_instead_of_rewriting_the_file(tmp_path: Path) -> None:
    store = opened(tmp_path)
    journal = tmp_path / JOURNAL_FILE
    for i in range(200):
        store.add(f"/d/{i}.png", {"fileID": str(i)}, SIG)
    store.close()
    lines = journal.read_bytes().splitlines()
    assert len(lines) == 200
    first = lines[0]
    store.add("/d/more.png", {"fileID": "m"}, SIG)
    store.close()
    after = journal.read_bytes().splitlines()
    assert len(after) == 201 and after[0] == first  # appended; the old lines untouched


def test_a_torn_last_line_from_a_crash_is_skipped(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.add("/d/a.png", {"fileID": "a"}, SIG)
    store.close()
    with (tmp_path / JOURNAL_FILE).open("ab") as f:
        f.write(b'{"add": "/d/b.png", "size": 1, "mti')
    again = reopened(tmp_path)
    assert [p for p, _ in again.items()] == ["/d/a.png"]


def test_the_journal_is_compacted_to_its_live_entries(tmp_path: Path) -> None:
    store = opened(tmp_path)
    for i in range(COMPACT_AFTER + 50):
        store.add("/d/churn.png", {"fileID": str(i)}, SIG)
        store.discard("/d/churn.png")
    store.add("/d/kept.png", {"fileID": "k"}, SIG)
    store.close()
    lines = (tmp_path / JOURNAL_FILE).read_bytes().splitlines()
    assert len(lines) < COMPACT_AFTER + 10
    assert [p for p, _ in reopened(tmp_path).items()] == ["/d/kept.png"]


def test_without_a_state_folder_entries_live_in_memory_only(tmp_path: Path) -> None:
    store = opened(None)
    store.add("/d/a.png", {"fileID": "a"}, SIG)
    store.close()
    assert [p for p, _ in store.items()] == ["/d/a.png"] and list(tmp_path.iterdir()) == []


def test_close_writes_what_waits_and_ends_the_writer_thread(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.add("/d/a.png", {"fileID": "a"}, SIG)
    [writer] = [thread for thread in threading.enumerate() if thread.name == "state-journal"]
    store.close()
    assert not writer.is_alive()
    assert [p for p, _ in reopened(tmp_path).items()] == ["/d/a.png"]
