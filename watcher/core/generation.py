"""The video planner (no I/O): which queued video is sent next, which is polled or fetched when, per
account slots, the UTC day's cap and pauses, folders in turn. It decides; `video/generator.py` does."""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from watcher.core.folders import Folder
from watcher.core.video import (
    AccountVideos,
    FolderVideos,
    VideoRequest,
    VideoSettings,
    VideoState,
    VideoSummary,
)
from watcher.core.video_answers import PAUSE_SECONDS, CreateDecision, PollDecision
from watcher.core.video_phases import check_move
from watcher.log_fields import account_shown

Q, S, G, D = VideoState.QUEUED, VideoState.SUBMITTING, VideoState.GENERATING, VideoState.DOWNLOADING
BACKOFF_FIRST, BACKOFF_MAX = 20.0, 600.0
MAX_POLLING = 24 * 3600.0  # a video not final after this long has failed
DOWNLOAD_ATTEMPTS = 3
DEFAULTS = VideoSettings(model="", output_dir="/")


@dataclass(slots=True, eq=False)
class Entry:
    """One offered image version's video. Times: `submitted_at`/`finished_at` wall clock; `due` monotonic."""

    id: str
    folder: str
    image: str  # absolute, where it was offered
    file_id: str
    account: str
    sha256: str
    state: VideoState = Q
    request: VideoRequest | None = None  # once journalled as SUBMITTING
    video_id: str | None = None
    submitted_at: float | None = None
    finished_at: float | None = None
    percent: int = 0
    status_label: str | None = None
    url: str | None = None
    result: str | None = None  # at the end: completed, failed, moderated, unknown
    error: str | None = None
    video: str | None = None  # the MP4, relative to the folder
    size: int | None = None
    video_sha256: str | None = None
    failures: int = 0  # busy answers in a row, or download attempts
    due: float = 0.0
    timer: int = 0  # the valid timer's number (older heap items are stale)
    busy: bool = False  # handed to the generator, its result not yet in

    def move(self, to: VideoState) -> None:
        self.state = check_move(self.state, to)


@dataclass(slots=True)
class _Account:
    in_flight: int = 0  # reserved + SUBMITTING + GENERATING
    reserved: int = 0  # handed out to be sent, not sent yet: counted against the day's cap too
    paused_until: float | None = None  # wall clock
    pause_reason: str | None = None


def utc_day(wall: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(wall))


def backoff(failures: int) -> float:
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(0, failures - 1)))


class Planner:
    def __init__(
        self, folders: Sequence[Folder], *, monotonic: Callable[[], float], wall: Callable[[], float]
    ) -> None:
        self._monotonic, self._wall = monotonic, wall
        self.entries: dict[str, Entry] = {}
        self._by_image: dict[str, Entry] = {}  # each image's newest version (`awaits`)
        self._settings: dict[str, VideoSettings] = {}
        self._folder_accounts: dict[str, str] = {}
        # The folders each account's entries came from (a folder without `account` offers the sidecar's).
        self._offered_from: dict[str, set[str]] = {}
        self._lanes: dict[tuple[str, str], deque[Entry]] = {}  # (folder, account): ready, oldest first
        self._turn: deque[tuple[str, str]] = deque()  # lanes with entries, in turn
        self._timers: list[tuple[float, int, int, Entry]] = []
        self._fired: list[Entry] = []  # due polls and downloads, until `due_work` hands them out
        self._seq = 0
        self._spent: dict[str, Entry] = {}  # request key → the entry that spent it
        self._accounts: dict[str, _Account] = {}
        self.counts: dict[tuple[str, str], int] = {}  # (account, UTC day) → creates sent
        self.set_folders(folders)

    # -- configuration and restoring ------------------------------------------------------------------

    def set_folders(self, folders: Sequence[Folder]) -> None:
        self._settings = {f.path: f.generate for f in folders if f.generate is not None}
        self._folder_accounts = {f.path: f.account_key for f in folders if f.generate is not None}

    def settings(self, folder: str) -> VideoSettings | None:
        return self._settings.get(folder)

    def limits(self, account: str) -> tuple[int, int]:
        """(max_jobs, max_per_day): the smallest of the account's folders (defaults when it has none)."""
        offered = self._offered_from.get(account, set())
        mine = [s for p, s in self._settings.items() if self._folder_accounts[p] == account or p in offered]
        mine = mine or [DEFAULTS]
        return min(s.max_jobs for s in mine), min(s.max_per_day for s in mine)

    def restore_count(self, account: str, day: str, count: int) -> None:
        self.counts[(account, day)] = count

    def restore_pause(self, account: str, until: float, reason: str) -> None:
        acc = self._account(account)
        acc.paused_until, acc.pause_reason = until, reason

    def add(self, entry: Entry) -> bool:
        """Track `entry` (new, or read from the journal); False when its id is tracked already."""
        if entry.id in self.entries:
            return False
        self.entries[entry.id] = entry
        self._by_image[entry.image] = entry
        self._offered_from.setdefault(entry.account, set()).add(entry.folder)
        if entry.request is not None and entry.state is not Q:
            self._spent[entry.request.key] = entry
        if entry.state in (S, G):
            self._account(entry.account).in_flight += 1
        if entry.state is Q:
            self._ready(entry)
        elif entry.state in (G, D):
            self._later(entry, 0.0)
        return True

    def drop(self, entry: Entry) -> None:
        """Forget a queued entry (its folder no longer generates, or its key was spent by another)."""
        self._release(entry)
        self.entries.pop(entry.id, None)
        if self._by_image.get(entry.image) is entry:
            del self._by_image[entry.image]
        entry.timer += 1

    # -- what to do next -----------------------------------------------------------------------------

    def day(self) -> str:
        return utc_day(self._wall())

    def next_submits(self) -> list[Entry]:
        """Queued entries to send now, each holding one of its account's slots (`busy` until its result),
        folders taking turns. Only the lanes with entries are looked at."""
        self._fire_timers()
        wall, day, taken = self._wall(), self.day(), []
        progress = True
        while progress and self._turn:
            progress = False
            for _ in range(len(self._turn)):
                lane_key = self._turn[0]
                self._turn.rotate(-1)
                entry = self._head(lane_key)
                if entry is None or not self._can_send(entry.account, wall, day):
                    continue
                self._lanes[lane_key].popleft()
                entry.busy = True
                acc = self._account(entry.account)
                acc.in_flight += 1
                acc.reserved += 1
                taken.append(entry)
                progress = True
        return taken

    def due_work(self) -> list[Entry]:
        """Generating entries whose poll is due and downloading ones whose fetch is (`busy` until done)."""
        self._fire_timers()
        fired, self._fired = self._fired, []
        return [e for e in fired if e.state in (G, D) and e.busy]

    def next_wake(self) -> float | None:
        """When (monotonic) something may be due: a timer, or the end of a pause."""
        while self._timers and self._timers[0][3].timer != self._timers[0][2]:
            heapq.heappop(self._timers)
        due = self._timers[0][0] if self._timers else None
        now, wall = self._monotonic(), self._wall()
        for acc in self._accounts.values():
            if acc.paused_until is not None and acc.paused_until > wall:
                end = now + acc.paused_until - wall
                due = end if due is None else min(due, end)
        return due

    # -- results -------------------------------------------------------------------------------------

    def wait(self, entry: Entry, seconds: float) -> None:
        """Not ready to send (its prompt file or end frame): its slot back, asked again later."""
        self._release(entry)
        self._later(entry, seconds)

    def fail(self, entry: Entry, reason: str, result: str = "failed") -> None:
        self._release(entry)
        entry.move(VideoState.FAILED)
        entry.error, entry.result, entry.finished_at = reason, result, self._wall()

    def spent_by(self, request: VideoRequest) -> Entry | None:
        return self._spent.get(request.key)

    def sending(self, entry: Entry, request: VideoRequest) -> tuple[str, int]:
        """Its create is about to be journalled and sent: (the UTC day, the account's creates that day)."""
        entry.move(S)
        self._account(entry.account).reserved -= 1
        entry.request, entry.submitted_at = request, self._wall()
        self._spent[request.key] = entry
        key = (entry.account, utc_day(entry.submitted_at))
        self.counts[key] = self.counts.get(key, 0) + 1
        return key[1], self.counts[key]

    def created(self, entry: Entry, decision: CreateDecision) -> str | None:
        """Apply the create's answer; the account's pause message when this answer paused it."""
        entry.busy = False
        paused = None
        if decision.state is G:
            entry.move(G)
            entry.video_id, entry.failures = decision.video_id, 0
            self._later(entry, self._poll_seconds(entry))
            return None
        acc = self._account(entry.account)
        acc.in_flight -= 1
        if not decision.counted and entry.submitted_at is not None:
            key = (entry.account, utc_day(entry.submitted_at))
            self.counts[key] = max(0, self.counts.get(key, 0) - 1)
        if decision.state is Q:
            entry.move(Q)
            if entry.request is not None:
                self._spent.pop(entry.request.key, None)
            entry.request = entry.submitted_at = None
            if decision.pause is not None and (acc.paused_until or 0.0) > self._wall():
                self._later(entry, 0.0)  # another create's answer paused it already: said once
            elif decision.pause is not None:
                acc.paused_until = self._wall() + PAUSE_SECONDS
                until = time.strftime("%H:%M UTC", time.gmtime(acc.paused_until))
                acc.pause_reason = paused = (
                    f"{decision.pause}; generation for {account_shown(entry.account)} is paused until {until}"
                )
                self._later(entry, 0.0)
            else:
                entry.failures += 1
                self._later(entry, decision.retry_after or backoff(entry.failures))
            return paused
        entry.move(decision.state)
        entry.error, entry.finished_at = decision.reason, self._wall()
        entry.result = "unknown" if decision.state is VideoState.UNKNOWN else "failed"
        return None

    def polled(self, entry: Entry, decision: PollDecision) -> None:
        entry.busy = False
        if decision.percent is not None:
            entry.percent = decision.percent
        if decision.status_label is not None:
            entry.status_label = decision.status_label
        if decision.state is G:
            polling = self._wall() - (entry.submitted_at or self._wall())
            if polling >= MAX_POLLING:
                entry.move(VideoState.FAILED)
                self._account(entry.account).in_flight -= 1
                entry.error, entry.result, entry.finished_at = (
                    "still not final after 24 h",
                    "failed",
                    self._wall(),
                )
                return
            self._later(entry, max(self._poll_seconds(entry), decision.retry_after or 0.0))
            return
        self._account(entry.account).in_flight -= 1  # generation is over: the slot is free
        entry.move(decision.state)
        if decision.state is D:
            entry.url, entry.failures = decision.url, 0
            self._later(entry, 0.0)
        else:
            entry.error, entry.result, entry.finished_at = decision.reason, decision.result, self._wall()

    def downloaded(self, entry: Entry, video: str, size: int, sha256: str) -> None:
        entry.busy = False
        entry.move(VideoState.DONE)
        entry.video, entry.size, entry.video_sha256 = video, size, sha256
        entry.result, entry.finished_at, entry.error = "completed", self._wall(), None

    def download_failed(self, entry: Entry, reason: str, *, retryable: bool) -> bool:
        """True when it ended the video (FAILED); else it is fetched again later."""
        entry.busy = False
        entry.failures += 1
        if retryable and entry.failures < DOWNLOAD_ATTEMPTS:
            entry.error = reason
            self._later(entry, backoff(entry.failures))
            return False
        entry.move(VideoState.FAILED)
        entry.error, entry.result, entry.finished_at = f"download failed: {reason}", "failed", self._wall()
        return True

    def retry(self, entry: Entry) -> bool:
        """The operator's `retry`: a failed or unknown video queued again, its key unspent."""
        if entry.state not in (VideoState.FAILED, VideoState.UNKNOWN) or entry.busy:
            return False
        if entry.request is not None and self._spent.get(entry.request.key) is entry:
            del self._spent[entry.request.key]
        entry.move(Q)
        entry.request = entry.video_id = entry.submitted_at = entry.finished_at = entry.url = None
        entry.result = entry.error = entry.status_label = entry.video = entry.video_sha256 = None
        entry.size, entry.percent, entry.failures = None, 0, 0
        self._ready(entry)
        return True

    def idle(self) -> bool:
        return not any(e.state in (Q, S, G, D) for e in self.entries.values())

    def awaits(self, image: str) -> bool:
        """Whether the newest version of `image` has a video not final yet."""
        entry = self._by_image.get(image)
        return entry is not None and entry.state in (Q, S, G, D)

    def settled(self, held: Collection[str] = ()) -> bool:
        """Nothing in flight and nothing queued that could be sent now, so `scan` may end: what is left
        waits for a pause to end, the next UTC day, or a required prompt file (`held`: entry ids)."""
        wall, day = self._wall(), self.day()
        for entry in self.entries.values():
            if entry.state in (S, G, D) or entry.busy:
                return False
            if entry.state is Q and entry.id not in held and self._can_send(entry.account, wall, day):
                return False
        return True

    def summary(self, today: str | None = None) -> VideoSummary:
        return summarize_entries(self.entries.values(), self, today or self.day(), self._wall())

    def account_view(self, account: str, today: str, wall: float) -> AccountVideos:
        max_jobs, cap = self.limits(account)
        acc = self._accounts.get(account, _Account())
        active = acc.paused_until is not None and acc.paused_until > wall
        return AccountVideos(
            today=self.counts.get((account, today), 0),
            cap=cap,
            in_flight=acc.in_flight,
            max_jobs=max_jobs,
            paused_until=acc.paused_until if active else None,
            pause_reason=acc.pause_reason if active else None,
        )

    def accounts(self) -> set[str]:
        """The accounts with videos, and those of the generate folders; a folder without `account` (the
        token's only one) is shown by the account its sidecars name once it has offered any."""
        offered = {path for paths in self._offered_from.values() for path in paths}
        configured = {a for p, a in self._folder_accounts.items() if a or p not in offered}
        used = {a for a, acc in self._accounts.items() if acc.in_flight or acc.paused_until is not None}
        return {*used, *configured, *(a for a, _ in self.counts), *(e.account for e in self.entries.values())}

    # -- inside ----------------------------------------------------------------------------------------

    def _account(self, account: str) -> _Account:
        acc = self._accounts.get(account)
        if acc is None:
            acc = self._accounts[account] = _Account()
        return acc

    def _can_send(self, account: str, wall: float, day: str) -> bool:
        acc = self._account(account)
        if acc.paused_until is not None and acc.paused_until > wall:
            return False
        max_jobs, cap = self.limits(account)
        return acc.in_flight < max_jobs and self.counts.get((account, day), 0) + acc.reserved < cap

    def _head(self, lane_key: tuple[str, str]) -> Entry | None:
        lane = self._lanes[lane_key]
        while lane and (lane[0].state is not Q or lane[0].busy or lane[0].id not in self.entries):
            lane.popleft()  # retried, dropped or re-timed since it was put here
        if not lane:
            del self._lanes[lane_key]
            self._turn.remove(lane_key)
            return None
        return lane[0]

    def _ready(self, entry: Entry) -> None:
        entry.timer += 1
        lane_key = (entry.folder, entry.account)
        lane = self._lanes.get(lane_key)
        if lane is None:
            lane = self._lanes[lane_key] = deque()
            self._turn.append(lane_key)
        lane.append(entry)

    def _later(self, entry: Entry, seconds: float) -> None:
        entry.timer += 1
        entry.busy = False
        entry.due = self._monotonic() + seconds
        self._seq += 1
        heapq.heappush(self._timers, (entry.due, self._seq, entry.timer, entry))

    def _fire_timers(self) -> None:
        now, fired = self._monotonic(), self._fired
        while self._timers and self._timers[0][0] <= now:
            _, _, timer, entry = heapq.heappop(self._timers)
            if timer != entry.timer or entry.id not in self.entries:
                continue
            if entry.state is Q:
                self._ready(entry)
            else:
                entry.timer += 1
                entry.busy = True
                fired.append(entry)

    def _release(self, entry: Entry) -> None:
        if entry.busy:  # only before it is sent: handed out by `next_submits`
            entry.busy = False
            acc = self._account(entry.account)
            acc.in_flight -= 1
            acc.reserved -= 1

    def _poll_seconds(self, entry: Entry) -> float:
        return (self._settings.get(entry.folder) or DEFAULTS).poll_seconds


def summarize_entries(entries: Iterable[Entry], planner: Planner, today: str, wall: float) -> VideoSummary:
    """Counts per folder and per account: for the generator's `snapshot` and for `status` (read-only)."""
    counts: dict[str, dict[str, int]] = {}
    progress: dict[str, list[tuple[str, int]]] = {}
    names = {Q: "queued", S: "generating", G: "generating", D: "generating", VideoState.DONE: "done"}
    names |= {VideoState.FAILED: "failed", VideoState.UNKNOWN: "unknown"}
    for e in entries:
        mine = counts.setdefault(e.folder, {})
        name = names[e.state]
        mine[name] = mine.get(name, 0) + 1
        if name == "generating":
            progress.setdefault(e.folder, []).append((e.image[len(e.folder.rstrip("/")) + 1 :], e.percent))
    folders = {
        path: FolderVideos(**mine, in_progress=tuple(sorted(progress.get(path, ()))))
        for path, mine in counts.items()
    }
    accounts = {a: planner.account_view(a, today, wall) for a in sorted(planner.accounts())}
    return VideoSummary(folders=folders, accounts=accounts)
