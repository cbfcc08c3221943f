"""Which files are candidates, what their first bytes say they are, and whether they look complete.

Decided from names and bytes only, so it is shared by the agent, the scanner and the status view.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import NamedTuple

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# Names that downloaders, editors and sync tools use while a file is still being written.
TEMPORARY_SUFFIXES = ("~", ".tmp", ".part", ".partial", ".crdownload", ".download", ".swp")

SIDECAR_SUFFIX = ".json"
ERROR_RECORD_SUFFIX = ".error.json"

MAX_UPLOAD_BYTES = 5 * 1000**3  # the API's documented limit, 5 GB

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"

# Enough for every signature below; the longest, an `ftyp` box with a 64-bit size, needs 24 bytes.
SNIFF_BYTES = 32


SUFFIXES_BY_KIND = {
    "image": IMAGE_SUFFIXES,
    "audio": (".mp3", ".wav"),
    "video": (".mp4",),
}
IMAGES_ONLY = frozenset({"image"})


# Every suffix is one extension: a lookup of the last one decides (a start looks at a million names).
KIND_BY_SUFFIX = {suffix: kind for kind, suffixes in SUFFIXES_BY_KIND.items() for suffix in suffixes}


def kind_of_name(name: str) -> str | None:
    """The media kind a file name claims (image, audio, video), or None; its bytes decide the rest."""
    dot = name.rfind(".")
    return KIND_BY_SUFFIX.get(name[dot:].lower()) if dot >= 0 else None


def is_candidate_name(name: str, kinds: Collection[str] = IMAGES_ONLY) -> bool:
    """True when a file name (no directory part) is one the agent should upload, judged by name alone:
    of one of the folder's media `kinds`, not a dot-file, not a writer's temporary."""
    if not name or name.startswith("."):
        return False
    if name.lower().endswith(TEMPORARY_SUFFIXES):
        return False
    return kind_of_name(name) in kinds


NAME_MAX = 255  # bytes, on every Linux filesystem the agent is likely to meet
LONGEST_NAME = NAME_MAX - len(ERROR_RECORD_SUFFIX)  # so that both records beside it can exist
NAME_TOO_LONG = "name_too_long"


def name_problem(name: str) -> str | None:
    """Why a candidate's name leaves no room for its sidecar or error record, or None when it does."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size <= LONGEST_NAME:
        return None
    return (
        f"the file name is {size} bytes: its sidecar and error record would pass the filesystem's "
        f"{NAME_MAX}-byte limit for a name; rename it to {LONGEST_NAME} bytes or fewer"
    )


def sidecar_path(image_path: str) -> str:
    return image_path + SIDECAR_SUFFIX


def error_record_path(image_path: str) -> str:
    return image_path + ERROR_RECORD_SUFFIX


# ---- what a file's bytes are ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """A format the API takes: its name, its media kind, the Content-Type it is sent as, and how a
    refusal names a file of it."""

    name: str
    kind: str
    content_type: str
    description: str


PNG = MediaFormat("PNG", "image", "image/png", "a PNG image")
JPEG = MediaFormat("JPEG", "image", "image/jpeg", "a JPEG image")
# useapi.net documents image/jpeg for WebP on its files endpoint.
WEBP = MediaFormat("WebP", "image", "image/jpeg", "a WebP image")
MP3 = MediaFormat("MP3", "audio", "audio/mpeg", "MP3 audio")
WAV = MediaFormat("WAV", "audio", "audio/wav", "WAV audio")
MP4 = MediaFormat("MP4", "video", "video/mp4", "an MP4 video")
FORMATS = (PNG, JPEG, WEBP, MP3, WAV, MP4)
ALL_KINDS = frozenset(SUFFIXES_BY_KIND)

# ISO base media files that are pictures, not videos: an iPhone's HEIC, AVIF, a Canon CR3 raw.
STILL_IMAGE_BRANDS = frozenset(
    {*b"heic heix heim heis hevc hevx hevm hevs mif1 mif2 msf1 avif avis".split(), b"crx "}
)


def identify(head: bytes) -> MediaFormat | None:
    """The format of a file whose first bytes (SNIFF_BYTES of them) are `head`, whatever its name says;
    None when it is none the API takes."""
    if head.startswith(PNG_SIGNATURE):
        return PNG
    if head.startswith(JPEG_SOI):
        return JPEG
    form = _riff_form(head)
    if form == b"WEBP":
        return WEBP
    if form == b"WAVE":
        return WAV
    brand = _ftyp_brand(head)
    if brand is not None:
        return MP4 if brand not in STILL_IMAGE_BRANDS else None
    if _is_id3v2_header(head) or _is_mp3_frame_header(head):
        return MP3
    return None


def sniff_content_type(head: bytes, kinds: Collection[str] = IMAGES_ONLY) -> str | None:
    """The Content-Type to send for a file starting with `head` to a folder taking media `kinds`, or
    None when it is of no format the API takes or of a kind the folder does not take."""
    found = identify(head)
    return found.content_type if found is not None and found.kind in kinds else None


def _riff_form(head: bytes) -> bytes | None:
    """The form type of a RIFF file (WAVE, WEBP, AVI ...), None for anything else."""
    return head[8:12] if len(head) >= 12 and head.startswith(b"RIFF") else None


def _ftyp_brand(head: bytes) -> bytes | None:
    """The major brand of a file that opens with a well-formed `ftyp` box (ISO base media: MP4, MOV,
    HEIF ...), None for anything else."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    box_size, header_size = int.from_bytes(head[0:4], "big"), 8
    if box_size == 1:  # the real size follows the type, in 64 bits
        if len(head) < 24:
            return None
        box_size, header_size = int.from_bytes(head[8:16], "big"), 16
    # A major brand and a minor version, then whole four-byte compatible brands; a few dozen at most.
    body = box_size - header_size
    if body < 8 or body % 4 or box_size > 1024:
        return None
    brand = head[header_size : header_size + 4]
    return brand if all(0x20 <= byte <= 0x7E for byte in brand) else None


def _is_id3v2_header(head: bytes) -> bool:
    """An ID3v2 tag, as MP3s open with: `ID3`, major version 2-4, a revision that is never 0xFF, flags,
    and a size in four bytes of seven bits each."""
    return (
        len(head) >= 10
        and head.startswith(b"ID3")
        and head[3] in (2, 3, 4)
        and head[4] != 0xFF
        and all(byte < 0x80 for byte in head[6:10])
    )


def _is_mp3_frame_header(head: bytes) -> bool:
    """An MPEG audio layer III frame header: 11 sync bits, then no field holding a reserved or invalid
    value, so that a random 0xFFE.. does not pass. The free-format bitrate (index 0) is refused too:
    hardly any encoder writes it."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11  # 0b01 is reserved
    layer = (head[1] >> 1) & 0b11  # 0b01 is layer III
    bitrate_index = head[2] >> 4  # 0b1111 is invalid
    sample_rate_index = (head[2] >> 2) & 0b11  # 0b11 is reserved
    emphasis = head[3] & 0b11  # 0b10 is reserved
    return (
        version != 0b01
        and layer == 0b01
        and bitrate_index not in (0b0000, 0b1111)
        and sample_rate_index != 0b11
        and emphasis != 0b10
    )


# ---- refusing a file ----------------------------------------------------------------------------------

# Formats worth naming when a file is refused: what users most often drop by mistake.
_OTHER_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive (or a document stored as one, such as .docx)"),
    (b"\x1f\x8b\x08", "a gzip archive"),
    (b"OggS", "an Ogg file (Vorbis or Opus audio, or Theora video)"),
    (b"fLaC", "FLAC audio"),
    (b"\x1aE\xdf\xa3", "a Matroska or WebM video"),
)


def describe_other(head: bytes) -> str | None:
    """What a file the API does not take is, as a refusal says it ("a PDF document"); None when its
    first bytes are of no format known here."""
    for signature, what in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return what
    if _riff_form(head) == b"AVI ":
        return "an AVI video"
    if _ftyp_brand(head) in STILL_IMAGE_BRANDS:
        return "a HEIF or AVIF image (or another still picture in an MP4-like box)"
    if len(head) >= 10 and head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00":
        return "a BMP image"
    return None


# Letters whose names start with a vowel sound: "an MP3", but "a PNG".
_AN_INITIALS = "AEFHILMNORSX"


def accepted_text(kinds: Collection[str]) -> str:
    """What a folder taking media `kinds` uploads, as a refusal names it: "a PNG, JPEG or WebP image",
    "a PNG, JPEG, WebP, MP3 or WAV file"."""
    if set(kinds) == IMAGES_ONLY:
        return "a PNG, JPEG or WebP image"
    names = [found.name for found in FORMATS if found.kind in kinds]
    if not names:
        return "a file of a kind it takes"
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"{'an' if names[0][0] in _AN_INITIALS else 'a'} {listed} file"


class Refusal(NamedTuple):
    error: str
    code: str  # "not_an_image" or "unsupported_type"


def refusal(head: bytes, kinds: Collection[str], name: str) -> Refusal:
    """The error record's text and code for a file named `name` whose first bytes are `head` and that
    a folder taking media `kinds` does not upload (`sniff_content_type` said None).

    The text says what the folder takes and, when the bytes tell, what the file is. The code is
    "not_an_image" for a file that passes for an image (by its name, or in a folder of images only),
    "unsupported_type" for one that passes for audio or video.
    """
    error = f"not {accepted_text(kinds)}"
    found = identify(head)
    if found is not None and found.kind not in kinds:
        error += f": it is {found.description}, and {found.kind} is not in this folder's media"
    elif (what := describe_other(head)) is not None:
        error += f": it is {what}"
    claims = kind_of_name(name) or ("image" if set(kinds) == IMAGES_ONLY else None)
    return Refusal(error, "not_an_image" if claims == "image" else "unsupported_type")


# ---- whether a file looks finished ------------------------------------------------------------------

ReadAt = Callable[[int, int], bytes]
"""`read_at(offset, length)`: up to `length` bytes of a file from `offset` (fewer at its end)."""

# An MP4's top level is a handful of boxes (ftyp, moov, mdat, free, udta ...); past this many, the file
# simply waits the full settle time rather than costing one read per box.
MAX_TOP_LEVEL_BOXES = 32


def looks_complete(read_at: ReadAt, size: int) -> bool:
    """Whether the file's own structure says its writer has finished it, for a file of `size` bytes.

    Used only to shorten the settle wait after a close-after-write event: a PNG ends with its IEND chunk,
    a JPEG with its EOI marker, a WebP's or WAV's RIFF header states the file's length, an MP4's
    top-level boxes add up to the file's length and include its index (`moov`). An MP3 states its
    length nowhere reliable: it always waits the full settle time. A file that fails this check is not
    rejected; it simply waits the full settle time. At most MAX_TOP_LEVEL_BOXES + 2 reads.
    """
    head = read_at(0, SNIFF_BYTES)
    found = identify(head)
    if found is PNG:
        return _ends_with(read_at, size, PNG_IEND_CHUNK)
    if found is JPEG:
        return _ends_with(read_at, size, JPEG_EOI)
    if found is WEBP or found is WAV:
        return int.from_bytes(head[4:8], "little") + 8 == size
    if found is MP4:
        return mp4_boxes_fill(read_at, size)
    return False


def _ends_with(read_at: ReadAt, size: int, suffix: bytes) -> bool:
    return size >= len(suffix) and read_at(size - len(suffix), len(suffix)) == suffix


def mp4_boxes_fill(
    read_at: ReadAt, size: int, *, max_boxes: int = MAX_TOP_LEVEL_BOXES, to_end: bool = False
) -> bool:
    """Whether the top-level boxes from offset 0 end exactly at `size`, one of them `moov`, within
    `max_boxes` boxes.

    A box of size 0 ("up to the end of the file") counts only with `to_end` (a finished download):
    writers put it in an `mdat` they have not finished, and fix it once they know the length.
    """
    offset, has_index = 0, False
    for _ in range(max_boxes):
        if offset == size:
            return has_index
        header = read_at(offset, 16)
        if len(header) < 8:
            return False
        box_size, box_type = int.from_bytes(header[0:4], "big"), header[4:8]
        header_size = 8
        if box_size == 1:
            if len(header) < 16:
                return False
            box_size, header_size = int.from_bytes(header[8:16], "big"), 16
        elif box_size == 0 and to_end:
            box_size = size - offset  # the last box: it runs to the end of the file
        if box_size < header_size or not all(0x20 <= byte <= 0x7E for byte in box_type):
            return False
        has_index = has_index or box_type == b"moov"
        offset += box_size
        if offset > size:
            return False
    return offset == size and has_index
