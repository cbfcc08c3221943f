"""The no-follow walk of `service install` (watcher.service.paths): who could rename what, and the walk itself
on a real temporary tree."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from watcher.service.paths import look, parent_of, read_file, who_can_rename
from watcher.service.units import PlanError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="folders of other owners need root")


def names(st: os.stat_result) -> str:
    return f"u{st.st_uid}:g{st.st_gid}"


def folder(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 1, 1, 2, uid, gid, 4096, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "entry_uid", "who"),
    [
        (0o755, 0, 0, 0, None),
        (0o775, 0, 0, 1000, None),  # the root group's members are root's own
        (0o2775, 0, 50, 0, "the group g50"),
        (0o757, 0, 0, 0, "every user"),
        (0o1777, 0, 0, 0, None),  # sticky: only the entry's owner, root
        (0o1777, 0, 0, 1000, "uid 1000, which owns it,"),
        (0o3775, 0, 50, 0, None),
        (0o3775, 0, 50, 1000, "uid 1000, which owns it,"),
        (0o755, 1000, 0, 0, "its owner u1000"),  # who may chmod it as they please
        (0o700, 1000, 0, 0, "its owner u1000"),
    ],
)
def test_who_can_rename(mode: int, uid: int, gid: int, entry_uid: int, who: str | None) -> None:
    assert who_can_rename(folder(mode, uid, gid), entry_uid, names) == who


def test_a_missing_path_is_none_and_a_walk_that_creates_makes_root_folders_0755(tmp_path: Path) -> None:
    assert look(str(tmp_path), "/a/b/c", names) is None
    old = os.umask(0o077)
    try:
        with parent_of(str(tmp_path), "/a/b/c", names, create=True) as found:
            assert found is not None and found[1] == "c"
            assert stat.S_ISDIR(os.fstat(found[0]).st_mode)
    finally:
        os.umask(old)
    for made in (tmp_path / "a", tmp_path / "a/b"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o755
    assert not (tmp_path / "a/b/c").exists()


@pytest.mark.parametrize("link", ["/a", "/a/b", "/a/b/c"])
def test_a_link_anywhere_is_refused(tmp_path: Path, link: str) -> None:
    (tmp_path / "a/b/c").mkdir(parents=True)
    (tmp_path / "elsewhere/b/c").mkdir(parents=True)
    place = tmp_path / link.lstrip("/")
    place.rename(tmp_path / "moved")
    place.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PlanError, match=f"^refusing /a/b/c: {link} is a symlink"):
        look(str(tmp_path), "/a/b/c", names)


def test_a_link_itself_may_be_looked_at_to_be_removed(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("/etc")
    st = look(str(tmp_path), "/a", names, link_ok=True)
    assert st is not None and stat.S_ISLNK(st.st_mode)


def test_a_file_on_the_way_is_refused_and_a_file_is_read_without_following(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    with pytest.raises(PlanError, match=r"^refusing /a/b: /a is not a folder$"):
        look(str(tmp_path), "/a/b", names)
    assert read_file(str(tmp_path), "/a", names) == b"x"
    assert read_file(str(tmp_path), "/missing", names) is None


@needs_root
def test_a_folder_on_the_way_others_can_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "srv/drop/alice").mkdir(parents=True)
    os.chown(tmp_path / "srv/drop", 0, 4242)
    (tmp_path / "srv/drop").chmod(0o2775)
    with pytest.raises(PlanError) as refused:
        look(str(tmp_path), "/srv/drop/alice/x", names)
    assert str(refused.value) == (
        "refusing /srv/drop/alice/x: /srv/drop (u0:g4242 2775) lets the group g4242 rename /srv/drop/alice "
        "away and put a symlink in its place, which root would then change; make /srv/drop root's and "
        "writable by root alone (or sticky), then run service install again"
    )
    (tmp_path / "srv/drop").chmod(0o3775)  # sticky, and alice is root's
    assert look(str(tmp_path), "/srv/drop/alice/x", names) is None


def test_a_relative_path_or_one_that_climbs_is_refused(tmp_path: Path) -> None:
    for path in ("srv/drop", "/srv/../etc", "/"):
        with pytest.raises(PlanError, match="not an absolute path"):
            look(str(tmp_path), path, names)
