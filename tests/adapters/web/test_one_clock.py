"""One clock (issue 18, point 4): one payment's time reads the same — the shop's time zone, with the
zone's short name — on the receipt, in /status, in the paid alert and on the dashboard."""

from __future__ import annotations

from sqlalchemy import select

from core import i18n
from core.markup import to_plain
from core.models import OutboxMessage
from core.ports import IncomingMessage
from core.sql import table
from tests.adapters.web.dashboard_support import sign_in, signin_url
from tests.adapters.web.pages_support import page_of, payment_event
from tests.conftest import LiveApp


def _flat(text: str) -> str:
    return " ".join(text.split())  # CLDR writes "8:00\u202fpm"; pages and plain text show a space


async def test_one_payment_shows_the_same_wall_clock_time_and_zone_everywhere(live: LiveApp) -> None:
    services = live.services
    seller = IncomingMessage(platform="console", user_id="siti", address="console:siti", text="",
                             display_name="Siti")

    async def say(text: str) -> list[str]:
        return [r.text for r in await services.conversation.handle(_with_text(seller, text))]

    await say("/start")
    # The shop's setting wins over its locale's zone (en_SG would be SGT): Jakarta's WIB everywhere.
    await say("/shop timezone Asia/Jakarta")
    made = await services.conversation.handle(_with_text(seller, "/charge 25 cake"))
    link_id = next(r.link_id for r in made if r.link_id)
    link = await services.links.get(link_id)
    assert link is not None
    await services.links.record_payment(payment_event(link, 4242))
    link = await services.links.get(link_id)
    assert link is not None and link.paid_at is not None
    merchant = await services.merchants.get(link.merchant_id)
    assert merchant is not None and merchant.timezone == "Asia/Jakarta"
    clock = i18n.Clock.of(language="en", shop_locale=merchant.locale, timezone=merchant.timezone)
    wall = _flat(clock.time(link.paid_at))
    assert wall.endswith(" WIB")

    receipt = (await page_of(await live.client.get(f"/p/{link_id}"))).text()
    status = _flat(to_plain((await say(f"/status {link_id}"))[0]))
    async with services.db.read() as conn:
        alerts = [r.payload["reply"]["text"] for r in (await conn.execute(select(table(OutboxMessage)).where(
            table(OutboxMessage).c.link_id == link_id))).all() if r.kind.endswith("alert")]
    member = await services.conversation.members.identify(seller)
    assert member is not None
    await sign_in(live.client, await signin_url(live, link.merchant_id, member.member.id))
    dashboard = (await page_of(await live.client.get(f"/dashboard/links/{link_id}"))).text()

    assert wall in receipt, receipt
    assert wall in status, status
    assert alerts and all(wall in _flat(text) for text in alerts), alerts
    assert wall in dashboard, dashboard
    # API responses stay UTC ISO 8601.
    assert link.paid_at.utcoffset() is not None and link.paid_at.utcoffset().total_seconds() == 0


def _with_text(message: IncomingMessage, text: str) -> IncomingMessage:
    import dataclasses

    return dataclasses.replace(message, text=text)
