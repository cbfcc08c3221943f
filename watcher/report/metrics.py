"""Prometheus metrics (SPEC §6b), in a registry of their own, served on `metrics.listen` when it is set.

Counters count from the process's start: a reload moves the server, never resets a counter. Account ""
or None shows as `default`. `NullMetrics` does nothing, so a caller never asks whether metrics are on.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from watcher.config.load import ConfigError, Listen, os_reason, parse_listen
from watcher.report.listener import Listener

UploadResult = Literal["success", "reused", "temporary", "permanent", "account"]
UPLOAD_RESULTS: tuple[UploadResult, ...] = get_args(UploadResult)
HookName = Literal["on_upload", "on_failure", "on_attention", "on_video"]
HOOKS: tuple[HookName, ...] = get_args(HookName)
FileState = Literal["pending", "failed"]
VideoResult = Literal["completed", "failed", "moderated", "unknown"]
VIDEO_RESULTS: tuple[VideoResult, ...] = get_args(VideoResult)
DEFAULT_ACCOUNT = "default"

# From a small image on loopback (0.05 s) to a 5 GB video on a slow link (30 min).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
# From the emulator's few seconds to a busy account's hours in the queue.
VIDEO_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)


def account_label(account: str | None) -> str:
    return account or DEFAULT_ACCOUNT


class MetricsSink(Protocol):
    """What the agent reports to: a `Metrics`, or a `NullMetrics` when nothing is to be served."""

    def track_account(self, account: str | None) -> None: ...
    def forget_account(self, account: str | None) -> None: ...
    def upload_finished(
        self, account: str | None, result: UploadResult, size: int = 0, seconds: float | None = None
    ) -> None: ...
    def set_files(self, folder: str, pending: int, failed: int) -> None: ...
    def forget_folder(self, folder: str) -> None: ...
    def set_folder_lock(self, folder: str, standing_by: bool, blocked: bool) -> None: ...
    def forget_folder_lock(self, folder: str) -> None: ...
    def set_paused(self, account: str | None, paused: bool) -> None: ...
    def track_hook(self, hook: HookName) -> None: ...
    def hook_run(self, hook: HookName, ok: bool) -> None: ...
    def video_finished(
        self, account: str | None, result: VideoResult, seconds: float | None = None
    ) -> None: ...
    def set_videos_in_flight(self, account: str | None, count: int) -> None: ...
    def set_listen(self, listen: str | None) -> None: ...
    def close(self) -> None: ...


class SandboxedProcessCollector(ProcessCollector):
    """The standard process metrics, also where /proc/stat is hidden.

    The stock collector reads the boot time from /proc/stat and, failing that, exports nothing; the
    service's unit mounts /proc with ProcSubset=pid, which hides that file but not /proc/self. The boot
    time is then what CLOCK_BOOTTIME says, to a fraction of a second.
    """

    def _boot_time(self) -> float:
        try:
            btime = super()._boot_time()  # type: ignore[no-untyped-call]
        except OSError:
            btime = None
        if btime:
            return float(btime)
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


class Metrics:
    """The agent's metrics, and the HTTP server that Prometheus scrapes them from.

    Methods are safe to call from any thread. Counters are process-lifetime: keep one `Metrics` across
    config reloads and call `set_listen` with the new `metrics.listen`; never make a new one on reload.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        SandboxedProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._uploads = Counter(
            "minimax_watcher_uploads",
            "Upload attempts by how they ended: success, reused (identical bytes already uploaded, no "
            "upload made), temporary (retried), permanent (error record written), account (the account "
            "was refused and paused).",
            ["account", "result"],
            registry=self.registry,
        )
        self._bytes = Counter(
            "minimax_watcher_uploaded_bytes",
            "Bytes of the files uploaded successfully.",
            ["account"],
            registry=self.registry,
        )
        self._files = Gauge(
            "minimax_watcher_files",
            "Files per watched folder waiting to be uploaded (pending) or with an error record (failed).",
            ["folder", "state"],
            registry=self.registry,
        )
        self._paused = Gauge(
            "minimax_watcher_account_paused",
            "1 while uploads for the account are paused because useapi.net refused the account, else 0.",
            ["account"],
            registry=self.registry,
        )
        self._standing_by = Gauge(
            "minimax_watcher_folder_standing_by",
            "1 while another agent holds the configured folder's lock and this one stands by, else 0.",
            ["folder"],
            registry=self.registry,
        )
        self._lock_blocked = Gauge(
            "minimax_watcher_folder_lock_blocked",
            "1 while the configured folder is not worked on because its lock name (.minimax-watcher.lock) "
            "is taken by something that is not a lock file, else 0.",
            ["folder"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "minimax_watcher_upload_duration_seconds",
            "Time a successful upload took, from its first byte sent to the answer.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._hook_runs = Counter(
            "minimax_watcher_hook_runs",
            "Hook runs by hook (on_upload, on_failure, on_attention, on_video) and result (ok, or failed: a non-zero "
            "exit or a timeout; each retry counts).",
            ["hook", "result"],
            registry=self.registry,
        )
        self._videos = Counter(
            "minimax_watcher_videos",
            "Videos ended, by account and result: completed (the MP4 is on disk), failed, moderated, "
            "unknown (a create whose answer was lost: not resent but by `minimax-watcher retry`).",
            ["account", "result"],
            registry=self.registry,
        )
        self._videos_in_flight = Gauge(
            "minimax_watcher_videos_in_flight",
            "Videos submitted to videos/create and not yet final (at most the account's max_jobs).",
            ["account"],
            registry=self.registry,
        )
        self._video_seconds = Histogram(
            "minimax_watcher_video_seconds",
            "Time from a video's submission to its MP4 on disk.",
            buckets=VIDEO_BUCKETS,
            registry=self.registry,
        )
        # Accounts whose series exist, and their counters (the same objects labels() would return).
        self._tracked: set[str] = set()
        self._upload_counts: dict[tuple[str, str], Counter] = {}
        self._byte_counts: dict[str, Counter] = {}
        self._lock = threading.Lock()
        self._listen: str | None = None
        self._stop_server: Callable[[], None] | None = None

    # ---- what the agent reports ---------------------------------------------------------------------

    def track_account(self, account: str | None) -> None:
        """Export the account's series at 0 before anything happens to it.

        A series that first appears at 1 is invisible to `increase()`, so an alert on the first failure
        needs it there beforehand: call this for each configured account at start and after a reload.
        The other methods call it too.
        """
        label = account_label(account)
        if label in self._tracked:
            return  # called for every upload: prometheus_client's labels() is not free
        for result in UPLOAD_RESULTS:
            self._upload_counts[label, result] = self._uploads.labels(label, result)
        self._byte_counts[label] = self._bytes.labels(label)
        self._paused.labels(label)
        self._tracked.add(label)

    def forget_account(self, account: str | None) -> None:
        """Stop exporting whether an account no longer configured is paused (a stale 1 would alert forever).

        Its counters stay: they count what happened, and `increase()` needs them to go on.
        """
        label = account_label(account)
        self._tracked.discard(label)
        try:
            self._paused.remove(label)
        except KeyError:
            pass

    def upload_finished(
        self, account: str | None, result: UploadResult, size: int = 0, seconds: float | None = None
    ) -> None:
        """One upload attempt ended with `result`, or a file was done by reusing a fileID (`reused`).

        A retried file counts once per attempt. `size` (bytes) and `seconds` are counted only for
        `success`: reused bytes were not sent, and a failure's duration says little about uploads.
        """
        if result not in UPLOAD_RESULTS:
            raise ValueError(f"unknown upload result {result!r}; one of {', '.join(UPLOAD_RESULTS)}")
        self.track_account(account)
        label = account_label(account)
        self._upload_counts[label, result].inc()
        if result == "success":
            if size > 0:
                self._byte_counts[label].inc(size)
            if seconds is not None:
                self._duration.observe(max(0.0, seconds))

    def video_finished(self, account: str | None, result: VideoResult, seconds: float | None = None) -> None:
        """One video ended with `result`; `seconds` (submission to MP4 on disk) for a completed one."""
        if result not in VIDEO_RESULTS:
            raise ValueError(f"unknown video result {result!r}; one of {', '.join(VIDEO_RESULTS)}")
        self._videos.labels(account_label(account), result).inc()
        if result == "completed" and seconds is not None:
            self._video_seconds.observe(max(0.0, seconds))

    def set_videos_in_flight(self, account: str | None, count: int) -> None:
        self._videos_in_flight.labels(account_label(account)).set(count)

    def set_files(self, folder: str, pending: int, failed: int) -> None:
        """The folder's current counts of files pending and failed."""
        self._files.labels(folder, "pending").set(pending)
        self._files.labels(folder, "failed").set(failed)

    def forget_folder(self, folder: str) -> None:
        """Stop exporting a folder no longer watched (after a reload removed it)."""
        for state in ("pending", "failed"):
            try:
                self._files.remove(folder, state)
            except KeyError:
                pass

    def set_folder_lock(self, folder: str, standing_by: bool, blocked: bool) -> None:
        """Whether a configured folder waits for another agent, or for its lock name to be freed."""
        self._standing_by.labels(folder).set(1 if standing_by else 0)
        self._lock_blocked.labels(folder).set(1 if blocked else 0)

    def forget_folder_lock(self, folder: str) -> None:
        """Stop exporting a folder no longer configured (a stale 1 would alert forever)."""
        for gauge in (self._standing_by, self._lock_blocked):
            try:
                gauge.remove(folder)
            except KeyError:
                pass

    def set_paused(self, account: str | None, paused: bool) -> None:
        self.track_account(account)
        self._paused.labels(account_label(account)).set(1 if paused else 0)

    def track_hook(self, hook: HookName) -> None:
        """Export a configured hook's series at 0 before its first run (see `track_account`)."""
        self._check_hook(hook)
        for result in ("ok", "failed"):
            self._hook_runs.labels(hook, result)

    def hook_run(self, hook: HookName, ok: bool) -> None:
        """One run of `hook` ended: `ok` when it exited 0 in time."""
        self.track_hook(hook)
        self._hook_runs.labels(hook, "ok" if ok else "failed").inc()

    @staticmethod
    def _check_hook(hook: str) -> None:
        if hook not in HOOKS:
            raise ValueError(f"unknown hook {hook!r}; one of {', '.join(HOOKS)}")

    # ---- serving -----------------------------------------------------------------------------------

    def serve(self, listen: str) -> Callable[[], None]:
        """Serve the registry at http://`listen`/metrics (`watcher.report.listener`: capped, timed out); return what
        stops it.

        `listen` is `metrics.listen` (`127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`). An address that is
        malformed, in use, not on this machine or not permitted raises `ConfigError` naming
        `metrics.listen` (SPEC §3: exit 78 at start). The stop function waits for the server's thread,
        frees the port at once, and may be called more than once.
        """
        address = _parse_or_refuse(listen)
        try:
            server = Listener(address.host, address.port, make_wsgi_app(self.registry), name="metrics")
        except OSError as exc:
            raise ConfigError(f"metrics.listen: cannot listen on {listen}: {bind_problem(exc)}") from None
        return server.start().stop

    def set_listen(self, listen: str | None) -> None:
        """Make the managed server follow `metrics.listen`: start, move or stop it; same value, no change.

        For start and reload. If the new address cannot be served, `ConfigError` is raised and the server
        keeps serving where it was (a refused reload keeps the old config, metrics included).
        """
        with self._lock:
            if listen == self._listen:
                return
            old_listen, old_stop = self._listen, self._stop_server
            if listen is not None:
                _parse_or_refuse(listen)
            # Stopped first, so a move between addresses that share the port (127.0.0.1:9464 to
            # 0.0.0.0:9464) does not collide with itself.
            if old_stop is not None:
                old_stop()
            self._listen, self._stop_server = None, None
            if listen is None:
                return
            try:
                self._stop_server = self.serve(listen)
            except ConfigError:
                if old_listen is not None:
                    try:
                        self._stop_server = self.serve(old_listen)
                        self._listen = old_listen
                    except ConfigError:
                        pass  # taken in the moment it was free; the new address's error is the one to tell
                raise
            self._listen = listen

    def close(self) -> None:
        """Stop the managed server, if any (at the agent's exit)."""
        self.set_listen(None)


def _parse_or_refuse(listen: str) -> Listen:
    try:
        return parse_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"metrics.listen: {exc}") from None


def bind_problem(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use (another program, or a second agent with the same config?)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no interface of this machine has that address"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges; use a port such as 9464)"
    return os_reason(exc)


class NullMetrics:
    """`Metrics` with metrics off: every method accepts the same arguments and does nothing."""

    registry = None

    def track_account(self, account: str | None) -> None:
        pass

    def forget_account(self, account: str | None) -> None:
        pass

    def upload_finished(
        self, account: str | None, result: UploadResult, size: int = 0, seconds: float | None = None
    ) -> None:
        pass

    def set_files(self, folder: str, pending: int, failed: int) -> None:
        pass

    def forget_folder(self, folder: str) -> None:
        pass

    def set_folder_lock(self, folder: str, standing_by: bool, blocked: bool) -> None:
        pass

    def forget_folder_lock(self, folder: str) -> None:
        pass

    def set_paused(self, account: str | None, paused: bool) -> None:
        pass

    def track_hook(self, hook: HookName) -> None:
        pass

    def hook_run(self, hook: HookName, ok: bool) -> None:
        pass

    def video_finished(self, account: str | None, result: VideoResult, seconds: float | None = None) -> None:
        pass

    def set_videos_in_flight(self, account: str | None, count: int) -> None:
        pass

    def set_listen(self, listen: str | None) -> None:
        pass

    def close(self) -> None:
        pass
