"""Which files a folder takes: media kinds by name, include and exclude globs, dot-folders."""

from __future__ import annotations

import pytest

from watcher.core.folders import Folder, folder_containing


def folder(**kw: object) -> Folder:
    return Folder("/d", None, True, False, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/d/a.png", True),
        ("/d/sub/deep/a.JPG", True),
        ("/d/a.mp3", False),  # audio is not enabled by default
        ("/d/a.png.part", False),
        ("/d/.a.png", False),
        ("/d/notes.txt", False),
    ],
)
def test_by_default_images_anywhere_below(path: str, expected: bool) -> None:
    assert folder().admits(path) is expected


def test_media_kinds_enable_audio_and_video_names() -> None:
    f = folder(media=frozenset({"audio", "video"}))
    assert f.admits("/d/a.mp3") and f.admits("/d/a.WAV") and f.admits("/d/clip.mp4")
    assert not f.admits("/d/a.png")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/d/renders/a.png", True),
        ("/d/renders/x/y/a.png", True),
        ("/d/renders/tmp/a.png", False),  # exclude wins
        ("/d/tmp/a.png", False),
        ("/d/a.png", False),  # not included
        ("/d/renders/a.jpg", False),
        ("/d/final/b-1.png", True),
        ("/d/final/sub/b-1.png", False),  # `*` stays within one name
    ],
)
def test_include_and_exclude_globs_on_the_relative_path(path: str, expected: bool) -> None:
    f = folder(include=("renders/**/*.png", "final/b-?.png"), exclude=("**/tmp/**", "tmp/*"))
    assert f.admits(path) is expected


def test_character_classes_in_globs() -> None:
    f = folder(include=("shot-[0-9][0-9].png", "[!x]*.jpg"))
    assert f.admits("/d/shot-07.png") and not f.admits("/d/shot-7a.png")
    assert f.admits("/d/a.jpg") and not f.admits("/d/x.jpg")


def test_folder_containing_does_not_filter_by_name_but_admits_does() -> None:
    f = folder(include=("*.png",))
    assert folder_containing("/d/a.jpg", [f]) == f
    assert not f.admits("/d/a.jpg")
