"""Unit tests for `watcher.uploader.upload_one` against the real emulator, with real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.images import png_bytes, sha256, webp_bytes
from tests.unit_fixtures import ACCOUNT
from watcher.client import UploadClient
from watcher.dedupe import DedupeIndex, KnownUpload
from watcher.emulator import Emulator
from watcher.files import FileSignature, signature_of
from watcher.media import MAX_UPLOAD_BYTES, NOT_AN_IMAGE
from watcher.outcome import FailureClass, FileChanged, UploadFailure, UploadSuccess
from watcher.uploader import UploadJob, account_of, upload_one


def current_signature(path: Path) -> FileSignature:
    return signature_of(os.stat(path, follow_symlinks=False))


def test_a_png_uploads_and_returns_its_signature(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    data = png_bytes()
    path.write_bytes(data)
    expected = current_signature(path)
    outcome, signature, reused = upload_one(client, UploadJob(str(path), ACCOUNT, expected))
    assert isinstance(outcome, UploadSuccess)
    assert signature == expected
    assert reused is False
    assert outcome.sha256 == sha256(data) == emu.uploads[0].sha256
    assert emu.uploads[0].content_type == "image/png"
    assert account_of(UploadJob(str(path), None, None), outcome.file_id) == ACCOUNT


def test_a_webp_named_png_is_sent_by_its_bytes_as_jpeg(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "actually-webp.png"
    path.write_bytes(webp_bytes())
    outcome, _, _ = upload_one(client, UploadJob(str(path), ACCOUNT, None))
    assert isinstance(outcome, UploadSuccess)
    assert outcome.content_type == "image/jpeg"
    assert emu.uploads[0].content_type == "image/jpeg"


def test_a_text_file_named_png_is_a_permanent_not_an_image_failure(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, I am not an image\n")
    outcome, signature, reused = upload_one(client, UploadJob(str(path), ACCOUNT, current_signature(path)))
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.PERMANENT
    assert outcome.error == NOT_AN_IMAGE == "not a PNG, JPEG or WebP image"
    assert signature == current_signature(path)
    assert reused is False
    assert emu.requests == []


def test_a_sparse_file_over_5_gb_is_too_large_without_any_request(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.write(png_bytes())
        f.truncate(5 * 1000**3 + 1)
    assert path.stat().st_size == MAX_UPLOAD_BYTES + 1
    outcome, signature, reused = upload_one(client, UploadJob(str(path), ACCOUNT, current_signature(path)))
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.PERMANENT
    assert outcome.code == "too_large"
    assert "5 GB" in outcome.error
    assert signature is not None and signature.size == MAX_UPLOAD_BYTES + 1
    assert reused is False
    assert emu.requests == []


def test_dedupe_hit_reuses_the_file_id_without_a_request(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "cat.png"
    data = png_bytes()
    path.write_bytes(data)
    sha = sha256(data)
    index = DedupeIndex()
    known = KnownUpload("user:1-minimax:123456-file:42", "https://oss/42.png")
    index.add(ACCOUNT, len(data), sha, known)
    outcome, signature, reused = upload_one(
        client, UploadJob(str(path), ACCOUNT, current_signature(path)), index
    )
    assert reused is True
    assert isinstance(outcome, UploadSuccess)
    assert outcome.file_id == known.file_id
    assert outcome.oss_path == known.oss_path
    assert outcome.sha256 == sha
    assert outcome.size == len(data)
    assert outcome.content_type == "image/png"
    assert signature == current_signature(path)
    assert emu.requests == []


def test_dedupe_is_per_account(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    data = png_bytes()
    path.write_bytes(data)
    index = DedupeIndex()
    index.add("999", len(data), sha256(data), KnownUpload("other-account-id", ""))
    outcome, _, reused = upload_one(client, UploadJob(str(path), ACCOUNT, None), index)
    assert reused is False
    assert isinstance(outcome, UploadSuccess)
    assert outcome.file_id != "other-account-id"
    assert len(emu.uploads) == 1


def test_same_size_but_different_bytes_is_uploaded(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "cat.png"
    data = png_bytes()
    path.write_bytes(data)
    index = DedupeIndex()
    index.add(ACCOUNT, len(data), "0" * 64, KnownUpload("stale-id", ""))
    outcome, _, reused = upload_one(client, UploadJob(str(path), ACCOUNT, None), index)
    assert reused is False
    assert isinstance(outcome, UploadSuccess)
    assert outcome.file_id != "stale-id"
    assert outcome.sha256 == sha256(data) == emu.uploads[0].sha256


@pytest.mark.parametrize("delta", [FileSignature(1, 0, 0), FileSignature(0, 1, 0)])
def test_expected_signature_mismatch_is_file_changed_without_a_request(
    emu: Emulator, client: UploadClient, tmp_path: Path, delta: FileSignature
) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(png_bytes())
    now = current_signature(path)
    settled = FileSignature(now.size + delta.size, now.mtime_ns + delta.mtime_ns, now.ino)
    outcome, signature, reused = upload_one(client, UploadJob(str(path), ACCOUNT, settled))
    assert isinstance(outcome, FileChanged)
    assert signature == now
    assert reused is False
    assert emu.requests == []


def test_an_empty_file_is_not_uploaded(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    outcome, _, _ = upload_one(client, UploadJob(str(path), ACCOUNT, None))
    assert isinstance(outcome, FileChanged)
    assert emu.requests == []


def test_a_vanished_file_is_file_changed(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    outcome, signature, _ = upload_one(client, UploadJob(str(tmp_path / "gone.png"), ACCOUNT, None))
    assert isinstance(outcome, FileChanged)
    assert signature is None
    assert emu.requests == []


def test_a_symlink_is_never_followed(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    real = tmp_path / "real.png"
    real.write_bytes(png_bytes())
    link = tmp_path / "link.png"
    link.symlink_to(real)
    outcome, signature, _ = upload_one(client, UploadJob(str(link), ACCOUNT, None))
    assert isinstance(outcome, FileChanged)
    assert signature is None
    assert emu.requests == []


@pytest.mark.timeout(5)
def test_a_fifo_named_png_does_not_block(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    outcome, signature, _ = upload_one(client, UploadJob(str(fifo), ACCOUNT, None))
    assert isinstance(outcome, FileChanged)
    assert signature is None
    assert emu.requests == []
