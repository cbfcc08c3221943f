"""`watcher.core.globs`: every glob form folders use, and the bound on the steps a match takes."""

from __future__ import annotations

import pytest

from watcher.core.globs import Glob, glob_matches


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # `**` alone: anything, folders included.
        ("**", "a.png", True),
        ("**", "x/y/z/a.png", True),
        # `**/`: any number of whole folders, none included.
        ("**/a.png", "a.png", True),
        ("**/a.png", "x/a.png", True),
        ("**/a.png", "x/y/a.png", True),
        ("**/a.png", "xa.png", False),
        ("renders/**/*.png", "renders/a.png", True),
        ("renders/**/*.png", "renders/x/y/a.png", True),
        ("renders/**/*.png", "renders/x/y/a.jpg", False),
        ("renders/**/*.png", "other/renders/a.png", False),
        ("**/tmp/**", "tmp/a.png", True),
        ("**/tmp/**", "x/tmp/y/a.png", True),
        ("**/tmp/**", "x/tmpy/a.png", False),
        ("**/tmp/**", "x/tmp", False),  # a trailing `**` after "/" needs at least the "/"
        # `**` not followed by "/": any text, "/" included.
        ("renders/**", "renders/x/a.png", True),
        ("renders/**", "renders", False),
        ("**.png", "x/y/a.png", True),
        ("a**b.png", "a/x/b.png", True),
        # `*` and `?` stay within one name.
        ("*.png", "a.png", True),
        ("*.png", "x/a.png", False),
        ("*.png", ".png", True),
        ("final/b-?.png", "final/b-1.png", True),
        ("final/b-?.png", "final/b-12.png", False),
        ("a?b", "a/b", False),
        ("tmp/*", "tmp/a.png", True),
        ("tmp/*", "tmp/x/a.png", False),
        ("x*y*z", "xaaybbz", True),
        ("x*y*z", "xaaybb", False),
        # Classes: one character, within one name.
        ("shot-[0-9][0-9].png", "shot-07.png", True),
        ("shot-[0-9][0-9].png", "shot-7a.png", False),
        ("[!x]*.jpg", "a.jpg", True),
        ("[!x]*.jpg", "x.jpg", False),
        ("[^x]*.jpg", "x.jpg", False),
        ("a[!x]b", "a/b", False),
        ("a[]]b", "a]b", True),
        ("[ab-]", "-", True),
        ("[a-c-e]", "e", True),
        ("[a-c-e]", "d", False),
        ("[\\d]", "\\", True),
        ("[z-a]", "m", False),
        # Not a class: literal brackets.
        ("a[b", "a[b", True),
        ("a[]", "a[]", True),
        # Literal characters a regex would read as syntax.
        ("a.png", "aXpng", False),
        ("a+(b)|c$.png", "a+(b)|c$.png", True),
        ("é/✓.png", "é/✓.png", True),
        # The whole path.
        ("a.png", "a.png.json", False),
        ("a.png", "xa.png", False),
        ("", "", True),
        ("", "a", False),
    ],
)
def test_glob_forms(pattern: str, path: str, expected: bool) -> None:
    assert glob_matches(pattern, path) is expected


def test_a_match_takes_steps_bounded_by_the_path_times_the_pattern() -> None:
    glob = Glob("**/a/**/a/**/a/**/a/**/a/**/b/*.png")
    deep = "a/" * 400 + "c.png"  # everything but the "b" a dropper can make
    matched, steps = glob.run(deep)
    assert not matched
    assert steps <= (len(deep) + 1) * glob.size
    matched, steps = glob.run("a/" * 400 + "b/c.png")
    assert matched and steps <= (len(deep) + 3) * glob.size
