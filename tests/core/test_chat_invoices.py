"""/invoice over several lines, /charge … every month, /series and /series stop (asks first), through the
conversation core on SQLite and PostgreSQL (the `chat` fixture, console platform)."""

from __future__ import annotations

import asyncio
import io
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from core.commands.recurring import split_recurrence
from core.commands.values import CommandError, Recurrence
from core.invoices import Invoices
from core.markup import to_plain
from core.models import SeriesStatus
from tests.chat_support import ChatDriver


async def open_shop(chat: ChatDriver) -> str:
    await chat("/start")
    identity = await chat.services.conversation.members.identify(chat.message(""))
    assert identity is not None
    await chat.services.merchants.update(identity.merchant.id, currency="SGD", locale="en_SG",
                                         timezone="Asia/Singapore")
    return identity.merchant.id


@pytest.mark.parametrize(("words", "rest", "expected"), [
    ("150 tuition every month to +65 9123 4567", "150 tuition to +65 9123 4567", Recurrence("month")),
    ("20 lunch every week", "20 lunch", Recurrence("week")),
    ("20 lunch every 2 weeks", "20 lunch", Recurrence("week", 2)),
    ("99 fee every year", "99 fee", Recurrence("year")),
    ("150 tuition every month for 6 months", "150 tuition", Recurrence("month", count=6)),
    ("150 tuition every 2 months for 6 months", "150 tuition", Recurrence("month", 2, count=3)),
    ("10 paper every week for 2 months", "10 paper", Recurrence("week", count=8)),
    ("1200 rent monthly until 2027-06", "1200 rent", Recurrence("month", until=date(2027, 6, 30))),
    ("25 trip for 6 people", "25 trip for 6 people", None),  # no `every`: an ordinary charge
])
def test_schedule_phrases(words: str, rest: str, expected: Recurrence | None) -> None:
    assert split_recurrence(words) == (rest, expected)


def test_a_bad_schedule_phrase_says_what_is_wrong() -> None:
    with pytest.raises(CommandError) as bad:
        split_recurrence("150 tuition every fortnite")
    assert "week, month and year" in bad.value.message and bad.value.example is not None
    assert bad.value.example.startswith("/charge 150 tuition every month")


async def test_invoice_over_several_lines_answers_with_the_link_and_a_pdf(chat: ChatDriver) -> None:
    shop = await open_shop(chat)
    (reply,) = await chat("/invoice to alice@example.com ref INV-77\n2 x cake 25\ndelivery 5\ntax 9%")
    text = to_plain(reply.text)
    assert reply.link_id is not None
    link = await chat.services.links.get(reply.link_id)
    assert link is not None and link.amount_minor == 5995  # (50 + 5) + 9 % of each: 4.50 + 0.45
    assert link.customer_email == "alice@example.com" and link.reference == "INV-77"
    assert "Subtotal S$55.00" in text and "tax S$4.95" in text and "total S$59.95" in text
    info = await Invoices(chat.services.db).of(link.id)
    assert info is not None and info.number == "INV-2026-0001" and info.totals is not None
    assert [line.item.name for line in info.totals.lines] == ["cake", "delivery"]
    # The console gets a path to the PDF; the file is the invoice.
    path = Path(text.split("Invoice PDF: ")[1].split()[0])
    body = await asyncio.to_thread(path.read_bytes)
    pdf = "".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
    assert "INV-2026-0001" in pdf and "cake" in pdf and "S$59.95" in pdf
    assert any(b.label == "Invoice (PDF)" and b.url.endswith(f"/p/{link.id}/invoice.pdf") for b in reply.buttons)
    assert shop


async def test_invoice_mistakes_are_explained_with_an_example(chat: ChatDriver) -> None:
    await open_shop(chat)
    answer = await chat.text("/invoice to bob@example.com")
    assert "Put each item on its own line" in answer and "2 x cake 25" in answer
    answer = await chat.text("/invoice\ncake")
    assert "as an item" in answer or "needs a price" in answer
    assert "/invoice to alice@example.com" in answer


async def test_charge_every_month_makes_a_series_and_series_stop_asks_first(chat: ChatDriver) -> None:
    shop = await open_shop(chat)
    (reply,) = await chat("/charge 150 tuition every month for 6 months to +65 9123 4567")
    text = to_plain(reply.text)
    assert text.startswith("🔁 S$150.00 — tuition, every month, 6 times"), text
    series = (await chat.services.series.list_series(shop))[0]
    assert series.count == 6 and series.every == "month" and series.made == 1
    assert series.template["customer"]["phone"] == "+6591234567"
    assert f"/series stop {series.id}" in text and "First link:" in text
    listing = await chat.text("/series")
    assert series.id in listing and "every month, 1/6 made, active" in listing
    (question,) = await chat(f"/series stop {series.id}")
    assert "yes / no" in to_plain(question.text) and [b.label for b in question.buttons] == ["Yes, stop it", "No"]
    assert await chat.text("no") == "OK, the series goes on."
    assert (await chat.services.series.get(series.id, shop)).status is SeriesStatus.ACTIVE  # type: ignore[union-attr]
    await chat(f"/series stop {series.id}")
    assert await chat.text("yes") == f"⏹ Series {series.id} stopped after 1 link."
    assert (await chat.services.series.get(series.id, shop)).status is SeriesStatus.CANCELLED  # type: ignore[union-attr]
    assert "already ended" in await chat.text(f"/series stop {series.id}")
    assert "found no series" in await chat.text("/series stop ser_nope")


async def test_a_later_period_tells_the_seller(chat: ChatDriver) -> None:
    from sqlalchemy import select

    from core.outbox import OUTBOX

    await open_shop(chat)
    await chat("/charge 20 lunch every week to +65 9123 4567")
    chat.clock.advance(days=7, minutes=1)
    assert await chat.services.series.run_due() == 1
    async with chat.services.db.read() as conn:
        rows = (await conn.execute(select(OUTBOX.c.kind, OUTBOX.c.platform, OUTBOX.c.address, OUTBOX.c.payload)
                                   .where(OUTBOX.c.kind == "series.made.alert"))).all()
    assert len(rows) == 1 and rows[0].platform == "console" and rows[0].address == chat.user
    assert "link 2 made" in rows[0].payload["reply"]["text"]


async def test_shop_sets_the_invoice_prefix_and_address(chat: ChatDriver) -> None:
    shop = await open_shop(chat)
    assert await chat.text("/shop prefix cc") == "Done: new invoices are numbered CC-YYYY-0001, …"
    assert "address" in await chat.text("/shop address 1 Orchard Rd / Singapore 238801")
    assert await Invoices(chat.services.db).settings(shop) == ("CC", "1 Orchard Rd\nSingapore 238801")
    assert "letters, digits" in await chat.text("/shop prefix no way!")
    (reply,) = await chat("/invoice\ncake 25")
    info = await Invoices(chat.services.db).of(reply.link_id or "")
    assert info is not None and info.number == "CC-2026-0001"
