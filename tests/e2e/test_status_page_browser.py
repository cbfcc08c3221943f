"""The status page (SPEC §9) in a real browser: Debian's headless Chromium, driven by Playwright, on the
real agent's `status_page.listen`, against the real emulator, with real files. Each test also fails on
any console error, page error or dialog while the agent runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, error_record_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.browser import open_page, require_browser, shown
from tests.helpers.images import png_bytes
from tests.helpers.page import answers
from tests.helpers.videos import free_port, generate, wait_video
from watcher.emulator import Emulator, Fault

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

HOSTILE = "<img src=x onerror=alert(1)>.png"
HOSTILE_FAILED = "<svg onload=alert(2)><b>&amp;.png"  # no "/": a name has none

PageAgent = Callable[..., tuple[AgentProcess, str]]


@pytest.fixture(autouse=True)
def browser_here() -> None:
    require_browser()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Videos made in a second (the shared fixture's take three)."""
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B], generation_seconds=1) as emu:
        yield emu


@pytest.fixture
def page_agent(start_agent: Callable[..., AgentProcess]) -> PageAgent:
    """Starts the agent with its status page on a free loopback port: the agent, and the page's URL."""

    def start(
        folders: list[dict[str, Any]], *, password_file: str | None = None, **settings: Any
    ) -> tuple[AgentProcess, str]:
        port = free_port()
        page: dict[str, Any] = {"listen": f"127.0.0.1:{port}"}
        if password_file is not None:
            page["password_file"] = password_file
        agent = start_agent(folders, status_page=page, **settings)
        wait_for(lambda: answers(port, "/"), 15, "the status page to answer")  # it starts after READY=1
        return agent, f"http://127.0.0.1:{port}/"

    return start


def error_of(image: Path) -> str:
    wait_for(lambda: error_record_of(image).exists(), 15, f"the error record of {image.name}")
    return str(json.loads(error_record_of(image).read_text())["error"])


def test_the_page_loads_calmly_and_shows_a_thumbnail_with_its_file_id(
    page_agent: PageAgent, drop: Path
) -> None:
    _agent, url = page_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "sunset.png").write_bytes(png_bytes(24001, size=96))
    file_id = wait_sidecar(drop / "sunset.png")["fileID"]
    with open_page() as watched:
        page = watched.page
        page.goto(url)
        card = page.locator("#recent .thumb", has_text=file_id)
        shown(card.locator(".name"), "sunset.png")
        image = card.locator("img")
        wait_for(lambda: image.evaluate("i => i.complete && i.naturalWidth"), 15, "the thumbnail to load")
        assert 0 < image.evaluate("i => i.naturalWidth") <= 320
        assert page.locator("#agent").inner_text().startswith("Running")
        folder = page.locator("#folders .folder", has_text=drop.name)
        assert folder.locator(".stat.ok .value").inner_text() == "1"
        assert watched.troubles() == []


def test_a_paused_account_shows_with_its_reason_and_next_try(
    page_agent: PageAgent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    emulator.add_fault(Fault("status", status=402, times=-1, account=ACCOUNT_B))
    agent, url = page_agent(
        [{"path": str(drop), "account": ACCOUNT_A}, {"path": str(other), "account": ACCOUNT_B}]
    )
    (other / "refused.png").write_bytes(png_bytes(24101))
    wait_for(lambda: "Uploads for this account are paused" in agent.log(), 20, "account B paused")
    with open_page() as watched:
        watched.page.goto(url)
        paused = watched.page.locator("#accounts .account", has_text=ACCOUNT_B)
        shown(paused.locator(".pill"), "paused")
        shown(paused.locator(".reason"), "402")
        assert "Next try" in paused.inner_text()
        assert (
            watched.page.locator("#accounts .account", has_text=ACCOUNT_A).locator(".pill").inner_text()
            == "ok"
        )
        assert watched.troubles() == []


def test_a_failed_upload_shows_its_reason_and_what_to_do(page_agent: PageAgent, drop: Path) -> None:
    _agent, url = page_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "notes.png").write_text("not an image at all")
    error = error_of(drop / "notes.png")
    with open_page() as watched:
        watched.page.goto(url)
        failure = watched.page.locator("#failures .failure", has_text="notes.png")
        shown(failure.locator(".reason"), error[:80])
        assert f"minimax-watcher retry {drop / 'notes.png'}" in failure.inner_text()
        assert watched.troubles() == []


@pytest.mark.hostile
def test_hostile_names_show_as_text_and_run_nothing(page_agent: PageAgent, drop: Path) -> None:
    _agent, url = page_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / HOSTILE).write_bytes(png_bytes(24301))
    (drop / HOSTILE_FAILED).write_text("not an image either")
    file_id = wait_sidecar(drop / HOSTILE)["fileID"]
    error_of(drop / HOSTILE_FAILED)
    with open_page() as watched:
        page = watched.page
        page.goto(url)
        card = page.locator("#recent .thumb", has_text=file_id)
        shown(card.locator(".name"), HOSTILE)
        shown(page.locator("#failures"), HOSTILE_FAILED)
        # Once the card's own thumbnail has loaded, an <img src=x> made beside it would have failed too.
        image = card.locator("img")
        wait_for(lambda: image.evaluate("i => i.complete && i.naturalWidth"), 15, "the thumbnail to load")
        assert image.get_attribute("alt") == HOSTILE
        assert page.locator("img[src=x]").count() == 0
        assert page.locator("main svg, main b").count() == 0
        assert watched.dialogs == []
        assert watched.troubles() == []


def test_a_generated_video_plays_and_one_generating_shows_its_percent(
    page_agent: PageAgent, drop: Path, emulator: Emulator
) -> None:
    _agent, url = page_agent([{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}])
    (drop / "dunes.png").write_bytes(png_bytes(24401))
    done = wait_video(drop / "dunes.png", status="done")
    emulator.add_fault(Fault("never_ends", target="create"))  # the next video stays at 99 %
    (drop / "waves.png").write_bytes(png_bytes(24402))
    with open_page() as watched:
        page = watched.page
        page.goto(url)
        card = page.locator("#videos .video", has_text=done["videoId"])
        shown(card.locator(".name"), "dunes.png")
        video = card.locator("video")
        wait_for(lambda: video.evaluate("v => v.readyState") >= 1, 15, "the video's metadata to load")
        assert video.evaluate("v => v.duration") > 0
        generating = page.locator("#flight .flight-item", has_text="waves.png")
        shown(generating, "99 %")
        assert generating.locator("progress").evaluate("p => p.value") == 99
        assert watched.troubles() == []


def test_an_upload_in_flight_shows_its_progress(
    page_agent: PageAgent, drop: Path, emulator: Emulator
) -> None:
    _agent, url = page_agent([{"path": str(drop), "account": ACCOUNT_A}])
    emulator.add_fault(Fault("slow", delay=15.0, account=ACCOUNT_A))
    body = png_bytes(24501, size=200)
    (drop / "panorama.png").write_bytes(body)
    emulator.wait_for_held(1, timeout=20)
    with open_page() as watched:
        page = watched.page
        page.goto(url)
        item = page.locator("#flight .flight-item", has_text="panorama.png")
        shown(item, "uploading")
        assert item.locator("progress").evaluate("p => [p.value, p.max]") == [len(body), len(body)]
        assert watched.troubles() == []
    wait_sidecar(drop / "panorama.png", timeout=30)


def test_the_copy_button_puts_the_file_id_on_the_clipboard(page_agent: PageAgent, drop: Path) -> None:
    _agent, url = page_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "copy-me.png").write_bytes(png_bytes(24601))
    file_id = wait_sidecar(drop / "copy-me.png")["fileID"]
    with open_page(permissions=("clipboard-read", "clipboard-write"), origin=url.rstrip("/")) as watched:
        page = watched.page
        page.goto(url)
        button = page.locator("#recent .thumb", has_text=file_id).locator("button.copy")
        shown(button, "Copy")
        button.click()
        shown(button, "Copied")
        assert page.evaluate("navigator.clipboard.readText()") == file_id
        assert watched.troubles() == []


def test_a_stopped_agent_shows_as_not_running(page_agent: PageAgent, drop: Path) -> None:
    agent, url = page_agent([{"path": str(drop), "account": ACCOUNT_A}])
    with open_page() as watched:
        page = watched.page
        page.goto(url)
        shown(page.locator("#agent"), "Running")
        assert watched.troubles() == []
        assert agent.stop() == 0
        shown(page.locator("#agent"), "Agent not running")
        shown(page.locator("#banner"), "The agent is not answering")
        assert page.locator("body.stale").count() == 1


def test_a_phone_width_needs_no_sideways_scrolling_even_with_long_names(
    page_agent: PageAgent, drop: Path
) -> None:
    long_name = "a" * 120 + ".png"  # one word, no place to break
    _agent, url = page_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / long_name).write_bytes(png_bytes(24801))
    (drop / ("b" * 120 + ".png")).write_text("not an image")
    wait_sidecar(drop / long_name)
    with open_page(width=390, height=844) as watched:
        page = watched.page
        page.goto(url)
        shown(page.locator("#recent"), "aaaa")
        shown(page.locator("#failures"), "bbbb")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert watched.troubles() == []


def test_behind_its_password_the_page_its_thumbnails_and_videos_load(
    page_agent: PageAgent, tmp_path: Path, drop: Path
) -> None:
    password = "page-password-DONOTLEAK"
    (tmp_path / "page-password").write_text(password + "\n")
    (tmp_path / "page-password").chmod(0o600)
    folders = [{"path": str(drop), "account": ACCOUNT_A, "generate": generate()}]
    _agent, url = page_agent(folders, password_file="page-password")
    (drop / "dunes.png").write_bytes(png_bytes(24901))
    done = wait_video(drop / "dunes.png", status="done")
    with open_page(credentials=("anyone", "wrong")) as watched:
        answer = watched.page.goto(url)
        assert answer is not None and answer.status == 401
        assert watched.page.locator("#recent").count() == 0
    with open_page(credentials=("anyone", password)) as watched:
        page = watched.page
        page.goto(url)
        card = page.locator("#recent .thumb", has_text="dunes.png")
        shown(card, "dunes.png")
        image = card.locator("img")
        wait_for(lambda: image.evaluate("i => i.complete && i.naturalWidth"), 15, "the thumbnail to load")
        video = page.locator("#videos .video", has_text=done["videoId"]).locator("video")
        wait_for(lambda: video.evaluate("v => v.readyState") >= 1, 15, "the video's metadata to load")
        assert watched.troubles() == []
