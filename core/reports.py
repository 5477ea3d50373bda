"""What a seller sees at a glance: totals per currency, paid versus open, and link listings.

Numbers come from SQL aggregates (one GROUP BY per question); rendering is pure and returns Reply markup,
with amounts in the merchant's locale and times in the merchant's time zone (from the locale's territory).
Test money (links with livemode false) is counted apart from live money and never added to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from babel.dates import format_timedelta
from sqlalchemy import func, select

from core import i18n, markup
from core.clock import Clock, utcnow
from core.commands import Period
from core.db import Database
from core.i18n import N_
from core.links import LinkService
from core.locales import timezone_for as timezone_for  # re-exported: callers ask reports for the shop zone
from core.models import LinkStatus, Merchant, Payment, PaymentLink, PaymentStatus, Refund
from core.money import format_money
from core.outbox_texts import TEST_MARK
from core.reusable import RESERVATIONS, PaymentPromo
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
# English here (Slack's blocks read them as they are); status_word() gives them in the reader's language.
STATUS_WORD: dict[LinkStatus, str] = {
    LinkStatus.ACTIVE: N_("Open"),
    LinkStatus.PAID: N_("Paid"),
    LinkStatus.EXPIRED: N_("Expired"),
    LinkStatus.CANCELLED: N_("Cancelled"),
    LinkStatus.REFUNDED: N_("Refunded"),
    LinkStatus.SOLD_OUT: N_("Sold out"),
}

Shop = Merchant | str  # a merchant (its locale and time zone), or just a locale (its territory's zone)


def status_word(status: LinkStatus) -> str:
    return i18n.current().gettext(STATUS_WORD[status])


def shop_clock(shop: Shop) -> i18n.Clock:
    """The shop's clock (its time zone setting, else its locale's), written in the reader's language."""
    locale = shop if isinstance(shop, str) else shop.locale
    zone = None if isinstance(shop, str) else shop.timezone
    return i18n.Clock.of(language=i18n.current().language, shop_locale=locale, timezone=zone)


def _locale(shop: Shop) -> str:
    return shop if isinstance(shop, str) else shop.locale


def format_when(moment: datetime, shop: Shop) -> str:
    """"3 Dec 2026, 8:00 pm SGT": the shop's time zone with its short name, in the reader's language."""
    return shop_clock(shop).when(moment)


def format_relative(moment: datetime, now: datetime, language: str = "en") -> str:
    """"in 7 days", "3 hours ago" in the reader's language (CLDR)."""
    return format_timedelta(moment - now, add_direction=True, locale=i18n.tr(i18n.match_language(language)).locale,
                            threshold=1.1)


def short_id(link_id: str) -> str:
    return link_id[:8]


# ---------------------------------------------------------------- report data


@dataclass(frozen=True, slots=True)
class Totals:
    count: int
    amount_minor: int
    # Of `count`, payments of links that sell many times (each payment is a sale, not each link).
    payments: int = 0


@dataclass(frozen=True, slots=True)
class PromoTotals:
    """Payments made with one promo code in one currency, and what the code took off them."""

    payments: int
    discount_minor: int


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
    # Paid sales made with a promo code, by (code, currency): their amounts in `paid` are the discounted ones.
    promos: dict[tuple[str, str], PromoTotals] = field(default_factory=dict)

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
            promo_rows = (
                await conn.execute(
                    select(PAYMENTS.c.livemode, PAYMENTS.c.currency, RESERVATIONS.c.promo_code,
                           func.count(PAYMENTS.c.id), func.coalesce(func.sum(RESERVATIONS.c.discount_minor), 0))
                    .join_from(PAYMENTS, RESERVATIONS, RESERVATIONS.c.payment_id == PAYMENTS.c.id)
                    .join(LINKS, LINKS.c.id == PAYMENTS.c.link_id)
                    .where(LINKS.c.merchant_id == merchant_id, LINKS.c.reusable.is_(True),
                           RESERVATIONS.c.promo_code.is_not(None),
                           PAYMENTS.c.status != PaymentStatus.REFUND_NEEDED.value,
                           PAYMENTS.c.created_at >= period.start, PAYMENTS.c.created_at < period.end)
                    .group_by(PAYMENTS.c.livemode, PAYMENTS.c.currency, RESERVATIONS.c.promo_code)
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
            figures[bool(live)].paid[currency] = Totals(before.count + int(n), before.amount_minor + int(amount),
                                                        before.payments + int(n))
        for live, currency, code, n, discount in promo_rows:
            figures[bool(live)].promos[(str(code), currency)] = PromoTotals(int(n), int(discount))
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
    promos: dict[tuple[str, str], PromoTotals] = field(default_factory=dict)

    def done(self) -> Figures:
        return Figures(self.paid, self.open, self.expired, self.cancelled, self.money, self.refunded_links,
                       self.promos)


# ---------------------------------------------------------------- rendering (pure, Reply markup)


def _money_list(totals: dict[str, Totals], locale: str, *, bold: bool, first: str | None) -> str:
    parts = []
    # The shop's own currency first, then the busiest.
    for currency in sorted(totals, key=lambda c: (c != first, -totals[c].count, c)):
        amount = format_money(totals[currency].amount_minor, currency, locale)
        parts.append(f"**{amount}**" if bold else amount)
    return " + ".join(parts)


def _paid_count(totals: dict[str, Totals]) -> str:
    """"2 links", or "3 payments" once a link that sells many times is in (each of its payments is a sale,
    and a paid single-use link is one payment too)."""
    t = i18n.current()
    count = sum(x.count for x in totals.values())
    if any(x.payments for x in totals.values()):
        return t.ngettext("%(count)s payment", "%(count)s payments", count)
    return t.ngettext("%(count)s link", "%(count)s links", count)


def _promo_line(promos: dict[tuple[str, str], PromoTotals], locale: str) -> str:
    """"🏷 Promo codes: `SAVE10` on 2 payments (−S$5.00 off) · …": the paid amounts above are after these."""
    t = i18n.current()
    parts = []
    for code, cur in sorted(promos, key=lambda key: (-promos[key].payments, key)):
        totals = promos[(code, cur)]
        parts.append(t.ngettext("%(code)s on %(count)s payment (%(discount)s off)",
                                "%(code)s on %(count)s payments (%(discount)s off)", totals.payments,
                                code=f"`{markup.user(code)}`",
                                discount=format_money(totals.discount_minor, cur, locale)))
    return t.gettext("🏷 Promo codes: %(codes)s", codes=" · ".join(parts))


def _figure_lines(figures: Figures, locale: str, currency: str | None) -> list[str]:
    t = i18n.current()
    lines = []
    open_count = sum(x.count for x in figures.open.values())
    if figures.paid:
        paid = _money_list(figures.paid, locale, bold=True, first=currency)
        lines.append(t.gettext("✅ Paid: %(amounts)s (%(count)s)", amounts=paid, count=_paid_count(figures.paid)))
    else:
        lines.append(t.gettext("✅ Paid: nothing yet"))
    if figures.open:
        still_open = _money_list(figures.open, locale, bold=False, first=currency)
        lines.append(t.ngettext("🕓 Open: %(amounts)s (%(count)s link)", "🕓 Open: %(amounts)s (%(count)s links)",
                                open_count, amounts=still_open))
    extra = []
    if figures.expired:
        extra.append(t.gettext("⌛ Expired: %(count)s", count=figures.expired))
    if figures.cancelled:
        extra.append(t.gettext("🚫 Cancelled: %(count)s", count=figures.cancelled))
    if figures.refunded_links:
        extra.append(t.gettext("↩️ Refunded: %(count)s", count=figures.refunded_links))
    if extra:
        lines.append(" · ".join(extra))
    if figures.promos:
        lines.append(_promo_line(figures.promos, locale))
    for code in sorted(figures.money, key=lambda c: (c != currency, c)):
        totals = figures.money[code]
        lines.append(t.gettext("💰 %(currency)s: gross %(gross)s − refunded %(refunded)s = net %(net)s", currency=code,
                               gross=format_money(totals.gross_minor, code, locale),
                               refunded=format_money(totals.refunded_minor, code, locale),
                               net=f"**{format_money(totals.net_minor, code, locale)}**"))
    return lines


_PERIOD_WORDS = {"today": N_("today"), "yesterday": N_("yesterday"), "this week": N_("this week"),
                 "last week": N_("last week")}


def render_report(data: ReportData, merchant_name: str, shop: Shop, currency: str | None = None) -> str:
    t = i18n.current()
    locale = _locale(shop)
    label = data.period.label
    period = t.gettext(_PERIOD_WORDS[label]) if label in _PERIOD_WORDS else label
    mode = "" if data.livemode else " · " + t.gettext("%(mark)s, no real money", mark=t.gettext(TEST_MARK))
    if data.only is True:
        mode = " · " + t.gettext("live money only")
    lines = [f"📊 **{markup.user(merchant_name)}** — {markup.escape(period)}{mode}"]
    if data.empty:
        which = (t.gettext("Nothing yet in this period. Make a link: `/charge 25 birthday cake`") if data.only is None
                 else t.gettext("No live money in this period. Make a link: `/charge 25 birthday cake`") if data.only
                 else t.gettext("Nothing in test mode in this period. Make a link: `/charge 25 birthday cake`"))
        lines.append(which)
        return "\n".join(lines)
    lines.extend(_figure_lines(data.main, locale, currency))
    beside = data.beside
    if beside is not None:
        # Never added to the totals above: shown apart, so a rehearsal cannot pass for sales.
        mark = t.gettext(TEST_MARK)
        if beside.paid:
            paid = _money_list(beside.paid, locale, bold=False, first=currency)
            lines.append(t.gettext("%(mark)s (not counted above): paid %(amounts)s (%(count)s)", mark=mark,
                                   amounts=paid, count=_paid_count(beside.paid)))
        else:
            lines.append(t.gettext("%(mark)s (not counted above): paid nothing", mark=mark))
    return "\n".join(lines)


_TIMELINE_WORDS = {
    "link.created": N_("made"), "link.opened": N_("opened"), "checkout.started": N_("checkout started"),
    "payment.succeeded": N_("paid"), "alert.delivered": N_("alert delivered"), "refund.requested": N_("refund asked"),
    "refund.succeeded": N_("refunded"), "refund.failed": N_("refund failed"), "link.expired": N_("expired"),
    "link.cancelled": N_("cancelled"), "payment.failed": N_("payment failed"), "dispute.created": N_("disputed"),
}
_PAYMENT_WORDS = {
    "succeeded": N_("succeeded"), "refund_needed": N_("refund needed"), "refunded": N_("refunded"),
    "partially_refunded": N_("partly refunded"), "failed": N_("failed"), "pending": N_("pending"),
}
_REFUND_WORDS = {"pending": N_("pending"), "succeeded": N_("succeeded"), "failed": N_("failed")}
TIMELINE_LINES = 8


def render_money_life(payments: Sequence[Payment], refunds: Mapping[str, Sequence[Refund]],
                      events: Sequence[TimelineEvent], shop: Shop,
                      promos: Mapping[str, PaymentPromo] | None = None) -> list[str]:
    """/status's lines after the link: each payment (with its promo code) and its refunds, then the timeline."""
    t = i18n.current()
    locale = _locale(shop)
    clock = shop_clock(shop)
    promos = promos or {}
    lines = []
    promos = promos or {}
    for payment in payments:
        amount = format_money(payment.amount_minor, payment.currency, locale)
        if (promo := promos.get(payment.id)) is not None:
            off = format_money(promo.discount_minor, payment.currency, locale)
            amount = t.gettext("%(amount)s with %(code)s (−%(off)s)", amount=amount,
                               code=f"`{markup.user(promo.code)}`", off=off)
        if payment.payer_name:
            amount = t.gettext("%(amount)s by %(payer)s", amount=amount, payer=markup.user(payment.payer_name))
        state = str(payment.status)
        word = t.gettext(_PAYMENT_WORDS[state]) if state in _PAYMENT_WORDS else state
        line = f"💳 {amount} · {word} · `{payment.id}`"
        if payment.amount_refunded_minor:
            line += " · " + t.gettext("refunded %(amount)s", amount=format_money(
                payment.amount_refunded_minor, payment.currency, locale))
        lines.append(line)
        for refund in refunds.get(payment.id, ()):
            state = str(refund.status)
            text = (f"  ↩️ {format_money(refund.amount_minor, refund.currency, locale)} "
                    f"{t.gettext(_REFUND_WORDS[state]) if state in _REFUND_WORDS else state}")
            if refund.failure_reason:
                text += f": {markup.escape(refund.failure_reason[:120])}"
            lines.append(text)
    if events:
        shown = list(events)[-TIMELINE_LINES:]
        parts = []
        for event in shown:
            word = t.gettext(_TIMELINE_WORDS[event.type]) if event.type in _TIMELINE_WORDS else event.type
            if event.type == "link.opened" and event.details.get("views", 1) > 1:
                word += f" ×{event.details['views']}"
            parts.append(f"{clock.when(event.at)} {word}")
        lines.append("🕑 " + " → ".join(parts))
    return lines


def render_link_line(link: PaymentLink, shop: Shop) -> str:
    status = LinkStatus(link.status)
    amount = format_money(link.amount_minor, link.currency, _locale(shop))
    line = f"{STATUS_MARK[status]} `{short_id(link.id)}` **{amount}** — {markup.user(link.description)}"
    if link.reference:
        line += " · " + i18n.current().gettext("ref %(reference)s", reference=f"`{markup.user(link.reference)}`")
    if link.reusable:
        from core.sales_texts import counts_text

        line += f" · {counts_text(link, _locale(shop))}"
    return line


_LIST_TITLES = {
    "all": (N_("**Your links** (newest first)"), N_("No links yet. Make one: `/charge 25 birthday cake`")),
    "active": (N_("**Your active links** (newest first)"),
               N_("No active links yet. Make one: `/charge 25 birthday cake`")),
    "paid": (N_("**Your paid links** (newest first)"), N_("No paid links yet. Make one: `/charge 25 birthday cake`")),
    "expired": (N_("**Your expired links** (newest first)"),
                N_("No expired links yet. Make one: `/charge 25 birthday cake`")),
    "cancelled": (N_("**Your cancelled links** (newest first)"),
                  N_("No cancelled links yet. Make one: `/charge 25 birthday cake`")),
}


def render_links(links: list[PaymentLink], label: str, shop: Shop, *, more: bool) -> str:
    t = i18n.current()
    title, empty = _LIST_TITLES.get(label, _LIST_TITLES["all"])
    if not links:
        return t.gettext(empty)
    lines = [t.gettext(title)]
    lines.extend(render_link_line(link, shop) for link in links)
    if more:
        lines.append(t.gettext("…showing the newest %(count)s. Look one up with %(example)s.", count=len(links),
                               example=f"`/status {short_id(links[0].id)}`"))
    return "\n".join(lines)


def render_status(link: PaymentLink, url: str, shop: Shop, now: datetime) -> str:
    from core.sales_texts import amount_text

    t = i18n.current()
    status = LinkStatus(link.status)
    clock = shop_clock(shop)
    amount = amount_text(link, _locale(shop))
    lines = [
        f"{STATUS_MARK[status]} **{status_word(status)}** · **{amount}** — {markup.user(link.description)}",
    ]
    details = [t.gettext("id %(id)s", id=f"`{short_id(link.id)}`")]
    if link.reference:
        details.append(t.gettext("ref %(reference)s", reference=f"`{markup.user(link.reference)}`"))
    customer = link.customer_phone or link.customer_email or link.customer_name
    if customer:
        details.append(t.gettext("for %(customer)s", customer=markup.user(customer)))
    lines.append(" · ".join(details))
    if link.reusable:
        from core.sales_texts import counts_text

        lines.append(counts_text(link, _locale(shop)))
    if status in (LinkStatus.PAID, LinkStatus.REFUNDED) and link.paid_at:
        lines.append(t.gettext("Paid %(when)s", when=clock.when(link.paid_at)))
    elif status is LinkStatus.CANCELLED and link.cancelled_at:
        lines.append(t.gettext("Cancelled %(when)s", when=clock.when(link.cancelled_at)))
    elif status is LinkStatus.EXPIRED:
        lines.append(t.gettext("Expired %(when)s", when=clock.when(link.expires_at)))
    else:
        lines.append(t.gettext("Expires %(relative)s (%(when)s)", when=clock.when(link.expires_at),
                               relative=format_relative(link.expires_at, now, t.language)))
    lines.append(url)
    return "\n".join(lines)
