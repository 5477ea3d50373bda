"""Links that sell many times: limits, quantity, customer-chosen amounts, split bills, and reservations.

A reusable link counts what was paid (`payments_count`, `units_sold`, `amount_collected_minor`) and what
open checkouts hold (`payments_reserved`, `units_reserved`, `amount_reserved_minor`). Pressing Pay
reserves units with ONE guarded UPDATE that refuses to pass a limit counting both, so stock is never
oversold however many buyers press at once; the reservation lasts `[links] reservation_timeout` and is
released when its checkout fails, expires or times out (the provider's checkout is given the same end).
The payment's transaction (core/links.py `_record`) turns the held units into sold ones and closes the
link when a limit is reached (`sold_out`; a split bill whose shares are all in is `paid`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row

from core import i18n, ids, promos
from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.i18n import N_
from core.models import LinkReservation, LinkStatus, Payment, PaymentLink, ReservationStatus, construct
from core.money import Money
from core.ports import PaymentEvent
from core.sql import insert_row, table

LINKS = table(PaymentLink)
RESERVATIONS = table(LinkReservation)

DEFAULT_RESERVATION_TIMEOUT = timedelta(minutes=30)  # Stripe's shortest Checkout Session
MAX_SUGGESTED = 4
MAX_SPLIT_WAYS = 100
MAX_QUANTITY = 1000
FIXED = "fixed"
CUSTOMER_CHOOSES = "customer_chooses"


class TermsError(Exception):
    """A link's reusable terms that cannot work (LinkService turns it into a LinkError naming the field)."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class ReserveRefused(i18n.TranslatableError):
    """Pay was refused for this link now; `message` is for the customer, `field` names the form field."""

    def __init__(self, code: str, message: str, field: str | None = None, *,
                 values: Mapping[str, object] | None = None) -> None:
        # `message` is a catalog msgid (core.i18n) with named placeholders; text() is the customer's language.
        super().__init__(message, values)
        self.code = code
        self.field = field

    def text(self, t: i18n.Tr) -> str:
        return self.translated(t)


@dataclass(frozen=True, slots=True)
class Terms:
    """How a link sells: reusable limits, quantity, who chooses the amount, split. Minor units throughout."""

    reusable: bool = True
    max_payments: int | None = None
    stock: int | None = None
    max_total_minor: int | None = None
    quantity_min: int | None = None
    quantity_max: int | None = None
    amount_mode: str = FIXED
    min_amount_minor: int | None = None
    max_amount_minor: int | None = None
    suggested_amounts: tuple[int, ...] = ()
    split_ways: int | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "reusable": self.reusable, "max_payments": self.max_payments, "stock": self.stock,
            "max_total_minor": self.max_total_minor, "quantity_min": self.quantity_min,
            "quantity_max": self.quantity_max, "amount_mode": self.amount_mode,
            "min_amount_minor": self.min_amount_minor, "max_amount_minor": self.max_amount_minor,
            "suggested_amounts": list(self.suggested_amounts) or None, "split_ways": self.split_ways,
        }


# What a link made without terms has (every link made before reusable links existed reads the same).
SINGLE_USE_COLUMNS: dict[str, Any] = {
    **Terms(reusable=False).columns(),
    "payments_count": 0, "units_sold": 0, "amount_collected_minor": 0,
    "payments_reserved": 0, "units_reserved": 0, "amount_reserved_minor": 0,
}


def columns(terms: Terms | None) -> dict[str, Any]:
    """A new link's values for these columns."""
    return {**SINGLE_USE_COLUMNS, **(terms.columns() if terms is not None else {})}


def check_terms(terms: Terms, amount_minor: int) -> Terms:
    """The terms as stored, or TermsError naming the field that cannot work."""
    for name in ("max_payments", "stock", "max_total_minor", "quantity_min", "quantity_max", "split_ways"):
        value = getattr(terms, name)
        if value is not None and value < 1:
            field = {"max_total_minor": "max_total", "quantity_min": "quantity.min",
                     "quantity_max": "quantity.max", "split_ways": "split.ways"}.get(name, name)
            raise TermsError("invalid_limit", f"{field} must be at least 1", field)
    if terms.quantity_max is not None:
        low = terms.quantity_min or 1
        if terms.quantity_max < low:
            raise TermsError("invalid_quantity", "quantity.max must be at least quantity.min", "quantity.max")
        if terms.quantity_max > MAX_QUANTITY:
            raise TermsError("invalid_quantity", f"quantity.max must be at most {MAX_QUANTITY}", "quantity.max")
        if terms.stock is not None and low > terms.stock:
            raise TermsError("invalid_quantity", "quantity.min is more than the stock", "quantity.min")
    if terms.amount_mode not in (FIXED, CUSTOMER_CHOOSES):
        raise TermsError("invalid_amount_mode", "amount_mode must be \"fixed\" or \"customer_chooses\"", "amount_mode")
    if terms.amount_mode == CUSTOMER_CHOOSES:
        low = terms.min_amount_minor or 0
        if low < 1:
            raise TermsError("invalid_amount", "min_amount must be greater than zero", "min_amount")
        if terms.max_amount_minor is not None and terms.max_amount_minor < low:
            raise TermsError("invalid_amount", "max_amount must be at least min_amount", "max_amount")
        if len(terms.suggested_amounts) > MAX_SUGGESTED:
            raise TermsError("invalid_amount", f"at most {MAX_SUGGESTED} suggested_amounts", "suggested_amounts")
        for amount in terms.suggested_amounts:
            if amount < low or (terms.max_amount_minor is not None and amount > terms.max_amount_minor):
                raise TermsError("invalid_amount", "each suggested amount must be between min_amount and "
                                 "max_amount", "suggested_amounts")
        if terms.quantity_max is not None or terms.split_ways is not None:
            raise TermsError("invalid_amount_mode", "a customer-chosen amount has no quantity or split",
                             "amount_mode")
    elif terms.suggested_amounts or terms.min_amount_minor is not None or terms.max_amount_minor is not None:
        raise TermsError("invalid_amount_mode", "min_amount, max_amount and suggested_amounts need "
                         "amount_mode \"customer_chooses\"", "amount_mode")
    if terms.split_ways is not None:
        if terms.split_ways < 2 or terms.split_ways > MAX_SPLIT_WAYS:
            raise TermsError("invalid_split", f"split.ways must be 2 to {MAX_SPLIT_WAYS}", "split.ways")
        if terms.split_ways > amount_minor:
            raise TermsError("invalid_split", "the amount is too small to split that many ways", "split.ways")
        if terms.stock is not None or terms.max_payments is not None or terms.max_total_minor is not None:
            raise TermsError("invalid_split", "a split bill's only limit is its shares", "split.ways")
        # The shares are its stock: a share can be paid for several people at once (quantity).
        return _replace(terms, stock=terms.split_ways, quantity_min=1,
                        quantity_max=terms.quantity_max or terms.split_ways)
    if terms.quantity_max is not None and terms.stock is not None:
        return _replace(terms, quantity_max=min(terms.quantity_max, terms.stock))
    return terms


def _replace(terms: Terms, **values: Any) -> Terms:
    return Terms(**{**{name: getattr(terms, name) for name in Terms.__slots__}, **values})


def shares(total_minor: int, ways: int) -> list[int]:
    """`total` in `ways` shares that sum exactly to it: the remainder's minor units go to the first shares."""
    base, extra = divmod(total_minor, ways)
    return [base + (1 if n < extra else 0) for n in range(ways)]


def split_amount(link: PaymentLink, units: int) -> int:
    """What the next `units` shares cost: shares of what is still open, so the whole is always exact."""
    left_minor = link.amount_minor - link.amount_collected_minor - link.amount_reserved_minor
    left_shares = (link.split_ways or 1) - link.units_sold - link.units_reserved
    if units > left_shares or left_shares <= 0:
        return 0
    return sum(shares(left_minor, left_shares)[:units])


def unit_bounds(link: PaymentLink) -> tuple[int, int]:
    """The quantities the pay page offers (1..1 when the quantity is not adjustable)."""
    if link.quantity_max is None:
        return 1, 1
    return link.quantity_min or 1, link.quantity_max


def left(link: PaymentLink) -> int | None:
    """Units (or payments) still free to sell now; None: no limit."""
    room: list[int] = []
    if link.stock is not None:
        room.append(link.stock - link.units_sold - link.units_reserved)
    if link.max_payments is not None:
        room.append((link.max_payments - link.payments_count - link.payments_reserved)
                    * (unit_bounds(link)[1] if link.stock is None else 10**9))
    return max(0, min(room)) if room else None


def limit_reached(link: PaymentLink) -> bool:
    """No further payment can ever count (held units aside): the link is sold out."""
    if link.stock is not None and link.units_sold >= link.stock:
        return True
    if link.max_payments is not None and link.payments_count >= link.max_payments:
        return True
    if link.max_total_minor is not None:
        smallest = link.min_amount_minor if link.amount_mode == CUSTOMER_CHOOSES else link.amount_minor
        if link.max_total_minor - link.amount_collected_minor < (smallest or 1):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    link_id: str
    units: int
    amount_minor: int
    discount_minor: int
    promo_code: str | None
    expires_at: datetime


def _capacity(units: int, amount_minor: int) -> Any:
    """The WHERE clause of a reservation: it passes no limit, counting what was sold and what is held."""
    c = LINKS.c
    return and_(
        or_(c.stock.is_(None), c.units_sold + c.units_reserved + units <= c.stock),
        or_(c.max_payments.is_(None), c.payments_count + c.payments_reserved + 1 <= c.max_payments),
        or_(c.max_total_minor.is_(None), c.amount_collected_minor + c.amount_reserved_minor + amount_minor
            <= c.max_total_minor),
    )


def _money(minor: int, currency: str) -> str:
    return f"{Money(minor, currency).amount_str()} {currency}"


def _link(row: Row[Any]) -> PaymentLink:
    values = dict(row._mapping)
    values["status"] = LinkStatus(values["status"])
    return construct(PaymentLink, values)


class Reservations:
    """Holding units for checkouts (the pay page), and letting them go (failure, expiry, the sweeper)."""

    def __init__(self, db: Database, *, timeout: timedelta = DEFAULT_RESERVATION_TIMEOUT,
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.timeout = timeout
        self.clock = clock

    async def reserve(self, link_id: str, *, quantity: int = 1, amount_minor: int | None = None,
                      promo_code: str | None = None) -> Reservation:
        """Hold `quantity` units (a customer-chosen amount: `amount_minor`) for one checkout, or refuse."""
        now = self.clock()
        async with self.db.write() as conn:
            await _release_due(conn, now, link_id=link_id)
            # FOR UPDATE: on PostgreSQL the counters read below cannot change before our UPDATE (SQLite
            # has one writer at a time anyway, and leaves the clause out).
            row = (await conn.execute(select(LINKS).where(LINKS.c.id == link_id).with_for_update())).first()
            if row is None:
                raise ReserveRefused("not_found", N_("This payment link does not exist."))
            link = _link(row)
            if link.status == LinkStatus.SOLD_OUT:
                raise ReserveRefused("sold_out", N_("Sold out: there is nothing left to buy."))
            if link.status != LinkStatus.ACTIVE or link.expires_at <= now:
                raise ReserveRefused("not_active", N_("This link can no longer be paid."))
            units, amount = self._price(link, quantity, amount_minor)
            discount = 0
            if promo_code:
                discount = await promos.hold(conn, link, promo_code, amount, now)
            charged = amount - discount
            done = await conn.execute(
                update(LINKS)
                .where(LINKS.c.id == link_id, LINKS.c.status == LinkStatus.ACTIVE.value, _capacity(units, charged))
                .values(payments_reserved=LINKS.c.payments_reserved + 1, units_reserved=LINKS.c.units_reserved + units,
                        amount_reserved_minor=LINKS.c.amount_reserved_minor + charged))
            if done.rowcount != 1:
                if limit_reached(link):
                    raise ReserveRefused("sold_out", N_("Sold out: there is nothing left to buy."))
                free = left(link)
                if free:
                    raise ReserveRefused("not_enough", N_("Only %(free)s left; choose fewer."), "quantity",
                                         values={"free": free})
                raise ReserveRefused("all_reserved", N_("Everything left is in other buyers' checkouts right now; "
                                        "if they do not pay, it comes back within %(minutes)s minutes."),
                                     values={"minutes": int(self.timeout.total_seconds() // 60) or 1})
            reservation = Reservation(ids.prefixed("rsv"), link_id, units, charged, discount,
                                      promo_code.upper() if promo_code and discount else None,
                                      min(now + self.timeout, link.expires_at))
            await insert_row(conn, RESERVATIONS, {
                "id": reservation.id, "link_id": link_id, "units": units, "amount_minor": charged,
                "discount_minor": discount, "promo_code": reservation.promo_code,
                "status": ReservationStatus.HELD.value, "created_at": now, "expires_at": reservation.expires_at,
                "provider": None, "checkout_ref": None, "account": None, "payment_id": None})
        return reservation

    @staticmethod
    def _price(link: PaymentLink, quantity: int, amount_minor: int | None) -> tuple[int, int]:
        """(units, amount before any promo code) for this checkout, or ReserveRefused saying what to fix."""
        if link.amount_mode == CUSTOMER_CHOOSES:
            low, high = link.min_amount_minor or 1, link.max_amount_minor
            if amount_minor is None or amount_minor <= 0:
                raise ReserveRefused("invalid_amount", N_("Enter the amount you want to pay."), "amount")
            if amount_minor < low:
                raise ReserveRefused("invalid_amount", N_("The smallest amount is %(amount)s."), "amount",
                                     values={"amount": _money(low, link.currency)})
            if high is not None and amount_minor > high:
                raise ReserveRefused("invalid_amount", N_("The largest amount is %(amount)s."), "amount",
                                     values={"amount": _money(high, link.currency)})
            return 1, amount_minor
        low, high = unit_bounds(link)
        if not low <= quantity <= high:
            raise ReserveRefused("invalid_quantity", N_("Choose a quantity from %(low)s to %(high)s."), "quantity",
                                 values={"low": low, "high": high})
        if link.split_ways is not None:
            amount = split_amount(link, quantity)
            if amount <= 0:
                free = max(0, link.split_ways - link.units_sold - link.units_reserved)
                if free:
                    raise ReserveRefused("not_enough", N_("Only %(free)s shares are left; choose fewer."), "quantity",
                                         values={"free": free})
                raise ReserveRefused("all_reserved", N_("Every share left is being paid right now."))
            return quantity, amount
        return quantity, link.amount_minor * quantity

    async def attach_checkout(self, reservation_id: str, provider: str, checkout_ref: str,
                              account: str | None) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(RESERVATIONS).where(RESERVATIONS.c.id == reservation_id)
                               .values(provider=provider, checkout_ref=checkout_ref, account=account))

    async def release(self, reservation_id: str) -> bool:
        """Let a held reservation go (its checkout could not start, or failed); False if it was not held."""
        async with self.db.write() as conn:
            row = (await conn.execute(select(RESERVATIONS).where(RESERVATIONS.c.id == reservation_id))).first()
            return row is not None and await _release(conn, row)

    async def release_checkout(self, provider: str, checkout_ref: str) -> bool:
        """The provider said this checkout failed or expired: its units are free again."""
        async with self.db.write() as conn:
            row = (await conn.execute(select(RESERVATIONS).where(
                RESERVATIONS.c.provider == provider, RESERVATIONS.c.checkout_ref == checkout_ref,
                RESERVATIONS.c.status == ReservationStatus.HELD.value))).first()
            return row is not None and await _release(conn, row)

    async def release_due(self, *, batch: int = 200) -> list[LinkReservation]:
        """Release every timed-out reservation (the sweeper); returns them, so their checkouts can be closed."""
        now = self.clock()
        async with self.db.read() as conn:  # most rounds find none: no write lock taken for nothing
            due = (await conn.execute(select(RESERVATIONS.c.id).where(
                RESERVATIONS.c.status == ReservationStatus.HELD.value, RESERVATIONS.c.expires_at <= now)
                .limit(1))).first()
        if due is None:
            return []
        async with self.db.write() as conn:
            return await _release_due(conn, now, batch=batch)

    async def for_link(self, link_id: str) -> list[LinkReservation]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(RESERVATIONS).where(RESERVATIONS.c.link_id == link_id)
                                       .order_by(RESERVATIONS.c.created_at))).all()
        return [LinkReservation(**r._mapping) for r in rows]

    async def for_checkout(self, provider: str, checkout_ref: str) -> LinkReservation | None:
        """The reservation a provider's checkout was opened for (None: not a reusable link's checkout)."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(RESERVATIONS).where(
                RESERVATIONS.c.provider == provider, RESERVATIONS.c.checkout_ref == checkout_ref))).first()
        return LinkReservation(**row._mapping) if row is not None else None

    async def promos_of(self, payment_ids: Sequence[str]) -> dict[str, PaymentPromo]:
        async with self.db.read() as conn:
            return await promos_of(conn, payment_ids)

    async def for_payment(self, payment_id: str) -> LinkReservation | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(RESERVATIONS).where(RESERVATIONS.c.payment_id == payment_id))).first()
        return LinkReservation(**row._mapping) if row is not None else None


@dataclass(frozen=True, slots=True)
class PaymentPromo:
    """The promo code a payment was made with, and what it took off (minor units of the payment)."""

    code: str
    discount_minor: int


async def promos_of(conn: DbConnection, payment_ids: Sequence[str]) -> dict[str, PaymentPromo]:
    """Payment id -> its promo code, for those paid with one (one query; the code lives on the reservation)."""
    if not payment_ids:
        return {}
    found: dict[str, PaymentPromo] = {}
    ids_ = list(dict.fromkeys(payment_ids))
    for start in range(0, len(ids_), 500):  # bounded IN lists (SQLite's variable limit)
        rows = (await conn.execute(select(RESERVATIONS.c.payment_id, RESERVATIONS.c.promo_code,
                                          RESERVATIONS.c.discount_minor).where(
            RESERVATIONS.c.payment_id.in_(ids_[start:start + 500]), RESERVATIONS.c.promo_code.is_not(None)))).all()
        for payment_id, code, discount in rows:
            found[str(payment_id)] = PaymentPromo(str(code), int(discount or 0))
    return found


async def _release(conn: DbConnection, row: Row[Any]) -> bool:
    done = await conn.execute(update(RESERVATIONS).where(
        RESERVATIONS.c.id == row.id, RESERVATIONS.c.status == ReservationStatus.HELD.value)
        .values(status=ReservationStatus.RELEASED.value))
    if done.rowcount != 1:
        return False
    await conn.execute(update(LINKS).where(LINKS.c.id == row.link_id).values(
        payments_reserved=LINKS.c.payments_reserved - 1, units_reserved=LINKS.c.units_reserved - row.units,
        amount_reserved_minor=LINKS.c.amount_reserved_minor - row.amount_minor))
    if row.promo_code:
        await promos.unhold(conn, row.link_id, row.promo_code)
    return True


async def _release_due(conn: DbConnection, now: datetime, *, link_id: str | None = None,
                       batch: int = 200) -> list[LinkReservation]:
    query = select(RESERVATIONS).where(RESERVATIONS.c.status == ReservationStatus.HELD.value,
                                       RESERVATIONS.c.expires_at <= now)
    if link_id is not None:
        query = query.where(RESERVATIONS.c.link_id == link_id)
    released = []
    for row in (await conn.execute(query.limit(batch))).all():
        if await _release(conn, row):
            released.append(LinkReservation(**row._mapping))
    return released


# ---------------------------------------------------------------- in the payment's transaction


async def find_for_payment(conn: DbConnection, link: PaymentLink, event: PaymentEvent) -> Row[Any] | None:
    """The reservation a payment settles: by its checkout, else the oldest held one of that amount."""
    refs: Sequence[str] = [r for r in (event.checkout_ref, event.provider_ref) if r]
    if refs:
        row = (await conn.execute(select(RESERVATIONS).where(
            RESERVATIONS.c.link_id == link.id, RESERVATIONS.c.checkout_ref.in_(refs)))).first()
        if row is not None:
            return row
    # A provider whose event does not name the checkout: any held reservation of exactly this amount.
    return (await conn.execute(select(RESERVATIONS).where(
        RESERVATIONS.c.link_id == link.id, RESERVATIONS.c.status == ReservationStatus.HELD.value,
        RESERVATIONS.c.amount_minor == event.amount_minor).order_by(RESERVATIONS.c.created_at).limit(1))).first()


async def count_payment(conn: DbConnection, link: PaymentLink, reservation: Row[Any] | None,
                        payment: Payment) -> tuple[bool, PaymentLink]:
    """Count a payment of a reusable link; (False, link) when it cannot count (to be refunded)."""
    if reservation is None or reservation.status == ReservationStatus.PAID.value:
        return False, link
    units, amount = reservation.units, reservation.amount_minor
    held = (await conn.execute(update(RESERVATIONS).where(
        RESERVATIONS.c.id == reservation.id, RESERVATIONS.c.status == ReservationStatus.HELD.value)
        .values(status=ReservationStatus.PAID.value, payment_id=payment.id))).rowcount == 1
    c = LINKS.c
    sold = {"payments_count": c.payments_count + 1, "units_sold": c.units_sold + units,
            "amount_collected_minor": c.amount_collected_minor + amount}
    if held:
        await conn.execute(update(LINKS).where(c.id == link.id).values(
            payments_reserved=c.payments_reserved - 1, units_reserved=c.units_reserved - units,
            amount_reserved_minor=c.amount_reserved_minor - amount, **sold))
    else:
        # Paid after its reservation was let go (a late webhook): it counts only if there is room still.
        taken = await conn.execute(update(LINKS).where(
            c.id == link.id, c.status == LinkStatus.ACTIVE.value, _capacity(units, amount)).values(**sold))
        if taken.rowcount != 1:
            return False, link
        await conn.execute(update(RESERVATIONS).where(RESERVATIONS.c.id == reservation.id)
                           .values(status=ReservationStatus.PAID.value, payment_id=payment.id))
    if reservation.promo_code:
        await promos.redeem(conn, link.id, reservation.promo_code, held=held)
    row = (await conn.execute(select(LINKS).where(c.id == link.id))).one()
    return True, _link(row)


def closing_status(link: PaymentLink) -> LinkStatus | None:
    """Where a reusable link goes after a payment: paid (all shares of a split in), sold out, or nowhere."""
    if link.split_ways is not None:
        return LinkStatus.PAID if link.units_sold >= link.split_ways else None
    return LinkStatus.SOLD_OUT if limit_reached(link) else None
