"""The browser fixtures of the end-to-end tests (tests/e2e/browser_support.py has the rest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.browser_support import CHROMIUM_ARGS, PHONE, async_playwright, chromium_path, new_page


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def phone(browser: Any) -> AsyncIterator[Any]:
    page = await new_page(browser, PHONE)
    try:
        yield page
    finally:
        await page.context.close()
