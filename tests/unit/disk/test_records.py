"""Unit tests for `watcher.disk.records`: atomic writes that never follow symlinks, and defensive reads."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from watcher.core.signature import FileSignature
from watcher.disk.files import parent_beneath
from watcher.disk.records import (
    MAX_RECORD_BYTES,
    build_error_record,
    build_sidecar,
    is_valid_sidecar,
    read_record,
    record_matches,
    remove_error_record_in,
    write_error_record,
    write_json_atomically,
    write_sidecar_atomically,
)

SIG = FileSignature(size=1234, mtime_ns=1_700_000_000_123_456_789, ino=99)


def test_write_json_atomically_writes_the_data(tmp_path: Path) -> None:
    target = tmp_path / "cat.png.json"
    write_json_atomically(str(target), {"fileID": "f1", "size": 3, "name": "chat été"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"fileID": "f1", "size": 3, "name": "chat été"}


def test_write_json_atomically_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "cat.png.json"
    target.write_text('{"old": true}')
    write_json_atomically(str(target), {"new": True})
    assert json.loads(target.read_text()) == {"new": True}


def test_write_json_atomically_replaces_a_planted_symlink_instead_of_writing_through_it(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / "cat.png.json"
    target.symlink_to(victim)
    write_json_atomically(str(target), {"fileID": "f1"})
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink()
    assert target.is_file()
    assert json.loads(target.read_text()) == {"fileID": "f1"}


def test_write_json_atomically_leaves_no_temporary_files(tmp_path: Path) -> None:
    for i in range(5):
        write_json_atomically(str(tmp_path / "a.png.json"), {"n": i})
    write_json_atomically(str(tmp_path / "b.png.json"), {"n": 0})
    assert sorted(os.listdir(tmp_path)) == ["a.png.json", "b.png.json"]


def test_a_failed_write_leaves_no_temporary_file_and_raises(tmp_path: Path) -> None:
    # The name is taken by a non-empty directory: the final rename fails.
    blocker = tmp_path / "cat.png.json"
    blocker.mkdir()
    (blocker / "keep").write_text("x")
    with pytest.raises(OSError):
        write_json_atomically(str(blocker), {"fileID": "f1"})
    assert sorted(os.listdir(tmp_path)) == ["cat.png.json"]
    assert (blocker / "keep").read_text() == "x"


def test_sidecar_and_error_record_helpers_write_beside_the_image(tmp_path: Path) -> None:
    image = str(tmp_path / "cat.png")
    sidecar = build_sidecar(
        image_path=image,
        account="123456",
        file_id="user:1-minimax:123456-file:7",
        oss_path="https://oss/7.png",
        signature=SIG,
        sha256="ab" * 32,
        content_type="image/png",
        uploaded_at="2024-01-01T00:00:00Z",
    )
    write_sidecar_atomically(image, sidecar)
    got = read_record(image + ".json")
    assert got == sidecar
    assert set(got) >= {
        "fileID",
        "ossPath",
        "account",
        "file",
        "size",
        "mtime_ns",
        "sha256",
        "contentType",
        "uploadedAt",
    }
    assert got["file"] == "cat.png"
    assert is_valid_sidecar(got)
    assert record_matches(got, SIG)

    record = build_error_record(
        error="not a PNG, JPEG or WebP image", code="not_an_image", attempts=1, signature=SIG
    )
    write_error_record(image, record)
    error = read_record(image + ".error.json")
    assert error is not None
    assert set(error) >= {"error", "code", "attempts", "failedAt", "size", "mtime_ns"}
    assert error["failedAt"].endswith("Z")
    assert record_matches(error, SIG)
    with parent_beneath("", image) as (dir_fd, name):
        remove_error_record_in(dir_fd, name)
        assert not os.path.exists(image + ".error.json")
        remove_error_record_in(dir_fd, name)  # already gone: no error


def test_read_record_returns_the_dict(tmp_path: Path) -> None:
    path = tmp_path / "cat.png.json"
    path.write_text('{"fileID": "x", "size": 1}')
    assert read_record(str(path)) == {"fileID": "x", "size": 1}


def test_read_record_absent_is_none(tmp_path: Path) -> None:
    assert read_record(str(tmp_path / "nothing.json")) is None


def test_read_record_does_not_follow_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text('{"fileID": "x", "size": 1, "mtime_ns": 2}')
    link = tmp_path / "cat.png.json"
    link.symlink_to(real)
    assert read_record(str(real)) is not None  # the target itself is a fine record
    assert read_record(str(link)) is None


@pytest.mark.parametrize(
    "content", [b"", b"{", b"not json", b"\xff\xfe\x00garbage", b"[1, 2]", b'"str"', b"42"]
)
def test_read_record_invalid_or_not_an_object_is_none(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "cat.png.json"
    path.write_bytes(content)
    assert read_record(str(path)) is None


def test_read_record_too_large_is_none(tmp_path: Path) -> None:
    path = tmp_path / "cat.png.json"
    padding = " " * (MAX_RECORD_BYTES + 10)
    path.write_text('{"fileID": "x"' + padding + "}")
    assert read_record(str(path)) is None


@pytest.mark.timeout(5)
def test_read_record_of_a_fifo_is_none_and_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "cat.png.json"
    os.mkfifo(fifo)
    assert read_record(str(fifo)) is None


def test_read_record_of_a_directory_is_none(tmp_path: Path) -> None:
    folder = tmp_path / "cat.png.json"
    folder.mkdir()
    assert read_record(str(folder)) is None


def test_record_matches_on_size_mtime_ns_and_the_inode_where_the_record_has_one() -> None:
    record = {"size": SIG.size, "mtime_ns": SIG.mtime_ns}
    assert record_matches(record, SIG)
    # Records written before inodes were recorded stay valid: no mass re-upload on upgrade.
    assert record_matches(record, FileSignature(SIG.size, SIG.mtime_ns, ino=1))
    with_inode = {**record, "ino": 42}
    assert record_matches(with_inode, FileSignature(SIG.size, SIG.mtime_ns, ino=42))
    assert not record_matches(with_inode, FileSignature(SIG.size, SIG.mtime_ns, ino=43))
    assert record_matches(with_inode, FileSignature(SIG.size, SIG.mtime_ns, ino=43), inode=False)
    assert not record_matches(record, FileSignature(SIG.size + 1, SIG.mtime_ns))
    assert not record_matches(record, FileSignature(SIG.size, SIG.mtime_ns + 1))
    assert not record_matches(None, SIG)
    assert not record_matches({}, SIG)
    assert not record_matches({"size": str(SIG.size), "mtime_ns": str(SIG.mtime_ns)}, SIG)


def test_is_valid_sidecar_only_with_a_file_id_of_the_documented_shape() -> None:
    good = "user:12345-minimax:123456-file:380000000000001"
    assert is_valid_sidecar({"fileID": good, "sha256": "00"})
    assert not is_valid_sidecar({"fileID": "f", "sha256": "00"})
    assert not is_valid_sidecar({"fileID": good + "x" * 300, "sha256": "00"})
    assert not is_valid_sidecar({"fileID": "", "sha256": "00"})
    assert not is_valid_sidecar({"fileID": 5, "sha256": "00"})
    assert not is_valid_sidecar({"fileID": good})
    assert not is_valid_sidecar(None)


def test_a_sidecar_name_of_255_bytes_is_still_written(tmp_path: Path) -> None:
    from watcher.disk.records import write_json_atomically

    image = tmp_path / ("é" * 60 + "b" * 126 + ".png")  # 250 bytes: its sidecar name is 255
    target = image.with_name(image.name + ".json")
    assert len(os.fsencode(target.name)) == 255

    write_json_atomically(str(target), {"fileID": "x"})

    assert json.loads(target.read_text()) == {"fileID": "x"}
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


# ---- below a watched folder: nothing outside it is read or written (SPEC §7) ----------------------


def swapped_tree(tmp_path: Path) -> tuple[Path, Path, str]:
    """A watched `drop` whose `sub` is now a symlink to `outside`; returns (drop, outside, image path)."""
    drop = tmp_path / "drop"
    drop.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (drop / "sub").symlink_to(outside, target_is_directory=True)
    return drop, outside, str(drop / "sub" / "a.png")


def test_the_atomic_writer_never_writes_through_a_symlinked_folder(tmp_path: Path) -> None:
    drop, outside, image = swapped_tree(tmp_path)
    with pytest.raises(OSError) as raised:
        write_json_atomically(image + ".json", {"fileID": "f1"}, str(drop))
    assert raised.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        write_sidecar_atomically(image, {"fileID": "f1"}, str(drop))
    with pytest.raises(OSError):
        write_error_record(image, {"error": "x"}, str(drop))
    assert list(outside.iterdir()) == [], "nothing may be created outside the watched folder"


def test_the_atomic_writer_writes_below_its_root_when_nothing_is_swapped(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    image = str(drop / "sub" / "a.png")
    write_sidecar_atomically(image, {"fileID": "f1"}, str(drop))
    assert json.loads((drop / "sub" / "a.png.json").read_text()) == {"fileID": "f1"}
    assert os.listdir(drop / "sub") == ["a.png.json"]


def test_a_symlinked_folder_hides_the_records_beyond_it(tmp_path: Path) -> None:
    drop, outside, image = swapped_tree(tmp_path)
    (outside / "a.png.json").write_text('{"fileID": "planted", "size": 1}')
    (outside / "a.png.error.json").write_text('{"error": "x"}')
    assert read_record(image + ".json") is not None  # O_NOFOLLOW alone reads through the folder
    assert read_record(image + ".json", root=str(drop)) is None

    with pytest.raises(OSError) as refused, parent_beneath(str(drop), image) as (dir_fd, name):
        remove_error_record_in(dir_fd, name)  # the record is not inside the folder: never reached
    assert refused.value.errno == errno.ELOOP

    assert sorted(p.name for p in outside.iterdir()) == ["a.png.error.json", "a.png.json"]


def test_an_error_record_below_its_root_is_removed(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    image = str(drop / "sub" / "a.png")
    write_error_record(image, {"error": "x"}, str(drop))
    assert read_record(image + ".error.json", root=str(drop)) == {"error": "x"}
    with parent_beneath(str(drop), image) as (dir_fd, name):
        remove_error_record_in(dir_fd, name)
    assert os.listdir(drop / "sub") == []
