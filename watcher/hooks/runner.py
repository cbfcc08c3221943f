"""Hooks (SPEC §6b): the operator's programs, run after the fact, off the upload path, at least once.

`submit` only journals the run and wakes a runner thread; an upload's or failure's run is prepared before
its record is renamed into place and committed once the file moved. A hook's environment never holds the
token or systemd's per-service variables. See docs/architecture.md, 'Hooks'.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.config.load import TOKEN_ENV, HooksSettings
from watcher.config.token import is_proxy_variable
from watcher.core.retry import RetryPolicy
from watcher.hooks.events import EVENT_VARIABLES, HookEvent
from watcher.hooks.intent import RecordPlace, locate
from watcher.hooks.journal import HookJournal, PendingRun
from watcher.hooks.process import KILL_GRACE, OUTPUT_LIMIT, Captured, ProcessResult, run_process
from watcher.log_fields import fields
from watcher.redact import redact, withheld_in

MAX_ATTEMPTS = 5
HOOK_RETRY = RetryPolicy(base=2.0, cap=300.0)

# Never passed on: the token and where systemd keeps it, and what belongs to the agent's own dealings
# with systemd (its notify socket, watchdog, sockets, journal stream: the hook's stderr is a pipe).
SCRUBBED_VARIABLES = frozenset(
    {
        TOKEN_ENV,
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "JOURNAL_STREAM",
        "MEMORY_PRESSURE_WATCH",
        "MEMORY_PRESSURE_WRITE",
        *EVENT_VARIABLES,
    }
)


def hook_environment(
    event_env: Mapping[str, str], base: Mapping[str, str] | None = None, *, pass_proxy: bool = False
) -> dict[str, str]:
    """The agent's environment (`base`) without the token or systemd's variables, plus the event's.

    A variable whose name or value holds a registered secret is dropped too: the token may have been
    copied into another variable by whoever started the agent. The proxy variables (`*_proxy`, any
    case) are dropped unless `pass_proxy` (`hooks.pass_proxy`); then they are passed with the proxy's
    own password, never with the token.
    """
    base = os.environ if base is None else base
    env = {}
    for name, value in base.items():
        if name in SCRUBBED_VARIABLES:
            continue
        if is_proxy_variable(name):
            if pass_proxy and not withheld_in(name) and not withheld_in(value):
                env[name] = value
        elif redact(name) == name and redact(value) == value:
            env[name] = value
    env.update(event_env)
    return env


@dataclass
class _Run:
    entry: PendingRun
    event: HookEvent


@dataclass(frozen=True)
class PreparedRun:
    """A run journalled before its record was written (`HookRunner.prepare`)."""

    run_id: str
    event: HookEvent


class HookRunner:
    """Runs each submitted event's hook, at most `concurrency` at once, at least once (see the module).

    One runner for the agent's life: `reconfigure` on a reload, `stop` at the end. `on_result(hook,
    ok)` is called, from a worker thread, once per attempt (the metric hook_runs_total counts
    processes run), never for an attempt cut short by `stop`.
    """

    def __init__(
        self,
        hooks: HooksSettings,
        state_dir: Path | None,
        concurrency: int,
        log: logging.Logger | None = None,
        *,
        on_result: Callable[[str, bool], None] | None = None,
        retry: RetryPolicy = HOOK_RETRY,
        max_attempts: int = MAX_ATTEMPTS,
        kill_grace: float = KILL_GRACE,
        output_limit: int = OUTPUT_LIMIT,
    ) -> None:
        self._hooks = hooks
        self._concurrency = max(1, concurrency)
        self._log = log or logging.getLogger(__name__)
        self._on_result = on_result
        self._retry = retry
        self._max_attempts = max_attempts
        self._kill_grace = kill_grace
        self._output_limit = output_limit
        self._journal = HookJournal(state_dir, self._log)
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, _Run]] = []  # (due on the monotonic clock, order, run)
        self._order = itertools.count()
        self._workers: list[threading.Thread] = []
        self._stopping = False
        # Readable once stop() gives up waiting: every running hook's selector sees it and kills its hook.
        self._abort_r, self._abort_w = os.pipe2(os.O_CLOEXEC)
        self._closed = False
        self._held: list[_Run] = []  # runs of an earlier process whose record is still to be found

    @property
    def pending(self) -> int:
        """Runs not finished yet: waiting, running, or waiting to be retried."""
        return len(self._journal)

    def reconfigure(self, hooks: HooksSettings) -> None:
        """New hooks (a reload): the next attempts run what is configured now; runs of a hook no longer
        configured are dropped when their turn comes."""
        with self._cond:
            self._hooks = hooks

    def will_run(self, hook: str) -> bool:
        """Whether `hook` (on_upload, on_failure, on_attention) is configured now."""
        with self._cond:
            return self._hooks.argv(hook) is not None

    def submit(self, event: HookEvent) -> bool:
        """Record a run of `event`'s hook and return without waiting for any hook; False when that hook is
        not configured.

        The run is in the journal, fsynced, when this returns; it runs once `start` has been called.
        """
        with self._cond:
            if self._hooks.argv(event.hook) is None:
                return False
        run = _Run(PendingRun(secrets.token_hex(8), event.to_json()), event)
        self._journal.add(run.entry)
        self._schedule(run, delay=0.0)
        return True

    def prepare(self, event: HookEvent, place: RecordPlace) -> PreparedRun | None:
        """Record a run of an upload's or failure's hook *before* its record is written at `place`;
        None when that hook is not configured. On disk when this returns; it runs once `commit`ted."""
        with self._cond:
            if self._hooks.argv(event.hook) is None:
                return None
        entry = PendingRun(secrets.token_hex(8), event.to_json(), at=place.to_json())
        self._journal.add(entry)
        return PreparedRun(entry.run_id, event)

    def commit(self, prepared: PreparedRun, moved_to: str | None = None) -> None:
        """The record is durable (and the file moved to `moved_to`): the run may start."""
        event = prepared.event.at_path(moved_to) if moved_to else prepared.event
        entry = self._journal.commit(prepared.run_id, event.to_json())
        if entry is not None:
            self._schedule(_Run(entry, event), delay=0.0)

    def cancel(self, prepared: PreparedRun) -> None:
        """The record was not written (or is not to be announced): no run."""
        self._journal.finish(prepared.run_id)

    def start(self) -> None:
        """Queue the runs an earlier process left unfinished, then start the workers. Those whose
        record may not have been written wait for `release_held` (the start-up scans finish the moves
        a stop cut short, so that the file is where it stays)."""
        for entry in self._journal.load():
            try:
                event = HookEvent.from_json(entry.event)
                if entry.at is not None:
                    RecordPlace.from_json(entry.at)
            except ValueError:
                self._journal.finish(entry.run_id)
                continue
            if entry.at is not None:
                self._held.append(_Run(entry, event))
            else:
                self._schedule(_Run(entry, event), delay=0.0)
        if self.pending:
            self._log.info("%d hook runs pending", self.pending)
        with self._cond:
            if self._workers or self._stopping:
                return
            for index in range(self._concurrency):
                worker = threading.Thread(target=self._work, name=f"hook-{index}", daemon=True)
                self._workers.append(worker)
                worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """No new runs; running hooks get `timeout` seconds to finish, then are killed. What did not
        finish stays in the journal for the next start."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if not self._closed and any(worker.is_alive() for worker in self._workers):
            os.write(self._abort_w, b"x")
            for worker in self._workers:
                worker.join(self._kill_grace + 5.0)
        if not self._closed and not any(worker.is_alive() for worker in self._workers):
            self._closed = True
            self._journal.close()
            os.close(self._abort_r)
            os.close(self._abort_w)

    def release_held(self) -> None:
        """Let the held runs go (each one is checked for its record first, on a worker)."""
        held, self._held = self._held, []
        for run in held:
            self._schedule(run, delay=0.0)

    # ---- the workers ------------------------------------------------------------------------------

    def _schedule(self, run: _Run, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), run))
            self._cond.notify()

    def _next_run(self) -> _Run | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._queue and self._queue[0][0] <= now:
                    return heapq.heappop(self._queue)[2]
                self._cond.wait(self._queue[0][0] - now if self._queue else None)
            return None

    def _work(self) -> None:
        while (run := self._next_run()) is not None:
            try:
                self._attempt(run)
            except Exception:
                # A bug here must not cost a worker (and so concurrency) or the run: it is retried.
                self._log.exception("hook %s for %s: unexpected error", run.event.hook, run.event.subject)
                self._schedule(run, self._retry.delay(max(1, run.entry.failures)))
            with self._cond:
                self._cond.notify_all()  # wakes wait_until_idle

    def wait_until_idle(self, timeout: float) -> bool:
        """Wait until no run is pending (`scan` lets its hooks finish before it exits), at most
        `timeout` seconds; True when none is. Runs still retrying then stay for the next start."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.pending and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(min(left, 1.0))
        return not self.pending

    def _attempt(self, run: _Run) -> None:
        if run.entry.at is not None and not self._found(run):
            return
        event, hook = run.event, run.event.hook
        tag = f"hook {hook} for {event.subject}"
        extra = _log_fields(event)
        with self._cond:
            argv, timeout = self._hooks.argv(hook), self._hooks.timeout_seconds
            pass_proxy = self._hooks.pass_proxy
        if argv is None:
            self._log.info("%s: no longer configured; the run is dropped", tag, extra=extra)
            self._journal.finish(run.entry.run_id)
            return
        started = time.monotonic()
        result = run_process(
            argv,
            hook_environment(event.env, pass_proxy=pass_proxy),
            event.stdin.encode("utf-8", "surrogateescape"),
            timeout,
            abort_fd=self._abort_r,
            kill_grace=self._kill_grace,
            output_limit=self._output_limit,
        )
        self._log_output(tag, result, extra)
        if result.interrupted:
            self._log.info("%s: stopped with the agent; it runs again at the next start", tag, extra=extra)
            return
        self._report(hook, result.ok)
        if result.ok:
            self._log.info("%s: done in %.1f s", tag, time.monotonic() - started, extra=extra)
            self._journal.finish(run.entry.run_id)
            return
        run.entry.failures += 1
        attempt = run.entry.failures
        if attempt >= self._max_attempts:
            self._log.error("%s: %s; gave up after %d attempts", tag, result.failure, attempt, extra=extra)
            self._journal.finish(run.entry.run_id)
            return
        delay = self._retry.delay(attempt)
        self._log.warning(
            "%s: %s (attempt %d of %d); trying again in %.0f s",
            tag,
            result.failure,
            attempt,
            self._max_attempts,
            delay,
            extra=extra,
        )
        self._journal.failed(run.entry)
        self._schedule(run, delay)

    def _found(self, run: _Run) -> bool:
        """Whether the record of a run an earlier process prepared was written; if so the run is
        committed with the file where it is now."""
        assert run.entry.at is not None
        try:
            document = json.loads(run.event.stdin)
            place = RecordPlace.from_json(run.entry.at)
        except ValueError:
            document = None
        where = locate(place, document) if isinstance(document, dict) else None
        if where is None:
            record = "sidecar" if run.event.event == "upload" else "error record"
            self._log.info(
                "hook %s for %s: its %s was never written (the agent stopped before); no run for it",
                run.event.hook,
                run.event.subject,
                record,
                extra=_log_fields(run.event),
            )
            self._journal.finish(run.entry.run_id)
            return False
        run.event = run.event.at_path(where)
        self._journal.commit(run.entry.run_id, run.event.to_json())
        return True

    def _report(self, hook: str, ok: bool) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(hook, ok)
        except Exception:
            self._log.exception("reporting a hook result failed")

    def _log_output(self, tag: str, result: ProcessResult, extra: dict[str, Any]) -> None:
        for stream, captured in (("stdout", result.stdout), ("stderr", result.stderr)):
            for line in _lines(captured):
                self._log.info("%s: %s: %s", tag, stream, line, extra=extra)
            if captured.omitted:
                self._log.info(
                    "%s: %s: ... %d more bytes not shown", tag, stream, captured.omitted, extra=extra
                )


def _lines(captured: Captured) -> list[str]:
    text = captured.head.decode("utf-8", "replace")
    return [line for line in text.splitlines() if line.strip()]


def _log_fields(event: HookEvent) -> dict[str, Any]:
    env = event.env
    return fields(
        file=env.get("MINIMAX_FILE"),
        folder=env.get("MINIMAX_FOLDER"),
        account=env.get("MINIMAX_ACCOUNT"),
        file_id=env.get("MINIMAX_FILE_ID"),
        event=event.event,
    )
