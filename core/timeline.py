"""A link's timeline: what happened to it, oldest first, built from the rows that record each step.

Most events are read from where they already live (the link's own times, checkout attempts, payments,
refunds, sent outbox alerts and customer messages, messages that could not be delivered); only what is
stored nowhere else is a `link_events` row (the pay page's first view with its count, a failed payment, a
dispute, a reminder sent to the customer, a delivery report: `record_event`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.db import Database, DbConnection
from core.models import (
    CheckoutAttempt,
    LinkEventRecord,
    LinkStatus,
    OutboxMessage,
    OutboxStatus,
    Payment,
    PaymentLink,
    Refund,
    RefundStatus,
)
from core.money import amount_str
from core.sql import insert_ignore, table

CHECKOUTS = table(CheckoutAttempt)
PAYMENTS = table(Payment)
REFUNDS = table(Refund)
RECORDS = table(LinkEventRecord)
OUTBOX = table(OutboxMessage)

# Which sent outbox rows are "alert.delivered": messages to the seller's chats (alerts and edits).
_SELLER_ROLES = (".alert", ".edit")
# And messages to the customer: the link, reminders, receipts, refund notices (core/outbox.py Role).
_CUSTOMER_ROLES = (".customer_link", ".reminder", ".receipt", ".refund")
# Merchant webhook deliveries are outbox rows of these kinds (core/webhooks.py KIND_PREFIX).
_WEBHOOK_PREFIX = "webhook."


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    type: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


def _amount(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"amount": amount_str(amount_minor, currency), "amount_minor": amount_minor, "currency": currency}


async def record_event(conn: DbConnection, link_id: str, type: str, at: datetime, details: dict[str, Any], *,
                       dedupe_key: str | None = None) -> None:
    """One `link_events` row, in the caller's transaction (core/reminders.py: reminder.sent)."""
    await insert_ignore(conn, RECORDS, {"link_id": link_id, "type": type, "at": at, "count": 1,
                                        "details": details, "dedupe_key": dedupe_key})


def _delivery(kind: str, platform: str) -> dict[str, Any]:
    """What an outbox row was: merchant webhooks are "webhook.<event type>", the rest "<event>.<role>"."""
    if kind.startswith(_WEBHOOK_PREFIX):
        return {"platform": platform, "event": kind.removeprefix(_WEBHOOK_PREFIX), "as": "webhook"}
    event, _, role = kind.rpartition(".")
    return {"platform": platform, "event": event, "as": role}


async def timeline(db: Database, link: PaymentLink, status: LinkStatus) -> list[TimelineEvent]:
    """Every event of one link, oldest first; `status` is the link's status as customers see it."""
    events = [TimelineEvent("link.created", link.created_at, _amount(link.amount_minor, link.currency))]
    async with db.read() as conn:
        for row in (await conn.execute(select(RECORDS).where(RECORDS.c.link_id == link.id))).all():
            details = dict(row.details or {})
            if row.type == "link.opened":
                details["views"] = int(row._mapping["count"])
            events.append(TimelineEvent(row.type, row.at, details))
        for row in (await conn.execute(select(CHECKOUTS).where(CHECKOUTS.c.link_id == link.id))).all():
            events.append(TimelineEvent("checkout.started", row.created_at,
                                        {"attempt": row.attempt, "provider": row.provider}))
        for row in (await conn.execute(select(PAYMENTS).where(PAYMENTS.c.link_id == link.id))).all():
            events.append(TimelineEvent("payment.succeeded", row.created_at, {
                "payment_id": row.id, "provider": row.provider, "status": row.status,
                "payer_name": row.payer_name, **_amount(row.amount_minor, row.currency)}))
        for row in (await conn.execute(select(REFUNDS).where(REFUNDS.c.link_id == link.id))).all():
            base = {"refund_id": row.id, "payment_id": row.payment_id, **_amount(row.amount_minor, row.currency)}
            events.append(TimelineEvent("refund.requested", row.created_at, {
                **base, "reason": row.reason, "requested_by": row.requested_by}))
            if row.completed_at is not None and row.status == RefundStatus.SUCCEEDED.value:
                events.append(TimelineEvent("refund.succeeded", row.completed_at, base))
            elif row.completed_at is not None and row.status == RefundStatus.FAILED.value:
                events.append(TimelineEvent("refund.failed", row.completed_at,
                                            {**base, "reason": row.failure_reason}))
        sent = (await conn.execute(
            select(OUTBOX.c.kind, OUTBOX.c.platform, OUTBOX.c.sent_at, OUTBOX.c.status,
                   OUTBOX.c.next_attempt_at)
            .where(OUTBOX.c.link_id == link.id,
                   OUTBOX.c.status.in_((OutboxStatus.SENT.value, OutboxStatus.DEAD.value)))
        )).all()
    for row in sent:
        if row.status == OutboxStatus.DEAD.value:
            # Given up on (retries exhausted, address gone), at about when its last try was due; the error
            # itself is left out, as it may name an address or a URL.
            events.append(TimelineEvent("delivery.failed", row.next_attempt_at, _delivery(row.kind, row.platform)))
        elif row.sent_at is not None and row.kind.endswith(_SELLER_ROLES):
            events.append(TimelineEvent("alert.delivered", row.sent_at, _delivery(row.kind, row.platform)))
        elif row.sent_at is not None and row.kind.endswith(_CUSTOMER_ROLES):
            # Handed to the platform; SMS and WhatsApp report later whether it reached the phone
            # (message.delivered / message.failed, core/delivery_status.py).
            events.append(TimelineEvent("message.sent", row.sent_at, _delivery(row.kind, row.platform)))
    if status is LinkStatus.EXPIRED:
        events.append(TimelineEvent("link.expired", link.expires_at))
    if status is LinkStatus.CANCELLED and link.cancelled_at is not None:
        events.append(TimelineEvent("link.cancelled", link.cancelled_at))
    order = {"link.created": 0}
    return sorted(events, key=lambda e: (e.at, order.get(e.type, 1)))
