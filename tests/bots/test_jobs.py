"""The background sweeper moves overdue links to expired by itself (issue 2, point 7)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from bots.config import Settings
from core.links import LinkDraft
from core.models import LinkStatus, PaymentLink
from core.money import Money
from core.sql import table
from tests.clock import FakeClock
from tests.conftest import start_live_app

LINKS = table(PaymentLink)




async def test_sweeper_expires_overdue_links_without_anyone_looking(sqlite_settings: Settings) -> None:
    sqlite_settings.links.sweep_interval = timedelta(milliseconds=20)
    clock = FakeClock()
    live, client = await start_live_app(sqlite_settings, clock=clock)
    try:
        services = live.services
        merchant = await services.merchants.create("Cake Shop")
        link, _ = await services.links.create(
            LinkDraft(merchant.id, Money(2500, "USD"), "cake", expires_in=timedelta(hours=1))
        )

        async def stored_status() -> str:
            # Straight from the table: LinkService.get would expire it on access and hide the sweeper.
            async with services.db.read() as conn:
                return str((await conn.execute(select(LINKS.c.status).where(LINKS.c.id == link.id))).scalar())

        await asyncio.sleep(0.1)
        assert await stored_status() == LinkStatus.ACTIVE  # not overdue yet: the sweeper leaves it
        clock.now += timedelta(hours=2)
        for _ in range(250):
            if await stored_status() == LinkStatus.EXPIRED:
                break
            await asyncio.sleep(0.02)
        assert await stored_status() == LinkStatus.EXPIRED
    finally:
        await client.close()
