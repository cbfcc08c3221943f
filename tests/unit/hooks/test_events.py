"""What one event hands its hook, as data: the variables that apply (and only those), the document for
stdin, the event moved with its file, and the journal's form of it, read back only when it is one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from watcher.core.folders import Folder
from watcher.hooks.events import MAX_ENV_VALUE, HookEvent

FOLDER = Folder(path="/srv/drop/alice", account="111111", recursive=False, polling=False)
IMAGE = "/srv/drop/alice/cat.png"
SIDECAR = {
    "file": "cat.png",
    "fileID": "user:1-minimax:2-file:3",
    "ossPath": "oss/cat.png",
    "sha256": "ab" * 32,
    "contentType": "image/png",
}
RECORD = {"file": "cat.png", "error": "the API refused it: bad image", "code": 400}


def test_an_upload_event_names_its_hook_and_subject() -> None:
    event = HookEvent.for_upload(IMAGE, FOLDER, SIDECAR)
    assert (event.event, event.hook, event.subject) == ("upload", "on_upload", IMAGE)
    assert event.env["MINIMAX_ACCOUNT"] == "111111", "the folder's, when the sidecar names none"
    assert "MINIMAX_ERROR" not in event.env and "MINIMAX_MESSAGE" not in event.env
    assert json.loads(event.stdin) == SIDECAR


def test_the_sidecars_account_wins_over_the_folders_and_a_bare_folder_path_has_none() -> None:
    assert HookEvent.for_upload(IMAGE, FOLDER, {**SIDECAR, "account": "222"}).env["MINIMAX_ACCOUNT"] == "222"
    bare = HookEvent.for_upload(IMAGE, FOLDER.path, SIDECAR)
    assert "MINIMAX_ACCOUNT" not in bare.env and bare.env["MINIMAX_FOLDER"] == FOLDER.path


def test_a_failure_event_takes_the_account_given_over_the_folders() -> None:
    event = HookEvent.for_failure(IMAGE, FOLDER, RECORD, account="333")
    assert (event.hook, event.env["MINIMAX_ACCOUNT"], event.env["MINIMAX_CODE"]) == (
        "on_failure",
        "333",
        "400",
    )


@pytest.mark.parametrize(
    ("account", "folder", "subject"),
    [("111", None, "account=111"), (None, FOLDER, FOLDER.path), (None, None, "the agent")],
)
def test_an_attention_events_subject_is_its_account_or_folder_or_the_agent(
    account: str | None, folder: Folder | None, subject: str
) -> None:
    event = HookEvent.for_attention("look", account=account, folder=folder)
    assert (event.hook, event.subject) == ("on_attention", subject)


def test_values_are_cut_to_what_an_environment_holds_and_stdin_keeps_them_whole() -> None:
    long = "x" * (MAX_ENV_VALUE + 100)
    event = HookEvent.for_failure(IMAGE, FOLDER, {"error": "a\0b" + long, "code": ""})
    assert event.env["MINIMAX_ERROR"] == ("ab" + long)[:MAX_ENV_VALUE], "NUL dropped, then cut"
    assert "MINIMAX_CODE" not in event.env, "an empty value is no variable"
    assert json.loads(event.stdin)["error"] == "a\0b" + long


def test_an_event_moved_with_its_file_names_it_and_its_record_at_the_new_place() -> None:
    moved = HookEvent.for_upload(IMAGE, FOLDER, SIDECAR).at_path("/srv/done/alice/cat-1.png")
    assert moved.env["MINIMAX_FILE"] == "/srv/done/alice/cat-1.png"
    assert moved.env["MINIMAX_SIDECAR"] == "/srv/done/alice/cat-1.png.json"
    assert moved.subject == "/srv/done/alice/cat-1.png"
    assert json.loads(moved.stdin) == {**SIDECAR, "file": "cat-1.png"}
    failed = HookEvent.for_failure(IMAGE, FOLDER, RECORD).at_path("/srv/failed/cat.png")
    assert failed.env["MINIMAX_ERROR_RECORD"] == "/srv/failed/cat.png.error.json"
    assert "MINIMAX_SIDECAR" not in failed.env
    attention = HookEvent.for_attention("look", account="1")
    assert attention.at_path("/elsewhere") is attention


def test_the_journal_form_reads_back_as_the_same_event() -> None:
    for event in (
        HookEvent.for_upload(IMAGE, FOLDER, SIDECAR),
        HookEvent.for_failure(IMAGE, FOLDER, RECORD),
        HookEvent.for_attention("look", account="1", folder=FOLDER),
    ):
        assert HookEvent.from_json(json.loads(json.dumps(event.to_json()))) == event


@pytest.mark.parametrize(
    "change",
    [
        {"event": "on_upload"},
        {"env": ["MINIMAX_FILE"]},
        {"env": {"MINIMAX_FILE": 3}},
        {"env": {"LD_PRELOAD": "/tmp/evil.so"}},  # a journal line may set only the events' variables
        {"stdin": None},
        {"subject": 1},
    ],
)
def test_a_journal_line_that_is_not_an_event_is_refused(change: dict[str, Any]) -> None:
    data = HookEvent.for_upload(IMAGE, FOLDER, SIDECAR).to_json() | change
    with pytest.raises(ValueError):
        HookEvent.from_json(data)
