"""The videos' journal: an earlier process's videos adopted, lost creates made UNKNOWN, compaction, status."""

from __future__ import annotations

import json
import time
from pathlib import Path

from watcher.core.folders import Folder
from watcher.core.generation import Entry, Planner, utc_day
from watcher.core.video import VideoRequest, VideoSettings, VideoState
from watcher.state.journal import COMPACT_AFTER
from watcher.state.videos import (
    LOST_ANSWER,
    DayCount,
    Pause,
    adopt,
    count_key,
    pause_key,
    summarize,
    video_journal,
    video_key,
)

A = Folder("/drop/a", "111", recursive=True, polling=False, generate=VideoSettings("I2V", "/drop/a/videos"))


def planner() -> Planner:
    return Planner([A], monotonic=time.monotonic, wall=time.time)


def entry(n: int, state: VideoState = VideoState.QUEUED) -> Entry:
    e = Entry(f"v:id{n}", A.path, f"{A.path}/img{n}.png", f"file{n}", "111", f"sha{n}", state=state)
    if state is not VideoState.QUEUED:
        e.request = VideoRequest(A.path, f"img{n}.png", "111", e.file_id, e.sha256, "I2V", "go", '{"a":1}')
        e.submitted_at = time.time()
    return e


def test_entries_counts_and_pauses_survive_a_restart(tmp_path: Path) -> None:
    journal = video_journal(tmp_path)
    today = utc_day(time.time())
    generating = entry(1, VideoState.GENERATING)
    generating.video_id, generating.percent = "user:1-minimax:111-video:9", 40
    journal.add(video_key("v:id0"), entry(0))
    journal.add(video_key("v:id1"), generating)
    journal.add(count_key("111", today), DayCount("111", today, 7))
    journal.add(pause_key("111"), Pause("111", time.time() + 3600, "no credits"))
    p = planner()
    adopted = adopt(video_journal(tmp_path), p, time.time())
    assert adopted.lost == []
    by_id = {e.id: e for e in adopted.entries}
    assert by_id["v:id1"].video_id == generating.video_id and by_id["v:id1"].percent == 40
    assert by_id["v:id1"].request == generating.request
    assert p.counts[("111", today)] == 7
    view = p.summary().accounts["111"]
    assert view.pause_reason == "no credits" and view.in_flight == 1
    assert p.due_work() == [by_id["v:id1"]]  # polling resumes


def test_a_create_without_its_answer_becomes_unknown_durably_and_once(tmp_path: Path) -> None:
    journal = video_journal(tmp_path)
    journal.add(video_key("v:id2"), entry(2, VideoState.SUBMITTING))
    adopted = adopt(video_journal(tmp_path), planner(), time.time())
    [lost] = adopted.lost
    assert (lost.state, lost.result, lost.error) == (VideoState.UNKNOWN, "unknown", LOST_ANSWER)
    # Written before anything else is sent: the next start finds it UNKNOWN, not SUBMITTING again.
    again = adopt(video_journal(tmp_path), p := planner(), time.time())
    assert again.lost == [] and [e.state for e in again.entries] == [VideoState.UNKNOWN]
    assert p.spent_by(lost.request) is not None  # type: ignore[arg-type]


def test_other_days_counts_and_ended_pauses_are_dropped(tmp_path: Path) -> None:
    journal = video_journal(tmp_path)
    journal.add(count_key("111", "2000-01-01"), DayCount("111", "2000-01-01", 50))
    journal.add(pause_key("111"), Pause("111", time.time() - 1, "on hold"))
    p = planner()
    adopt(video_journal(tmp_path), p, time.time())
    assert p.counts == {} and p.summary().accounts["111"].paused_until is None
    assert video_journal(tmp_path).read() == {}


def test_compaction_keeps_every_live_entry(tmp_path: Path) -> None:
    journal = video_journal(tmp_path)
    e = entry(3, VideoState.GENERATING)
    journal.add(video_key("v:done"), entry(4, VideoState.DONE))
    for percent in range(2 * COMPACT_AFTER):
        e.percent = percent % 100
        journal.add(video_key("v:id3"), e, sync=False)
    lines = (tmp_path / "videos.journal").read_bytes().count(b"\n")
    assert lines < COMPACT_AFTER + 10
    kept = video_journal(tmp_path).read()
    assert set(kept) == {video_key("v:done"), video_key("v:id3")}
    assert isinstance(kept[video_key("v:done")], Entry) and kept[video_key("v:done")].state is VideoState.DONE


def test_hostile_or_torn_lines_are_skipped(tmp_path: Path) -> None:
    journal = video_journal(tmp_path)
    journal.add(video_key("v:id5"), entry(5))
    with (tmp_path / "videos.journal").open("a") as f:
        for bad in [
            {
                "id": "v:x",
                "state": "exploded",
                "folder": "/a",
                "image": "/a/x",
                "file_id": "f",
                "account": "1",
                "sha256": "s",
            },
            {"id": "v:y", "state": "queued", "folder": 5},
            {"id": "d:2026-01-01:1", "account": "1", "day": "2026-01-01", "n": "many"},
            {
                "id": "v:z",
                "state": "done",
                "folder": "/a",
                "image": "/a/z",
                "file_id": "f",
                "account": "1",
                "sha256": "s",
                "request": {"folder": "/a", "evil": "x"},
            },
            {"id": 7},
        ]:
            f.write(json.dumps(bad) + "\n")
        f.write('{"id": "v:torn", "sta')
    assert list(video_journal(tmp_path).read()) == [video_key("v:id5")]


def test_summarize_reads_without_writing(tmp_path: Path) -> None:
    journal = video_journal(tmp_path)
    today = utc_day(time.time())
    gen = entry(6, VideoState.GENERATING)
    gen.percent = 55
    journal.add(video_key("v:id6"), gen)
    journal.add(video_key("v:id7"), entry(7))
    journal.add(video_key("v:id8"), entry(8, VideoState.SUBMITTING))
    journal.add(count_key("111", today), DayCount("111", today, 2))
    before = (tmp_path / "videos.journal").read_bytes()
    summary = summarize(tmp_path, [A], today)
    assert (tmp_path / "videos.journal").read_bytes() == before  # a SUBMITTING one is not made UNKNOWN
    folder = summary.folders[A.path]
    assert (folder.queued, folder.generating) == (1, 2)
    assert ("img6.png", 55) in folder.in_progress
    account = summary.accounts["111"]
    assert (account.today, account.cap, account.max_jobs) == (2, 50, 2)


def test_summarize_without_a_journal_is_empty(tmp_path: Path) -> None:
    summary = summarize(tmp_path, [A], "2026-12-07")
    assert summary.folders == {} and summary.accounts["111"].today == 0
    assert not (tmp_path / "videos.journal").exists()
