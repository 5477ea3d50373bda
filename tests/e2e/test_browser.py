"""End to end in a real headless Chromium on a phone-sized screen (issue 2, point 11).

A customer opens a link, presses Pay, types the test card and sees the receipt; on another link the
declined card shows the decline and a retry pays. Uses Debian's chromium through Playwright's
executable_path (tests/e2e/browser_support.py). Set PAYLINKS_SCREENSHOTS=/some/dir to keep screenshots.
"""

from __future__ import annotations

import re
from typing import Any

from core.models import LinkStatus, PaymentStatus
from tests.adapters.web.pages_support import make_link
from tests.conftest import LiveApp
from tests.e2e.browser_support import fill_card, screenshot


async def test_customer_pays_with_the_test_card_and_sees_the_receipt(sqlite_live: LiveApp, phone: Any) -> None:
    from playwright.async_api import expect

    link = await make_link(sqlite_live.services, description="Chocolate cake")
    await phone.goto(sqlite_live.services.links.url(link.id))
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Cake Shop")
    await expect(phone.get_by_text("Chocolate cake", exact=True)).to_be_visible()
    pay = phone.get_by_role("button", name=re.compile(r"^Pay S\$25\.00$"))
    await expect(pay).to_be_visible()
    # Mobile first: the button spans the phone's width and nothing scrolls sideways.
    box = await pay.bounding_box()
    assert box is not None and box["width"] >= 300
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(phone, "pay-page")

    await pay.click()
    await expect(phone).to_have_url(re.compile(r"/sandbox/checkout/"))
    await expect(phone.get_by_label("Card number")).to_be_visible()
    await fill_card(phone, "4242 4242 4242 4242")

    await expect(phone).to_have_url(re.compile(rf"/p/{link.id}\?payment=ch_"))
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Payment received")
    await expect(phone.get_by_text("S$25.00")).to_be_visible()
    await screenshot(phone, "receipt")

    stored = await sqlite_live.services.links.get(link.id)
    assert stored is not None and stored.status == LinkStatus.PAID
    (payment,) = await sqlite_live.services.links.payments_for(link.id)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.payer_name == "Ann Tan"
    await expect(phone.get_by_text(payment.id)).to_be_visible()
    assert phone.problems == []


async def test_declined_card_shows_the_decline_and_a_retry_pays(sqlite_live: LiveApp, phone: Any) -> None:
    from playwright.async_api import expect

    link = await make_link(sqlite_live.services, minor=1250, description="Two cupcakes")
    await phone.goto(sqlite_live.services.links.url(link.id))
    await phone.get_by_role("button", name=re.compile(r"^Pay")).click()
    await fill_card(phone, "4000 0000 0000 0002")

    alert = phone.get_by_role("alert")
    await expect(alert).to_contain_text("Your card was declined")
    await expect(alert).to_contain_text("Nothing was charged")
    await expect(phone.get_by_label("Card number")).to_have_value("")
    await screenshot(phone, "declined")
    assert await sqlite_live.services.links.payments_for(link.id) == []

    await fill_card(phone, "4242 4242 4242 4242")
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Payment received")
    stored = await sqlite_live.services.links.get(link.id)
    assert stored is not None and stored.status == LinkStatus.PAID
    assert phone.problems == []


async def test_customer_pays_the_seller_refunds_from_chat_and_the_receipt_says_refunded(
        sqlite_live: LiveApp, phone: Any) -> None:
    """Issue 13: pay in Chromium, refund from the seller's chat (with its confirmation), see "Refunded"."""
    from playwright.async_api import expect

    from adapters.payments.sandbox.provider import SandboxProvider
    from core.ports import IncomingMessage

    services = sqlite_live.services

    async def say(text: str) -> str:
        replies = await services.conversation.handle(IncomingMessage("console", "sam", "sam", text,
                                                                     display_name="Sam"))
        return "\n".join(reply.text for reply in replies)

    await say("/start")
    (reply,) = await services.conversation.handle(IncomingMessage("console", "sam", "sam", "/charge 25 SGD cake"))
    assert reply.link_id is not None
    await phone.goto(services.links.url(reply.link_id))
    await phone.get_by_role("button", name=re.compile(r"^Pay")).click()
    await fill_card(phone, "4242 4242 4242 4242")
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Payment received")
    receipt_url = phone.url

    question = await say(f"/refund {reply.link_id[:8]}")
    assert "to Ann Tan for cake? yes / no" in question
    assert "asked of sandbox" in await say("yes")
    provider = services.provider
    assert isinstance(provider, SandboxProvider)
    await provider.drain()  # the sandbox's signed refund webhook reached the app

    await phone.goto(receipt_url)
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Payment refunded")
    await expect(phone.get_by_text("↩ Refunded")).to_be_visible()
    await screenshot(phone, "refunded-receipt")
    stored = await services.links.get(reply.link_id)
    assert stored is not None and stored.status == LinkStatus.REFUNDED
    assert phone.problems == []
