"""Takes docs/status-page.png: the status page of a real agent, against the real emulator, in the browser
the tests use (Debian's headless Chromium, driven by Playwright). Run `.venv/bin/python docs/screenshot.py`.

The scene: two folders, some uploads, a video done and one generating, a failed upload, a paused account.
"""

from __future__ import annotations

import json
import math
import struct
import sys
import tempfile
import threading
import urllib.request
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, wait_for, wait_sidecar  # noqa: E402
from tests.helpers.agent import AgentProcess  # noqa: E402
from tests.helpers.browser import missing_browser, open_page, shown  # noqa: E402
from tests.helpers.images import png_chunk  # noqa: E402
from tests.helpers.page import answers  # noqa: E402
from tests.helpers.videos import free_port, generate, wait_video  # noqa: E402
from watcher.emulator import Emulator, Fault  # noqa: E402

OUT = REPO / "docs" / "status-page.png"
WIDTH, HEIGHT = 1280, 900
GENERATION = 60.0  # seconds of the emulator's clock a video takes; the clock is moved by hand

# (sky top, sky bottom, sun, far hills, near hills) of each picture
PALETTES = {
    "dunes-at-dawn.png": ((250, 180, 120), (255, 226, 190), (255, 244, 214), (214, 150, 96), (176, 112, 70)),
    "harbour-blue-hour.png": ((24, 40, 92), (92, 120, 190), (236, 230, 255), (40, 60, 110), (18, 30, 60)),
    "alpine-lake.png": ((110, 170, 230), (205, 230, 250), (255, 255, 240), (120, 150, 170), (60, 110, 80)),
    "olive-grove.png": ((140, 190, 235), (230, 240, 250), (255, 250, 220), (150, 170, 110), (90, 120, 60)),
    "misty-pines.png": ((52, 64, 70), (118, 134, 140), (235, 215, 200), (84, 100, 104), (36, 46, 50)),
    "beach-walk.png": ((120, 200, 240), (220, 245, 255), (255, 255, 230), (240, 220, 170), (60, 150, 190)),
    "night-market.png": ((12, 12, 30), (60, 40, 90), (255, 200, 120), (40, 30, 60), (20, 14, 30)),
}


def picture(name: str, width: int = 360, height: int = 240) -> bytes:
    """A small PNG that looks like a photograph from afar: a sky, a sun, two rows of hills."""
    top, bottom, sun, far, near = PALETTES[name]
    seed = sum(name.encode())
    sun_x, sun_y, sun_r = width * (0.25 + (seed % 50) / 100), height * 0.32, height * 0.09
    rows = []
    for y in range(height):
        t = y / height
        sky = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        row = bytearray(b"\x00")
        for x in range(width):
            far_line = height * (0.58 + 0.07 * math.sin(x / 37 + seed) + 0.03 * math.sin(x / 11))
            near_line = height * (0.74 + 0.06 * math.sin(x / 53 + seed / 3) + 0.02 * math.sin(x / 17))
            if y > near_line:
                shade = 1 - 0.25 * (y - near_line) / height
                pixel = tuple(int(c * shade) for c in near)
            elif y > far_line:
                pixel = far
            elif (x - sun_x) ** 2 + (y - sun_y) ** 2 < sun_r**2:
                pixel = sun
            else:
                pixel = sky
            row += bytes(pixel)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + png_chunk(b"IEND", b"")
    )


def status_of(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "api/status", timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def main() -> int:
    why = missing_browser()
    if why is not None:
        print(f"screenshot: {why}", file=sys.stderr)
        return 1
    now = [0.0]
    lock = threading.Lock()

    def clock() -> float:
        with lock:
            return now[0]

    def advance(seconds: float) -> None:
        with lock:
            now[0] += seconds

    with tempfile.TemporaryDirectory(prefix="demo-") as scratch:
        root = Path(scratch)
        shots, stills = root / "drop" / "shots", root / "drop" / "stills"
        shots.mkdir(parents=True)
        stills.mkdir(parents=True)
        emulator = Emulator(
            token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=GENERATION, clock=clock
        )
        with emulator:
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            folders = [
                {
                    "path": str(shots),
                    "account": ACCOUNT_A,
                    "generate": generate("a slow dolly in, golden light"),
                },
                {"path": str(stills), "account": ACCOUNT_B},
            ]
            agent = AgentProcess(
                root, emulator.base_url, folders, status_page={"listen": f"127.0.0.1:{port}"}
            )
            agent.start()
            try:
                wait_for(lambda: answers(port, "/"), 15, "the status page to answer")
                scene(agent, emulator, shots, stills, advance)
                wait_for(lambda: scene_shown(status_of(url)), 30, "the whole scene in /api/status", 0.5)
                with open_page(width=WIDTH, height=HEIGHT) as watched:
                    page = watched.page
                    page.goto(url)
                    shown(page.locator("#flight"), "beach-walk.png")
                    shown(page.locator("#accounts"), "paused")
                    wait_for(
                        lambda: page.evaluate(
                            "[...document.images].every(i => i.complete && i.naturalWidth > 0)"
                            " && [...document.querySelectorAll('video')].every(v => v.readyState >= 2 && v.networkState !== 2)"
                        ),
                        20,
                        "every thumbnail and video frame",
                    )
                    # The video's own controls fade a loading spinner out after its frame is there.
                    settled(page, page.locator("#videos"))
                    page.screenshot(path=str(OUT))
                    if watched.troubles():
                        print(
                            "screenshot: the page said:\n  " + "\n  ".join(watched.troubles()),
                            file=sys.stderr,
                        )
                        return 1
            finally:
                agent.stop()
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


def settled(page: Any, locator: Any) -> None:
    """Until two pictures of `locator` a quarter of a second apart are the same."""
    last: list[bytes] = []

    def still() -> bool:
        picture = locator.screenshot()
        same = bool(last) and last[-1] == picture
        last.append(picture)
        return same

    wait_for(still, 15, "the videos to stop changing", interval=0.25)


def scene(agent: AgentProcess, emulator: Emulator, shots: Path, stills: Path, advance: Any) -> None:
    """`stills` (no videos): four uploads, then its account refused (402) and paused. `shots` (videos):
    one video done, one generating, a file that is not an image."""
    for name in ("night-market.png", "olive-grove.png", "alpine-lake.png", "harbour-blue-hour.png"):
        (stills / name).write_bytes(picture(name))
        wait_sidecar(stills / name)
    (shots / "dunes-at-dawn.png").write_bytes(picture("dunes-at-dawn.png"))
    wait_for(lambda: emulator.creates, 30, "the first video asked for")
    advance(GENERATION + 1)
    wait_video(shots / "dunes-at-dawn.png", status="done")
    (shots / "beach-walk.png").write_bytes(picture("beach-walk.png"))
    wait_for(lambda: len(emulator.creates) > 1, 30, "the second video asked for")
    advance(GENERATION * 0.43)  # 43 % of the way
    (shots / "contact-sheet.png").write_text("a text file saved with the wrong name")
    emulator.add_fault(Fault("status", status=402, times=-1, account=ACCOUNT_B))
    (stills / "misty-pines.png").write_bytes(picture("misty-pines.png"))
    wait_for(lambda: "Uploads for this account are paused" in agent.log(), 30, "the stills' account paused")


def scene_shown(report: dict[str, Any]) -> bool:
    folders = {Path(f["path"]).name: f for f in report["folders"]}
    shots = folders["shots"]
    generating = shots.get("videos", {}).get("in_progress", [])
    paused = [a for a in report.get("agent", {}).get("accounts", []) if a["state"] != "ok"]
    return bool(shots["failures"] and generating and generating[0]["percent"] >= 40 and paused)


if __name__ == "__main__":
    sys.exit(main())
