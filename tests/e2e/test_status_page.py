"""The status page as a browser uses it (SPEC §9), with the real agent, the real emulator and real files:
/api/status is `status --json`, a thumbnail is a small JPEG, the video answers a Range request."""

from __future__ import annotations

import io
import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, wait_for, wait_sidecar
from tests.helpers.images import png_bytes
from tests.helpers.page import answers, ask
from tests.helpers.videos import free_port, generate, status_json, wait_video
from watcher.emulator import Emulator
from watcher.page.app import CSP

# What the agent's live status says of this moment (bytes in flight, a probe's time): not compared.
CHANGING = ("uploading", "accounts")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1) as emu:
        yield emu


def steady(report: dict[str, Any]) -> dict[str, Any]:
    agent = {k: v for k, v in report["agent"].items() if k not in CHANGING}
    return {**report, "agent": agent}


def test_the_page_serves_the_status_a_thumbnail_and_the_video(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    port = free_port()
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}],
        status_page={"listen": f"127.0.0.1:{port}"},
    )
    image = drop / "cat.png"
    image.write_bytes(png_bytes(24001, size=800))
    sidecar = wait_sidecar(image, timeout=20)
    record = wait_video(image)

    def settled() -> dict[str, Any] | None:
        answer = answers(port, "/api/status")
        if answer is None or answer.status != 200:
            return None
        report = json.loads(answer.body)
        return report if report["recent"] and report["folders"][0]["videos"]["recent"] else None

    report = wait_for(settled, 20, "the upload and its video on /api/status", interval=0.2)
    assert steady(report) == steady(status_json(agent.workdir))
    [recent] = report["recent"]
    assert recent["file"] == "cat.png" and recent["fileID"] == sidecar["fileID"]
    assert recent["folder"] == str(drop) and recent["uploaded"] == sidecar["uploadedAt"]
    [video] = report["folders"][0]["videos"]["recent"]
    assert video == {
        "file": "cat.png",
        "video": "/video?folder=0&file=videos%2Fcat.mp4",
        "videoId": record["videoId"],
    }

    thumbnail = ask(port, recent["thumbnail"])
    assert thumbnail.status == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumbnail.body)) as shown:
        assert shown.format == "JPEG" and max(shown.size) == 320
    assert len(thumbnail.body) < 64 << 10  # an 800 x 800 image comes as 320 x 320
    assert list((agent.workdir / "state" / "minimax-watcher" / "thumbnails").glob("*.jpg"))

    mp4 = (drop / "videos" / "cat.mp4").read_bytes()
    part = ask(port, video["video"], headers={"Range": "bytes=8-99"})
    assert part.status == 206, part
    assert part.headers["content-range"] == f"bytes 8-99/{len(mp4)}"
    assert part.headers["content-type"] == "video/mp4" and part.body == mp4[8:100]
    whole = ask(port, video["video"])
    assert whole.status == 200 and whole.body == mp4

    for answer in (thumbnail, part, whole, ask(port, "/api/status"), ask(port, "/nothing-here")):
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert ask(port, "/api/status").headers["cache-control"] == "no-store"
    assert agent.stop() == 0
    assert answers(port, "/api/status") is None  # stopped with the agent
    assert "Traceback" not in agent.log()


def test_a_reload_moves_the_page_and_a_bad_address_is_a_config_error(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    port, other = free_port(), free_port()
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A}], status_page={"listen": f"127.0.0.1:{port}"}
    )
    assert ask(port, "/api/status").status == 200
    config = yaml.safe_load(agent.config_path.read_text())
    config["status_page"] = {"listen": f"127.0.0.1:{other}"}
    agent.config_path.write_text(yaml.safe_dump(config))
    agent.signal(signal.SIGHUP)
    wait_for(lambda: answers(other, "/api/status"), 20, "the page on its new port after SIGHUP")
    assert answers(port, "/api/status") is None
    assert agent.stop() == 0

    with socket.socket() as taken:  # a port in use: refused at start, 78, one line
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        config["status_page"] = {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}
        agent.config_path.write_text(yaml.safe_dump(config))
        agent.start(wait_ready=False)
        assert agent.proc is not None and agent.proc.wait(30) == 78
        assert agent.stop() == 78
    assert "status_page.listen: cannot listen on" in agent.log() and "Traceback" not in agent.log()
