"""What a seller sees at a glance: totals per currency, paid versus open, and link listings.

Numbers come from SQL aggregates (one GROUP BY per question); rendering is pure and returns Reply markup,
with amounts in the merchant's locale and times in the merchant's time zone (from the locale's territory).
Test money (links with livemode false) is counted apart from live money and never added to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from babel.dates import format_skeleton, format_time, format_timedelta
from sqlalchemy import func, select

from core import markup
from core.clock import Clock, utcnow
from core.commands import Period
from core.db import Database
from core.links import LinkService
from core.locales import babel_locale, timezone_for
from core.models import LinkStatus, Payment, PaymentLink, PaymentStatus, Refund
from core.money import format_money
from core.outbox_texts import TEST_MARK
from core.sql import table
from core.timeline import TimelineEvent

LINKS = table(PaymentLink)
PAYMENTS = table(Payment)

# ---------------------------------------------------------------- display helpers

STATUS_MARK: dict[LinkStatus, str] = {
    LinkStatus.ACTIVE: "🕓",
    LinkStatus.PAID: "✅",
    LinkStatus.EXPIRED: "⌛",
    LinkStatus.CANCELLED: "🚫",
    LinkStatus.REFUNDED: "↩️",
    LinkStatus.SOLD_OUT: "🎟",
}
STATUS_WORD: dict[LinkStatus, str] = {
    LinkStatus.ACTIVE: "Open",
    LinkStatus.PAID: "Paid",
    LinkStatus.EXPIRED: "Expired",
    LinkStatus.CANCELLED: "Cancelled",
    LinkStatus.REFUNDED: "Refunded",
    LinkStatus.SOLD_OUT: "Sold out",
}


def format_when(moment: datetime, locale: str) -> str:
    """"3 Dec 2026, 14:05" in the shop's locale and time zone."""
    zone = timezone_for(locale)
    loc = babel_locale(locale)
    local = moment.astimezone(zone)
    return f"{format_skeleton('yMMMd', local, locale=loc)}, {format_time(local, 'short', locale=loc)}"


def format_relative(moment: datetime, now: datetime, locale: str) -> str:
    """"in 7 days", "3 hours ago" — in English like the rest of the replies (`locale` is for dates)."""
    return format_timedelta(moment - now, add_direction=True, locale="en", threshold=1.1)


def short_id(link_id: str) -> str:
    return link_id[:8]


# ---------------------------------------------------------------- report data


@dataclass(frozen=True, slots=True)
class Totals:
    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class MoneyTotals:
    """The money itself, from the payments taken in the period: gross in, refunded out, net kept."""

    payments: int
    gross_minor: int
    refunded_minor: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunded_minor


@dataclass(frozen=True, slots=True)
class Figures:
    """One kind of money's figures for a period (live money and test money are never added up)."""

    paid: dict[str, Totals] = field(default_factory=dict)  # paid within the period, by currency
    open: dict[str, Totals] = field(default_factory=dict)  # made within the period and still payable
    expired: int = 0
    cancelled: int = 0
    # Every payment taken within the period (double payments too), by currency, with what went back.
    money: dict[str, MoneyTotals] = field(default_factory=dict)
    refunded_links: int = 0

    @property
    def empty(self) -> bool:
        return not (self.paid or self.open or self.expired or self.cancelled or self.money)


@dataclass(frozen=True, slots=True)
class ReportData:
    period: Period
    live: Figures = field(default_factory=Figures)
    test: Figures = field(default_factory=Figures)  # sandbox, Stripe test keys, PortOne sandbox
    only: bool | None = None  # the seller's filter: True live money only, False test money only

    @property
    def livemode(self) -> bool:
        """Which money the report's main lines show: live, unless asked for test or there is only test."""
        if self.only is not None:
            return self.only
        return not self.live.empty or self.test.empty

    @property
    def main(self) -> Figures:
        return self.live if self.livemode else self.test

    @property
    def beside(self) -> Figures | None:
        """Test money shown on its own line under live totals (never added to them); None when filtered."""
        if self.only is not None or not self.livemode or self.test.empty:
            return None
        return self.test

    @property
    def paid(self) -> dict[str, Totals]:
        return self.main.paid

    @property
    def open(self) -> dict[str, Totals]:
        return self.main.open

    @property
    def expired(self) -> int:
        return self.main.expired

    @property
    def cancelled(self) -> int:
        return self.main.cancelled

    @property
    def money(self) -> dict[str, MoneyTotals]:
        return self.main.money

    @property
    def refunded_links(self) -> int:
        return self.main.refunded_links

    @property
    def empty(self) -> bool:
        return self.main.empty and self.beside is None


class ReportService:
    def __init__(self, db: Database, links: LinkService, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.links = links
        self.clock = clock

    async def report(self, merchant_id: str, period: Period, *, livemode: bool | None = None) -> ReportData:
        """Both kinds of money, separately; `livemode` True/False: only that kind (the seller's filter)."""
        await self.links.expire_due(merchant_id=merchant_id)
        count, total = func.count(LINKS.c.id), func.coalesce(func.sum(LINKS.c.amount_minor), 0)
        mode = LINKS.c.livemode
        async with self.db.read() as conn:
            paid_rows = (
                await conn.execute(
                    select(mode, LINKS.c.currency, count, total)
                    .where(
                        LINKS.c.merchant_id == merchant_id,
                        LINKS.c.status == LinkStatus.PAID.value,
                        LINKS.c.paid_at >= period.start,
                        LINKS.c.paid_at < period.end,
                        LINKS.c.reusable.is_(False),  # counted per payment below
                    )
                    .group_by(mode, LINKS.c.currency)
                )
            ).all()
            made_rows = (
                await conn.execute(
                    select(mode, LINKS.c.status, LINKS.c.currency, count, total)
                    .where(
                        LINKS.c.merchant_id == merchant_id,
                        LINKS.c.status != LinkStatus.PAID.value,
                        LINKS.c.created_at >= period.start,
                        LINKS.c.created_at < period.end,
                        LINKS.c.reusable.is_(False),
                    )
                    .group_by(mode, LINKS.c.status, LINKS.c.currency)
                )
            ).all()
            money_rows = (
                await conn.execute(
                    select(PAYMENTS.c.livemode, PAYMENTS.c.currency, func.count(PAYMENTS.c.id),
                           func.coalesce(func.sum(PAYMENTS.c.amount_minor), 0),
                           func.coalesce(func.sum(PAYMENTS.c.amount_refunded_minor), 0))
                    .join_from(PAYMENTS, LINKS, LINKS.c.id == PAYMENTS.c.link_id)
                    .where(LINKS.c.merchant_id == merchant_id, PAYMENTS.c.created_at >= period.start,
                           PAYMENTS.c.created_at < period.end)
                    .group_by(PAYMENTS.c.livemode, PAYMENTS.c.currency)
                )
            ).all()
            # A link that sells many times counts each of its payments as one paid sale.
            sold_rows = (
                await conn.execute(
                    select(PAYMENTS.c.livemode, PAYMENTS.c.currency, func.count(PAYMENTS.c.id),
                           func.coalesce(func.sum(PAYMENTS.c.amount_minor), 0))
                    .join_from(PAYMENTS, LINKS, LINKS.c.id == PAYMENTS.c.link_id)
                    .where(LINKS.c.merchant_id == merchant_id, LINKS.c.reusable.is_(True),
                           PAYMENTS.c.status != PaymentStatus.REFUND_NEEDED.value,
                           PAYMENTS.c.created_at >= period.start, PAYMENTS.c.created_at < period.end)
                    .group_by(PAYMENTS.c.livemode, PAYMENTS.c.currency)
                )
            ).all()
            refunded_rows = (
                await conn.execute(
                    select(mode, count).where(
                        LINKS.c.merchant_id == merchant_id, LINKS.c.status == LinkStatus.REFUNDED.value,
                        LINKS.c.paid_at >= period.start, LINKS.c.paid_at < period.end)
                    .group_by(mode)
                )
            ).all()
        figures = {True: _Tally(), False: _Tally()}
        for live, currency, n, gross, refunded in money_rows:
            figures[bool(live)].money[currency] = MoneyTotals(int(n), int(gross), int(refunded))
        for live, n in refunded_rows:
            figures[bool(live)].refunded_links = int(n)
        for live, currency, n, amount in paid_rows:
            figures[bool(live)].paid[currency] = Totals(int(n), int(amount))
        for live, currency, n, amount in sold_rows:
            before = figures[bool(live)].paid.get(currency, Totals(0, 0))
            figures[bool(live)].paid[currency] = Totals(before.count + int(n), before.amount_minor + int(amount))
        for live, status, currency, n, amount in made_rows:
            tally = figures[bool(live)]
            if status == LinkStatus.ACTIVE.value:
                tally.open[currency] = Totals(int(n), int(amount))
            elif status == LinkStatus.EXPIRED.value:
                tally.expired += int(n)
            elif status == LinkStatus.CANCELLED.value:
                tally.cancelled += int(n)
        live_figures, test_figures = figures[True].done(), figures[False].done()
        if livemode is True:
            test_figures = Figures()
        elif livemode is False:
            live_figures = Figures()
        return ReportData(period, live_figures, test_figures, only=livemode)


@dataclass
class _Tally:
    paid: dict[str, Totals] = field(default_factory=dict)
    open: dict[str, Totals] = field(default_factory=dict)
    expired: int = 0
    cancelled: int = 0
    money: dict[str, MoneyTotals] = field(default_factory=dict)
    refunded_links: int = 0

    def done(self) -> Figures:
        return Figures(self.paid, self.open, self.expired, self.cancelled, self.money, self.refunded_links)


# ---------------------------------------------------------------- rendering (pure, Reply markup)


def _money_list(totals: dict[str, Totals], locale: str, *, bold: bool, first: str | None) -> str:
    parts = []
    # The shop's own currency first, then the busiest.
    for currency in sorted(totals, key=lambda c: (c != first, -totals[c].count, c)):
        amount = format_money(totals[currency].amount_minor, currency, locale)
        parts.append(f"**{amount}**" if bold else amount)
    return " + ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _figure_lines(figures: Figures, locale: str, currency: str | None) -> list[str]:
    lines = []
    paid_count = sum(t.count for t in figures.paid.values())
    open_count = sum(t.count for t in figures.open.values())
    if figures.paid:
        paid = _money_list(figures.paid, locale, bold=True, first=currency)
        lines.append(f"✅ Paid: {paid} ({_plural(paid_count, 'link')})")
    else:
        lines.append("✅ Paid: nothing yet")
    if figures.open:
        still_open = _money_list(figures.open, locale, bold=False, first=currency)
        lines.append(f"🕓 Open: {still_open} ({_plural(open_count, 'link')})")
    extra = []
    if figures.expired:
        extra.append(f"⌛ Expired: {figures.expired}")
    if figures.cancelled:
        extra.append(f"🚫 Cancelled: {figures.cancelled}")
    if figures.refunded_links:
        extra.append(f"↩️ Refunded: {figures.refunded_links}")
    if extra:
        lines.append(" · ".join(extra))
    for code in sorted(figures.money, key=lambda c: (c != currency, c)):
        totals = figures.money[code]
        gross = format_money(totals.gross_minor, code, locale)
        refunded = format_money(totals.refunded_minor, code, locale)
        net = format_money(totals.net_minor, code, locale)
        lines.append(f"💰 {code}: gross {gross} − refunded {refunded} = net **{net}**")
    return lines


def render_report(data: ReportData, merchant_name: str, locale: str, currency: str | None = None) -> str:
    mode = "" if data.livemode else f" · {TEST_MARK}, no real money"
    if data.only is True:
        mode = " · live money only"
    lines = [f"📊 **{markup.user(merchant_name)}** — {markup.escape(data.period.label)}{mode}"]
    if data.empty:
        which = "Nothing yet" if data.only is None else "No live money" if data.only else "Nothing in test mode"
        lines.append(f"{which} in this period. Make a link: `/charge 25 birthday cake`")
        return "\n".join(lines)
    lines.extend(_figure_lines(data.main, locale, currency))
    beside = data.beside
    if beside is not None:
        # Never added to the totals above: shown apart, so a rehearsal cannot pass for sales.
        paid = _money_list(beside.paid, locale, bold=False, first=currency) or "nothing"
        paid_count = sum(t.count for t in beside.paid.values())
        lines.append(f"{TEST_MARK} (not counted above): paid {paid}"
                     + (f" ({_plural(paid_count, 'link')})" if paid_count else ""))
    return "\n".join(lines)


_TIMELINE_WORDS = {
    "link.created": "made", "link.opened": "opened", "checkout.started": "checkout started",
    "payment.succeeded": "paid", "alert.delivered": "alert delivered", "refund.requested": "refund asked",
    "refund.succeeded": "refunded", "refund.failed": "refund failed", "link.expired": "expired",
    "link.cancelled": "cancelled", "payment.failed": "payment failed", "dispute.created": "disputed",
}
TIMELINE_LINES = 8


def render_money_life(payments: Sequence[Payment], refunds: Mapping[str, Sequence[Refund]],
                      events: Sequence[TimelineEvent], locale: str) -> list[str]:
    """/status's lines after the link: each payment with its refunds, then the timeline, briefly."""
    lines = []
    for payment in payments:
        amount = format_money(payment.amount_minor, payment.currency, locale)
        who = f" by {markup.user(payment.payer_name)}" if payment.payer_name else ""
        line = f"💳 {amount}{who} · {str(payment.status).replace('_', ' ')} · `{payment.id}`"
        if payment.amount_refunded_minor:
            line += f" · refunded {format_money(payment.amount_refunded_minor, payment.currency, locale)}"
        lines.append(line)
        for refund in refunds.get(payment.id, ()):
            text = f"  ↩️ {format_money(refund.amount_minor, refund.currency, locale)} {refund.status}"
            if refund.failure_reason:
                text += f": {markup.escape(refund.failure_reason[:120])}"
            lines.append(text)
    if events:
        shown = list(events)[-TIMELINE_LINES:]
        parts = []
        for event in shown:
            word = _TIMELINE_WORDS.get(event.type, event.type)
            if event.type == "link.opened" and event.details.get("views", 1) > 1:
                word += f" ×{event.details['views']}"
            parts.append(f"{format_when(event.at, locale)} {word}")
        lines.append("🕑 " + " → ".join(parts))
    return lines



def render_link_line(link: PaymentLink, locale: str) -> str:
    status = LinkStatus(link.status)
    amount = format_money(link.amount_minor, link.currency, locale)
    line = f"{STATUS_MARK[status]} `{short_id(link.id)}` **{amount}** — {markup.user(link.description)}"
    if link.reference:
        line += f" · ref `{markup.user(link.reference)}`"
    if link.reusable:
        from core.sales_texts import counts_text

        line += f" · {counts_text(link, locale)}"
    return line


def render_links(links: list[PaymentLink], label: str, locale: str, *, more: bool) -> str:
    if not links:
        which = "" if label == "all" else f"{label} "
        return f"No {which}links yet. Make one: `/charge 25 birthday cake`"
    title = "Your links" if label == "all" else f"Your {label} links"
    lines = [f"**{title}** (newest first)"]
    lines.extend(render_link_line(link, locale) for link in links)
    if more:
        lines.append(f"…showing the newest {len(links)}. Look one up with `/status {short_id(links[0].id)}`.")
    return "\n".join(lines)


def render_status(link: PaymentLink, url: str, locale: str, now: datetime) -> str:
    status = LinkStatus(link.status)
    amount = format_money(link.amount_minor, link.currency, locale)
    lines = [
        f"{STATUS_MARK[status]} **{STATUS_WORD[status]}** · **{amount}** — {markup.user(link.description)}",
    ]
    details = [f"id `{short_id(link.id)}`"]
    if link.reference:
        details.append(f"ref `{markup.user(link.reference)}`")
    customer = link.customer_phone or link.customer_email or link.customer_name
    if customer:
        details.append(f"for {markup.user(customer)}")
    lines.append(" · ".join(details))
    if link.reusable:
        from core.sales_texts import counts_text

        lines.append(counts_text(link, locale))
    if status in (LinkStatus.PAID, LinkStatus.REFUNDED) and link.paid_at:
        lines.append(f"Paid {format_when(link.paid_at, locale)}")
    elif status is LinkStatus.CANCELLED and link.cancelled_at:
        lines.append(f"Cancelled {format_when(link.cancelled_at, locale)}")
    elif status is LinkStatus.EXPIRED:
        lines.append(f"Expired {format_when(link.expires_at, locale)}")
    else:
        when = format_when(link.expires_at, locale)
        lines.append(f"Expires {format_relative(link.expires_at, now, locale)} ({when})")
    lines.append(url)
    return "\n".join(lines)
