"""The live status file and its lock, in real folders with real flocks: a reader shows a file only while
an agent holds the lock, and a second agent on the same state folder publishes nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from watcher.report.live_status import LOCK_FILE, STATUS_FILE, LiveStatusWriter, read_live_status


def test_a_running_agents_status_is_read_and_its_file_goes_at_close(tmp_path: Path) -> None:
    state = tmp_path / "state"
    writer = LiveStatusWriter(state)
    assert writer.start(), "the state folder is made, and its lock taken"
    assert read_live_status([state]) is None, "nothing published yet"
    assert writer.publish({"pid": 1, "accounts": []})
    assert read_live_status([state]) == {"pid": 1, "accounts": []}
    writer.close()
    assert not (state / STATUS_FILE).exists()
    assert read_live_status([state]) is None


def test_the_same_snapshot_is_not_written_twice(tmp_path: Path) -> None:
    writer = LiveStatusWriter(tmp_path)
    writer.start()
    assert writer.publish({"n": 1})
    before = (tmp_path / STATUS_FILE).stat()
    assert not writer.publish({"n": 1}), "an idle agent writes nothing"
    assert (tmp_path / STATUS_FILE).stat().st_ino == before.st_ino
    assert writer.publish({"n": 2})
    assert json.loads((tmp_path / STATUS_FILE).read_text()) == {"n": 2}
    writer.close()


def test_a_dead_agents_file_is_not_live(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).touch()
    (tmp_path / STATUS_FILE).write_text(json.dumps({"pid": 4242}))
    assert read_live_status([tmp_path]) is None, "nobody holds the lock: the file is stale"


def test_the_first_state_folder_with_a_live_agent_answers(tmp_path: Path) -> None:
    empty, dead, live = tmp_path / "empty", tmp_path / "dead", tmp_path / "live"
    empty.mkdir()
    dead.mkdir()
    (dead / LOCK_FILE).touch()
    (dead / STATUS_FILE).write_text('{"who": "dead"}')
    writer = LiveStatusWriter(live)
    writer.start()
    writer.publish({"who": "live"})
    assert read_live_status([tmp_path / "missing", empty, dead, live]) == {"who": "live"}
    writer.close()


def test_a_lock_held_before_the_first_status_is_written_reads_as_none(tmp_path: Path) -> None:
    writer = LiveStatusWriter(tmp_path)
    writer.start()
    assert read_live_status([tmp_path]) is None
    (tmp_path / STATUS_FILE).write_text("not json")
    assert read_live_status([tmp_path]) is None, "a file that is not a record is not shown"
    writer.close()


def test_a_second_agent_on_the_same_state_folder_publishes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = LiveStatusWriter(tmp_path), LiveStatusWriter(tmp_path)
    assert first.start()
    with caplog.at_level(logging.WARNING, logger="watcher"):
        assert not second.start()
    assert "another agent runs with the state folder" in caplog.text
    assert not second.publish({"who": "second"})
    first.publish({"who": "first"})
    second.close()  # holds nothing: must neither remove the first's file nor drop its lock
    assert read_live_status([tmp_path]) == {"who": "first"}
    first.close()


def test_without_a_state_folder_nothing_is_published(tmp_path: Path) -> None:
    writer = LiveStatusWriter(None)
    assert not writer.start()
    assert not writer.publish({"n": 1})
    writer.close()


def test_a_state_folder_that_cannot_be_made_is_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="watcher"):
        assert not LiveStatusWriter(blocker / "state").start()
    assert "cannot publish the live status" in caplog.text


def test_a_link_at_the_lock_name_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / LOCK_FILE).symlink_to(target)
    assert not LiveStatusWriter(tmp_path).start()
    assert read_live_status([tmp_path]) is None
