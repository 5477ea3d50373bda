"""Reports: SQL totals per currency within a period (in the shop's time zone), and the pure renderers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.commands import ParseContext, Period, parse_period
from core.commands.periods import parse_report
from core.commands.values import Report
from core.db import Database
from core.links import LinkDraft, LinkService
from core.merchants import MerchantService
from core.models import LinkStatus, PaymentLink
from core.money import Money
from core.ports import PaymentEvent
from core.reports import (
    Figures,
    ReportData,
    ReportService,
    Totals,
    format_relative,
    format_when,
    render_link_line,
    render_links,
    render_report,
    render_status,
    timezone_for,
)
from tests.clock import FakeClock

SG = ZoneInfo("Asia/Singapore")


@pytest.mark.parametrize(
    ("locale", "zone"),
    [("en_SG", "Asia/Singapore"), ("id_ID", "Asia/Jakarta"), ("en_US", "America/New_York"),
     ("de", "Europe/Berlin"), ("ja", "Asia/Tokyo"), ("vi_VN", "Asia/Ho_Chi_Minh"), ("th_TH", "Asia/Bangkok")],
)
def test_timezone_from_the_locale(locale: str, zone: str) -> None:
    assert str(timezone_for(locale)) == zone


@pytest.mark.parametrize("locale", ["en_001", "es_419"])
def test_locales_without_one_zone_use_utc(locale: str) -> None:
    assert timezone_for(locale) == UTC


def test_dates_in_the_shops_locale_and_zone() -> None:
    moment = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    # The shop's zone with its short name, written in the reader's language (English here).
    assert format_when(moment, "en_SG") == "3 Dec 2026, 8:00\u202fpm SGT"
    assert format_when(moment, "de_DE") == "3 Dec 2026, 13:00 CET"
    assert format_relative(moment, moment - timedelta(days=7), "de_DE") == "in 7 days"
    assert format_relative(moment, moment + timedelta(hours=3), "en_SG") == "3 hours ago"


# ---------------------------------------------------------------- totals from the database


@pytest.fixture
def clock() -> FakeClock:
    # 2026-11-26 09:00 in Singapore
    return FakeClock(datetime(2026, 11, 26, 1, 0, tzinfo=UTC))


async def new_link(links: LinkService, merchant_id: str, minor: int, currency: str = "SGD") -> PaymentLink:
    link, _ = await links.create(LinkDraft(merchant_id=merchant_id, money=Money(minor, currency), description="x"))
    return link


async def pay(links: LinkService, link: PaymentLink) -> None:
    await links.record_payment(PaymentEvent(
        provider="sandbox", event_id=f"evt_{link.id}", kind="payment.succeeded", link_id=link.id,
        provider_ref=f"ch_{link.id}", amount_minor=link.amount_minor, currency=link.currency,
    ))


async def test_report_counts_by_the_shops_day(db: Database, links: LinkService, clock: FakeClock) -> None:
    merchants = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    shop = (await merchants.create("Cake Shop")).id
    other = (await merchants.create("Other Shop")).id
    # Yesterday in Singapore (2026-11-25 23:30 SGT = 15:30 UTC): made and paid.
    clock.now = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    await pay(links, await new_link(links, shop, 1000))
    # Today (from 00:00 SGT = 16:00 UTC the day before).
    clock.now = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
    await pay(links, await new_link(links, shop, 2500))
    await pay(links, await new_link(links, shop, 500, "USD"))
    await new_link(links, shop, 700)
    await new_link(links, shop, 300)
    cancelled = await new_link(links, shop, 100)
    await links.cancel(cancelled.id, shop)
    expiring, _ = await links.create(LinkDraft(merchant_id=shop, money=Money(900, "SGD"), description="x",
                                               expires_at=clock.now + timedelta(minutes=5)))
    await pay(links, await new_link(links, other, 99999))  # another shop's money never shows
    clock.now = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)

    context = ParseContext(locale="en_SG", default_currency="SGD", now=clock.now, timezone=SG)
    today = await ReportService(db, links, clock=clock).report(shop, parse_period("today", context))
    assert today.paid == {"SGD": Totals(1, 2500), "USD": Totals(1, 500)}
    assert today.open == {"SGD": Totals(2, 1000)}
    assert (today.expired, today.cancelled) == (1, 1)
    assert (await links.get(expiring.id)).status == LinkStatus.EXPIRED  # type: ignore[union-attr]

    yesterday = await ReportService(db, links).report(shop, parse_period("yesterday", context))
    assert yesterday.paid == {"SGD": Totals(1, 1000)} and not yesterday.open
    month = await ReportService(db, links).report(shop, parse_period("month", context))
    assert month.paid == {"SGD": Totals(2, 3500), "USD": Totals(1, 500)}
    empty = await ReportService(db, links).report(shop, parse_period("2026-01", context))
    assert empty.empty


def test_periods_in_the_shops_time_zone() -> None:
    now = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # Thursday 09:00 in Singapore
    context = ParseContext(locale="en_SG", now=now, timezone=SG)
    week = parse_period("week", context)
    assert week.start == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # Monday 00:00 in Singapore
    assert week.end == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    assert parse_period("last month", context).label == "October 2026"
    assert parse_period("2026-02", context).end == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    assert parse_period("2026-12", context).end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert parse_period("2026-11-01", context).label == "2026-11-01"


# ---------------------------------------------------------------- rendering

PERIOD = Period("today", datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))


def test_render_report() -> None:
    data = ReportData(PERIOD, Figures(paid={"USD": Totals(1, 500), "SGD": Totals(3, 7500)},
                                      open={"SGD": Totals(1, 1000)}, expired=2, cancelled=1))
    assert render_report(data, "Cake *Shop*", "en_SG", "SGD") == (
        "📊 **Cake \\*Shop\\*** — today\n"
        "✅ Paid: **S$75.00** + **US$5.00** (4 links)\n"
        "🕓 Open: S$10.00 (1 link)\n"
        "⌛ Expired: 2 · 🚫 Cancelled: 1"
    )
    assert "Nothing yet" in render_report(ReportData(PERIOD), "Cake Shop", "en_SG")
    only_open = render_report(ReportData(PERIOD, Figures(open={"IDR": Totals(2, 30_000_000)})), "Toko", "id_ID",
                              "IDR")
    assert "✅ Paid: nothing yet" in only_open and "Rp 300.000,00 (2 links)" in only_open


def test_test_money_is_reported_apart_and_never_added_to_live_totals() -> None:
    live = Figures(paid={"SGD": Totals(2, 5000)})
    test = Figures(paid={"SGD": Totals(3, 9900)}, open={"SGD": Totals(1, 100)})
    both = render_report(ReportData(PERIOD, live, test), "Cake Shop", "en_SG", "SGD")
    assert both == (
        "📊 **Cake Shop** — today\n"
        "✅ Paid: **S$50.00** (2 links)\n"
        "🧪 Test mode (not counted above): paid S$99.00 (3 links)"
    )
    # Only test money (a shop rehearsing): its figures, marked as test money.
    only_test = render_report(ReportData(PERIOD, Figures(), test), "Cake Shop", "en_SG", "SGD")
    assert only_test.startswith("📊 **Cake Shop** — today · 🧪 Test mode, no real money\n✅ Paid: **S$99.00**")
    # The seller's filters.
    assert "S$99.00" not in render_report(ReportData(PERIOD, live, Figures(), only=True), "Cake Shop", "en_SG")
    filtered = render_report(ReportData(PERIOD, Figures(), test, only=False), "Cake Shop", "en_SG")
    assert "🧪 Test mode" in filtered and "S$99.00" in filtered and "S$50.00" not in filtered
    assert "No live money in this period" in render_report(ReportData(PERIOD, only=True), "Cake Shop", "en_SG")


async def test_report_separates_live_and_test_money(db: Database, links: LinkService, clock: FakeClock) -> None:
    merchants = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    shop = (await merchants.create("Cake Shop")).id
    clock.now = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    await pay(links, await new_link(links, shop, 1000))  # rehearsed in test mode
    await new_link(links, shop, 300)
    links.livemode = True  # then the shop went live
    try:
        await pay(links, await new_link(links, shop, 2500))
        await new_link(links, shop, 700)
    finally:
        links.livemode = False
    context = ParseContext(locale="en_SG", default_currency="SGD", now=clock.now, timezone=SG)
    service = ReportService(db, links, clock=clock)
    both = await service.report(shop, parse_period("today", context))
    assert both.livemode and both.paid == {"SGD": Totals(1, 2500)} and both.open == {"SGD": Totals(1, 700)}
    assert both.beside is not None and both.beside.paid == {"SGD": Totals(1, 1000)}
    live = await service.report(shop, parse_period("today", context), livemode=True)
    assert live.paid == {"SGD": Totals(1, 2500)} and live.beside is None and live.test.empty
    test = await service.report(shop, parse_period("today", context), livemode=False)
    assert not test.livemode and test.paid == {"SGD": Totals(1, 1000)} and test.open == {"SGD": Totals(1, 300)}
    assert test.live.empty


def test_report_words_choose_the_money() -> None:
    context = ParseContext(locale="en_SG", now=datetime(2026, 11, 26, 1, 0, tzinfo=UTC), timezone=SG)
    assert parse_report("week test", context) == Report(parse_period("week", context), False)
    assert parse_report("live last month", context) == Report(parse_period("last month", context), True)
    assert parse_report("", context) == Report(parse_period("today", context), None)
    assert parse_report("test", context).livemode is False


def _link(status: LinkStatus, **kw: object) -> PaymentLink:
    base: dict[str, object] = dict(
        id="abcdefgh12345678901234567890", merchant_id="mer_1", amount_minor=2500, currency="SGD",
        description="2 `cakes`", status=status, created_at=PERIOD.start, expires_at=PERIOD.end,
    )
    base.update(kw)
    return PaymentLink(**base)  # type: ignore[arg-type]


def test_render_links_and_status() -> None:
    line = render_link_line(_link(LinkStatus.PAID, reference="INV-1"), "en_SG")
    assert line == "✅ `abcdefgh` **S$25.00** — 2 \\`cakes\\` · ref `INV-1`"
    listing = render_links([_link(LinkStatus.ACTIVE)], "active", "en_SG", more=True)
    assert listing.startswith("**Your active links**") and "showing the newest 1" in listing
    assert render_links([], "paid", "en_SG", more=False).startswith("No paid links yet")
    now = PERIOD.start
    open_status = render_status(_link(LinkStatus.ACTIVE, customer_phone="+6591234567"), "https://p/x", "en_SG", now)
    assert "🕓 **Open**" in open_status and "for +6591234567" in open_status and "Expires in 24 hours" in open_status
    paid = render_status(_link(LinkStatus.PAID, paid_at=now), "https://p/x", "en_SG", now)
    assert "Paid 26 Nov 2026, 8:00\u202fam" in paid
    assert "Expired" in render_status(_link(LinkStatus.EXPIRED), "u", "en_SG", now)
    assert "Cancelled" in render_status(_link(LinkStatus.CANCELLED, cancelled_at=now), "u", "en_SG", now)
