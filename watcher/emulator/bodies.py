"""Request bodies as they come off the socket: framing headers, streamed reads, draining.

Bodies are read in 1 MiB chunks and never held in memory, so multi-gigabyte uploads are fine.
"""

from __future__ import annotations

from email.message import Message
from io import BufferedIOBase
from typing import Final, Protocol

__all__ = ["CHUNK_SIZE", "BadFraming", "Hasher", "content_length", "discard_body", "is_chunked", "read_body"]

CHUNK_SIZE: Final = 1 << 20
_MAX_LINE: Final = 65537


class BadFraming(Exception):
    """The request's body framing (Content-Length / Transfer-Encoding) cannot be understood."""


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def is_chunked(headers: Message) -> bool:
    """Whether the body uses chunked transfer encoding (the only one understood; others raise BadFraming)."""
    encoding = headers.get("Transfer-Encoding")
    if encoding is None:
        return False
    if encoding.strip().lower() != "chunked":
        raise BadFraming(f"unsupported Transfer-Encoding {encoding!r}")
    return True


def content_length(headers: Message) -> int | None:
    """The Content-Length, None when absent; raises BadFraming when invalid or conflicting."""
    values = headers.get_all("Content-Length") or []
    if not values:
        return None
    if len(set(values)) > 1:
        raise BadFraming("conflicting Content-Length headers")
    value = str(values[0]).strip()
    if not value.isdigit():
        raise BadFraming(f"invalid Content-Length {value!r}")
    return int(value)


def read_body(rfile: BufferedIOBase, length: int, hasher: Hasher | None = None) -> int:
    """Read up to ``length`` body bytes in chunks, feeding ``hasher``; return how many arrived."""
    received = 0
    while received < length:
        try:
            chunk = rfile.read(min(CHUNK_SIZE, length - received))
        except OSError:
            break
        if not chunk:
            break
        if hasher is not None:
            hasher.update(chunk)
        received += len(chunk)
    return received


def _drain_chunked(rfile: BufferedIOBase) -> int | None:
    """Read and drop a chunked body; return its size, None if it was malformed or cut short."""
    total = 0
    try:
        while True:
            line = rfile.readline(_MAX_LINE)
            if not line.endswith(b"\n"):
                return None
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = rfile.readline(_MAX_LINE)
                    if not trailer.endswith(b"\n"):
                        return None
                    if trailer in (b"\r\n", b"\n"):
                        return total
            if read_body(rfile, size) != size:
                return None
            total += size
            if rfile.readline(3) not in (b"\r\n", b"\n"):
                return None
    except (OSError, ValueError):
        return None


def discard_body(rfile: BufferedIOBase, headers: Message) -> int | None:
    """Read and drop whatever body the request has; its size, or None if the connection is unusable."""
    try:
        if is_chunked(headers):
            return _drain_chunked(rfile)
        length = content_length(headers)
    except BadFraming:
        return None
    if not length:
        return 0
    received = read_body(rfile, length)
    return received if received == length else None
