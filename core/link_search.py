"""Finding a shop's links: search, filters and keyset pages (the dashboard's list and the CSV export).

Pages are keyed on (created_at, id), newest first, so links made while someone pages through never shift
or repeat a row. The export walks the same order in batches, so 100,000 links cost one batch of memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select

from core.db import Database
from core.models import LinkStatus, Payment, PaymentLink
from core.sql import table

LINKS = table(PaymentLink)
PAYMENTS = table(Payment)

API_ORIGIN = "api"  # links made through the REST API or the CLI have no chat origin
EXPORT_BATCH = 1000
# What the export reads of a link and a payment: no JSON columns (parsing them per row would cost more than
# everything else the export does).
_EXPORT_LINK_COLUMNS = (
    LINKS.c.id, LINKS.c.created_at, LINKS.c.status, LINKS.c.livemode, LINKS.c.origin_platform, LINKS.c.description,
    LINKS.c.reference, LINKS.c.customer_name, LINKS.c.customer_email, LINKS.c.customer_phone, LINKS.c.currency,
    LINKS.c.amount_minor, LINKS.c.expires_at,
)
_EXPORT_PAYMENT_COLUMNS = (
    PAYMENTS.c.id, PAYMENTS.c.link_id, PAYMENTS.c.status, PAYMENTS.c.created_at, PAYMENTS.c.amount_minor,
    PAYMENTS.c.currency, PAYMENTS.c.provider, PAYMENTS.c.provider_ref, PAYMENTS.c.amount_refunded_minor,
)


@dataclass(frozen=True, slots=True)
class LinkFilter:
    query: str = ""  # words found in description, reference, customer name/email/phone or id
    status: LinkStatus | None = None
    currency: str | None = None
    since: datetime | None = None  # created at or after (UTC)
    until: datetime | None = None  # created before (UTC)
    origin: str | None = None  # a chat platform's name, or API_ORIGIN


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered(merchant_id: str, where: LinkFilter, columns: Sequence[Any] | None = None) -> Select[Any]:
    query = select(*(columns or [LINKS])).where(LINKS.c.merchant_id == merchant_id)
    for word in where.query.split()[:8]:
        pattern = f"%{_like_escape(word.casefold())}%"
        query = query.where(or_(*(
            func.lower(column).like(pattern, escape="\\")
            for column in (LINKS.c.description, LINKS.c.reference, LINKS.c.customer_name, LINKS.c.customer_email,
                           LINKS.c.customer_phone, LINKS.c.id)
        )))
    if where.status is not None:
        query = query.where(LINKS.c.status == where.status.value)
    if where.currency:
        query = query.where(LINKS.c.currency == where.currency)
    if where.since is not None:
        query = query.where(LINKS.c.created_at >= where.since)
    if where.until is not None:
        query = query.where(LINKS.c.created_at < where.until)
    if where.origin == API_ORIGIN:
        query = query.where(LINKS.c.origin_platform.is_(None))
    elif where.origin:
        query = query.where(LINKS.c.origin_platform == where.origin)
    return query


def _after(query: Select[Any], created_at: datetime, link_id: str) -> Select[Any]:
    return query.where(or_(LINKS.c.created_at < created_at,
                           and_(LINKS.c.created_at == created_at, LINKS.c.id < link_id)))


class LinkSearch:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(self, merchant_id: str, where: LinkFilter, *, limit: int = 25,
                   cursor: str | None = None) -> tuple[list[PaymentLink], str | None]:
        """Newest first; `cursor` is the last id of the previous page (unknown ids start over)."""
        query = filtered(merchant_id, where)
        async with self.db.read() as conn:
            if cursor:
                anchor = (await conn.execute(select(LINKS.c.created_at, LINKS.c.id).where(
                    LINKS.c.id == cursor, LINKS.c.merchant_id == merchant_id))).first()
                if anchor is not None:
                    query = _after(query, anchor.created_at, anchor.id)
            rows = (await conn.execute(
                query.order_by(LINKS.c.created_at.desc(), LINKS.c.id.desc()).limit(limit + 1))).all()
        links = [PaymentLink.model_construct(**{**r._mapping, "status": LinkStatus(r.status)}) for r in rows[:limit]]
        return links, (links[-1].id if len(rows) > limit and links else None)

    async def export(self, merchant_id: str, where: LinkFilter, *,
                     batch: int = EXPORT_BATCH) -> AsyncIterator[tuple[Any, list[Any]]]:
        """(link row, its payments) for every matching link, newest first, read `batch` links at a time."""
        last: tuple[datetime, str] | None = None
        while True:
            query = filtered(merchant_id, where, _EXPORT_LINK_COLUMNS)
            if last is not None:
                query = _after(query, *last)
            async with self.db.read() as conn:
                rows = (await conn.execute(
                    query.order_by(LINKS.c.created_at.desc(), LINKS.c.id.desc()).limit(batch))).all()
                payments: dict[str, list[Any]] = {}
                if rows:
                    found = (await conn.execute(
                        select(*_EXPORT_PAYMENT_COLUMNS).where(PAYMENTS.c.link_id.in_([r.id for r in rows]))
                        .order_by(PAYMENTS.c.created_at, PAYMENTS.c.id))).all()
                    for payment in found:
                        payments.setdefault(payment.link_id, []).append(payment)
            for row in rows:
                yield row, payments.get(row.id, [])
            if len(rows) < batch:
                return
            last = (rows[-1].created_at, rows[-1].id)

    async def currencies(self, merchant_id: str) -> list[str]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(LINKS.c.currency).where(LINKS.c.merchant_id == merchant_id)
                                       .group_by(LINKS.c.currency).order_by(LINKS.c.currency))).all()
        return [r[0] for r in rows]

    async def origins(self, merchant_id: str) -> list[str]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(LINKS.c.origin_platform).where(LINKS.c.merchant_id == merchant_id)
                                       .group_by(LINKS.c.origin_platform))).all()
        return sorted(r[0] or API_ORIGIN for r in rows)
