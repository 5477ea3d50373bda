"""What every browser test shares: Debian's Chromium through Playwright's executable_path (never
`playwright install`), the screen sizes, a page that collects the page's own errors, screenshots and the
sandbox card. Without a browser a test skips with the reason, except under CI=true where that is a failure.
PAYLINKS_SCREENSHOTS=/some/dir keeps the screenshots."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("PAYLINKS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
NARROW = {"viewport": {"width": 320, "height": 640}}
# Statuses our pages answer on purpose, which Chromium logs as console errors too: a reused sign-in link
# 400, a declined card 402, the staff's refused page 403, a missing link 404, refused forms 422, and the
# "could not start" page 502 while a provider is down.
EXPECTED_STATUS = re.compile(r"Failed to load resource: .* status of (400|402|403|404|422|502)")


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true needs the browser test: {reason}")
    pytest.skip(reason)


def chromium_path() -> str:
    found = shutil.which(CHROMIUM) if not os.path.isabs(CHROMIUM) else (CHROMIUM if os.access(CHROMIUM, os.X_OK)
                                                                         else None)
    if found is None:
        unavailable(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; `make test` does it as root)")
    return str(found)


def async_playwright() -> Any:
    try:
        from playwright.async_api import async_playwright as start
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    return start()


async def new_page(browser: Any, options: dict[str, Any]) -> Any:
    """A page in its own context whose `problems` lists script errors and console errors (CSP violations,
    failed loads) other than the statuses answered on purpose: the tests assert it stays empty."""
    context = await browser.new_context(**options, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text)
            if msg.type == "error" and not EXPECTED_STATUS.search(msg.text) else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems
    return page


async def screenshot(page: Any, name: str) -> None:
    directory = os.environ.get("PAYLINKS_SCREENSHOTS")
    if directory:  # Playwright creates the directory
        await page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)


async def fill_card(page: Any, number: str) -> None:
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiry (MM/YY)").fill("12/34")
    await page.get_by_label("CVC").fill("123")
    await page.get_by_label("Name on card").fill("Ann Tan")
    await page.get_by_role("button", name=re.compile(r"^Pay")).click()
