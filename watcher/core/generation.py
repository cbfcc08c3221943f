"""PLACEHOLDER of engineer loop's module, for this branch only: the `VideoSummary` values of VIDEO.md
that `status` renders. At merge, take loop's `watcher/core/generation.py` whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FolderVideos:
    queued: int = 0
    generating: int = 0
    done: int = 0
    failed: int = 0
    unknown: int = 0
    in_progress: tuple[tuple[str, int], ...] = ()  # (image relative to the folder, percent)


@dataclass(frozen=True)
class AccountVideos:
    today: int
    cap: int
    in_flight: int
    max_jobs: int
    paused_until: float | None = None
    pause_reason: str | None = None


@dataclass(frozen=True)
class VideoSummary:
    folders: Mapping[str, FolderVideos]
    accounts: Mapping[str, AccountVideos]
