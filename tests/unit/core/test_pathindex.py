from __future__ import annotations

from watcher.core.pathindex import PathIndex


def test_set_get_pop_and_count() -> None:
    index: PathIndex[int] = PathIndex()
    index["/a/x.png"] = 1
    index["/a/y.png"] = 2
    index["/a/b/z.png"] = 3
    index["/a/x.png"] = 4  # replacing does not count twice

    assert len(index) == 3
    assert index.get("/a/x.png") == 4 and "/a/b/z.png" in index and "/a/q.png" not in index
    assert index.pop("/a/x.png") == 4 and index.pop("/a/x.png") is None
    assert len(index) == 2
    assert sorted(index.paths()) == ["/a/b/z.png", "/a/y.png"]


def test_keep_only_forgets_names_missing_from_a_listing() -> None:
    index: PathIndex[int] = PathIndex()
    for name in ("one.png", "two.png", "three.png"):
        index[f"/d/{name}"] = 1
    index["/other/one.png"] = 1

    index.keep_only("/d", {"two.png", "two.png.json", "new.png"})

    assert sorted(index.paths()) == ["/d/two.png", "/other/one.png"]
    assert len(index) == 2


def test_forget_under_spares_listed_directories_and_siblings_with_a_common_prefix() -> None:
    index: PathIndex[int] = PathIndex()
    for path in ("/root/a.png", "/root/sub/b.png", "/root/gone/c.png", "/root2/d.png"):
        index[path] = 1

    index.forget_under("/root", except_dirs={"/root", "/root/sub"})

    assert sorted(index.paths()) == ["/root/a.png", "/root/sub/b.png", "/root2/d.png"]
    index.forget_under("/root")
    assert list(index.paths()) == ["/root2/d.png"] and len(index) == 1
