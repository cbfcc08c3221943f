"""The redaction every text leaving the process goes through: the registry, the log filter, the client's
error strings and the agent's STATUS= line, each fed the token the way real code quotes it."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_for
from tests.helpers.images import png_bytes
from tests.helpers.notify import NotifySocket
from watcher.agent import Agent
from watcher.config.load import load_config
from watcher.core.outcome import UploadFailure
from watcher.core.retry import RetryPolicy
from watcher.core.timings import Timings
from watcher.emulator import Emulator
from watcher.redact import REPLACEMENT, escape_control, redact, register_secret
from watcher.report.logs import JournalFormatter, add_filters
from watcher.report.sd_notify import Notifier
from watcher.upload.client import UploadClient

# Two tokens in one file: what a token file holding a newline typically is.
TWO_LINES = "user:4242-firstSECRET\nuser:4243-secondSECRET"
PIECES = ("user:4242-firstSECRET", "user:4243-secondSECRET", "firstSECRET", "secondSECRET")


def assert_clean(text: str) -> None:
    for piece in PIECES:
        assert piece not in text, f"{piece!r} leaked into {text!r}"


# ---- the registry -----------------------------------------------------------------------------------


def test_a_registered_secret_is_replaced_wherever_it_appears() -> None:
    register_secret("user:1-abcdefgh")
    assert (
        redact("token user:1-abcdefgh, again user:1-abcdefgh.")
        == f"token {REPLACEMENT}, again {REPLACEMENT}."
    )
    assert redact("nothing secret here") == "nothing secret here"


def test_nothing_is_redacted_before_a_secret_is_registered() -> None:
    assert redact("user:1-abcdefgh") == "user:1-abcdefgh"


def test_the_message_requests_gives_for_a_refused_header_is_redacted() -> None:
    """requests quotes the refused value with repr(): the newline is a backslash and an n there."""
    register_secret(TWO_LINES)
    with pytest.raises(requests.exceptions.InvalidHeader) as info:
        requests.Session().prepare_request(
            requests.Request("POST", "http://127.0.0.1:9/", headers={"Authorization": f"Bearer {TWO_LINES}"})
        )
    assert "secondSECRET" in str(info.value)  # what would have been logged
    assert_clean(redact(str(info.value)))


@pytest.mark.parametrize(
    "quoted",
    [
        pytest.param(lambda s: s, id="as-is"),
        pytest.param(repr, id="repr"),
        pytest.param(json.dumps, id="json"),
        pytest.param(lambda s: json.dumps(s, ensure_ascii=False), id="json-unicode"),
        pytest.param(escape_control, id="log-escaped"),
        pytest.param(lambda s: s.replace("\n", " "), id="joined-by-a-space"),
        pytest.param(lambda s: s.split("\n")[1], id="second-line-alone"),
    ],
)
def test_every_form_the_token_is_quoted_in_is_redacted(quoted: object) -> None:
    assert callable(quoted)
    register_secret(TWO_LINES)
    text = f"error: {quoted(TWO_LINES)} (retrying)"
    assert_clean(redact(text))
    assert redact(text).startswith("error: ") and redact(text).endswith(" (retrying)")


def test_a_secret_containing_another_is_replaced_whole() -> None:
    register_secret("user:1-abcdef")
    register_secret("user:1-abcdefghijkl")
    assert redact("user:1-abcdefghijkl") == REPLACEMENT


def test_very_short_strings_are_not_registered() -> None:
    # Redacting "ab" everywhere would garble every line, and no real token is that short.
    register_secret("ab")
    assert redact("tab stab") == "tab stab"


# ---- the log filter ---------------------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    add_filters(handler)
    logger = logging.getLogger("test_unit_redact")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.handlers[:] = []


def test_log_arguments_messages_and_tracebacks_are_redacted(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    register_secret(TWO_LINES)
    logger.warning("as an argument: %s", TWO_LINES)
    logger.warning("as an exception argument: %s", ValueError(f"bad value {TWO_LINES!r}"))
    logger.warning("in the message itself: " + TWO_LINES.replace("%", "%%"))
    try:
        raise RuntimeError(f"Bearer {TWO_LINES}")
    except RuntimeError:
        logger.exception("with a traceback")
    logger.info("with the stack %s", TWO_LINES, stack_info=True)
    text = stream.getvalue()
    assert "with a traceback" in text and "RuntimeError: Bearer <redacted>" in text
    assert_clean(text)


def test_control_characters_in_an_exception_argument_are_escaped(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.error("cannot read: %s", ValueError("evil\nERROR forged line"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "evil\\x0aERROR forged line" in lines[0]


def test_the_journal_formatter_gets_the_redacted_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.handlers[0].setFormatter(JournalFormatter("%(message)s"))
    register_secret(TWO_LINES)
    try:
        raise RuntimeError(TWO_LINES)
    except RuntimeError:
        logger.exception("boom %s", TWO_LINES)
    text = stream.getvalue()
    assert text.startswith("<3>boom ")
    assert_clean(text)


def test_a_log_call_whose_arguments_do_not_fit_is_still_redacted(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    register_secret(TWO_LINES)
    logger.warning("%d apples", TWO_LINES)
    assert "apples" in stream.getvalue()
    assert_clean(stream.getvalue())


# ---- where error texts are made ---------------------------------------------------------------------


def test_the_clients_network_error_for_a_refused_header_is_redacted(emu: Emulator, tmp_path: Path) -> None:
    register_secret(TWO_LINES)
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes(1))
    client = UploadClient(emu.base_url, TWO_LINES, connect_timeout=5, read_timeout=10)
    fd = os.open(image, os.O_RDONLY)
    try:
        outcome = client.post_file(fd, image.stat().st_size, "image/png", None)
    finally:
        os.close(fd)
        client.close()
    assert isinstance(outcome, UploadFailure)
    assert "header" in outcome.error  # it is requests' refusal, quoting the value
    assert_clean(outcome.error)


def test_status_line_is_redacted_even_for_a_reason_recorded_before_the_secret_was_known(
    tmp_path: Path, emu: Emulator
) -> None:
    """A pause reason holding the token (here recorded before anyone registered it) never reaches STATUS=.

    The client is given the two-line token directly, as a token file's content used to be: every upload
    fails on requests' refusal of the header, and after three the account is held with that reason.
    """
    drop = tmp_path / "drop"
    drop.mkdir()
    for n in range(3):
        (drop / f"{n}.png").write_bytes(png_bytes(n))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(f"settle_seconds: 0.1\nfolders:\n  - path: {drop}\n")
    config = load_config(config_path)
    notify = NotifySocket(abstract=True)
    agent = Agent(
        config,
        lambda c: UploadClient(emu.base_url, TWO_LINES, connect_timeout=5, read_timeout=10),
        notifier=Notifier({"NOTIFY_SOCKET": notify.address}),
        retry_policy=RetryPolicy(base=0.05, cap=0.2, floor=0.01),
        state_dir=tmp_path / "state",
        timings=Timings(status_interval=0.05),
    )
    loop = threading.Thread(target=agent.run, name="agent")
    loop.start()
    try:
        paused = wait_for(
            lambda: [
                d.fields["STATUS"] for d in notify.with_field("STATUS") if "paused" in d.fields["STATUS"]
            ],
            20,
            "STATUS= to say the account is held",
        )
    finally:
        agent.request_stop()
        loop.join(15)
        notify.close()
    assert not loop.is_alive()
    # Unregistered, the reason quotes the token: the test exercises the leak it guards against.
    assert "secondSECRET" in paused[0]
    register_secret(TWO_LINES)
    line = agent.status_line()
    assert "paused: " in line
    assert_clean(line)
