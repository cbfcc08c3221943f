"""Unit tests for `watcher.report.status_line`: the STATUS= line systemd shows."""

from __future__ import annotations

from tests.helpers import clear_secrets
from watcher.core.scheduler import Summary
from watcher.redact import register_secret
from watcher.report.status_line import status_line

QUIET = Summary(folders=2, uploading=1, pending=3, failed=0, uploaded=7, paused="")


def test_the_counts_come_in_a_fixed_order() -> None:
    assert status_line(QUIET, 0, 0) == (
        "2 folders watched; 1 uploading; 3 pending; 0 failed; 7 uploaded since start"
    )


def test_a_pause_standbys_and_blocked_folders_are_said_only_when_there_are_some() -> None:
    paused = Summary(folders=2, uploading=0, pending=0, failed=1, uploaded=0, paused="account 1: HTTP 429")
    assert status_line(paused, 3, 1) == (
        "2 folders watched; 0 uploading; 0 pending; 1 failed; 0 uploaded since start; "
        "paused: account 1: HTTP 429; standing by for 3 folders another agent holds; "
        "1 folder not held: its lock name is not a lock file"
    )


def test_a_secret_quoted_by_a_pause_reason_is_redacted() -> None:
    register_secret("user:1-supersecretvalue")
    try:
        paused = Summary(2, 0, 0, 0, 0, paused="refused user:1-supersecretvalue")
        assert "supersecretvalue" not in status_line(paused, 0, 0)
    finally:
        clear_secrets()
