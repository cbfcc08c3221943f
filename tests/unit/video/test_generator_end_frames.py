"""An end frame (`x.end.png` beside `x.png`) is uploaded like any image and offered like one by the
pipeline, but it is its image's last frame, never a video of its own (SPEC §8): no credits for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.unit.video.test_generator import Api, Setup, sidecar_of


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    server.close()


@pytest.fixture
def setup(tmp_path: Path, api: Api) -> Iterator[Setup]:
    s = Setup(tmp_path, api)
    yield s
    for g in list(s.running):
        g.stop()


def test_an_offered_end_frame_is_not_made_a_video_of_its_own(setup: Setup) -> None:
    g = setup.start()
    image = setup.image("x.png")
    end = setup.image("x.end.png", b"end")
    sidecar_of(Path(end.image), "user:1-minimax:111-file:77")
    g.offer(end)  # the pipeline offers every image it writes a sidecar for, end frames included
    g.offer(image)
    wait_for(lambda: "completed" in setup.results(), 10, "the image's video")
    wait_for(g.idle, 10, "the generator to be idle")
    assert [body.get("end_frame_fileID") for body in setup.api.bodies] == ["user:1-minimax:111-file:77"]
    assert setup.results() == ["completed"]
    assert not Path(end.image + ".video.json").exists()
    assert not (setup.root / "videos/x.end.mp4").exists()
