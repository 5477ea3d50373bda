"""End to end in headless Chromium on a phone: a seller types `/sell 25 concert ticket stock 50` in the
console chat, a customer buys 3 tickets on the pay page (HTML form, the sandbox card) and sees the receipt,
and the seller's link message is edited to show the count (through the real outbox dispatcher)."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

from adapters.console import ConsoleChat, ConsoleSender
from bots.dispatcher import build_dispatcher
from tests.conftest import LiveApp
from tests.e2e.browser_support import fill_card, screenshot


async def test_buy_three_tickets_and_the_seller_sees_the_count(sqlite_live: LiveApp, phone: Any) -> None:
    from playwright.async_api import expect

    services = sqlite_live.services
    sender = services.senders["console"]
    assert isinstance(sender, ConsoleSender)
    out = io.StringIO()
    chat = ConsoleChat(services.conversation, services.links, sender, "alice", out=out)
    await chat.say("/start")
    await chat.say("/currency SGD")
    (reply,) = (await chat.say("/sell 25 concert ticket stock 50"))[-1:]
    assert reply.link_id is not None and "🎟 0 of 50 sold" in reply.text

    await phone.goto(services.links.url(reply.link_id))
    await expect(phone.get_by_text("0 of 50 sold · 50 left")).to_be_visible()
    await phone.get_by_label("Quantity").fill("3")
    await screenshot(phone, "sell-page")
    await phone.get_by_role("button", name="Pay", exact=True).click()
    await expect(phone).to_have_url(re.compile(r"/sandbox/checkout/"))
    await expect(phone.get_by_role("button", name=re.compile(r"75\.00"))).to_be_visible()
    await fill_card(phone, "4242 4242 4242 4242")
    await expect(phone).to_have_url(re.compile(rf"/p/{reply.link_id}\?payment=ch_"))
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Payment received")
    await expect(phone.get_by_text("concert ticket × 3")).to_be_visible()
    await screenshot(phone, "sell-receipt")
    assert phone.problems == []

    # The app's own dispatcher may have sent them already; run one here too, until the chat has them.
    dispatcher = build_dispatcher(services)
    for _ in range(100):
        await dispatcher.run_once()
        await chat.print_alerts()
        if "3 of 50 sold" in out.getvalue() and "(updated)" in out.getvalue():
            break
        await asyncio.sleep(0.05)
    printed = out.getvalue()
    assert "🎟 3 of 50 sold · SGD 75.00" in printed, printed
    assert "(updated)" in printed  # the /sell message itself was edited


async def test_donation_refuses_a_bad_amount_on_the_page_then_a_suggestion_pays(sqlite_live: LiveApp,
                                                                                phone: Any) -> None:
    from playwright.async_api import expect

    from core.commands.sell import parse_donate
    from core.commands.values import ParseContext

    services = sqlite_live.services
    merchant = await services.merchants.create("Library Friends", currency="SGD", locale="en_SG")
    sell = parse_donate("school library fund min 5 suggest 10 20 50", ParseContext("en_SG", "SGD"))
    link, _ = await services.links.create(sell.draft(merchant_id=merchant.id, member_id=None, platform="console",
                                                     address="alice"))
    await phone.goto(services.links.url(link.id))
    await phone.get_by_label("Or enter an amount (SGD)").fill("2")
    await phone.get_by_role("button", name="Pay this amount").click()
    await expect(phone.get_by_role("alert")).to_have_text(re.compile("The smallest amount is 5.00 SGD"))
    await screenshot(phone, "donate-error")
    await phone.set_viewport_size({"width": 1280, "height": 800})
    await screenshot(phone, "donate-error-desktop")
    await phone.get_by_role("button", name="S$20.00").click()
    await expect(phone).to_have_url(re.compile(r"/sandbox/checkout/"))
    await fill_card(phone, "4242 4242 4242 4242")
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Payment received")
    await expect(phone.get_by_text("S$20.00")).to_be_visible()
    assert phone.problems == []
