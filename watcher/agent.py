"""The agent: the loop that wires the rooms together around the scheduler, on the thread that calls
`run`; every other thread only posts messages to its inbox (docs/architecture.md, "The loop")."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, assert_never

from watcher.config.load import Config, ConfigError
from watcher.config.reload import reloaded
from watcher.core.api_owner import ApiOwner
from watcher.core.folders import Folder
from watcher.core.inbox import Inbox
from watcher.core.messages import (
    Control,
    EventKind,
    EventsLost,
    JobDone,
    Message,
    PathEvent,
    ScanBatch,
    ScanFinished,
)
from watcher.core.retry import RetryPolicy
from watcher.core.scheduler import Scheduler
from watcher.core.timings import Timings
from watcher.disk.files import holding_roots
from watcher.disk.mover import Mover
from watcher.hooks.events import HookEvent
from watcher.hooks.runner import HookRunner
from watcher.page.server import StatusPage
from watcher.report.live_status import LiveStatusWriter
from watcher.report.metrics import Metrics, MetricsSink, NullMetrics
from watcher.report.reporter import Reporter
from watcher.report.sd_notify import Notifier
from watcher.report.status_line import status_line
from watcher.scan.inventory import DiskProbe
from watcher.scan.scanner import Scanner
from watcher.state.index import HistoryIndex
from watcher.state.index_writes import apply_index_writes
from watcher.state.moves import move_journal
from watcher.state.seal import SidecarSeal, load_seal_key
from watcher.state.unwritten import UnwrittenSidecars
from watcher.upload.pipeline import Pipeline
from watcher.upload.workers import Workers
from watcher.video.client import VideoClient
from watcher.video.outcomes import Videos
from watcher.watch.held_folders import WatchedFolders

log = logging.getLogger("watcher")

# A worker that has neither sent a byte nor finished for this long is stuck (the client bounds every
# phase of an upload well below it): the systemd watchdog stops being pinged and restarts the agent.
STALLED_AFTER = 600.0
# How long a loop turn takes messages before it acts on timers and hands out uploads.
DRAIN_SECONDS = 0.1


class Agent:
    """Runs until `request_stop`; `once=True` makes it the `scan` command (no observers, exit when idle)."""

    def __init__(
        self,
        config: Config,
        client_factory: Callable[[Config], Any],
        *,
        once: bool = False,
        notifier: Notifier | None = None,
        config_loader: Callable[[], Config] | None = None,
        retry_policy: RetryPolicy | None = None,
        once_policy: RetryPolicy | None = None,
        state_dir: Path | None = None,
        timings: Timings | None = None,
        video_client: VideoClient | None = None,
    ) -> None:
        self.config = config
        self._client_factory = client_factory
        self.client = client_factory(config)
        self.once = once
        self.notifier = notifier or Notifier({})
        self._config_loader = config_loader
        self.timings = timings or Timings()
        self.unwritten = UnwrittenSidecars(state_dir)
        seal = SidecarSeal(load_seal_key(state_dir))
        # Whose fileIDs count here: the token's user at the base URL (`watcher.core.api_owner`).
        self.owner: ApiOwner = self.client.owner
        self.history = HistoryIndex(state_dir, self.owner.key)  # done files and known uploads, on disk
        # Moves to done_dir / failed_dir, journalled there; a done_dir below any watched folder is
        # reached from that folder without following a link.
        self.mover = Mover(move_journal(state_dir), lambda: self.pipeline.roots)
        self.scheduler = Scheduler(
            config.folders,
            settle_seconds=config.settings.settle_seconds,
            concurrency=config.settings.concurrency,
            probe=DiskProbe(lambda path: self.scheduler.folder_for(path), lambda: self.owner),
            store=self.unwritten,
            index=self.history,
            retry_policy=retry_policy,
            timings=self.timings,
            once=once,
            once_policy=once_policy,
            trusts=seal.verifies,
        )
        self._inbox = Inbox()  # bounded, coalescing, folders in turn (`watcher.core.inbox`)
        # `scan` is a short pass: no metrics server, no live status of its own.
        metrics: MetricsSink = NullMetrics() if once else Metrics()
        self.reporter = Reporter(metrics, LiveStatusWriter(None if once else state_dir))
        self.page = StatusPage(None if once else state_dir, self.owner)  # SPEC §9, served from READY
        self.hooks = HookRunner(
            config.settings.hooks, state_dir, config.settings.concurrency, on_result=self.reporter.hook_run
        )
        # Image to video (SPEC §8), on the generator's own threads: uploads never wait for it.
        self.videos = Videos(video_client, config, state_dir, self.reporter.metrics, self.hooks, self.mover)
        self.pipeline = Pipeline(
            dedupe=self.history, seal=seal, hooks=self.hooks, mover=self.mover, videos=self.videos.sink()
        )
        # Worker threads see the scheduler's folders through this copy, published again on each change.
        self.pipeline.follow(self.scheduler.folders)
        self.workers = Workers(self.pipeline, lambda: self.client, self.post)
        self._report_due, self._next_report = True, 0.0
        self.scanner = Scanner(
            self.post,
            self.history,
            self.notifier.still_starting,
            self.timings,
            self.owner,
            self.mover,
            awaits_video=self.videos.awaits_video,
        )
        self.folders = WatchedFolders(
            self.post, self.timings, observe=not once, rescan_seconds=config.settings.rescan_seconds
        )
        self._stopping = self._announced_ready = False
        self._next_rescan = self._next_watchdog = self._next_status = 0.0
        self._last_status = ""

    def scan_totals(self) -> tuple[int, int, int]:
        """What `scan` reports at its end: files uploaded, failed, and given up after temporary errors."""
        scheduler = self.scheduler
        return scheduler.uploaded_count, len(scheduler.ledger.failed), len(scheduler.gave_up)

    # ---- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        """Run the loop on the calling thread until stopped (or, with once=True, until idle)."""
        # First, as a config error: a metrics.listen that cannot be bound (SPEC §3).
        self.page.configure(self.config)  # and the status page's (bound now, served from READY)
        self.reporter.metrics.set_listen(self.config.settings.metrics.listen)
        self.reporter.start()
        now = time.monotonic()
        self.unwritten.load()
        self.mover.recover()  # before the scans, which move again what never reached its new name
        self.history.start()
        # The start-up scans watch the subfolders as they list them: one walk of each tree, not two.
        self.folders.apply(self.config.folders, self.scheduler.generation, now, subfolders_by_scan=True)
        self.scheduler.begin(self.folders.active())
        self.pipeline.follow(self.scheduler.folders)
        self.reporter.configure(self.folders.active())
        self.scheduler.restore_unwritten(
            self.unwritten.items(),
            now,
            configured=self.config.folders,
        )
        self._apply_index_writes()
        self.hooks.start()
        self.videos.start()
        # Asked for before the scanner starts, so that it sees them all at once and can share the ones
        # waiting their turn with its start-up helper.
        for folder in self.folders.active():
            watch = self.folders.watch_of(folder.path)
            self.scanner.scan(folder, initial=True, generation=self.scheduler.generation, watch=watch)
        self.scanner.start()
        self.workers.ensure(self.config.settings.concurrency)
        self._announce_ready()  # at once when every folder is held by another agent
        self._next_rescan = time.monotonic() + self.config.settings.rescan_seconds
        try:
            self._loop()
        finally:
            self._shutdown()
        _, failed, gave_up = self.scan_totals()
        return 1 if self.once and (failed or gave_up) else 0

    def post(self, message: Message) -> None:
        """Thread-safe (and signal-handler-safe): hand a message to the loop."""
        self._inbox.put(message)

    def request_stop(self) -> None:
        self.post(Control.STOP)

    def request_reload(self) -> None:
        self.post(Control.RELOAD)

    def _shutdown(self) -> None:
        self.notifier.stopping()
        deadline = time.monotonic() + (0 if self.once else self.timings.stop_grace)
        self.folders.stop(join_timeout=None)
        self.scanner.stop()
        self.folders.join(max(0.0, deadline - time.monotonic()))
        # Uploads in flight get a short grace to finish and write their sidecars; one cut short
        # leaves no sidecar and is redone at the next start.
        if self.workers.stop(deadline):
            log.info("stopping with uploads in flight; they are redone at the next start")
        self.unwritten.close()
        self.history.close()
        self.videos.stop(max(0.5, deadline - time.monotonic()))
        if self.once:
            # `scan` is over when its hooks are too: they run for as long as a hook may (plus a little).
            self.hooks.wait_until_idle(self.config.settings.hooks.timeout_seconds + 5)
        # Hooks still running get the rest of the grace; unfinished runs stay in the journal for the
        # next start (at least once).
        self.hooks.stop(max(0.5, deadline - time.monotonic()))
        self.folders.release_all()  # after the uploads in flight: they were still this agent's
        self.page.stop()
        self.reporter.close()
        self.client.close()

    # ---- the loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping:
            timeout = max(0.0, self._next_deadline() - time.monotonic())
            message = self._inbox.get(timeout=min(timeout, 60.0))
            if message is not None:
                self._handle(message)
                # Drain what else is waiting before acting on timers: bursts coalesce. For a while
                # only: the start-up scan of a large folder queues its findings faster than they are
                # taken, and the turn must still end to hand out uploads and ping the watchdog.
                drain_until = time.monotonic() + DRAIN_SECONDS
                while time.monotonic() < drain_until and (message := self._inbox.get_nowait()) is not None:
                    self._handle(message)
            with holding_roots():  # the turn's looks open each watched folder once
                jobs = self.scheduler.due(time.monotonic())
            self._apply_index_writes()
            for job in jobs:
                self.workers.submit(job)
            for account, notice, where in self.scheduler.take_notices():
                self.hooks.submit(HookEvent.for_attention(notice, account or None, where))
            self._housekeeping(time.monotonic())
            if self.once and self.scheduler.ready and self.scheduler.idle() and self.videos.settled():
                break

    def _next_deadline(self) -> float:
        deadline = min(self.scheduler.next_deadline(), self.folders.next_deadline())
        if not self.once:
            deadline = min(deadline, self._next_rescan)
        if self.notifier.watchdog_interval:
            deadline = min(deadline, self._next_watchdog)
        if self._report_due or self.workers.busy:
            deadline = min(deadline, self._next_report)  # bytes sent move; a change waits no longer
        if self._announced_ready and self.status_line() != self._last_status:
            deadline = min(deadline, self._next_status)  # a throttled STATUS= still goes out
        return deadline

    def _handle(self, message: Message) -> None:
        now = time.monotonic()
        self._report_due = True
        match message:
            case PathEvent(kind=EventKind.DIR_APPEARED):
                folder = self.scheduler.folder_for(message.path)
                if folder is not None:
                    self.scanner.scan(folder, message.path, generation=self.scheduler.generation)
            case EventsLost():
                if (folder := self.scheduler.folder_for(message.folder.path)) is not None:
                    self.scanner.events_lost(folder, self.scheduler.generation, now)
            case PathEvent(kind=EventKind.ROOT_GONE):
                self.folders.root_gone(message.folder, now)
            case PathEvent(kind=EventKind.EVENTS_LOST):
                self.folders.events_lost(message.path, now)
            case PathEvent():
                if message.kind in (EventKind.WRITE, EventKind.DELETED):
                    self.pipeline.changes.bump(message.path)
                self.scheduler.handle(message, now)
            case ScanBatch():
                self.scanner.batch_taken()
                self.scheduler.handle(message, now)
            case ScanFinished():
                self.scheduler.handle(message, now)
                self._announce_ready()
            case JobDone():
                self.reporter.job_done(message)
                self.scheduler.handle(message, now)
            case Control.STOP:
                log.info("stopping")
                self._stopping = True
            case Control.RELOAD:
                self._reload()
            case _:
                assert_never(message)
        self._apply_index_writes()

    def _apply_index_writes(self) -> None:
        """The scheduler decides the index's changes, the loop makes them: before anything reads them."""
        apply_index_writes(self.history, self.scheduler.take_index_writes())

    def _scan(self, folder: Folder) -> None:
        self.scanner.scan(folder, generation=self.scheduler.generation)

    def _activate(self, now: float) -> None:
        """The set of folders this agent holds changed (a lock taken over): the scheduler follows."""
        changes = self.scheduler.reconfigure(
            self.folders.active(),
            settle_seconds=self.config.settings.settle_seconds,
            concurrency=self.config.settings.concurrency,
            now=now,
        )
        self._apply_index_writes()
        self.pipeline.follow(self.scheduler.folders)
        self.folders.set_generation(self.scheduler.generation)
        self.reporter.configure(self.folders.active())
        self._report_due = True
        for folder in changes.added:
            self._scan(folder)

    # ---- periodic work ---------------------------------------------------------------------------

    def _housekeeping(self, now: float) -> None:
        before = self.folders.active()
        if not self.once and now >= self._next_rescan:
            self._next_rescan = now + self.config.settings.rescan_seconds
            for folder in self.folders.recheck_roots(now, self.scheduler.generation):
                self._scan(folder)
            for folder in self.folders.active():
                self.scanner.scan(folder, generation=self.scheduler.generation, periodic=True)
        if now >= self.folders.next_deadline():
            for folder in self.folders.tick(now, self.scheduler.generation):
                if folder in before:
                    self._scan(folder)  # back after being lost
        if self.folders.active() != before:
            self._activate(now)  # a folder taken over, or given up (another agent's, or blocked)
        if self.notifier.watchdog_interval and now >= self._next_watchdog:
            # The loop turns (we are here) and uploads advance or nothing is in flight: that is
            # progress. Threads that merely exist are not.
            if self.workers.busy == 0 or now - self.workers.last_progress < STALLED_AFTER:
                self.notifier.watchdog()
            self._next_watchdog = now + self.notifier.watchdog_interval
        if (self._report_due or self.workers.busy) and now >= self._next_report:
            self._report_due = False
            self._next_report = now + self.timings.status_interval
            self.reporter.refresh(self.scheduler, self.workers.sending(), self.folders.locks(), now)
            self.videos.refresh()
        if self._announced_ready and now >= self._next_status:
            # Sent when it changes, at most every status_interval: an idle agent does not wake for it.
            line = self.status_line()
            if line != self._last_status:
                self._remember_status(line, now)
                self.notifier.status(line)

    def _announce_ready(self) -> None:
        self._apply_index_writes()  # first: the ready line counts the done files
        self.scheduler.tell_ready()
        if self.scheduler.ready:
            self.hooks.release_held()  # the start-up scans have finished the moves a stop cut short
        if self.scheduler.ready and not self._announced_ready:
            self._announced_ready = True
            self._send_ready()

    def _remember_status(self, line: str, now: float) -> None:
        self._last_status = line
        self._next_status = now + self.timings.status_interval

    def _send_ready(self) -> None:
        line = self.status_line()
        self._remember_status(line, time.monotonic())
        self.notifier.ready(line)
        self.page.serve()

    def status_line(self) -> str:
        standing_by, blocked = self.folders.standing_by(), self.folders.blocked()
        return status_line(self.scheduler.summary(), len(standing_by), len(blocked))

    # ---- reload ----------------------------------------------------------------------------------

    def _reload(self) -> None:
        if self._config_loader is None:
            return
        self.notifier.reloading()
        try:
            new, client = reloaded(
                self._config_loader, self._client_factory, self.reporter.metrics.set_listen, self.owner
            )
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self._send_ready()
            return
        self.client = client  # jobs in flight finish on the old one
        self.config = new
        self.hooks.reconfigure(new.settings.hooks)
        self.videos.set_folders(new.folders)
        self.folders.rescan_seconds = new.settings.rescan_seconds
        self.folders.apply(new.folders, self.scheduler.generation, time.monotonic())
        self.workers.ensure(new.settings.concurrency)
        self.page.reload(new)
        self._activate(time.monotonic())
        log.info("config reloaded from %s: %d folders", new.source, len(new.folders))
        self._send_ready()
