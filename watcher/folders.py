"""A watched folder as the rest of the agent sees it, and which folder a path belongs to.

Pure data, shared by the config (which builds folders), the scheduler and the I/O around it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Folder:
    """A watched folder with its path resolved and checked."""

    path: str
    account: str | None
    recursive: bool
    polling: bool

    @property
    def account_key(self) -> str:
        """The account as used for grouping and dedupe; "" means the token's only account."""
        return self.account or ""


def is_inside(child: str, parent: str) -> bool:
    """Whether `child` lies strictly below `parent` (both absolute, normalised)."""
    return child.startswith(parent.rstrip("/") + "/")


def folder_of(path: str, folders: Iterable[Folder]) -> Folder | None:
    """The folder `path` belongs to: it lies in the folder itself, or below it for a recursive one."""
    for folder in folders:
        if is_inside(path, folder.path):
            if folder.recursive or path.rfind("/") == len(folder.path.rstrip("/")):
                return folder
            return None
    return None
