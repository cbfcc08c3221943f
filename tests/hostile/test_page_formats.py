"""A dropper can plant a done-looking sidecar beside any bytes (a sidecar is plain JSON in the drop
folder): the status page's thumbnails must still decode only the formats the agent uploads, never one
of Pillow's many others (EPS runs Ghostscript; TIFF, BMP, GIF, ICO ... are decoders the agent never
needs), whatever the name says."""

from __future__ import annotations

import io
import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import ACCOUNT_A, TOKEN
from tests.helpers.images import png_bytes
from tests.helpers.videos import free_port
from tests.hostile.test_status_page import bomb_png, planted_sidecar, served, thumbnail_of
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile

OTHER_FORMATS = ("GIF", "BMP", "TIFF", "ICO", "PCX", "TGA", "PPM", "EPS")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A]) as emu:
        yield emu


def picture(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.timeout(120)
def test_a_planted_sidecar_beside_another_format_gets_no_thumbnail(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    port = free_port()
    start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "exclude": ["planted/**"]}],
        status_page={"listen": f"127.0.0.1:{port}"},
    )
    planted = drop / "planted"
    planted.mkdir()
    (planted / "real.png").write_bytes(png_bytes(27001))
    planted_sidecar(planted / "real.png", emulator.base_url)
    assert served(port, thumbnail_of("planted/real.png")).status == 200  # the control: a PNG is shown
    for fmt in OTHER_FORMATS:
        image = planted / f"{fmt.lower()}.png"  # named as the agent's own, its bytes another format
        image.write_bytes(picture(fmt))
        planted_sidecar(image, emulator.base_url)
        answer = served(port, thumbnail_of(os.path.relpath(image, drop)))
        assert answer.status == 404, (fmt, answer.status)


def webp_header(width: int, height: int) -> bytes:
    """The first 30 bytes of a lossless WebP of `width` x `height` pixels (its pixels never follow)."""
    bits = (width - 1) | (height - 1) << 14 | 1 << 28  # with alpha
    chunk = b"VP8L" + struct.pack("<I", 0x7FFFFFF0) + b"\x2f" + struct.pack("<I", bits) + b"\x00"
    return b"RIFF" + struct.pack("<I", 0x7FFFFFF0) + b"WEBP" + chunk


def peak_memory(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(120)
def test_a_webp_is_never_read_whole_nor_its_canvas_made_before_its_size_is_checked(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    port = free_port()
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "exclude": ["planted/**"]}],
        status_page={"listen": f"127.0.0.1:{port}"},
    )
    planted = drop / "planted"
    planted.mkdir()
    # Pillow reads a WebP whole before decoding it: a sparse file of 1.5 GB costs the dropper no disk.
    huge = planted / "huge.webp"
    with open(huge, "wb") as f:
        f.write(webp_header(64, 64))
        f.truncate(1536 << 20)
    planted_sidecar(huge, emulator.base_url)
    # And it makes the canvas when it opens the file: 16384 x 16384 pixels are 1 GiB.
    canvas = planted / "canvas.webp"
    canvas.write_bytes(webp_header(16384, 16384) + bytes(64))
    planted_sidecar(canvas, emulator.base_url)
    assert agent.proc is not None
    before = peak_memory(agent.proc.pid)
    for name in ("huge.webp", "canvas.webp"):
        started = time.monotonic()
        answer = served(port, thumbnail_of(f"planted/{name}"))
        assert answer.status == 404 and time.monotonic() - started < 5, name
    assert peak_memory(agent.proc.pid) - before < 200 << 20
    assert served(port, "/api/status").status == 200
    assert "Traceback" not in agent.log()


@pytest.mark.timeout(120)
def test_an_image_that_gives_no_thumbnail_is_not_decoded_nor_logged_again_at_each_request(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    """Any local user may ask for a thumbnail as often as they like: what failed once for these bytes
    (a bomb, a cut image that takes a second to decode) is not tried again, nor said again in the log."""
    port = free_port()
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "exclude": ["planted/**"]}],
        status_page={"listen": f"127.0.0.1:{port}"},
    )
    planted = drop / "planted"
    planted.mkdir()
    bomb = planted / "bomb.png"
    bomb.write_bytes(bomb_png(30000))
    planted_sidecar(bomb, emulator.base_url)
    for _ in range(5):
        assert served(port, thumbnail_of("planted/bomb.png")).status == 404
    # Nor through another spelling of its path (each a new cache entry, decoded anew).
    for spelled in ("./planted/bomb.png", "planted//bomb.png", "planted/./bomb.png", ".//planted/bomb.png"):
        assert served(port, thumbnail_of(spelled)).status == 404
    assert agent.log().count("30000 x 30000 pixels") == 1
    # Another version of the file is judged again.
    bomb.write_bytes(bomb_png(30001))
    planted_sidecar(bomb, emulator.base_url)
    assert served(port, thumbnail_of("planted/bomb.png")).status == 404
    assert agent.log().count("30001 x 30001 pixels") == 1


@pytest.mark.timeout(180)
def test_a_million_failures_make_no_gigabyte_report(start_agent, drop: Path, emulator: Emulator) -> None:
    """Each failed file is listed with its name and reason; a dropper can make as many as they like (here
    names too long for a sidecar): the page's report lists the first ones and counts the others."""
    port = free_port()
    start_agent([{"path": str(drop), "account": ACCOUNT_A}], status_page={"listen": f"127.0.0.1:{port}"})
    for i in range(3000):
        (drop / f"{i:05d}{'x' * 240}.png").write_bytes(b"")
    answer = served(port, "/api/status")
    [folder] = json.loads(answer.body)["folders"]
    assert folder["failed"] == 3000
    assert len(folder["failures"]) + folder["failures_omitted"] == 3000
    assert folder["failures"][0]["file"].startswith("00000")
    assert len(answer.body) < 200_000
