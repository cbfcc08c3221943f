"""`watcher.report.status_report`: the latest uploads shown only while their sidecar still says so, with a
thumbnail link for those inside the folder; each generate folder's latest done videos, newest first."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

from tests.helpers.images import png_bytes
from tests.helpers.page import Site, done_sidecar, done_video, make_site
from watcher.report.status_report import MAX_RECENT_VIDEOS, build_status, file_link, recent_uploads


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def upload(site: Site, rel: str, file_id: str | None = None) -> dict[str, str]:
    path = str(site.drop / rel)
    sidecar = done_sidecar(Path(path)) if file_id is None else {"fileID": file_id}
    return {
        "folder": str(site.drop),
        "path": path,
        "fileID": sidecar["fileID"],
        "uploaded": "2026-12-07T22:00:00Z",
    }


def test_recent_uploads_are_those_whose_sidecar_still_says_so(site: Site, tmp_path: Path) -> None:
    folders = site.config.folders
    name = os.fsdecode(b"caf\xe9 #1.png")  # not UTF-8, and characters a URL must encode
    (site.drop / name).write_bytes(png_bytes(2))
    (site.drop / "gone.png").write_bytes(png_bytes(3))
    (site.drop / "other.png").write_bytes(png_bytes(4))
    uploads = [
        upload(site, name),
        upload(site, "cat.png"),
        upload(site, "gone.png"),
        upload(site, "other.png", file_id="user:4242-minimax:111111-file:1"),  # its sidecar says another
        {**upload(site, "cat.png"), "folder": str(tmp_path)},  # a folder not configured (any more)
    ]
    (site.drop / "gone.png.json").unlink()
    shown = recent_uploads(folders, uploads, site.owner)
    assert [entry["file"] for entry in shown] == [name, "cat.png"]
    link = shown[0]["thumbnail"]
    assert link == "/thumbnail?folder=0&file=caf%E9%20%231.png"
    assert os.fsdecode(unquote_to_bytes(link.partition("file=")[2])) == name
    assert shown[1] == {
        "folder": str(site.drop),
        "file": "cat.png",
        "fileID": uploads[1]["fileID"],
        "uploaded": "2026-12-07T22:00:00Z",
        "thumbnail": "/thumbnail?folder=0&file=cat.png",
    }


def test_audio_has_no_thumbnail(site: Site) -> None:
    (site.drop / "song.mp3").write_bytes(b"ID3" + bytes(100))
    [shown] = recent_uploads(site.config.folders, [upload(site, "song.mp3")], site.owner)
    assert shown["file"] == "song.mp3" and shown["thumbnail"] is None


def test_an_upload_moved_out_of_the_folder_has_no_thumbnail(site: Site, tmp_path: Path) -> None:
    done = tmp_path / "done"
    done.mkdir()
    (done / "a.png").write_bytes(png_bytes(5))
    sidecar = done_sidecar(done / "a.png")
    config = site.config
    folder = config.folders[0].__class__(**{**config.folders[0].__dict__, "done_dir": str(done)})
    entry = {
        "folder": folder.path,
        "path": str(done / "a.png"),
        "fileID": sidecar["fileID"],
        "uploaded": None,
    }
    [shown] = recent_uploads([folder], [entry], site.owner)
    assert shown["file"] == "../done/a.png" and shown["thumbnail"] is None


def test_each_generate_folder_lists_its_latest_done_videos(site: Site) -> None:
    for n in range(MAX_RECENT_VIDEOS + 3):
        done_video(site.state, site.drop, f"n{n}.png", f"videos/n{n}.mp4", finished=1000.0 + n)
    report = build_status(site.config, [site.state], site.owner)
    recent = report["folders"][0]["videos"]["recent"]
    assert len(recent) == MAX_RECENT_VIDEOS
    assert recent[0] == {
        "file": f"n{MAX_RECENT_VIDEOS + 2}.png",
        "video": file_link("video", 0, f"videos/n{MAX_RECENT_VIDEOS + 2}.mp4"),
        "videoId": f"id-n{MAX_RECENT_VIDEOS + 2}.png",
    }
    assert report["recent"] == []  # no agent has recorded an upload in this state folder
