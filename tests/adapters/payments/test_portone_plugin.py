"""The PortOne plug-in end to end (issue 12 points 4 and 7): the app with `payments.provider = "portone"`
talking to FakePortOne on 127.0.0.1 (JWT, client key, signature and spec checked), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy import select, update

from adapters.payments.portone.plugin import PLUGIN, PortOneSettings
from adapters.payments.portone.provider import PortOneProvider
from bots.config import Secret
from bots.jobs import sweep
from core.links import CHECKOUTS, LinkDraft, LinkError
from core.models import LinkStatus, Merchant, OutboxMessage, PaymentLink, PaymentStatus
from core.money import Money
from core.sql import table
from tests.adapters.web.pages_support import make_overdue, page_of
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.portone import FakePortOne

CLIENT_KEY = "pk_test_PAYLINKS"
SECRET = "sk_test_secret_123"
WEBHOOK = "/webhooks/portone"


@pytest.fixture
async def fake() -> AsyncIterator[FakePortOne]:
    server = await FakePortOne(client_key=CLIENT_KEY, secret_key=SECRET).start()
    yield server
    await server.close()


@pytest.fixture
async def live(database_url: str, fake: FakePortOne) -> AsyncIterator[LiveApp]:
    settings = make_settings(database_url, limits__bad_auth_per_ip="1000/min")
    settings.payments.provider = "portone"
    section = settings.payments.portone
    section.client_key = CLIENT_KEY
    section.secret_key = Secret(SECRET)
    section.country_code = "TH"
    section.api_base_url = fake.url
    app, client = await start_live_app(settings, run_jobs=False)  # outbox rows are not delivered here
    fake.webhook_url = app.base_url + WEBHOOK
    yield app
    await client.close()


async def make_link(live: LiveApp, minor: int = 250000, currency: str = "THB") -> PaymentLink:
    merchant = await live.services.merchants.create("Noodle Bar", currency=currency, locale="en_SG")
    link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant.id, money=Money(minor, currency), description="Pad thai",
        origin_platform="console", origin_address="alice"))
    return link


async def press_pay(live: LiveApp, fake: FakePortOne, link: PaymentLink) -> str:
    """POST /p/{id}/pay -> the payment_link_ref (the 303 goes to PortOne's checkout URL)."""
    response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert location.startswith(f"{fake.url}/checkout?ref=")
    return location.split("ref=", 1)[1]


async def post_webhook(live: LiveApp, body: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await live.client.post(WEBHOOK, data=raw, headers={"Content-Type": "application/json"})
    assert response.status < 500 or response.status == 503, await response.text()
    return response.status, await response.json()


async def payments(live: LiveApp, link: PaymentLink) -> list[tuple[str, str]]:
    return sorted((p.status, p.provider_ref) for p in await live.services.links.payments_for(link.id))


async def link_status(live: LiveApp, link: PaymentLink) -> str:
    stored = await live.services.links.get(link.id)
    assert stored is not None
    return stored.status


def test_the_portone_section_is_checked_when_portone_is_chosen() -> None:
    good = PortOneSettings(client_key=CLIENT_KEY, secret_key=Secret(SECRET), country_code="TH")
    PLUGIN.check(good, good)
    for section, key in [
        (PortOneSettings(secret_key=Secret(SECRET), country_code="TH"), "payments.portone.client_key"),
        (PortOneSettings(client_key=CLIENT_KEY, country_code="TH"), "payments.portone.secret_key"),
        (PortOneSettings(client_key=CLIENT_KEY, secret_key=Secret(SECRET)), "payments.portone.country_code"),
        (PortOneSettings(client_key=CLIENT_KEY, secret_key=Secret(SECRET), country_code="TH", api_base_url="x"),
         "payments.portone.api_base_url"),
    ]:
        with pytest.raises(ValueError, match=key.replace(".", r"\.")) as caught:
            PLUGIN.check(section, section)
        assert SECRET not in str(caught.value)


async def test_pay_end_to_end_through_the_hosted_page(live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    (create,) = fake.calls_of("create")
    assert fake.rejected == []  # the body matched the vendored spec, the JWT and the signature
    assert (create.body["merchant_order_id"], create.body["amount"], create.body["currency"]) == (
        f"{link.id}_1", 2500, "THB")
    assert create.body["success_url"] == f"{live.base_url}/p/{link.id}/return/portone"
    assert create.body["merchant_details"]["name"] == "Noodle Bar"
    assert [c.provider_ref for c in await live.services.links.open_checkouts(link.id)] == [ref]

    async with aiohttp.ClientSession() as client, client.post(f"{fake.url}/checkout/{ref}/pay",
                                                              allow_redirects=False) as response:
        assert response.status == 303
        back = response.headers["Location"]
    assert [status for status, _ in fake.webhooks_sent] == [200]
    assert fake.calls_of("fetch"), "the webhook was confirmed with fetch-status"
    assert await link_status(live, link) == LinkStatus.PAID
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, ref)]

    parts = urlsplit(back)
    response = await live.client.get(f"{parts.path}?{parts.query}")
    assert response.status == 200
    assert (await page_of(response)).title.startswith("Paid")


async def test_a_success_redirect_alone_is_not_a_receipt(live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    fake.webhook_url = None  # the webhook is late
    await fake.settle(ref)
    fake.links[ref].status = "Processing"  # and PortOne's own status does not say paid yet
    params = fake.redirect_params(fake.links[ref], "Success")
    response = await live.client.get(f"/p/{link.id}/return/portone", params=params)
    page = await page_of(response)
    assert page.h1 == "Confirming your payment"
    assert any(m.attrs.get("http-equiv") == "refresh" for m in page.all("meta"))
    korean = await page_of(await live.client.get(f"/p/{link.id}/return/portone", params=params,
                                                 headers={"Accept-Language": "ko-KR"}))
    assert korean.lang == "ko" and korean.h1 == "결제를 확인하고 있어요"
    assert "PortOne에서 결제를 확인하고 있어요" in korean.text()
    assert await link_status(live, link) == LinkStatus.ACTIVE
    fake.fail("fetch", status=503)  # PortOne down: still confirming, no error page
    response = await live.client.get(f"/p/{link.id}/return/portone", params=params)
    assert (response.status, (await page_of(response)).h1) == (200, "Confirming your payment")
    # A forged redirect (status changed after signing) goes back to the pay page.
    response = await live.client.get(f"/p/{link.id}/return/portone", params={**params, "status": "Failed"},
                                     allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/p/{link.id}")
    # A failed payment says so.
    failed = fake.redirect_params(fake.links[ref], "Failed")
    page = await page_of(await live.client.get(f"/p/{link.id}/return/portone", params=failed))
    assert page.h1 == "The payment was not completed"


async def test_the_return_records_a_payment_portone_confirms_before_its_webhook(live: LiveApp,
                                                                                fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    fake.webhook_url = None  # the webhook is late
    await fake.settle(ref)
    params = fake.redirect_params(fake.links[ref], "Success")
    response = await live.client.get(f"/p/{link.id}/return/portone", params=params, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/p/{link.id}?payment={ref}")
    assert fake.calls_of("fetch"), "confirmed with PortOne's fetch-status, not the redirect alone"
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, ref)]
    assert (await page_of(await live.client.get(response.headers["Location"]))).h1 == "Payment received"
    # The late webhook is a duplicate; so is the customer reloading the return page.
    assert (await post_webhook(live, fake.webhook_body(fake.links[ref])))[1]["outcome"] == "duplicate"
    again = await live.client.get(f"/p/{link.id}/return/portone", params=params, allow_redirects=False)
    assert again.status == 303
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, ref)]


async def test_replayed_tampered_and_unconfirmed_webhooks(live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    fake.webhook_url = None
    fake.links[ref].status = "Success"
    body = fake.webhook_body(fake.links[ref])
    assert (await post_webhook(live, body))[1]["outcome"] == "paid"
    assert (await post_webhook(live, body))[1]["outcome"] == "duplicate"
    for bad in [
        {**body, "amount": 1},  # signed fields changed
        {**body, "signature_hash": "AAAA"},
        {k: v for k, v in body.items() if k != "signature_hash"},
    ]:
        status, answer = await post_webhook(live, bad)
        assert (status, answer["error"]["code"]) == (400, "invalid_webhook")
    assert (await post_webhook(live, b"not json"))[0] == 400
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, ref)]


async def test_a_signed_paid_webhook_that_fetch_status_does_not_confirm_records_nothing(
        live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    fake.links[ref].status = "Success"
    body = fake.webhook_body(fake.links[ref])
    fake.links[ref].status = "Created"  # PortOne itself says it is not paid
    status, answer = await post_webhook(live, body)
    assert (status, answer["error"]["code"]) == (400, "invalid_webhook")
    fake.fail("fetch", status=503)
    fake.links[ref].status = "Success"
    status, _ = await post_webhook(live, body)
    assert status == 503  # PortOne retries later
    assert await payments(live, link) == []
    assert await link_status(live, link) == LinkStatus.ACTIVE


async def test_concurrent_webhooks_make_one_payment(live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    fake.links[ref].status = "Success"
    fake.links[ref].order_ref = "2Or_txn"
    bodies = [fake.webhook_body(fake.links[ref])] * 4 + [fake.payment_webhook_body(fake.links[ref], "Success")] * 2
    answers = await asyncio.gather(*(post_webhook(live, body) for body in bodies))
    assert sorted(answer["outcome"] for _, answer in answers) == ["duplicate"] * 5 + ["paid"]
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, ref)]


async def test_an_amount_that_differs_from_the_link_never_pays_it(live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    fake.links[ref].status = "Success"
    fake.links[ref].body["amount"] = 25  # PortOne says 25 THB, the link is 2,500 THB
    status, answer = await post_webhook(live, fake.webhook_body(fake.links[ref]))
    assert (status, answer["outcome"]) == (200, "mismatch")
    assert await link_status(live, link) == LinkStatus.ACTIVE
    assert await payments(live, link) == [(PaymentStatus.REFUND_NEEDED, ref)]


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_an_outage_on_pay_shows_a_calm_try_again_page(live: LiveApp, fake: FakePortOne, status: int,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    link = await make_link(live)
    fake.fail("create", status=status)
    with caplog.at_level(logging.WARNING, logger="paylinks.web.pages"):
        response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert response.status in (502, 503)
    page = await page_of(response)
    assert "try again" in page.text().lower()
    assert SECRET not in page.html and SECRET not in caplog.text
    assert any("request_id=req_fake_outage" in r.getMessage() for r in caplog.records)
    assert (await press_pay(live, fake, link))


async def test_the_way_to_and_back_from_portone_wears_the_shops_branding(live: LiveApp, fake: FakePortOne) -> None:
    """Issue 14 point 5: the hand-off page (here: PortOne down) and the return pages show the shop."""
    link = await make_link(live)
    async with live.services.db.write() as conn:
        await conn.execute(update(table(Merchant)).where(table(Merchant).c.id == link.merchant_id).values(
            brand_color="#0f766e", logo_version="abc123", support_email="help@noodle.example"))

    def branded(page: Any) -> None:
        assert f'href="/brand/{link.merchant_id}.css?v=0f766e"' in page.html
        assert f'src="/brand/{link.merchant_id}/logo.png?v=abc123"' in page.html
        assert 'alt="Noodle Bar logo"' in page.html
        assert "help@noodle.example" in page.text()

    fake.fail("create", status=503)
    page = await page_of(await live.client.post(f"/p/{link.id}/pay", allow_redirects=False))
    assert page.h1 == "The payment could not start"
    branded(page)
    ref = await press_pay(live, fake, link)
    fake.webhook_url = None
    fake.links[ref].status = "Processing"
    for outcome, heading in (("Success", "Confirming your payment"), ("Failed", "The payment was not completed")):
        params = fake.redirect_params(fake.links[ref], outcome)
        page = await page_of(await live.client.get(f"/p/{link.id}/return/portone", params=params))
        assert page.h1 == heading
        branded(page)


async def test_cancel_and_expiry_cancel_the_open_portone_link(live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    await live.services.links.cancel(link.id, link.merchant_id)
    assert fake.links[ref].status == "Cancelled"
    assert await live.services.links.open_checkouts(link.id) == []
    # A payment that lands anyway is refund-needed.
    fake.links[ref].status = "Success"
    status, answer = await post_webhook(live, fake.webhook_body(fake.links[ref]))
    assert (status, answer["outcome"]) == (200, "refund_needed")

    other = await make_link(live)
    other_ref = await press_pay(live, fake, other)
    await make_overdue(live.services, other.id, live.services.clock() - timedelta(minutes=1))
    assert await live.services.links.expire_due() == 1
    assert fake.links[other_ref].status == "Cancelled"


async def test_links_portone_cannot_charge_are_refused_when_made(live: LiveApp) -> None:
    merchant = await live.services.merchants.create("Oil Shop", currency="KWD", locale="en_SG")
    with pytest.raises(LinkError) as caught:
        await live.services.links.create(LinkDraft(merchant_id=merchant.id, money=Money(5120, "KWD"),
                                                   description="oil"))
    assert (caught.value.code, caught.value.field) == ("not_chargeable", "currency")


# ---------------------------------------------------------------- reconciliation (missed webhooks)


async def _make_due(live: LiveApp, link: PaymentLink) -> None:
    async with live.services.db.write() as conn:
        await conn.execute(update(CHECKOUTS).where(CHECKOUTS.c.link_id == link.id)
                           .values(next_check_at=live.services.clock() - timedelta(seconds=1)))


async def _alert_kinds(live: LiveApp, link: PaymentLink) -> list[str]:
    outbox = table(OutboxMessage)
    async with live.services.db.read() as conn:
        return sorted(r.kind for r in (await conn.execute(select(outbox.c.kind)
                                                          .where(outbox.c.link_id == link.id))).all())


async def test_a_missed_webhook_is_reconciled_through_fetch_status_once(live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    fake.webhook_url = None  # PortOne's webhook never arrives
    await fake.settle(ref)
    await sweep(live.services)
    assert fake.calls_of("fetch") == [], "not asked before [payments] reconcile_after"
    assert await link_status(live, link) == LinkStatus.ACTIVE

    await _make_due(live, link)
    await sweep(live.services)
    (fetch,) = fake.calls_of("fetch")
    assert fetch.path == f"/api/paymentLink/{ref}/fetch-status"
    assert await link_status(live, link) == LinkStatus.PAID
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.status, payment.provider_ref, payment.amount_minor, payment.currency, payment.livemode) == (
        PaymentStatus.SUCCEEDED, ref, 250000, "THB", False)
    alerts = await _alert_kinds(live, link)
    assert alerts, "the seller is alerted as for a webhook"

    # The late webhook (confirmed, as always) is a duplicate; a later sweep records nothing more.
    status, answer = await post_webhook(live, fake.webhook_body(fake.links[ref]))
    assert (status, answer["outcome"]) == (200, "duplicate")
    await _make_due(live, link)
    await sweep(live.services)
    assert len(fake.calls_of("fetch")) == 2, "paid links are no longer asked about"
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, ref)]
    assert await _alert_kinds(live, link) == alerts, "alerts once"


async def test_an_unpaid_portone_link_is_asked_again_with_backoff_until_the_link_expires(
        live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    waits = []
    for round_ in range(4):
        if round_ == 1:
            fake.fail("fetch", status=503)  # an outage round is logged and asked again later
        await _make_due(live, link)
        await sweep(live.services)
        (checkout,) = await live.services.links.open_checkouts(link.id)
        assert checkout.next_check_at is not None
        waits.append(checkout.next_check_at - live.services.clock())
    assert len(fake.calls_of("fetch")) == 4
    assert waits == sorted(waits) and len(set(waits)) == 4, waits
    assert await link_status(live, link) == LinkStatus.ACTIVE

    # Once the link has expired it is no longer asked about (its expiry cancels the PortOne link).
    await make_overdue(live.services, link.id, live.services.clock() - timedelta(minutes=1))
    await _make_due(live, link)
    await sweep(live.services)
    assert len(fake.calls_of("fetch")) == 5  # the expiry's own look before cancelling, no reconcile round
    assert fake.links[ref].status == "Cancelled"
    await _make_due(live, link)
    await sweep(live.services)
    assert len(fake.calls_of("fetch")) == 5


async def test_a_reconciled_payment_on_a_link_paid_meanwhile_is_refund_needed(live: LiveApp,
                                                                               fake: FakePortOne) -> None:
    """Two PortOne links of one single-use link, both paid; one webhook missed: one payment, one refund."""
    link = await make_link(live)
    first = await press_pay(live, fake, link)
    second = await press_pay(live, fake, link)
    fake.webhook_url = None
    await fake.settle(first)
    await fake.settle(second)
    status, answer = await post_webhook(live, fake.webhook_body(fake.links[second]))
    assert (status, answer["outcome"]) == (200, "paid")
    # The link is paid now: its other checkout is no longer reconciled as a payment of the link...
    await _make_due(live, link)
    await sweep(live.services)
    # ...and when its own webhook lands, the money is recorded to be refunded.
    status, answer = await post_webhook(live, fake.webhook_body(fake.links[first]))
    assert (status, answer["outcome"]) == (200, "refund_needed")
    assert await payments(live, link) == [(PaymentStatus.REFUND_NEEDED, first), (PaymentStatus.SUCCEEDED, second)]


async def test_a_reusable_links_checkout_is_reconciled_at_its_reserved_amount(live: LiveApp,
                                                                              fake: FakePortOne) -> None:
    """3 tickets at THB 250: the missed webhook's payment is the reservation's THB 750, not the unit price."""
    from core.reusable import Terms

    merchant = await live.services.merchants.create("Noodle Bar", currency="THB", locale="en_SG")
    link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant.id, money=Money(25000, "THB"), description="Concert ticket",
        origin_platform="console", origin_address="alice",
        terms=Terms(stock=10, quantity_min=1, quantity_max=10)))
    response = await live.client.post(f"/p/{link.id}/pay", data={"quantity": "3"}, allow_redirects=False)
    assert response.status == 303, await response.text()
    ref = response.headers["Location"].split("ref=", 1)[1]
    (create,) = fake.calls_of("create")
    assert create.body["amount"] == 750  # PortOne was asked for quantity × unit
    fake.webhook_url = None  # PortOne's webhook never arrives
    await fake.settle(ref)
    await _make_due(live, link)
    await sweep(live.services)
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.status, payment.amount_minor, payment.currency) == (PaymentStatus.SUCCEEDED, 75000, "THB")
    stored = await live.services.links.get(link.id)
    assert stored is not None
    assert (stored.payments_count, stored.units_sold, stored.amount_collected_minor, stored.units_reserved) == (
        1, 3, 75000, 0)
    assert stored.status == LinkStatus.ACTIVE  # 7 tickets left


# ---------------------------------------------------------------- point 7: reordered, paid twice, timeouts


async def test_reordered_webhooks_make_one_payment(live: LiveApp, fake: FakePortOne) -> None:
    """The paid webhook first, then older "Processing"/"Failed" ones that were delayed: nothing changes."""
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    fake.links[ref].status = "Success"
    paid = fake.webhook_body(fake.links[ref])
    fake.links[ref].status = "Processing"
    older = fake.webhook_body(fake.links[ref])
    fake.links[ref].status = "Success"
    fake.links[ref].order_ref = "2Or_first_try"
    failed_txn = fake.payment_webhook_body(fake.links[ref], "Failed")  # a failed card try before the good one
    assert (await post_webhook(live, paid))[1]["outcome"] == "paid"
    assert (await post_webhook(live, older))[1]["outcome"] == "ignored"
    assert (await post_webhook(live, failed_txn))[1]["outcome"] == "ignored"
    assert await link_status(live, link) == LinkStatus.PAID
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, ref)]


async def test_a_single_use_link_paid_twice_at_once_keeps_one_and_refunds_the_other(
        live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    first, second = await press_pay(live, fake, link), await press_pay(live, fake, link)
    for ref in (first, second):
        fake.links[ref].status = "Success"
    bodies = [fake.webhook_body(fake.links[first]), fake.webhook_body(fake.links[second])] * 2
    answers = await asyncio.gather(*(post_webhook(live, body) for body in bodies))
    assert sorted(answer["outcome"] for _, answer in answers) == ["duplicate", "duplicate", "paid", "refund_needed"]
    assert await link_status(live, link) == LinkStatus.PAID
    assert sorted(status for status, _ in await payments(live, link)) == [PaymentStatus.REFUND_NEEDED,
                                                                          PaymentStatus.SUCCEEDED]


async def test_a_portone_timeout_on_pay_shows_the_try_again_page(live: LiveApp, fake: FakePortOne) -> None:
    link = await make_link(live)
    provider = live.services.provider
    assert isinstance(provider, PortOneProvider)
    await provider.close()
    provider.timeout_s = 0.3
    fake.stall("create", 1.5)
    response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert response.status in (502, 503)
    page = await page_of(response)
    assert "try again" in page.text().lower() and "Traceback" not in page.html


async def test_the_pay_pages_csp_lets_pay_go_to_portone_checkout(live: LiveApp, fake: FakePortOne) -> None:
    """Browsers check CSP form-action on the Pay form's 303: PortOne's hosted page must be allowed."""
    link = await make_link(live)
    response = await live.client.get(f"/p/{link.id}")
    csp = response.headers["Content-Security-Policy"]
    (form_action,) = [part.split()[1:] for part in csp.split("; ") if part.startswith("form-action")]
    portone = ["'self'", live.base_url, "https://checkout.portone.cloud", "https://stage-checkout.portone.cloud",
               fake.url]
    assert form_action[:len(portone)] == portone
    # Beside them only Stripe's, which a shop with its own Stripe account pays through (point 1).
    assert form_action[len(portone):] == ["https://checkout.stripe.com", "https://api.stripe.com"]


async def test_a_checkout_on_another_host_is_reached_through_a_continue_page(live: LiveApp,
                                                                             fake: FakePortOne) -> None:
    """PortOne's checkout URL is opaque: on a host CSP does not list, a 303 would be refused by browsers."""
    link = await make_link(live)
    pages = next(r.handler.__self__ for r in live.app.router.routes()  # type: ignore[attr-defined]
                 if getattr(r.handler, "__name__", "") == "pay")
    pages.redirect_origins = frozenset({live.base_url})  # as if the fake's host were not a checkout origin
    response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert response.status == 200
    page = await page_of(response)
    (refresh,) = [m.attrs["content"] for m in page.all("meta") if m.attrs.get("http-equiv") == "refresh"]
    assert refresh.startswith(f"0;url={fake.url}/checkout?ref=")
    assert any(a.attrs.get("href") == refresh.removeprefix("0;url=") for a in page.all("a"))
