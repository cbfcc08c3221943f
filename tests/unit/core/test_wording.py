from __future__ import annotations

import pytest

from watcher.core.wording import count, size


def test_count_is_singular_for_exactly_one() -> None:
    assert [count(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert count(1, "empty file") == "1 empty file"
    assert count(3, "dot-folder") == "3 dot-folders"
    assert count(2, "match") == "2 matches"


@pytest.mark.parametrize(
    ("n_bytes", "shown"),
    [
        (0, "0 B"),
        (69, "69 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (1536, "1.5 KB"),
        (999_960, "1.0 MB"),
        (4_200_000, "4.2 MB"),
        (5_000_000_000, "5.0 GB"),
        (2_500_000_000_000, "2.5 TB"),
    ],
)
def test_size_picks_a_unit_that_keeps_the_number_readable(n_bytes: int, shown: str) -> None:
    assert size(n_bytes) == shown
