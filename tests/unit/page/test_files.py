"""`watcher.page.files`: which files the page opens (a done sidecar of this owner, a done video), never
through a symlink or outside the folder; the query and the Range header as a client sends them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.images import png_bytes
from tests.helpers.page import Site, done_sidecar
from watcher.page.files import NotServed, byte_range, open_done_image, open_done_video, parse_file_query


def test_the_query_gives_the_folder_and_the_bytes_of_the_name() -> None:
    assert parse_file_query("folder=0&file=sub%2Fa%20b.png", 1) == (0, "sub/a b.png")
    assert parse_file_query("file=%FF.png&folder=2", 3) == (2, os.fsdecode(b"\xff.png"))  # not UTF-8
    for query in ("folder=1&file=a.png", "folder=-1&file=a.png", "folder=x&file=a", "folder=0", "folder=0&file=",
                  "folder=0&file=%2Fetc%2Fpasswd", "folder=0&file=a%00b", "file=a.png", "folder=\u0660&file=a.png"):  # fmt: skip
        with pytest.raises(NotServed):
            parse_file_query(query, 1)


def test_a_name_has_one_spelling() -> None:
    for spelled in ("sub/a.png", "./sub/a.png", "sub//a.png", "sub/./a.png", ".//sub/a.png/"):
        assert parse_file_query("folder=0&file=" + spelled.replace("/", "%2F"), 1) == (0, "sub/a.png")
    # A video in an output_dir beside the folder: `/video` checks that it is a done one.
    assert parse_file_query("folder=0&file=..%2Fout%2F.%2Fv.mp4", 1) == (0, "../out/v.mp4")
    for query in ("folder=0&file=.", "folder=0&file=.%2F%2F"):
        with pytest.raises(NotServed):
            parse_file_query(query, 1)


def opened(site: Site, rel: str) -> bool:
    try:
        fd, _ = open_done_image(site.config.folders[0], rel, site.owner)
    except NotServed:
        return False
    os.close(fd)
    return True


def test_an_image_is_opened_only_with_its_owners_sidecar_for_its_bytes(site: Site, tmp_path: Path) -> None:
    assert opened(site, "cat.png")
    (site.drop / "bare.png").write_bytes(png_bytes(2))
    assert not opened(site, "bare.png")
    (site.drop / "other.png").write_bytes(png_bytes(3))
    done_sidecar(site.drop / "other.png", user="1")  # another API user's fileID
    assert not opened(site, "other.png")
    (site.drop / "elsewhere.png").write_bytes(png_bytes(4))
    done_sidecar(site.drop / "elsewhere.png", base_url="https://api.example")  # another base URL's
    assert not opened(site, "elsewhere.png")
    (site.drop / "cat.png").write_bytes(png_bytes(5))  # new bytes, the old sidecar
    assert not opened(site, "cat.png")


def test_no_symlink_and_nothing_outside_the_folder(site: Site, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(png_bytes(6))
    done_sidecar(outside / "x.png")
    (site.drop / "link.png").symlink_to(outside / "x.png")
    done_sidecar(site.drop / "link.png")  # matches the target's bytes
    (site.drop / "away").symlink_to(outside)
    for rel in ("link.png", "away/x.png", "../outside/x.png", "videos/../../outside/x.png"):
        assert not opened(site, rel), rel
    (site.drop / "sub").mkdir()
    os.rename(outside / "x.png", site.drop / "sub" / "x.png")
    done_sidecar(site.drop / "sub" / "x.png")
    assert opened(site, "sub/x.png")


def test_a_video_only_when_the_journal_lists_it_done(site: Site, tmp_path: Path) -> None:
    folder = site.config.folders[0]
    done = {(0, "videos/cat.mp4"), (0, "videos/link.mp4"), (0, "../x.mp4"), (0, "cat.png")}
    fd, st = open_done_video(0, folder, "videos/cat.mp4", done)
    os.close(fd)
    assert st.st_size == 1024
    (tmp_path / "x.mp4").write_bytes(b"x")
    (site.drop / "videos" / "link.mp4").symlink_to(tmp_path / "x.mp4")
    for rel in ("videos/other.mp4", "videos/link.mp4", "../x.mp4", "cat.png"):
        with pytest.raises(NotServed):
            open_done_video(0, folder, rel, done)


def test_a_range_header_as_rfc_9110_reads_it() -> None:
    assert byte_range(None, 100) is None
    assert byte_range("bytes=0-9", 100) == (0, 9)
    assert byte_range("bytes=90-", 100) == (90, 99)
    assert byte_range("bytes=50-500", 100) == (50, 99)
    assert byte_range("bytes=-10", 100) == (90, 99)
    assert byte_range("bytes=-500", 100) == (0, 99)
    assert byte_range("bytes=0-1,5-6", 100) is None  # several: the whole file is an allowed answer
    assert byte_range("items=0-1", 100) is None
    for unsatisfiable in ("bytes=100-", "bytes=5-4", "bytes=-0", "bytes=-"):
        with pytest.raises(ValueError):
            byte_range(unsatisfiable, 100)
