"""`status` counts the files an agent's index vouches for without reading their sidecars, and opens
that index without creating anything beside it. Real files, a real index, Python's audit hook to see
which files are opened."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from tests.helpers import ACCOUNT_A
from tests.unit.scan.test_helper import DIRECTORIES, PER_DIRECTORY, done_tree  # noqa: F401 (a fixture)
from watcher.config.load import load_config
from watcher.report.status_report import folder_report
from watcher.state.index import INDEX_NAME, HistoryIndex
from watcher.state.index_reader import IndexReader

_opened: list[str] | None = None


def _record_opens(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _opened is not None:
        _opened.append(os.fsdecode(args[0]) if isinstance(args[0], (str, bytes)) else str(args[0]))


sys.addaudithook(_record_opens)  # for good, but it records only inside `sidecars_opened`


def sidecars_opened(root: Path, index: IndexReader | None) -> tuple[dict[str, object], list[str]]:
    global _opened
    config_file = root.parent / "config.yaml"
    config_file.write_text(
        yaml.safe_dump({"folders": [{"path": str(root), "account": ACCOUNT_A, "recursive": True}]})
    )
    config = load_config(config_file)
    _opened = []
    try:
        report = folder_report(config, index)
    finally:
        opened, _opened = _opened, None
    return report["folders"][0], [name for name in opened if name.endswith(".json")]


def test_status_counts_what_the_index_vouches_for_without_reading_a_sidecar(
    done_tree: tuple[Path, HistoryIndex],  # noqa: F811
) -> None:
    root, history = done_tree
    assert history.file is not None
    (root / "d0" / "img0.png").write_bytes(b"\x89PNG\r\n\x1a\n new bytes")  # its sidecar no longer matches
    index = IndexReader.open(history.file)
    assert index is not None
    try:
        counts, read = sidecars_opened(root, index)
    finally:
        index.close()
    assert (counts["uploaded"], counts["pending"]) == (DIRECTORIES * PER_DIRECTORY - 1, 1)
    assert read == ["img0.png.json"]  # only the one the index could not vouch for

    counts, read = sidecars_opened(root, None)
    assert (counts["uploaded"], counts["pending"]) == (DIRECTORIES * PER_DIRECTORY - 1, 1)
    assert len(read) == DIRECTORIES * PER_DIRECTORY  # without it, every sidecar is read


def test_an_index_that_cannot_be_read_without_creating_a_file_is_not_opened(
    done_tree: tuple[Path, HistoryIndex],  # noqa: F811
) -> None:
    _, history = done_tree
    file = history.file
    assert file is not None
    history.close()
    state = file.parent
    assert sorted(os.listdir(state)) == [INDEX_NAME]  # closed cleanly: the file holds everything
    index = IndexReader.open(file)
    assert index is not None and index.known_in(str(state.parent / "drop" / "d0"))
    index.close()
    assert sorted(os.listdir(state)) == [INDEX_NAME]
    # A crash's lone -wal (no -shm): reading it would mean creating the -shm, so it is left alone.
    Path(f"{file}-wal").write_bytes(b"")
    assert IndexReader.open(file) is None
    assert sorted(os.listdir(state)) == [INDEX_NAME, f"{INDEX_NAME}-wal"]
