"""The emulator's faults as a test asks for them, in Python or as JSON: checked field by field, so that a
typo in a test's fault is an error rather than a fault that silently never applies."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.emulator import FAULT_KINDS, Fault
from watcher.emulator.faults import KINDS_BY_TARGET


def test_the_fault_kinds() -> None:
    uploads = {"status", "reset", "slow", "no_file_id", "non_json"}
    videos = {"cut", "answer", "final", "never_ends", "html", "huge", "huge_undeclared", "redirect"}
    assert uploads | videos == FAULT_KINDS
    assert uploads == KINDS_BY_TARGET["upload"]


def test_json_with_every_field_makes_the_fault_and_back() -> None:
    data = {"kind": "status", "status": 429, "retry_after": 5, "delay": 1, "times": -1, "account": 111}
    fault = Fault.from_dict(data)
    assert fault == Fault("status", status=429, retry_after="5", delay=1.0, times=-1, account="111")
    assert Fault.from_dict(fault.to_dict()) == fault


def test_the_defaults_are_one_request_at_once_for_any_account() -> None:
    fault = Fault.from_dict({"kind": "reset"})
    assert (fault.times, fault.delay, fault.retry_after, fault.account) == (1, 0.0, None, None)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "needs a 'kind'"),
        ({"kind": "reset", "colour": "red", "shape": 1}, "unknown fault field(s): colour, shape"),
        ({"kind": 3}, "unknown fault kind 3"),
        ({"kind": "status", "status": "429"}, "'status' must be an integer"),
        ({"kind": "status", "status": True}, "'status' must be an integer"),
        ({"kind": "reset", "times": 1.5}, "'times' must be an integer"),
        ({"kind": "slow", "delay": "1"}, "'delay' must be a number"),
        ({"kind": "slow", "delay": False}, "'delay' must be a number"),
        ({"kind": "reset", "account": ["1"]}, "'account' must be a string or null"),
        ({"kind": "status", "status": 429, "retry_after": True}, "'retry_after' must be a string or null"),
        ({"kind": "status", "status": 600}, "between 400 and 599"),
        ({"kind": "reset", "times": -2}, "times must be a positive count or -1"),
        ({"kind": "slow", "delay": -0.5}, "delay must not be negative"),
    ],
)
def test_a_fault_that_is_not_one_is_refused_saying_why(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError) as info:
        Fault.from_dict(data)
    assert problem in str(info.value)


def test_a_fault_for_an_account_applies_to_it_alone() -> None:
    assert Fault("reset").applies_to("111")
    assert Fault("reset", account="111").applies_to("111")
    assert not Fault("reset", account="111").applies_to("222")


def test_a_video_fault_from_json_and_back() -> None:
    data = {
        "kind": "final",
        "target": "poll",
        "video_status": 5,
        "video_id": "user:1-minimax:2-video:3",
        "account": 2,
        "times": 2,
    }
    fault = Fault.from_dict(data)
    assert fault == Fault(
        "final", target="poll", video_status=5, video_id="user:1-minimax:2-video:3", account="2", times=2
    )
    assert Fault.from_dict(fault.to_dict()) == fault
    odd = Fault.from_dict({"kind": "answer", "target": "create", "answer": {"videoId": None}})
    assert odd.answer == {"videoId": None}
    huge = Fault.from_dict({"kind": "huge", "target": "download", "size": 1 << 34, "url": "http://x"})
    assert (huge.size, huge.url) == (1 << 34, "http://x")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"kind": "reset", "target": "video"}, "unknown fault target 'video'"),
        ({"kind": "reset", "target": "create"}, "a create fault cannot be 'reset'"),
        ({"kind": "html", "target": "poll"}, "a poll fault cannot be 'html'"),
        ({"kind": "cut"}, "an upload fault cannot be 'cut'"),
        ({"kind": "final", "target": "poll"}, "needs a video_status"),
        ({"kind": "final", "target": "poll", "video_status": "5"}, "'video_status' must be an integer"),
        ({"kind": "answer", "target": "create"}, "needs an 'answer'"),
        (
            {"kind": "answer", "target": "create", "answer": {}, "status": 99},
            "status must be 0 (200) or 200-599",
        ),
        ({"kind": "huge", "target": "download"}, "a size of at least"),
        ({"kind": "huge", "target": "download", "size": 1.5}, "'size' must be an integer"),
        ({"kind": "status", "target": "create", "status": 429, "video_id": "v"}, "narrows poll and download"),
        ({"kind": "redirect", "target": "download", "url": []}, "'url' must be a string or null"),
    ],
)
def test_a_video_fault_that_is_not_one_is_refused_saying_why(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError) as info:
        Fault.from_dict(data)
    assert problem in str(info.value)


def test_a_fault_matches_its_target_account_and_video() -> None:
    fault = Fault("status", target="poll", status=404, account="1", video_id="v")
    assert fault.matches("poll", "1", "v")
    assert not fault.matches("create", "1", "v")
    assert not fault.matches("poll", "2", "v")
    assert not fault.matches("poll", "1", "w")
    assert Fault("status", target="poll", status=404).matches("poll", "9", "any")
