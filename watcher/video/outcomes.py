"""The agent's side of the generator's news (`VideoEvents`): metrics, the on_video and on_attention
hooks, and the done_dir move that waited for the image's video."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watcher.config.load import Config
from watcher.core.folders import Folder
from watcher.core.media import error_record_path, sidecar_path
from watcher.core.video import PROMPT_SUFFIX, VIDEO_RECORD_SUFFIX, VideoSummary
from watcher.disk.mover import Mover
from watcher.hooks.events import HookEvent
from watcher.hooks.runner import HookRunner
from watcher.log_fields import say
from watcher.report.metrics import VIDEO_RESULTS, MetricsSink, VideoResult
from watcher.video.beside import current_sidecar
from watcher.video.client import VideoClient
from watcher.video.generator import Generator
from watcher.video.prompt import end_frame_of

log = logging.getLogger("watcher")


class AgentVideoEvents:
    """Called on the generator's thread; each step here is quick (a hook run is queued, not run)."""

    def __init__(self, metrics: MetricsSink, hooks: HookRunner, mover: Mover) -> None:
        self._metrics = metrics
        self._hooks = hooks
        self._mover = mover
        # The generator's snapshot, once there is one: the in-flight gauge follows each video's start
        # and end at once (the agent's loop refreshes it only when uploads stir it).
        self.summary: Callable[[], VideoSummary] | None = None
        self.results: Counter[str] = Counter()  # each video's end since the start, by its metric result

    def video_submitted(self, folder: Folder, image: str, video_id: str) -> None:
        say(log.info, "%s: video asked for (%s)", image, video_id, file=image, folder=folder.path)
        self._refresh_in_flight()

    def video_final(
        self,
        folder: Folder,
        image: str,
        record: dict[str, Any],
        result: str,
        video_path: str | None,
        seconds: float | None,
    ) -> None:
        account = str(record.get("account") or folder.account or "")
        counted: VideoResult = result if result in VIDEO_RESULTS else "failed"
        self.results[counted] += 1
        self._metrics.video_finished(account or None, counted, seconds)
        moved = self._move_done(folder, image) if folder.done_dir is not None else None
        if video_path is not None:
            # Told where the image is now, as on_upload is: in done_dir once moved.
            self._hooks.submit(HookEvent.for_video(moved or image, folder, video_path, record))
        self._refresh_in_flight()

    def attention(self, account: str, message: str) -> None:
        self._hooks.submit(HookEvent.for_attention(message, account or None))

    def refresh(self, summary: VideoSummary) -> None:
        """The videos in flight per account, for `minimax_watcher_videos_in_flight`."""
        for account, view in summary.accounts.items():
            self._metrics.set_videos_in_flight(account or None, view.in_flight)

    def _refresh_in_flight(self) -> None:
        if self.summary is not None:
            self.refresh(self.summary())  # on the generator's thread: its lock is re-entrant

    def _move_done(self, folder: Folder, image: str) -> str | None:
        """The image waited beside its video record (SPEC §8): now it moves with its sidecar, and its
        video record, prompt file and end frame (with the end frame's records) move along. Its new
        path, or None when it stays."""
        assert folder.done_dir is not None
        sidecar = current_sidecar(folder.path, image)
        if sidecar is None:
            return None  # changed or gone since: the scheduler judges it again
        moved = self._mover.move_with_record(image, folder.path, folder.done_dir, sidecar, done=True)
        if not isinstance(moved, str):
            return None
        self._mover.move_along(folder.path, image, moved, folder.done_dir, companions(folder.path, image))
        return moved


class Videos:
    """The agent's generator and its side of the news, or nothing at all without a `VideoClient` (a
    caller that makes no videos): each method is then a no-op, so the loop never asks."""

    def __init__(
        self,
        client: VideoClient | None,
        config: Config,
        state_dir: Path | None,
        metrics: MetricsSink,
        hooks: HookRunner,
        mover: Mover,
    ) -> None:
        self.events = AgentVideoEvents(metrics, hooks, mover)
        self.generator = (
            Generator(
                state_dir=state_dir,
                client=client,
                events=self.events,
                folders=config.folders,
                settle_seconds=config.settings.settle_seconds,
            )
            if client is not None
            else None
        )
        if self.generator is not None:
            self.events.summary = self.generator.snapshot

    def sink(self) -> Generator | None:
        """Where the pipeline hands images over; None when no videos are made (nor done_dir moves held)."""
        return self.generator

    def start(self) -> None:
        if self.generator is not None:
            self.generator.start()

    def stop(self, timeout: float) -> None:
        if self.generator is not None:
            self.generator.stop(timeout)

    def set_folders(self, folders: Sequence[Folder]) -> None:
        if self.generator is not None:
            self.generator.set_folders(folders)

    def awaits_video(self, image: str) -> bool:
        return self.generator is not None and self.generator.awaits_video(image)

    def settled(self) -> bool:
        return self.generator is None or self.generator.settled()

    def queued(self) -> int:
        """Videos still queued (after `scan`: held by a cap, a pause or a required prompt file)."""
        if self.generator is None:
            return 0
        return sum(folder.queued for folder in self.generator.snapshot().folders.values())

    def not_made(self) -> int:
        """Videos that ended failed, moderated or unknown since the start (`scan` exits 1 for them)."""
        return sum(n for result, n in self.events.results.items() if result != "completed")

    def refresh(self) -> None:
        if self.generator is not None:
            self.events.refresh(self.generator.snapshot())


def companions(root: str, image: str) -> list[str]:
    """The names beside `image` that belong to it: its video record, `<stem>.txt`, and its end frame with
    the end frame's sidecar and error record."""
    name = os.path.basename(image)
    stem = os.path.splitext(name)[0]
    names = [name + VIDEO_RECORD_SUFFIX, stem + PROMPT_SUFFIX]
    end = end_frame_of(root, image)
    if end is not None:
        names += [os.path.basename(p) for p in (end, sidecar_path(end), error_record_path(end))]
    return names
