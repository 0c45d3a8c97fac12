"""The browser tests' one headless browser, and pages that record console errors.

Every browser test drives Debian's chromium (``/usr/bin/chromium``; Playwright never downloads a
browser here) and watches its pages the same way: the UI's strict Content-Security-Policy only
shows in a real browser, where an inline script or style is refused with a console error, so a
page records console errors and uncaught script errors, and closing it fails the test if there
were any. Kept in one place so no browser test can quietly watch less than the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless chromium through Playwright; skips the test when Debian's chromium is missing."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium: apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_path(name: str) -> Path:
    """Where screenshot ``name`` (e.g. ``tree-canary.png``) goes; the directory exists."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name


class WatchedPage:
    """A page in a browser context of its own whose console errors and uncaught script errors
    are recorded; ``close`` fails when there were any (a CSP violation shows up there).

    Only ``page`` is watched: a tab a test opens itself with ``context.new_page()`` is not."""

    def __init__(self, browser: Any, *, width: int = 1280, height: int = 900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page.on(
            "console",
            lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        self.page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))
        self._closed = False

    def close(self) -> None:
        if not self._closed:  # a test may close early; its fixture closes again at teardown
            self._closed = True
            self.context.close()
        assert not self.console_errors, self.console_errors


class UI(WatchedPage):
    """One browser page on a live ``gitsync serve`` (anything with a ``url``), logged in with
    the admin password; its confirm dialogs are accepted and kept in ``dialogs``."""

    def __init__(self, browser: Any, ctl: Any, password: str, name: str):
        super().__init__(browser)
        self.ctl = ctl
        self.name = name
        self.dialogs: list[str] = []
        self.page.on("dialog", self._accept)
        self.login(password)

    def _accept(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    def login(self, password: str) -> None:
        page = self.page
        page.goto(self.ctl.url + "/")
        assert "/login" in page.url  # no anonymous reading
        page.fill("#password", password)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(self.ctl.url + "/")

    def shot(self, label: str, *, full_page: bool = True) -> Path:
        path = screenshot_path(f"{self.name}-{label}.png")
        self.page.screenshot(path=str(path), full_page=full_page)
        return path
