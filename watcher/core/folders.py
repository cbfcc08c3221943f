"""A watched folder as the rest of the agent sees it, and which folder a path belongs to.

Pure data, shared by the config (which builds folders), the scheduler and the I/O around it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from watcher.core.globs import glob_matches
from watcher.core.media import is_candidate_name
from watcher.core.video import VideoSettings


@dataclass(frozen=True)
class Folder:
    """A watched folder with its path resolved and checked."""

    path: str
    account: str | None
    recursive: bool
    polling: bool
    media: frozenset[str] = frozenset({"image"})
    include: tuple[str, ...] = ("**",)
    exclude: tuple[str, ...] = ()
    settle_seconds: float | None = None  # None: the top-level settle_seconds
    done_dir: str | None = None  # absolute; where a file and its sidecar move once uploaded
    failed_dir: str | None = None  # absolute; where a file that can never upload moves with its record
    generate: VideoSettings | None = None  # image to video (SPEC §8); its output_dir is never uploaded from

    @functools.cached_property
    def move_dirs(self) -> tuple[str, ...]:
        return tuple(d for d in (self.done_dir, self.failed_dir) if d is not None)

    @functools.cached_property
    def set_aside_dirs(self) -> tuple[str, ...]:
        """The folders below which nothing is a candidate: done_dir, failed_dir, the videos' output_dir."""
        output = (self.generate.output_dir,) if self.generate is not None else ()
        return (*self.move_dirs, *output)

    @property
    def account_key(self) -> str:
        """The account as used for grouping and dedupe; "" means the token's only account."""
        return self.account or ""

    def admits(self, path: str) -> bool:
        """Whether a file at `path` (below the folder) is a candidate here: a name of one of its media
        kinds, matched by an `include` glob and by no `exclude` glob (exclude wins)."""
        relative = path[len(self.path.rstrip("/")) + 1 :]
        if not is_candidate_name(relative.rpartition("/")[2], self.media):
            return False
        if self.set_aside_dirs and any(is_inside(path, aside) for aside in self.set_aside_dirs):
            return False  # a done_dir, failed_dir or output_dir inside the folder is never uploaded from
        if self.include != ("**",) and not any(glob_matches(g, relative) for g in self.include):
            return False
        return not any(glob_matches(g, relative) for g in self.exclude)


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


def folder_containing(path: str, folders: Iterable[Folder]) -> Folder | None:
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


@dataclass(frozen=True)
class FolderChanges:
    """What a reconfiguration means for the I/O shell: watches to stop, folders to watch and scan."""

    removed: tuple[Folder, ...]
    added: tuple[Folder, ...]

    @classmethod
    def between(cls, old: Iterable[Folder], new: Iterable[Folder]) -> FolderChanges:
        """A folder whose settings changed is both removed and added."""
        old_by_path = {f.path: f for f in old}
        new_by_path = {f.path: f for f in new}
        removed = tuple(f for p, f in old_by_path.items() if new_by_path.get(p) != f)
        added = tuple(f for p, f in new_by_path.items() if old_by_path.get(p) != f)
        return cls(removed, added)
