"""The retry policy as a value: exponential backoff with full jitter, capped, honouring Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before attempt `n + 1` after `n` temporary failures in a row.

    Full jitter (a uniform draw between `floor` and the capped exponential) spreads a backlog's retries
    out after an outage instead of hammering the API in lockstep; `jitter=False` waits the ceiling itself
    (for probes an operator reads about in the log). By default there is no attempt limit: an outage
    may last as long as it likes and nothing is dropped. `give_up_after` sets one, for the commands
    that must end (`scan`, `upload`).
    """

    base: float = 1.0
    cap: float = 300.0
    floor: float = 0.1
    # A server may ask for a longer wait than `cap`; it is honoured up to this bound.
    max_retry_after: float = 3600.0
    jitter: bool = True
    give_up_after: int | None = None
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, failures: int) -> float:
        # The exponent stops growing long before 2**n could overflow a float in a days-long outage.
        ceiling: float = min(self.cap, self.base * 2.0 ** min(max(0, failures - 1), 62))
        if not self.jitter:
            return ceiling
        return self.rng.uniform(min(self.floor, ceiling), ceiling)

    def gives_up(self, failures: int) -> bool:
        """Whether `failures` temporary failures in a row are as many as this policy allows."""
        return self.give_up_after is not None and failures >= self.give_up_after

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        wait = self.backoff(failures)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date. None when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
