"""The progress line of `minimax-watcher upload`: redrawn in place at most ten times a second, its last
state always drawn, and a line break at the end only if something was drawn. The clock is the test's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from watcher.cli import progress
from watcher.cli.progress import ProgressBar


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def test_the_line_shows_the_bar_the_share_the_megabytes_and_the_rate(
    clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    bar = ProgressBar("a.png", 4_000_000)
    clock.now += 0.5
    bar(1_000_000)
    assert (
        capsys.readouterr().err == "\ra.png [" + "#" * 7 + " " * 23 + "]  25% 1.0 MB of 4.0 MB 2.0 MB/s\x1b[K"
    )


def test_redraws_come_at_most_ten_times_a_second_but_the_end_always_shows(
    clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    bar = ProgressBar("a.png", 1000)
    bar(100)
    clock.now += 0.05
    bar(200)
    assert capsys.readouterr().err.count("\r") == 1, "a second call within a tenth of a second draws nothing"
    clock.now += 0.06
    bar(300)
    assert capsys.readouterr().err.count("\r") == 1, "a tenth of a second later it does"
    bar(1000)
    bar.finish()
    drawn = capsys.readouterr().err
    assert drawn.startswith("\ra.png [" + "#" * 30 + "] 100% ")
    assert drawn.endswith("\n")


def test_finish_without_a_drawn_line_writes_nothing(clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    ProgressBar("a.png", 1000).finish()
    assert capsys.readouterr().err == ""


def test_an_empty_file_and_an_overshoot_stay_within_the_bar(
    clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    ProgressBar("empty.png", 0)(0)
    assert "[" + " " * 30 + "]   0% 0 B of 0 B" in capsys.readouterr().err
    ProgressBar("a.png", 1000)(1500)
    assert "[" + "#" * 30 + "] 100% " in capsys.readouterr().err
