"""Inbound chat deliveries: one row per platform delivery id, so a redelivered message is handled once.

Telegram posts an update again when it got no timely 2xx, Slack retries a request and a signed request can
be replayed within its 5-minute window, Twilio redelivers a MessageSid. Each adapter names the delivery
(`IncomingMessage.delivery_id`); the conversation core handles the message through `DeliveryLog.once`:

- A delivery that already has its row (`inbound_deliveries`, primary key (platform, delivery_id)) is
  answered with nothing.
- Otherwise the row is written in the SAME transaction as the first write the message causes that must
  not happen twice (a link, an onboarded shop, an invite): those services open their transaction with
  `write_with_delivery(db)` instead of `db.write()`. Two deliveries of one message handled at once — in one
  process or in several `paylinks serve` processes on one database — race for that row; the loser's
  transaction rolls back whole (no second link) and it answers nothing.
- A message whose handling wrote nothing (or only idempotent things) gets its row right after.
- A handling that fails writes no row, so a later redelivery may still do the work.

The delivery being handled travels in a context variable, so the services between the conversation and
the database need no extra parameter; outside a chat handling (the API, the CLI) `write_with_delivery` is
just `db.write`. Rows older than RETENTION are swept by the sweeper job: no platform redelivers that late.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.models import InboundDelivery
from core.ports import IncomingMessage, Reply
from core.sql import insert_ignore, table

log = logging.getLogger("paylinks.deliveries")

DELIVERIES = table(InboundDelivery)

# Telegram gives up on an update after about a day, Slack retries within minutes, Twilio within hours.
RETENTION = timedelta(days=7)

_PLAIN_ID = re.compile(r"^[A-Za-z0-9:._\-]{1,120}$")


class AlreadyHandled(Exception):
    """Another handling of the same delivery recorded it first: this one changes nothing and answers nothing."""


@dataclass(frozen=True, slots=True)
class Delivery:
    platform: str
    delivery_id: str


def delivery_of(platform: str, raw: str | None) -> Delivery | None:
    """The key of a platform's delivery id; ids that are long or unusual are stored as their SHA-256."""
    if not raw:
        return None
    key = raw if _PLAIN_ID.match(raw) else "sha256:" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
    return Delivery(platform, key)


@dataclass(slots=True)
class _Claim:
    delivery: Delivery
    received_at: datetime
    recorded: bool = False  # its row is committed by this handling


_CURRENT: ContextVar[_Claim | None] = ContextVar("paylinks_inbound_delivery", default=None)


def write_with_delivery(db: Database) -> AbstractAsyncContextManager[DbConnection]:
    """`db.write()` that also records the delivery being handled, if any and not recorded yet, in this
    transaction. Raises AlreadyHandled (rolling the transaction back) when its row exists already."""
    claim = _CURRENT.get()
    if claim is None or claim.recorded:
        return db.write()  # itself, not wrapped: the API's link creation comes this way
    return _write_recording(db, claim)


@asynccontextmanager
async def _write_recording(db: Database, claim: _Claim) -> AsyncIterator[DbConnection]:
    async with db.write() as conn:
        values = {"platform": claim.delivery.platform, "delivery_id": claim.delivery.delivery_id,
                  "received_at": claim.received_at}
        # ON CONFLICT DO NOTHING: on PostgreSQL it waits for a concurrent insert of the same key to commit.
        if not await insert_ignore(conn, DELIVERIES, values):
            raise AlreadyHandled
        yield conn
    # db.write() returns only after the COMMIT: from here on the row is ours.
    claim.recorded = True


Handle = Callable[[IncomingMessage], Awaitable[list[Reply]]]


class DeliveryLog:
    def __init__(self, db: Database, *, clock: Clock = utcnow, retention: timedelta = RETENTION) -> None:
        self.db = db
        self.clock = clock
        self.retention = retention

    async def seen(self, delivery: Delivery) -> bool:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(DELIVERIES.c.delivery_id).where(
                        DELIVERIES.c.platform == delivery.platform,
                        DELIVERIES.c.delivery_id == delivery.delivery_id,
                    )
                )
            ).first()
        return row is not None

    async def once(self, message: IncomingMessage, handle: Handle) -> list[Reply]:
        """`handle(message)` unless this delivery was handled before; its replies, or [] for a redelivery."""
        delivery = delivery_of(message.platform, message.delivery_id)
        if delivery is None:
            return await handle(message)
        if await self.seen(delivery):
            log.info("redelivered message ignored platform=%s delivery=%s", delivery.platform, delivery.delivery_id)
            return []
        claim = _Claim(delivery, self.clock())
        token = _CURRENT.set(claim)
        try:
            replies = await handle(message)
            if not claim.recorded:
                async with write_with_delivery(self.db):
                    pass  # nothing the message did recorded it: a row of its own
            return replies
        except AlreadyHandled:
            log.info("redelivered message handled elsewhere platform=%s delivery=%s", delivery.platform,
                     delivery.delivery_id)
            return []
        finally:
            _CURRENT.reset(token)

    async def first_time(self, platform: str, delivery_id: str | None) -> bool:
        """Record a delivery whose only effect is an answer; False when it was recorded before."""
        delivery = delivery_of(platform, delivery_id)
        if delivery is None:
            return True
        values = {"platform": delivery.platform, "delivery_id": delivery.delivery_id, "received_at": self.clock()}
        async with self.db.write() as conn:
            return await insert_ignore(conn, DELIVERIES, values)

    async def sweep(self) -> int:
        """Forget deliveries older than the retention; how many rows went."""
        cutoff = self.clock() - self.retention
        async with self.db.write() as conn:
            result = await conn.execute(delete(DELIVERIES).where(DELIVERIES.c.received_at < cutoff))
        return int(result.rowcount or 0)
