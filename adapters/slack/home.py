"""What the App Home tab and link unfurls show, read from the paylinks database (no Slack I/O here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select

from adapters.slack.render import HomeData, LinkSummary
from core.clock import Clock, utcnow
from core.db import Database
from core.links import LinkService
from core.merchants import MerchantService
from core.models import LinkStatus, Member, Payment, PaymentLink, PaymentStatus
from core.money import format_money
from core.sql import table

MEMBERS = table(Member)
LINKS = table(PaymentLink)
PAYMENTS = table(Payment)

RECENT_LINKS = 10


def expiry_text(expires_at: datetime) -> str:
    return f"expires {expires_at:%d %b %Y, %H:%M} UTC"


def summarize(link: PaymentLink, *, url: str, status: LinkStatus, locale: str) -> LinkSummary:
    return LinkSummary(
        link_id=link.id,
        url=url,
        amount=format_money(link.amount_minor, link.currency, locale),
        description=link.description,
        status=status.value,
        expires=expiry_text(link.expires_at),
        reference=link.reference,
    )


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class HomeQueries:
    def __init__(self, db: Database, links: LinkService, merchants: MerchantService, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.links = links
        self.merchants = merchants
        self.clock = clock

    async def member(self, platform_user_id: str) -> tuple[int, str] | None:
        """(member id, merchant id) of a Slack person ("TEAM:USER"), if paylinks knows them."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(MEMBERS.c.id, MEMBERS.c.merchant_id).where(
                        MEMBERS.c.platform == "slack", MEMBERS.c.platform_user_id == platform_user_id
                    )
                )
            ).first()
        return (int(row.id), str(row.merchant_id)) if row else None

    async def recent_links(self, merchant_id: str, member_id: int, limit: int = RECENT_LINKS) -> list[PaymentLink]:
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

    async def paid_today(self, merchant_id: str, now: datetime) -> tuple[dict[str, int], int]:
        """Sums of today's successful payments per currency (UTC day), and how many links they paid."""
        since = day_start(now)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(PAYMENTS.c.currency, func.sum(PAYMENTS.c.amount_minor), func.count())
                    .select_from(PAYMENTS.join(LINKS, LINKS.c.id == PAYMENTS.c.link_id))
                    .where(
                        LINKS.c.merchant_id == merchant_id,
                        PAYMENTS.c.status == PaymentStatus.SUCCEEDED.value,
                        PAYMENTS.c.created_at >= since,
                        PAYMENTS.c.created_at < since + timedelta(days=1),
                    )
                    .group_by(PAYMENTS.c.currency)
                    .order_by(PAYMENTS.c.currency)
                )
            ).all()
        totals = {str(currency): int(total or 0) for currency, total, _ in rows}
        return totals, sum(int(count) for _, _, count in rows)

    async def home(self, platform_user_id: str) -> HomeData:
        found = await self.member(platform_user_id)
        if found is None:
            return HomeData(merchant_name=None)
        member_id, merchant_id = found
        merchant = await self.merchants.get(merchant_id)
        if merchant is None:
            return HomeData(merchant_name=None)
        now = self.clock()
        links = await self.recent_links(merchant_id, member_id)
        totals, count = await self.paid_today(merchant_id, now)
        recent: Sequence[LinkSummary] = [
            summarize(link, url=self.links.url(link.id), status=self.links.status_of(link, now),
                      locale=merchant.locale)
            for link in links
        ]
        return HomeData(
            merchant_name=merchant.name,
            recent=recent,
            totals_today=[format_money(amount, currency, merchant.locale) for currency, amount in totals.items()],
            paid_count_today=count,
            day_label=f"Paid today ({now:%d %b}, UTC)",
        )

    async def unfurl_summary(self, link_id: str) -> LinkSummary | None:
        link = await self.links.get(link_id)
        if link is None:
            return None
        merchant = await self.merchants.get(link.merchant_id)
        locale = merchant.locale if merchant is not None else "en"
        return summarize(link, url=self.links.url(link.id), status=self.links.status_of(link), locale=locale)
