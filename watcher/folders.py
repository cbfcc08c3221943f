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


def in_hidden_folder(path: str, root: str) -> bool:
    """Whether `path` lies in a dot-folder below `root` (`.cache/`, `.git/`, a sync tool's `.stfolder/`).

    The one rule, applied by the scanner, the observers and the status view alike: dot-folders are
    never looked into, as dot-files are never candidates.
    """
    relative = path[len(root.rstrip("/")) + 1 :]
    return "/." in "/" + relative.rpartition("/")[0]


def folder_of(path: str, folders: Iterable[Folder]) -> Folder | None:
    """The folder `path` belongs to: in the folder itself, or below it (not in a dot-folder) for a
    recursive one."""
    for folder in folders:
        if is_inside(path, folder.path):
            if path.rfind("/") == len(folder.path.rstrip("/")):
                return folder
            if folder.recursive and not in_hidden_folder(path, folder.path):
                return folder
            return None
    return None
