"""The scheduler's only window on the disk: a protocol, so the scheduler is tested with a fake one.

The real implementation is `watcher.scan.inventory.DiskProbe`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from watcher.core.messages import FoundFile
    from watcher.core.signature import FileSignature


@dataclass(frozen=True, slots=True)
class Observed:
    """A fresh look at a path: its signature, and the wall-clock time of the look (for mtime ages)."""

    signature: FileSignature
    wall_time: float


class FileProbe(Protocol):
    def observe(self, path: str) -> Observed | None:
        """The path's signature without following symlinks; None when gone or not a regular file."""

    def looks_complete(self, path: str, size: int) -> bool:
        """Whether the file's own structure says its writer has finished it."""

    def classify(self, path: str, signature: FileSignature, account: str | None) -> FoundFile:
        """Done, failed or pending, from the sidecar and error record beside the file."""

    def failure_still_holds(self, path: str, code: object) -> bool:
        """Whether a permanent failure still applies (an unreadable file may have become readable)."""
