"""Real money providers end to end in a real headless Chromium (issue 12, "How it is checked").

A customer on a phone opens a link, presses Pay, lands on the fake provider's hosted page (FakeStripe /
FakePortOne on 127.0.0.1), pays there; the provider sends its signed webhook to our server and sends the
customer back; the customer sees the receipt, and the seller's console chat gets "✅ Paid" through the
outbox dispatcher (background jobs on, as in `paylinks serve`). SQLite only: storage is covered elsewhere
on both back ends. Set PAYLINKS_SCREENSHOTS=/some/dir to keep screenshots.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.console import ConsoleSender
from bots.config import Secret, Settings
from core.links import LinkDraft
from core.models import LinkStatus, PaymentLink, PaymentStatus
from core.money import Money
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.e2e.browser_support import screenshot
from tests.fakes.portone import FakePortOne
from tests.fakes.stripe import FakeStripe

STRIPE_KEY = "sk_test_paylinks_browser"
STRIPE_WHSEC = "whsec_paylinks_browser"
PORTONE_CLIENT_KEY = "pk_test_BROWSER"
PORTONE_SECRET = "sk_test_browser_secret"
SELLER = "alice"


async def serve(settings: Settings) -> tuple[LiveApp, Any]:
    # Background jobs on: the dispatcher delivers the seller's alert like `paylinks serve` does.
    return await start_live_app(settings)


@pytest.fixture
async def stripe_app(sqlite_database_url: str) -> AsyncIterator[tuple[LiveApp, FakeStripe]]:
    fake = await FakeStripe(secret_keys=(STRIPE_KEY,), webhook_secret=STRIPE_WHSEC).start()
    settings = make_settings(sqlite_database_url)
    settings.payments.provider = "stripe"
    settings.payments.stripe.secret_key = Secret(STRIPE_KEY)
    settings.payments.stripe.webhook_secret = Secret(STRIPE_WHSEC)
    settings.payments.stripe.api_base_url = fake.url
    app, client = await serve(settings)
    fake.webhook_url = app.base_url + "/webhooks/stripe"
    try:
        yield app, fake
    finally:
        await client.close()
        await fake.close()


@pytest.fixture
async def portone_app(sqlite_database_url: str) -> AsyncIterator[tuple[LiveApp, FakePortOne]]:
    fake = await FakePortOne(client_key=PORTONE_CLIENT_KEY, secret_key=PORTONE_SECRET).start()
    settings = make_settings(sqlite_database_url)
    settings.payments.provider = "portone"
    section = settings.payments.portone
    section.client_key = PORTONE_CLIENT_KEY
    section.secret_key = Secret(PORTONE_SECRET)
    section.country_code = "TH"
    section.api_base_url = fake.url
    app, client = await serve(settings)
    fake.webhook_url = app.base_url + "/webhooks/portone"
    try:
        yield app, fake
    finally:
        await client.close()
        await fake.close()


async def make_link(live: LiveApp, shop: str, minor: int, currency: str, description: str) -> PaymentLink:
    merchant = await live.services.merchants.create(shop, currency=currency, locale="en_SG")
    link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant.id, money=Money(minor, currency), description=description,
        origin_platform="console", origin_address=SELLER))
    return link


async def seller_sees(live: LiveApp, words: str, timeout_s: float = 10) -> str:
    """The seller's console chat: wait for a message containing `words` (the dispatcher sends it)."""
    sender = ConsoleSender(live.services.db)
    seen: list[str] = []
    async with asyncio.timeout(timeout_s):
        while True:
            seen.extend(item.reply.text for item in await sender.take_unshown(SELLER))
            found = next((text for text in seen if words in text), None)
            if found is not None:
                return found
            live.services.outbox.wake()
            await asyncio.sleep(0.05)


async def pay_on_our_page(phone: Any, live: LiveApp, link: PaymentLink, amount: str, shot: str) -> None:
    from playwright.async_api import expect

    await phone.goto(live.services.links.url(link.id))
    await expect(phone.get_by_text("Test mode", exact=False).first).to_be_visible()
    await screenshot(phone, shot)
    await phone.get_by_role("button", name=re.compile(rf"^Pay {re.escape(amount)}$")).click()


async def see_the_receipt(phone: Any, live: LiveApp, link: PaymentLink, amount: str, shot: str) -> None:
    from playwright.async_api import expect

    await expect(phone).to_have_url(re.compile(rf"/p/{link.id}(\?|$)"))
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Payment received")
    await expect(phone.get_by_text(amount).first).to_be_visible()
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(phone, shot)
    stored = await live.services.links.get(link.id)
    assert stored is not None and stored.status == LinkStatus.PAID
    (payment,) = await live.services.links.payments_for(link.id)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.livemode is False
    await expect(phone.get_by_text(payment.id)).to_be_visible()


async def test_a_customer_pays_through_stripe_checkout(stripe_app: tuple[LiveApp, FakeStripe], phone: Any) -> None:
    from playwright.async_api import expect

    live, fake = stripe_app
    link = await make_link(live, "Cake Shop", 2500, "SGD", "Chocolate cake")
    # Stripe is down for the first press: a calm page, and its button leads back to pay again.
    fake.fail("sessions.create", status=503)
    await pay_on_our_page(phone, live, link, "S$25.00", "stripe-pay-page")
    await expect(phone.get_by_role("heading", level=1)).to_have_text("The payment could not start")
    await expect(phone.get_by_text("please try again")).to_be_visible()
    await screenshot(phone, "stripe-try-again")
    await phone.get_by_role("link", name="Back to the payment").click()
    await phone.get_by_role("button", name="Pay S$25.00").click()

    await expect(phone).to_have_url(re.compile(rf"^{re.escape(fake.url)}/pay/cs_test_"))
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Chocolate cake")
    await phone.get_by_role("button", name="Pay").click()  # Stripe's page: webhook, then success_url

    await see_the_receipt(phone, live, link, "S$25.00", "stripe-receipt")
    assert [status for status, _ in fake.events_sent] == [200]  # the signed webhook was accepted
    alert = await seller_sees(live, "✅ Paid")
    assert "S$25.00" in alert and "🧪 Test mode" in alert, alert
    assert phone.problems == []


async def test_a_customer_pays_through_portone(portone_app: tuple[LiveApp, FakePortOne], phone: Any) -> None:
    from playwright.async_api import expect

    live, fake = portone_app
    link = await make_link(live, "Noodle Bar", 25000, "THB", "Pad thai")
    await pay_on_our_page(phone, live, link, "THB 250.00", "portone-pay-page")

    await expect(phone).to_have_url(re.compile(rf"^{re.escape(fake.url)}/checkout\?ref="))
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Noodle Bar")
    await phone.get_by_role("button", name="Pay").click()  # PortOne's page: webhook, then signed redirect

    await see_the_receipt(phone, live, link, "THB 250.00", "portone-receipt")
    assert [status for status, _ in fake.webhooks_sent] == [200]
    assert fake.calls_of("fetch"), "the webhook was confirmed with fetch-status"
    alert = await seller_sees(live, "✅ Paid")
    assert "250.00" in alert and "🧪 Test mode" in alert, alert
    assert phone.problems == []
