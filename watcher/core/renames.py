"""An image renamed inside its folder: the old name's sidecar goes once the new name has its own.

To the agent a rename is the old name DELETED and the new one FINISHED. The scheduler notes here each
done file that disappears; the upload job of a file with the same inode, size and mtime in the same
folder then names the old path, and the worker removes the old sidecar after writing the new one.
Bounded in size and age: a rename is seen within seconds, never hours later.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the scheduler's side does no I/O: types only
    from watcher.core.signature import FileSignature, RecordId

MAX_REMEMBERED = 4096
MAX_AGE_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class GoneFile:
    """A done file whose name disappeared: where it was, and the sidecar the index knew beside it."""

    path: str
    signature: FileSignature
    record_id: RecordId
    at: float


class RecentlyGone:
    def __init__(self) -> None:
        self._by_inode: OrderedDict[tuple[str, int], GoneFile] = OrderedDict()

    def note(self, root: str, path: str, signature: FileSignature, record_id: RecordId, now: float) -> None:
        key = (root, signature.ino)
        self._by_inode.pop(key, None)
        self._by_inode[key] = GoneFile(path, signature, record_id, now)
        while len(self._by_inode) > MAX_REMEMBERED:
            self._by_inode.popitem(last=False)

    def take(self, root: str, path: str, signature: FileSignature | None, now: float) -> GoneFile | None:
        """The done file that `path` (with `signature`) was renamed from, if it is one."""
        if signature is None:
            return None
        gone = self._by_inode.pop((root, signature.ino), None)
        if (
            gone is None
            or gone.path == path
            or now - gone.at > MAX_AGE_SECONDS
            or (gone.signature.size, gone.signature.mtime_ns) != (signature.size, signature.mtime_ns)
        ):
            return None
        return gone
