"""Debian's Chromium driven by Playwright for the console's browser tests, and where their
screenshots go (``CONSOLE_ARTIFACTS``, or the repository's ignored ``artifacts/console``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1366, "height": 768}


def chromium_path() -> str:
    """Debian's package installs /usr/bin/chromium (scripts/setup.sh installs it)."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("chromium is missing: run scripts/setup.sh, which installs it")


def artifacts(test_name: str) -> Path:
    base = Path(os.environ.get("CONSOLE_ARTIFACTS") or ROOT / "artifacts" / "console")
    out = base / test_name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        # --no-sandbox: the tests run as root, where Chromium's sandbox will not start.
        browser = await p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


class Shots:
    """Numbered screenshots of a test's steps."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.n = 0

    async def take(self, step: str) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{step}.png"
        await self.page.screenshot(path=str(path))
        return path
