"""Request bodies as the emulator reads them off a stream: the framing headers it understands, bodies
streamed in chunks, and what a body it only drains leaves of the connection (usable or not)."""

from __future__ import annotations

import hashlib
import io
from email.message import Message

import pytest

from watcher.emulator.bodies import (
    CHUNK_SIZE,
    BadFraming,
    content_length,
    discard_body,
    is_chunked,
    read_body,
)


def headers(*pairs: tuple[str, str]) -> Message:
    message = Message()
    for name, value in pairs:
        message[name] = value
    return message


def stream(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))


@pytest.mark.parametrize(
    ("pairs", "length"),
    [
        ((), None),
        ((("Content-Length", "12"),), 12),
        ((("Content-Length", " 7 "),), 7),
        ((("Content-Length", "5"), ("Content-Length", "5")), 5),
    ],
)
def test_the_content_length(pairs: tuple[tuple[str, str], ...], length: int | None) -> None:
    assert content_length(headers(*pairs)) == length


@pytest.mark.parametrize(
    "pairs",
    [
        (("Content-Length", "-1"),),
        (("Content-Length", "1e3"),),
        (("Content-Length", ""),),
        (("Content-Length", "5"), ("Content-Length", "6")),
    ],
)
def test_a_content_length_that_is_invalid_or_conflicting_is_bad_framing(
    pairs: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(BadFraming):
        content_length(headers(*pairs))


def test_only_chunked_transfer_encoding_is_understood() -> None:
    assert not is_chunked(headers())
    assert is_chunked(headers(("Transfer-Encoding", " Chunked ")))
    with pytest.raises(BadFraming, match="gzip"):
        is_chunked(headers(("Transfer-Encoding", "gzip, chunked")))


def test_a_body_is_read_in_chunks_through_the_hasher_up_to_its_length() -> None:
    data = bytes(range(256)) * ((2 * CHUNK_SIZE + 1000) // 256)
    hasher = hashlib.sha256()
    rest = b"next request"
    source = stream(data + rest)
    assert read_body(source, len(data), hasher) == len(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert source.read() == rest, "not a byte past the body"


def test_a_body_cut_short_reports_what_arrived() -> None:
    assert read_body(stream(b"abc"), 10) == 3


def test_a_body_with_a_length_is_drained() -> None:
    source = stream(b"12345GET /")
    assert discard_body(source, headers(("Content-Length", "5"))) == 5
    assert source.read() == b"GET /"
    assert discard_body(stream(b""), headers()) == 0, "no body"
    assert discard_body(stream(b"123"), headers(("Content-Length", "5"))) is None, "cut short"


def test_a_chunked_body_is_drained_with_its_extensions_and_trailers() -> None:
    body = b"4;name=x\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\nGET /"
    source = stream(body)
    assert discard_body(source, headers(("Transfer-Encoding", "chunked"))) == 9
    assert source.read() == b"GET /"


@pytest.mark.parametrize(
    "body",
    [
        b"4\r\nWiki",  # cut short in a chunk
        b"4\r\nWikiXX",  # no line end after the chunk
        b"zz\r\nWiki\r\n0\r\n\r\n",  # a size that is not hex
        b"4\r\nWiki\r\n0\r\nExpires: never",  # trailers cut short
        b"4",  # a size line cut short
    ],
)
def test_a_malformed_or_cut_chunked_body_leaves_the_connection_unusable(body: bytes) -> None:
    assert discard_body(stream(body), headers(("Transfer-Encoding", "chunked"))) is None


def test_a_body_whose_framing_is_not_understood_leaves_the_connection_unusable() -> None:
    assert discard_body(stream(b"abc"), headers(("Transfer-Encoding", "br"))) is None
    assert discard_body(stream(b"abc"), headers(("Content-Length", "x"))) is None
