"""The emulator's hand-written MP4: its boxes add up at every level, its sample table points at its
media, and its H.264 stream is what the sample entry says (checked by walking the bytes, as a player
would)."""

from __future__ import annotations

import struct

import pytest

from watcher.emulator.mp4 import HEIGHT, WIDTH, _Bits, _nal, huge_mp4_head, make_mp4

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl"}


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, offset of the payload, end) of each box in data[start:end]; fails unless they tile it
    exactly (32-bit, 64-bit and to-the-end sizes)."""
    end = len(data) if end is None else end
    found = []
    at = start
    while at < end:
        assert end - at >= 8, f"a truncated box header at {at}"
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        assert size >= header and at + size <= end, f"box {kind!r} at {at} overruns its parent"
        found.append((kind, at + header, at + size))
        at += size
    assert at == end
    return found


def walk(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Every box of the file, nested ones included, by type (the last of a type wins)."""
    found: dict[bytes, tuple[int, int]] = {}

    def visit(start: int, end: int) -> None:
        for kind, payload, stop in boxes(data, start, end):
            found[kind] = (payload, stop)
            if kind in CONTAINERS:
                visit(payload, stop)

    visit(0, len(data))
    return found


def test_the_mp4_is_small_and_its_top_level_boxes_add_up_to_its_size() -> None:
    data = make_mp4()
    assert 1000 < len(data) < 16_000
    assert [kind for kind, _, _ in boxes(data)] == [b"ftyp", b"moov", b"mdat"]
    assert data[8:12] == b"isom"


def test_every_nested_box_fits_its_parent() -> None:
    found = walk(make_mp4())
    for kind in (b"mvhd", b"tkhd", b"mdhd", b"hdlr", b"vmhd", b"dref", b"stsd", b"stts", b"stsz", b"stco"):
        assert kind in found, kind


def test_the_sample_table_points_at_the_media_data() -> None:
    data = make_mp4()
    found = walk(data)
    stsz, _ = found[b"stsz"]
    _, _, count = struct.unpack_from(">III", data, stsz)
    sizes = struct.unpack_from(f">{count}I", data, stsz + 12)
    stco, _ = found[b"stco"]
    _, entries, offset = struct.unpack_from(">III", data, stco)
    mdat, mdat_end = found[b"mdat"]
    assert (count, entries, offset) == (3, 1, mdat)
    assert sum(sizes) == mdat_end - mdat
    at = offset
    for size in sizes:  # each sample: one length-prefixed IDR NAL unit
        (length,) = struct.unpack_from(">I", data, at)
        assert length == size - 4
        assert data[at + 4] & 0x1F == 5
        at += size


def test_the_sample_entry_is_avc_at_the_frame_size_with_its_parameter_sets() -> None:
    data = make_mp4()
    stsd, _ = walk(data)[b"stsd"]
    assert data[stsd + 12 : stsd + 16] == b"avc1"
    width, height = struct.unpack_from(">HH", data, stsd + 8 + 8 + 24)
    assert (width, height) == (WIDTH, HEIGHT)
    avcc = data.index(b"avcC", stsd) + 4
    assert data[avcc] == 1 and data[avcc + 4] & 3 == 3  # version 1, 4-byte NAL lengths
    assert data[avcc + 5] & 0x1F == 1
    (sps_len,) = struct.unpack_from(">H", data, avcc + 6)
    sps = data[avcc + 8 : avcc + 8 + sps_len]
    assert sps[0] == 0x67 and sps[1] == data[avcc + 1]  # an SPS of the profile avcC declares
    pps_at = avcc + 8 + sps_len
    assert data[pps_at] == 1 and data[pps_at + 3] == 0x68


def test_the_duration_is_three_seconds() -> None:
    data = make_mp4()
    mvhd, _ = walk(data)[b"mvhd"]
    timescale, duration = struct.unpack_from(">II", data, mvhd + 12)
    assert duration / timescale == 3


@pytest.mark.parametrize(
    ("code", "value", "bits"),
    [
        ("ue", 0, "1"),
        ("ue", 1, "010"),
        ("ue", 2, "011"),
        ("ue", 3, "00100"),
        ("ue", 25, "000011010"),
        ("se", 1, "010"),
        ("se", -1, "011"),
        ("se", 2, "00100"),
        ("se", 0, "1"),
    ],
)
def test_exp_golomb_codes(code: str, value: int, bits: str) -> None:
    writer = _Bits()
    getattr(writer, code)(value)
    written = writer.rbsp()
    expected = bits + "1"  # then the stop bit, then zeros to the byte
    expected += "0" * (-len(expected) % 8)
    assert written == int(expected, 2).to_bytes(len(expected) // 8, "big")


def test_emulation_prevention_escapes_every_start_code_like_run() -> None:
    escaped = _nal(0x65, bytes.fromhex("000001 0000000000 03"))
    assert escaped == bytes.fromhex("65 00000301 0000030000030003")


def test_no_nal_unit_of_the_file_holds_a_start_code() -> None:
    data = make_mp4()
    mdat, end = walk(data)[b"mdat"]
    at = mdat
    while at < end:
        (length,) = struct.unpack_from(">I", data, at)
        nal = data[at + 4 : at + 4 + length]
        assert not any(bytes([0, 0, x]) in nal for x in (0, 1, 2)), "a start code inside a NAL unit"
        at += 4 + length


def test_a_huge_head_declares_boxes_that_add_up_to_the_total() -> None:
    total = 10 << 30
    head = huge_mp4_head(total)
    size, kind, large = struct.unpack_from(">I4sQ", head, len(head) - 16)
    assert (size, kind) == (1, b"mdat")
    assert len(head) - 16 + large == total
    with pytest.raises(ValueError, match="at least"):
        huge_mp4_head(10)
