"""AccountGates with an injected clock: when an account's files wait, and which file probes for them."""

from __future__ import annotations

import random

from watcher.core.accounts import REFUSED_PROBE_FIRST, AccountGates
from watcher.core.outcome import FailureClass, UploadFailure
from watcher.core.retry import RetryPolicy

A, B = "111", "222"
UNAVAILABLE = UploadFailure(FailureClass.TEMPORARY, "HTTP 503", 503)
BUSY = UploadFailure(FailureClass.TEMPORARY, "HTTP 429", 429, retry_after=40.0)
REFUSED = UploadFailure(FailureClass.ACCOUNT, "HTTP 402: Subscription expired", 402)


def gates(hold_after: int = 3) -> AccountGates:
    return AccountGates(RetryPolicy(rng=random.Random(7)), hold_after=hold_after)


def test_an_open_account_admits_everything_and_holds_nothing() -> None:
    g = gates()
    assert g.admits(A, "x") and not g.hold(A, "x")
    assert g.next_deadline() == float("inf") and g.due_probes(0.0) == []


def test_temporary_failures_hold_the_account_only_after_a_run_without_success() -> None:
    g = gates(hold_after=3)
    assert not g.on_temporary(A, "f1", UNAVAILABLE, now=0.0)
    assert not g.on_temporary(A, "f2", UNAVAILABLE, now=0.0)
    assert g.on_success(A) == set()  # a success breaks the run
    assert not g.on_temporary(A, "f3", UNAVAILABLE, now=1.0)
    assert not g.on_temporary(A, "f4", UNAVAILABLE, now=1.0)
    assert g.on_temporary(A, "f5", UNAVAILABLE, now=1.0)  # third in a row: held

    assert not g.admits(A, "f6") and g.hold(A, "f6")
    assert g.admits(B, "g1"), "another account goes on"
    assert 1.0 < g.next_deadline() <= 1.0 + 4.0  # the retry policy's delay after 3 failures


def test_one_probe_at_a_time_and_a_success_releases_every_held_file() -> None:
    g = gates(hold_after=1)
    g.on_temporary(A, "f1", UNAVAILABLE, now=0.0)
    for name in ("f2", "f3"):
        g.hold(A, name)
    deadline = g.next_deadline()

    assert g.due_probes(deadline - 0.01) == []
    [(account, probe)] = g.due_probes(deadline)
    assert account == A and g.admits(A, probe)
    assert g.due_probes(deadline + 100) == [], "no second probe while one is out"
    others = {"f1", "f2", "f3"} - {probe}
    assert not any(g.admits(A, f) for f in others)

    assert g.on_success(A) == others
    assert g.admits(A, "anything") and A not in g.paused


def test_a_failed_probe_backs_off_and_a_vanished_probe_frees_the_slot() -> None:
    g = gates(hold_after=1)
    g.on_temporary(A, "f1", UNAVAILABLE, now=0.0)
    g.hold(A, "f2")
    [(_, probe)] = g.due_probes(100.0)
    assert g.on_temporary(A, probe, BUSY, now=100.0)
    assert g.next_deadline() >= 140.0, "Retry-After is honoured by the next probe"

    [(_, probe)] = g.due_probes(1000.0)
    g.release(A, probe)  # the file was deleted or changed while it probed
    assert g.due_probes(1000.0) != [], "another file probes at once"


def test_a_refusal_is_paused_for_the_operator_and_probed_with_growing_intervals() -> None:
    g = gates()
    g.on_refused(A, "f1", REFUSED, now=0.0)
    pause = g.paused[A]
    assert pause.refused and pause.reason.startswith("HTTP 402")
    assert g.next_deadline() == REFUSED_PROBE_FIRST
    assert g.describe() == f"account={A} (HTTP 402: Subscription expired)"

    [(_, probe)] = g.due_probes(REFUSED_PROBE_FIRST)
    g.on_refused(A, probe, REFUSED, now=REFUSED_PROBE_FIRST)
    first_gap = g.next_deadline() - REFUSED_PROBE_FIRST
    [(_, probe)] = g.due_probes(10_000.0)
    g.on_refused(A, probe, REFUSED, now=10_000.0)
    second_gap = g.next_deadline() - 10_000.0
    assert REFUSED_PROBE_FIRST < first_gap < second_gap <= 900.0


def test_a_hold_for_unavailability_turns_into_a_refusal() -> None:
    g = gates(hold_after=1)
    g.on_temporary(A, "f1", UNAVAILABLE, now=0.0)
    assert not g.paused[A].refused
    g.on_refused(A, "f2", REFUSED, now=5.0)
    assert g.paused[A].refused and g.paused[A].files == {"f1", "f2"}


def test_reload_probes_at_once() -> None:
    g = gates()
    g.on_refused(A, "f1", REFUSED, now=0.0)
    g.probe_all_now(3.0)
    assert [key for key, _ in g.due_probes(3.0)] == [A]
