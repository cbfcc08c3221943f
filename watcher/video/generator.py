"""The generator: one thread running the planner's actions (create, poll, download) through a small
pool, journalling each step in `videos.journal` before it matters (SPEC §8, VIDEO.md "The flow")."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.core.folders import Folder
from watcher.core.generation import Entry, Planner
from watcher.core.ports import VideoEvents, VideoOffer
from watcher.core.video import ApiAnswer, VideoState, VideoSummary, is_end_frame
from watcher.core.video_answers import judge_create, judge_poll
from watcher.log_fields import Event, say
from watcher.redact import escape_control, redact
from watcher.state import retry_requests
from watcher.state.videos import DayCount, Pause, adopt, count_key, pause_key, video_journal, video_key
from watcher.video.beside import destination, resolve_request, write_record
from watcher.video.client import VideoClient
from watcher.video.ownership import hand_over, take_videos_lock
from watcher.video.retries import retry_videos

if TYPE_CHECKING:
    from watcher.video.download import Downloaded

log = logging.getLogger("watcher")
MAX_WORKERS = 8
RETRY_CHECK_SECONDS = 1.0


def entry_id(folder: str, image: str, sha256: str) -> str:
    """One entry per offered image version."""
    digest = hashlib.sha256(f"{folder}\0{image}\0{sha256}".encode("utf-8", "surrogateescape"))
    return "v:" + digest.hexdigest()[:32]  # the journal's key as it is (`state.videos.video_key`)


class Generator:
    def __init__(
        self,
        *,
        state_dir: Path | None,
        client: VideoClient,
        events: VideoEvents,
        folders: Sequence[Folder],
        settle_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state_dir, self._client, self._events = state_dir, client, events
        self._settle, self._clock = settle_seconds, clock
        self._planner = Planner(folders, monotonic=time.monotonic, wall=clock)
        self._journal = video_journal(state_dir)
        self._folders = {f.path: f for f in folders}
        # Every folder seen: an entry outlives a reload that drops its folder.
        self._known = dict(self._folders)
        self._lock = threading.RLock()  # the planner and the journal: the generator thread, retry, snapshot
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._offers = 0  # offered, not yet taken in (for `idle`)
        self._offers_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._unsynced = False
        self._needs_prompt: set[str] = set()  # entries waiting for a required prompt file
        self._lock_fd: int | None = None  # the flock on `videos.lock`: this process works the journal
        self._aside = False  # another process holds it: offers are handed to it (`_hand_over`)
        self._fetched = False  # a download has started (`stop` cancels those under way)
        self._running: set[Future[None]] = set()  # the pool's work not yet done (`stop` waits for it)

    # -- the agent's side --------------------------------------------------------------------------

    def start(self) -> None:
        """Adopt what the journal holds first, here: the start-up scan asks `awaits_video` right after.
        Only one process works a state folder's videos (its `videos.lock`); another stands aside."""
        if self._state_dir is not None:
            self._lock_fd = take_videos_lock(self._state_dir)
            if self._lock_fd is None:
                self._aside = True
                return
        with self._lock:
            self._adopt()
        jobs = sum(
            {f.account_key: f.generate.max_jobs for f in self._folders.values() if f.generate}.values()
        )
        self._pool = ThreadPoolExecutor(max(2, min(MAX_WORKERS, jobs + 1)), thread_name_prefix="video")
        self._thread = threading.Thread(target=self._run, name="video-generator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            self._client.close()
            return  # never started, or stood aside: nothing of this process to end
        self._stopping.set()
        if self._fetched:  # else no download ever started (nor was download.py imported)
            from watcher.video.download import cancel_downloads

            cancel_downloads()  # journalled as downloading: fetched again at the next start
        self._inbox.put(lambda: None)
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            # Requests under way get what is left of `timeout`, then are cut (a create so cut is unknown
            # at the next start); their answers are journalled below, so a create answered during the
            # stop is not taken for a lost one. Those not started yet do not start (`_in_pool`).
            _, running = wait(list(self._running), max(0.0, deadline - time.monotonic()))
            if running:
                self._client.cut_short()
            self._pool.shutdown(wait=True)
        with self._lock:
            self._drain()
            self._sync()
            self._journal.close()
        self._client.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def offer(self, offer: VideoOffer) -> None:
        """Thread-safe and cheap: the upload worker never waits for the generator."""
        if self._aside:
            assert self._state_dir is not None
            return hand_over(self._state_dir, offer)
        with self._offers_lock:
            self._offers += 1
        self._inbox.put(lambda: self._accept(offer))

    def set_folders(self, folders: Sequence[Folder]) -> None:
        with self._lock:
            self._folders = {f.path: f for f in folders}
            self._known.update(self._folders)
            self._planner.set_folders(folders)

    def retry(self, paths: Sequence[str], *, failed: bool, folder: str | None) -> list[str]:
        """Queue again the failed or unknown videos named (or all of them with `failed`, in `folder` if
        given), and offer the done images named that have no video; what was done, one line each."""
        with self._lock:
            said = retry_videos(
                self._planner, self._journal, self._folders.values(), self.offer, paths, failed, folder
            )
            self._sync()
        return said

    def idle(self) -> bool:
        with self._offers_lock:
            if self._offers:
                return False
        with self._lock:
            return self._planner.idle()

    def awaits_video(self, image: str) -> bool:
        """Whether `image` has a video not yet ended (its done_dir move waits for it)."""
        with self._lock:
            return self._planner.awaits(image)

    def settled(self) -> bool:
        """Idle but for videos that cannot be sent now (a pause, the day's cap, a required prompt file
        absent): `scan` ends then, and leaves them journalled for the next run."""
        with self._offers_lock:
            if self._offers:
                return False
        with self._lock:
            return self._planner.settled(self._needs_prompt)

    def snapshot(self) -> VideoSummary:
        with self._lock:
            return self._planner.summary()

    # -- the generator thread ----------------------------------------------------------------------

    def _run(self) -> None:
        next_retry = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_retry:
                next_retry = now + RETRY_CHECK_SECONDS
                self._take_retry_requests()
            with self._lock:
                self._drain()
                self._dispatch()
                self._sync()
                wake = self._planner.next_wake()
            timeout = max(0.0, min(next_retry, wake if wake is not None else next_retry) - time.monotonic())
            try:
                work = self._inbox.get(timeout=timeout)
            except queue.Empty:
                continue
            with self._lock:
                _run_one(work)

    def _drain(self) -> None:
        while True:
            try:
                work = self._inbox.get_nowait()
            except queue.Empty:
                return
            _run_one(work)

    def _sync(self) -> None:
        """One fsync for the queued entries journalled without one (10,000 offers: not 10,000 fsyncs)."""
        if self._unsynced and self._journal.file is not None:
            self._unsynced = False
            try:
                self._journal.file.append([], sync=True)
            except OSError as exc:
                log.warning("cannot save the videos' journal in %s (%s)", self._state_dir, exc.strerror)

    def _adopt(self) -> None:
        adopted = adopt(self._journal, self._planner, self._clock())
        for entry in adopted.entries:
            self._known.setdefault(entry.folder, self._folders.get(entry.folder) or _gone(entry.folder))
        for entry in adopted.lost:
            _tell(log.warning, entry, "%s: %s", entry.image, entry.error, event="attention")
            self._events.attention(entry.account, f"{entry.image}: {entry.error}")
            self._finish(entry)

    def _take_retry_requests(self) -> None:
        if self._state_dir is None:
            return
        try:
            requests = retry_requests.take(self._state_dir)
        except OSError as exc:
            log.warning("cannot read the retry requests in %s (%s)", self._state_dir, exc.strerror)
            return
        for request in requests:
            for line in self.retry(request.paths, failed=request.failed, folder=request.folder):
                log.info("retry: %s", line)

    def _accept(self, offer: VideoOffer) -> None:
        with self._offers_lock:
            self._offers -= 1
        folder = offer.folder
        if folder.generate is None:
            return
        entry = Entry(
            entry_id(folder.path, offer.image, offer.sha256),
            folder=folder.path,
            image=offer.image,
            file_id=offer.file_id,
            account=offer.account,
            sha256=offer.sha256,
        )
        self._known[folder.path] = self._folders.get(folder.path, folder)
        if self._planner.add(entry):
            self._journal.add(video_key(entry.id), entry, sync=False)
            self._unsynced = True

    def _dispatch(self) -> None:
        for entry in self._planner.next_submits():
            self._prepare(entry)
        for entry in self._planner.due_work():
            if entry.state is VideoState.GENERATING:
                self._in_pool(self._poll, entry)
            else:
                self._in_pool(self._download, entry)

    def _in_pool(self, action: Callable[[Entry], Callable[[], None]], entry: Entry) -> None:
        def run() -> None:
            if self._stopping.is_set() and entry.state is not VideoState.SUBMITTING:
                return  # journalled as it is: polled or fetched at the next start
            self._inbox.put(action(entry))

        assert self._pool is not None
        future = self._pool.submit(run)
        self._running.add(future)
        future.add_done_callback(self._running.discard)

    # -- before a create ---------------------------------------------------------------------------

    def _prepare(self, entry: Entry) -> None:
        if self._stopping.is_set():
            return self._planner.wait(entry, 0.0)
        folder = self._folders.get(entry.folder)
        settings = folder.generate if folder is not None else None
        if folder is None or settings is None:
            return self._drop(entry)  # its folder no longer generates: nothing was spent
        if is_end_frame(os.path.basename(entry.image)):
            # `x.end.png`: uploaded for its image's create, never a video of its own.
            return self._drop(entry)
        settle = folder.settle_seconds if folder.settle_seconds is not None else self._settle
        found = resolve_request(folder, settings, entry, settle=settle, now=self._clock())
        if found.error is not None:
            return self._fail(entry, found.error)
        if found.needs_prompt:
            self._needs_prompt.add(entry.id)  # `scan` does not wait for a file no one may ever write
        else:
            self._needs_prompt.discard(entry.id)
        if found.request is None:
            return self._planner.wait(entry, found.wait)
        request = found.request
        if self._planner.spent_by(request) is not None:
            _tell(log.info, entry, "%s: this video was asked for already; not asking again", entry.image)
            return self._drop(entry)
        day, count = self._planner.sending(entry, request)
        self._journal.add(count_key(entry.account, day), DayCount(entry.account, day, count), sync=False)
        try:
            self._journal.add(video_key(entry.id), entry, sync=True, strict=True)  # durable before the create
        except OSError as exc:
            # Never a create without its record: one a kill -9 could leave unknown to the next start.
            why = f"cannot journal it in {self._state_dir} ({exc.strerror}); not sent, tried again later"
            _tell(log.warning, entry, "%s: videos/create held back: %s", entry.image, why, event="retry")
            return self._on_created(entry, ApiAnswer(None, error=why, sent=False))
        body = request.body()
        self._in_pool(lambda e: self._create(e, body), entry)

    def _drop(self, entry: Entry) -> None:
        self._planner.drop(entry)
        self._journal.remove(video_key(entry.id))

    # -- in the pool: each returns what the generator thread does with its answer ------------------

    def _create(self, entry: Entry, body: dict[str, Any]) -> Callable[[], None]:
        if self._stopping.is_set():  # not sent: queued again, not counted (not left SUBMITTING)
            answer = ApiAnswer(None, error="the agent stopped before sending it", sent=False)
            return lambda: self._on_created(entry, answer)
        try:
            answer = self._client.create(body)
        except Exception as exc:  # a bug below must not lose the entry: it may have been sent
            answer = ApiAnswer(None, error=redact(f"{type(exc).__name__}: {exc}"), sent=True)
        return lambda: self._on_created(entry, answer)

    def _poll(self, entry: Entry) -> Callable[[], None]:
        assert entry.video_id is not None
        try:
            answer = self._client.poll(entry.video_id)
        except Exception as exc:
            answer = ApiAnswer(None, error=redact(f"{type(exc).__name__}: {exc}"))
        return lambda: self._on_polled(entry, answer)

    def _download(self, entry: Entry) -> Callable[[], None]:
        # Imported here: download.py imports requests (about 4 MB of RSS and 0.1 s of every start), which
        # an agent that has no video to fetch does not need.
        from watcher.video.download import DownloadError, download_video

        self._fetched = True
        folder = self._known[entry.folder]
        settings = folder.generate or self._planner.settings(entry.folder)
        try:
            if settings is None:
                raise DownloadError("the folder no longer has a generate block", retryable=False)
            root, dest = destination(folder, settings, entry.image)
            assert entry.url is not None
            done = download_video(entry.url, root=root, dest=dest)
        except DownloadError as exc:
            reason, retryable = str(exc), exc.retryable
            return lambda: self._on_download_failed(entry, reason, retryable)
        except Exception as exc:  # a disk error: fetched again later
            reason = redact(f"{type(exc).__name__}: {exc}")
            return lambda: self._on_download_failed(entry, reason, True)
        return lambda: self._on_downloaded(entry, done)

    # -- answers, on the generator thread ------------------------------------------------------------

    def _on_created(self, entry: Entry, answer: ApiAnswer) -> None:
        decision = judge_create(answer)
        submitted_day = entry.submitted_at
        paused = self._planner.created(entry, decision)
        if not decision.counted and submitted_day is not None:
            day = time.strftime("%Y-%m-%d", time.gmtime(submitted_day))
            count = self._planner.counts.get((entry.account, day), 0)
            self._journal.add(count_key(entry.account, day), DayCount(entry.account, day, count), sync=False)
        self._journal.add(video_key(entry.id), entry)
        if paused is not None:
            view = self._planner.account_view(entry.account, self._planner.day(), self._clock())
            until = view.paused_until or self._clock()
            self._journal.add(pause_key(entry.account), Pause(entry.account, until, paused))
            say(log.warning, "%s", paused, account=entry.account, event="attention")
            self._events.attention(entry.account, paused)
        elif entry.state is VideoState.QUEUED:
            _tell(log.info, entry, "%s: %s; asking again later", entry.image, decision.reason, event="retry")
        elif entry.state is VideoState.GENERATING:
            assert entry.video_id is not None
            self._write_record(entry)
            self._events.video_submitted(self._known[entry.folder], entry.image, entry.video_id)
        else:
            if entry.state is VideoState.UNKNOWN:
                message = f"{entry.image}: {entry.error}"
                _tell(log.warning, entry, "%s", message, event="attention")
                self._events.attention(entry.account, message)
            else:
                _tell(log.warning, entry, "%s: %s", entry.image, entry.error, event="failure")
            self._finish(entry)

    def _on_polled(self, entry: Entry, answer: ApiAnswer) -> None:
        decision = judge_poll(answer)
        self._planner.polled(entry, decision)
        final = entry.state is not VideoState.GENERATING
        self._journal.add(video_key(entry.id), entry, sync=final)  # a percent is not worth an fsync
        if entry.state is VideoState.FAILED:
            _tell(
                log.warning, entry, "%s: %s", entry.image, escape_control(entry.error or ""), event="failure"
            )
            self._finish(entry)

    def _on_downloaded(self, entry: Entry, done: Downloaded) -> None:
        folder = self._known[entry.folder]
        self._planner.downloaded(entry, os.path.relpath(done.path, folder.path), done.size, done.sha256)
        self._journal.add(video_key(entry.id), entry)
        _tell(log.info, entry, "%s: video saved as %s", entry.image, done.path)
        self._finish(entry, done.path)

    def _on_download_failed(self, entry: Entry, reason: str, retryable: bool) -> None:
        ended = self._planner.download_failed(entry, reason, retryable=retryable)
        self._journal.add(video_key(entry.id), entry, sync=ended)
        if ended:
            _tell(log.warning, entry, "%s: %s", entry.image, entry.error, event="failure")
            self._finish(entry)
        else:
            _tell(
                log.info,
                entry,
                "%s: the video's download failed (%s); trying again later",
                entry.image,
                reason,
                event="retry",
            )

    def _fail(self, entry: Entry, reason: str) -> None:
        self._planner.fail(entry, reason)
        self._journal.add(video_key(entry.id), entry)
        _tell(log.warning, entry, "%s: %s", entry.image, reason, event="failure")
        self._finish(entry)

    def _finish(self, entry: Entry, video_path: str | None = None) -> None:
        record = self._write_record(entry)
        seconds = None
        if entry.submitted_at is not None and entry.finished_at is not None and video_path is not None:
            seconds = max(0.0, entry.finished_at - entry.submitted_at)
        result = entry.result or "failed"
        self._events.video_final(self._known[entry.folder], entry.image, record, result, video_path, seconds)

    def _write_record(self, entry: Entry) -> dict[str, Any]:
        folder = self._known[entry.folder]
        return write_record(folder, folder.generate or self._planner.settings(entry.folder), entry)


def _run_one(work: Callable[[], None]) -> None:
    """A bug in one step (or in the agent's events) is logged; the generator goes on with the others."""
    try:
        work()
    except Exception:
        log.exception("the video generator met a bug; it goes on with the other videos")


def _tell(
    emit: Callable[..., None], entry: Entry, msg: str, *args: object, event: Event | None = None
) -> None:
    say(emit, msg, *args, file=entry.image, account=entry.account, event=event)


def _gone(path: str) -> Folder:
    """A folder the configuration no longer has, for the entries still under way in it."""
    return Folder(path, None, recursive=True, polling=False)
