"""What the App Home tab and link unfurls show, read through the core services (no Slack I/O here).

Who someone is comes from core.members (a workspace is one shop, so opening the Home tab in a workspace
that has a shop makes the person its staff, exactly as their first command would); "today" and the paid
totals come from core.reports, in the shop's time zone like `/report today`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select

from adapters.slack.parse import PLATFORM, user_key
from adapters.slack.render import HomeData, LinkSummary
from core import i18n
from core.clock import Clock, utcnow
from core.commands import Period
from core.db import Database
from core.i18n import N_
from core.links import LinkService
from core.locales import timezone_for
from core.members import MemberService
from core.merchants import MerchantService
from core.models import LinkStatus, Merchant, PaymentLink
from core.money import format_money
from core.ports import IncomingMessage
from core.reports import ReportService, format_when
from core.sql import table

LINKS = table(PaymentLink)

RECENT_LINKS = 10


def summarize(link: PaymentLink, *, url: str, status: LinkStatus, locale: str) -> LinkSummary:
    return LinkSummary(
        link_id=link.id,
        url=url,
        amount=format_money(link.amount_minor, link.currency, locale),
        description=link.description,
        status=status.value,
        expires=i18n.current().gettext("expires %(when)s", when=format_when(link.expires_at, locale)),
        reference=link.reference,
    )


def today(now: datetime, locale: str) -> Period:
    """The shop's calendar day around `now`, as UTC bounds."""
    zone = timezone_for(locale)
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return Period("today", start, end)


class HomeQueries:
    def __init__(self, db: Database, links: LinkService, merchants: MerchantService, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.links = links
        self.merchants = merchants
        self.members = MemberService(db, merchants, clock=clock)
        self.reports = ReportService(db, links, clock=clock)
        self.clock = clock

    async def recent_links(self, merchant_id: str, member_id: int, limit: int = RECENT_LINKS) -> list[PaymentLink]:
        """The links this person made, newest first."""
        await self.links.expire_due(merchant_id=merchant_id)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(LINKS.c.id)
                    .where(LINKS.c.merchant_id == merchant_id, LINKS.c.created_by_member_id == member_id)
                    .order_by(LINKS.c.created_at.desc(), LINKS.c.id.desc())
                    .limit(limit)
                )
            ).all()
        found = [await self.links.get(str(r.id), merchant_id) for r in rows]
        return [link for link in found if link is not None]

    async def home(self, team_id: str, user_id: str, platform_language: str | None = None) -> HomeData:
        """What the person's Home tab shows, in their language: their /language, else their Slack locale
        (`platform_language`), else their shop's, as the chat answers them."""
        message = IncomingMessage(platform=PLATFORM, user_id=user_key(team_id, user_id), address="", text="",
                                  workspace=team_id)
        identity = await self.members.identify(message)
        if identity is None:
            return HomeData(merchant_name=None, language=i18n.first_language(platform_language))
        merchant, member = identity.merchant, identity.member
        language = i18n.first_language(member.language, platform_language, merchant.locale)
        with i18n.speaking(language):
            return await self._home(identity.merchant, int(member.id or 0), language)

    async def _home(self, merchant: Merchant, member_id: int, language: str) -> HomeData:
        now = self.clock()
        period = today(now, merchant.locale)
        report = await self.reports.report(merchant.id, period)
        links = await self.recent_links(merchant.id, member_id)
        recent: Sequence[LinkSummary] = [
            summarize(link, url=self.links.url(link.id), status=self.links.status_of(link, now),
                      locale=merchant.locale)
            for link in links
        ]
        return HomeData(
            merchant_name=merchant.name,
            recent=recent,
            totals_today=[
                format_money(totals.amount_minor, currency, merchant.locale)
                for currency, totals in sorted(report.paid.items())
            ],
            paid_count_today=sum(t.count for t in report.paid.values()),
            day_label=N_("Paid today"),
            language=language,
        )

    async def unfurl_summary(self, link_id: str) -> LinkSummary | None:
        link = await self.links.get(link_id)
        if link is None:
            return None
        merchant = await self.merchants.get(link.merchant_id)
        locale = merchant.locale if merchant is not None else "en"
        # Everyone in the channel sees an unfurl: it speaks the shop's language, like the link preview card.
        language = i18n.language_of_locale(locale)
        with i18n.speaking(language):
            summary = summarize(link, url=self.links.url(link.id), status=self.links.status_of(link), locale=locale)
        return replace(summary, language=language)
