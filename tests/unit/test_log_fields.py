"""The journal fields a log call may carry: `fields()` builds them, `say()` attaches them to a call as
its caller's, and `record_fields()` reads back only those, whatever else a record holds."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest

from watcher.log_fields import FIELDS_ATTRIBUTE, account_shown, fields, record_fields, say

log = logging.getLogger("watcher.test_log_fields")


def test_fields_leaves_out_empty_values_and_takes_paths() -> None:
    assert fields(file=Path("/d/a.png"), account=None, file_id="", event="failure") == {
        "minimax_fields": {"MINIMAX_FILE": "/d/a.png", "MINIMAX_EVENT": "failure"}
    }
    # The token's only account is configured as no account: the field is absent, not empty.
    assert fields(account="") == {"minimax_fields": {}}


def test_every_field_has_its_journal_name() -> None:
    assert fields(file="/d/a.png", folder="/d", account="42", file_id="f-1", event="upload") == {
        "minimax_fields": {
            "MINIMAX_FILE": "/d/a.png",
            "MINIMAX_FOLDER": "/d",
            "MINIMAX_ACCOUNT": "42",
            "MINIMAX_FILE_ID": "f-1",
            "MINIMAX_EVENT": "upload",
        }
    }


def test_say_logs_the_message_with_its_fields_as_the_callers_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=log.name):
        here = inspect.currentframe()
        assert here is not None
        line = here.f_lineno + 1
        say(log.warning, "%s: %s", "/d/a.png", "refused", file="/d/a.png", event="failure")
    (record,) = caplog.records
    assert (record.levelno, record.getMessage()) == (logging.WARNING, "/d/a.png: refused")
    assert record_fields(record) == {"MINIMAX_FILE": "/d/a.png", "MINIMAX_EVENT": "failure"}
    # The journal's CODE_FUNC and CODE_LINE name the call to say(), not say() itself.
    assert (record.funcName, record.lineno) == (
        "test_say_logs_the_message_with_its_fields_as_the_callers_line",
        line,
    )


def test_a_record_without_fields_or_with_foreign_ones_has_none(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=log.name):
        log.info("plain")
        log.info("other", extra={FIELDS_ATTRIBUTE: "not a mapping"})
        log.info(
            "mixed",
            extra={FIELDS_ATTRIBUTE: {"MINIMAX_FILE": "/d/a.png", "PRIORITY": "0", "MINIMAX_EVENT": 5}},
        )
    plain, other, mixed = caplog.records
    assert record_fields(plain) == {} and record_fields(other) == {}
    assert record_fields(mixed) == {"MINIMAX_FILE": "/d/a.png"}, "only its own names, only as text"


def test_a_folders_account_is_named_one_way_in_every_line() -> None:
    assert account_shown("123456") == "account=123456"
    assert account_shown(None) == account_shown("") == "the token's only account"
