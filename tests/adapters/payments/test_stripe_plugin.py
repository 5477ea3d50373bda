"""The Stripe plug-in end to end (issue 12 points 3 and 7): the app with `payments.provider = "stripe"`,
the real `stripe` SDK talking to FakeStripe on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import select

from adapters.payments.stripe.plugin import PLUGIN, StripeSettings
from adapters.payments.stripe.provider import StripeProvider
from bots.config import Secret
from core.links import LinkDraft, LinkError
from core.models import LinkStatus, OutboxMessage, PaymentLink, PaymentStatus
from core.money import Money
from core.sql import table
from tests.adapters.web.api_support import make_shop
from tests.adapters.web.pages_support import make_overdue, page_of
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.stripe import FakeStripe

KEY = "sk_test_paylinks_fake"
WHSEC = "whsec_test_paylinks"
WEBHOOK = "/webhooks/stripe"


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    server = await FakeStripe(secret_keys=(KEY,), webhook_secret=WHSEC).start()
    yield server
    await server.close()


@pytest.fixture
async def live(database_url: str, fake: FakeStripe) -> AsyncIterator[LiveApp]:
    settings = make_settings(database_url, limits__bad_auth_per_ip="1000/min")
    settings.payments.provider = "stripe"
    settings.payments.stripe.secret_key = Secret(KEY)
    settings.payments.stripe.webhook_secret = Secret(WHSEC)
    settings.payments.stripe.api_base_url = fake.url
    # No background jobs: the outbox rows are read from the table; a dispatcher stopping while an alert
    # is in flight was seen to hold the server's shutdown here.
    app, client = await start_live_app(settings, run_jobs=False)
    fake.webhook_url = app.base_url + WEBHOOK
    yield app
    await client.close()


async def make_link(live: LiveApp, minor: int = 2500, currency: str = "SGD") -> PaymentLink:
    merchant = await live.services.merchants.create("Cake Shop", currency=currency, locale="en_SG")
    link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant.id, money=Money(minor, currency), description="Chocolate cake",
        origin_platform="console", origin_address="alice"))
    return link


async def press_pay(live: LiveApp, link: PaymentLink) -> str:
    """POST /p/{id}/pay -> the Checkout Session's id (the 303 goes to the fake's hosted page)."""
    response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert location.startswith(live.services.provider.api_base_url + "/pay/cs_test_")  # type: ignore[attr-defined]
    return location.rsplit("/", 1)[1]


async def pay_on_hosted_page(fake: FakeStripe, session_id: str) -> str:
    """The customer presses Pay on Stripe's page; returns where Stripe sends them back."""
    async with aiohttp.ClientSession() as client, client.post(f"{fake.url}/pay/{session_id}",
                                                              allow_redirects=False) as response:
        assert response.status == 303
        return response.headers["Location"]


async def post_event(live: LiveApp, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = await live.client.post(WEBHOOK, data=body, headers=headers, allow_redirects=False)
    assert response.status < 500, await response.text()
    return response.status, await response.json()


async def payments(live: LiveApp, link: PaymentLink) -> list[tuple[str, str]]:
    return sorted((p.status, p.provider_ref) for p in await live.services.links.payments_for(link.id))


async def link_status(live: LiveApp, link: PaymentLink) -> str:
    stored = await live.services.links.get(link.id)
    assert stored is not None
    return stored.status


# ---------------------------------------------------------------- settings


def test_the_stripe_section_is_checked_when_stripe_is_chosen() -> None:
    good = StripeSettings(secret_key=Secret(KEY), webhook_secret=Secret(WHSEC))
    PLUGIN.check(good, good)
    for section, key in [
        (StripeSettings(webhook_secret=Secret(WHSEC)), "payments.stripe.secret_key"),
        (StripeSettings(secret_key=Secret("pk_test_public"), webhook_secret=Secret(WHSEC)),
         "payments.stripe.secret_key"),
        (StripeSettings(secret_key=Secret(KEY)), "payments.stripe.webhook_secret"),
        (StripeSettings(secret_key=Secret(KEY), webhook_secret=Secret(WHSEC), api_base_url="ftp://x"),
         "payments.stripe.api_base_url"),
    ]:
        with pytest.raises(ValueError, match=key.replace(".", r"\.")) as caught:
            PLUGIN.check(section, section)
        assert KEY not in str(caught.value)


def test_test_keys_are_test_mode_and_live_keys_are_not() -> None:
    def provider(key: str) -> StripeProvider:
        return StripeProvider(secret_key=key, webhook_secret=WHSEC, public_base_url="https://pay.example.com")

    assert provider("sk_test_x").test_mode is True
    assert provider("sk_live_x").test_mode is False
    assert "sk_live_x" not in repr(provider("sk_live_x"))


# ---------------------------------------------------------------- paying


async def test_pay_end_to_end_through_the_hosted_page(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    (create,) = fake.calls_of("sessions.create")
    item = create.params["line_items"][0]
    assert (create.params["mode"], create.params["client_reference_id"]) == ("payment", link.id)
    assert (item["price_data"]["currency"], item["price_data"]["unit_amount"]) == ("sgd", "2500")
    assert create.params["metadata"]["link_id"] == link.id
    assert create.headers["Idempotency-Key"] == f"paylinks-checkout-{link.id}-1"
    assert [c.provider_ref for c in await live.services.links.open_checkouts(link.id)] == [session_id]

    back = await pay_on_hosted_page(fake, session_id)
    assert [status for status, _ in fake.events_sent] == [200]  # the webhook was accepted
    assert await link_status(live, link) == LinkStatus.PAID
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, session_id)]
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(table(OutboxMessage).c.kind)
                                   .where(table(OutboxMessage).c.link_id == link.id))).all()
    assert any("paid" in row.kind for row in rows), rows

    # Stripe sends the customer back to the return route, which shows the receipt.
    parts = urlsplit(back)
    assert parts.path == f"/p/{link.id}/return/stripe"
    assert parse_qs(parts.query)["session_id"] == [session_id]
    response = await live.client.get(f"{parts.path}?{parts.query}")
    assert response.status == 200
    page = await page_of(response)
    assert "Paid" in page.title
    assert page.title.startswith("Paid")


async def test_the_return_route_records_a_paid_session_before_its_webhook(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    fake.webhook_url = None  # the webhook is late
    back = await pay_on_hosted_page(fake, session_id)
    response = await live.client.get(urlsplit(back).path + "?" + urlsplit(back).query, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/p/{link.id}?payment={session_id}"
    assert await link_status(live, link) == LinkStatus.PAID
    # The webhook that follows is the same payment.
    (_, event), = fake.events_sent
    status, answer = await post_event(live, *fake.signed(event))
    assert (status, answer["outcome"]) == (200, "duplicate")
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, session_id)]


async def test_a_processing_payment_shows_a_page_that_refreshes_itself(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    await fake.complete_session(session_id, paid=False)  # a delayed method: completed, not paid
    assert fake.events_sent[-1][0] == 200
    assert await link_status(live, link) == LinkStatus.ACTIVE
    response = await live.client.get(f"/p/{link.id}/return/stripe?session_id={session_id}")
    assert response.status == 200
    page = await page_of(response)
    assert page.h1 == "Your payment is processing"
    refresh = [m for m in page.all("meta") if m.attrs.get("http-equiv") == "refresh"]
    assert refresh and int(refresh[0].attrs["content"]) > 0
    assert not page.all("script")
    # In the customer's language, as the pay pages choose it (issue 18).
    thai = await page_of(await live.client.get(f"/p/{link.id}/return/stripe?session_id={session_id}",
                                               headers={"Accept-Language": "th-TH"}))
    assert thai.lang == "th" and thai.h1 == "การชำระเงินของคุณกำลังดำเนินการ"

    await fake.settle_async(session_id, succeeded=True)
    assert await link_status(live, link) == LinkStatus.PAID
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, session_id)]


async def test_a_failed_delayed_payment_leaves_the_link_payable(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    await fake.complete_session(session_id, paid=False)
    await fake.settle_async(session_id, succeeded=False)
    assert [status for status, _ in fake.events_sent] == [200, 200]
    assert await link_status(live, link) == LinkStatus.ACTIVE
    assert await payments(live, link) == []


async def test_the_return_route_refuses_another_links_session(live: LiveApp, fake: FakeStripe) -> None:
    link, other = await make_link(live), await make_link(live)
    session_id = await press_pay(live, link)
    fake.webhook_url = None
    await pay_on_hosted_page(fake, session_id)
    response = await live.client.get(f"/p/{other.id}/return/stripe?session_id={session_id}", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/p/{other.id}")
    assert await link_status(live, other) == LinkStatus.ACTIVE
    for query in ("", "?session_id=", "?session_id=not-a-session", "?session_id=cs_test_unknown"):
        response = await live.client.get(f"/p/{link.id}/return/stripe{query}", allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, f"/p/{link.id}")
    assert await payments(live, other) == []


# ---------------------------------------------------------------- webhooks


async def test_duplicated_replayed_stale_and_tampered_webhooks(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    fake.webhook_url = None
    await fake.complete_session(session_id)
    (_, event), = fake.events_sent
    body, headers = fake.signed(event)
    assert (await post_event(live, body, headers))[1]["outcome"] == "paid"
    assert (await post_event(live, body, headers))[1]["outcome"] == "duplicate"  # replayed as is
    # The same session under another event id (a redelivery Stripe re-created) is the same payment.
    again = {**event, "id": event["id"] + "b"}
    assert (await post_event(live, *fake.signed(again)))[1]["outcome"] == "duplicate"

    stale_body, stale_headers = fake.signed({**event, "id": "evt_stale"}, timestamp=int(time.time()) - 301)
    tampered = body.replace(b'"amount_total": 2500', b'"amount_total": 250')
    assert tampered != body
    for bad_body, bad_headers in [
        (stale_body, stale_headers),
        (tampered, headers),
        (body, {"Content-Type": "application/json"}),
        (body, {"Stripe-Signature": "t=1,v1=00"}),
        (b"not json", headers),
    ]:
        status, answer = await post_event(live, bad_body, bad_headers)
        assert (status, answer["error"]["code"]) == (400, "invalid_webhook")
        assert WHSEC not in json.dumps(answer)
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, session_id)]


async def test_concurrent_double_webhooks_make_one_payment(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    fake.webhook_url = None
    await fake.complete_session(session_id)
    (_, event), = fake.events_sent
    bodies = [fake.signed(event)] * 4 + [fake.signed({**event, "id": f"evt_other_{i}"}) for i in range(4)]
    answers = await asyncio.gather(*(post_event(live, body, headers) for body, headers in bodies))
    outcomes = sorted(answer["outcome"] for _, answer in answers)
    assert outcomes == ["duplicate"] * 7 + ["paid"]
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, session_id)]


async def test_an_amount_that_differs_from_the_link_never_pays_it(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    fake.webhook_url = None
    fake.sessions[session_id]["amount_total"] = 100
    await fake.complete_session(session_id)
    (_, event), = fake.events_sent
    status, answer = await post_event(live, *fake.signed(event))
    assert (status, answer["outcome"]) == (200, "mismatch")
    assert await link_status(live, link) == LinkStatus.ACTIVE
    assert await payments(live, link) == [(PaymentStatus.REFUND_NEEDED, session_id)]
    # Another currency, same number: no match either.
    fake.sessions[session_id].update({"amount_total": 2500, "currency": "usd", "id": session_id})
    event = fake.event("checkout.session.async_payment_succeeded", fake.sessions[session_id])
    event["data"]["object"]["id"] = "cs_test_other"
    assert (await post_event(live, *fake.signed(event)))[1]["outcome"] == "mismatch"
    assert await link_status(live, link) == LinkStatus.ACTIVE


async def test_unknown_and_unrelated_events_are_acknowledged(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    session = fake.sessions[session_id]
    for event in [
        {**fake.event("checkout.session.completed", session), "type": "customer.created"},
        fake.event("checkout.session.expired", session),
        fake.event("charge.refunded", session),
    ]:
        status, answer = await post_event(live, *fake.signed(event))
        assert (status, answer["outcome"]) == (200, "ignored")
    # A paid session of someone else's integration on the same account: not ours, not an error.
    foreign = {**session, "client_reference_id": None, "metadata": {}, "status": "complete",
               "payment_status": "paid"}
    status, answer = await post_event(live, *fake.signed(fake.event("checkout.session.completed", foreign)))
    assert (status, answer["outcome"]) == (200, "ignored")
    assert await link_status(live, link) == LinkStatus.ACTIVE


# ---------------------------------------------------------------- outages


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_an_outage_on_pay_shows_a_calm_try_again_page(live: LiveApp, fake: FakeStripe, status: int,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    link = await make_link(live)
    fake.fail("sessions.create", status=status)
    with caplog.at_level(logging.WARNING, logger="paylinks.web.pages"):
        response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert response.status in (502, 503)
    page = await page_of(response)
    assert "try again" in page.text().lower()
    assert "Traceback" not in page.html and KEY not in page.html
    assert any("request_id=req_" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert KEY not in caplog.text
    # Once Stripe is back, the next press works.
    assert (await press_pay(live, link)).startswith("cs_test_")


async def test_a_stripe_timeout_on_pay_shows_the_try_again_page(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    provider = live.services.provider
    assert isinstance(provider, StripeProvider)
    await provider.close()
    provider.timeout_s = 0.5
    fake.stall("sessions.create", 2)
    response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert response.status in (502, 503)
    assert "try again" in (await page_of(response)).text().lower()


async def test_an_outage_on_return_shows_a_page_that_tries_again(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    fake.fail("sessions.retrieve", status=502)
    response = await live.client.get(f"/p/{link.id}/return/stripe?session_id={session_id}")
    assert response.status == 503
    page = await page_of(response)
    assert any(m.attrs.get("http-equiv") == "refresh" for m in page.all("meta"))


# ---------------------------------------------------------------- cancel and expiry


async def test_cancelling_the_link_expires_its_open_sessions(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    first = await press_pay(live, link)
    second = await press_pay(live, link)
    assert first != second
    fake.webhook_url = None  # Stripe's checkout.session.expired events are read below
    await live.services.links.cancel(link.id, link.merchant_id)
    assert sorted(c.path for c in fake.calls_of("sessions.expire")) == sorted(
        f"/v1/checkout/sessions/{s}/expire" for s in (first, second))
    assert {fake.sessions[s]["status"] for s in (first, second)} == {"expired"}
    assert await live.services.links.open_checkouts(link.id) == []

    # A payment that still lands (the customer was already paying) is recorded as refund-needed.
    fake.sessions[first]["status"] = "open"
    await fake.complete_session(first)
    (_, event) = fake.events_sent[-1]
    status, answer = await post_event(live, *fake.signed(event))
    assert (status, answer["outcome"]) == (200, "refund_needed")
    assert await link_status(live, link) == LinkStatus.CANCELLED
    assert await payments(live, link) == [(PaymentStatus.REFUND_NEEDED, first)]


async def test_expiry_expires_open_sessions_and_tolerates_finished_ones(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    done = await press_pay(live, link)
    fake.sessions[done]["status"] = "expired"  # ended at Stripe already: nothing to expire
    await make_overdue(live.services, link.id, live.services.clock() - timedelta(minutes=1))
    assert await live.services.links.expire_due() == 1
    assert fake.sessions[session_id]["status"] == "expired"
    assert await live.services.links.open_checkouts(link.id) == []


async def test_a_cancel_succeeds_while_stripe_is_down(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    session_id = await press_pay(live, link)
    fake.fail("sessions.expire", status=500)
    cancelled = await live.services.links.cancel(link.id, link.merchant_id)
    assert cancelled.status == LinkStatus.CANCELLED
    # Left open for a later try (Stripe's own expiry ends it at the latest).
    assert [c.provider_ref for c in await live.services.links.open_checkouts(link.id)] == [session_id]


# ---------------------------------------------------------------- links Stripe cannot charge


async def test_links_stripe_cannot_charge_are_refused_when_made(live: LiveApp) -> None:
    merchant = await live.services.merchants.create("Oil Shop", currency="KWD", locale="en_SG")
    for money, field, words in [
        (Money(5124, "KWD"), "amount", "5.120"),  # three decimals: the last must be 0
        (Money(2500, "IRR"), "currency", "for example"),  # not a Stripe currency
        (Money(100_000_000, "USD"), "amount", "Stripe cannot charge more"),  # 1,000,000.00: nine digits
    ]:
        with pytest.raises(LinkError) as caught:
            await live.services.links.create(LinkDraft(merchant_id=merchant.id, money=money, description="oil"))
        assert (caught.value.code, caught.value.field) == ("not_chargeable", field)
        assert words in caught.value.message
    link, created = await live.services.links.create(LinkDraft(merchant_id=merchant.id, money=Money(5120, "KWD"),
                                                               description="oil"))
    assert created and link.amount_minor == 5120


async def test_the_api_refuses_a_link_stripe_cannot_charge_naming_the_field(live: LiveApp) -> None:
    shop = await make_shop(live, currency="KWD")
    response = await shop.api.create({"amount": "5.124", "currency": "KWD", "description": "oil"})
    assert response.status == 400
    assert (response.error["code"], response.error["field"]) == ("not_chargeable", "amount")
    assert "5.120" in response.error["message"]
    ok = await shop.api.create({"amount": "5.120", "currency": "KWD", "description": "oil"})
    assert ok.status == 201, ok.text


# ---------------------------------------------------------------- reconciliation (missed webhooks)


async def _make_due(live: LiveApp, link: PaymentLink) -> None:
    from sqlalchemy import update

    from core.links import CHECKOUTS

    async with live.services.db.write() as conn:
        await conn.execute(update(CHECKOUTS).where(CHECKOUTS.c.link_id == link.id)
                           .values(next_check_at=live.services.clock() - timedelta(seconds=1)))


async def test_a_missed_webhook_is_reconciled_once(live: LiveApp, fake: FakeStripe) -> None:
    from bots.jobs import sweep

    link = await make_link(live)
    session_id = await press_pay(live, link)
    fake.webhook_url = None  # the webhook never arrives
    await pay_on_hosted_page(fake, session_id)
    await sweep(live.services)
    assert fake.calls_of("sessions.retrieve") == [], "not due before reconcile_after"
    assert await link_status(live, link) == LinkStatus.ACTIVE

    await _make_due(live, link)
    await sweep(live.services)
    assert await link_status(live, link) == LinkStatus.PAID
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, session_id)]
    async with live.services.db.read() as conn:
        alerts = (await conn.execute(select(table(OutboxMessage).c.kind)
                                     .where(table(OutboxMessage).c.link_id == link.id))).all()
    # The late webhook is a duplicate, and a second sweep records nothing more.
    (_, event), = fake.events_sent
    assert (await post_event(live, *fake.signed(event)))[1]["outcome"] == "duplicate"
    await _make_due(live, link)
    await sweep(live.services)
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, session_id)]
    async with live.services.db.read() as conn:
        again = (await conn.execute(select(table(OutboxMessage).c.kind)
                                    .where(table(OutboxMessage).c.link_id == link.id))).all()
    assert alerts and len(again) == len(alerts), "alerts once"


async def test_an_unpaid_checkout_is_asked_again_later_with_backoff(live: LiveApp, fake: FakeStripe) -> None:
    from bots.jobs import sweep

    link = await make_link(live)
    await press_pay(live, link)
    fake.fail("sessions.retrieve", status=500)  # a failing round is retried later, not fatal
    waits = []
    for _ in range(3):
        await _make_due(live, link)
        await sweep(live.services)
        (checkout,) = await live.services.links.open_checkouts(link.id)
        assert checkout.next_check_at is not None
        waits.append(checkout.next_check_at - live.services.clock())
    assert len(fake.calls_of("sessions.retrieve")) == 3
    assert waits[0] < waits[1] < waits[2]
    assert await link_status(live, link) == LinkStatus.ACTIVE


async def test_the_chat_refuses_a_link_stripe_cannot_charge_with_an_example(live: LiveApp) -> None:
    from tests.chat_support import ChatDriver
    from tests.clock import FakeClock

    chat = ChatDriver(live.services, FakeClock())
    merchant = await live.services.merchants.create("Oil Shop", currency="KWD", locale="en_SG")
    await chat.conversation.members.ensure_member(merchant.id, chat.message(""))
    answer = await chat.text("/charge 5.124 KWD oil")
    assert "5.120" in answer and "5.130" in answer, answer
    assert "Stripe" in answer
    links, _ = await live.services.links.list_links(merchant.id)
    assert links == []


async def test_an_expired_links_sessions_are_no_longer_reconciled(live: LiveApp, fake: FakeStripe) -> None:
    from bots.jobs import sweep

    link = await make_link(live)
    session_id = await press_pay(live, link)
    await make_overdue(live.services, link.id, live.services.clock() - timedelta(minutes=1))
    await _make_due(live, link)
    await sweep(live.services)  # the sweeper expires the link (and its session) before reconciling
    assert fake.sessions[session_id]["status"] == "expired"
    await _make_due(live, link)
    await sweep(live.services)
    assert fake.calls_of("sessions.retrieve") == [], "an expired link's checkouts are not asked about"


# ---------------------------------------------------------------- point 7: reordered, paid twice at once


async def test_reordered_events_make_one_payment(live: LiveApp, fake: FakeStripe) -> None:
    """A delayed method: "succeeded" arrives before the "completed (unpaid)" that preceded it, then "expired"."""
    link = await make_link(live)
    session_id = await press_pay(live, link)
    fake.webhook_url = None
    await fake.complete_session(session_id, paid=False)
    await fake.settle_async(session_id, succeeded=True)
    (_, completed), (_, succeeded) = fake.events_sent
    assert (await post_event(live, *fake.signed(succeeded)))[1]["outcome"] == "paid"
    assert (await post_event(live, *fake.signed(completed)))[1]["outcome"] == "ignored"  # unpaid: changes nothing
    expired = fake.event("checkout.session.expired", {**fake.sessions[session_id], "status": "expired"})
    assert (await post_event(live, *fake.signed(expired)))[1]["outcome"] == "ignored"
    assert await link_status(live, link) == LinkStatus.PAID
    assert await payments(live, link) == [(PaymentStatus.SUCCEEDED, session_id)]


async def test_a_single_use_link_paid_twice_at_once_keeps_one_and_refunds_the_other(
        live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    first, second = await press_pay(live, link), await press_pay(live, link)  # two tabs, two sessions
    fake.webhook_url = None
    await fake.complete_session(first)
    await fake.complete_session(second)
    bodies = [fake.signed(event) for _, event in fake.events_sent]
    answers = await asyncio.gather(*(post_event(live, body, headers) for body, headers in bodies * 2))
    assert sorted(answer["outcome"] for _, answer in answers) == ["duplicate", "duplicate", "paid", "refund_needed"]
    assert await link_status(live, link) == LinkStatus.PAID
    assert sorted(status for status, _ in await payments(live, link)) == [PaymentStatus.REFUND_NEEDED,
                                                                          PaymentStatus.SUCCEEDED]


async def test_the_pay_pages_csp_lets_pay_go_to_stripe_checkout(live: LiveApp, fake: FakeStripe) -> None:
    """Browsers check CSP form-action on the Pay form's 303: Stripe's hosted page must be allowed."""
    link = await make_link(live)
    response = await live.client.get(f"/p/{link.id}")
    csp = response.headers["Content-Security-Policy"]
    (form_action,) = [part.split()[1:] for part in csp.split("; ") if part.startswith("form-action")]
    stripe = ["'self'", live.base_url, "https://checkout.stripe.com", fake.url]
    assert form_action[:len(stripe)] == stripe
    # Beside them only PortOne's, which a shop with its own PortOne account pays through (point 1).
    assert form_action[len(stripe):] == ["https://checkout.portone.cloud", "https://stage-checkout.portone.cloud",
                                         "https://api.portone.cloud"]
