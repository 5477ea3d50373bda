"""Invoice numbers and the invoice rows behind links with line items (and paid links).

A number is `{prefix}-{year}-{seq:04d}` (INV-2026-0001): the prefix is a shop setting (`invoice_settings`,
default "INV"), the year is the shop's (its time zone) when the number is given, and seq counts up by one
per shop and year with no gaps. The counter row is bumped inside the transaction that inserts the link
(or records its payment): PostgreSQL's row lock makes concurrent transactions take turns, SQLite has one
writer anyway, and a transaction that rolls back gives its number back, so numbers never skip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update

from core.db import Database, DbConnection
from core.line_items import Totals, from_stored, to_stored
from core.models import Invoice, InvoiceCounter, InvoiceSettings, Merchant, PaymentLink
from core.sql import insert_ignore, insert_row, table

log = logging.getLogger("paylinks.invoices")

INVOICES = table(Invoice)
COUNTERS = table(InvoiceCounter)
SETTINGS = table(InvoiceSettings)
MERCHANTS = table(Merchant)
DEFAULT_PREFIX = "INV"
PREFIX_MAX = 12


@dataclass(frozen=True, slots=True)
class InvoiceInfo:
    """What the API, pages and PDFs show of a link's invoice."""

    number: str
    totals: Totals | None  # None: a one-amount link (numbered when paid)
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    total_minor: int
    created_at: datetime


def shop_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def check_prefix(prefix: str) -> str:
    """A prefix as stored: 1-12 letters, digits or '-'/'_', upper-cased (ValueError says why not)."""
    value = prefix.strip().upper()
    if not value or len(value) > PREFIX_MAX or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        raise ValueError(f"an invoice prefix is 1 to {PREFIX_MAX} letters, digits, '-' or '_', e.g. INV")
    return value


async def _prefix_and_zone(conn: DbConnection, merchant_id: str) -> tuple[str, ZoneInfo]:
    prefix = (await conn.execute(select(SETTINGS.c.prefix).where(SETTINGS.c.merchant_id == merchant_id))).scalar()
    zone = (await conn.execute(select(MERCHANTS.c.timezone).where(MERCHANTS.c.id == merchant_id))).scalar()
    return prefix or DEFAULT_PREFIX, shop_zone(zone)


async def next_number(conn: DbConnection, merchant_id: str, now: datetime) -> tuple[str, int, int]:
    """(number, year, seq): the shop's next number, taken inside the caller's transaction."""
    prefix, zone = await _prefix_and_zone(conn, merchant_id)
    year = now.astimezone(zone).year
    bump = (update(COUNTERS).where(COUNTERS.c.merchant_id == merchant_id, COUNTERS.c.year == year)
            .values(last_seq=COUNTERS.c.last_seq + 1))
    if (await conn.execute(bump)).rowcount != 1:
        # First number of the year; a concurrent first insert waits on the key, then bumps the same row.
        await insert_ignore(conn, COUNTERS, {"merchant_id": merchant_id, "year": year, "last_seq": 0})
        await conn.execute(bump)
    seq = int((await conn.execute(select(COUNTERS.c.last_seq).where(
        COUNTERS.c.merchant_id == merchant_id, COUNTERS.c.year == year))).scalar_one())
    return f"{prefix}-{year}-{seq:04d}", year, seq


async def record(conn: DbConnection, link: PaymentLink, totals: Totals | None, now: datetime) -> str:
    """Number `link` and store its items (inside the link's own transaction); returns the number."""
    number, year, seq = await next_number(conn, link.merchant_id, now)
    if totals is None:
        subtotal = total = link.amount_minor
        discount = tax = 0
    else:
        subtotal, discount, tax, total = totals.subtotal_minor, totals.discount_minor, totals.tax_minor, \
            totals.total_minor
    await insert_row(conn, INVOICES, {
        "link_id": link.id, "merchant_id": link.merchant_id, "number": number, "year": year, "seq": seq,
        "currency": link.currency, "line_items": None if totals is None else to_stored(totals),
        "subtotal_minor": subtotal, "discount_minor": discount, "tax_minor": tax, "total_minor": total,
        "created_at": now,
    })
    return number


def _info(row: Any) -> InvoiceInfo:
    totals = from_stored(row.line_items, row.currency) if row.line_items else None
    return InvoiceInfo(row.number, totals, row.subtotal_minor, row.discount_minor, row.tax_minor, row.total_minor,
                       row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC))


async def read(conn: DbConnection, link_id: str) -> InvoiceInfo | None:
    """The link's invoice inside a caller's transaction (webhook payloads)."""
    row = (await conn.execute(select(INVOICES).where(INVOICES.c.link_id == link_id))).first()
    return _info(row) if row else None


class Invoices:
    """Reads invoices, keeps the shop's invoice settings, and numbers links when they are paid."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, conn: DbConnection, event: Any) -> None:
        """LinkService hook: a paid link without a number gets one in the payment's transaction."""
        if getattr(event, "kind", None) != "link.paid":
            return
        link = event.link
        exists = (await conn.execute(select(INVOICES.c.link_id).where(INVOICES.c.link_id == link.id))).first()
        if exists is None:
            await record(conn, link, None, event.at)

    async def of(self, link_id: str) -> InvoiceInfo | None:
        return (await self.many([link_id])).get(link_id)

    async def many(self, link_ids: list[str]) -> dict[str, InvoiceInfo]:
        if not link_ids:
            return {}
        async with self.db.read() as conn:
            rows = (await conn.execute(select(INVOICES).where(INVOICES.c.link_id.in_(link_ids)))).all()
        return {row.link_id: _info(row) for row in rows}

    async def settings(self, merchant_id: str) -> tuple[str, str | None]:
        """(prefix, address) of the shop."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(SETTINGS).where(SETTINGS.c.merchant_id == merchant_id))).first()
        return (row.prefix, row.address) if row else (DEFAULT_PREFIX, None)

    async def configure(self, merchant_id: str, *, prefix: str | None = None, address: str | None = None) -> None:
        """Set the prefix and/or address (ValueError for a prefix that cannot be one)."""
        values: dict[str, Any] = {}
        if prefix is not None:
            values["prefix"] = check_prefix(prefix)
        if address is not None:
            values["address"] = address.strip()[:500] or None
        if not values:
            return
        async with self.db.write() as conn:
            inserted = await insert_ignore(conn, SETTINGS, {"merchant_id": merchant_id, "prefix": DEFAULT_PREFIX,
                                                            "address": None, **values})
            if not inserted:
                await conn.execute(update(SETTINGS).where(SETTINGS.c.merchant_id == merchant_id).values(**values))
