"""core.sql helpers store exactly what SQLAlchemy Core would, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from core import reusable
from core.db import Database
from core.models import Merchant, PaymentLink
from core.sql import insert_row, table
from tests.clock import T0

LINKS = table(PaymentLink)
MERCHANTS = table(Merchant)


def link_values(link_id: str) -> dict[str, object]:
    return {
        "id": link_id, "merchant_id": "mer_1", "amount_minor": 2500, "currency": "SGD", "description": "cake ☕",
        "reference": "INV-1", "customer_name": "Al", "customer_email": None, "customer_phone": "+6591234567",
        "status": "active", "created_at": T0, "expires_at": T0 + timedelta(days=7), "paid_at": None,
        "cancelled_at": None, "meta": {"order": "42", "note": "ünïcode"}, "origin_platform": "console",
        "origin_address": "console:alice", "origin_message": {"platform": "console", "message_id": "7"},
        "created_by_member_id": None, "checkout_attempts": 0, "idempotency_key": None, "request_hash": None,
        "livemode": False, "reminded_at": None, "auto_reminded_at": None,
        **reusable.columns(reusable.Terms(stock=50, quantity_min=1, quantity_max=10, suggested_amounts=(1000,))),
    }


async def test_insert_row_stores_what_core_stores(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(MERCHANTS.insert().values(id="mer_1", name="Shop", default_currency="SGD",
                                                     locale="en_SG", created_at=T0))
        await conn.execute(LINKS.insert(), link_values("core"))
        await insert_row(conn, LINKS, link_values("fast"))
    columns = ", ".join(c.name for c in LINKS.columns if c.name != "id")
    async with db.read() as conn:
        # The raw stored values, as text, so a difference in storage format cannot hide behind parsing.
        raw = {row[0]: row[1:] for row in (await conn.execute(
            text(f"SELECT id, {columns} FROM payment_link ORDER BY id"))).all()}
        parsed = {row.id: row for row in (await conn.execute(select(LINKS))).all()}
    assert raw["fast"] == raw["core"]
    assert parsed["fast"].created_at == T0 and parsed["fast"].meta == {"order": "42", "note": "ünïcode"}


async def test_insert_row_raises_what_core_raises(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(MERCHANTS.insert().values(id="mer_1", name="Shop", default_currency="SGD",
                                                     locale="en_SG", created_at=T0))
        await insert_row(conn, LINKS, link_values("once"))
    with pytest.raises(IntegrityError):
        async with db.write() as conn:
            await insert_row(conn, LINKS, link_values("once"))


# The quick bind processors (an aware UTC datetime, an empty JSON object, None) and the values they hand to
# SQLAlchemy's own (other zones, JSON with content): stored byte for byte as Core stores them.
VARIANTS = [
    {},
    {"meta": {}, "origin_message": None, "suggested_amounts": None, "paid_at": T0.replace(microsecond=0)},
    {"created_at": T0.astimezone(timezone(timedelta(hours=8))), "expires_at": datetime(9999, 12, 31, tzinfo=UTC),
     "cancelled_at": datetime(1, 1, 1, tzinfo=UTC), "reminded_at": T0.replace(microsecond=7)},
    {"meta": {"a": "b\u202e", "ü": ""}, "origin_message": {}, "livemode": True, "reusable": True},
]


@pytest.mark.parametrize("changes", VARIANTS)
async def test_insert_row_stores_every_kind_of_value_as_core_does(db: Database, changes: dict[str, object]) -> None:
    async with db.write() as conn:
        await conn.execute(MERCHANTS.insert().values(id="mer_1", name="Shop", default_currency="SGD",
                                                     locale="en_SG", created_at=T0))
        await conn.execute(LINKS.insert(), {**link_values("core"), **changes})
        await insert_row(conn, LINKS, {**link_values("fast"), **changes})
    columns = ", ".join(c.name for c in LINKS.columns if c.name != "id")
    async with db.read() as conn:
        raw = {row[0]: row[1:] for row in (await conn.execute(
            text(f"SELECT id, {columns} FROM payment_link ORDER BY id"))).all()}
    assert raw["fast"] == raw["core"]


async def test_insert_row_refuses_a_naive_datetime_as_core_does(db: Database) -> None:
    naive = {"created_at": T0.replace(tzinfo=None)}
    async with db.write() as conn:
        await conn.execute(MERCHANTS.insert().values(id="mer_1", name="Shop", default_currency="SGD",
                                                     locale="en_SG", created_at=T0))
    for write in (lambda conn: conn.execute(LINKS.insert(), {**link_values("core"), **naive}),
                  lambda conn: insert_row(conn, LINKS, {**link_values("fast"), **naive})):
        # Core wraps the ValueError in a StatementError; insert_row raises it as it is.
        with pytest.raises(Exception, match="naive datetime"):
            async with db.write() as conn:
                await write(conn)
