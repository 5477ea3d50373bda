"""Recurring charges: a series makes one payment link per period (tuition, rent, subscriptions).

Periods follow the calendar in the shop's time zone: period n starts at the start's wall-clock time on
start + n x interval weeks / months / years; a month without the start's day uses its last day (31 Jan,
28 Feb, 31 Mar — always counted from the start, so a short month does not pull later ones earlier), and
a DST change keeps the local time (09:00 stays 09:00, so the UTC instant moves). A series ends after
`count` periods, or with the last period starting on or before `until` (a date in the shop's zone).

Exactly once: the worker (`run_due`, every sweep) makes each due period's link with the idempotency key
`series:{id}:{period}`, so a crash between making the link and recording it, or two workers at once, make
it once; a worker that was down makes every missed period once when it comes back (late). The customer
gets each link as any link (WhatsApp / SMS / email, as available); the seller's chat hears of each one.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from core import ids, markup
from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.invoices import shop_zone
from core.line_items import Totals, from_stored, to_stored
from core.links import Customer, LinkDraft, LinkError, LinkService
from core.models import Merchant, PaymentLink, PaymentSeries, SeriesLink, SeriesStatus
from core.money import Money, format_money
from core.outbox import ACTION_SEND, Target, dedupe_key, insert_rows, new_row, payload
from core.ports import Reply
from core.sql import insert_ignore, insert_row, table

log = logging.getLogger("paylinks.series")

SERIES = table(PaymentSeries)
SERIES_LINKS = table(SeriesLink)
MERCHANTS = table(Merchant)
EVERY = ("week", "month", "year")
INTERVAL_MAX = 52
COUNT_MAX = 1000
# Per run, per series: a worker back after a very long downtime catches up over several sweeps.
CATCH_UP_MAX = 24


class SeriesError(Exception):
    def __init__(self, code: str, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.field, self.status = code, message, field, status


@dataclass(frozen=True, slots=True)
class Schedule:
    every: str
    interval: int = 1
    count: int | None = None
    until: date | None = None
    start_at: datetime | None = None  # None: now

    def check(self) -> None:
        if self.every not in EVERY:
            raise SeriesError("invalid_schedule", "schedule.every is week, month or year", field="schedule.every")
        if not 1 <= self.interval <= INTERVAL_MAX:
            raise SeriesError("invalid_schedule", f"schedule.interval is 1 to {INTERVAL_MAX}",
                              field="schedule.interval")
        if self.count is not None and not 1 <= self.count <= COUNT_MAX:
            raise SeriesError("invalid_schedule", f"schedule.count is 1 to {COUNT_MAX}", field="schedule.count")
        if self.start_at is not None and self.start_at.tzinfo is None:
            raise SeriesError("invalid_schedule", "schedule.start_at needs a UTC offset", field="schedule.start_at")


def _add_months(day: date, months: int) -> date:
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def period_start(start_at: datetime, zone: ZoneInfo, every: str, interval: int, n: int) -> datetime:
    """When period n (0 = the first) starts, in UTC: calendar arithmetic on the shop's wall clock."""
    local = start_at.astimezone(zone)
    if every == "week":
        day = local.date() + timedelta(weeks=interval * n)
    else:
        day = _add_months(local.date(), interval * n * (12 if every == "year" else 1))
    # The same wall-clock time that day; a time a DST jump skips is read with the offset before it.
    return datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=zone).astimezone(start_at.tzinfo)


def exists(series: PaymentSeries | Any, n: int, zone: ZoneInfo) -> datetime | None:
    """Period n's start, or None when the series has ended before it."""
    if series.count is not None and n >= series.count:
        return None
    at = period_start(series.start_at, zone, series.every, series.interval, n)
    if series.until is not None and at.astimezone(zone).date() > date.fromisoformat(series.until):
        return None
    return at


@dataclass(frozen=True, slots=True)
class SeriesDraft:
    merchant_id: str
    money: Money
    description: str
    schedule: Schedule
    reference: str | None = None
    customer: Customer = field(default_factory=Customer)
    expires_in: timedelta | None = None
    meta: dict[str, str] = field(default_factory=dict)
    notify: frozenset[str] | None = None
    line_items: Totals | None = None
    origin_platform: str | None = None
    origin_address: str | None = None
    created_by_member_id: int | None = None


def _template(draft: SeriesDraft) -> dict[str, Any]:
    return {
        "amount_minor": draft.money.amount_minor, "currency": draft.money.currency,
        "description": draft.description, "reference": draft.reference,
        "customer": {"name": draft.customer.name, "email": draft.customer.email, "phone": draft.customer.phone},
        "expires_in_s": int(draft.expires_in.total_seconds()) if draft.expires_in else None,
        "metadata": dict(draft.meta), "notify": sorted(draft.notify) if draft.notify is not None else None,
        "line_items": to_stored(draft.line_items) if draft.line_items is not None else None,
    }


def series_row(row: Any) -> PaymentSeries:
    values = dict(row._mapping)
    values["status"] = SeriesStatus(values["status"])
    return PaymentSeries.model_construct(**values)


# Tells the seller of a link the series made, in the transaction that records it (bots/services.py).
SellerNotice = Callable[[DbConnection, PaymentSeries, int, PaymentLink, datetime], Awaitable[None]]


class SeriesService:
    def __init__(self, db: Database, links: LinkService, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.links = links
        self.clock = clock
        # Tells the seller's chat of each link made (bots/services.py: an outbox row); None in core tests.
        self.notify_seller: SellerNotice | None = None

    async def _zone(self, merchant_id: str) -> ZoneInfo:
        async with self.db.read() as conn:
            name = (await conn.execute(select(MERCHANTS.c.timezone).where(MERCHANTS.c.id == merchant_id))).scalar()
        return shop_zone(name)

    async def create(self, draft: SeriesDraft) -> PaymentSeries:
        schedule = draft.schedule
        schedule.check()
        now = self.clock()
        start = schedule.start_at or now
        if start < now - timedelta(minutes=5):
            raise SeriesError("invalid_schedule", "schedule.start_at must not be in the past",
                              field="schedule.start_at")
        if start > now + timedelta(days=366):
            raise SeriesError("invalid_schedule", "schedule.start_at must be within a year",
                              field="schedule.start_at")
        zone = await self._zone(draft.merchant_id)
        if schedule.until is not None and schedule.until < start.astimezone(zone).date():
            raise SeriesError("invalid_schedule", "schedule.until is before the first period", field="schedule.until")
        # The first link is checked like any link now, so a series never starts failing later.
        try:
            await self.links.check_draft(self._link_draft_from(draft))
        except LinkError as exc:
            raise SeriesError(exc.code, exc.message, field=exc.field, status=exc.status) from None
        values: dict[str, Any] = {
            "id": ids.prefixed("ser"), "merchant_id": draft.merchant_id, "every": schedule.every,
            "interval": schedule.interval, "count": schedule.count,
            "until": schedule.until.isoformat() if schedule.until else None, "start_at": start,
            "timezone": zone.key, "template": _template(draft), "status": SeriesStatus.ACTIVE.value, "made": 0,
            "next_at": start, "created_at": now, "cancelled_at": None, "origin_platform": draft.origin_platform,
            "origin_address": draft.origin_address, "created_by_member_id": draft.created_by_member_id,
        }
        async with self.db.write() as conn:
            await insert_row(conn, SERIES, values)
        series = series_row(_Row(values))
        log.info("series created series=%s merchant=%s every=%s", series.id, draft.merchant_id, schedule.every)
        await self.run_series(series.id)  # a series starting now makes its first link at once
        return await self.get(series.id, draft.merchant_id) or series

    @staticmethod
    def _link_draft_from(draft: SeriesDraft) -> LinkDraft:
        return LinkDraft(merchant_id=draft.merchant_id, money=draft.money, description=draft.description,
                         reference=draft.reference, customer=draft.customer, expires_in=draft.expires_in,
                         meta=dict(draft.meta), notify=draft.notify, line_items=draft.line_items)

    async def get(self, series_id: str, merchant_id: str) -> PaymentSeries | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(SERIES).where(SERIES.c.id == series_id,
                                                           SERIES.c.merchant_id == merchant_id))).first()
        return series_row(row) if row else None

    async def list_series(self, merchant_id: str, *, limit: int = 100) -> list[PaymentSeries]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(SERIES).where(SERIES.c.merchant_id == merchant_id)
                                       .order_by(SERIES.c.created_at.desc(), SERIES.c.id.desc()).limit(limit))).all()
        return [series_row(r) for r in rows]

    async def links_of(self, series_id: str) -> list[tuple[int, str, datetime]]:
        """(period, link id, due) of the links made so far, oldest first."""
        async with self.db.read() as conn:
            rows = (await conn.execute(select(SERIES_LINKS).where(SERIES_LINKS.c.series_id == series_id)
                                       .order_by(SERIES_LINKS.c.period))).all()
        return [(r.period, r.link_id, r.due_at) for r in rows]

    async def cancel(self, series_id: str, merchant_id: str) -> PaymentSeries:
        now = self.clock()
        async with self.db.write() as conn:
            done = await conn.execute(update(SERIES).where(
                SERIES.c.id == series_id, SERIES.c.merchant_id == merchant_id,
                SERIES.c.status == SeriesStatus.ACTIVE.value).values(
                status=SeriesStatus.CANCELLED.value, cancelled_at=now, next_at=None))
        series = await self.get(series_id, merchant_id)
        if series is None:
            raise SeriesError("not_found", "no such series", field="id", status=404)
        if done.rowcount != 1:
            raise SeriesError("not_active", f"only an active series can be cancelled; this one is {series.status}",
                              field="id", status=409)
        log.info("series cancelled series=%s", series_id)
        return series

    # ------------------------------------------------------------ the worker

    async def run_due(self) -> int:
        """Make the link of every due period of every active series; returns how many were made."""
        now = self.clock()
        async with self.db.read() as conn:
            due = [r.id for r in (await conn.execute(
                select(SERIES.c.id).where(SERIES.c.status == SeriesStatus.ACTIVE.value, SERIES.c.next_at <= now)
                .order_by(SERIES.c.next_at).limit(500))).all()]
        made = 0
        for series_id in due:
            made += await self.run_series(series_id)
        return made

    async def run_series(self, series_id: str) -> int:
        made = 0
        for _ in range(CATCH_UP_MAX):
            if not await self._make_next(series_id):
                break
            made += 1
        return made

    async def _make_next(self, series_id: str) -> bool:
        now = self.clock()
        async with self.db.read() as conn:
            row = (await conn.execute(select(SERIES).where(SERIES.c.id == series_id))).first()
        if row is None:
            return False
        series = series_row(row)
        if series.status != SeriesStatus.ACTIVE or series.next_at is None or series.next_at > now:
            return False
        period = series.made
        zone = shop_zone(series.timezone)
        due = exists(series, period, zone)
        if due is None:  # ended (count or until) without a further period
            await self._advance(series, period, None)
            return False
        template = series.template
        money = Money(int(template["amount_minor"]), str(template["currency"]))
        totals = from_stored(template["line_items"], money.currency) if template.get("line_items") else None
        customer = Customer(**template.get("customer") or {})
        key = f"series:{series.id}:{period}"
        draft = LinkDraft(
            merchant_id=series.merchant_id, money=money, description=str(template["description"]),
            reference=template.get("reference"), customer=customer,
            expires_in=timedelta(seconds=template["expires_in_s"]) if template.get("expires_in_s") else None,
            meta={**(template.get("metadata") or {}), "series_id": series.id, "series_period": str(period + 1)},
            notify=frozenset(template["notify"]) if template.get("notify") is not None else None,
            origin_platform=series.origin_platform, origin_address=series.origin_address,
            created_by_member_id=series.created_by_member_id, idempotency_key=key, request_hash=key,
            line_items=totals,
        )
        try:
            link, created = await self.links.create(draft)
        except LinkError as exc:
            # Limits changed since the series was made (max_amount…): it cannot go on; the seller is told.
            log.warning("series %s period %d refused (%s): cancelling it", series.id, period, exc.message)
            async with self.db.write() as conn:
                await conn.execute(update(SERIES).where(SERIES.c.id == series.id).values(
                    status=SeriesStatus.CANCELLED.value, cancelled_at=now, next_at=None))
            return False
        next_due = exists(series, period + 1, zone)
        async with self.db.write() as conn:
            await insert_ignore(conn, SERIES_LINKS, {"series_id": series.id, "period": period, "link_id": link.id,
                                                     "due_at": due})
            moved = await self._advance(series, period, next_due, conn=conn)
            if moved and self.notify_seller is not None:
                await self.notify_seller(conn, series, period, link, now)
        log.info("series link made series=%s period=%d link=%s late_by=%s new=%s", series.id, period + 1, link.id,
                 now - due, created)
        return True

    async def _advance(self, series: PaymentSeries, period: int, next_due: datetime | None,
                       conn: DbConnection | None = None) -> bool:
        """Record period done (guarded on `made`, so two workers move it once); completed without a next."""
        values: dict[str, Any] = {"made": period + 1, "next_at": next_due}
        if next_due is None:
            values["status"] = SeriesStatus.COMPLETED.value
            if exists(series, period, shop_zone(series.timezone)) is None:
                values["made"] = period  # nothing was made for this period: it does not exist
        statement = update(SERIES).where(SERIES.c.id == series.id, SERIES.c.made == period,
                                         SERIES.c.status == SeriesStatus.ACTIVE.value).values(**values)
        if conn is not None:
            return bool((await conn.execute(statement)).rowcount)
        async with self.db.write() as own:
            return bool((await own.execute(statement)).rowcount)


class _Row:
    """A plain mapping shaped like a result row (series_row reads `_mapping`)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values


def series_notice(link_url: Callable[[str], str], wake: Callable[[], None] | None = None) -> SellerNotice:
    """The seller's chat (where the series was made) hears of each later link: an outbox row, written once."""

    async def notice(conn: DbConnection, series: PaymentSeries, period: int, link: PaymentLink,
                     now: datetime) -> None:
        if period == 0 or not (series.origin_platform and series.origin_address):
            return  # the first link is the answer to the command itself
        of = f" of {series.count}" if series.count else ""
        who = link.customer_phone or link.customer_email or link.customer_name or "the customer"
        amount = format_money(link.amount_minor, link.currency)
        text = (f"🔁 Series `{series.id}`: link {period + 1}{of} made — **{amount}** "
                f"{markup.escape(link.description)}, sent to {markup.escape(who)}.")
        reply = Reply(f"{text}\n{link_url(link.id)}", link_id=link.id)
        target = Target(series.origin_platform, series.origin_address)
        await insert_rows(conn, [new_row(
            target=target, kind="series.made.alert", body=payload(ACTION_SEND, reply, event="series.made"),
            key=dedupe_key("series.made", series.id, str(period)), now=now, merchant_id=series.merchant_id,
            link_id=link.id)])
        if wake is not None:
            wake()

    return notice
