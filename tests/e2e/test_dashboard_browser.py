"""The seller's dashboard in Debian's Chromium (issue 14): sign in from the CLI's and the chat's links,
make a link from the form, find it, pay it, download the CSV, brand the shop and see it on the pay page,
axe-core on every page (zero serious or critical violations), keyboard use, 320 px and 200 % zoom.

One browser for the module's one flow, to keep it fast. PAYLINKS_SCREENSHOTS=/dir keeps screenshots of every
page at 390×844 and 1280×800.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import update

from adapters.web.api_models import EXPORT_COLUMNS
from core.models import MemberRole, PaymentLink
from core.ports import IncomingMessage
from core.sql import table
from tests.adapters.web.dashboard_support import shop_with_member
from tests.conftest import TEST_SECRET_KEY, LiveApp, make_settings, start_live_app
from tests.e2e.browser_support import DESKTOP, NARROW, PHONE, fill_card, new_page, screenshot
from tests.fakes.stripe import FakeStripe

STRIPE_KEY, STRIPE_WHSEC = "sk_test_dashboard_browser_2468", "whsec_dashboard_browser_1357"


@pytest.fixture
async def shop_app(sqlite_database_url: str) -> AsyncIterator[tuple[LiveApp, FakeStripe]]:
    """The app on the sandbox, with Stripe's API on FakeStripe for the provider page's shop account."""
    fake = await FakeStripe(secret_keys=("sk_test_deployment",), webhook_secret="whsec_deployment").start()
    fake.add_account(STRIPE_KEY, webhook_secret=STRIPE_WHSEC)
    settings = make_settings(sqlite_database_url)
    settings.payments.stripe.api_base_url = fake.url
    live, client = await start_live_app(settings)
    try:
        yield live, fake
    finally:
        await client.close()
        await fake.close()


async def _axe(page: Any, name: str) -> None:
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert bad == [], f"{name}: " + "; ".join(f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in bad)


async def _cli_signin_link(live: LiveApp, merchant_id: str) -> str:
    """`paylinks dashboard-link --merchant ID`, run as the operator would, on the served app's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env.update({"PAYLINKS_DATABASE__URL": live.services.settings.database.url,
                "PAYLINKS_SERVER__PUBLIC_BASE_URL": live.base_url,
                "PAYLINKS_SECURITY__SECRET_KEY": TEST_SECRET_KEY})
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "paylinks"), "dashboard-link", "--merchant", merchant_id, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    (line,) = out.decode().splitlines()
    assert line.startswith(live.base_url + "/dashboard/signin/")
    return line


async def _sign_in(page: Any, url: str) -> None:
    from playwright.async_api import expect

    await page.goto(url)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")


async def test_the_seller_runs_the_shop_from_the_dashboard(shop_app: tuple[LiveApp, FakeStripe], browser: Any,
                                                           tmp_path: Any) -> None:
    from playwright.async_api import expect

    live, fake_stripe = shop_app
    merchant_id, owner_id = await shop_with_member(live, "Cake Corner")
    signins = live.services.conversation.signins
    desktop = await new_page(browser, DESKTOP)
    phone = await new_page(browser, PHONE)

    # The landing page, then a CLI link (no member: the operator, as owner) on the desktop.
    await desktop.goto(live.base_url + "/")
    await expect(desktop.get_by_role("heading", name="Sign in from your chat")).to_be_visible()
    await _axe(desktop, "landing")
    url = await _cli_signin_link(live, merchant_id)
    await _sign_in(desktop, url)
    # A reused link is refused with the reason, and so is one older than 10 minutes.
    await phone.goto(url)
    await phone.get_by_role("button", name="Sign in").click()
    await expect(phone.get_by_role("alert")).to_contain_text("used already")
    await _axe(phone, "signin refused")
    late = await signins.create_link(merchant_id, owner_id)
    await phone.goto(late)
    signins.clock = lambda: live.services.clock() + timedelta(minutes=11)
    try:
        await phone.get_by_role("button", name="Sign in").click()
        await expect(phone.get_by_role("alert")).to_contain_text("expired")
    finally:
        signins.clock = live.services.clock

    # The phone signs in with the link /dashboard gave in the console chat.
    replies = await live.services.conversation.handle(IncomingMessage(
        platform="console", user_id="u1", address="console:u1", text="/dashboard"))
    chat_url = re.search(r"http://\S+/dashboard/signin/\S+", replies[0].text)
    assert chat_url is not None and replies[0].private
    await _sign_in(phone, chat_url.group(0))

    # A link from the form, keyboard only: Tab to each field, Enter submits.
    await phone.goto(live.base_url + "/dashboard/links/new")
    await phone.get_by_label("Amount").focus()
    await phone.keyboard.type("42.50")
    await phone.keyboard.press("Tab")
    await phone.keyboard.press("Tab")
    await phone.keyboard.type("Wedding cake tasting")
    await phone.get_by_label("Reference").fill("INV-7")
    await phone.get_by_label("Name").fill("Siti")
    await phone.keyboard.press("Enter")
    await expect(phone.get_by_role("status").first).to_contain_text("The link was made")
    await expect(phone.get_by_role("heading", level=1)).to_have_text("S$42.50")
    link_id = phone.url.split("/")[-1].split("?")[0]

    # Search and filters find it; pay it as the customer would.
    await phone.goto(live.base_url + "/dashboard/links")
    await phone.get_by_label("Search").fill("siti")
    await phone.get_by_role("button", name="Find").click()
    await expect(phone.get_by_role("link", name=re.compile("Wedding cake tasting"))).to_have_count(1)
    # The customer's pages pass axe too: the pay page, the sandbox checkout (and its decline), the receipt.
    await phone.goto(live.base_url + f"/p/{link_id}")
    await _axe(phone, "pay page")
    await phone.get_by_role("button", name=re.compile(r"^Pay")).click()
    await expect(phone.get_by_role("heading", name="Pay by card")).to_be_visible()
    await _axe(phone, "sandbox checkout")
    await fill_card(phone, "4000 0000 0000 0002")
    await expect(phone.get_by_role("alert")).to_be_visible()
    await _axe(phone, "sandbox checkout declined")
    await fill_card(phone, "4242 4242 4242 4242")
    await expect(phone.get_by_role("heading", level=1)).to_have_text("Payment received")
    await _axe(phone, "receipt")
    await phone.goto(live.base_url + "/dashboard/links?status=paid")
    await expect(phone.get_by_role("link", name=re.compile("Wedding cake tasting"))).to_have_count(1)

    # The CSV matches the API.
    await desktop.goto(live.base_url + "/dashboard/links")
    async with desktop.expect_download() as download_info:
        await desktop.get_by_role("link", name="Download CSV").click()
    download = await download_info.value
    saved = tmp_path / "export.csv"
    await download.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_bytes().decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == EXPORT_COLUMNS and len(rows) == 2
    row = dict(zip(EXPORT_COLUMNS, rows[1], strict=True))
    assert (row["link_id"], row["amount"], row["amount_paid"], row["status"]) == (link_id, "42.50", "42.50", "paid")
    # The API's export (a key of the shop) has the same rows, and the API's link the same amounts.
    _key, secret = await live.services.merchants.create_api_key(merchant_id, test=True)
    bearer = {"Authorization": f"Bearer {secret}"}
    api_csv = await desktop.request.get(live.base_url + "/api/v1/links/export.csv", headers=bearer)
    assert api_csv.status == 200
    assert list(csv.reader(io.StringIO((await api_csv.body()).decode("utf-8-sig"), newline=""))) == rows
    api_link = await (await desktop.request.get(live.base_url + f"/api/v1/links/{link_id}", headers=bearer)).json()
    assert (api_link["amount"], api_link["payments"][0]["amount"], len(api_link["payments"])) == (
        row["amount"], row["amount_paid"], len(rows) - 1)

    # The owner refunds part of it from the link page, after the confirmation page.
    await desktop.goto(live.base_url + f"/dashboard/links/{link_id}")
    await desktop.get_by_role("link", name="Refund").click()
    await expect(desktop.get_by_role("heading", name="Refund this payment?")).to_be_visible()
    await desktop.get_by_label(re.compile("Amount to refund")).fill("10.00")
    await desktop.get_by_label("Reason").fill("one tier less")
    await desktop.get_by_role("button", name="Yes, refund").click()
    await expect(desktop.get_by_role("status").first).to_contain_text("refund")
    await expect(desktop.get_by_text("one tier less", exact=True)).to_be_visible()  # the refund row
    (refund,) = (await live.services.refunds.refunds_for([link_id])).popitem()[1]
    assert (refund.amount_minor, refund.currency) == (1000, "SGD")

    # A POST without the form's CSRF token is refused, even with the session cookie.
    forged = await desktop.request.post(live.base_url + "/dashboard/keys", form={"x": "1"})
    assert forged.status == 403 and "security token" in await forged.text()

    # Branding: a colour that fails is refused with a suggestion; a logo and a good colour reach the pay page.
    await desktop.goto(live.base_url + "/dashboard/settings")
    await desktop.get_by_label("Brand colour").fill("#ffcc00")
    await desktop.get_by_role("button", name="Save").click()
    await expect(desktop.get_by_text("nearest colour that passes")).to_be_visible()
    await _axe(desktop, "settings with errors")
    logo = tmp_path / "logo.png"
    Image.new("RGB", (600, 600), "#be123c").save(logo)
    await desktop.get_by_label("Brand colour").fill("#0f766e")
    await desktop.get_by_label("Logo").set_input_files(str(logo))
    await desktop.get_by_label("Support email").fill("help@cake.example")
    await desktop.get_by_role("button", name="Save").click()
    await expect(desktop.get_by_role("status")).to_contain_text("Saved")
    fresh, _ = await live.services.links.create(_draft(merchant_id))
    await phone.goto(live.base_url + f"/p/{fresh.id}")
    pay = phone.get_by_role("button", name=re.compile(r"^Pay"))
    assert await pay.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(15, 118, 110)"
    await expect(phone.get_by_role("img", name="Cake Corner logo")).to_be_visible()
    og = await phone.locator('meta[property="og:image"]').get_attribute("content")
    card = await phone.request.get(og)
    with Image.open(io.BytesIO(await card.body())) as image:
        assert image.size == (1200, 630)
    await _axe(phone, "branded pay page")
    await screenshot(phone, "dashboard-pay-branded-390")

    # The payment provider page: wrong keys refused with Stripe's answer and not echoed back, "Test connection"
    # asks Stripe, "Use Stripe" saves; then only the last four characters of each secret are shown.
    await desktop.goto(live.base_url + "/dashboard/providers")
    await expect(desktop.get_by_role("heading", name="Payment provider")).to_be_visible()
    await _axe(desktop, "providers")
    stripe_form = desktop.locator("form", has=desktop.get_by_role("group", name="Stripe"))
    await stripe_form.get_by_label("Secret key").fill("sk_test_not_a_stripe_key_0000")
    await stripe_form.get_by_label("Webhook signing secret").fill(STRIPE_WHSEC)
    await stripe_form.get_by_role("button", name="Use Stripe").click()
    await expect(desktop.get_by_role("alert").first).to_contain_text("stripe refused these credentials")
    stripe_form = desktop.locator("form", has=desktop.get_by_role("group", name="Stripe"))
    assert await stripe_form.get_by_label("Secret key").input_value() == ""
    assert "sk_test_not_a_stripe_key" not in await desktop.content()
    await _axe(desktop, "providers refused")
    await stripe_form.get_by_label("Secret key").fill(STRIPE_KEY)
    await stripe_form.get_by_label("Webhook signing secret").fill(STRIPE_WHSEC)
    await stripe_form.get_by_role("button", name="Test connection to Stripe").click()
    await expect(desktop.get_by_role("status")).to_contain_text("Connected: stripe accepted these credentials")
    assert await live.services.accounts.get(merchant_id) is None  # tested, not saved
    assert [c.kind for c in fake_stripe.calls].count("account") == 2
    stripe_form = desktop.locator("form", has=desktop.get_by_role("group", name="Stripe"))
    await stripe_form.get_by_label("Secret key").fill(STRIPE_KEY)
    await stripe_form.get_by_label("Webhook signing secret").fill(STRIPE_WHSEC)
    await stripe_form.get_by_role("button", name="Use Stripe").click()
    await expect(desktop.get_by_role("status")).to_contain_text("Saved")
    await expect(desktop.get_by_text("…" + STRIPE_KEY[-4:]).first).to_be_visible()
    html = await desktop.content()
    assert STRIPE_KEY[:-4] not in html and STRIPE_WHSEC[:-4] not in html
    await desktop.get_by_role("button", name="Test connection", exact=True).click()
    await expect(desktop.get_by_role("status")).to_contain_text("Connected: stripe accepted")
    await _axe(desktop, "providers saved")
    await desktop.goto(live.base_url + "/dashboard/audit")
    await expect(desktop.get_by_role("cell", name="provider.changed")).to_be_visible()

    # A key made on the keys page works on the API until it is revoked, then the next request is refused.
    await desktop.goto(live.base_url + "/dashboard/keys")
    await desktop.get_by_role("button", name="Create a key").click()
    shown = await desktop.get_by_label("New API key").input_value()
    mine = {"Authorization": f"Bearer {shown}"}
    assert (await desktop.request.get(live.base_url + "/api/v1/links", headers=mine)).status == 200
    hint = shown[-4:]
    await desktop.get_by_role("link", name=re.compile(f"Revoke .*{hint}")).click()
    await expect(desktop.get_by_role("heading", name="Revoke this key?")).to_be_visible()
    await desktop.get_by_role("button", name="Yes, revoke the key").click()
    await expect(desktop.get_by_role("heading", name="API keys")).to_be_visible()
    refused = await desktop.request.get(live.base_url + "/api/v1/links", headers=mine)
    assert refused.status == 401
    await desktop.get_by_role("button", name="Create a key").click()

    # The customer's closed pages: cancelled, expired, not found.
    closed, _ = await live.services.links.create(_draft(merchant_id))
    await live.services.links.cancel(closed.id, merchant_id)
    late_link, _ = await live.services.links.create(_draft(merchant_id))
    async with live.services.db.write() as conn:
        await conn.execute(update(table(PaymentLink)).where(table(PaymentLink).c.id == late_link.id)
                           .values(expires_at=live.services.clock() - timedelta(minutes=1)))
    for path, words in ((f"/p/{closed.id}", "cancelled"), (f"/p/{late_link.id}", "expired"),
                        ("/p/" + "a" * 26, "not found")):
        await phone.goto(live.base_url + path)
        await expect(phone.get_by_role("heading", level=1)).to_contain_text(re.compile(words, re.I))
        await _axe(phone, path)
        await screenshot(phone, f"customer-{words.replace(' ', '-')}-390")

    # Every dashboard page: axe, screenshots at both sizes, no sideways scrolling at 320 px.
    narrow = await new_page(browser, NARROW)
    await _sign_in(narrow, await signins.create_link(merchant_id, owner_id))
    pages = ["/dashboard", "/dashboard/links", f"/dashboard/links/{link_id}", f"/dashboard/links/{fresh.id}/cancel",
             f"/dashboard/links/{link_id}/refund",
             "/dashboard/links/new", "/dashboard/settings", "/dashboard/alerts", "/dashboard/keys",
             "/dashboard/team", "/dashboard/providers", "/dashboard/audit", f"/dashboard/links/{fresh.id}/resend"]
    for path in pages:
        name = path.replace(link_id, "paid-link").replace(fresh.id, "open-link").strip("/").replace("/", "-")
        for page, size in ((desktop, "1280"), (phone, "390")):
            await page.goto(live.base_url + path)
            await _axe(page, f"{path} at {size}")
            await screenshot(page, f"{name}-{size}")
        await narrow.goto(live.base_url + path)
        assert await narrow.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    # 200 % zoom of a 1280 px window is a 640 px viewport at twice the pixels: still nothing sideways.
    zoomed = await new_page(browser, {"viewport": {"width": 640, "height": 400}, "device_scale_factor": 2})
    await _sign_in(zoomed, await signins.create_link(merchant_id, owner_id))
    await zoomed.goto(live.base_url + f"/dashboard/links/{link_id}")
    assert await zoomed.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    # Keyboard: the skip link is the first Tab stop and moves focus to the content.
    await desktop.goto(live.base_url + "/dashboard")
    await desktop.keyboard.press("Tab")
    assert await desktop.evaluate("document.activeElement.textContent") == "Skip to content"

    # A staff member is refused the owner's pages.
    _, staff_id = await shop_with_member(live, role=MemberRole.STAFF, user="u7", merchant_id=merchant_id)
    staff = await new_page(browser, PHONE)
    await _sign_in(staff, await signins.create_link(merchant_id, staff_id))
    for path in ("/dashboard/keys", "/dashboard/team", "/dashboard/providers", "/dashboard/audit",
                 f"/dashboard/links/{link_id}/refund"):
        await staff.goto(live.base_url + path)
        await expect(staff.get_by_role("alert")).to_contain_text("Only the shop", timeout=5_000)
    await _axe(staff, "denied")

    for page in (desktop, phone, narrow, zoomed, staff):
        assert page.problems == []


def _draft(merchant_id: str) -> Any:
    from core.links import LinkDraft
    from core.money import Money
    return LinkDraft(merchant_id=merchant_id, money=Money(1800, "SGD"), description="Lemon tart")
