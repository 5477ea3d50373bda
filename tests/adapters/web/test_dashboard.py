"""The seller's dashboard over HTTP on both back ends (issue 14): sign-in, sessions, CSRF, roles, links,
export, branding, keys, team, alerts and the audit log."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import aiohttp
from PIL import Image
from sqlalchemy import select, update

from adapters.web.api_models import EXPORT_COLUMNS
from core.links import LinkDraft
from core.models import (
    AlertSubscription,
    AuditEvent,
    DashboardSession,
    Invite,
    LinkStatus,
    MemberRole,
    PaymentLink,
)
from core.money import Money
from core.ports import IncomingMessage
from core.sql import table
from tests.adapters.web.dashboard_support import (
    CSRF,
    pay_link,
    shop_with_member,
    sign_in,
    signin_form,
    signin_url,
)
from tests.conftest import LiveApp

AUDIT = table(AuditEvent)
SESSIONS = table(DashboardSession)


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


async def _audit_actions(live: LiveApp, merchant_id: str) -> list[str]:
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(AUDIT.c.action).where(AUDIT.c.merchant_id == merchant_id)
                                   .order_by(AUDIT.c.id))).all()
    return [r[0] for r in rows]


async def test_landing_page_explains_signing_in_from_chat(live: LiveApp) -> None:
    response = await live.client.get("/")
    assert response.status == 200
    text = await response.text()
    assert "Sign in from your chat" in text and "/dashboard" in text
    assert (await live.client.get("/dashboard")).status == 401


async def test_signin_link_works_once_sets_a_safe_cookie_and_expires(live: LiveApp) -> None:
    merchant_id, member_id = await shop_with_member(live)
    url = await signin_url(live, merchant_id, member_id)
    # A GET (a chat app's link preview) shows the button and does not spend the link.
    path, form = await signin_form(live.client, url)
    response = await live.client.post(path, data=form, allow_redirects=False)
    assert response.status == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # public_base_url is http in tests
    again = await live.client.post(path, data=form, allow_redirects=False)
    assert again.status == 400 and "used already" in await again.text()
    late = await signin_url(live, merchant_id, member_id)
    live.services.conversation.signins.clock = lambda: live.services.clock() + timedelta(minutes=11)
    try:
        expired = await live.client.post(_path(late), data=form, allow_redirects=False)
    finally:
        live.services.conversation.signins.clock = live.services.clock
    assert expired.status == 400 and "expired" in await expired.text()
    bad = await live.client.post("/dashboard/signin/" + "x" * 43, data=form, allow_redirects=False)
    assert bad.status == 400
    assert await _audit_actions(live, merchant_id) == ["signin"]


async def test_the_signin_post_needs_the_token_of_its_own_page(live: LiveApp) -> None:
    """Login CSRF: another site's form posting someone's sign-in link is refused, and the link not spent."""
    merchant_id, member_id = await shop_with_member(live)
    url = await signin_url(live, merchant_id, member_id)
    page = await live.client.get(_path(url))
    cookie = page.headers["Set-Cookie"]
    assert "paylinks_signin=" in cookie and "SameSite=Strict" in cookie and "HttpOnly" in cookie
    assert "Path=/dashboard/signin" in cookie
    # No token in the form, a forged one, and the right one from a browser without the cookie.
    token = CSRF.search(await page.text())
    assert token is not None
    for data in ({}, {"csrf": "forged-forged-forged-forged"}):
        refused = await live.client.post(_path(url), data=data, allow_redirects=False)
        assert refused.status == 403 and "security token" in await refused.text()
    other = aiohttp.ClientSession(base_url=live.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        refused = await other.post(_path(url), data={"csrf": token.group(1)}, allow_redirects=False)
        assert refused.status == 403
    finally:
        await other.close()
    assert await _audit_actions(live, merchant_id) == []
    # The link still works from its own page.
    await sign_in(live.client, url)
    assert await _audit_actions(live, merchant_id) == ["signin"]


async def test_sessions_live_in_the_database_idle_out_and_sign_out_everywhere(live: LiveApp) -> None:
    merchant_id, member_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    other = aiohttp.ClientSession(base_url=live.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await sign_in(other, await signin_url(live, merchant_id, member_id))  # a second browser
        assert (await other.get("/dashboard")).status == 200
        # Idle for more than 12 hours: signed out.
        async with live.services.db.write() as conn:
            await conn.execute(update(SESSIONS).values(last_seen_at=live.services.clock() - timedelta(hours=13)))
        assert (await other.get("/dashboard")).status == 401
        assert (await live.client.get("/dashboard")).status == 401
        csrf = await sign_in(live.client, await signin_url(live, merchant_id, member_id))
        await sign_in(other, await signin_url(live, merchant_id, member_id))
        response = await live.client.post("/dashboard/signout", data={"csrf": csrf, "everywhere": "1"},
                                          allow_redirects=False)
        assert response.status == 303
        assert (await other.get("/dashboard")).status == 401
        assert (await live.client.get("/dashboard")).status == 401
    finally:
        await other.close()
    assert "signout.everywhere" in await _audit_actions(live, merchant_id)


async def test_a_post_without_the_csrf_token_is_refused(live: LiveApp) -> None:
    merchant_id, member_id = await shop_with_member(live)
    await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    response = await live.client.post("/dashboard/links/new", data={"amount": "25", "description": "cake"})
    assert response.status == 403
    assert "security token" in await response.text()
    bad = await live.client.post("/dashboard/keys", data={"csrf": "forged"})
    assert bad.status == 403
    links, _ = await live.services.links.list_links(merchant_id)
    assert links == [] and await live.services.merchants.list_api_keys(merchant_id) == []


async def test_staff_see_the_shop_but_not_the_owners_pages(live: LiveApp) -> None:
    merchant_id, _owner = await shop_with_member(live)
    _, staff_id = await shop_with_member(live, role=MemberRole.STAFF, user="u2", merchant_id=merchant_id)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, staff_id))
    assert (await live.client.get("/dashboard/links")).status == 200
    for path in ("/dashboard/keys", "/dashboard/team", "/dashboard/audit"):
        response = await live.client.get(path)
        assert response.status == 403, path
        assert "owner" in await response.text()
    assert (await live.client.post("/dashboard/keys", data={"csrf": csrf})).status == 403
    settings = await live.client.get("/dashboard/settings")
    assert "Only the owner can change" in await settings.text()
    # Every owner's action, with a valid token, is refused to staff and changes nothing: keys, team,
    # alerts, shop settings, providers (tests/adapters/web/test_dashboard_providers.py) and refunds
    # (tests/adapters/web/test_dashboard_refunds.py).
    key, _secret = await live.services.merchants.create_api_key(merchant_id, test=True)
    await live.services.conversation.handle(IncomingMessage(
        platform="console", user_id="u1", address="console:u1", text="/alerts on"))
    async with live.services.db.read() as conn:
        alert_ids = [r[0] for r in (await conn.execute(select(table(AlertSubscription).c.id))).all()]
    assert alert_ids
    before = await _audit_actions(live, merchant_id)
    for method, path in (("GET", f"/dashboard/keys/{key.id}/revoke"), ("POST", f"/dashboard/keys/{key.id}/revoke"),
                         ("POST", "/dashboard/team/invite"), ("GET", f"/dashboard/team/{_owner}/remove"),
                         ("POST", f"/dashboard/team/{_owner}/remove"),
                         ("POST", f"/dashboard/alerts/{alert_ids[0]}/off"),
                         ("POST", "/dashboard/settings"), ("GET", "/dashboard/providers"),
                         ("POST", "/dashboard/providers")):
        data = {"csrf": csrf, "name": "Staff Shop", "default_currency": "USD", "locale": "en_US",
                "provider": "sandbox"}
        response = await live.client.request(method, path, data=data if method == "POST" else None,
                                             allow_redirects=False)
        assert response.status == 403, (method, path)
        assert "owner" in await response.text()
    assert [k.revoked_at for k in await live.services.merchants.list_api_keys(merchant_id)] == [None]
    assert {m.id for m in await live.services.conversation.members.members_of(merchant_id)} >= {_owner, staff_id}
    merchant = await live.services.merchants.get(merchant_id)
    assert merchant is not None and merchant.name == "Cake Corner" and merchant.default_currency == "SGD"
    async with live.services.db.read() as conn:
        assert [r[0] for r in (await conn.execute(select(table(AlertSubscription).c.id))).all()] == alert_ids
        invites = (await conn.execute(select(table(Invite)))).all()
    assert invites == [] and await live.services.accounts.get(merchant_id) is None
    assert await _audit_actions(live, merchant_id) == before


async def test_cli_link_without_member_is_the_owner_and_unknown_member_is_refused(live: LiveApp) -> None:
    merchant_id, _ = await shop_with_member(live)
    await sign_in(live.client, await signin_url(live, merchant_id))
    assert (await live.client.get("/dashboard/keys")).status == 200
    from core.signin import SigninError
    try:
        await live.services.conversation.signins.create_link(merchant_id, 99999)
    except SigninError as error:
        assert "not in merchant" in error.message
    else:
        raise AssertionError("a member of no shop got a sign-in link")


async def test_dashboard_in_chat_answers_privately_with_a_working_link(live: LiveApp) -> None:
    await shop_with_member(live)
    message = IncomingMessage(platform="console", user_id="u1", address="console:u1", text="/dashboard")
    replies = await live.services.conversation.handle(message)
    assert len(replies) == 1 and replies[0].private
    url = re.search(r"http://\S+/dashboard/signin/\S+", replies[0].text)
    assert url is not None
    await sign_in(live.client, url.group(0))
    page = await live.client.get("/dashboard")
    assert "Cake Corner" in await page.text()


async def test_make_find_cancel_a_link_and_export_it(live: LiveApp) -> None:
    merchant_id, member_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    bad = await live.client.post("/dashboard/links/new", data={
        "csrf": csrf, "amount": "25", "description": "cake", "customer_email": "not-an-email"})
    assert bad.status == 422
    text = await bad.text()
    assert 'id="customer_email-error"' in text and 'aria-invalid="true"' in text
    response = await live.client.post("/dashboard/links/new", allow_redirects=False, data={
        "csrf": csrf, "amount": "25.50", "currency": "sgd", "description": "=HYPERLINK(\"x\") cake",
        "reference": "INV-1042", "expires_in": "3d", "customer_name": "Ana", "customer_email": "ana@example.com",
        "customer_phone": "+65 9123 4567", "metadata": "order_id=1042\nchannel=web"})
    assert response.status == 303, await response.text()
    link_id = response.headers["Location"].split("/")[-1].split("?")[0]
    link = await live.services.links.get(link_id, merchant_id)
    assert link is not None and link.amount_minor == 2550 and link.currency == "SGD"
    assert link.meta == {"order_id": "1042", "channel": "web"} and link.customer_phone == "+6591234567"
    assert link.expires_at - link.created_at == timedelta(days=3)
    other = await live.services.links.create(_draft(merchant_id, 1000, "brownies"))
    await pay_link(live, other[0].id)

    found = await (await live.client.get("/dashboard/links", params={"q": "ana@example"})).text()
    assert link_id in found and other[0].id not in found
    paid = await (await live.client.get("/dashboard/links", params={"status": "paid"})).text()
    assert other[0].id in paid and link_id not in paid
    api_made = await (await live.client.get("/dashboard/links", params={"origin": "api"})).text()
    assert link_id in api_made
    refused = await live.client.get("/dashboard/links", params={"from": "yesterday"})
    assert "from-error" in await refused.text()

    detail = await (await live.client.get(f"/dashboard/links/{link_id}")).text()
    assert f"/p/{link_id}/qr.svg" in detail and "Copy link" in detail and "INV-1042" in detail
    confirm = await live.client.get(f"/dashboard/links/{link_id}/cancel")
    assert "cannot be undone" in await confirm.text()
    cancelled = await live.client.post(f"/dashboard/links/{link_id}/cancel", data={"csrf": csrf},
                                       allow_redirects=False)
    assert cancelled.status == 303
    assert (await live.services.links.get(link_id)).status == LinkStatus.CANCELLED  # type: ignore[union-attr]

    export = await live.client.get("/dashboard/export.csv")
    assert export.headers["Content-Type"].startswith("text/csv")
    body = await export.read()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    by_id = {r[0]: dict(zip(EXPORT_COLUMNS, r, strict=True)) for r in rows[1:]}
    assert len(rows) == 3
    assert by_id[link_id]["description"].startswith("'=HYPERLINK")
    assert by_id[link_id]["customer_phone"] == "'+6591234567"
    assert by_id[link_id]["status"] == "cancelled" and by_id[link_id]["amount"] == "25.50"
    assert by_id[link_id]["payment_id"] == ""
    paid_row = by_id[other[0].id]
    assert paid_row["amount_paid"] == "10.00" and paid_row["payment_status"] == "succeeded"
    assert paid_row["paid_at"].endswith("Z") and paid_row["provider"] == "sandbox"
    filtered = await (await live.client.get("/dashboard/export.csv", params={"status": "paid"})).read()
    assert len(filtered.decode("utf-8-sig").strip().splitlines()) == 2
    assert await _audit_actions(live, merchant_id) == ["signin", "link.created", "link.cancelled"]


def _draft(merchant_id: str, amount_minor: int, description: str, *, chat: bool = True) -> LinkDraft:
    return LinkDraft(merchant_id=merchant_id, money=Money(amount_minor, "SGD"), description=description,
                     origin_platform="console" if chat else None, origin_address="console:u1" if chat else None)


async def test_api_export_is_not_shadowed_by_the_link_route_and_needs_a_key(live: LiveApp) -> None:
    merchant_id, _ = await shop_with_member(live)
    _key, secret = await live.services.merchants.create_api_key(merchant_id, test=True)
    link, _ = await live.services.links.create(_draft(merchant_id, 2500, "cake"))
    assert (await live.client.get("/api/v1/links/export.csv")).status == 401
    response = await live.client.get("/api/v1/links/export.csv", headers={"Authorization": f"Bearer {secret}"})
    assert response.status == 200
    text = (await response.read()).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == EXPORT_COLUMNS and rows[1][0] == link.id and rows[1][4] == "console"
    bad = await live.client.get("/api/v1/links/export.csv", params={"from": "soon"},
                                headers={"Authorization": f"Bearer {secret}"})
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "from"
    document = await (await live.client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/links/export.csv" in document["paths"]


async def test_keys_create_once_and_revoke_refuses_the_next_request(live: LiveApp) -> None:
    merchant_id, member_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    created = await live.client.post("/dashboard/keys", data={"csrf": csrf})
    text = await created.text()
    secret = re.search(r'value="(pl_test_[^"]+)"', text)
    assert secret is not None
    auth = {"Authorization": f"Bearer {secret.group(1)}"}
    assert (await live.client.get("/api/v1/links", headers=auth)).status == 200
    listing = await (await live.client.get("/dashboard/keys")).text()
    assert secret.group(1) not in listing  # shown once only
    (key,) = await live.services.merchants.list_api_keys(merchant_id)
    confirm = await live.client.get(f"/dashboard/keys/{key.id}/revoke")
    assert "cannot be undone" in await confirm.text()
    revoked = await live.client.post(f"/dashboard/keys/{key.id}/revoke", data={"csrf": csrf}, allow_redirects=False)
    assert revoked.status == 303
    assert (await live.client.get("/api/v1/links", headers=auth)).status == 401
    assert await _audit_actions(live, merchant_id) == ["signin", "key.created", "key.revoked"]


async def test_team_invite_and_remove_signs_the_member_out(live: LiveApp) -> None:
    merchant_id, owner_id = await shop_with_member(live)
    _, staff_id = await shop_with_member(live, role=MemberRole.STAFF, user="u2", merchant_id=merchant_id)
    staff_browser = aiohttp.ClientSession(base_url=live.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await sign_in(staff_browser, await signin_url(live, merchant_id, staff_id))
        csrf = await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
        invite = await live.client.post("/dashboard/team/invite", data={"csrf": csrf})
        page = await invite.text()
        assert re.search(r"<code>[A-Z0-9]{8}</code> — expires", page)
        assert "U2" in page
        removed = await live.client.post(f"/dashboard/team/{staff_id}/remove", data={"csrf": csrf},
                                         allow_redirects=False)
        assert removed.status == 303
        assert [m.id for m in await live.services.conversation.members.members_of(merchant_id)] == [owner_id]
        assert (await staff_browser.get("/dashboard")).status == 401
    finally:
        await staff_browser.close()
    assert await _audit_actions(live, merchant_id) == ["signin", "signin", "invite.created", "member.removed"]


async def test_alert_subscriptions_listed_and_turned_off(live: LiveApp) -> None:
    merchant_id, owner_id = await shop_with_member(live)
    members = live.services.conversation.members
    await members.set_alerts(merchant_id, "console", "console:shop-chat", True)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
    page = await (await live.client.get("/dashboard/alerts")).text()
    assert "console:shop-chat" in page
    alert_id = re.search(r"/dashboard/alerts/(\d+)/off", page)
    assert alert_id is not None
    off = await live.client.post(f"/dashboard/alerts/{alert_id.group(1)}/off", data={"csrf": csrf},
                                 allow_redirects=False)
    assert off.status == 303
    assert not await members.alerts_on(merchant_id, "console", "console:shop-chat")


async def test_branding_colour_logo_and_contact_reach_the_pay_page_and_preview(live: LiveApp) -> None:
    merchant_id, owner_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, owner_id))

    def form(**fields: str) -> aiohttp.FormData:
        data = aiohttp.FormData()
        base = {"csrf": csrf, "name": "Cake Corner", "default_currency": "SGD", "locale": "en_SG"}
        for key, value in {**base, **fields}.items():
            data.add_field(key, value)
        return data

    pale = await live.client.post("/dashboard/settings", data=form(brand_color="#ffcc00"))
    assert pale.status == 422
    suggestion = re.search(r"nearest colour that passes is (#[0-9a-f]{6})", await pale.text())
    assert suggestion is not None
    from adapters.web.branding import contrast
    assert contrast(suggestion.group(1), "#ffffff") >= 4.5
    svg = form(brand_color="#0f766e")
    svg.add_field("logo", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', filename="x.svg",
                  content_type="image/svg+xml")
    refused = await live.client.post("/dashboard/settings", data=svg)
    assert refused.status == 422 and "SVG" in await refused.text()
    big = form(brand_color="#0f766e")
    big.add_field("logo", b"\x89PNG" + b"0" * (1024 * 1024 + 10), filename="big.png", content_type="image/png")
    assert (await live.client.post("/dashboard/settings", data=big)).status == 422

    picture = io.BytesIO()
    Image.new("RGB", (1000, 500), "#dc2626").save(picture, "JPEG")
    good = form(name="Cake Corner Deluxe", brand_color="#0F766E", support_email="help@cake.example",
                support_phone="+65 6123 4567", timezone="Asia/Singapore")
    good.add_field("logo", picture.getvalue(), filename="logo.jpg", content_type="image/jpeg")
    saved = await live.client.post("/dashboard/settings", data=good, allow_redirects=False)
    assert saved.status == 303, await saved.text()
    merchant = await live.services.merchants.get(merchant_id)
    assert merchant is not None and merchant.brand_color == "#0f766e" and merchant.timezone == "Asia/Singapore"
    assert merchant.name == "Cake Corner Deluxe" and merchant.support_phone == "+6561234567"

    # Made from the API: its cancellation below sends no chat alert.
    link, _ = await live.services.links.create(_draft(merchant_id, 2500, "cake", chat=False))
    pay = await (await live.client.get(f"/p/{link.id}")).text()
    assert "Cake Corner Deluxe" in pay and "help@cake.example" in pay
    brand_css = re.search(r'href="(/brand/[^"]+\.css\?v=[^"]+)"', pay)
    logo_url = re.search(r'src="(/brand/[^"]+/logo\.png\?v=[^"]+)"', pay)
    og = re.search(r'og:image" content="http://[^/]+(/p/[^"]+)"', pay)
    assert brand_css and logo_url and og
    assert "--accent: #0f766e" in await (await live.client.get(brand_css.group(1))).text()
    with Image.open(io.BytesIO(await (await live.client.get(logo_url.group(1))).read())) as logo:
        assert logo.format == "PNG" and max(logo.size) == 256
    card = await live.client.get(og.group(1))
    assert card.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(await card.read())) as image:
        assert image.size == (1200, 630)
        assert image.convert("RGB").getpixel((600, 10)) == (15, 118, 110)  # the brand colour's strip

    def branded(html: str, where: str) -> None:
        assert brand_css is not None and logo_url is not None
        assert brand_css.group(1) in html and logo_url.group(1) in html, where
        assert "Cake Corner Deluxe" in html and "help@cake.example" in html, where

    # The sandbox's checkout page the Pay button leads to, the receipt, the cancelled and expired pages.
    started = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert started.status == 303 and started.headers["Location"].startswith(live.base_url + "/sandbox/checkout/")
    checkout = await (await live.client.get(started.headers["Location"].removeprefix(live.base_url))).text()
    assert "Pay by card" in checkout and "Paying <bdi>Cake Corner Deluxe</bdi>" in checkout
    branded(checkout, "sandbox checkout")
    await pay_link(live, link.id)
    receipt = await (await live.client.get(f"/p/{link.id}")).text()
    assert "Payment received" in receipt
    branded(receipt, "receipt")
    cancelled, _ = await live.services.links.create(_draft(merchant_id, 700, "bun", chat=False))
    await live.services.links.cancel(cancelled.id, merchant_id)
    page = await (await live.client.get(f"/p/{cancelled.id}")).text()
    assert "cancelled" in page.lower()
    branded(page, "cancelled")
    expired, _ = await live.services.links.create(_draft(merchant_id, 800, "tart", chat=False))
    async with live.services.db.write() as conn:
        await conn.execute(update(table(PaymentLink)).where(table(PaymentLink).c.id == expired.id)
                           .values(expires_at=live.services.clock() - timedelta(minutes=1)))
    page = await (await live.client.get(f"/p/{expired.id}")).text()
    assert "expired" in page.lower()
    branded(page, "expired")
    closed = await (await live.client.get(f"/p/{link.id}")).text()
    og_closed = re.search(r'og:image" content="http://[^/]+(/p/[^"]+)"', closed)
    assert og_closed and og_closed.group(1) != og.group(1)  # cached per link state
    assert "shop.updated" in await _audit_actions(live, merchant_id)


async def test_shop_command_shows_and_changes_settings(live: LiveApp) -> None:
    merchant_id, _ = await shop_with_member(live)
    conversation = live.services.conversation

    async def say(text: str, user: str = "u1") -> str:
        replies = await conversation.handle(IncomingMessage(platform="console", user_id=user,
                                                            address=f"console:{user}", text=text))
        return replies[0].text

    assert "Cake Corner" in await say("/shop")
    assert "Done" in await say("/shop name Cake Castle")
    assert "Asia/Singapore" in await say("/shop timezone asia/singapore")
    assert "id_ID" in await say("/shop locale id_ID")
    wrong = await say("/shop timezone Mars/Olympus")
    # The shop now reads Indonesian (its locale), and this person's chat app said nothing else (issue 18).
    assert "bukan nama zona waktu" in wrong and "/shop timezone Asia/Singapore" in wrong
    assert "bukan “colour”" in (await say("/shop colour red")).replace("\\", "")
    merchant = await live.services.merchants.get(merchant_id)
    assert merchant is not None
    assert (merchant.name, merchant.timezone, merchant.locale) == ("Cake Castle", "Asia/Singapore", "id_ID")
    await shop_with_member(live, role=MemberRole.STAFF, user="u9", merchant_id=merchant_id)
    assert "Hanya pemilik" in await say("/shop name Mine", user="u9")  # the shop reads Indonesian now


async def test_overview_totals_and_an_accessible_chart(live: LiveApp) -> None:
    merchant_id, owner_id = await shop_with_member(live)
    paid, _ = await live.services.links.create(_draft(merchant_id, 2500, "cake"))
    await pay_link(live, paid.id)
    await live.services.links.create(_draft(merchant_id, 1200, "tart"))
    await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
    page = await (await live.client.get("/dashboard")).text()
    assert page.count("S$25.00") >= 3 * 2  # gross and net in today, 7 days and 30 days
    assert "1 (S$12.00)" in page  # open links
    assert 'role="img"' in page and "<title id=\"chart-title\">" in page and "<desc id=\"chart-desc\">" in page
    assert "The same as a table" in page
    assert CSRF.search(page)


async def test_cancellations_from_chat_and_api_are_in_the_audit_log(live: LiveApp) -> None:
    merchant_id, owner_id = await shop_with_member(live)
    by_chat, _ = await live.services.links.create(_draft(merchant_id, 500, "scone"))
    by_api, _ = await live.services.links.create(_draft(merchant_id, 700, "bun", chat=False))
    await live.services.conversation.handle(IncomingMessage(
        platform="console", user_id="u1", address="console:u1", text=f"/cancel {by_chat.id}"))
    _key, secret = await live.services.merchants.create_api_key(merchant_id, test=True)
    cancelled = await live.client.post(f"/api/v1/links/{by_api.id}/cancel",
                                       headers={"Authorization": f"Bearer {secret}"})
    assert cancelled.status == 200
    await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
    page = await (await live.client.get("/dashboard/audit")).text()
    assert by_chat.id in page and by_api.id in page
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(AUDIT.c.action, AUDIT.c.platform, AUDIT.c.member_id)
                                   .where(AUDIT.c.action == "link.cancelled").order_by(AUDIT.c.id))).all()
    assert [tuple(r) for r in rows] == [("link.cancelled", "console", owner_id), ("link.cancelled", "api", None)]
    # Never editable: the dashboard has no route that changes or deletes an entry.
    assert (await live.client.post("/dashboard/audit", data={})).status == 405


async def test_links_search_every_field_filter_and_pages_stay_put_while_links_are_made(live: LiveApp) -> None:
    from core.links import Customer

    merchant_id, owner_id = await shop_with_member(live)
    links = live.services.links
    made = []
    for n in range(30):
        link, _ = await links.create(LinkDraft(
            merchant_id=merchant_id, money=Money(100 + n, "USD" if n % 10 == 0 else "SGD"),
            description=f"tart{n}x", reference=f"INV-{n:03d}", origin_platform=None if n % 2 else "console",
            customer=Customer(name=f"Buyer{n}", email=f"b{n}@shop.example", phone=f"+659100{n:04d}")))
        made.append(link.id)
    newest_first = list(reversed(made))
    await sign_in(live.client, await signin_url(live, merchant_id, owner_id))

    async def ids(**params: str) -> list[str]:
        page = await (await live.client.get("/dashboard/links", params=params)).text()
        return re.findall(r'href="/dashboard/links/([a-z2-7]{16,64})" class="link-row"', page)

    # Search reaches the description, reference, customer name, email, phone and the id.
    for query, n in (("TART7X", 7), ("inv-012", 12), ("buyer21", 21), ("b3@shop", 3), ("+6591000017", 17),
                     (made[25][:12], 25)):
        assert await ids(q=query) == [made[n]], query
    assert await ids(currency="usd") == [made[20], made[10], made[0]]
    api_made = await ids(origin="api")
    assert len(api_made) == 15 and made[1] in api_made and made[0] not in api_made
    from adapters.web.dashboard.views import shop_zone

    merchant = await live.services.merchants.get(merchant_id)
    assert merchant is not None
    today = live.services.clock().astimezone(shop_zone(merchant)).date().isoformat()  # days of the shop
    assert len(await ids(**{"from": today, "to": today})) == 25  # a page
    assert await ids(**{"from": "2001-01-01", "to": "2001-01-02"}) == []

    # Newest first, 25 a page; links made meanwhile do not shift the second page.
    first_page = await (await live.client.get("/dashboard/links")).text()
    cursor = re.search(r'href="/dashboard/links\?[^"]*cursor=([a-z2-7]+)"', first_page)
    assert cursor is not None
    assert re.findall(r'href="/dashboard/links/([a-z2-7]{16,64})" class="link-row"', first_page) == newest_first[:25]
    for n in range(3):
        await links.create(_draft(merchant_id, 900 + n, f"late {n}"))
    assert await ids(cursor=cursor.group(1)) == newest_first[25:]


async def test_a_payment_made_with_a_promo_code_shows_the_code_on_the_link_page(live: LiveApp) -> None:
    from core.ports import PaymentEvent
    from core.promos import PromoDraft, PromoService
    from core.reusable import Terms

    merchant_id, member_id = await shop_with_member(live)
    await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    await PromoService(live.services.db).create(merchant_id, PromoDraft("SAVE10", percent_off_bp=1000))
    links = live.services.links
    link, _ = await links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"),
                                           description="concert ticket", terms=Terms()))
    for n, code in enumerate(("SAVE10", None)):
        held = await links.reservations.reserve(link.id, promo_code=code)
        await links.reservations.attach_checkout(held.id, "sandbox", f"cs_{n}", None)
        await links.record_payment(PaymentEvent("sandbox", f"evt_{n}", "payment.succeeded", link.id, f"ch_{n}",
                                                held.amount_minor, "SGD", checkout_ref=f"cs_{n}"))
    page = await live.client.get(f"/dashboard/links/{link.id}")
    text = re.sub(r"<[^>]+>|\s+", " ", await page.text())
    assert "S$22.50 with promo code SAVE10 (−S$2.50)" in re.sub(r" +", " ", text), text
    assert text.count("with promo code") == 1  # the payment without a code has none
