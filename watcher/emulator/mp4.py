"""A small, valid MP4 written byte by byte: an H.264 stream of I_PCM macroblocks (raw pixels, so no
encoder is needed) in `ftyp` + `moov` + `mdat` boxes that players and box-size checks accept."""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Final

__all__ = ["HEIGHT", "WIDTH", "huge_mp4_head", "make_mp4"]

WIDTH: Final = 32
HEIGHT: Final = 32
FRAME_SECONDS: Final = 1
TIMESCALE: Final = 1000
# (Y, Cb, Cr) of each frame: blue, green, red. No zero byte: PCM samples then never need escaping.
COLOURS: Final = ((41, 240, 110), (145, 54, 34), (81, 90, 240))
_PROFILE, _COMPATIBILITY, _LEVEL = 66, 0xC0, 10  # constrained baseline, level 1.0


class _Bits:
    """An RBSP written MSB first, with H.264's Exp-Golomb codes."""

    def __init__(self) -> None:
        self._value = 0
        self._count = 0

    def u(self, width: int, value: int) -> None:
        self._value = (self._value << width) | value
        self._count += width

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)  # bit_length-1 zeros, then the code itself

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align(self) -> None:
        self.u(-self._count % 8, 0)

    def raw(self, data: bytes) -> None:
        self.u(8 * len(data), int.from_bytes(data, "big"))

    def rbsp(self) -> bytes:
        self.u(1, 1)  # rbsp_stop_one_bit
        self.align()
        return self._value.to_bytes(self._count // 8, "big")


def _nal(header: int, rbsp: bytes) -> bytes:
    """A NAL unit: its header byte, then the RBSP with emulation prevention bytes inserted."""
    out = bytearray([header])
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sps() -> bytes:
    bits = _Bits()
    bits.u(8, _PROFILE)
    bits.u(8, _COMPATIBILITY)
    bits.u(8, _LEVEL)
    bits.ue(0)  # seq_parameter_set_id
    bits.ue(0)  # log2_max_frame_num_minus4
    bits.ue(2)  # pic_order_cnt_type 2: output order is decoding order
    bits.ue(1)  # max_num_ref_frames
    bits.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    bits.ue(WIDTH // 16 - 1)
    bits.ue(HEIGHT // 16 - 1)
    bits.u(1, 1)  # frame_mbs_only_flag
    bits.u(1, 1)  # direct_8x8_inference_flag
    bits.u(1, 0)  # frame_cropping_flag
    bits.u(1, 0)  # vui_parameters_present_flag
    return _nal(0x67, bits.rbsp())


def _pps() -> bytes:
    bits = _Bits()
    bits.ue(0)  # pic_parameter_set_id
    bits.ue(0)  # seq_parameter_set_id
    bits.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    bits.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    bits.ue(0)  # num_slice_groups_minus1
    bits.ue(0)  # num_ref_idx_l0_default_active_minus1
    bits.ue(0)  # num_ref_idx_l1_default_active_minus1
    bits.u(1, 0)  # weighted_pred_flag
    bits.u(2, 0)  # weighted_bipred_idc
    bits.se(0)  # pic_init_qp_minus26
    bits.se(0)  # pic_init_qs_minus26
    bits.se(0)  # chroma_qp_index_offset
    bits.u(1, 1)  # deblocking_filter_control_present_flag
    bits.u(1, 0)  # constrained_intra_pred_flag
    bits.u(1, 0)  # redundant_pic_cnt_present_flag
    return _nal(0x68, bits.rbsp())


def _idr_slice(index: int, colour: tuple[int, int, int]) -> bytes:
    """One whole picture as an IDR slice of I_PCM macroblocks, each a shade of `colour`."""
    bits = _Bits()
    bits.ue(0)  # first_mb_in_slice
    bits.ue(7)  # slice_type: I, and every slice of the picture is I
    bits.ue(0)  # pic_parameter_set_id
    bits.u(4, 0)  # frame_num (log2_max_frame_num = 4)
    bits.ue(index % 2)  # idr_pic_id: two IDR pictures in a row must differ
    bits.u(1, 0)  # no_output_of_prior_pics_flag
    bits.u(1, 0)  # long_term_reference_flag
    bits.se(0)  # slice_qp_delta
    bits.ue(1)  # disable_deblocking_filter_idc: off (PCM needs none)
    luma, cb, cr = colour
    for mb in range((WIDTH // 16) * (HEIGHT // 16)):
        bits.ue(25)  # mb_type I_PCM
        bits.align()  # pcm_alignment_zero_bits
        shade = min(235, luma + 12 * mb)
        bits.raw(bytes([shade]) * 256 + bytes([cb]) * 64 + bytes([cr]) * 64)
    return _nal(0x65, bits.rbsp())


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX: Final = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _moov(samples: Sequence[int], mdat_offset: int, sps: bytes, pps: bytes) -> bytes:
    duration = len(samples) * FRAME_SECONDS * TIMESCALE
    mvhd = _full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, TIMESCALE, duration),
        struct.pack(">IH10x", 0x10000, 0x100),  # rate 1.0, volume 1.0, reserved
        _MATRIX, bytes(24),  # pre_defined
        struct.pack(">I", 2),  # next_track_ID
    )  # fmt: skip
    tkhd = _full_box(
        b"tkhd", 0, 3,  # enabled, in movie
        struct.pack(">IIII", 0, 0, 1, 0),  # times, track_ID 1, reserved
        struct.pack(">I8xhhh2x", duration, 0, 0, 0),  # layer, alternate_group, volume
        _MATRIX, struct.pack(">II", WIDTH << 16, HEIGHT << 16),
    )  # fmt: skip
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, duration, 0x55C4, 0))  # und
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"vide"), b"VideoHandler\0")
    avcc = _box(
        b"avcC",
        bytes([1, _PROFILE, _COMPATIBILITY, _LEVEL, 0xFF, 0xE1]),  # 4-byte NAL lengths, one SPS
        struct.pack(">H", len(sps)), sps, b"\x01", struct.pack(">H", len(pps)), pps,
    )  # fmt: skip
    avc1 = _box(
        b"avc1",
        struct.pack(">6xH16x", 1),  # data_reference_index 1, pre_defined and reserved
        struct.pack(">HHIIIH", WIDTH, HEIGHT, 0x480000, 0x480000, 0, 1),  # 72 dpi, one frame per sample
        bytes([7]) + b"emulate".ljust(31, b"\0"),  # compressorname
        struct.pack(">Hh", 0x18, -1), avcc,
    )  # fmt: skip
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, len(samples), FRAME_SECONDS * TIMESCALE)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(samples), 1)),
        _full_box(b"stsz", 0, 0, struct.pack(f">II{len(samples)}I", 0, len(samples), *samples)),
        _full_box(b"stco", 0, 0, struct.pack(">II", 1, mdat_offset)),
    )
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    minf = _box(b"minf", _full_box(b"vmhd", 0, 1, bytes(8)), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    return _box(b"moov", mvhd, trak)


_FTYP: Final = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")


@functools.cache
def make_mp4() -> bytes:
    """A 3-second, 32x32 H.264 MP4 of a few KB: `ftyp`, then `moov`, then `mdat`."""
    sps, pps = _sps(), _pps()
    samples = [_idr_slice(i, colour) for i, colour in enumerate(COLOURS)]
    framed = [struct.pack(">I", len(s)) + s for s in samples]  # avcC: 4-byte lengths
    sizes = [len(f) for f in framed]
    # The moov's size does not depend on the offset it holds, so one trial build gives it.
    offset = len(_FTYP) + len(_moov(sizes, 0, sps, pps)) + 8
    return _FTYP + _moov(sizes, offset, sps, pps) + _box(b"mdat", *framed)


def huge_mp4_head(total: int) -> bytes:
    """The first bytes of a `total`-byte file whose boxes add up: `ftyp`, then a 64-bit `mdat` over
    the rest, which the caller streams as zeros."""
    if total < len(_FTYP) + 16:
        raise ValueError(f"a huge MP4 needs at least {len(_FTYP) + 16} bytes, got {total}")
    return _FTYP + struct.pack(">I4sQ", 1, b"mdat", total - len(_FTYP))
