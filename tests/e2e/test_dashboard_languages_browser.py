"""The seller's dashboard in Thai and Spanish in Debian's Chromium (issue 18, point 5): longer words and
wider scripts still fit a phone (390 px) and a desktop (1280 px). On the overview, links, link, new-link,
settings, provider and webhooks pages nothing scrolls sideways (tables scroll inside their own region), no
button, navigation or heading is cut off, and the page logs no errors. PAYLINKS_SCREENSHOTS=dir keeps the
screenshots for a person to look at."""

from __future__ import annotations

import re
from typing import Any

import pytest

from core import i18n
from core.links import Customer, LinkDraft
from core.money import Money
from tests.adapters.web.dashboard_support import pay_link, shop_with_member
from tests.conftest import LiveApp
from tests.e2e.browser_support import DESKTOP, PHONE, new_page, screenshot

# Elements whose text must never be cut off: a wrapped label is fine, one wider than its box is not.
CLIPPED = """[...document.querySelectorAll('button, .button, nav, nav a, h1, h2, h3, legend')]
  .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
  .map(e => e.tagName + ': ' + e.textContent.trim().slice(0, 60))"""


@pytest.mark.parametrize(("locale", "shop", "currency"), [
    ("th_TH", "ร้านเค้กบ้านสวนแสนอร่อยประจำซอยสุขุมวิท", "THB"),
    ("es_ES", "Pastelería La Dulce Esperanza de Valladolid", "EUR"),
], ids=["th", "es"])
async def test_the_dashboard_fits_phone_and_desktop_in_long_languages(sqlite_live: LiveApp, browser: Any,
                                                                      locale: str, shop: str,
                                                                      currency: str) -> None:
    live, services = sqlite_live, sqlite_live.services
    language = i18n.language_of_locale(locale)
    merchant = await services.merchants.create(shop, currency=currency, locale=locale)
    merchant_id, owner_id = await shop_with_member(live, merchant_id=merchant.id)
    link, _ = await services.links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(425_000, currency), reference="INV-2026-00071",
        description="Wedding cake tasting, three tiers, lemon and raspberry",
        customer=Customer(name="Nguyễn Thị Minh Khai", email="minh.khai@example.com"),
        origin_platform="console", origin_address="console:u1"))
    await pay_link(live, link.id)
    await services.webhooks.create(merchant_id, "https://shop.example.com/paylinks-webhook",
                                   ["link.paid", "payment.succeeded"])
    pages = {"overview": "/dashboard", "links": "/dashboard/links", "link": f"/dashboard/links/{link.id}",
             "new-link": "/dashboard/links/new", "settings": "/dashboard/settings",
             "providers": "/dashboard/providers", "webhooks": "/dashboard/webhooks"}
    sign_in = i18n.tr(language).gettext("Sign in")
    for size, options in (("390", PHONE), ("1280", DESKTOP)):
        # The seller's browser speaks the shop's language too, so the sign-in page is in it already.
        page = await new_page(browser, {**options, "locale": locale.replace("_", "-")})
        try:
            await page.goto(await services.conversation.signins.create_link(merchant_id, owner_id))
            await page.get_by_role("button", name=sign_in).click()
            await page.wait_for_url(re.compile(r"/dashboard$"))
            for name, path in pages.items():
                await page.goto(live.base_url + path)
                assert await page.evaluate("document.documentElement.lang") == i18n.html_lang(language)
                where = f"{path} in {language} at {size} px"
                assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), where
                assert await page.evaluate(CLIPPED) == [], where
                await screenshot(page, f"dashboard-{language}-{name}-{size}")
            assert page.problems == []
        finally:
            await page.context.close()
