"""Unit tests for `watcher.outcome`: the one table that classifies every non-success HTTP answer."""

from __future__ import annotations

import pytest

from watcher.outcome import FailureClass, UploadFailure, classify_status, operator_hint, temporary

PERMANENT = FailureClass.PERMANENT
ACCOUNT = FailureClass.ACCOUNT
TEMPORARY = FailureClass.TEMPORARY


def test_plain_400_is_permanent_for_the_file() -> None:
    assert classify_status(400) is PERMANENT
    assert classify_status(400, "Bad request") is PERMANENT
    assert classify_status(400, "Content-Type must be image/png or image/jpeg") is PERMANENT


@pytest.mark.parametrize(
    "error",
    [
        "account is required when several accounts are configured",
        "Account 999 not found",
        "ACCOUNT missing",
    ],
)
def test_400_that_mentions_the_account_is_an_account_problem(error: str) -> None:
    assert classify_status(400, error) is ACCOUNT


@pytest.mark.parametrize("status", [401, 402, 412, 596])
def test_account_level_statuses(status: int) -> None:
    assert classify_status(status) is ACCOUNT
    assert classify_status(status, "whatever the body says") is ACCOUNT
    assert operator_hint(status)  # the operator is told what to fix


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_temporary_statuses(status: int) -> None:
    assert classify_status(status) is TEMPORARY
    # An error text that mentions the account does not change a non-400 answer.
    assert classify_status(status, "account busy") is TEMPORARY


@pytest.mark.parametrize("status", [501, 505, 507, 520, 522, 530, 598, 599])
def test_other_5xx_are_temporary(status: int) -> None:
    assert classify_status(status) is TEMPORARY


@pytest.mark.parametrize("status", [405, 409, 410, 413, 415, 418, 422, 451, 499])
def test_other_4xx_are_permanent(status: int) -> None:
    assert classify_status(status) is PERMANENT


def test_operator_hint_is_empty_for_unknown_or_missing_status() -> None:
    assert operator_hint(None) == ""
    assert operator_hint(503) == ""


def test_temporary_helper_builds_a_temporary_failure() -> None:
    failure = temporary("network error: reset", "network", 2.5)
    assert failure == UploadFailure(TEMPORARY, "network error: reset", "network", 2.5)


def test_a_redirect_is_a_configuration_problem_with_a_hint() -> None:
    from watcher.outcome import FailureClass, classify_status, operator_hint

    assert classify_status(301) is FailureClass.ACCOUNT
    assert classify_status(307) is FailureClass.ACCOUNT
    assert "api.base_url" in operator_hint(308)
