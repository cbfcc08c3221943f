"""Real, small image files for tests: valid PNG, JPEG and WebP bytes, distinct per seed."""

from __future__ import annotations

import hashlib
import struct
import zlib


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC over type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(seed: int = 0, size: int = 64) -> bytes:
    """A valid PNG whose pixels depend on `seed`; roughly `size` pixels square."""
    rows = []
    for y in range(size):
        row = bytes(((x * 7 + y * 13 + seed * 31) & 0xFF) for x in range(size * 3))
        rows.append(b"\x00" + row)
    raw = b"".join(rows)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    # The tEXt chunk makes every seed's bytes distinct, so dedupe never merges two test images.
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"tEXt", b"seed\x00" + str(seed).encode())
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def grey_png(width: int = 2, height: int = 2) -> bytes:
    """A minimal 8-bit greyscale PNG: only IHDR, IDAT and IEND; every row holds the bytes 0, 1, ... width-1."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + bytes(range(width)) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def jpeg_bytes(seed: int = 0, length: int = 4096) -> bytes:
    """Bytes that start with a JPEG SOI/APP0 marker and end with EOI (enough for sniffing and upload)."""
    body = hashlib.sha256(str(seed).encode()).digest() * (length // 32 + 1)
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + body[:length] + b"\xff\xd9"


def webp_bytes(seed: int = 0, length: int = 2048, declared_extra: int = 0) -> bytes:
    """RIFF/WEBP with a VP8 chunk; `declared_extra` makes the RIFF size claim more bytes than the file holds."""
    payload = (
        b"VP8 " + struct.pack("<I", length) + hashlib.sha256(str(seed).encode()).digest() * (length // 32)
    )
    payload = payload[: 8 + length]
    body = b"WEBP" + payload
    return b"RIFF" + struct.pack("<I", len(body) + declared_extra) + body


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
