"""Questions the bot asked in a chat and is waiting to hear back on (which amount a /charge meant).

Stored in the database, not in memory: the answer may arrive after a restart, or at another process
(several `paylinks serve` on one PostgreSQL). One open question per person per chat; a newer one
replaces it. Answering is single-use: `take` marks the row answered in the same statement that claims it,
so a double tap on a button makes one link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, select, update

from core import ids
from core.clock import Clock, utcnow
from core.commands import Charge
from core.db import Database
from core.models import ChatQuestion
from core.sql import table

QUESTIONS = table(ChatQuestion)
QUESTION_TTL = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    merchant_id: str
    member_id: int | None
    readings: tuple[Charge, ...]
    expires_at: datetime
    # A yes/no confirmation instead of readings: what to do on "yes" (a refund: {"kind": "refund", …}).
    confirm: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Asker:
    """Who was asked, where."""

    platform: str
    address: str
    user_id: str


class QuestionStore:
    def __init__(self, db: Database, *, clock: Clock = utcnow, ttl: timedelta = QUESTION_TTL) -> None:
        self.db = db
        self.clock = clock
        self.ttl = ttl

    async def ask(self, asker: Asker, *, merchant_id: str, member_id: int | None,
                  readings: tuple[Charge, ...] = (), confirm: dict[str, Any] | None = None) -> Question:
        now = self.clock()
        question = Question(ids.prefixed("q", 8), merchant_id, member_id, readings, now + self.ttl, confirm)
        async with self.db.write() as conn:
            # A newer question replaces the open one: only the latest buttons still answer.
            await conn.execute(
                update(QUESTIONS)
                .where(*self._of(asker), QUESTIONS.c.answered_at.is_(None))
                .values(answered_at=now)
            )
            await conn.execute(QUESTIONS.insert().values(
                id=question.id, merchant_id=merchant_id, member_id=member_id, platform=asker.platform,
                address=asker.address[:200], user_id=asker.user_id[:120],
                payload={"readings": [r.to_dict() for r in readings],
                         **({"confirm": confirm} if confirm is not None else {})}, created_at=now,
                expires_at=question.expires_at,
            ))
        return question

    async def open_question(self, asker: Asker) -> Question | None:
        """The question waiting for this person in this chat (not answered, not expired)."""
        async with self.db.read() as conn:
            row = (await conn.execute(
                select(QUESTIONS)
                .where(*self._of(asker), QUESTIONS.c.answered_at.is_(None), QUESTIONS.c.expires_at > self.clock())
                .order_by(QUESTIONS.c.created_at.desc())
                .limit(1)
            )).first()
        return None if row is None else _question(row)

    async def take(self, asker: Asker, question_id: str) -> Question | Literal[False] | None:
        """Claim the answer to `question_id`: the question, or False when it was already answered or has
        expired, or None when this person was never asked it here."""
        now = self.clock()
        async with self.db.write() as conn:
            row = (await conn.execute(
                select(QUESTIONS).where(QUESTIONS.c.id == question_id, *self._of(asker))
            )).first()
            if row is None:
                return None
            claimed = await conn.execute(
                update(QUESTIONS)
                .where(QUESTIONS.c.id == question_id, QUESTIONS.c.answered_at.is_(None),
                       QUESTIONS.c.expires_at > now)
                .values(answered_at=now)
            )
        return _question(row) if claimed.rowcount == 1 else False

    @staticmethod
    def _of(asker: Asker) -> tuple[ColumnElement[bool], ...]:
        return (QUESTIONS.c.platform == asker.platform, QUESTIONS.c.address == asker.address[:200],
                QUESTIONS.c.user_id == asker.user_id[:120])


def _question(row: Row[*tuple[Any, ...]]) -> Question:
    data = row._mapping
    stored = data["payload"] or {}
    readings = tuple(Charge.from_dict(r) for r in stored.get("readings", []))
    return Question(data["id"], data["merchant_id"], data["member_id"], readings, data["expires_at"],
                    stored.get("confirm"))
