"""The dashboard's link page after the refunds work (issue 13 in issue 14's dashboard), on both back ends:
payments with their refunds, the link's timeline, and the owner's Refund button (confirmation page, CSRF,
the amount checked beside its field) through RefundService and the sandbox's real refund webhook; the
export's amount_refunded and the overview's Refunded column follow what the provider confirmed; the overview
keeps test-mode money on rows of its own."""

from __future__ import annotations

import csv
import io
import re

import aiohttp
from sqlalchemy import select, update

from adapters.payments.sandbox.provider import SandboxProvider
from adapters.web.api_models import EXPORT_COLUMNS
from core.links import LinkDraft
from core.models import AuditEvent, MemberRole, Payment, PaymentLink, Refund
from core.money import Money
from core.sql import table
from tests.adapters.web.dashboard_support import CSRF, pay_link, shop_with_member, sign_in, signin_url
from tests.conftest import LiveApp

AUDIT = table(AuditEvent)
REFUNDS = table(Refund)


async def _paid_link(live: LiveApp, merchant_id: str, amount_minor: int = 2500) -> str:
    link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(amount_minor, "SGD"), description="birthday cake",
        origin_platform="console", origin_address="console:u1"))
    await pay_link(live, link.id)
    return link.id


async def _refunds(live: LiveApp, link_id: str) -> list[tuple[int, str]]:
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(REFUNDS.c.amount_minor, REFUNDS.c.status)
                                   .where(REFUNDS.c.link_id == link_id).order_by(REFUNDS.c.created_at))).all()
    return [(int(r[0]), str(r[1])) for r in rows]


def _sandbox(live: LiveApp) -> SandboxProvider:
    provider = live.services.provider
    assert isinstance(provider, SandboxProvider)
    return provider


async def test_owner_refunds_part_of_a_payment_from_the_link_page(live: LiveApp) -> None:
    merchant_id, member_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    link_id = await _paid_link(live, merchant_id)
    (payment,) = await live.services.links.payments_for(link_id)

    detail = await (await live.client.get(f"/dashboard/links/{link_id}")).text()
    assert payment.id in detail and "Paid" in detail and "Made" in detail
    assert f'href="/dashboard/links/{link_id}/refund?payment={payment.id}"' in detail

    page = await live.client.get(f"/dashboard/links/{link_id}/refund", params={"payment": payment.id})
    text = await page.text()
    assert page.status == 200 and "cannot be undone" in text and "S$25.00" in text
    attempt = re.search(r'name="attempt" value="([^"]+)"', text)
    assert attempt is not None and CSRF.search(text) is not None
    form = {"csrf": csrf, "payment_id": payment.id, "attempt": attempt.group(1)}

    # No CSRF token: refused, nothing asked of the provider.
    forged = await live.client.post(f"/dashboard/links/{link_id}/refund", allow_redirects=False,
                                    data={**form, "csrf": "forged"})
    assert forged.status == 403
    # A wrong amount is explained beside the field; nothing is refunded.
    for amount, reason in (("abc", "Write the amount as a number, like 25.00."),
                           ("25.01", "You can refund at most S$25.00.")):
        bad = await live.client.post(f"/dashboard/links/{link_id}/refund", data={**form, "amount": amount})
        body = await bad.text()
        assert bad.status == 422 and 'id="amount-error"' in body and reason in body, body
    assert await _refunds(live, link_id) == []

    done = await live.client.post(f"/dashboard/links/{link_id}/refund", allow_redirects=False,
                                  data={**form, "amount": "4.00", "reason": "one slice was missing"})
    assert done.status == 303
    assert done.headers["Location"].startswith(f"/dashboard/links/{link_id}?done=refund")
    # The same form sent again (a double click) is the same refund, not a second one.
    again = await live.client.post(f"/dashboard/links/{link_id}/refund", allow_redirects=False,
                                   data={**form, "amount": "4.00"})
    assert again.status == 303
    await _sandbox(live).drain()  # the sandbox's signed refund.succeeded webhook, over HTTP
    assert await _refunds(live, link_id) == [(400, "succeeded")]
    (payment,) = await live.services.links.payments_for(link_id)
    assert payment.amount_refunded_minor == 400

    detail = await (await live.client.get(f"/dashboard/links/{link_id}")).text()
    assert "Refund asked" in detail and "one slice was missing" in detail and "Refunded" in detail
    assert "refund succeeded" in detail and "S$4.00" in detail and "partially refunded" in detail
    assert "?payment=" in detail  # 21.00 left to refund

    export = (await (await live.client.get("/dashboard/export.csv")).read()).decode("utf-8-sig")
    rows = [dict(zip(EXPORT_COLUMNS, r, strict=True)) for r in list(csv.reader(io.StringIO(export, newline="")))[1:]]
    assert [(r["link_id"], r["amount_paid"], r["amount_refunded"]) for r in rows] == [(link_id, "25.00", "4.00")]

    overview = await (await live.client.get("/dashboard")).text()
    assert re.search(r"<td>S\$25\.00</td><td>S\$4\.00</td><td>S\$21\.00</td>", overview), overview

    async with live.services.db.read() as conn:
        audited = (await conn.execute(select(AUDIT.c.action, AUDIT.c.detail)
                                      .where(AUDIT.c.merchant_id == merchant_id,
                                             AUDIT.c.action == "link.refunded"))).all()
    assert [(a, d["amount"], d["currency"]) for a, d in audited] == [("link.refunded", "4.00", "SGD")]


async def test_a_full_refund_leaves_nothing_to_refund(live: LiveApp) -> None:
    merchant_id, member_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    link_id = await _paid_link(live, merchant_id, 1000)
    page = await (await live.client.get(f"/dashboard/links/{link_id}/refund")).text()
    attempt = re.search(r'name="attempt" value="([^"]+)"', page)
    payment_id = re.search(r'name="payment_id" value="([^"]+)"', page)
    assert attempt is not None and payment_id is not None
    done = await live.client.post(f"/dashboard/links/{link_id}/refund", allow_redirects=False, data={
        "csrf": csrf, "payment_id": payment_id.group(1), "attempt": attempt.group(1), "amount": ""})
    assert done.status == 303
    await _sandbox(live).drain()
    assert await _refunds(live, link_id) == [(1000, "succeeded")]
    detail = await (await live.client.get(f"/dashboard/links/{link_id}")).text()
    assert "badge-bad\">refunded" in detail and "?payment=" not in detail
    nothing = await live.client.get(f"/dashboard/links/{link_id}/refund")
    assert nothing.status == 403 and "nothing left to refund" in await nothing.text()


async def test_staff_see_payments_but_cannot_refund(live: LiveApp) -> None:
    merchant_id, _owner = await shop_with_member(live)
    _, staff_id = await shop_with_member(live, role=MemberRole.STAFF, user="u2", merchant_id=merchant_id)
    link_id = await _paid_link(live, merchant_id)
    (payment,) = await live.services.links.payments_for(link_id)
    browser = aiohttp.ClientSession(base_url=live.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        csrf = await sign_in(browser, await signin_url(live, merchant_id, staff_id))
        detail = await (await browser.get(f"/dashboard/links/{link_id}")).text()
        assert payment.id in detail and "/refund" not in detail
        assert (await browser.get(f"/dashboard/links/{link_id}/refund")).status == 403
        refused = await browser.post(f"/dashboard/links/{link_id}/refund", allow_redirects=False,
                                     data={"csrf": csrf, "payment_id": payment.id, "attempt": "x" * 20})
        assert refused.status == 403
    finally:
        await browser.close()
    assert await _refunds(live, link_id) == []


async def test_overview_keeps_test_money_apart_from_live(live: LiveApp) -> None:
    merchant_id, member_id = await shop_with_member(live)
    test_link = await _paid_link(live, merchant_id, 2500)
    live_link = await _paid_link(live, merchant_id, 900)
    links, payments = table(PaymentLink), table(Payment)
    async with live.services.db.write() as conn:  # as if paid through the shop's live provider account
        await conn.execute(update(links).where(links.c.id == live_link).values(livemode=True))
        await conn.execute(update(payments).where(payments.c.link_id == live_link).values(livemode=True))
    await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    page = await (await live.client.get("/dashboard")).text()
    today = page.split('id="period-2"')[0]
    live_row = re.search(r'<th scope="row">SGD</th>'
                         r'<td>S\$9\.00</td><td>S\$0\.00</td><td>S\$9\.00</td><td>1</td>', today)
    test_row = re.search(r'<th scope="row">SGD <span class="badge badge-warn">test mode</span></th>'
                         r'<td>S\$25\.00</td><td>S\$0\.00</td><td>S\$25\.00</td><td>1</td>', today)
    assert live_row is not None and test_row is not None, today
    assert live_row.start() < test_row.start()  # live money first
    assert "S$34.00" not in page and test_link != live_link
