"""A dropper can plant a done-looking sidecar beside any bytes (a sidecar is plain JSON in the drop
folder): the status page's thumbnails must still decode only the formats the agent uploads, never one
of Pillow's many others (EPS runs Ghostscript; TIFF, BMP, GIF, ICO ... are decoders the agent never
needs), whatever the name says."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import ACCOUNT_A, TOKEN
from tests.helpers.images import png_bytes
from tests.helpers.videos import free_port
from tests.hostile.test_status_page import planted_sidecar, served, thumbnail_of
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
