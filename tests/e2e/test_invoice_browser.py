"""The pay page's items and the receipt's PDF download in Debian's chromium, on a phone and a desktop.

PAYLINKS_SCREENSHOTS=DIR keeps the screenshots (pay page and receipt at 390x844 and 1280x800)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from core.line_items import LineItem, compute
from core.links import Customer, LinkDraft
from core.money import Money
from tests.adapters.web.pages_support import payment_event
from tests.conftest import LiveApp
from tests.e2e.browser_support import DESKTOP, PHONE, new_page, screenshot


@pytest.mark.parametrize("device", ["phone", "desktop"])
async def test_items_and_receipt_download(sqlite_live: LiveApp, browser: Any, device: str) -> None:
    services = sqlite_live.services
    shop = await services.merchants.create("Sakura Bakery", currency="SGD", locale="en_SG")
    totals = compute([LineItem("Matcha cake 抹茶ケーキ", Decimal(2), Decimal(25), Decimal(9)),
                      LineItem("Delivery", Decimal(1), Decimal(5))], "SGD")
    link, _ = await services.links.create(LinkDraft(
        merchant_id=shop.id, money=Money(totals.total_minor, "SGD"), description="Birthday order",
        customer=Customer(name="สมชาย ใจดี"), line_items=totals))
    page = await new_page(browser, PHONE if device == "phone" else DESKTOP)
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
        assert page.problems == []
    finally:
        await page.context.close()
