"""The state folder's append-only journals: reading past torn lines, group commit, and compaction that
never loses a line appended meanwhile."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest

from tests.helpers import wait_for
from watcher.state import journal as journal_file
from watcher.state.journal import COMPACT_AFTER, Journal, JournalFile, JournalKind, json_line


def test_torn_oversized_and_foreign_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    big = json_line({"pad": "x" * 200})
    path.write_bytes(
        json_line({"a": 1}) + b"[1, 2]\n" + big + b"not json\n" + json_line({"b": 2}) + b'{"torn'
    )
    journal = JournalFile(path, max_line_bytes=100)
    assert list(journal.read()) == [{"a": 1}, {"b": 2}]
    assert journal.lines == 6


def test_appends_of_many_threads_share_fsyncs_and_all_land_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = JournalFile(tmp_path / "j.jsonl", max_line_bytes=1000)
    threads_count = 8
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def queued() -> int:
        return journal.path.read_bytes().count(b"\n") + sum(len(a.lines) for a in journal._pending)

    def fsync(fd: int) -> None:
        if not fsyncs:  # hold the first commit until every thread has queued its line
            wait_for(lambda: queued() == threads_count, 30, "every append to be queued")
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(journal_file.os, "fsync", fsync)
    threads = [
        threading.Thread(target=journal.append, args=([json_line({"n": n})],)) for n in range(threads_count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(line["n"] for line in journal.read()) == list(range(threads_count))
    assert len(fsyncs) <= 2  # the first batch's, then one for all those queued behind it


def test_an_unsynced_append_that_carries_a_synced_one_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = JournalFile(tmp_path / "j.jsonl", max_line_bytes=1000)
    fsyncs: list[int] = []
    monkeypatch.setattr(journal_file.os, "fsync", fsyncs.append)
    journal.append([json_line({"done": 1})], sync=False)
    assert fsyncs == []
    # A synced append queued by another thread, written by whoever writes next (here an unsynced one).
    queued = journal_file._Append([json_line({"add": 2})], sync=True)
    journal._pending.append(queued)
    journal.append([json_line({"done": 3})], sync=False)
    assert len(fsyncs) == 1 and queued.written and queued.error is None
    assert [json.dumps(line) for line in journal.read()] == ['{"done": 1}', '{"add": 2}', '{"done": 3}']


def test_a_failed_write_fails_every_append_it_carried_and_keeps_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    journal = JournalFile(blocker / "j.jsonl", max_line_bytes=1000)
    queued = journal_file._Append([json_line({"add": 1})], sync=True)
    journal._pending.append(queued)
    with pytest.raises(OSError):
        journal.append([json_line({"add": 2})])
    assert isinstance(queued.error, OSError) and journal._pending == []


def test_a_rewrite_keeps_a_line_appended_while_it_gathers_the_live_state(tmp_path: Path) -> None:
    journal = JournalFile(tmp_path / "j.jsonl", max_line_bytes=1000)
    journal.append([json_line({"add": "old"}), json_line({"done": "old"})])
    late: list[threading.Thread] = []

    def live() -> list[bytes]:
        # Another thread adds an entry after this snapshot was taken: its line must survive.
        thread = threading.Thread(target=journal.append, args=([json_line({"add": "late"})],))
        thread.start()
        late.append(thread)
        wait_for(lambda: len(journal._pending) == 1, 30, "the late append to be queued")
        return [json_line({"add": "kept"})]

    journal.rewrite(live)
    late[0].join(60)
    assert list(journal.read()) == [{"add": "kept"}, {"add": "late"}]


# ---- one journal of live entries, as its users (unwritten sidecars, hook runs, moves) keep them ----

NOTES = JournalKind(
    file="notes.jsonl",
    key="add",
    end="done",
    line=lambda key, entry: {"add": key, "n": entry},
    entry=lambda line, earlier: int(line["n"]),
    notes={"bump": lambda line, entry: entry + int(line["by"])},
    unreadable="cannot read %s (%s): notes are lost",
    unsaved="cannot save notes in %s (%s): kept in memory only",
)


def test_adds_notes_and_ends_come_back_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path, NOTES, logging.getLogger("test"))
    journal.add("a", 1)
    journal.add("b", 2)
    journal.note("bump", "b", {"by": 10})
    journal.note("bump", "gone", {"by": 10})  # not live: nothing journalled
    journal.remove("a")
    journal.add("c", 3, sync=False)
    journal.update("c", lambda n: n * 2)
    with (tmp_path / NOTES.file).open("ab") as f:
        f.write(json_line({"add": 5, "n": 1}) + json_line({"done": ["c"]}) + json_line({"add": "x"}))
    assert (tmp_path / NOTES.file).read_bytes().count(b"\n") == 9
    again = Journal(tmp_path, NOTES, logging.getLogger("test"))
    assert again.read() == {"b": 12, "c": 6}
    assert again.adopt() == {"b": 12, "c": 6} and again.items() == [("b", 12), ("c", 6)]
    assert again.adopt() == {}  # live already


def test_the_file_is_rewritten_as_its_live_entries_once_it_holds_many_more_lines(tmp_path: Path) -> None:
    journal = Journal(tmp_path, NOTES, logging.getLogger("test"))
    journal.add("kept", 1)
    for _ in range(COMPACT_AFTER):
        journal.add("churn", 0)
        journal.remove("churn")
    assert (tmp_path / NOTES.file).read_bytes().count(b"\n") < COMPACT_AFTER + 10
    assert Journal(tmp_path, NOTES, logging.getLogger("test")).read() == {"kept": 1}
    journal.compact()
    assert (tmp_path / NOTES.file).read_bytes() == json_line({"add": "kept", "n": 1})


def test_a_journal_that_cannot_be_written_keeps_its_entries_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    journal = Journal(blocker, NOTES, logging.getLogger("test"), writer="test-journal")
    with caplog.at_level(logging.WARNING, "test"):
        journal.add("a", 1)
        journal.add("b", 2)
        journal.close()
        journal.add("c", 3)
        journal.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot save notes in {blocker} (File exists): kept in memory only"  # mkdir of the state folder
    ]
    assert journal.items() == [("a", 1), ("b", 2), ("c", 3)]
