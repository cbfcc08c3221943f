"""The progress line `minimax-watcher upload` draws on a terminal while a file streams."""

from __future__ import annotations

import sys
import time

from watcher.core.wording import size


class ProgressBar:
    """One line on stderr, redrawn at most ten times a second: bar, percentage, sizes, rate."""

    WIDTH = 30

    def __init__(self, name: str, total: int = 0) -> None:
        self.name = name
        self.total = max(1, total)  # to divide by; `size` as said
        self.size = total
        self.started = time.monotonic()
        self.last_draw = 0.0

    def start(self, size: int) -> None:
        """The file is open: `size` bytes to send."""
        self.total, self.size = max(1, size), size

    def __call__(self, sent: int) -> None:
        now = time.monotonic()
        if now - self.last_draw < 0.1 and sent < self.total:
            return
        self.last_draw = now
        done = min(1.0, sent / self.total)
        bar = "#" * int(done * self.WIDTH)
        rate = sent / max(1e-6, now - self.started)
        # Units change as it goes (KB to MB): erase what a longer line before left (ESC [K).
        sys.stderr.write(
            f"\r{self.name} [{bar:<{self.WIDTH}}] {done:4.0%} {size(sent)} of {size(self.size)} "
            f"{size(rate)}/s\x1b[K"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        if self.last_draw:
            sys.stderr.write("\n")
            sys.stderr.flush()
