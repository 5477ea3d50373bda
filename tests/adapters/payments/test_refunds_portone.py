"""Refunds with PortOne (issue 13 point 2): POST /api/refund/{order_ref} against FakePortOne (body checked
against the vendored refund spec, JWT and client key checked), full or partial; its refund webhook carries no
signature, so the refund's state is read back from PortOne's refund list before it is believed. Both back ends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.models import LinkStatus, PaymentLink, PaymentStatus, RefundStatus
from core.refunds import RefundRequest
from tests.adapters.payments.test_portone_plugin import CLIENT_KEY, SECRET, WEBHOOK, make_link, press_pay
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.portone import FakePortOne, spec_errors

# docs.portone.cloud "Refund Webhook" sample (tests/fakes/portone_spec/NOTICE.md).
SAMPLE = json.loads((Path(__file__).parents[2] / "fakes" / "portone_spec" / "refund_webhook_sample.json").read_text())


@pytest.fixture
async def fake() -> AsyncIterator[FakePortOne]:
    server = await FakePortOne(client_key=CLIENT_KEY, secret_key=SECRET).start()
    yield server
    await server.close()


@pytest.fixture
async def live(database_url: str, fake: FakePortOne) -> AsyncIterator[LiveApp]:
    from bots.config import Secret

    settings = make_settings(database_url, limits__bad_auth_per_ip="1000/min")
    settings.payments.provider = "portone"
    section = settings.payments.portone
    section.client_key = CLIENT_KEY
    section.secret_key = Secret(SECRET)
    section.country_code = "TH"
    section.api_base_url = fake.url
    app, client = await start_live_app(settings, run_jobs=False)
    fake.webhook_url = fake.payment_webhook_url = fake.refund_webhook_url = app.base_url + WEBHOOK
    yield app
    await client.close()


async def paid(live: LiveApp, fake: FakePortOne) -> tuple[PaymentLink, str]:
    link = await make_link(live)
    ref = await press_pay(live, fake, link)
    await fake.settle(ref)
    assert (await live.services.links.get(link.id)).status == LinkStatus.PAID  # type: ignore[union-attr]
    return link, ref


async def ask(live: LiveApp, link: PaymentLink, amount_minor: int | None = None) -> Any:
    refund, _ = await live.services.refunds.request(RefundRequest(link.id, link.merchant_id, amount_minor,
                                                                  reason="customer cancelled"))
    return refund


async def test_a_partial_then_full_refund_confirmed_through_the_refund_list(live: LiveApp,
                                                                           fake: FakePortOne) -> None:
    link, ref = await paid(live, fake)
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.payment_ref, payment.channel) == (fake.links[ref].order_ref, "GBPRIMEPAY")
    first = await ask(live, link, 100000)  # THB 1,000.00 of 2,500.00
    assert first.status == RefundStatus.PENDING and first.provider_ref.startswith("rf_")
    (call,) = fake.calls_of("refund")
    assert fake.rejected == [] and spec_errors(
        "urn:portone:refund#/paths/~1api~1refund~1{portone_order_ref}/post/requestBody/content/"
        "application~1json/schema", json.loads(json.dumps(call.body, default=float))) == []
    assert call.path == f"/api/refund/{fake.links[ref].order_ref}"
    assert (call.body["refund_type"], call.body["amount"], call.body["channel"]) == ("partial", Decimal(1000),
                                                                                     "GBPRIMEPAY")
    assert first.id in call.body["description"]
    await fake.drain()  # the unsigned refund webhook came; paylinks asked PortOne's refund list
    assert [c.kind for c in fake.calls][-1] == "refunds"
    stored = await live.services.refunds.get(first.id)
    assert stored is not None and stored.status == RefundStatus.SUCCEEDED
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.amount_refunded_minor, payment.status) == (100000, PaymentStatus.PARTIALLY_REFUNDED)
    rest = await ask(live, link)
    assert fake.calls_of("refund")[-1].body["refund_type"] == "partial"  # part was refunded before
    await fake.drain()
    stored = await live.services.refunds.get(rest.id)
    assert stored is not None and (stored.status, stored.amount_minor) == (RefundStatus.SUCCEEDED, 150000)
    assert (await live.services.links.get(link.id)).status == LinkStatus.REFUNDED  # type: ignore[union-attr]


async def test_a_refund_webhook_that_beats_portones_answer_still_settles_the_refund(
        live: LiveApp, fake: FakePortOne) -> None:
    """PortOne's webhook may arrive before its answer to the refund call is stored (the refund's PortOne id
    is not known yet): the refund list's description names our refund, so the webhook is not lost."""
    link, _ = await paid(live, fake)
    fake.refund_webhook_first = True
    refund = await ask(live, link, 100000)
    status, body = fake.webhooks_sent[-1]  # sent, and answered, before the refund call was
    assert status == 200 and body["refund_status"] == "SUCCESS"
    stored = await live.services.refunds.get(refund.id)
    assert stored is not None and stored.status == RefundStatus.SUCCEEDED and stored.provider_ref
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.amount_refunded_minor, payment.status) == (100000, PaymentStatus.PARTIALLY_REFUNDED)


async def test_a_full_refund_is_full_and_a_synchronous_success_counts(live: LiveApp, fake: FakePortOne) -> None:
    link, _ = await paid(live, fake)
    fake.refund_initial = "SUCCESS"
    refund = await ask(live, link)
    assert fake.calls_of("refund")[-1].body["refund_type"] == "full"
    assert refund.status == RefundStatus.SUCCEEDED
    assert (await live.services.links.get(link.id)).status == LinkStatus.REFUNDED  # type: ignore[union-attr]


async def test_an_unsigned_refund_webhook_is_not_believed_without_portone(live: LiveApp, fake: FakePortOne) -> None:
    link, ref = await paid(live, fake)
    fake.refund_webhook_url = None  # PortOne's own webhook is held back
    refund = await ask(live, link)
    await fake.drain()
    forged = {**SAMPLE, "refund_id": refund.provider_ref, "payment_txn_ref": fake.links[ref].order_ref,
              "refund_status": "SUCCESS"}
    # PortOne's list still says PENDING: the webhook's word is not taken.
    fake.links[ref].refunds[-1]["refund_status"] = "PENDING"
    response = await live.client.post(WEBHOOK, data=json.dumps(forged), headers={"Content-Type": "application/json"})
    assert (response.status, (await response.json())["outcome"]) == (200, "ignored")
    stored = await live.services.refunds.get(refund.id)
    assert stored is not None and stored.status == RefundStatus.PENDING
    # A refund PortOne does not list at all is refused.
    unknown = {**forged, "refund_id": "rf_not_listed"}
    response = await live.client.post(WEBHOOK, data=json.dumps(unknown), headers={"Content-Type": "application/json"})
    assert response.status == 400
    # PortOne fails it: the webhook (same words as the sample) is confirmed and the refund is failed.
    fake.links[ref].refunds[-1]["refund_status"] = "FAILED"
    fake.refund_webhook_url = live.base_url + WEBHOOK
    status = await fake.send_refund_webhook(fake.links[ref], fake.links[ref].refunds[-1])
    assert status == 200
    stored = await live.services.refunds.get(refund.id)
    assert stored is not None and stored.status == RefundStatus.FAILED
    (payment,) = await live.services.links.payments_for(link.id)
    assert payment.amount_refunded_minor == 0


async def test_a_refund_portone_refuses_is_failed_with_its_reason(live: LiveApp, fake: FakePortOne) -> None:
    link, _ = await paid(live, fake)
    fake.fail("refund", status=401)
    refund = await ask(live, link)
    assert refund.status == RefundStatus.FAILED and refund.failure_reason
    assert (await live.services.refunds.refundable(link.id))[0].refundable_minor == 250000


async def test_a_payment_portone_reports_failed_alerts_the_seller(live: LiveApp, fake: FakePortOne) -> None:
    from sqlalchemy import select

    from core.models import OutboxMessage
    from core.ports import MessageRef
    from core.sql import table

    link = await make_link(live)
    await live.services.links.attach_message(link.id, MessageRef("console", "alice", "1"))
    ref = await press_pay(live, fake, link)
    assert await fake.settle(ref, paid=False) == "Failed"
    outbox = table(OutboxMessage)
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(outbox.c.kind, outbox.c.payload)
                                   .where(outbox.c.link_id == link.id))).all()
    texts = [f"{r.kind}: {r.payload['reply']['text']}" for r in rows]
    assert any(t.startswith("payment.failed.alert: ⚠️ Payment failed: **THB 2,500.00**") and "still open" in t
               for t in texts), texts
    assert (await live.services.links.get(link.id)).status == LinkStatus.ACTIVE  # type: ignore[union-attr]
