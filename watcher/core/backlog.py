"""Sidecars whose upload succeeded but whose folder refused the write (read-only, disk full).

The fileID is never thrown away: the sidecar waits here (and, through the injected `SidecarStore`, in
the state folder across restarts) and a worker tries to write it again every `sidecar_retry` seconds,
as long as the file still holds the bytes it describes. Pure, like the scheduler that owns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from watcher.core.messages import UploadJob

if TYPE_CHECKING:
    from watcher.core.folders import Folder
    from watcher.core.signature import FileSignature


@dataclass(frozen=True, slots=True)
class StoredSidecar:
    sidecar: dict[str, Any]
    signature: FileSignature


class SidecarStore(Protocol):
    """Where waiting sidecars are kept across restarts (`watcher.state.unwritten.UnwrittenSidecars`)."""

    def add(self, path: str, sidecar: dict[str, Any], signature: FileSignature) -> None: ...

    def discard(self, path: str) -> None: ...


class SidecarBacklog:
    def __init__(self, store: SidecarStore, retry_seconds: float) -> None:
        self._store = store
        self._retry_seconds = retry_seconds
        self._entries: dict[str, StoredSidecar] = {}
        self._writing: set[str] = set()  # handed to a worker, not back yet
        self.next_retry = float("inf")

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def get(self, path: str) -> StoredSidecar | None:
        return self._entries.get(path)

    @property
    def writing(self) -> bool:
        return bool(self._writing)

    def restore(self, path: str, stored: StoredSidecar, now: float) -> None:
        """An entry an earlier run saved: try it at once."""
        self._entries[path] = stored
        self.next_retry = now

    def keep(self, path: str, sidecar: dict[str, Any], signature: FileSignature, now: float) -> None:
        self._entries[path] = StoredSidecar(sidecar, signature)
        self._store.add(path, sidecar, signature)
        self.next_retry = min(self.next_retry, now + self._retry_seconds)

    def discard(self, path: str) -> None:
        if self._entries.pop(path, None) is not None:
            self._store.discard(path)

    def forget_unsaved(self, path: str) -> None:
        """Drop an entry from the store too (its folder is no longer watched)."""
        self._entries.pop(path, None)
        self._store.discard(path)

    def due(self, now: float, folder_for: Any, generation: int) -> list[UploadJob]:
        """Jobs that write the waiting sidecars, when their retry time has come."""
        if now < self.next_retry:
            return []
        self.next_retry = float("inf")
        jobs = []
        for path, stored in self._entries.items():
            if path in self._writing:
                continue
            folder: Folder | None = folder_for(path)
            self._writing.add(path)
            account = folder.account if folder is not None else None
            root = folder.path if folder is not None else ""
            jobs.append(
                UploadJob(
                    path,
                    account,
                    stored.signature,
                    1,
                    generation,
                    stored_sidecar=stored.sidecar,
                    root=root,
                    kinds=folder.media if folder is not None else frozenset({"image"}),
                    done_dir=folder.done_dir if folder is not None else None,
                )
            )
        return jobs

    def written(self, path: str) -> StoredSidecar | None:
        """A worker wrote it: the entry it was (None if it was dropped meanwhile)."""
        self._writing.discard(path)
        stored = self._entries.get(path)
        self.discard(path)
        return stored

    def refused_again(self, path: str, now: float) -> None:
        self._writing.discard(path)
        if path in self._entries:
            self.next_retry = min(self.next_retry, now + self._retry_seconds)

    def obsolete(self, path: str) -> bool:
        """The file changed or vanished before its sidecar could be written; True if it was waiting."""
        self._writing.discard(path)
        waiting = path in self._entries
        self.discard(path)
        return waiting
