"""The pay page's items and the receipt's PDF download in Debian's chromium, on a phone and a desktop.

PAYLINKS_SCREENSHOTS=DIR keeps the screenshots (pay page and receipt at 390x844 and 1280x800)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from core.line_items import LineItem, compute
from core.links import Customer, LinkDraft
from core.money import Money
from tests.adapters.web.pages_support import payment_event
from tests.conftest import LiveApp
from tests.e2e.test_browser import CHROMIUM_ARGS, PHONE, _unavailable, chromium_path, screenshot

DESKTOP = {"viewport": {"width": 1280, "height": 800}}


@pytest.mark.parametrize("device", ["phone", "desktop"])
async def test_items_and_receipt_download(sqlite_live: LiveApp, device: str) -> None:
    executable = chromium_path()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    services = sqlite_live.services
    shop = await services.merchants.create("Sakura Bakery", currency="SGD", locale="en_SG")
    totals = compute([LineItem("Matcha cake 抹茶ケーキ", Decimal(2), Decimal(25), Decimal(9)),
                      LineItem("Delivery", Decimal(1), Decimal(5))], "SGD")
    link, _ = await services.links.create(LinkDraft(
        merchant_id=shop.id, money=Money(totals.total_minor, "SGD"), description="Birthday order",
        customer=Customer(name="สมชาย ใจดี"), line_items=totals))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = await browser.new_context(**(PHONE if device == "phone" else DESKTOP))
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        try:
            await page.goto(f"{sqlite_live.base_url}/p/{link.id}")
            table = page.locator("table.items")
            await table.wait_for()
            assert await table.is_visible()
            assert "S$59.50" in await table.inner_text()
            # The table fits the screen: nothing scrolls sideways on a phone.
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await screenshot(page, f"invoice-pay-{device}")
            await services.links.record_payment(payment_event(link, 1))
            await page.goto(f"{sqlite_live.base_url}/p/{link.id}")
            download = page.get_by_role("link", name="Download receipt (PDF)")
            assert await download.is_visible()
            async with page.expect_download() as info:
                await download.click()
            saved = await (await info.value).path()
            assert saved is not None
            assert (await asyncio.to_thread(saved.read_bytes))[:5] == b"%PDF-"
            await screenshot(page, f"invoice-receipt-{device}")
            assert problems == []
        finally:
            await context.close()
            await browser.close()
