"""Reminders on SQLite and PostgreSQL, with a hand-moved clock and a real SMTP server (aiosmtpd):
`/remind` at most once per link per 12 h, the automatic one [links] remind_before_expiry before expiry,
none once a link is paid, cancelled or expired, and each one put on the link's timeline."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bots.config import Settings
from bots.dispatcher import build_dispatcher
from core.models import OutboxMessage
from core.outbox import REMINDER_KIND
from core.ports import PaymentEvent
from core.sql import table
from core.timeline import TimelineEvent, timeline
from tests.adapters.email.test_email import Mailbox, mailbox  # noqa: F401  (the SMTP server fixture)
from tests.chat_support import ChatDriver
from tests.conftest import make_settings

OUTBOX = table(OutboxMessage)


@pytest.fixture
def settings(database_url: str, mailbox: tuple[Mailbox, int]) -> Settings:  # noqa: F811
    return make_settings(database_url, email__host="127.0.0.1", email__port=mailbox[1], email__security="none",
                         outbox__email_per_sender="1000/s")


def subjects(box: tuple[Mailbox, int]) -> list[str]:
    return [str(m["Subject"]) for m in box[0].messages]


async def events_of(chat: ChatDriver, link_id: str) -> list[TimelineEvent]:
    """The link's timeline as GET /api/v1/links/{id}/events builds it."""
    link = await chat.services.links.get(link_id)
    assert link is not None
    return await timeline(chat.services.db, link, chat.services.links.status_of(link))


async def reminder_rows(chat: ChatDriver) -> list[Any]:
    async with chat.services.db.read() as conn:
        return list((await conn.execute(select(OUTBOX).where(OUTBOX.c.kind == REMINDER_KIND)
                                        .order_by(OUTBOX.c.id))).all())


async def test_remind_sends_one_now_and_at_most_one_per_12_hours(
    chat: ChatDriver, mailbox: tuple[Mailbox, int]  # noqa: F811
) -> None:
    await chat("/charge 25 cake to ana@example.com ref INV-1")
    answer = await chat.text("/remind INV-1")
    assert "Reminder sent" in answer and "by email" in answer, answer
    again = await chat.text("/remind INV-1")
    assert "less than 12 hours ago" in again and "No reminder sent" in again, again
    chat.clock.advance(hours=12, minutes=1)
    assert "Reminder sent" in await chat.text("/remind INV-1")
    await build_dispatcher(chat.services).run_once()
    assert subjects(mailbox)[1:] == ["Reminder: $25.00 for cake"] * 2, subjects(mailbox)
    rows = await reminder_rows(chat)
    assert len(rows) == 2
    reminded = [(e.type, e.details) for e in await events_of(chat, rows[0].link_id) if e.type == "reminder.sent"]
    assert reminded == [("reminder.sent", {"how": "manual", "to": ["email"]})] * 2


async def test_no_reminder_for_a_link_without_contact_or_not_open(chat: ChatDriver) -> None:
    await chat("/charge 5 tea ref T-1")
    assert "no customer email or phone" in await chat.text("/remind T-1")
    await chat("/charge 6 scone to bo@example.com ref S-1")
    await chat("/cancel S-1")
    assert "this link is cancelled" in await chat.text("/remind S-1")
    assert "NOPE-9" in await chat.text("/remind NOPE-9")  # not found: the answer names what was asked for
    assert await reminder_rows(chat) == []


async def test_the_automatic_reminder_goes_once_before_expiry(
    chat: ChatDriver, mailbox: tuple[Mailbox, int]  # noqa: F811
) -> None:
    await chat("/charge 25 cake to ana@example.com ref INV-2 exp 2d")
    await chat("/charge 9 pie ref P-1 exp 2d")  # no contact: never reminded
    reminders = chat.services.reminders
    assert reminders is not None
    assert await reminders.remind_due() == 0  # 48 h left: more than remind_before_expiry (24 h)
    chat.clock.advance(hours=25)
    assert await reminders.remind_due() == 1
    assert await reminders.remind_due() == 0  # once per link
    await build_dispatcher(chat.services).run_once()
    assert any(s.startswith("Reminder:") for s in subjects(mailbox)), subjects(mailbox)
    # The automatic one counts for /remind's 12 hours too.
    assert "less than 12 hours ago" in await chat.text("/remind INV-2")


async def test_a_waiting_reminder_is_dropped_when_the_link_is_paid_first(
    chat: ChatDriver, mailbox: tuple[Mailbox, int]  # noqa: F811
) -> None:
    await chat("/charge 25 cake to ana@example.com ref INV-3")
    await chat("/remind INV-3")
    (row,) = await reminder_rows(chat)
    await chat.services.links.record_payment(PaymentEvent("sandbox", "evt_r", "payment.succeeded", row.link_id,
                                                          "ch_r", 2500, "USD"))
    await build_dispatcher(chat.services).run_once()
    assert not any(s.startswith("Reminder:") for s in subjects(mailbox)), subjects(mailbox)
    (row,) = await reminder_rows(chat)
    assert row.status == "dead" and "paid, cancelled or expired" in row.last_error
    failed = [e.details for e in await events_of(chat, row.link_id) if e.type == "delivery.failed"]
    assert failed == [{"platform": "email", "event": "link.reminder", "as": "reminder"}]
    assert "this link is paid" in await chat.text("/remind INV-3")
