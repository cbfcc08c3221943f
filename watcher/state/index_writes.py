"""Applies to the index the writes the scheduler decided (`watcher.core.ports.IndexWrite`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import assert_never

from watcher.core.ports import AddKnownUpload, Forget, ForgetUnder, IndexWrite, MarkDone
from watcher.state.index import HistoryIndex


def apply_index_writes(index: HistoryIndex, writes: Iterable[IndexWrite]) -> None:
    for write in writes:
        match write:
            case MarkDone():
                index.put(write.path, write.signature, write.account, write.record_id)
            case Forget():
                index.pop(write.path)
            case ForgetUnder():
                index.forget_under(write.root, except_dirs=write.except_dirs)
            case AddKnownUpload():
                index.add(write.account, write.size, write.sha256, write.upload)
            case _:
                assert_never(write)
