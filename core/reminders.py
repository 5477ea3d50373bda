"""Reminders to customers who have not paid: one automatic reminder `[links] remind_before_expiry`
before a link expires, and `/remind <link>` now (at most one per link per 12 h).

A reminder is outbox rows (one per channel the customer has: email, WhatsApp), written in the same
transaction that records `reminded_at` on the link, so it is sent once. Reminders stop when the link is
paid, cancelled or expired: none is written for a link that is not open, and the dispatcher drops a
waiting one whose link closed meanwhile (bots/dispatcher.py). Each sent reminder is put on the link's
timeline (`link_events`, core/timeline.py) through `record_timeline`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.links import LINKS, LinkService, _row_to_link
from core.models import LinkStatus, PaymentLink
from core.outbox import Outbox
from core.timeline import record_event

log = logging.getLogger("paylinks.reminders")

MANUAL_EVERY = timedelta(hours=12)

# (connection, link id, entry kind, at, detail) -> None: a line on the link's timeline, in the caller's
# transaction.
TimelineWriter = Callable[[DbConnection, str, str, datetime, dict[str, Any]], Awaitable[None]]


class ReminderError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Reminded:
    link: PaymentLink
    channels: list[str]  # where it went: "email", "whatsapp"


class Reminders:
    def __init__(self, db: Database, links: LinkService, outbox: Outbox, *, before_expiry: timedelta | None,
                 clock: Clock = utcnow, record_timeline: TimelineWriter = record_event) -> None:
        self.db = db
        self.links = links
        self.outbox = outbox
        self.before_expiry = before_expiry
        self.clock = clock
        self.record_timeline = record_timeline

    async def _send(self, conn: DbConnection, link: PaymentLink, now: datetime, how: str) -> list[str]:
        rows = await self.outbox.reminder_rows(conn, link, now)
        channels = sorted({str(r["platform"]) for r in rows})
        if rows:
            await self.record_timeline(conn, link.id, "reminder.sent", now, {"how": how, "to": channels})
        return channels

    async def remind_now(self, link_id: str, merchant_id: str) -> Reminded:
        """`/remind`: a reminder now, unless the link is not open, has no contact, or had one in 12 h."""
        link = await self.links.get(link_id, merchant_id)
        if link is None:
            raise ReminderError("not_found", "no such link")
        now = self.clock()
        if self.links.status_of(link, now) is not LinkStatus.ACTIVE:
            raise ReminderError("not_active", f"this link is {self.links.status_of(link, now).value}; "
                                "reminders are only for open links")
        if not self.outbox.customer_targets(link):
            raise ReminderError("no_contact", "this link has no customer email or phone I can reach")
        if link.reminded_at is not None and now - link.reminded_at < MANUAL_EVERY:
            wait = link.reminded_at + MANUAL_EVERY - now
            hours = max(1, round(wait.total_seconds() / 3600))
            raise ReminderError("too_soon", f"a reminder went out less than 12 hours ago; try again in about "
                                f"{hours} h")
        async with self.db.write() as conn:
            # Guarded: two /remind at once, or one racing the payment, send at most one reminder.
            done = await conn.execute(
                update(LINKS).where(LINKS.c.id == link.id, LINKS.c.status == LinkStatus.ACTIVE.value,
                                    (LINKS.c.reminded_at.is_(None)) | (LINKS.c.reminded_at <= now - MANUAL_EVERY))
                .values(reminded_at=now))
            if done.rowcount != 1:
                raise ReminderError("too_soon", "a reminder is already on its way")
            channels = await self._send(conn, link, now, "manual")
        log.info("reminder sent link=%s channels=%s", link.id, ",".join(channels))
        return Reminded(link, channels)

    async def remind_due(self, *, batch: int = 200) -> int:
        """The automatic reminder for open links expiring within [links] remind_before_expiry."""
        if self.before_expiry is None:
            return 0
        now = self.clock()
        has_contact = LINKS.c.customer_email.is_not(None) | LINKS.c.customer_phone.is_not(None)
        query = (select(LINKS).where(LINKS.c.status == LinkStatus.ACTIVE.value, LINKS.c.auto_reminded_at.is_(None),
                                     LINKS.c.expires_at > now, LINKS.c.expires_at <= now + self.before_expiry,
                                     has_contact)
                 .order_by(LINKS.c.expires_at).limit(batch))
        async with self.db.read() as conn:
            due = [_row_to_link(r) for r in (await conn.execute(query)).all()]
        sent = 0
        for link in due:
            async with self.db.write() as conn:
                done = await conn.execute(
                    update(LINKS).where(LINKS.c.id == link.id, LINKS.c.status == LinkStatus.ACTIVE.value,
                                        LINKS.c.auto_reminded_at.is_(None))
                    .values(auto_reminded_at=now, reminded_at=now))
                if done.rowcount == 1 and await self._send(conn, link, now, "before expiry"):
                    sent += 1
        if sent:
            log.info("reminders sent before expiry count=%d", sent)
        return sent
