"""Unit tests for `watcher.upload.client.UploadClient.post_file` against the real HTTP emulator, real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT, TOKEN
from tests.helpers.images import jpeg_bytes, png_bytes, sha256
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadSuccess, is_valid_file_id
from watcher.emulator import Emulator, Fault
from watcher.upload.client import UploadClient


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "cat.png"
    path.write_bytes(png_bytes())
    return path


def post(
    client: UploadClient,
    path: Path,
    content_type: str = "image/png",
    account: str | None = ACCOUNT,
    size: int | None = None,
    progress: list[int] | None = None,
) -> object:
    fd = os.open(path, os.O_RDONLY)
    try:
        return client.post_file(
            fd,
            os.fstat(fd).st_size if size is None else size,
            content_type,
            account,
            progress.append if progress is not None else None,
        )
    finally:
        os.close(fd)


def test_success_returns_the_hash_of_the_file_and_the_emulator_saw_the_same_bytes(
    emu: Emulator, client: UploadClient, png_file: Path
) -> None:
    data = png_file.read_bytes()
    progress: list[int] = []
    outcome = post(client, png_file, progress=progress)
    assert isinstance(outcome, UploadSuccess)
    expected = sha256(data)
    assert outcome.sha256 == expected
    assert outcome.size == len(data)
    assert outcome.content_type == "image/png"
    (recorded,) = emu.uploads
    assert recorded.sha256 == expected
    assert recorded.size == len(data)
    assert recorded.content_type == "image/png"
    assert recorded.account == ACCOUNT
    assert outcome.file_id == recorded.file_id
    assert outcome.file_id.startswith(f"user:4242-minimax:{ACCOUNT}-file:")
    assert is_valid_file_id(outcome.file_id)  # the emulator's fileIDs pass the client's check
    assert outcome.oss_path.startswith(emu.origin)
    assert progress and progress[-1] == len(data)
    assert progress == sorted(progress)


def test_jpeg_upload_without_account_uses_the_only_one(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes())
    outcome = post(client, path, content_type="image/jpeg", account=None)
    assert isinstance(outcome, UploadSuccess)
    (recorded,) = emu.uploads
    assert recorded.content_type == "image/jpeg"
    assert recorded.account == ACCOUNT
    assert recorded.sha256 == outcome.sha256 == sha256(path.read_bytes())


def test_a_multi_megabyte_file_is_sent_whole(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    data = jpeg_bytes(length=3 * (1 << 20) + 12345)
    path.write_bytes(data)
    outcome = post(client, path, content_type="image/jpeg")
    assert isinstance(outcome, UploadSuccess)
    assert emu.uploads[0].size == len(data)
    assert emu.uploads[0].sha256 == sha256(data) == outcome.sha256


@pytest.mark.parametrize(
    ("fault", "failure_class", "code", "retry_after"),
    [
        (Fault("status", status=429, retry_after="3"), FailureClass.TEMPORARY, 429, 3.0),
        (Fault("status", status=429), FailureClass.TEMPORARY, 429, None),
        (Fault("status", status=503), FailureClass.TEMPORARY, 503, None),
        (Fault("status", status=503, retry_after="7"), FailureClass.TEMPORARY, 503, 7.0),
        (Fault("status", status=502), FailureClass.TEMPORARY, 502, None),
        (Fault("status", status=504), FailureClass.TEMPORARY, 504, None),
        (Fault("status", status=500), FailureClass.TEMPORARY, 500, None),
        (Fault("status", status=401), FailureClass.ACCOUNT, 401, None),
        (Fault("status", status=402), FailureClass.ACCOUNT, 402, None),
        (Fault("status", status=412), FailureClass.ACCOUNT, 412, None),
        (Fault("status", status=596), FailureClass.ACCOUNT, 596, None),
        # A permanent failure ignores Retry-After: it is not retried at all.
        (Fault("status", status=400, retry_after="5"), FailureClass.PERMANENT, 400, None),
        (Fault("reset"), FailureClass.TEMPORARY, "network", None),
        (Fault("no_file_id"), FailureClass.TEMPORARY, 200, None),
        (Fault("non_json"), FailureClass.TEMPORARY, 200, None),
    ],
    ids=lambda v: repr(v) if not isinstance(v, Fault) else f"{v.kind}-{v.status}-{v.retry_after}",
)
def test_each_fault_maps_to_its_failure(
    emu: Emulator,
    client: UploadClient,
    png_file: Path,
    fault: Fault,
    failure_class: FailureClass,
    code: int | str,
    retry_after: float | None,
) -> None:
    emu.add_fault(fault)
    outcome = post(client, png_file)
    assert isinstance(outcome, UploadFailure), outcome
    assert outcome.failure_class is failure_class
    assert outcome.code == code
    assert outcome.retry_after == retry_after
    assert outcome.error
    assert TOKEN not in outcome.error
    assert emu.uploads == []
    assert len(emu.requests) == 1
    assert emu.faults == []  # the fault was actually consumed by this request


def test_the_error_text_carries_the_api_message(emu: Emulator, client: UploadClient, png_file: Path) -> None:
    emu.add_fault(Fault("status", status=412))
    outcome = post(client, png_file)
    assert isinstance(outcome, UploadFailure)
    assert outcome.error.startswith("HTTP 412")
    assert "credits" in outcome.error


def test_after_a_fault_the_same_client_succeeds(emu: Emulator, client: UploadClient, png_file: Path) -> None:
    emu.add_fault(Fault("reset"))
    assert isinstance(post(client, png_file), UploadFailure)
    outcome = post(client, png_file)
    assert isinstance(outcome, UploadSuccess)
    assert outcome.sha256 == sha256(png_file.read_bytes())


def test_a_wrong_token_is_an_account_failure(emu: Emulator, png_file: Path) -> None:
    wrong = UploadClient(emu.base_url, "user:1-wrong", connect_timeout=5, read_timeout=10)
    try:
        outcome = post(wrong, png_file)
    finally:
        wrong.close()
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.ACCOUNT
    assert outcome.code == 401
    assert emu.uploads == []
    assert "user:1-wrong" not in outcome.error


def test_missing_or_unknown_account_with_several_accounts_is_an_account_failure(png_file: Path) -> None:
    with Emulator(token=TOKEN, accounts=["111", "222"]) as emu:
        c = UploadClient(emu.base_url, TOKEN, connect_timeout=5, read_timeout=10)
        try:
            missing = post(c, png_file, account=None)
            unknown = post(c, png_file, account="999")
            ok = post(c, png_file, account="222")
        finally:
            c.close()
        assert isinstance(missing, UploadFailure)
        assert (missing.failure_class, missing.code) == (FailureClass.ACCOUNT, 400)
        assert isinstance(unknown, UploadFailure)
        assert (unknown.failure_class, unknown.code) == (FailureClass.ACCOUNT, 400)
        assert isinstance(ok, UploadSuccess)
        assert [r.account for r in emu.uploads] == ["222"]


def test_an_unreachable_api_is_a_temporary_network_failure(png_file: Path) -> None:
    with Emulator(token=TOKEN) as emu:
        base_url = emu.base_url
    # The emulator is stopped: its port now refuses connections.
    c = UploadClient(base_url, TOKEN, connect_timeout=2, read_timeout=2)
    try:
        outcome = post(c, png_file)
    finally:
        c.close()
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.TEMPORARY
    assert outcome.code == "network"


def test_a_file_shorter_than_announced_is_file_changed(
    emu: Emulator, client: UploadClient, png_file: Path
) -> None:
    size = png_file.stat().st_size
    outcome = post(client, png_file, size=size + 100)
    assert isinstance(outcome, FileChanged)
    assert emu.uploads == []


def test_only_the_announced_size_is_sent_when_the_file_is_longer(
    emu: Emulator, client: UploadClient, png_file: Path
) -> None:
    data = png_file.read_bytes()
    outcome = post(client, png_file, size=len(data) - 10)
    assert isinstance(outcome, UploadSuccess)
    assert outcome.sha256 == sha256(data[:-10]) == emu.uploads[0].sha256


def test_two_uploads_over_one_client_reuse_the_connection(
    emu: Emulator, client: UploadClient, png_file: Path
) -> None:
    assert isinstance(post(client, png_file), UploadSuccess)
    assert isinstance(post(client, png_file), UploadSuccess)
    assert len(emu.uploads) == 2
    # urllib3 counts the connections it opened for this host: one socket carried both requests.
    poolmanager = client._pool
    keys = list(poolmanager.pools.keys())
    assert len(keys) == 1
    pool = poolmanager.pools[keys[0]]
    assert pool.num_requests == 2
    assert pool.num_connections == 1


def test_a_garbage_retry_after_header_never_makes_post_file_raise(
    emu: Emulator, client: UploadClient, png_file: Path
) -> None:
    emu.add_fault(Fault("status", status=429, retry_after="²"))
    outcome = post(client, png_file)
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.TEMPORARY
    assert outcome.retry_after is None
