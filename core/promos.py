"""Promo codes: a percentage or an amount off a link's checkout, counted exactly under concurrency.

A code is held when a checkout starts (one guarded UPDATE: `times_redeemed + redemptions_held` stays
within `max_redemptions`), redeemed when that checkout is paid, and let go when it fails or times out
(core/reusable.py calls these inside its own transactions). The discounted amount is what the provider
charges and what the payment records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from core import i18n
from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.i18n import N_
from core.models import PaymentLink, PromoCode
from core.sql import table

PROMOS = table(PromoCode)
CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{1,39}")
MAX_PROMOS = 1000  # per shop


class PromoError(i18n.TranslatableError):
    """A promo code request or redemption that cannot be done; `field` names what to fix."""

    def __init__(self, code: str, message: str, field: str = "code", status: int = 400, *,
                 values: Mapping[str, object] | None = None) -> None:
        # The redemption errors a customer reads are catalog msgids (core.i18n); text() translates them.
        super().__init__(message, values)
        self.code = code
        self.field = field
        self.status = status

    def text(self, t: i18n.Tr) -> str:
        return self.translated(t)


def normalise(code: str) -> str:
    return code.strip().upper()


def percent_bp(text: str) -> int:
    """ "10" or "12.5" percent -> hundredths of a percent; PromoError unless 0 < p <= 100, 2 decimals."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = Decimal(-1)
    if not value.is_finite() or not 0 < value <= 100 or value != value.quantize(Decimal("0.01")):
        raise PromoError("invalid_percent", "percent_off must be more than 0 and at most 100, e.g. \"10\"",
                         "percent_off")
    return int(value * 100)


def percent_text(bp: int) -> str:
    value = Decimal(bp) / 100
    return str(value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize())


def discount(promo: Any, amount_minor: int, currency: str) -> int:
    """Minor units off `amount_minor` (never all of it: something is always charged)."""
    if promo.percent_off_bp is not None:
        off = amount_minor * promo.percent_off_bp // 10000  # rounded down: the customer never pays less than asked
    elif promo.currency == currency:
        off = promo.amount_off_minor or 0
    else:
        raise PromoError("promo_not_applicable", N_("This code is for payments in %(currency)s."), "promo_code",
                         values={"currency": promo.currency})
    return int(min(off, amount_minor - 1))


def _usable(now: datetime) -> Any:
    c = PROMOS.c
    return and_(or_(c.expires_at.is_(None), c.expires_at > now),
                or_(c.max_redemptions.is_(None), c.times_redeemed + c.redemptions_held < c.max_redemptions))


async def hold(conn: DbConnection, link: PaymentLink, code: str, amount_minor: int, now: datetime) -> int:
    """Hold one redemption of `code` for a checkout of `link`; returns the discount, or PromoError."""
    code = normalise(code)
    row = (await conn.execute(select(PROMOS).where(PROMOS.c.merchant_id == link.merchant_id,
                                                   PROMOS.c.code == code))).first()
    if row is None or (row.link_ids and link.id not in row.link_ids):
        raise PromoError("unknown_promo", N_("That promo code is not valid for this link."), "promo_code")
    if row.expires_at is not None and row.expires_at <= now:
        raise PromoError("promo_expired", N_("That promo code has expired."), "promo_code")
    off = discount(row, amount_minor, link.currency)
    done = await conn.execute(update(PROMOS).where(PROMOS.c.id == row.id, _usable(now))
                              .values(redemptions_held=PROMOS.c.redemptions_held + 1))
    if done.rowcount != 1:
        raise PromoError("promo_used_up", N_("That promo code has been used as many times as it may be."),
                         "promo_code")
    return off


async def unhold(conn: DbConnection, link_id: str, code: str) -> None:
    merchant = select(table(PaymentLink).c.merchant_id).where(table(PaymentLink).c.id == link_id).scalar_subquery()
    await conn.execute(update(PROMOS).where(PROMOS.c.merchant_id == merchant, PROMOS.c.code == code,
                                            PROMOS.c.redemptions_held > 0)
                       .values(redemptions_held=PROMOS.c.redemptions_held - 1))


async def redeem(conn: DbConnection, link_id: str, code: str, *, held: bool) -> None:
    """A checkout with this code was paid: one redemption more (and one hold fewer, if it was held)."""
    merchant = select(table(PaymentLink).c.merchant_id).where(table(PaymentLink).c.id == link_id).scalar_subquery()
    values: dict[str, Any] = {"times_redeemed": PROMOS.c.times_redeemed + 1}
    if held:
        values["redemptions_held"] = PROMOS.c.redemptions_held - 1
    await conn.execute(update(PROMOS).where(PROMOS.c.merchant_id == merchant, PROMOS.c.code == code)
                       .values(**values))


@dataclass(frozen=True, slots=True)
class PromoDraft:
    code: str
    percent_off_bp: int | None = None
    amount_off_minor: int | None = None
    currency: str | None = None
    max_redemptions: int | None = None
    expires_at: datetime | None = None
    link_ids: tuple[str, ...] | None = None


class PromoService:
    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def create(self, merchant_id: str, draft: PromoDraft) -> PromoCode:
        code = normalise(draft.code)
        if not CODE.fullmatch(code):
            raise PromoError("invalid_code", "code must be 2 to 40 letters, digits, - or _, e.g. \"SAVE10\"")
        if (draft.percent_off_bp is None) == (draft.amount_off_minor is None):
            raise PromoError("invalid_discount", "give exactly one of percent_off (\"10\") and amount_off "
                             "(\"5.00\") with currency", "percent_off")
        if draft.amount_off_minor is not None and (draft.amount_off_minor <= 0 or not draft.currency):
            raise PromoError("invalid_discount", "amount_off must be greater than zero, with its currency",
                             "amount_off")
        if draft.max_redemptions is not None and draft.max_redemptions < 1:
            raise PromoError("invalid_limit", "max_redemptions must be at least 1", "max_redemptions")
        now = self.clock()
        if draft.expires_at is not None and draft.expires_at <= now:
            raise PromoError("invalid_expiry", "expires_at must be in the future", "expires_at")
        values = {"merchant_id": merchant_id, "code": code, "percent_off_bp": draft.percent_off_bp,
                  "amount_off_minor": draft.amount_off_minor,
                  "currency": draft.currency if draft.amount_off_minor is not None else None,
                  "max_redemptions": draft.max_redemptions, "times_redeemed": 0, "redemptions_held": 0,
                  "expires_at": draft.expires_at,
                  "link_ids": list(draft.link_ids) if draft.link_ids is not None else None, "created_at": now}
        try:
            async with self.db.write() as conn:
                count = len((await conn.execute(select(PROMOS.c.id).where(PROMOS.c.merchant_id == merchant_id)
                                                .limit(MAX_PROMOS))).all())
                if count >= MAX_PROMOS:
                    raise PromoError("too_many_promos", f"a shop may have at most {MAX_PROMOS} promo codes",
                                     status=409)
                await conn.execute(PROMOS.insert().values(**values))
        except IntegrityError:
            raise PromoError("promo_exists", f"the shop already has a promo code {code}", status=409) from None
        found = await self.get(merchant_id, code)
        assert found is not None
        return found

    async def get(self, merchant_id: str, code: str) -> PromoCode | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(PROMOS).where(PROMOS.c.merchant_id == merchant_id,
                                                           PROMOS.c.code == normalise(code)))).first()
        return PromoCode(**row._mapping) if row is not None else None

    async def list(self, merchant_id: str) -> list[PromoCode]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(PROMOS).where(PROMOS.c.merchant_id == merchant_id)
                                       .order_by(PROMOS.c.created_at.desc(), PROMOS.c.id.desc()))).all()
        return [PromoCode(**r._mapping) for r in rows]

    async def delete(self, merchant_id: str, code: str) -> bool:
        """Remove a code: checkouts that hold it already keep their discount."""
        async with self.db.write() as conn:
            done = await conn.execute(delete(PROMOS).where(PROMOS.c.merchant_id == merchant_id,
                                                           PROMOS.c.code == normalise(code)))
        return bool(done.rowcount)
