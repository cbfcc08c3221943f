"""The progress line of `minimax-watcher upload`: redrawn in place at most ten times a second, its last
state always drawn, and a line break at the end only if something was drawn."""

from __future__ import annotations

import pytest

from watcher.cli.progress import ProgressBar


def test_the_line_shows_the_bar_the_share_and_the_megabytes(capsys: pytest.CaptureFixture[str]) -> None:
    bar = ProgressBar("a.png", 4_000_000)
    bar(1_000_000)
    drawn = capsys.readouterr().err
    assert drawn.startswith("\ra.png [" + "#" * 7 + " " * 23 + "]  25% 1.0/4.0 MB ")
    assert drawn.endswith(" MB/s")


def test_redraws_come_at_most_ten_times_a_second_but_the_end_always_shows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bar = ProgressBar("a.png", 1000)
    bar(100)
    bar(200)
    bar(300)
    assert capsys.readouterr().err.count("\r") == 1, "the calls within a tenth of a second draw once"
    bar(1000)
    bar.finish()
    drawn = capsys.readouterr().err
    assert drawn.startswith("\ra.png [" + "#" * 30 + "] 100% ")
    assert drawn.endswith("\n")


def test_finish_without_a_drawn_line_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    ProgressBar("a.png", 1000).finish()
    assert capsys.readouterr().err == ""


def test_an_empty_file_and_an_overshoot_stay_within_the_bar(capsys: pytest.CaptureFixture[str]) -> None:
    ProgressBar("empty.png", 0)(0)
    assert "[" + " " * 30 + "]   0% 0.0/0.0 MB" in capsys.readouterr().err
    ProgressBar("a.png", 1000)(1500)
    assert "[" + "#" * 30 + "] 100% " in capsys.readouterr().err
