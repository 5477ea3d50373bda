"""The audit log: what changed money or access, by whom, when and from where. Rows are only inserted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.models import AuditEvent
from core.sql import table

log = logging.getLogger("paylinks.audit")

AUDIT = table(AuditEvent)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a name to show, their member id when they are one, and where they acted from."""

    name: str
    platform: str  # "web", "cli", "api" or a chat platform
    member_id: int | None = None
    address: str | None = None  # the client's IP address, or the chat address


class AuditLog:
    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def record(self, merchant_id: str, action: str, actor: Actor, *, conn: DbConnection | None = None,
                     **detail: Any) -> None:
        """One row; inside `conn`'s transaction when given, so it commits with the change it describes."""
        values = {
            "merchant_id": merchant_id, "at": self.clock(), "action": action[:40], "actor": actor.name[:200],
            "member_id": actor.member_id, "platform": actor.platform[:20],
            "address": (actor.address or None) and actor.address[:200], "detail": detail,
        }
        if conn is not None:
            await conn.execute(AUDIT.insert().values(**values))
        else:
            async with self.db.write() as own:
                await own.execute(AUDIT.insert().values(**values))
        log.info("audit merchant=%s action=%s platform=%s member=%s", merchant_id, action, actor.platform,
                 actor.member_id)

    async def recent(self, merchant_id: str, *, limit: int = 50, before_id: int | None = None) -> list[AuditEvent]:
        """Newest first; `before_id` pages on (ids only grow)."""
        query = select(AUDIT).where(AUDIT.c.merchant_id == merchant_id)
        if before_id is not None:
            query = query.where(AUDIT.c.id < before_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(AUDIT.c.id.desc()).limit(limit))).all()
        return [AuditEvent.model_construct(**r._mapping) for r in rows]
