"""The emulator's pure decision: what the endpoint answers, with no server, socket or thread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from watcher.emulator import Fault
from watcher.emulator.decision import (
    ALLOWED_CONTENT_TYPES,
    Acceptance,
    Answer,
    Decision,
    Refusal,
    UploadRequest,
    decide,
    take_fault,
)

TOKEN = "user:12345-abcdefghijklmnop"
ORIGIN = "http://127.0.0.1:8080"


def request(**overrides: Any) -> UploadRequest:
    fields: dict[str, Any] = {
        "authorization": f"Bearer {TOKEN}",
        "account": "123456",
        "content_type": "image/png",
        "content_length": 1000,
    }
    fields.update(overrides)
    return UploadRequest(**fields)


def run(
    req: UploadRequest, *, accounts: Sequence[str] = ("123456",), faults: Sequence[Fault] = ()
) -> Decision:
    return decide(req, token=TOKEN, accounts=accounts, faults=faults)


def accepted(decision: Decision) -> Acceptance:
    assert isinstance(decision.outcome, Acceptance), decision.outcome
    return decision.outcome


def refused(decision: Decision, status: int) -> tuple[Refusal, dict[str, Any]]:
    assert isinstance(decision.outcome, Refusal), decision.outcome
    answer = decision.outcome.answer
    assert (answer.status, answer.content_type, answer.file_id) == (status, "application/json", None)
    body = json.loads(answer.body)
    assert body["code"] == status
    return decision.outcome, body


def answer_json(answer: Answer) -> Any:
    assert answer.content_type == "application/json"
    return json.loads(answer.body)


# -- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "", TOKEN, f"Bearer {TOKEN}x", "Bearer wrong", f"bearer {TOKEN}"]
)
def test_a_wrong_or_missing_token_is_refused_with_401(authorization: str | None) -> None:
    pending = (Fault(kind="status", status=503),)
    decision = run(request(authorization=authorization), faults=pending)
    _, body = refused(decision, 401)
    assert body == {"error": "Unauthorized", "code": 401}
    assert decision.faults == pending  # a refused request consumes no fault


def test_the_token_is_checked_before_anything_else() -> None:
    decision = run(request(authorization=None, content_type="text/plain", content_length=None, account="9"))
    refused(decision, 401)


def test_an_unknown_account_is_400_and_recorded_as_sent() -> None:
    refusal, body = refused(run(request(account="999")), 400)
    assert body == {"error": "Account 999 not found", "code": 400}
    assert refusal.account == "999"


def test_several_accounts_without_account_is_400() -> None:
    refusal, body = refused(run(request(account=None), accounts=("111", "222")), 400)
    assert body == {"error": "account is required when several accounts are configured", "code": 400}
    assert refusal.account is None


def test_a_single_account_is_the_default() -> None:
    assert accepted(run(request(account=None), accounts=("777",))).account == "777"
    assert accepted(run(request(account="222"), accounts=("111", "222"))).account == "222"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"framing_error": "conflicting Content-Length headers"}, "framing: conflicting Content-Length"),
        ({"chunked": True, "content_length": None}, "chunked transfer encoding is not supported"),
        ({"content_length": None}, "Content-Length header is required"),
        ({"content_length": 0}, "empty"),
    ],
)
def test_bodies_that_cannot_be_used_are_400(overrides: dict[str, Any], fragment: str) -> None:
    _, body = refused(run(request(**overrides)), 400)
    assert fragment in body["error"]


# -- content types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "extension"),
    [
        ("image/png", "png"),
        ("image/jpeg", "jpg"),
        ("IMAGE/JPEG; charset=binary", "jpg"),
        ("audio/mpeg", "mp3"),
        ("audio/wav", "wav"),
        ("video/mp4", "mp4"),
    ],
)
def test_the_media_types_of_the_may_2026_api_are_accepted(content_type: str, extension: str) -> None:
    acceptance = accepted(run(request(content_type=content_type)))
    answer = answer_json(acceptance.answer(origin=ORIGIN, uid="1", number=7))
    assert answer["ossPath"] == f"{ORIGIN}/oss/7.{extension}"


def test_exactly_five_media_types_are_allowed() -> None:
    assert set(ALLOWED_CONTENT_TYPES) == {"image/png", "image/jpeg", "audio/mpeg", "audio/wav", "video/mp4"}


@pytest.mark.parametrize(
    "content_type", ["image/webp", "application/octet-stream", "audio/mp3", "video/quicktime", "", None]
)
def test_other_content_types_are_400(content_type: str | None) -> None:
    pending = (Fault(kind="reset"),)
    decision = run(request(content_type=content_type), faults=pending)
    _, body = refused(decision, 400)
    assert "image/png or image/jpeg" in body["error"]
    assert "audio/mpeg" in body["error"] and "video/mp4" in body["error"]
    assert ("missing" if content_type is None else repr(content_type)) in body["error"]
    assert decision.faults == pending


# -- faults -------------------------------------------------------------------------------------------


def test_without_faults_the_answer_carries_a_file_id_of_the_documented_shape() -> None:
    acceptance = accepted(run(request(account="222"), accounts=("111", "222")))
    assert (acceptance.fault, acceptance.resets, acceptance.hold_seconds, acceptance.creates_file) == (
        None,
        False,
        0.0,
        True,
    )
    assert acceptance.length == 1000
    answer = acceptance.answer(origin=ORIGIN, uid="42", number=380_000_000_000_001)
    assert answer.status == 200
    assert answer.headers == ()
    body = answer_json(answer)
    assert body == {
        "ossPath": f"{ORIGIN}/oss/380000000000001.png",
        "fileID": "user:42-minimax:222-file:380000000000001",
    }
    assert answer.file_id == body["fileID"]


def test_a_successful_answer_needs_a_file_number() -> None:
    with pytest.raises(ValueError):
        accepted(run(request())).answer(origin=ORIGIN, uid="1")


@pytest.mark.parametrize("status", [400, 402, 429, 503, 596, 599])
def test_a_status_fault_answers_its_status_with_retry_after(status: int) -> None:
    decision = run(request(), faults=[Fault(kind="status", status=status, retry_after="7")])
    acceptance = accepted(decision)
    assert decision.faults == ()
    assert acceptance.fault_kind == "status"
    assert not acceptance.creates_file
    answer = acceptance.answer(origin=ORIGIN, uid="1")
    assert answer.status == status
    assert answer.headers == (("Retry-After", "7"),)
    assert answer.file_id is None
    body = answer_json(answer)
    assert body["code"] == status and isinstance(body["error"], str) and body["error"]


def test_a_reset_fault_reads_half_the_body_and_sends_nothing() -> None:
    decision = run(request(content_length=1001), faults=[Fault(kind="reset")])
    acceptance = accepted(decision)
    assert decision.faults == ()
    assert (acceptance.resets, acceptance.reset_after, acceptance.creates_file) == (True, 500, False)
    assert accepted(run(request(content_length=1), faults=[Fault(kind="reset")])).reset_after == 1


def test_a_slow_fault_holds_then_succeeds() -> None:
    decision = run(request(), faults=[Fault(kind="slow", delay=2.5)])
    acceptance = accepted(decision)
    assert decision.faults == ()
    assert (acceptance.hold_seconds, acceptance.creates_file, acceptance.resets) == (2.5, True, False)
    answer = acceptance.answer(origin=ORIGIN, uid="1", number=5)
    assert answer_json(answer)["fileID"] == "user:1-minimax:123456-file:5"


def test_a_no_file_id_fault_answers_200_with_only_the_oss_path() -> None:
    decision = run(request(content_type="video/mp4"), faults=[Fault(kind="no_file_id")])
    acceptance = accepted(decision)
    assert decision.faults == ()
    assert acceptance.creates_file
    answer = acceptance.answer(origin=ORIGIN, uid="1", number=9)
    assert (answer.status, answer.file_id) == (200, None)
    assert answer_json(answer) == {"ossPath": f"{ORIGIN}/oss/9.mp4"}


def test_a_non_json_fault_answers_200_with_html() -> None:
    decision = run(request(), faults=[Fault(kind="non_json")])
    acceptance = accepted(decision)
    assert decision.faults == ()
    assert not acceptance.creates_file
    answer = acceptance.answer(origin=ORIGIN, uid="1")
    assert (answer.status, answer.content_type, answer.body, answer.file_id) == (
        200,
        "text/html",
        b"<html>oops</html>",
        None,
    )


def test_times_counts_down_without_touching_the_given_faults() -> None:
    given = [Fault(kind="status", status=503, times=2)]
    first = run(request(), faults=given)
    assert accepted(first).fault == Fault(kind="status", status=503, times=2)  # as it was when taken
    assert first.faults == (Fault(kind="status", status=503, times=1),)
    assert given == [Fault(kind="status", status=503, times=2)]
    second = run(request(), faults=first.faults)
    assert accepted(second).fault_kind == "status"
    assert second.faults == ()
    assert accepted(run(request(), faults=second.faults)).fault is None


def test_times_minus_one_lasts_until_cleared() -> None:
    forever = (Fault(kind="status", status=502, times=-1),)
    faults: Sequence[Fault] = forever
    for _ in range(3):
        decision = run(request(), faults=faults)
        assert accepted(decision).fault_kind == "status"
        faults = decision.faults
    assert faults == forever


def test_per_account_faults_in_fifo_order() -> None:
    faults: Sequence[Fault] = (
        Fault(kind="status", status=596, account="222"),
        Fault(kind="status", status=429),
        Fault(kind="status", status=503),
    )
    statuses = []
    for account in ("111", "222", "222", "111"):
        decision = run(request(account=account), accounts=("111", "222"), faults=faults)
        fault = accepted(decision).fault
        statuses.append(None if fault is None else fault.status)
        faults = decision.faults
    assert statuses == [429, 596, 503, None]
    assert faults == ()


def test_a_fault_for_the_default_account_applies_when_account_is_omitted() -> None:
    decision = run(request(account=None), accounts=("777",), faults=[Fault(kind="reset", account="777")])
    assert accepted(decision).resets


def test_take_fault_skips_faults_for_other_accounts() -> None:
    other = Fault(kind="status", status=596, account="222")
    taken, pending = take_fault([other], "111")
    assert taken is None
    assert pending == (other,)


def test_a_status_fault_with_a_delay_holds_its_answer_back_like_a_slow_one() -> None:
    from watcher.emulator import Emulator, Fault

    with Emulator(token="user:1-t", accounts=["1"]) as emu:
        emu.add_fault(Fault("status", status=503, delay=1.0))
        import threading

        import requests

        result: list[int] = []
        sender = threading.Thread(
            target=lambda: result.append(
                requests.post(
                    f"{emu.base_url}/files/",
                    data=b"\x89PNG\r\n\x1a\n" + b"0" * 10,
                    headers={"Authorization": "Bearer user:1-t", "Content-Type": "image/png"},
                    timeout=10,
                ).status_code
            )
        )
        sender.start()
        emu.wait_for_held(1, timeout=5)  # the body arrived; the 503 has not gone out yet
        assert result == []
        sender.join(10)
        assert result == [503]
