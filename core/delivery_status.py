"""Late delivery reports: a platform says, after we sent a message, that it reached the phone or not.

Twilio posts them to POST /twilio/status (adapters/twilio_status.py) for SMS and WhatsApp. Each report
names the message by the id the sender returned (outbox_message.external_id). A failure (30003
unreachable handset …) goes on the link's timeline as `message.failed` and is told to the seller; a
failure another channel may get around (outside a chat platform's 24 h window) sends a customer's
message by the fallback channel (SMS) instead. A delivery goes on the timeline as `message.delivered`,
and the payment link's delivery is told to the chat where it was made. Each report is acted on once (a
dedupe key per row and outcome), however often the platform repeats it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from core.clock import Clock, utcnow
from core.db import Database
from core.models import LinkEventRecord, OutboxMessage, OutboxStatus
from core.outbox import OutboxStore, Role, is_customer_kind
from core.sql import insert_ignore, table

log = logging.getLogger("paylinks.delivery")

OUTBOX = table(OutboxMessage)
RECORDS = table(LinkEventRecord)

DELIVERED = frozenset({"delivered", "read"})
FAILED = frozenset({"failed", "undelivered"})
@dataclass(frozen=True, slots=True)
class Report:
    platform: str  # "sms", "whatsapp"
    external_id: str  # Twilio's MessageSid
    status: str  # queued, sent, delivered, read, failed, undelivered …
    error_code: str = ""
    reason: str = ""  # the failure in the seller's words (the adapter knows its platform's codes)
    other_channel: bool = False  # the failure says another channel may reach the customer (SMS)


class DeliveryReports:
    def __init__(self, db: Database, store: OutboxStore, *, clock: Clock = utcnow, wake: object = None) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self.wake = wake

    async def record(self, report: Report) -> str:
        """Act on one report; answers what was done ("unknown", "ignored", "delivered", "failed", "fallback",
        "duplicate") for the log and the tests."""
        if report.status not in DELIVERED | FAILED:
            return "ignored"  # queued, sent …: nothing the seller needs to hear
        now = self.clock()
        async with self.db.write() as conn:
            found = (await conn.execute(
                select(OUTBOX).where(OUTBOX.c.platform == report.platform, OUTBOX.c.external_id == report.external_id,
                                     OUTBOX.c.status == OutboxStatus.SENT.value)
            )).first()
            if found is None:
                return "unknown"
            row = OutboxMessage.model_construct(**found._mapping)
            delivered = report.status in DELIVERED
            outcome = "delivered" if delivered else "failed"
            role = row.kind.rpartition(".")[2]
            if row.link_id:
                details = {"platform": row.platform, "as": role, "status": report.status}
                if report.error_code:
                    details["error_code"] = report.error_code
                fresh = await insert_ignore(conn, RECORDS, {
                    "link_id": row.link_id, "type": f"message.{outcome}", "at": now, "count": 1, "details": details,
                    "dedupe_key": f"outbox:{row.id}:{outcome}"})
            else:
                fresh = True
            if not fresh:
                return "duplicate"
            if delivered:
                if role == Role.CUSTOMER_LINK.value:
                    await self.store.followup(conn, row, now, delivered=True)
            elif is_customer_kind(row.kind):
                fallback = self.store.fallbacks.get(row.platform)
                if (report.other_channel and fallback
                        and await self.store.write_fallback(conn, row, fallback, now)):
                    outcome = "fallback"
                else:
                    await self.store.notify_undelivered(conn, row, now, report.reason or "not delivered")
            else:
                log.info("delivery failed for a seller message row=%s code=%s", row.id, report.error_code)
        if callable(self.wake):
            self.wake()
        log.info("delivery report %s row=%s platform=%s code=%s", outcome, row.id, row.platform,
                 report.error_code or "-")
        return outcome


