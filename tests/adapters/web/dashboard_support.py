"""Helpers for the dashboard tests: sign in through a real one-time link, read the CSRF token."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from core.models import MemberRole
from core.ports import IncomingMessage

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def signin_url(live: Any, merchant_id: str, member_id: int | None = None) -> str:
    url: str = await live.services.conversation.signins.create_link(merchant_id, member_id)
    return url


async def signin_form(client: TestClient | Any, url: str) -> tuple[str, dict[str, str]]:
    """Open the link as a browser does: (the path the button posts to, the form's fields)."""
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    page = await client.get(path)
    assert page.status == 200
    found = CSRF.search(await page.text())
    assert found is not None
    return path, {"csrf": found.group(1)}


async def sign_in(client: TestClient | Any, url: str) -> str:
    """Open the link, press Sign in; returns the CSRF token of the overview page."""
    path, form = await signin_form(client, url)
    response = await client.post(path, data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/dashboard"
    page = await client.get("/dashboard")
    assert page.status == 200
    found = CSRF.search(await page.text())
    assert found is not None
    return found.group(1)


async def shop_with_member(live: Any, name: str = "Cake Corner", *, role: MemberRole = MemberRole.OWNER,
                           user: str = "u1", merchant_id: str | None = None) -> tuple[str, int]:
    services = live.services
    if merchant_id is None:
        merchant = await services.merchants.create(name, currency="SGD", locale="en_SG")
        merchant_id = merchant.id
    message = IncomingMessage(platform="console", user_id=user, address=f"console:{user}", text="",
                              display_name=user.title())
    identity = await services.conversation.members.ensure_member(merchant_id, message, role=role)
    assert identity.member.id is not None
    return merchant_id, identity.member.id


_payments = iter(range(1, 1_000_000))


async def pay_link(live: Any, link_id: str) -> None:
    """Record a sandbox payment of the link, as its verified webhook would."""
    from tests.adapters.web.pages_support import payment_event

    link = await live.services.links.get(link_id)
    outcome, _payment = await live.services.links.record_payment(payment_event(link, next(_payments) + 7000))
    assert outcome.value == "paid"
