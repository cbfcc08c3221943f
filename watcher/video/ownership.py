"""One process works a state folder's videos (`videos.lock`, an flock): a `scan` beside the running agent
stands aside and hands the images it uploads over as retry requests, instead of adopting the journal
and taking the running agent's create in flight for a lost one."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from watcher.core.ports import VideoOffer
from watcher.log_fields import say
from watcher.state import retry_requests

log = logging.getLogger("watcher")
LOCK_NAME = "videos.lock"


def take_videos_lock(state_dir: Path) -> int | None:
    """The held lock's descriptor (closing it releases the lock), or None: another process has it, or
    it cannot be opened (said)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(state_dir / LOCK_NAME, flags, 0o600)
    except OSError as exc:
        log.warning("cannot open the videos' lock in %s (%s); no videos are made", state_dir, exc.strerror)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        log.warning(
            "another agent makes the videos of the state folder %s (a `run` beside this `scan`?): the "
            "images this one uploads are handed to it as retry requests",
            state_dir,
        )
        return None
    return fd


def hand_over(state_dir: Path, offer: VideoOffer) -> None:
    """Standing aside: the agent holding the journal takes the image as a request for its video."""
    try:
        retry_requests.ask(state_dir, retry_requests.RetryRequest((offer.image,), False, None))
    except OSError as exc:
        reason = exc.strerror or exc
        say(
            log.warning,
            "%s: no video asked for: %s",
            offer.image,
            reason,
            file=offer.image,
            account=offer.account,
        )
