"""The pay page in Thai, Japanese and Vietnamese in a real browser (issue 18, point 5): Thai and CJK shop
names, an Arabic description, nothing clipped or scrolling sideways on a phone or a desktop. With
PAYLINKS_SCREENSHOTS=dir the pages are saved for a person to look at."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.web.pages import page_lang
from core import i18n
from core.money import format_money
from tests.adapters.web.pages_support import make_link
from tests.conftest import LiveApp
from tests.e2e.browser_support import DESKTOP, PHONE, new_page, screenshot


@pytest.mark.parametrize(("language", "shop", "locale", "currency"), [
    ("th", "ร้านเค้กบ้านสวนแสนอร่อยประจำซอยสุขุมวิทห้าสิบ", "th_TH", "THB"),
    ("ja", "東京ケーキ店 本店（渋谷）", "ja_JP", "JPY"),
    ("vi", "Tiệm Bánh Ngọt Hạnh Phúc Sài Gòn", "vi_VN", "VND"),
])
async def test_pay_page_in_wide_scripts_fits_phone_and_desktop(sqlite_live: LiveApp, browser: Any, language: str,
                                                               shop: str, locale: str, currency: str) -> None:
    from playwright.async_api import expect

    description = "كعكة عيد ميلاد بالشوكولاتة 🎂"
    link = await make_link(sqlite_live.services, minor=250_000, currency=currency, locale=locale,
                           merchant_name=shop, description=description)
    url = f"{sqlite_live.services.links.url(link.id)}?lang={language}"
    t = i18n.tr(language)
    for name, options in (("phone", PHONE), ("desktop", DESKTOP)):
        page = await new_page(browser, options)
        try:
            await page.goto(url)
            assert await page.evaluate("document.documentElement.lang") == page_lang(language, locale)
            await expect(page.get_by_role("heading", level=1)).to_have_text(shop)
            await expect(page.get_by_text(description)).to_be_visible()
            amount = format_money(250_000, currency, locale)
            pay = page.get_by_role("button", name=t.gettext("Pay %(amount)s", amount=amount))
            await expect(pay).to_be_visible()
            # Nothing scrolls sideways, and the long shop name wraps instead of being cut off.
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            clipped = await page.evaluate(
                "[...document.querySelectorAll('h1, .description, .amount, .languages')]"
                ".some(e => e.scrollWidth > e.clientWidth + 1)")
            assert clipped is False
            await screenshot(page, f"pay-page-{language}-{name}")
            assert page.problems == []
        finally:
            await page.context.close()
