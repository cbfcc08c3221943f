"""A path → value map grouped by directory, for what the agent knows about files it is not tracking.

Grouping by directory lets a rescan reconcile one directory's listing against what is known in that
directory alone, instead of sweeping every known path of every folder, and stores each directory's
path once instead of once per file: the index of 100,000 uploaded images stays small.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class PathIndex(Generic[V]):
    def __init__(self) -> None:
        self._dirs: dict[str, dict[str, V]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def get(self, path: str) -> V | None:
        directory, name = os.path.split(path)
        names = self._dirs.get(directory)
        return names.get(name) if names is not None else None

    def __setitem__(self, path: str, value: V) -> None:
        directory, name = os.path.split(path)
        names = self._dirs.setdefault(directory, {})
        if name not in names:
            self._count += 1
        names[name] = value

    def pop(self, path: str) -> V | None:
        directory, name = os.path.split(path)
        names = self._dirs.get(directory)
        if names is None or name not in names:
            return None
        self._count -= 1
        value = names.pop(name)
        if not names:
            del self._dirs[directory]
        return value

    def paths(self) -> Iterator[str]:
        for directory, names in self._dirs.items():
            for name in names:
                yield os.path.join(directory, name)

    def keep_only(self, directory: str, present: Collection[str]) -> None:
        """Forget the entries of `directory` whose names are no longer in its listing."""
        names = self._dirs.get(directory)
        if names is None:
            return
        for name in [n for n in names if n not in present]:
            del names[name]
            self._count -= 1
        if not names:
            del self._dirs[directory]

    def forget_under(self, root: str, *, except_dirs: Collection[str] = ()) -> None:
        """Forget every entry in `root` and below, except in the directories listed in `except_dirs`."""
        prefix = root.rstrip("/") + "/"
        for directory in [
            d for d in self._dirs if (d == root or d.startswith(prefix)) and d not in except_dirs
        ]:
            self._count -= len(self._dirs.pop(directory))
