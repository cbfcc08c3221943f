"""`minimax-watcher emulate`: the emulator alone, in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from watcher.emulator.emulator import Emulator

__all__ = ["serve_forever"]

logger = logging.getLogger("watcher.emulator")


def serve_forever(*, token: str, accounts: Sequence[str], port: int, host: str = "127.0.0.1") -> None:
    """Run the emulator in the foreground until SIGINT (KeyboardInterrupt) or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # no-op if logging is configured
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous: Any = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    try:
        with Emulator(token=token, accounts=accounts, host=host, port=port, poll_interval=0.5) as emulator:
            logger.info("MiniMax API emulator listening on %s", emulator.base_url)
            logger.info(
                "accounts: %s%s",
                ", ".join(emulator.accounts),
                " (the account parameter may be omitted)"
                if len(emulator.accounts) == 1
                else " (the account parameter is required)",
            )
            settings = emulator.settings
            logger.info(
                "videos: completed %s s after videos/create, at most %d at once per account",
                settings["generation_seconds"],
                settings["max_jobs"],
            )
            logger.info(
                "control endpoints: %s/_emulator/{requests,uploads,faults,videos,settings}", emulator.origin
            )
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
            logger.info("emulator stopping")
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
