"""Unit tests for `watcher.upload.send.upload_one` against the real emulator, with real files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT
from tests.helpers.images import png_bytes, sha256, webp_bytes
from tests.helpers.media import mp3_bytes, mp4_bytes, pdf_bytes, wav_bytes
from tests.unit.upload.files import current_signature, watched_tree
from watcher.core.dedupe import KnownUpload
from watcher.core.media import MAX_UPLOAD_BYTES
from watcher.core.messages import UploadJob
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadSuccess
from watcher.core.signature import FileSignature
from watcher.disk.records import write_error_record, write_sidecar_atomically
from watcher.emulator import Emulator
from watcher.state.index import HistoryIndex
from watcher.upload.client import UploadClient
from watcher.upload.pipeline import error_record_for, sidecar_for
from watcher.upload.send import account_of, upload_one

NOT_AN_IMAGE = "not a PNG, JPEG or WebP image"  # what the agent says of a file that is not one


class Sent:
    """A `Progress` that hands each count of bytes sent to `on_sent`."""

    def __init__(self, on_sent: Callable[[int], None]) -> None:
        self.on_sent = on_sent

    def start(self, size: int) -> None:
        pass

    def __call__(self, sent: int) -> None:
        self.on_sent(sent)

    def finish(self) -> None:
        pass


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
    assert outcome.code == "not_an_image"
    assert signature == current_signature(path)
    assert reused is False
    assert emu.requests == []


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("song.mp3", mp3_bytes(1), "audio/mpeg"),
        ("bare.mp3", mp3_bytes(2, id3=False), "audio/mpeg"),
        ("take.wav", wav_bytes(3), "audio/wav"),
        ("clip.mp4", mp4_bytes(4), "video/mp4"),
    ],
)
def test_audio_and_video_upload_with_their_type_when_the_folder_takes_them(
    emu: Emulator, client: UploadClient, tmp_path: Path, name: str, data: bytes, content_type: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    job = UploadJob(str(path), ACCOUNT, current_signature(path), kinds=frozenset({"image", "audio", "video"}))
    outcome, _, _ = upload_one(client, job)
    assert isinstance(outcome, UploadSuccess)
    assert outcome.content_type == content_type == emu.uploads[0].content_type
    assert emu.uploads[0].sha256 == sha256(data)


def test_the_bytes_decide_the_type_not_the_name(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    path = tmp_path / "really-a-wav.mp3"
    path.write_bytes(wav_bytes(5))
    outcome, _, _ = upload_one(client, UploadJob(str(path), ACCOUNT, None, kinds=frozenset({"audio"})))
    assert isinstance(outcome, UploadSuccess)
    assert emu.uploads[0].content_type == "audio/wav"


def test_a_job_takes_images_only_unless_told_otherwise(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "clip.png"
    path.write_bytes(mp4_bytes(6))
    outcome, _, _ = upload_one(client, UploadJob(str(path), ACCOUNT, None))
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.PERMANENT
    assert outcome.code == "not_an_image"
    assert outcome.error == (
        "not a PNG, JPEG or WebP image: it is an MP4 video, and video is not in this folder's media"
    )
    assert emu.requests == []


def test_bytes_of_a_kind_the_folder_does_not_take_are_refused_without_a_request(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp3_bytes(7))
    outcome, signature, _ = upload_one(
        client, UploadJob(str(path), ACCOUNT, None, kinds=frozenset({"video"}))
    )
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.PERMANENT
    assert (outcome.code, outcome.error) == (
        "unsupported_type",
        "not an MP4 file: it is MP3 audio, and audio is not in this folder's media",
    )
    assert signature == current_signature(path)
    assert emu.requests == []


def test_a_pdf_named_mp3_is_an_unsupported_type_saying_what_it_is(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "x.mp3"
    path.write_bytes(pdf_bytes())
    job = UploadJob(str(path), ACCOUNT, None, kinds=frozenset({"image", "audio"}))
    outcome, signature, _ = upload_one(client, job)
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.PERMANENT
    assert outcome.local is True
    assert outcome.code == "unsupported_type"
    assert outcome.error == "not a PNG, JPEG, WebP, MP3 or WAV file: it is a PDF document"
    assert signature is not None
    write_error_record(job.path, error_record_for(job, outcome, signature))
    record = json.loads((tmp_path / "x.mp3.error.json").read_text())
    assert (record["code"], record["error"]) == (outcome.code, outcome.error)
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
    index = HistoryIndex(None)
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
    index = HistoryIndex(None)
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
    index = HistoryIndex(None)
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


# ---- below a watched folder: nothing outside it is read or written (SPEC §7) ----------------------


def test_a_subfolder_swapped_for_a_symlink_is_never_read_through(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    drop, outside = watched_tree(tmp_path)
    (outside / "a.png").write_bytes(png_bytes(2))
    (drop / "sub").rename(tmp_path / "away")
    (drop / "sub").symlink_to(outside, target_is_directory=True)
    path = str(drop / "sub" / "a.png")

    outcome, signature, _ = upload_one(client, UploadJob(path, ACCOUNT, None, root=str(drop)))

    assert isinstance(outcome, FileChanged)
    assert "symlink" in outcome.reason
    assert signature is None
    assert emu.requests == []


def test_a_path_outside_its_root_is_never_read(emu: Emulator, client: UploadClient, tmp_path: Path) -> None:
    drop, outside = watched_tree(tmp_path)
    (outside / "a.png").write_bytes(png_bytes(2))
    for path in (str(outside / "a.png"), f"{drop}/../outside/a.png"):
        outcome, signature, _ = upload_one(client, UploadJob(path, ACCOUNT, None, root=str(drop)))
        assert isinstance(outcome, FileChanged), path
        assert signature is None
    assert emu.requests == []


def test_a_subfolder_swapped_during_the_upload_is_a_change_and_gets_no_sidecar(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    # The same file, same inode and mtime, now reached through a symlink that leaves the folder: its
    # sidecar would land outside, so the result must not be recorded.
    drop, _ = watched_tree(tmp_path)
    path = str(drop / "sub" / "a.png")
    away = tmp_path / "away"
    job = UploadJob(path, ACCOUNT, current_signature(Path(path)), root=str(drop))

    def swap_once(sent: int) -> None:
        if not away.exists():
            (drop / "sub").rename(away)
            (drop / "sub").symlink_to(away, target_is_directory=True)

    outcome, signature, _ = upload_one(client, job, progress=Sent(swap_once))

    assert away.exists(), "the swap happened during the upload"
    assert isinstance(outcome, FileChanged)
    assert signature == current_signature(away / "a.png")
    assert len(emu.uploads) == 1
    with pytest.raises(OSError):
        write_sidecar_atomically(
            path, sidecar_for(job, UploadSuccess("f", "o", "s", 1, "image/png"), signature), job.root
        )
    assert sorted(p.name for p in away.iterdir()) == ["a.png"]
