"""Unit tests for `watcher.core.retry`: backoff with full jitter, the cap, Retry-After, and its parsing."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from watcher.core.retry import RetryPolicy, parse_retry_after

SAMPLES = 300


def policy(
    seed: int = 1234,
    *,
    base: float = 1.0,
    cap: float = 300.0,
    floor: float = 0.1,
    max_retry_after: float = 3600.0,
) -> RetryPolicy:
    return RetryPolicy(
        base=base, cap=cap, floor=floor, max_retry_after=max_retry_after, rng=random.Random(seed)
    )


@pytest.mark.parametrize("failures", [1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 20])
def test_delay_stays_between_floor_and_the_capped_exponential(failures: int) -> None:
    p = policy(base=1.0, cap=300.0, floor=0.1)
    ceiling = min(300.0, 1.0 * 2 ** (failures - 1))
    delays = [p.delay(failures) for _ in range(SAMPLES)]
    assert all(0.1 <= d <= ceiling for d in delays), (min(delays), max(delays), ceiling)
    # Full jitter: the draws spread over the range rather than sitting on one value.
    assert max(delays) - min(delays) > ceiling * 0.5


def test_delays_grow_with_consecutive_failures() -> None:
    p = policy()
    means = [statistics.mean(p.delay(n) for _ in range(SAMPLES)) for n in range(1, 8)]
    assert means == sorted(means)
    assert means[-1] > 10 * means[0]
    # After 7 failures the ceiling is 64 s: some draw is well above anything the first failure allows.
    assert max(p.delay(7) for _ in range(SAMPLES)) > 30


def test_delay_is_capped() -> None:
    p = policy(cap=30.0)
    for failures in (6, 7, 10, 50, 200):
        delays = [p.delay(failures) for _ in range(SAMPLES)]
        assert max(delays) <= 30.0
        assert max(delays) > 20.0  # the cap, not something smaller, is the bound


def test_zero_failures_behaves_like_the_first() -> None:
    p = policy(base=2.0, floor=0.1)
    assert all(0.1 <= p.delay(0) <= 2.0 for _ in range(SAMPLES))


def test_same_seed_gives_the_same_delays() -> None:
    a, b = policy(seed=7), policy(seed=7)
    assert [a.delay(n) for n in range(1, 10)] == [b.delay(n) for n in range(1, 10)]


def test_retry_after_raises_the_delay() -> None:
    p = policy()
    for _ in range(SAMPLES):
        assert p.delay(1, retry_after=45.0) == 45.0  # the backoff after 1 failure is at most 1 s


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    p = policy(cap=300.0)
    delays = [p.delay(9, retry_after=0.5) for _ in range(SAMPLES)]
    assert all(d >= 0.5 for d in delays)
    assert max(delays) > 100  # the backoff (ceiling 256 s) still applies


def test_retry_after_may_exceed_cap_but_is_bounded_by_max_retry_after() -> None:
    p = policy(cap=300.0, max_retry_after=3600.0)
    assert p.delay(1, retry_after=1000.0) == 1000.0
    assert p.delay(1, retry_after=10**9) == 3600.0
    assert p.delay(30, retry_after=10**9) == 3600.0


def test_a_very_long_outage_keeps_giving_capped_delays() -> None:
    p = policy(cap=300.0)
    assert 0.1 <= p.delay(1025) <= 300.0
    assert 0.1 <= p.delay(100_000) <= 300.0


# --- parse_retry_after ---------------------------------------------------------------------------

NOW = datetime(2024, 5, 17, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("0", 0.0), (" 120 ", 120.0), ("86400", 86400.0)]
)
def test_parse_retry_after_seconds(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_parse_retry_after_http_date_in_the_future() -> None:
    header = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, now=NOW) == pytest.approx(90.0)


def test_parse_retry_after_literal_rfc_example() -> None:
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == pytest.approx(30.0)


def test_parse_retry_after_date_in_the_past_is_zero() -> None:
    header = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


@pytest.mark.parametrize("header", ["", "soon", "1.5", "-1", "3 seconds", "Wed, 99 Foo 2015"])
def test_parse_retry_after_garbage_is_none(header: str) -> None:
    assert parse_retry_after(header, now=NOW) is None


def test_parse_retry_after_absent_is_none() -> None:
    assert parse_retry_after(None) is None


def test_parse_retry_after_unicode_digit_garbage_is_none() -> None:
    assert parse_retry_after("²", now=NOW) is None
