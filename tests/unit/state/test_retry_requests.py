"""Unit tests for `watcher.state.retry_requests`: real files in a real state folder."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from tests.helpers.other_user import NOBODY
from watcher.state import retry_requests
from watcher.state.retry_requests import MAX_TAKEN, RETRY_DIR, RetryRequest, ask, take


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    retry_requests._warned.clear()


def test_a_request_asked_is_taken_once_and_its_file_is_gone(tmp_path: Path) -> None:
    request = RetryRequest(("/srv/drop/a.png", "/srv/drop/sub/b.jpg"), failed=False, folder=None)
    path = ask(tmp_path, request)
    assert path.parent == tmp_path / RETRY_DIR
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / RETRY_DIR).stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / RETRY_DIR).iterdir()] == [path.name]  # no temporary left
    assert take(tmp_path) == [request]
    assert not path.exists()
    assert take(tmp_path) == []


def test_take_without_any_request_or_state_folder(tmp_path: Path) -> None:
    assert take(tmp_path / "never-made") == []
    assert take(tmp_path) == []


def test_ask_makes_the_state_folder_when_no_agent_ran_yet(tmp_path: Path) -> None:
    state = tmp_path / "state" / "minimax-watcher"
    ask(state, RetryRequest((), failed=True, folder="/srv/drop"))
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert take(state) == [RetryRequest((), failed=True, folder="/srv/drop")]


def test_requests_are_taken_oldest_first_at_most_max_taken_per_call(tmp_path: Path) -> None:
    asked = [RetryRequest((f"/d/{i}.png",), failed=False, folder=None) for i in range(MAX_TAKEN + 5)]
    for request in asked:
        ask(tmp_path, request)
    assert take(tmp_path) == asked[:MAX_TAKEN]
    assert take(tmp_path) == asked[MAX_TAKEN:]


def test_a_name_that_is_not_utf8_comes_back_the_same(tmp_path: Path) -> None:
    odd = os.fsdecode(b"/srv/drop/caf\xe9.png")
    ask(tmp_path, RetryRequest((odd,), failed=False, folder=None))
    assert take(tmp_path) == [RetryRequest((odd,), failed=False, folder=None)]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"paths": "/a.png", "failed": false}', "not a list of absolute paths"),
        (b'{"paths": ["a.png"], "failed": false}', "not a list of absolute paths"),
        (b'{"paths": ["/a\\u0000.png"], "failed": false}', "not a list of absolute paths"),
        (b'{"paths": ["/a.png"], "failed": "yes"}', "failed is not true or false"),
        (b'{"paths": [], "failed": true, "folder": "rel"}', "folder is not an absolute path"),
        (b'{"paths": [], "failed": false}', "it asks for nothing"),
        (b"[" * 100_000, "not JSON"),
        (b'{"paths": ["/' + b"a" * (1 << 20) + b'"], "failed": false}', "larger than 1 MiB"),
    ],
)
def test_a_file_that_is_not_a_request_is_skipped_with_one_warning_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    good = RetryRequest(("/d/a.png",), failed=False, folder=None)
    ask(tmp_path, good)
    bad = tmp_path / RETRY_DIR / "0-bad.json"  # sorts first
    bad.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert take(tmp_path) == [good]
    assert not bad.exists()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(bad) in warning and why in warning and "removed" in warning


@pytest.mark.hostile
def test_a_symlink_fifo_or_folder_in_the_retry_folder_is_never_followed_or_waited_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "secret.json").write_text('{"paths": ["/etc/passwd"], "failed": false}')
    retry = tmp_path / RETRY_DIR
    retry.mkdir()
    (retry / "1-link.json").symlink_to(tmp_path / "secret.json")
    os.mkfifo(retry / "2-fifo.json")
    with caplog.at_level(logging.WARNING):
        assert take(tmp_path) == []  # returns: the FIFO is not waited on
    assert not (retry / "1-link.json").exists() and not (retry / "2-fifo.json").exists()
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "a symlink" in warnings and "not a regular file" in warnings
    assert (tmp_path / "secret.json").exists()


@pytest.mark.hostile
def test_a_retry_folder_that_is_a_symlink_is_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "1.json").write_text('{"paths": ["/d/a.png"], "failed": false}')
    state = tmp_path / "state"
    state.mkdir()
    (state / RETRY_DIR).symlink_to(elsewhere)
    with caplog.at_level(logging.WARNING):
        assert take(state) == []
        assert take(state) == []
    assert (elsewhere / "1.json").exists()
    assert len([r for r in caplog.records if "cannot read the retry requests" in r.getMessage()]) == 1
    with pytest.raises(OSError):
        ask(state, RetryRequest(("/d/a.png",), failed=False, folder=None))
    assert [p.name for p in elsewhere.iterdir()] == ["1.json"]


def test_a_request_that_cannot_be_removed_is_not_taken_and_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A folder named like a request: unlink fails (EISDIR). Taking it anyway would act on it every call.
    (tmp_path / RETRY_DIR).mkdir()
    (tmp_path / RETRY_DIR / "1.json").mkdir()
    (tmp_path / RETRY_DIR / "1.json" / "x").write_text("keeps it from being removed")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert take(tmp_path) == []
    assert len([r for r in caplog.records if "1.json" in r.getMessage()]) == 1


def test_a_stale_temporary_of_a_dead_ask_is_removed_a_fresh_one_kept(tmp_path: Path) -> None:
    ask(tmp_path, RetryRequest(("/d/a.png",), failed=False, folder=None))
    retry = tmp_path / RETRY_DIR
    stale, fresh = retry / ".1.json.tmp", retry / ".2.json.tmp"
    stale.write_text("{")
    fresh.write_text("{")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert len(take(tmp_path)) == 1
    assert not stale.exists() and fresh.exists()


def test_root_gives_the_request_to_the_state_folder_owner(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    uid, gid = NOBODY, NOBODY
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, uid, gid)
    path = ask(state, RetryRequest(("/d/a.png",), failed=False, folder=None))
    for made in (path, path.parent):
        assert (made.stat().st_uid, made.stat().st_gid) == (uid, gid)
