"""Real, small audio and video files for tests: WAV, MP3 and MP4 byte layouts, distinct per seed.

Each is laid out as its format says (headers, chunk and box sizes), so sniffing and the "looks complete"
checks meet what real writers produce; the sound and picture data are not meant to be played.
"""

from __future__ import annotations

import hashlib
import struct


def _filler(seed: int, length: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (length // len(block) + 1))[:length]


def wav_bytes(seed: int = 0, frames: int = 800, declared_extra: int = 0) -> bytes:
    """A PCM WAV (16-bit mono, 8 kHz) of `frames` samples; `declared_extra` makes the RIFF size claim
    more bytes than the file holds, as a writer that has not finished would leave it."""
    samples = _filler(seed, frames * 2)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)  # PCM, mono, rate, byte rate, align, bits
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples))
    body += samples
    return b"RIFF" + struct.pack("<I", len(body) + declared_extra) + body


# MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no CRC, joint stereo, original: 417 bytes a frame.
MP3_FRAME_HEADER = b"\xff\xfb\x90\x64"
MP3_FRAME_BYTES = 144 * 128_000 // 44_100


def mp3_frames(seed: int = 0, count: int = 4) -> bytes:
    """`count` MPEG audio frames: each a header, 32 bytes of zero side information (silence), and the
    seed's bytes where a decoder reads ancillary data."""
    payload = bytes(32) + _filler(seed, MP3_FRAME_BYTES - 4 - 32)
    return (MP3_FRAME_HEADER + payload) * count


def _syncsafe(n: int) -> bytes:
    return bytes(((n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F))


def id3v2_tag(title: str) -> bytes:
    """An ID3v2.4 tag holding one TIT2 (title) frame."""
    text = b"\x03" + title.encode()  # encoding 3: UTF-8
    frame = b"TIT2" + _syncsafe(len(text)) + b"\x00\x00" + text
    return b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame


def mp3_bytes(seed: int = 0, *, id3: bool = True, frames: int = 4) -> bytes:
    """An MP3: an ID3v2 tag naming the seed, then frames; with `id3=False`, bare frames from byte 0."""
    return (id3v2_tag(f"seed {seed}") if id3 else b"") + mp3_frames(seed, frames)


def box(kind: bytes, payload: bytes, *, large: bool = False) -> bytes:
    """One ISO base media box; `large` writes size 1 and the real size in the 64 bits after the type."""
    if large:
        return struct.pack(">I", 1) + kind + struct.pack(">Q", 16 + len(payload)) + payload
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def ftyp_box(major: bytes = b"isom", compatible: tuple[bytes, ...] = (b"isom", b"iso2", b"mp41")) -> bytes:
    return box(b"ftyp", major + struct.pack(">I", 512) + b"".join(compatible))


def moov_box() -> bytes:
    """A movie box holding a version-0 movie header: 1 s at a timescale of 1000, next track id 2."""
    mvhd = struct.pack(">B3xIIII", 0, 0, 0, 1000, 1000)  # version, flags, times, timescale, duration
    mvhd += struct.pack(">IH10x", 0x00010000, 0x0100)  # rate 1.0, volume 1.0, reserved
    mvhd += struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)  # unity matrix
    mvhd += bytes(24) + struct.pack(">I", 2)  # pre-defined, next track id
    return box(b"moov", box(b"mvhd", mvhd))


def mp4_bytes(
    seed: int = 0,
    *,
    length: int = 4096,
    index_first: bool = True,
    large_ftyp: bool = False,
    large_mdat: bool = False,
) -> bytes:
    """An MP4: ftyp, moov and an mdat of `length` bytes. `index_first` puts moov before mdat, as
    `-movflags faststart` does; otherwise after it, as a plain ffmpeg run writes it. `large_ftyp` and
    `large_mdat` give those boxes 64-bit sizes."""
    ftyp = ftyp_box()
    if large_ftyp:
        ftyp = box(b"ftyp", ftyp[8:], large=True)
    mdat = box(b"mdat", _filler(seed, length), large=large_mdat)
    return ftyp + (moov_box() + mdat if index_first else mdat + moov_box())


def pdf_bytes() -> bytes:
    """A tiny, valid one-page PDF."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out
