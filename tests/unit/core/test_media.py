"""Unit tests for `watcher.core.media`: candidate names, content sniffing, completeness, safe opening."""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
import struct
import subprocess
import wave
import zlib
from pathlib import Path

import pytest

from tests.helpers.images import grey_png, jpeg_bytes, png_bytes, webp_bytes
from tests.helpers.media import (
    MP3_FRAME_HEADER,
    box,
    ftyp_box,
    moov_box,
    mp3_bytes,
    mp3_frames,
    mp4_bytes,
    pdf_bytes,
    wav_bytes,
)
from watcher.core.media import (
    ALL_KINDS,
    IMAGES_ONLY,
    MAX_TOP_LEVEL_BOXES,
    MAX_UPLOAD_BYTES,
    MP3,
    MP4,
    PNG_IEND_CHUNK,
    SNIFF_BYTES,
    WAV,
    ReadAt,
    error_record_path,
    identify,
    is_candidate_name,
    looks_complete,
    refusal,
    sidecar_path,
    sniff_content_type,
)
from watcher.core.signature import is_regular_file_mode
from watcher.disk.files import NotRegularFileError, looks_complete_on_disk, open_regular_file


def reader(data: bytes, reads: list[tuple[int, int]] | None = None) -> ReadAt:
    """`read_at` over bytes in memory; `reads` collects each (offset, length) asked for."""

    def read_at(offset: int, length: int) -> bytes:
        if reads is not None:
            reads.append((offset, length))
        return data[offset : offset + length]

    return read_at


def complete(data: bytes, size: int | None = None) -> bool:
    """`looks_complete` of a file holding `data` (and, when given, said to be `size` bytes long)."""
    return looks_complete(reader(data), len(data) if size is None else size)


def head(data: bytes) -> bytes:
    return data[:SNIFF_BYTES]


def test_png_helper_is_a_real_png() -> None:
    png = grey_png()
    assert png.endswith(PNG_IEND_CHUNK)
    # Every chunk's CRC checks out, and IDAT decompresses to the rows we wrote.
    pos, chunks = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks.append((kind, data))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert zlib.decompress(chunks[1][1]) == b"\x00\x00\x01" * 2


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "cat.png",
        "CAT.PNG",
        "photo.Jpg",
        "photo.jpg",
        "scan.JPEG",
        "scan.jpeg",
        "pic.webp",
        "pic.WebP",
        "my photo (1).png",
        "archive.tmp.png",  # only the end of the name counts
    ],
)
def test_candidate_names(name: str) -> None:
    assert is_candidate_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".png",
        ".cat.png",
        ".cat.png.swp",
        "cat.png~",
        "cat.png.tmp",
        "cat.png.TMP",
        "cat.png.part",
        "cat.png.partial",
        "cat.png.crdownload",
        "cat.png.download",
        "cat.png.swp",
        "cat.png.json",
        "cat.png.error.json",
        "notes.json",
        "cat.gif",
        "cat.tiff",
        "cat",
        "png",
        "catpng",
    ],
)
def test_non_candidate_names(name: str) -> None:
    assert not is_candidate_name(name)


def test_record_paths_sit_beside_the_image() -> None:
    assert sidecar_path("/d/cat.png") == "/d/cat.png.json"
    assert error_record_path("/d/cat.png") == "/d/cat.png.error.json"
    # A sidecar is never itself a candidate.
    assert not is_candidate_name(os.path.basename(sidecar_path("/d/cat.png")))
    assert not is_candidate_name(os.path.basename(error_record_path("/d/cat.png")))


# --- sniffing ------------------------------------------------------------------------------------


def test_sniff_png() -> None:
    assert sniff_content_type(png_bytes()[:SNIFF_BYTES]) == "image/png"


def test_sniff_jpeg() -> None:
    assert sniff_content_type(jpeg_bytes()[:SNIFF_BYTES]) == "image/jpeg"


def test_sniff_webp_is_sent_as_jpeg() -> None:
    assert sniff_content_type(webp_bytes()[:SNIFF_BYTES]) == "image/jpeg"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello, world",
        b"GIF89a\x01\x00\x01\x00\x00\x00",
        b"GIF87a\x01\x00\x01\x00\x00\x00",
        b"\x89PNG",  # a truncated signature
        b"\x89PNG\r\n\x1a",
        b"\xff\xd8",  # SOI without the marker byte after it
        b"RIFF\x24\x00\x00\x00WAVE",  # RIFF, but audio: not for a folder of images
        b"RIFF\x24\x00\x00\x00WEB",  # too short to say
        b"BM6\x00\x00\x00\x00\x00\x00\x006\x00",  # BMP
    ],
)
def test_sniff_rejects_everything_else(head: bytes) -> None:
    assert sniff_content_type(head) is None


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (mp3_bytes(), "audio/mpeg"),
        (mp3_bytes(id3=False), "audio/mpeg"),
        (wav_bytes(), "audio/wav"),
        (mp4_bytes(), "video/mp4"),
        (mp4_bytes(large_ftyp=True), "video/mp4"),
        (ftyp_box(b"qt  ", (b"qt  ",)) + moov_box(), "video/mp4"),  # QuickTime: the same boxes
    ],
)
def test_sniff_audio_and_video_when_the_folder_takes_their_kind(data: bytes, content_type: str) -> None:
    assert sniff_content_type(head(data), ALL_KINDS) == content_type
    kind = content_type.partition("/")[0]
    assert sniff_content_type(head(data), {kind}) == content_type
    # The same bytes for a folder without that kind: not uploaded, whatever the file is named.
    assert sniff_content_type(head(data), ALL_KINDS - {kind}) is None
    assert sniff_content_type(head(data)) is None  # the default is images only


def test_images_are_still_images_in_a_folder_of_every_kind() -> None:
    assert sniff_content_type(head(png_bytes()), ALL_KINDS) == "image/png"
    assert sniff_content_type(head(jpeg_bytes()), ALL_KINDS) == "image/jpeg"
    assert sniff_content_type(head(webp_bytes()), ALL_KINDS) == "image/jpeg"
    assert sniff_content_type(head(png_bytes()), {"audio", "video"}) is None


def test_the_builders_make_files_other_tools_recognise() -> None:
    with wave.open(io.BytesIO(wav_bytes(frames=123))) as parsed:
        assert (parsed.getnchannels(), parsed.getframerate(), parsed.getnframes()) == (1, 8000, 123)
    if shutil.which("file") is None:
        pytest.skip("file(1) is not installed")
    for data, expected in [
        (mp3_bytes(), "layer III"),
        (mp3_bytes(id3=False), "layer III"),
        (wav_bytes(), "WAVE audio"),
        (mp4_bytes(), "ISO Media"),
        (pdf_bytes(), "PDF document"),
    ]:
        said = subprocess.run(["file", "-b", "-"], input=data, capture_output=True, check=True).stdout
        assert expected in said.decode(), said


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (b"\xff\xfb\x90\x64", "MPEG-1 layer III, 128 kbit/s, 44.1 kHz"),
        (b"\xff\xf3\x40\xc4", "MPEG-2 layer III, 32 kbit/s, 22.05 kHz, mono"),
        (b"\xff\xe3\x18\xc4", "MPEG-2.5 layer III, 8 kbit/s, 11.025 kHz"),
        (b"\xff\xfa\x90\x64", "with a CRC"),
    ],
)
def test_a_bare_mp3_frame_header_is_mp3(header: bytes, why: str) -> None:
    assert identify(header + bytes(28)) is MP3, why


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (b"\xff\xeb\x90\x64", "version 01 is reserved"),
        (b"\xff\xf9\x90\x64", "layer 00 is reserved"),
        (b"\xff\xfd\x90\x64", "layer II: MPEG audio, but not MP3"),
        (b"\xff\xff\x90\x64", "layer I"),
        (b"\xff\xfb\xf0\x64", "bitrate index 1111 is invalid"),
        (b"\xff\xfb\x00\x64", "free-format bitrate"),
        (b"\xff\xfb\x9c\x64", "sample rate index 11 is reserved"),
        (b"\xff\xfb\x90\x66", "emphasis 10 is reserved"),
        (b"\xff\xdb\x90\x64", "only 10 sync bits"),
        (b"\xfe\xfb\x90\x64", "no sync"),
        (b"\xff\xfb\x90", "too short to say"),
    ],
)
def test_a_frame_sync_with_a_bad_field_is_not_mp3(header: bytes, why: str) -> None:
    assert identify(header + (bytes(28) if len(header) == 4 else b"")) is None, why


def test_random_bytes_after_a_frame_sync_seldom_pass_for_mp3() -> None:
    # 11 sync bits alone would take every one of these; the header fields turn away about nine in ten.
    rng = random.Random(7)
    samples = [
        bytes([0xFF, 0xE0 | rng.getrandbits(5), rng.getrandbits(8), rng.getrandbits(8)])
        for _ in range(20_000)
    ]
    passed = sum(identify(sample) is MP3 for sample in samples)
    assert 0 < passed < len(samples) * 0.12


@pytest.mark.parametrize(
    ("tag", "is_mp3"),
    [
        (b"ID3\x04\x00\x00\x00\x00\x01\x7f", True),
        (b"ID3\x03\x00\x00\x00\x00\x00\x00", True),
        (b"ID3\x02\x00\x00\x00\x00\x00\x00", True),
        (b"ID3\x05\x00\x00\x00\x00\x00\x00", False),  # no such version
        (b"ID3\x04\xff\x00\x00\x00\x00\x00", False),  # revision 0xFF is never used
        (b"ID3\x04\x00\x00\x00\x00\x80\x00", False),  # a size byte with its top bit set
        (b"ID3\x04\x00\x00\x00", False),  # too short to say
        (b"ID3: notes on the third draft", False),
    ],
)
def test_an_id3v2_header_is_mp3(tag: bytes, is_mp3: bool) -> None:
    assert (identify(tag) is MP3) is is_mp3


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "RIFF size WAVE"),
        (wav_bytes(declared_extra=1000), "a WAV still being written is a WAV all the same"),
    ],
)
def test_a_riff_wave_header_is_wav(data: bytes, why: str) -> None:
    assert identify(head(data)) is WAV, why


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (ftyp_box(b"heic", (b"mif1", b"heic")) + box(b"meta", b""), "an iPhone photo"),
        (ftyp_box(b"avif", (b"avif", b"mif1")) + box(b"meta", b""), "an AVIF image"),
        (box(b"ftyp", b"isom"), "an ftyp box too small for its minor version"),
        (box(b"ftyp", b"isom\x00\x00\x02\x00mp4"), "compatible brands that are not whole"),
        (box(b"ftyp", b"\x00\x01\x02\x03\x00\x00\x02\x00"), "a major brand that is not text"),
        (box(b"free", b"isom\x00\x00\x02\x00") + moov_box(), "a first box other than ftyp"),
        (b"\x00\x00\x10\x00ftypisom\x00\x00\x02\x00", "an ftyp box claiming 4 KiB"),
        (b"\x00\x00\x00\x01ftyp\x00\x00\x00", "a 64-bit size cut short"),
    ],
)
def test_what_is_not_mp4(data: bytes, what: str) -> None:
    assert identify(head(data)) is not MP4, what


def test_an_mp4_is_recognised_by_its_ftyp_box_with_either_size_form() -> None:
    assert identify(head(mp4_bytes())) is MP4
    large = mp4_bytes(large_ftyp=True)
    assert large[:4] == b"\x00\x00\x00\x01" and large[4:8] == b"ftyp"
    assert identify(head(large)) is MP4


# --- refusals ------------------------------------------------------------------------------------


def test_a_pdf_named_mp3_in_a_folder_of_images_and_audio_is_an_unsupported_type() -> None:
    refused = refusal(head(pdf_bytes()), {"image", "audio"}, "x.mp3")
    assert refused.code == "unsupported_type"
    assert refused.error == "not a PNG, JPEG, WebP, MP3 or WAV file: it is a PDF document"


def test_a_non_image_named_like_an_image_is_not_an_image() -> None:
    # In a folder of images only, the text is the one users and scripts already know, plus what it is.
    assert refusal(head(pdf_bytes()), IMAGES_ONLY, "scan.png") == (
        "not a PNG, JPEG or WebP image: it is a PDF document",
        "not_an_image",
    )
    assert refusal(b"hello\n", IMAGES_ONLY, "notes.png") == ("not a PNG, JPEG or WebP image", "not_an_image")
    # An image name in a folder that also takes audio: still not an image, in that folder's words.
    assert refusal(b"hello\n", {"image", "audio"}, "notes.png") == (
        "not a PNG, JPEG, WebP, MP3 or WAV file",
        "not_an_image",
    )


def test_a_file_of_a_kind_the_folder_does_not_take_says_which_kind_to_add() -> None:
    refused = refusal(head(mp4_bytes()), IMAGES_ONLY, "clip.png")
    assert refused.code == "not_an_image"
    assert refused.error == (
        "not a PNG, JPEG or WebP image: it is an MP4 video, and video is not in this folder's media"
    )
    refused = refusal(head(mp3_bytes()), {"video"}, "song.mp4")
    assert refused == (
        "not an MP4 file: it is MP3 audio, and audio is not in this folder's media",
        "unsupported_type",
    )
    assert refusal(head(wav_bytes()), {"image", "video"}, "take.mp4").error == (
        "not a PNG, JPEG, WebP or MP4 file: it is WAV audio, and audio is not in this folder's media"
    )


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"GIF89a\x01\x00\x01\x00\x00\x00", "a GIF image"),
        (b"II*\x00\x08\x00\x00\x00", "a TIFF image"),
        (b"BM6\x00\x00\x00\x00\x00\x00\x006\x00", "a BMP image"),
        (b"PK\x03\x04\x14\x00", "a ZIP archive"),
        (b"OggS\x00\x02", "an Ogg file"),
        (b"fLaC\x00\x00\x00\x22", "FLAC audio"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "a Matroska or WebM video"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", "an AVI video"),
        (ftyp_box(b"heic", (b"mif1", b"heic")), "a HEIF or AVIF image"),
    ],
)
def test_a_refusal_names_common_formats(data: bytes, what: str) -> None:
    refused = refusal(head(data), ALL_KINDS, "upload.bin")
    assert refused.code == "unsupported_type"
    assert refused.error.startswith("not a PNG, JPEG, WebP, MP3, WAV or MP4 file: it is " + what)


# --- completeness --------------------------------------------------------------------------------


def test_png_with_iend_looks_complete() -> None:
    assert complete(png_bytes())


def test_png_without_iend_does_not_look_complete() -> None:
    truncated = png_bytes()[: -len(PNG_IEND_CHUNK)]
    assert not complete(truncated)
    half = png_bytes()[: len(png_bytes()) // 2]
    assert not complete(half)


def test_jpeg_with_and_without_eoi() -> None:
    assert complete(jpeg_bytes())
    assert not complete(jpeg_bytes()[:-2])
    assert not complete(jpeg_bytes()[:-1])


def test_webp_riff_size_must_match_the_file_size() -> None:
    webp = webp_bytes()
    assert complete(webp)
    # The header promises more than the file holds: still being written.
    assert not complete(webp_bytes(declared_extra=100))
    # Same header, but the file is shorter than its header says.
    assert not complete(webp[:-1])


def test_unknown_formats_never_look_complete() -> None:
    gif = b"GIF89a" + b"\x00" * 20 + b"\x3b"
    assert not complete(gif)
    assert not complete(pdf_bytes())


def test_a_complete_wav_looks_complete_and_a_growing_one_does_not() -> None:
    wav = wav_bytes()
    assert complete(wav)
    assert not complete(wav[:-1])  # cut short of what its RIFF header states
    assert not complete(wav_bytes(declared_extra=2))  # a header written ahead of the samples
    # A writer that leaves the RIFF size at 0 until it closes the file.
    assert not complete(wav[:4] + b"\x00\x00\x00\x00" + wav[8:])


@pytest.mark.parametrize(
    "mp4",
    [
        mp4_bytes(),
        mp4_bytes(index_first=False),
        mp4_bytes(large_ftyp=True),
        mp4_bytes(index_first=False, large_mdat=True),
        mp4_bytes() + box(b"free", bytes(100)) + box(b"udta", b""),
    ],
)
def test_an_mp4_whose_boxes_fill_the_file_and_hold_moov_looks_complete(mp4: bytes) -> None:
    assert complete(mp4)


def test_an_mp4_being_written_does_not_look_complete() -> None:
    whole = mp4_bytes(index_first=False)
    # Cut anywhere: inside mdat, just before moov, inside moov, one byte short.
    for end in (100, len(whole) - len(moov_box()), len(whole) - 20, len(whole) - 1):
        assert not complete(whole[:end]), end
    # Every box whole, but no index yet: ffmpeg writes moov last.
    assert not complete(ftyp_box() + box(b"mdat", bytes(500)))
    # An mdat of size 0, "up to the end of the file": the writer has not set it yet.
    assert not complete(ftyp_box() + moov_box() + b"\x00\x00\x00\x00mdat" + bytes(500))
    # A 64-bit mdat still holding a placeholder size.
    placeholder = ftyp_box() + b"\x00\x00\x00\x01mdat" + bytes(8) + bytes(500) + moov_box()
    assert not complete(placeholder)
    # Trailing bytes past the last box (an append in progress).
    assert not complete(whole + b"\x00\x00")
    # A box whose type is not text: a size read from the middle of the data.
    assert not complete(ftyp_box() + moov_box() + struct.pack(">I", 12) + b"\x00\x01\x02\x03" + bytes(4))


def test_walking_the_boxes_is_bounded() -> None:
    # A file of a thousand tiny boxes: the walk gives up (the file waits the full settle time) after
    # a few dozen small reads instead of reading every box.
    many = ftyp_box() + moov_box() + box(b"free", b"") * 1000
    reads: list[tuple[int, int]] = []
    assert looks_complete(reader(many, reads), len(many)) is False
    assert len(reads) <= MAX_TOP_LEVEL_BOXES + 2
    assert all(length <= SNIFF_BYTES for _, length in reads)
    # A few more boxes than usual are still walked to the end.
    some = ftyp_box() + moov_box() + box(b"free", b"") * 20 + box(b"mdat", bytes(10))
    assert complete(some)


def test_an_mp3_always_waits_the_full_settle_time() -> None:
    assert not complete(mp3_bytes())
    assert not complete(mp3_bytes(id3=False))
    assert not complete(mp3_frames(count=1))
    assert identify(MP3_FRAME_HEADER) is MP3


def test_reads_stay_within_the_file() -> None:
    data = mp4_bytes(index_first=False)
    reads: list[tuple[int, int]] = []
    assert looks_complete(reader(data, reads), len(data))
    assert all(0 <= offset < len(data) for offset, _ in reads)


# --- opening safely ------------------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_open_regular_file_returns_a_blocking_readable_fd(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(png_bytes())
    fd = open_regular_file(str(path))
    try:
        assert os.get_blocking(fd)
        assert os.read(fd, 8) == b"\x89PNG\r\n\x1a\n"
    finally:
        os.close(fd)


@pytest.mark.timeout(5)
def test_open_regular_file_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    before = _open_fds()
    with pytest.raises(NotRegularFileError):
        open_regular_file(str(fifo))
    assert _open_fds() == before  # the descriptor opened to look was closed again


def test_open_regular_file_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.png"
    target.write_bytes(png_bytes())
    link = tmp_path / "link.png"
    link.symlink_to(target)
    with pytest.raises(OSError) as info:
        open_regular_file(str(link))
    assert info.value.errno == errno.ELOOP


def test_open_regular_file_refuses_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    before = _open_fds()
    with pytest.raises(OSError) as info:
        open_regular_file(str(folder))
    assert isinstance(info.value, NotRegularFileError) or info.value.errno == errno.EISDIR
    assert _open_fds() == before


def test_open_regular_file_missing_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_regular_file(str(tmp_path / "gone.png"))


def test_is_regular_file_mode_on_real_entries(tmp_path: Path) -> None:
    regular = tmp_path / "a.png"
    regular.write_bytes(b"x")
    link = tmp_path / "b.png"
    link.symlink_to(regular)
    fifo = tmp_path / "c.png"
    os.mkfifo(fifo)
    folder = tmp_path / "d.png"
    folder.mkdir()
    assert is_regular_file_mode(os.lstat(regular).st_mode)
    assert not is_regular_file_mode(os.lstat(link).st_mode)
    assert not is_regular_file_mode(os.lstat(fifo).st_mode)
    assert not is_regular_file_mode(os.lstat(folder).st_mode)


def test_looks_complete_on_disk_reads_a_real_file(tmp_path: Path) -> None:
    for name, data in [("cat.png", png_bytes(size=4)), ("clip.mp4", mp4_bytes(index_first=False))]:
        path = tmp_path / name
        path.write_bytes(data)
        assert looks_complete_on_disk(str(path), len(data)) is True, name
        # A size other than the file's: it was written to since that size was seen.
        assert looks_complete_on_disk(str(path), len(data) - 1) is False, name


def test_looks_complete_on_disk_of_an_empty_a_tiny_and_a_truncated_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert looks_complete_on_disk(str(empty), 0) is False
    tiny = tmp_path / "tiny.jpg"
    tiny.write_bytes(b"\xff\xd8\xff\xd9")
    assert looks_complete_on_disk(str(tiny), 4) is True
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4_bytes(index_first=False)[:-100])
    assert looks_complete_on_disk(str(cut), cut.stat().st_size) is False


def test_looks_complete_on_disk_follows_no_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.png"
    target.write_bytes(png_bytes())
    link = tmp_path / "link.png"
    link.symlink_to(target)
    with pytest.raises(OSError) as info:
        looks_complete_on_disk(str(link), target.stat().st_size)
    assert info.value.errno == errno.ELOOP


def test_max_upload_is_five_decimal_gigabytes() -> None:
    assert MAX_UPLOAD_BYTES == 5_000_000_000
