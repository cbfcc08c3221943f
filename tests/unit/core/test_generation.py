"""The video planner with an injected clock: slots, the day's cap, pauses, backoff, polls, folders in turn."""

from __future__ import annotations

import calendar
import time
import tracemalloc

from watcher.core.folders import Folder
from watcher.core.generation import DOWNLOAD_ATTEMPTS, MAX_POLLING, Entry, Planner, backoff
from watcher.core.video import ApiAnswer, VideoRequest, VideoSettings, VideoState
from watcher.core.video_answers import judge_create, judge_poll

NOON = float(calendar.timegm((2026, 12, 7, 12, 0, 0)))
VID = "user:1-minimax:{}-video:{}"


class Clock:
    def __init__(self, wall: float = NOON) -> None:
        self.wall, self.mono = wall, 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def folder(path: str, account: str = "111", **settings: object) -> Folder:
    gen = VideoSettings(model="I2V", output_dir=path + "/videos", **settings)  # type: ignore[arg-type]
    return Folder(path, account, recursive=True, polling=False, generate=gen)


def planner(folders: list[Folder], clock: Clock) -> Planner:
    return Planner(folders, monotonic=lambda: clock.mono, wall=lambda: clock.wall)


def entry(f: Folder, n: int, account: str | None = None) -> Entry:
    return Entry(
        f"{f.path}:{n}", f.path, f"{f.path}/img{n}.png", f"file{n}", account or f.account_key, f"sha{n}"
    )


def request(e: Entry) -> VideoRequest:
    return VideoRequest(e.folder, e.image, e.account, e.file_id, e.sha256, "I2V", "prompt")


def send_all(p: Planner) -> list[Entry]:
    taken = p.next_submits()
    for e in taken:
        p.sending(e, request(e))
    return taken


def created(p: Planner, e: Entry, status: int | None, **kw: object) -> str | None:
    data = (
        {"videoId": VID.format(e.account, e.id.replace(":", "").replace("/", ""))} if status == 200 else None
    )
    return p.created(e, judge_create(ApiAnswer(status, data, **kw)))  # type: ignore[arg-type]


def test_slots_are_never_exceeded_per_account() -> None:
    clock = Clock()
    a, b = folder("/a", "111", max_jobs=2), folder("/b", "222", max_jobs=3)
    p = planner([a, b], clock)
    for n in range(20):
        p.add(entry(a, n))
        p.add(entry(b, n))
    taken = send_all(p)
    assert sorted(e.account for e in taken) == ["111"] * 2 + ["222"] * 3
    assert send_all(p) == []  # nothing more while all are in flight
    for e in taken:
        created(p, e, 200)
    assert send_all(p) == []  # generating still holds its slot
    first = taken[0]
    clock.advance(15)
    assert first in p.due_work()
    p.polled(
        first, judge_poll(ApiAnswer(200, {"status": 2, "statusFinal": True, "videoURL": "https://c/x.mp4"}))
    )
    again = send_all(p)
    assert [e.account for e in again] == [first.account]  # its slot, freed by the end of generation
    assert p.summary().accounts[first.account].in_flight == 2 if first.account == "111" else 3


def test_the_smallest_max_jobs_and_cap_of_an_accounts_folders_apply() -> None:
    p = planner([folder("/a", max_jobs=4, max_per_day=9), folder("/b", max_jobs=1, max_per_day=30)], Clock())
    assert p.limits("111") == (1, 9)
    # A folder without `account` offers the account its sidecars name: that folder's limits apply to it.
    c = Folder("/c", None, recursive=True, polling=False, generate=VideoSettings("I2V", "/c/v", max_jobs=3))
    p = planner([folder("/a", max_jobs=5), c], Clock())
    assert p.limits("999") == (2, 50)  # no folder of its own: the defaults
    p.add(entry(c, 0, account="999"))
    assert p.limits("999") == (3, 50)


def test_the_days_cap_holds_across_a_restart_and_resets_at_utc_midnight() -> None:
    clock = Clock(NOON + 11 * 3600 + 50 * 60)  # 23:50 UTC
    a = folder("/a", max_jobs=10, max_per_day=3)
    p = planner([a], clock)
    for n in range(10):
        p.add(entry(a, n))
    sent = send_all(p)
    assert len(sent) == 3
    for e in sent:
        created(p, e, 200)
    assert send_all(p) == []
    # A restart: a new planner knows the day's count from the journal, not from its own entries.
    p2 = planner([a], clock)
    for (account, day), count in p.counts.items():
        p2.restore_count(account, day, count)
    for n in range(3, 10):
        p2.add(entry(a, n))
    assert send_all(p2) == []
    assert p2.summary().accounts["111"].today == 3
    clock.advance(11 * 60)  # 00:01 UTC: a new day
    assert len(send_all(p2)) == 3


def test_busy_answers_are_not_counted_and_back_off_with_retry_after() -> None:
    clock = Clock()
    a = folder("/a", max_jobs=1, max_per_day=1)
    p = planner([a], clock)
    e = entry(a, 0)
    p.add(e)
    assert send_all(p) == [e]
    assert p.counts[("111", p.day())] == 1
    assert created(p, e, 429, retry_after=30.0) is None
    assert e.state is VideoState.QUEUED and e.request is None
    assert p.counts[("111", p.day())] == 0  # not counted: the cap of 1 still allows it
    clock.advance(29)
    assert send_all(p) == []
    clock.advance(1)
    assert send_all(p) == [e]
    created(p, e, 503)  # no Retry-After: the backoff, growing
    clock.advance(backoff(2) - 1)
    assert send_all(p) == []
    clock.advance(1)
    assert send_all(p) == [e]
    assert backoff(1) == 20 and backoff(50) == 600


def test_a_pause_holds_the_account_says_until_when_and_lifts() -> None:
    clock = Clock()
    a, b = folder("/a", "111", max_jobs=2), folder("/b", "222")
    p = planner([a, b], clock)
    for n in range(3):
        p.add(entry(a, n))
    p.add(entry(b, 0))
    sent = [e for e in send_all(p) if e.account == "111"]
    said = created(p, sent[0], 412)
    assert said is not None and "top it up at useapi.net" in said and "paused until 15:00 UTC" in said
    assert sent[0].state is VideoState.QUEUED
    assert p.counts[("111", p.day())] == 1  # the other one, still sent
    view = p.summary().accounts["111"]
    assert view.paused_until == NOON + 3 * 3600 and view.pause_reason == said
    assert created(p, sent[1], 596) is None  # in flight at the same time: the pause is said once
    assert p.summary().accounts["111"].paused_until == NOON + 3 * 3600
    clock.advance(3600)
    assert send_all(p) == []  # the account is paused: nothing sent for it
    wake = p.next_wake()
    assert wake is not None and wake <= clock.mono + 2 * 3600
    clock.advance(2 * 3600)
    assert [e.account for e in send_all(p)] == ["111", "111"]


def test_an_unknown_is_never_sent_again_but_by_retry() -> None:
    clock = Clock()
    a = folder("/a")
    p = planner([a], clock)
    e = entry(a, 0)
    p.add(e)
    send_all(p)
    created(p, e, None, sent=True, error="timed out")
    assert (e.state, e.result) == (VideoState.UNKNOWN, "unknown")
    assert p.spent_by(request(e)) is e  # its key stays spent
    clock.advance(10 * 86400)
    assert send_all(p) == [] and p.due_work() == []
    assert p.retry(e)
    assert p.spent_by(request(e)) is None
    assert send_all(p) == [e]


def test_a_spent_key_is_seen_by_another_entry() -> None:
    a = folder("/a")
    p = planner([a], Clock())
    e, twin = entry(a, 0), entry(a, 0)
    twin.id = "other"
    p.add(e)
    p.add(twin)
    taken = p.next_submits()
    p.sending(taken[0], request(taken[0]))
    assert p.spent_by(request(taken[1])) is taken[0]


def test_folders_take_turns() -> None:
    a, b, c = folder("/a", "1", max_jobs=10), folder("/b", "1", max_jobs=10), folder("/c", "1", max_jobs=10)
    p = planner([a, b, c], Clock())
    for n in range(100):
        p.add(entry(a, n))
    p.add(entry(b, 0))
    p.add(entry(c, 0))
    taken = p.next_submits()
    assert len(taken) == 10
    assert {e.folder for e in taken[:3]} == {"/a", "/b", "/c"}  # not ten of /a's first


def test_polls_come_every_poll_seconds_and_a_video_that_never_ends_fails() -> None:
    clock = Clock()
    a = folder("/a", poll_seconds=10.0)
    p = planner([a], clock)
    e = entry(a, 0)
    p.add(e)
    send_all(p)
    created(p, e, 200)
    polls = 0
    going = judge_poll(ApiAnswer(200, {"status": 1, "statusFinal": False, "percent": 50}))
    while e.state is VideoState.GENERATING:
        assert p.due_work() == []
        clock.advance(10)
        assert p.due_work() == [e]
        p.polled(e, going)
        polls += 1
    assert polls == MAX_POLLING // 10
    assert (e.state, e.error) == (VideoState.FAILED, "still not final after 24 h")
    assert p.summary().accounts["111"].in_flight == 0


def test_a_busy_poll_waits_for_its_retry_after() -> None:
    clock = Clock()
    a = folder("/a", poll_seconds=5.0)
    p = planner([a], clock)
    e = entry(a, 0)
    p.add(e)
    send_all(p)
    created(p, e, 200)
    clock.advance(5)
    p.due_work()
    p.polled(e, judge_poll(ApiAnswer(429, retry_after=60.0)))
    clock.advance(59)
    assert p.due_work() == []
    clock.advance(1)
    assert p.due_work() == [e]


def test_downloads_are_tried_three_times() -> None:
    clock = Clock()
    a = folder("/a")
    p = planner([a], clock)
    e = entry(a, 0)
    p.add(e)
    send_all(p)
    created(p, e, 200)
    clock.advance(15)
    p.due_work()
    p.polled(e, judge_poll(ApiAnswer(200, {"status": 2, "statusFinal": True, "videoURL": "https://c/x.mp4"})))
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        [got] = p.due_work()
        assert got is e
        ended = p.download_failed(e, "cut", retryable=True)
        assert ended == (attempt == DOWNLOAD_ATTEMPTS)
        clock.advance(1000)
    assert e.state is VideoState.FAILED and "cut" in (e.error or "")


def test_a_final_download_writes_done_and_summary_counts() -> None:
    clock = Clock()
    a = folder("/a")
    p = planner([a], clock)
    done, failed, waiting = entry(a, 0), entry(a, 1), entry(a, 2)
    for e in (done, failed, waiting):
        p.add(e)
    p.limits("111")
    for e in p.next_submits():
        p.sending(e, request(e))
    created(p, done, 200)
    created(p, failed, 422)
    clock.advance(15)
    p.due_work()
    p.polled(done, judge_poll(ApiAnswer(200, {"status": 1, "statusFinal": False, "percent": 30})))
    summary = p.summary().folders["/a"]
    assert (summary.queued, summary.generating, summary.failed) == (1, 1, 1)
    assert summary.in_progress == (("img0.png", 30),)
    clock.advance(15)
    p.due_work()
    p.polled(
        done, judge_poll(ApiAnswer(200, {"status": 2, "statusFinal": True, "videoURL": "https://c/x.mp4"}))
    )
    assert p.due_work() == [done]
    p.downloaded(done, "videos/img0.mp4", 10, "abc")
    assert (done.state, done.result) == (VideoState.DONE, "completed")
    assert p.summary().folders["/a"].done == 1
    assert not p.idle()  # one still queued


def test_ten_thousand_queued_entries_are_small_and_cheap_to_plan() -> None:
    clock = Clock()
    a, b = folder("/a", max_jobs=2, max_per_day=50), folder("/b", "222", max_jobs=2)
    p = planner([a, b], clock)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(10_000):
        p.add(entry(a, n))
    per_entry = (tracemalloc.get_traced_memory()[0] - before) / 10_000
    tracemalloc.stop()
    assert per_entry < 1500, per_entry  # the entry, its strings and its place in the lane
    p.add(entry(b, 0))
    started = time.process_time()
    for _ in range(1000):  # a thousand ticks with the account's slots full
        taken = send_all(p)
        for e in taken:
            created(p, e, 200)
    assert time.process_time() - started < 1.0  # no tick scans the 10,000 entries
    assert p.summary().accounts["111"].in_flight == 2 and p.summary().accounts["222"].in_flight == 1


def test_a_failed_prompt_frees_the_slot() -> None:
    a = folder("/a", max_jobs=1)
    p = planner([a], Clock())
    e, f = entry(a, 0), entry(a, 1)
    p.add(e)
    p.add(f)
    [first] = p.next_submits()
    p.fail(first, "the prompt file cannot be used: not UTF-8")
    assert first.state is VideoState.FAILED and first.result == "failed"
    assert p.next_submits() == [f]


def test_a_waiting_prompt_is_asked_again_later_and_frees_the_slot() -> None:
    clock = Clock()
    a = folder("/a", max_jobs=1)
    p = planner([a], clock)
    e, f = entry(a, 0), entry(a, 1)
    p.add(e)
    p.add(f)
    [first] = p.next_submits()
    p.wait(first, 5.0)
    [second] = p.next_submits()
    assert second is not first
    p.wait(second, 5.0)
    clock.advance(5)
    assert len(p.next_submits()) == 1


def test_adopted_entries_resume_polling_and_hold_their_slot() -> None:
    clock = Clock()
    a = folder("/a", max_jobs=1)
    p = planner([a], clock)
    e = entry(a, 0)
    e.state, e.video_id, e.request, e.submitted_at = VideoState.GENERATING, "v", request(e), clock.wall
    p.add(e)
    p.add(entry(a, 1))
    assert p.next_submits() == []
    assert p.due_work() == [e]


def test_settled_means_nothing_in_flight_and_nothing_sendable_now() -> None:
    """`scan` ends when settled: not while a video is in flight or one could be sent, but with videos
    left behind the day's cap, a pause, or a required prompt file (held)."""
    clock = Clock()
    a = folder("/a", "111", max_jobs=1, max_per_day=1)
    p = planner([a], clock)
    first, second, third = entry(a, 1), entry(a, 2), entry(a, 3)
    for e in (first, second, third):
        p.add(e)
    assert not p.settled()  # sendable
    [taken] = send_all(p)
    assert not p.settled()  # in flight
    created(p, taken, 200)
    assert not p.settled()  # generating
    p.polled(taken, judge_poll(ApiAnswer(200, {"status": 3, "statusFinal": True})))
    assert p.settled()  # the rest wait for tomorrow's cap
    clock.advance(24 * 3600)
    assert not p.settled()
    assert p.settled(held={second.id, third.id})  # both wait for a prompt file no one may write


def test_a_folder_without_account_is_shown_by_the_account_its_sidecars_name() -> None:
    """The token's only account: the folder says none, its sidecars say which; status shows that one
    (with the day's count), not an empty account at 0."""
    clock = Clock()
    a = Folder("/a", None, recursive=True, polling=False, generate=VideoSettings("I2V", "/a/videos"))
    p = planner([a], clock)
    assert p.accounts() == {""}
    p.add(entry(a, 1, account="123456"))
    send_all(p)
    assert p.accounts() == {"123456"}
    assert p.summary().accounts["123456"].today == 1


def test_an_image_awaits_its_video_until_the_video_is_final() -> None:
    """The start-up scan leaves a done image in place (no done_dir move) while this says so."""
    clock = Clock()
    a = folder("/a")
    p = planner([a], clock)
    e = entry(a, 1)
    assert not p.awaits(e.image)
    p.add(e)
    assert p.awaits(e.image)
    [taken] = send_all(p)
    created(p, taken, 422)
    assert taken.state is VideoState.FAILED and not p.awaits(e.image)
