"""Unit tests for `watcher.core.outcome`: the table that classifies every non-success HTTP answer, and the
checks and bounds on what the server's answers may make us store."""

from __future__ import annotations

import pytest

from watcher.core.outcome import (
    MAX_ERROR_CHARS,
    MAX_FILE_ID_CHARS,
    MAX_OSS_PATH_CHARS,
    FailureClass,
    UploadFailure,
    bounded_text,
    classify_status,
    is_valid_file_id,
    operator_hint,
    temporary,
    valid_oss_path,
)

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
    from watcher.core.outcome import FailureClass, classify_status, operator_hint

    assert classify_status(301) is FailureClass.ACCOUNT
    assert classify_status(307) is FailureClass.ACCOUNT
    assert "api.base_url" in operator_hint(308)


@pytest.mark.parametrize(
    "file_id",
    [
        "user:1-minimax:123456-file:380000000000001",  # what the emulator hands out
        "user:12345-minimax:987654321-file:7",
        "user:12345-minimax:987654321-file:Ab_9",
    ],
)
def test_file_ids_of_the_documented_shape_are_valid(file_id: str) -> None:
    assert is_valid_file_id(file_id)


@pytest.mark.parametrize(
    "file_id",
    [
        "",
        "user:1-minimax:123456-file:" + "1" * MAX_FILE_ID_CHARS,
        "user:1-minimax:123456-file:",
        "user:-minimax:123456-file:1",
        "user:1-minimax:-file:1",
        "user:x-minimax:123456-file:1",
        "user:1-minimax:12a456-file:1",
        "user:1-minimax:123456-file:1-2",
        "user:1-minimax:123456-file:1\n",
        "user:1-minimax:123456-file:\uff11",  # a fullwidth digit one: not [0-9]
        "USER:1-minimax:123456-file:1",
        None,
        12345,
    ],
)
def test_other_file_ids_are_refused(file_id: object) -> None:
    assert not is_valid_file_id(file_id)


def test_a_file_id_may_be_as_long_as_the_bound_and_no_longer() -> None:
    prefix = "user:1-minimax:123456-file:"
    assert is_valid_file_id(prefix + "9" * (MAX_FILE_ID_CHARS - len(prefix)))
    assert not is_valid_file_id(prefix + "9" * (MAX_FILE_ID_CHARS - len(prefix) + 1))


@pytest.mark.parametrize(
    "url", ["https://cdn.example/oss/1.png", "http://127.0.0.1:8080/oss/1.png?x=1&y=%20"]
)
def test_plain_http_urls_are_kept_as_oss_path(url: str) -> None:
    assert valid_oss_path(url) == url


@pytest.mark.parametrize(
    "value",
    [
        "",
        "https://cdn.example/" + "a" * MAX_OSS_PATH_CHARS,
        "ftp://cdn.example/1.png",
        "javascript:alert(1)",
        "//cdn.example/1.png",
        "https://cdn.example/1.png\r\nX: y",
        "https://cdn.example/é.png",
        "https://[::1/1.png",  # urlsplit raises on it
        None,
        ["https://cdn.example/1.png"],
    ],
)
def test_anything_else_is_dropped_as_oss_path(value: object) -> None:
    assert valid_oss_path(value) == ""


def test_bounded_text_leaves_ordinary_text_alone() -> None:
    text = "HTTP 400: Content-Type must be image/png or image/jpeg — «ok» 画像"
    assert bounded_text(text) is text


def test_bounded_text_drops_control_and_format_characters_and_keeps_words_apart() -> None:
    text = "a\x1b[31mred\x07\r\nnext\tline\u202eevil\u200bzero\ud800end\x00"
    assert bounded_text(text) == "a[31mred next lineevilzeroend"


def test_bounded_text_cuts_at_the_limit_with_an_ellipsis() -> None:
    cut = bounded_text("x" * 100_000)
    assert len(cut) == MAX_ERROR_CHARS
    assert cut.endswith("…")
    assert bounded_text("y" * 50, 10) == "y" * 9 + "…"
    assert bounded_text("z" * 10, 10) == "z" * 10


def test_every_upload_failure_error_is_bounded_and_clean_whoever_built_it() -> None:
    failure = UploadFailure(PERMANENT, "cannot open the file:\n" + "\x1b" * 10 + "w" * 10_000, "unreadable")
    assert len(failure.error) == MAX_ERROR_CHARS
    assert failure.error.startswith("cannot open the file: www")
    assert failure.error.isprintable()


def test_an_error_text_echoing_the_token_is_redacted_before_it_can_reach_an_error_record() -> None:
    from watcher.redact import register_secret

    register_secret("user:777-echoedTOKENvalue")
    failure = UploadFailure(
        FailureClass.PERMANENT, "HTTP 400: bad header Bearer user:777-echoedTOKENvalue", 400
    )
    assert "echoedTOKENvalue" not in failure.error and "HTTP 400" in failure.error
