"""Recurring series (core/series.py) on an injected clock: calendar months, DST, a worker that was down."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.db import Database
from core.links import Customer, LinkService
from core.merchants import MerchantService
from core.models import SeriesStatus
from core.money import Money
from core.series import Schedule, SeriesDraft, SeriesError, SeriesService, period_start
from tests.clock import FakeClock

SG = ZoneInfo("Asia/Singapore")
NY = ZoneInfo("America/New_York")


def test_month_ends_follow_the_calendar() -> None:
    start = datetime(2027, 1, 31, 9, 0, tzinfo=SG)
    days = [period_start(start, SG, "month", 1, n).astimezone(SG).date() for n in range(5)]
    # 31 Jan, then each month's last day when it has no 31st, and back to the 31st (not stuck on the 28th).
    assert days == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30), date(2027, 5, 31)]
    leap = datetime(2028, 2, 29, 9, 0, tzinfo=SG)
    assert [period_start(leap, SG, "year", 1, n).astimezone(SG).date() for n in range(2)] == \
        [date(2028, 2, 29), date(2029, 2, 28)]
    assert period_start(start, SG, "week", 2, 3).astimezone(SG).date() == date(2027, 3, 14)


def test_dst_keeps_the_local_time() -> None:
    # New York: EST (UTC-5) until 14 Mar 2027, then EDT (UTC-4). 09:00 stays 09:00 local.
    start = datetime(2027, 3, 1, 9, 0, tzinfo=NY).astimezone(UTC)
    weekly = [period_start(start, NY, "week", 1, n) for n in range(3)]
    assert [w.astimezone(NY).hour for w in weekly] == [9, 9, 9]
    # 1 and 8 Mar are EST (14:00 UTC); 15 Mar is EDT, so the same 09:00 is 13:00 UTC.
    assert [w.astimezone(UTC).hour for w in weekly] == [14, 14, 13]
    # Back to standard time on 7 Nov 2027: 1 Oct and 1 Nov are EDT, 1 Dec EST; 09:00 local each time.
    monthly = [period_start(start, NY, "month", 1, n).astimezone(UTC).hour for n in (7, 8, 9)]
    assert monthly == [13, 13, 14]



@pytest.fixture
async def shop(db: Database, clock: FakeClock) -> str:
    merchants = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    shop = await merchants.create("Tuition Centre")
    await merchants.update(shop.id, timezone="America/New_York")
    return shop.id


def tuition(shop: str, **schedule: object) -> SeriesDraft:
    return SeriesDraft(merchant_id=shop, money=Money(15000, "SGD"), description="Tuition",
                       customer=Customer(phone="+6591234567"), schedule=Schedule(**schedule))  # type: ignore[arg-type]


async def test_a_worker_down_for_three_periods_makes_each_once_late(links: LinkService, db: Database,
                                                                    clock: FakeClock, shop: str) -> None:
    # 31 Jan 09:00 New York, monthly, 6 times; the first link is made at creation.
    clock.now = datetime(2027, 1, 31, 9, 0, tzinfo=NY).astimezone(UTC)
    service = SeriesService(db, links, clock=clock)
    series = await service.create(tuition(shop, every="month", count=6))
    assert series.status is SeriesStatus.ACTIVE and series.made == 1
    assert await service.run_due() == 0  # nothing due until 28 Feb
    # The worker is down from February to mid-May: three periods (28 Feb, 31 Mar, 30 Apr) are missed,
    # across the DST change on 14 Mar.
    clock.now = datetime(2027, 5, 15, 12, 0, tzinfo=UTC)
    assert await service.run_due() == 3
    assert await service.run_due() == 0  # exactly once: a second run (or worker) makes nothing more
    made = await service.links_of(series.id)
    assert [p for p, _, _ in made] == [0, 1, 2, 3]
    assert [due.astimezone(NY).date() for _, _, due in made] == [
        date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]
    assert {due.astimezone(NY).hour for _, _, due in made} == {9}
    link = await links.get(made[3][1])
    assert link is not None and link.amount_minor == 15000 and link.customer_phone == "+6591234567"
    assert link.meta["series_id"] == series.id and link.meta["series_period"] == "4"
    assert (await service.get(series.id, shop)).made == 4  # type: ignore[union-attr]
    # Two more periods, then completed.
    clock.now = datetime(2027, 7, 1, tzinfo=UTC)
    assert await service.run_due() == 2
    done = await service.get(series.id, shop)
    assert done is not None and done.status is SeriesStatus.COMPLETED and done.made == 6 and done.next_at is None
    clock.advance(days=400)
    assert await service.run_due() == 0


async def test_a_crash_after_making_the_link_does_not_make_it_twice(links: LinkService, db: Database,
                                                                    clock: FakeClock, shop: str) -> None:
    service = SeriesService(db, links, clock=clock)
    series = await service.create(tuition(shop, every="week"))
    clock.advance(days=7)
    # The link of period 2 was made, then the worker died before recording it: the same key gives it back.
    from core.series import SeriesService as Again
    again = Again(db, links, clock=clock)
    first = await links.create(_period_draft(series.id, shop, 1))
    assert await again.run_due() == 1
    made = await service.links_of(series.id)
    assert made[1][1] == first[0].id


def _period_draft(series_id: str, shop: str, period: int):  # type: ignore[no-untyped-def]
    from core.links import LinkDraft
    key = f"series:{series_id}:{period}"
    return LinkDraft(merchant_id=shop, money=Money(15000, "SGD"), description="Tuition",
                     customer=Customer(phone="+6591234567"), idempotency_key=key, request_hash=key)


async def test_until_and_cancel(links: LinkService, db: Database, clock: FakeClock, shop: str) -> None:
    clock.now = datetime(2027, 5, 10, 14, 0, tzinfo=UTC)
    service = SeriesService(db, links, clock=clock)
    series = await service.create(tuition(shop, every="month", until=date(2027, 6, 30)))
    clock.now = datetime(2027, 9, 1, tzinfo=UTC)
    assert await service.run_due() == 1  # June; July is after `until`
    done = await service.get(series.id, shop)
    assert done is not None and done.status is SeriesStatus.COMPLETED and done.made == 2
    weekly = await service.create(tuition(shop, every="week", interval=2))
    cancelled = await service.cancel(weekly.id, shop)
    assert cancelled.status is SeriesStatus.CANCELLED
    clock.advance(days=30)
    assert await service.run_due() == 0
    with pytest.raises(SeriesError) as again:
        await service.cancel(weekly.id, shop)
    assert again.value.code == "not_active"


@pytest.mark.parametrize(("schedule", "field"), [
    ({"every": "day"}, "schedule.every"),
    ({"every": "month", "interval": 0}, "schedule.interval"),
    ({"every": "month", "count": 0}, "schedule.count"),
    ({"every": "month", "start_at": datetime(2020, 1, 1, tzinfo=UTC)}, "schedule.start_at"),
    ({"every": "month", "until": date(2020, 1, 1)}, "schedule.until"),
])
async def test_bad_schedules_name_their_field(links: LinkService, db: Database, clock: FakeClock, shop: str,
                                              schedule: dict[str, object], field: str) -> None:
    with pytest.raises(SeriesError) as bad:
        await SeriesService(db, links, clock=clock).create(tuition(shop, **schedule))
    assert bad.value.field == field
