"""Image bytes for the workloads, and staging them outside the watched folders.

A PNG signature, an IHDR chunk, one IDAT chunk whose first 32 bytes are unique per file, and the IEND
chunk at the very end (the agent's "looks complete" check). Not decodable, but exactly what the agent
sniffs.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

from .context import Context

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB\x60\x82"
_IHDR_DATA = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
IHDR_CHUNK = (
    struct.pack(">I", 13) + b"IHDR" + _IHDR_DATA + struct.pack(">I", zlib.crc32(b"IHDR" + _IHDR_DATA))
)
PNG_OVERHEAD = len(PNG_SIGNATURE) + len(IHDR_CHUNK) + 12 + len(IEND_CHUNK)  # 12: IDAT length+type+crc
POOL = os.urandom(1 << 20)  # 1 MiB of random bytes, repeated for big files
RUN_TAG = os.urandom(8).hex()  # so two runs never send the same bytes


def _tag(seed: str) -> bytes:
    return hashlib.sha256(f"{RUN_TAG}:{seed}".encode()).digest()


def png_bytes(seed: str, size: int) -> bytes:
    """`size` bytes (at most 1 MiB + overhead) of PNG-looking data, distinct per seed."""
    data_len = size - PNG_OVERHEAD
    if data_len < 32 or data_len - 32 > len(POOL):
        raise ValueError(f"unsupported size {size}")
    data = _tag(seed) + POOL[: data_len - 32]
    return (
        PNG_SIGNATURE + IHDR_CHUNK + struct.pack(">I", data_len) + b"IDAT" + data + b"\0\0\0\0" + IEND_CHUNK
    )


def write_big_png(path: Path, size: int) -> None:
    """A `size`-byte PNG-looking file made of the random 1 MiB block repeated (fast to produce)."""
    data_len = size - PNG_OVERHEAD
    with open(path, "wb") as out:
        out.write(PNG_SIGNATURE + IHDR_CHUNK + struct.pack(">I", data_len & 0xFFFFFFFF) + b"IDAT")
        out.write(_tag(path.name))
        left = data_len - 32
        while left > 0:
            block = POOL[: min(len(POOL), left)]
            out.write(block)
            left -= len(block)
        out.write(b"\0\0\0\0" + IEND_CHUNK)


def stage_files(ctx: Context, name: str, count: int, size: int) -> tuple[Path, list[str]]:
    """`count` images of `size` bytes in a fresh folder `name`, outside anything the agent watches."""
    stage = ctx.fresh_dir(name)
    names = []
    for i in range(count):
        file_name = f"{name}-{i:05d}.png"
        (stage / file_name).write_bytes(png_bytes(f"{name}-{i}", size))
        names.append(file_name)
    return stage, names


def move_all(names: list[str], src: Path, dst: Path) -> None:
    for file_name in names:
        os.rename(src / file_name, dst / file_name)
