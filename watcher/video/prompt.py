"""An image's prompt file (`<stem>.txt`) and end frame (`<stem>.end.<ext>`), read as a dropper left them:
reached without following a symlink, a regular file only, bounded, strict UTF-8 (SPEC §8)."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from watcher.core.media import IMAGE_SUFFIXES
from watcher.core.video import END_FRAME_INFIX, MAX_PROMPT_CHARS, PROMPT_SUFFIX
from watcher.disk.files import OutsideRootError, lstat_beneath, open_beneath

# Every character of a prompt at its longest in UTF-8, and a byte-order mark.
MAX_PROMPT_BYTES = 4 * MAX_PROMPT_CHARS + 4


@dataclass(frozen=True)
class PromptFile:
    text: str | None  # None: there is no prompt file (or only an empty one)
    error: str | None  # why it cannot be used (a FIFO, a link, too long, not UTF-8, unreadable)
    waiting: bool  # it is still being written (not settled): ask again later


ABSENT = PromptFile(None, None, False)
WAITING = PromptFile(None, None, True)


def prompt_path(image: str) -> str:
    folder, name = os.path.split(image)
    return os.path.join(folder, os.path.splitext(name)[0] + PROMPT_SUFFIX)


def read_prompt(root: str, image: str, *, settle_seconds: float, now: float) -> PromptFile:
    """The prompt of `image` (absolute, below the watched folder `root`) from its `<stem>.txt`.

    Whitespace around the text is stripped; a file holding only whitespace counts as no file (the
    folder's prompt applies). Never blocks: a FIFO is opened non-blocking and refused.
    """
    path = prompt_path(image)
    name = os.path.basename(path)
    try:
        fd = open_beneath(root, path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return ABSENT
    except OSError as exc:
        return _refused(name, exc)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return PromptFile(
                None, f"the prompt file {name} is {_kind(st.st_mode)}, not a regular file", False
            )
        if now - st.st_mtime < settle_seconds:
            return WAITING
        if st.st_size > MAX_PROMPT_BYTES:
            return _too_long(name)
        raw = _read_at_most(fd, MAX_PROMPT_BYTES + 1)
    except OSError as exc:
        return _refused(name, exc)
    finally:
        os.close(fd)
    if len(raw) > MAX_PROMPT_BYTES:
        return _too_long(name)  # it grew since the stat
    try:
        text = raw.decode("utf-8-sig").strip()  # strict; a byte-order mark (Notepad writes one) dropped
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        return PromptFile(
            None,
            f"the prompt file {name} is not UTF-8 text (byte 0x{byte:02x} at offset {exc.start}); "
            "save it as UTF-8",
            False,
        )
    if not text:
        return ABSENT
    if len(text) > MAX_PROMPT_CHARS:
        return _too_long(name, len(text))
    return PromptFile(text, None, False)


def end_frame_of(root: str, image: str) -> str | None:
    """The path of `image`'s end frame, `<stem>.end.<ext>` beside it, if one is a regular file there.

    `<ext>` is an image suffix, tried in IMAGE_SUFFIXES' order, lower case then upper case (the media
    rules take an extension in any case; mixed case like `.Png` is not looked for).
    """
    folder, name = os.path.split(image)
    stem = os.path.join(folder, os.path.splitext(name)[0] + END_FRAME_INFIX)
    return _first_regular(root, stem)


def _first_regular(root: str, stem: str) -> str | None:
    for suffix in IMAGE_SUFFIXES:
        for variant in (suffix, suffix.upper()):
            candidate = stem + variant
            try:
                if stat.S_ISREG(lstat_beneath(root, candidate).st_mode):
                    return candidate
            except (OSError, ValueError):
                continue  # absent, below a symlink, a name the filesystem refuses: not there
    return None


def _read_at_most(fd: int, limit: int) -> bytes:
    raw = b""
    while len(raw) < limit:
        chunk = os.read(fd, limit - len(raw))
        if not chunk:
            break
        raw += chunk
    return raw


def _too_long(name: str, chars: int | None = None) -> PromptFile:
    size = f" ({chars} characters)" if chars is not None else ""
    return PromptFile(
        None, f"the prompt file {name} is longer than {MAX_PROMPT_CHARS} characters{size}; shorten it", False
    )


def _refused(name: str, exc: OSError) -> PromptFile:
    if exc.errno == errno.ELOOP:
        why = "is a symlink or lies below one, which is never followed"
    elif isinstance(exc, OutsideRootError):
        why = "is not inside the watched folder"
    elif exc.errno == errno.ENXIO:
        why = "is a socket, not a regular file"
    else:
        why = f"cannot be read: {exc.strerror or exc}"
    return PromptFile(None, f"the prompt file {name} {why}", False)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"
