"""The console platform: its ChatSender (rows in console_message), the chat loop, and paid alerts reaching a
console chat through the real outbox dispatcher."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import pytest

from adapters.console import ConsoleChat, ConsoleSender, incoming, render_plain, reply_json
from bots.config import Settings
from bots.dispatcher import build_dispatcher
from bots.services import Services, build_services
from core.ports import Button, ChatSender, MessageRef, PaymentEvent, Permanent, Reply


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    built = build_services(settings)
    yield built
    await built.db.dispose()


def make_chat(services: Services, name: str = "alice", *, json_mode: bool = False) -> tuple[ConsoleChat, io.StringIO]:
    out = io.StringIO()
    sender = services.senders["console"]
    assert isinstance(sender, ConsoleSender)
    return ConsoleChat(services.conversation, services.links, sender, name, json_mode=json_mode, out=out), out


def test_rendering() -> None:
    reply = Reply("💳 **S$25.00** — 2 \\*cakes\\*\nref `INV-1`", buttons=(Button("Pay S$25.00", "http://x/p/1"),))
    assert render_plain(reply) == "💳 S$25.00 — 2 *cakes*\nref INV-1\n[Pay S$25.00] http://x/p/1"
    assert reply_json(reply) == {"text": "💳 S$25.00 — 2 *cakes*\nref INV-1",
                                 "buttons": [{"label": "Pay S$25.00", "url": "http://x/p/1"}]}
    message = incoming("alice", "/start")
    assert (message.platform, message.user_id, message.address, message.display_name) == (
        "console", "alice", "alice", "alice")


async def test_sender_stores_messages_for_the_chat_to_print(services: Services) -> None:
    sender = services.senders["console"]
    assert isinstance(sender, ConsoleSender) and isinstance(sender, ChatSender)
    mine = await sender.record_shown("alice", Reply("already on screen"))
    first = await sender.send("alice", Reply("✅ Paid: **S$25.00** — cake"))
    await sender.send("bob", Reply("for bob"))
    await sender.edit(mine, Reply("edited"))
    assert (first.platform, first.address) == ("console", "alice") and first.message_id.isdigit()
    items = await sender.take_unshown("alice")
    assert [(i.reply.text, i.edit_of) for i in items] == [
        ("✅ Paid: **S$25.00** — cake", None), ("edited", int(mine.message_id)),
    ]
    assert await sender.take_unshown("alice") == []  # each message is printed once
    assert [i.reply.text for i in await sender.take_unshown("bob")] == ["for bob"]
    with pytest.raises(Permanent):
        await sender.send("", Reply("nowhere"))
    await sender.edit(MessageRef("console", "alice", "not-a-number"), Reply("still delivered"))
    assert [i.edit_of for i in await sender.take_unshown("alice")] == [None]


async def test_lines_in_json_and_the_link_message_is_remembered(services: Services) -> None:
    chat, out = make_chat(services, json_mode=True)

    async def lines() -> AsyncIterator[str]:
        for line in ["/start\n", "\n", "/charge 25 birthday cake\r\n"]:
            yield line

    await chat.run_lines(lines())
    start, charge = [json.loads(line) for line in out.getvalue().splitlines()]
    assert start["input"] == "/start" and "Welcome" in start["replies"][0]["text"]
    (reply,) = charge["replies"]
    assert reply["buttons"][0]["label"] == "Pay $25.00"
    assert "**" not in reply["text"] and "$25.00 — birthday cake" in reply["text"]
    link_id = reply["buttons"][0]["url"].rsplit("/", 1)[1]
    link = await services.links.get(link_id)
    assert link is not None and link.origin_message is not None
    assert (link.origin_message["platform"], link.origin_message["address"]) == ("console", "alice")


async def test_a_paid_alert_reaches_the_console_chat(services: Services) -> None:
    """`paylinks serve` + `paylinks chat`: the outbox delivers to the console sender, the chat prints it."""
    chat, out = make_chat(services)
    (reply,) = (await chat.say("/charge 25 birthday cake"))[-1:]
    assert reply.link_id
    link = await services.links.get(reply.link_id)
    assert link is not None
    await services.links.record_payment(PaymentEvent(
        provider="sandbox", event_id="evt_1", kind="payment.succeeded", link_id=link.id, provider_ref="ch_1",
        amount_minor=link.amount_minor, currency=link.currency,
    ))
    assert await build_dispatcher(services).run_once() >= 1
    assert await chat.print_alerts() >= 1
    printed = out.getvalue()
    assert "✅ Paid" in printed and "$25.00" in printed
    assert "(updated)" in printed  # the /charge message itself was edited too
    assert await chat.print_alerts() == 0


async def test_alerts_on_in_another_console_chat(services: Services) -> None:
    seller, _ = make_chat(services)
    await seller.say("/start")
    code = (await seller.say("/invite"))[0].text.split("`")[1]
    helper, helper_out = make_chat(services, "bob")
    await helper.say(f"/join {code}")
    await helper.say("/alerts on")
    (reply,) = (await seller.say("/charge 9 pie"))[-1:]
    link = await services.links.get(reply.link_id)  # type: ignore[arg-type]
    assert link is not None
    await services.links.record_payment(PaymentEvent(
        provider="sandbox", event_id="evt_2", kind="payment.succeeded", link_id=link.id, provider_ref="ch_2",
        amount_minor=link.amount_minor, currency=link.currency,
    ))
    await build_dispatcher(services).run_once()
    assert await helper.print_alerts() == 1
    assert "✅ Paid" in helper_out.getvalue() and "pie" in helper_out.getvalue()


async def test_merchant_option(services: Services) -> None:
    merchant = await services.merchants.create("Cake Shop", currency="SGD", locale="en_SG")
    chat, _out = make_chat(services)
    identity = await chat.join_merchant(merchant.id)
    assert identity.is_owner
    (reply,) = (await chat.say("/charge 25 cake"))[-1:]
    assert "S$25.00" in reply.text


def test_a_trailing_backslash_continues_the_message_on_the_next_line() -> None:
    from adapters.console import joined_line

    pending: list[str] = []
    assert joined_line(pending, "/invoice to alice@example.com \\") is None
    assert joined_line(pending, "2 x cake 25\\") is None
    assert joined_line(pending, "tax 9%") == "/invoice to alice@example.com\n2 x cake 25\ntax 9%"
    assert pending == [] and joined_line(pending, "/links") == "/links"
