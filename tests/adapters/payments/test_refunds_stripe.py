"""Refunds, disputes and failed payments with Stripe (issue 13 points 2 and 7): the real `stripe` SDK against
FakeStripe, its signed `refund.updated` / `charge.refunded` / `charge.dispute.created` webhooks, the app served
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.models import LinkStatus, OutboxMessage, PaymentLink, PaymentStatus, RefundStatus
from core.ports import MessageRef
from core.refunds import RefundRequest
from core.sql import table
from tests.adapters.payments.test_stripe_plugin import KEY, WEBHOOK, WHSEC, make_link, pay_on_hosted_page, press_pay
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.stripe import FakeStripe

OUTBOX = table(OutboxMessage)


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    server = await FakeStripe(secret_keys=(KEY,), webhook_secret=WHSEC).start()
    yield server
    await server.close()


@pytest.fixture
async def live(database_url: str, fake: FakeStripe) -> AsyncIterator[LiveApp]:
    from bots.config import Secret

    settings = make_settings(database_url, limits__bad_auth_per_ip="1000/min", payments__auto_refund_duplicates=True)
    settings.payments.provider = "stripe"
    settings.payments.stripe.secret_key = Secret(KEY)
    settings.payments.stripe.webhook_secret = Secret(WHSEC)
    settings.payments.stripe.api_base_url = fake.url
    app, client = await start_live_app(settings, run_jobs=False)
    fake.webhook_url = app.base_url + WEBHOOK
    yield app
    await client.close()


async def paid(live: LiveApp, fake: FakeStripe) -> tuple[PaymentLink, str]:
    link = await make_link(live)
    await live.services.links.attach_message(link.id, MessageRef("console", "alice", "1"))
    session_id = await press_pay(live, link)
    await pay_on_hosted_page(fake, session_id)
    assert (await live.services.links.get(link.id)).status == LinkStatus.PAID  # type: ignore[union-attr]
    return link, session_id


async def alerts(live: LiveApp, link_id: str) -> list[str]:
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(OUTBOX.c.kind, OUTBOX.c.payload).where(OUTBOX.c.link_id == link_id)
                                   .order_by(OUTBOX.c.id))).all()
    return [f"{r.kind}: {r.payload['reply']['text']}" for r in rows]


async def ask(live: LiveApp, link: PaymentLink, amount_minor: int | None = None, **kw: Any) -> Any:
    refund, _ = await live.services.refunds.request(RefundRequest(link.id, link.merchant_id, amount_minor, **kw))
    return refund


async def test_a_refund_is_created_on_the_payment_intent_and_confirmed_by_webhooks(live: LiveApp,
                                                                                   fake: FakeStripe) -> None:
    link, session_id = await paid(live, fake)
    refund = await ask(live, link, 1000, reason="one slice missing")
    assert refund.status == RefundStatus.PENDING and refund.provider_ref.startswith("re_")
    (call,) = fake.calls_of("refunds.create")
    assert call.params["payment_intent"] == fake.sessions[session_id]["payment_intent"]
    assert (call.params["amount"], call.params["metadata"]["paylinks_refund"]) == ("1000", refund.id)
    assert call.headers["Idempotency-Key"] == f"paylinks-refund-{refund.id}"
    (payment,) = await live.services.links.payments_for(link.id)
    assert payment.amount_refunded_minor == 0  # Stripe said pending: nothing returned yet
    await fake.drain()
    sent = [e["type"] for _, e in fake.events_sent]
    assert sent[-2:] == ["refund.updated", "charge.refunded"]
    assert all(status == 200 for status, _ in fake.events_sent)
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.amount_refunded_minor, payment.status) == (1000, PaymentStatus.PARTIALLY_REFUNDED)
    stored = await live.services.refunds.get(refund.id)
    assert stored is not None and stored.status == RefundStatus.SUCCEEDED
    rest = await ask(live, link)
    assert rest.amount_minor == 1500
    await fake.drain()
    assert (await live.services.links.get(link.id)).status == LinkStatus.REFUNDED  # type: ignore[union-attr]
    assert any(t.startswith("refund.succeeded.alert: ↩️ Refunded **S$15.00** to Jenny Rosen")
               for t in await alerts(live, link.id))
    assert any(t.startswith("refund.succeeded.edit: ↩️ Refunded") for t in await alerts(live, link.id))


async def test_a_refund_stripe_later_fails_is_failed_with_its_reason(live: LiveApp, fake: FakeStripe) -> None:
    link, _ = await paid(live, fake)
    fake.refund_outcome = "failed"
    refund = await ask(live, link)
    await fake.drain()
    stored = await live.services.refunds.get(refund.id)
    assert stored is not None
    assert (stored.status, stored.failure_reason) == (RefundStatus.FAILED, "expired_or_canceled_card")
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.amount_refunded_minor, payment.status) == (0, PaymentStatus.SUCCEEDED)
    assert any("Refund of **S$25.00** to Jenny Rosen failed" in t and "expired_or_canceled_card" in t
               for t in await alerts(live, link.id))
    # The money is refundable again.
    assert (await live.services.refunds.refundable(link.id))[0].refundable_minor == 2500


async def test_a_refund_stripe_refuses_is_failed_at_once(live: LiveApp, fake: FakeStripe) -> None:
    link, _ = await paid(live, fake)
    fake.fail("refunds.create", status=400)
    refund = await ask(live, link)
    assert refund.status == RefundStatus.FAILED and "Stripe refused the request" in (refund.failure_reason or "")



async def test_a_refund_stripe_could_not_take_stays_reserved_and_is_asked_again(live: LiveApp,
                                                                              fake: FakeStripe) -> None:
    link, _ = await paid(live, fake)
    fake.fail("refunds.create", status=503)
    down = await ask(live, link)
    # Unknown whether Stripe made it: still pending, the money reserved, never asked under a new key.
    assert down.status == RefundStatus.PENDING and "could not be reached" in (down.failure_reason or "")
    assert await live.services.refunds.refundable(link.id) == []
    assert await live.services.refunds.retry_unsent() == 0  # not yet due
    later = live.services.clock() + timedelta(minutes=2)
    assert await live.services.refunds.retry_unsent(now=later) == 1
    first, second = fake.calls_of("refunds.create")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == f"paylinks-refund-{down.id}"
    await fake.drain()
    stored = await live.services.refunds.get(down.id)
    assert stored is not None and stored.status == RefundStatus.SUCCEEDED
    assert (await live.services.links.get(link.id)).status == LinkStatus.REFUNDED  # type: ignore[union-attr]


async def test_a_forged_refund_webhook_is_refused(live: LiveApp, fake: FakeStripe) -> None:
    link, _ = await paid(live, fake)
    fake.webhook_url = None  # Stripe's own events are held back: only the forged one arrives
    refund = await ask(live, link)
    await fake.drain()
    event = fake.object_event("refund.updated", {**fake.refunds[refund.provider_ref], "status": "succeeded"},
                              livemode=False)
    body, headers = fake.signed(event)
    headers["Stripe-Signature"] = headers["Stripe-Signature"].replace("v1=", "v1=0")
    response = await live.client.post(WEBHOOK, data=body, headers=headers)
    assert response.status == 400
    stored = await live.services.refunds.get(refund.id)
    assert stored is not None and stored.status == RefundStatus.PENDING
    # Correctly signed, it is believed.
    response = await live.client.post(WEBHOOK, data=body, headers=fake.signed(event)[1])
    assert (response.status, (await response.json())["outcome"]) == (200, "recorded")
    stored = await live.services.refunds.get(refund.id)
    assert stored is not None and stored.status == RefundStatus.SUCCEEDED


async def test_a_dispute_reaches_the_seller_with_what_to_do(live: LiveApp, fake: FakeStripe) -> None:
    link, session_id = await paid(live, fake)
    await fake.dispute(session_id, reason="fraudulent")
    assert fake.events_sent[-1][0] == 200
    texts = await alerts(live, link.id)
    assert any(t.startswith("dispute.created.alert: ⚠️ Disputed: **S$25.00** — Chocolate cake (fraudulent)")
               and "stripe dashboard" in t for t in texts)
    shop_key = (await live.services.merchants.create_api_key(link.merchant_id, test=True))[1]
    response = await live.client.get(f"/api/v1/links/{link.id}/events",
                                     headers={"Authorization": f"Bearer {shop_key}"})
    types = [e["type"] for e in (await response.json())["data"]]
    assert "dispute.created" in types


async def test_a_delayed_payment_that_fails_after_checkout_alerts_the_seller(live: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live)
    await live.services.links.attach_message(link.id, MessageRef("console", "alice", "1"))
    session_id = await press_pay(live, link)
    await fake.complete_session(session_id, paid=False)
    await fake.settle_async(session_id, succeeded=False)
    assert fake.events_sent[-1][0] == 200
    texts = await alerts(live, link.id)
    assert any(t.startswith("payment.failed.alert: ⚠️ Payment failed: **S$25.00** — Chocolate cake")
               and "the link is still open" in t for t in texts)
    assert (await live.services.links.get(link.id)).status == LinkStatus.ACTIVE  # type: ignore[union-attr]
