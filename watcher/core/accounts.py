"""Account gates: when an account's uploads must wait (the API refused it, or is unavailable for it),
and which one upload probes whether they may go on. A plain object fed outcomes and the monotonic time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from watcher.core.outcome import UploadFailure, operator_hint
from watcher.core.retry import RetryPolicy
from watcher.core.wording import count
from watcher.log_fields import account_shown, say

log = logging.getLogger("watcher")

HOLD_AFTER_TEMPORARY_FAILURES = 3
# A refused account is probed after 30 s, then 60, 120... up to every 15 minutes, without jitter so
# the log's "next probe in" is what happens.
REFUSED_PROBES = RetryPolicy(base=30.0, cap=900.0, jitter=False)
REFUSED_PROBE_FIRST = REFUSED_PROBES.backoff(1)


@dataclass
class AccountPause:
    reason: str
    next_probe: float
    refused: bool
    probes: int = 0
    probing: str | None = None
    files: set[str] = field(default_factory=set)


def _name(key: str) -> str:
    return account_shown(key)


class AccountGates:
    def __init__(self, retry_policy: RetryPolicy, *, hold_after: int = HOLD_AFTER_TEMPORARY_FAILURES) -> None:
        self.retry_policy = retry_policy
        self.hold_after = hold_after
        self.paused: dict[str, AccountPause] = {}
        self._streak: dict[str, int] = {}
        # (account, what happened) for the operator's on_attention hook: taken by the agent.
        self.notices: list[tuple[str, str]] = []

    def admits(self, key: str, path: str) -> bool:
        """Whether `path` may be uploaded now: its account is not held, or it is the account's probe."""
        pause = self.paused.get(key)
        return pause is None or pause.probing == path

    def hold(self, key: str, path: str) -> bool:
        """Park `path` if its account is held; False when the account is open."""
        pause = self.paused.get(key)
        if pause is None:
            return False
        pause.files.add(path)
        return True

    def release(self, key: str, path: str) -> None:
        """`path` is no longer waiting (deleted, failed for good, changed): forget it, probe or not."""
        pause = self.paused.get(key)
        if pause is not None:
            pause.files.discard(path)
            if pause.probing == path:
                pause.probing = None

    def on_success(self, key: str) -> set[str]:
        """Any success shows the account works: the held files to resume (empty when none were held)."""
        self._streak[key] = 0
        pause = self.paused.pop(key, None)
        if pause is None:
            return set()
        self.notices.append((key, f"{_name(key)}: the API accepts uploads again; uploads resume"))
        resuming = "%s: the API accepts uploads again; resuming %s"
        say(log.info, resuming, _name(key), count(len(pause.files), "file"), account=key, event="attention")
        return pause.files

    def on_temporary(self, key: str, path: str, failure: UploadFailure, now: float) -> bool:
        """Count a temporary failure; True when `path` is now held (else it retries on its own)."""
        streak = self._streak[key] = self._streak.get(key, 0) + 1
        pause = self.paused.get(key)
        if pause is None and streak >= self.hold_after:
            pause = self.paused[key] = AccountPause(failure.error, now, refused=False)
            failed = f"{_name(key)}: {streak} uploads in a row failed ({failure.error})"
            self.notices.append((key, f"{failed}; its uploads are held"))
            say(
                log.warning,
                "%s: %d uploads in a row failed (%s); holding its files and probing with one "
                "upload at a time until the API accepts uploads again",
                _name(key),
                streak,
                failure.error,
                account=key,
                file=path,
                event="attention",
            )
        if pause is None:
            return False
        if pause.probing == path or pause.next_probe <= now:
            pause.next_probe = max(
                pause.next_probe, now + self.retry_policy.delay(streak, failure.retry_after)
            )
        if pause.probing == path:
            pause.probing = None
            pause.probes += 1
            wait = pause.next_probe - now
            failing = "%s: still failing (%s); next probe in %.1f s"
            say(log.warning, failing, _name(key), failure.error, wait, account=key, file=path, event="retry")
        pause.files.add(path)
        return True

    def on_refused(self, key: str, path: str, failure: UploadFailure, now: float) -> None:
        """The API refused the account: hold `path` with the rest and tell the operator what to fix."""
        hint = operator_hint(failure.code if isinstance(failure.code, int) else None)
        hint = hint or "check the account on useapi.net"
        pause = self.paused.get(key)
        if pause is None or not pause.refused:
            if pause is None:
                pause = self.paused[key] = AccountPause(failure.error, now, refused=True)
            pause.refused = True  # a hold for unavailability becomes a refusal the operator must see
            pause.reason = failure.error
            pause.probing = None if pause.probing == path else pause.probing
            pause.next_probe = now + REFUSED_PROBE_FIRST
            self.notices.append((key, f"{_name(key)}: {failure.error}; its uploads are paused: {hint}"))
            say(
                log.error,
                "%s: %s. Uploads for this account are paused: %s. They resume by themselves once "
                "the API accepts them again (probed every few minutes) or on reload.",
                _name(key),
                failure.error,
                hint,
                account=key,
                file=path,
                event="attention",
            )
        elif pause.probing == path:
            pause.probes += 1
            pause.probing = None
            pause.reason = failure.error
            pause.next_probe = now + REFUSED_PROBES.backoff(pause.probes + 1)
            wait = pause.next_probe - now
            refused = "%s: still refused (%s); next probe in %.0f s"
            say(log.warning, refused, _name(key), failure.error, wait, account=key, file=path, event="retry")
        if failure.retry_after:
            pause.next_probe = max(pause.next_probe, now + failure.retry_after)
        pause.files.add(path)

    def due_probes(self, now: float) -> list[tuple[str, str]]:
        """(account, path) pairs to upload now as probes; each leaves its account's waiting set."""
        probes = []
        for key, pause in self.paused.items():
            if pause.probing is None and pause.files and pause.next_probe <= now:
                pause.probing = pause.files.pop()
                probing = "%s: probing with %s to see whether uploads can resume"
                log.info(probing, _name(key), pause.probing)
                probes.append((key, pause.probing))
        return probes

    def next_deadline(self) -> float:
        return min(
            (p.next_probe for p in self.paused.values() if p.probing is None and p.files),
            default=float("inf"),
        )

    def probe_all_now(self, now: float) -> None:
        """After a reload the operator has likely fixed something: probe at once."""
        for pause in self.paused.values():
            pause.next_probe = now

    def describe(self) -> str:
        return ", ".join(f"{_name(k)} ({p.reason})" for k, p in self.paused.items())
