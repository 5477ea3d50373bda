"""/sell, /donate, /split and /promo in the chat (the same grammar everywhere), on SQLite and PostgreSQL;
and the grammar beside /charge: `/charge 25 for 2 birthday cakes` keeps its meaning."""

from __future__ import annotations

import pytest

from core.commands import parse
from core.commands.values import Charge, CommandError, ParseContext, Promo, Sell
from core.models import LinkStatus
from core.promos import PromoService
from tests.chat_support import ChatDriver

CTX = ParseContext(locale="en_SG", default_currency="SGD")


def sell(text: str) -> Sell:
    found = parse(text, CTX)
    assert isinstance(found, Sell), found
    return found


def error(text: str) -> CommandError:
    found = parse(text, CTX)
    assert isinstance(found, CommandError), found
    return found


def test_sell_grammar() -> None:
    tickets = sell("/sell 25 concert ticket stock 50")
    assert (tickets.charge.money.amount_minor, tickets.charge.description) == (2500, "concert ticket")
    assert (tickets.terms.stock, tickets.terms.quantity_max, tickets.terms.max_payments) == (50, 50, None)
    brownies = sell("/sell 12 brownie box")
    assert (brownies.terms.stock, brownies.terms.max_payments, brownies.terms.quantity_max) == (None, None, None)
    seats = sell("/sell 30 workshop seat max 20")
    assert (seats.charge.description, seats.terms.max_payments) == ("workshop seat", 20)
    # Words that only look like ours stay in the description.
    assert sell("/sell 8 stock pot soup").charge.description == "stock pot soup"
    assert sell("/sell 5 max headroom dvd").charge.description == "max headroom dvd"


def test_donate_grammar() -> None:
    fund = sell("/donate school library fund")
    assert (fund.charge.description, fund.terms.amount_mode, fund.terms.min_amount_minor) == \
        ("school library fund", "customer_chooses", 100)
    relief = sell("/donate flood relief min 5 suggest 10 20 50")
    assert relief.charge.description == "flood relief"
    assert (relief.terms.min_amount_minor, relief.terms.suggested_amounts) == (500, (1000, 2000, 5000))
    bad = error("/donate flood relief min 5 suggest 1")
    assert "at least the minimum" in bad.message and bad.example == "/donate flood relief min 5 suggest 10 20 50"
    assert "description" in error("/donate min 5").message


def test_split_grammar_and_charge_keeps_its_meaning() -> None:
    for text in ("/split 120 dinner 4 ways", "/split 120 dinner between 4", "/split 120 dinner for 4 people"):
        found = sell(text)
        assert (found.charge.money.amount_minor, found.charge.description, found.terms.split_ways) == \
            (12000, "dinner", 4), text
    assert error("/split 120 dinner").example == "/split 120 dinner 4 ways"
    assert "2 to 100" in error("/split 120 dinner 1 ways").message
    # /charge is untouched: "for 2 birthday cakes" is what it is for, and so is "for 4 people".
    cakes = parse("/charge 25 for 2 birthday cakes", CTX)
    assert isinstance(cakes, Charge) and (cakes.money.amount_minor, cakes.description) == (2500, "2 birthday cakes")
    dinner = parse("/charge 120 dinner for 4 people", CTX)
    assert isinstance(dinner, Charge) and dinner.description == "dinner for 4 people"


def test_promo_grammar() -> None:
    assert parse("/promo", CTX) == Promo("list")
    assert parse("/promo off save10", CTX) == Promo("off", "SAVE10")
    ten = parse("/promo SAVE10 10%", CTX)
    assert isinstance(ten, Promo) and (ten.code, ten.percent_bp) == ("SAVE10", 1000)
    welcome = parse("/promo WELCOME 5.00 uses 100 exp 30d", CTX)
    assert isinstance(welcome, Promo) and welcome.amount_off is not None
    assert (welcome.amount_off.amount_minor, welcome.max_redemptions) == (500, 100)
    assert welcome.expires_at is not None
    assert error("/promo SAVE10 150%").example == "/promo SAVE10 10%"
    assert "uses N" in error("/promo SAVE10 10% sometimes").message


async def test_sell_in_chat_shows_counts_and_lists(chat: ChatDriver) -> None:
    await chat("/start")
    (reply,) = await chat("/sell 25 concert ticket stock 50")
    assert reply.link_id is not None
    text = await chat.text("/status " + reply.link_id)
    assert "🎟 0 of 50 sold · $0.00" in text
    assert "Sells until 50 are sold" in reply.text and "🎟 0 of 50 sold" in reply.text
    link = await chat.services.links.get(reply.link_id)
    assert link is not None and link.reusable and link.stock == 50 and link.quantity_max == 50
    assert "🎟 0 of 50 sold" in await chat.text("/links")


async def test_donate_and_split_in_chat(chat: ChatDriver) -> None:
    await chat("/start")
    (donation,) = await chat("/donate flood relief min 5 suggest 10 20 50")
    assert donation.link_id and "Donors choose the amount (from $5.00)" in donation.text
    (split,) = await chat("/split 120 dinner 4 ways")
    assert split.link_id and "Split 4 ways" in split.text and "🧾 0 of 4 paid" in split.text
    link = await chat.services.links.get(split.link_id)
    assert link is not None and (link.split_ways, link.stock, link.status) == (4, 4, LinkStatus.ACTIVE)
    wrong = await chat.text("/split 120 dinner")
    assert "how many shares" in wrong and "/split 120 dinner 4 ways" in wrong


async def test_promo_in_chat(chat: ChatDriver) -> None:
    await chat("/start")
    made = await chat.text("/promo SAVE10 10%")
    assert "SAVE10" in made and "10% off" in made
    assert "already have" in await chat.text("/promo save10 5%")
    await chat("/promo WELCOME 5.00 uses 100 exp 30d")
    listed = await chat.text("/promo")
    assert "WELCOME — $5.00 off · used 0 of 100" in listed and "SAVE10 — 10% off · used 0" in listed
    assert "Ended" in await chat.text("/promo off SAVE10")
    assert "no promo code" in await chat.text("/promo off SAVE10")


async def _merchant(chat: ChatDriver) -> str:
    from core.models import Merchant
    from core.sql import table

    async with chat.services.db.read() as conn:
        return str((await conn.execute(table(Merchant).select())).first().id)  # type: ignore[union-attr]


async def test_promo_codes_are_per_shop(chat: ChatDriver) -> None:
    await chat("/start")
    await chat("/promo SAVE10 10%")
    other = chat.as_user("bob")
    await other("/start")
    assert "no promo codes yet" in (await other.text("/promo")).casefold()
    codes = await PromoService(chat.services.db).list(await _merchant(chat))
    assert [c.code for c in codes] == ["SAVE10"]


@pytest.mark.parametrize("text", ["/sell", "/sell concert ticket 25", "/split dinner 4 ways"])
async def test_sell_errors_answer_with_an_example(chat: ChatDriver, text: str) -> None:
    await chat("/start")
    answer = await chat.text(text)
    assert "For example:" in answer, answer


async def test_alerts_per_payment_coalesced_edits_and_sold_out_once(chat: ChatDriver) -> None:
    from sqlalchemy import select

    from core.models import OutboxMessage
    from core.outbox import DIGEST_KIND
    from core.ports import MessageRef, PaymentEvent
    from core.sales_alerts import EDIT_KIND, SOLD_OUT_KIND
    from core.sql import table

    await chat("/start")
    await chat("/alerts on")
    (reply,) = await chat("/sell 25 concert ticket stock 3")
    assert reply.link_id is not None
    links = chat.services.links
    await links.attach_message(reply.link_id, MessageRef("console", "alice", "m1"))
    for n in range(3):
        held = await links.reservations.reserve(reply.link_id)
        await links.reservations.attach_checkout(held.id, "sandbox", f"cs_{n}", None)
        await links.record_payment(PaymentEvent("sandbox", f"evt_{n}", "payment.succeeded", reply.link_id,
                                                f"ch_{n}", 2500, "USD", checkout_ref=f"cs_{n}"))
    outbox = table(OutboxMessage)
    async with chat.services.db.read() as conn:
        rows = (await conn.execute(select(outbox).where(outbox.c.link_id == reply.link_id)
                                   .order_by(outbox.c.id))).all()
    alerts = [r for r in rows if r.kind == DIGEST_KIND]
    # One alert per payment, each with the count (merged into digests by the dispatcher under load).
    assert len(alerts) == 3
    for n, row in enumerate(alerts, start=1):
        assert f"🎟 {n} of 3 sold · ${25 * n}.00" in row.payload["reply"]["text"]
        assert row.payload["reply"]["text"].startswith("✅ Paid")
    # The link message: edits waiting to be sent were rewritten, not added (pacing under edit limits).
    edits = [r for r in rows if r.kind == EDIT_KIND]
    assert len(edits) == 1
    assert "🎟 Sold out" in edits[0].payload["reply"]["text"]
    assert "3 of 3 sold · $75.00" in edits[0].payload["reply"]["text"]
    sold_out = [r for r in rows if r.kind == SOLD_OUT_KIND]
    assert len(sold_out) == 1 and "Sold out" in sold_out[0].payload["reply"]["text"]
    assert "🎟 Sold out" in await chat.text("/status " + reply.link_id)


async def test_report_counts_each_payment_of_a_reusable_link(chat: ChatDriver) -> None:
    from core.ports import PaymentEvent

    await chat("/start")
    (reply,) = await chat("/sell 12 brownie box")
    assert reply.link_id is not None
    links = chat.services.links
    for n, quantity in enumerate((1, 1)):
        held = await links.reservations.reserve(reply.link_id, quantity=quantity)
        await links.reservations.attach_checkout(held.id, "sandbox", f"cs_{n}", None)
        await links.record_payment(PaymentEvent("sandbox", f"evt_{n}", "payment.succeeded", reply.link_id,
                                                f"ch_{n}", 1200, "USD", checkout_ref=f"cs_{n}"))
    report = await chat.text("/report today test")
    assert "Paid: $24.00 (2 links)" in report and "Open:" not in report
