"""Hooks (SPEC §6b): the operator's programs, run after the fact, off the upload path.

`HookEvent` is what one event hands its hook: the `MINIMAX_*` variables that apply and a JSON document
for stdin (the sidecar, the error record, or the attention event). `HookRunner` runs the configured
hook for each submitted event:

- `submit` only records the run (in the state folder's journal, fsynced, before it returns) and wakes
  a worker: a slow or hanging hook never delays the caller;
- at most `concurrency` hooks run at once, each one process, argv as configured, no shell, in a process
  group of its own, which is killed whole past `hooks.timeout_seconds` (`watcher.hook_process`);
- a hook that exits non-zero or times out runs again after a backoff, up to 5 attempts in all, then is
  given up with one error line; a run finished either way leaves the journal;
- runs still pending when the agent stops or dies are run again at the next `start`, so delivery is at
  least once: a hook may run twice for one event and must tolerate that.

A hook's environment is the agent's, minus the token and systemd's per-service variables (a hook that
wrote to $NOTIFY_SOCKET would speak for the agent), plus the event's variables. Its output goes to the
log through the normal logger (so redaction applies), each line tagged with the hook and its file, the
first 4 KiB of each stream at most.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from watcher.config import TOKEN_ENV, HooksSettings
from watcher.folders import Folder
from watcher.hook_journal import HookJournal, JournalEntry
from watcher.hook_process import KILL_GRACE, OUTPUT_LIMIT, Captured, ProcessResult, run_process
from watcher.log_fields import fields
from watcher.media import error_record_path, sidecar_path
from watcher.redact import redact
from watcher.retry import RetryPolicy
from watcher.sidecar import utc_now_iso

EventKind = Literal["upload", "failure", "attention"]
HOOK_OF_EVENT: dict[str, str] = {"upload": "on_upload", "failure": "on_failure", "attention": "on_attention"}
MAX_ATTEMPTS = 5
HOOK_RETRY = RetryPolicy(base=2.0, cap=300.0)

# The variables of SPEC §6b. Inherited ones are dropped, so that a hook never sees a stale value that
# does not apply to its event.
EVENT_VARIABLES = (
    "MINIMAX_EVENT",
    "MINIMAX_FILE",
    "MINIMAX_SIDECAR",
    "MINIMAX_ERROR_RECORD",
    "MINIMAX_FILE_ID",
    "MINIMAX_OSS_PATH",
    "MINIMAX_ACCOUNT",
    "MINIMAX_SHA256",
    "MINIMAX_CONTENT_TYPE",
    "MINIMAX_FOLDER",
    "MINIMAX_ERROR",
    "MINIMAX_CODE",
    "MINIMAX_MESSAGE",
)
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
MAX_ENV_VALUE = 8192  # a message or path longer than this is cut: the hook gets the whole on stdin


@dataclass(frozen=True)
class HookEvent:
    """One event for a hook: the variables that apply, the JSON for its stdin, and what it is about."""

    event: EventKind
    env: Mapping[str, str] = field(hash=False)
    stdin: str
    subject: str  # what the log tags it with: the file, or the account or folder of an attention event

    @property
    def hook(self) -> str:
        """The config key of the hook this event runs: on_upload, on_failure or on_attention."""
        return HOOK_OF_EVENT[self.event]

    @classmethod
    def for_upload(cls, path: str, folder: Folder | str, sidecar: Mapping[str, Any]) -> HookEvent:
        """A sidecar now durable beside `path` (where the file is now, after any move to done_dir)."""
        env = _variables(
            MINIMAX_EVENT="upload",
            MINIMAX_FILE=path,
            MINIMAX_SIDECAR=sidecar_path(path),
            MINIMAX_FILE_ID=sidecar.get("fileID"),
            MINIMAX_OSS_PATH=sidecar.get("ossPath"),
            MINIMAX_ACCOUNT=sidecar.get("account") or _account_of(folder),
            MINIMAX_SHA256=sidecar.get("sha256"),
            MINIMAX_CONTENT_TYPE=sidecar.get("contentType"),
            MINIMAX_FOLDER=_path_of(folder),
        )
        return cls("upload", env, _json(sidecar), path)

    @classmethod
    def for_failure(
        cls, path: str, folder: Folder | str, record: Mapping[str, Any], account: str | None = None
    ) -> HookEvent:
        """An error record now durable beside `path`; the account is the folder's unless given."""
        env = _variables(
            MINIMAX_EVENT="failure",
            MINIMAX_FILE=path,
            MINIMAX_ERROR_RECORD=error_record_path(path),
            MINIMAX_ACCOUNT=account or _account_of(folder),
            MINIMAX_FOLDER=_path_of(folder),
            MINIMAX_ERROR=record.get("error"),
            MINIMAX_CODE=record.get("code"),
        )
        return cls("failure", env, _json(record), path)

    @classmethod
    def for_attention(
        cls, message: str, account: str | None = None, folder: Folder | str | None = None
    ) -> HookEvent:
        """Something the operator must look at: an account paused or resumed, a folder it cannot write."""
        folder_path = _path_of(folder) if folder is not None else None
        env = _variables(
            MINIMAX_EVENT="attention",
            MINIMAX_MESSAGE=message,
            MINIMAX_ACCOUNT=account,
            MINIMAX_FOLDER=folder_path,
        )
        document: dict[str, Any] = {"event": "attention", "message": message}
        document.update({k: v for k, v in (("account", account), ("folder", folder_path)) if v})
        document["at"] = utc_now_iso()
        subject = f"account {account}" if account else (folder_path or "the agent")
        return cls("attention", env, _json(document), subject)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "env": dict(self.env), "stdin": self.stdin, "subject": self.subject}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HookEvent:
        """The event `to_json` wrote; ValueError when it is not one (a journal line from another version)."""
        event, env = data.get("event"), data.get("env")
        if event not in HOOK_OF_EVENT or not isinstance(env, dict):
            raise ValueError("not a hook event")
        if not all(
            isinstance(k, str) and isinstance(v, str) and k in EVENT_VARIABLES for k, v in env.items()
        ):
            raise ValueError("not a hook event's variables")
        stdin, subject = data.get("stdin"), data.get("subject")
        if not isinstance(stdin, str) or not isinstance(subject, str):
            raise ValueError("not a hook event")
        return cls(event, dict(env), stdin, subject)


def _variables(**values: Any) -> dict[str, str]:
    """The variables that apply: those with a value, as text an environment can hold."""
    env = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        text = str(value).replace("\0", "")
        env[name] = text if len(text) <= MAX_ENV_VALUE else text[:MAX_ENV_VALUE]
    return env


def _account_of(folder: Folder | str | None) -> str | None:
    return folder.account if isinstance(folder, Folder) else None


def _path_of(folder: Folder | str) -> str:
    return folder.path if isinstance(folder, Folder) else folder


def _json(document: Mapping[str, Any]) -> str:
    return json.dumps(dict(document), ensure_ascii=False)


def hook_environment(event_env: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agent's environment (`base`) without the token or systemd's variables, plus the event's.

    A variable whose name or value holds a registered secret is dropped too: the token may have been
    copied into another variable by whoever started the agent.
    """
    base = os.environ if base is None else base
    env = {
        name: value
        for name, value in base.items()
        if name not in SCRUBBED_VARIABLES and redact(name) == name and redact(value) == value
    }
    env.update(event_env)
    return env


@dataclass
class _Run:
    entry: JournalEntry
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
        run = _Run(JournalEntry(secrets.token_hex(8), event.to_json()), event)
        self._journal.add(run.entry)
        self._schedule(run, delay=0.0)
        return True

    def start(self) -> None:
        """Queue the runs an earlier process left unfinished, then start the workers."""
        for entry in self._journal.load():
            try:
                event = HookEvent.from_json(entry.event)
            except ValueError:
                self._journal.finish(entry.run_id)
                continue
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
            os.close(self._abort_r)
            os.close(self._abort_w)

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
        event, hook = run.event, run.event.hook
        tag = f"hook {hook} for {event.subject}"
        extra = _log_fields(event)
        with self._cond:
            argv, timeout = self._hooks.argv(hook), self._hooks.timeout_seconds
        if argv is None:
            self._log.info("%s: no longer configured; the run is dropped", tag, extra=extra)
            self._journal.finish(run.entry.run_id)
            return
        started = time.monotonic()
        result = run_process(
            argv,
            hook_environment(event.env),
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
        self._log.warning("%s: %s (attempt %d of %d); trying again in %.0f s",
                          tag, result.failure, attempt, self._max_attempts, delay, extra=extra)  # fmt: skip
        self._journal.failed(run.entry)
        self._schedule(run, delay)

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
