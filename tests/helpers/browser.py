"""Debian's headless Chromium driven by Playwright for Python, for the status page's tests and screenshot.

Playwright's own browser downloads are never used: `/usr/bin/chromium` is launched with the flags this
machine's closed network needs, and a fresh profile each time. Everything the page says on its console,
every page error and every dialog is kept, so a test can assert there was none.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "MINIMAX_WATCHER_REQUIRE_BROWSER"
# Without the networking flags Chromium reaches for Google's hosts at every start, and this machine's
# closed network refuses each connection (noise, and time).
CHROMIUM_ARGS = (
    "--no-sandbox",  # run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (Debian's 'chromium' package; .ci/install-system-packages installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


def require_browser() -> None:
    """Skip the calling test, saying why, when Chromium or Playwright is missing; fail instead under
    MINIMAX_WATCHER_REQUIRE_BROWSER=1 (CI), so that a missing browser never passes as a skip."""
    import pytest

    why = missing_browser()
    if why is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{why}, and {REQUIRE_ENV}=1 asks for the browser tests", pytrace=False)
    pytest.skip(why)


@dataclass
class Watched:
    """A page and what it said: console errors, uncaught errors, dialogs (each dismissed at once)."""

    page: Any  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def troubles(self) -> list[str]:
        return (
            [f"console error: {text}" for text in self.console_errors]
            + [f"page error: {text}" for text in self.page_errors]
            + [f"dialog: {text}" for text in self.dialogs]
        )


def _counts(message: Any) -> bool:
    """An error on the console: every one counts (the page names its icon, so the browser asks for no
    /favicon.ico the agent does not serve)."""
    return bool(message.type == "error")


@contextmanager
def open_page(
    *,
    width: int = 1280,
    height: int = 900,
    permissions: tuple[str, ...] = (),
    origin: str | None = None,
    credentials: tuple[str, str] | None = None,
) -> Iterator[Watched]:
    """A new headless Chromium with a fresh profile and one watched page; closed, with its driver, on exit.
    `permissions` (e.g. clipboard-read) are granted to `origin`; `credentials` (user, password) answer
    HTTP Basic."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="minimax-watcher-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=list(CHROMIUM_ARGS),
                viewport={"width": width, "height": height},
                service_workers="block",
                http_credentials=(
                    {"username": credentials[0], "password": credentials[1]} if credentials else None
                ),
            )
            try:
                if permissions:
                    context.grant_permissions(list(permissions), origin=origin)
                page = context.pages[0] if context.pages else context.new_page()
                watched = Watched(page)
                page.on("console", lambda m: watched.console_errors.append(m.text) if _counts(m) else None)
                page.on("pageerror", lambda e: watched.page_errors.append(str(e)))

                def on_dialog(dialog: Any) -> None:
                    watched.dialogs.append(f"{dialog.type}: {dialog.message}")
                    dialog.dismiss()

                page.on("dialog", on_dialog)
                yield watched
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


SHOWN_WITHIN_MS = 20_000  # the page refreshes every 3 s, the agent's answer is cached for 2 s


def shown(locator: Any, text: str, timeout_ms: int = SHOWN_WITHIN_MS) -> None:
    """Wait until the element at `locator` shows `text` (as text, not markup), or fail."""
    from playwright.sync_api import expect

    expect(locator).to_contain_text(text, timeout=timeout_ms)
