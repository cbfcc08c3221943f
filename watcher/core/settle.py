"""The settle rule: when has a file stopped changing long enough to upload it?

`SettleTracker` is a plain object: callers feed it what they saw (a stat, a modify event, a
close-after-write event) with the monotonic time, and it answers "ready" or "look again at T".
It never touches the filesystem or a clock itself, so the rule is tested with an injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watcher.core.signature import FileSignature

# After a close-after-write (or a rename into the folder) of a structurally complete image, the file
# still has to hold still for this long: a shorter wait, never a zero one.
DEFAULT_CONFIRM_SECONDS = 0.2


@dataclass(frozen=True)
class Ready:
    signature: FileSignature


@dataclass(frozen=True)
class WaitUntil:
    at: float


SettleDecision = Ready | WaitUntil


@dataclass
class _Observation:
    signature: FileSignature | None  # None: a close event arrived before any stat
    stable_since: float
    finished: bool  # a close-after-write or move-in arrived and no write came after it
    # The signature at which a look found the image's structure whole (`check(looks_complete=True)`).
    complete_at: FileSignature | None = None


class SettleTracker:
    """Tracks, per path, since when its size and mtime have held still."""

    def __init__(self, settle_seconds: float, confirm_seconds: float = DEFAULT_CONFIRM_SECONDS) -> None:
        if settle_seconds <= 0 or confirm_seconds <= 0:
            raise ValueError("settle_seconds and confirm_seconds must be positive: never zero confirmation")
        self.settle_seconds = settle_seconds
        self.confirm_seconds = min(confirm_seconds, settle_seconds)
        self._seen: dict[str, _Observation] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, path: object) -> bool:
        return path in self._seen

    def note_write(self, path: str, now: float) -> None:
        """A modify event: whatever was seen so far no longer counts as quiet."""
        seen = self._seen.get(path)
        if seen is not None:
            seen.stable_since = now
            seen.finished = False
            seen.complete_at = None

    def note_finished(self, path: str, now: float) -> None:
        """A close-after-write, or the file was renamed into place: its writer says it is done."""
        seen = self._seen.get(path)
        if seen is not None:
            seen.stable_since = now
            seen.finished = True
        else:
            # Nothing stat'ed yet: remember the hint; the first check starts the confirmation window.
            self._seen[path] = _Observation(None, now, True)

    def is_finished(self, path: str) -> bool:
        seen = self._seen.get(path)
        return seen is not None and seen.finished

    def seen_complete(self, path: str, signature: FileSignature) -> bool:
        """Whether a look already found the structure whole at this very signature and no write came
        since: the confirmation look need not read the file again, the unchanged signature is what it
        confirms (bytes rewritten in place with size and mtime kept would pass a second read as well)."""
        seen = self._seen.get(path)
        return seen is not None and seen.complete_at == signature

    def signature(self, path: str) -> FileSignature | None:
        """The signature last seen by `check`, None when the path has not been stat'ed yet."""
        seen = self._seen.get(path)
        return seen.signature if seen is not None else None

    def forget(self, path: str) -> None:
        self._seen.pop(path, None)

    def check(
        self,
        path: str,
        signature: FileSignature,
        *,
        now: float,
        wall_now: float,
        looks_complete: bool,
        settle_seconds: float | None = None,
    ) -> SettleDecision:
        """Decide from a fresh stat whether `path` is ready.

        `looks_complete` says the image's own structure is whole (see `media.looks_complete`); only
        then may a close event shorten the wait. A file whose mtime is already older than the settle
        time (found by a scan after a restart, say) needs only the short confirmation as well.
        """
        settle = settle_seconds if settle_seconds is not None else self.settle_seconds
        seen = self._seen.get(path)
        if seen is None:
            seen = self._seen[path] = _Observation(signature, now, False)
        elif seen.signature != signature:
            seen.signature = signature
            seen.stable_since = now
        if signature.size == 0:
            # An empty file is a writer that has not started: never upload it, look again later.
            seen.stable_since = now
            return WaitUntil(now + settle)
        if looks_complete:
            seen.complete_at = signature

        required = settle
        quiet_by_mtime = wall_now - signature.mtime_ns / 1e9 >= settle
        if (seen.finished and looks_complete) or quiet_by_mtime:
            required = min(self.confirm_seconds, settle)
        due = seen.stable_since + required
        if now >= due:
            return Ready(signature)
        return WaitUntil(due)
