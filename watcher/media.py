"""Which files are candidates, what their first bytes say they are, and whether they look complete.

Everything here is decided from names and bytes, never from events, so it can be tested without a
filesystem and shared by the agent, the scanner and the status view.
"""

from __future__ import annotations

from collections.abc import Collection

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# Names that downloaders, editors and sync tools use while a file is still being written.
TEMPORARY_SUFFIXES = ("~", ".tmp", ".part", ".partial", ".crdownload", ".download", ".swp")

SIDECAR_SUFFIX = ".json"
ERROR_RECORD_SUFFIX = ".error.json"

MAX_UPLOAD_BYTES = 5 * 1000**3  # the API's documented limit, 5 GB
NOT_AN_IMAGE = "not a PNG, JPEG or WebP image"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"

SNIFF_BYTES = 12


SUFFIXES_BY_KIND = {
    "image": IMAGE_SUFFIXES,
    "audio": (".mp3", ".wav"),
    "video": (".mp4",),
}
IMAGES_ONLY = frozenset({"image"})


def kind_of_name(name: str) -> str | None:
    """The media kind a file name claims (image, audio, video), or None; its bytes decide the rest."""
    lowered = name.lower()
    return next((kind for kind, suffixes in SUFFIXES_BY_KIND.items() if lowered.endswith(suffixes)), None)


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


def sniff_content_type(head: bytes) -> str | None:
    """The Content-Type to send for a file starting with `head`, or None when it is no supported image.

    WebP goes as image/jpeg: useapi.net documents that for its files endpoint.
    """
    if head.startswith(PNG_SIGNATURE):
        return "image/png"
    if head.startswith(JPEG_SOI):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/jpeg"
    return None


def looks_complete(head: bytes, tail: bytes, size: int) -> bool:
    """Whether an image's own structure says its writer has finished it.

    Used only to shorten the settle wait after a close-after-write event: a PNG ends with its IEND chunk,
    a JPEG with its EOI marker, a WebP's RIFF header states the file's length. A file that fails this
    check is not rejected; it simply waits the full settle time.
    """
    if head.startswith(PNG_SIGNATURE):
        return tail.endswith(PNG_IEND_CHUNK)
    if head.startswith(JPEG_SOI):
        return tail.endswith(JPEG_EOI)
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8 == size
    return False


TAIL_BYTES = len(PNG_IEND_CHUNK)
