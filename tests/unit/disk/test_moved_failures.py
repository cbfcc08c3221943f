"""The failures a failed_dir holds, read from real files: a file with its error record beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from watcher.core.folders import Folder
from watcher.disk.moved_failures import moved_failures


def folder_with(tmp_path: Path, failed_dir: Path | None) -> Folder:
    drop = tmp_path / "drop"
    drop.mkdir(exist_ok=True)
    return Folder(
        str(drop), "1", recursive=True, polling=False, failed_dir=str(failed_dir) if failed_dir else None
    )


def fail(image: Path, error: str = "nope") -> None:
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"x")
    (image.parent / (image.name + ".error.json")).write_text(json.dumps({"error": error, "code": 400}))


def test_each_file_with_its_error_record_below_failed_dir_is_found_with_its_record(tmp_path: Path) -> None:
    failed = tmp_path / "drop" / "failed"
    fail(failed / "a.png", "bad a")
    fail(failed / "sub" / "b.png", "bad b")
    (failed / "orphan.png.error.json").write_text("{}")  # its file was removed: nothing to count
    (failed / "c.png").write_bytes(b"x")  # no record: not a failure the agent moved
    fail(failed / ".hidden" / "d.png")  # a dot-folder is never looked into
    folder = folder_with(tmp_path, failed)
    found = dict(moved_failures(folder, read=True))
    assert found == {
        str(failed / "a.png"): {"error": "bad a", "code": 400},
        str(failed / "sub" / "b.png"): {"error": "bad b", "code": 400},
    }
    assert dict(moved_failures(folder)) == {path: None for path in found}  # counting reads no record


def test_an_absolute_failed_dir_outside_the_folder_is_read_too(tmp_path: Path) -> None:
    failed = tmp_path / "elsewhere" / "failed"
    fail(failed / "a.png")
    assert [p for p, _ in moved_failures(folder_with(tmp_path, failed))] == [str(failed / "a.png")]


def test_no_failed_dir_or_none_yet_finds_nothing(tmp_path: Path) -> None:
    assert list(moved_failures(folder_with(tmp_path, None))) == []
    assert list(moved_failures(folder_with(tmp_path, tmp_path / "drop" / "failed"))) == []


def test_an_unreadable_record_is_still_a_failure(tmp_path: Path) -> None:
    failed = tmp_path / "drop" / "failed"
    fail(failed / "a.png")
    (failed / "a.png.error.json").write_bytes(b"\xff not json")
    assert list(moved_failures(folder_with(tmp_path, failed), read=True)) == [
        (os.fspath(failed / "a.png"), None)
    ]
