"""Refunds with the sandbox provider (issue 13 points 1, 2, 3, 5, 6, 8), on SQLite and PostgreSQL.

The app is served for real: the sandbox answers a refund "pending", then posts its signed `refund.succeeded`
webhook to /webhooks/sandbox over HTTP, which is what moves the money back (never before it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select, update

from adapters.payments.sandbox.provider import SandboxProvider
from bots.app import PAGES
from bots.config import Settings
from core.models import AuditEvent, OutboxMessage, OutboxStatus, PaymentLink, PaymentStatus, RefundStatus
from core.ports import PaymentEvent, RefundAnswer, RefundRefused, RefundState
from core.refunds import RefundRequest, payment_status_after
from core.sql import table
from tests.adapters.web.api_support import Shop, make_shop
from tests.adapters.web.pages_support import make_link, signed, webhook_body
from tests.conftest import LiveApp, make_settings, start_live_app

OUTBOX = table(OutboxMessage)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, limits__bad_auth_per_ip="1000/min", payments__auto_refund_duplicates=True)


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveApp]:
    app, client = await start_live_app(settings, run_jobs=False)
    yield app
    await client.close()


def sandbox(live: LiveApp) -> SandboxProvider:
    provider = live.services.provider
    assert isinstance(provider, SandboxProvider)
    return provider


async def paid_link(live: LiveApp, shop: Shop, minor: int = 2500, n: int = 1) -> PaymentLink:
    link = await make_link(live.services, minor=minor, merchant_id=shop.merchant_id)
    await live.services.links.attach_message(link.id, _ref("shop-chat"))  # where the seller hears of it
    await pay(live, link, n)
    return link


async def pay(live: LiveApp, link: PaymentLink, n: int) -> dict[str, Any]:
    body = webhook_body(link, n)
    response = await live.client.post("/webhooks/sandbox", data=body, headers=signed(body))
    assert response.status == 200
    answer: dict[str, Any] = await response.json()
    return answer


async def refund(shop: Shop, link_id: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
    return await shop.api.post(f"/api/v1/links/{link_id}/refund", json_body=body or {}, **kw)


async def alerts(live: LiveApp, link_id: str) -> list[str]:
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(OUTBOX.c.kind, OUTBOX.c.payload).where(OUTBOX.c.link_id == link_id)
                                   .order_by(OUTBOX.c.id))).all()
    return [f"{r.kind}: {r.payload['reply']['text']}" for r in rows]


# ---------------------------------------------------------------- the whole life, through the API


async def test_full_refund_is_pending_until_the_sandbox_webhook_then_the_link_is_refunded(live: LiveApp) -> None:
    shop = await make_shop(live)
    link = await paid_link(live, shop)
    answer = await refund(shop, link.id, {"reason": "cake was late"})
    assert answer.status == 201, answer.text
    body = answer.body
    assert (body["amount"], body["amount_minor"], body["currency"], body["status"], body["reason"]) == (
        "25.00", 2500, "SGD", "pending", "cake was late")
    # Reserved, not returned: nothing counts as refunded before the provider says so.
    got = (await shop.api.get(f"/api/v1/links/{link.id}")).body
    if got["payments"][0]["refunds"][0]["status"] == "pending":
        assert (got["status"], got["amount_refunded_minor"]) == ("paid", 0)
    await sandbox(live).drain()
    got = (await shop.api.get(f"/api/v1/links/{link.id}")).body
    assert (got["status"], got["amount_refunded"], got["amount_refunded_minor"]) == ("refunded", "25.00", 2500)
    (payment,) = got["payments"]
    assert (payment["status"], payment["amount_refunded_minor"], payment["payer_name"]) == ("refunded", 2500, "Ann Tan")
    assert [(r["id"], r["status"]) for r in payment["refunds"]] == [(body["id"], "succeeded")]
    # Nothing left: a second refund is refused with 409 not_refundable.
    again = await refund(shop, link.id)
    assert (again.status, again.error["code"]) == (409, "not_refundable")


async def test_partial_refunds_add_up_and_never_exceed_the_payment(live: LiveApp) -> None:
    shop = await make_shop(live)
    link = await paid_link(live, shop)
    first = await refund(shop, link.id, {"amount": "10.00"})
    assert (first.status, first.body["amount_minor"]) == (201, 1000)
    too_much = await refund(shop, link.id, {"amount": "15.01"})
    assert (too_much.status, too_much.error["code"], too_much.error["field"]) == (400, "amount_too_large", "amount")
    decimals = await refund(shop, link.id, {"amount": "1.005"})
    assert (decimals.status, decimals.error["code"], decimals.error["field"]) == (400, "invalid_amount", "amount")
    zero = await refund(shop, link.id, {"amount": "0"})
    assert (zero.status, zero.error["field"]) == (400, "amount")
    rest = await refund(shop, link.id)  # default: all that is left
    assert (rest.status, rest.body["amount"]) == (201, "15.00")
    await sandbox(live).drain()
    got = (await shop.api.get(f"/api/v1/links/{link.id}")).body
    assert (got["status"], got["amount_refunded_minor"]) == ("refunded", 2500)
    assert [r["amount_minor"] for r in got["payments"][0]["refunds"]] == [1000, 1500]


async def test_refund_errors_name_the_field(live: LiveApp) -> None:
    shop = await make_shop(live)
    unpaid = await make_link(live.services, merchant_id=shop.merchant_id)
    answer = await refund(shop, unpaid.id)
    assert (answer.status, answer.error["code"]) == (409, "not_refundable")
    missing = await refund(shop, "a" * 28)
    assert (missing.status, missing.error["code"]) == (404, "not_found")
    unknown = await refund(shop, unpaid.id, {"amount": "1.00", "tip": "x"})
    assert (unknown.status, unknown.error["code"], unknown.error["field"]) == (400, "unknown_field", "tip")
    bad_payment = await refund(shop, unpaid.id, {"payment_id": "pay_nope"})
    assert (bad_payment.status, bad_payment.error["field"]) == (400, "payment_id")
    number = await refund(shop, unpaid.id, {"amount": 10})
    assert (number.status, number.error["field"]) == (400, "amount")


async def test_idempotency_key_replays_the_first_refund_and_refuses_another_body(live: LiveApp) -> None:
    shop = await make_shop(live)
    link = await paid_link(live, shop)
    headers = {"Idempotency-Key": "refund-1"}
    first = await refund(shop, link.id, {"amount": "5.00"}, headers=headers)
    again = await refund(shop, link.id, {"amount": "5.00"}, headers=headers)
    assert (first.status, again.status) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true" and again.body["id"] == first.body["id"]
    other = await refund(shop, link.id, {"amount": "6.00"}, headers=headers)
    assert (other.status, other.error["code"], other.error["field"]) == (409, "idempotency_conflict",
                                                                          "Idempotency-Key")
    await sandbox(live).drain()
    got = (await shop.api.get(f"/api/v1/links/{link.id}")).body
    assert got["amount_refunded_minor"] == 500


async def test_ten_refund_requests_at_once_never_refund_more_than_was_paid(live: LiveApp) -> None:
    shop = await make_shop(live)
    link = await paid_link(live, shop)
    # Ten with one key: one refund. Ten with their own keys for 10.00 each of 25.00: two at most.
    same = await asyncio.gather(*(refund(shop, link.id, {"amount": "3.00"}, headers={"Idempotency-Key": "same"})
                                  for _ in range(10)))
    assert sorted(r.status for r in same) == [200] * 9 + [201]
    assert len({r.body["id"] for r in same}) == 1
    different = await asyncio.gather(*(refund(shop, link.id, {"amount": "10.00"},
                                              headers={"Idempotency-Key": f"k{n}"}) for n in range(10)))
    made = [r for r in different if r.status == 201]
    assert len(made) == 2
    assert all((r.status, r.error["code"]) == (400, "amount_too_large") for r in different if r.status != 201)
    await sandbox(live).drain()
    got = (await shop.api.get(f"/api/v1/links/{link.id}")).body
    refunded = [r for r in got["payments"][0]["refunds"] if r["status"] == "succeeded"]
    assert sum(r["amount_minor"] for r in refunded) == got["amount_refunded_minor"] == 2300 <= 2500
    assert got["status"] == "paid"  # 2.00 is still the shop's


async def test_ten_full_refunds_at_once_make_exactly_one(live: LiveApp) -> None:
    shop = await make_shop(live)
    link = await paid_link(live, shop)
    answers = await asyncio.gather(*(refund(shop, link.id, headers={"Idempotency-Key": f"full-{n}"})
                                     for n in range(10)))
    assert sorted(r.status for r in answers) == [201] + [409] * 9
    await sandbox(live).drain()
    got = (await shop.api.get(f"/api/v1/links/{link.id}")).body
    assert (got["status"], got["amount_refunded_minor"]) == ("refunded", 2500)


# ---------------------------------------------------------------- the provider's word


async def test_money_is_never_returned_before_the_provider_says_so_and_a_refusal_is_failed(live: LiveApp) -> None:
    class Slow:
        name = "sandbox"
        test_mode = True

        def __init__(self) -> None:
            self.refuse = False

        async def refund(self, payment: Any, amount_minor: int, idempotency_key: str, *,
                         reason: str | None = None) -> RefundAnswer:
            if self.refuse:
                raise RefundRefused("card account closed")
            return RefundAnswer(provider_ref=f"prov-{idempotency_key}", state=RefundState.PENDING)

    shop = await make_shop(live)
    link = await paid_link(live, shop)
    slow = Slow()
    refunds = live.services.refunds
    refunds.provider = slow  # type: ignore[assignment]
    refunds.providers = None
    pending, _ = await refunds.request(RefundRequest(link.id, shop.merchant_id, amount_minor=1000))
    (payment,) = await live.services.links.payments_for(link.id)
    assert (pending.status, payment.amount_refunded_minor, payment.status) == (RefundStatus.PENDING, 0,
                                                                               PaymentStatus.SUCCEEDED)
    receipt = await (await live.client.get(f"/p/{link.id}?payment=ch_1")).text()
    assert "Payment received" in receipt and "A refund of S$10.00 is on its way." in receipt
    # The provider's webhook says succeeded: now (and only now) the money counts as returned.
    event = PaymentEvent(provider="sandbox", event_id="evt_r1", kind="refund.succeeded", link_id="", provider_ref="",
                         amount_minor=1000, currency="SGD", refund_ref=f"prov-{pending.id}")
    assert (await live.services.links.record_payment(event))[0].value == "recorded"
    assert (await live.services.links.record_payment(event))[0].value == "duplicate"
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.amount_refunded_minor, payment.status) == (1000, PaymentStatus.PARTIALLY_REFUNDED)
    slow.refuse = True
    failed, _ = await refunds.request(RefundRequest(link.id, shop.merchant_id, amount_minor=500))
    assert (failed.status, failed.failure_reason) == (RefundStatus.FAILED, "card account closed")
    (payment,) = await live.services.links.payments_for(link.id)
    assert payment.amount_refunded_minor == 1000  # a failed refund gives its reservation back
    texts = await alerts(live, link.id)
    assert any("failed" in t and "card account closed" in t for t in texts)
    assert (await refunds.refundable(link.id))[0].refundable_minor == 1500


def test_payment_status_follows_the_refunded_amount() -> None:
    assert payment_status_after(PaymentStatus.SUCCEEDED, 2500, 0) is PaymentStatus.SUCCEEDED
    assert payment_status_after(PaymentStatus.SUCCEEDED, 2500, 1000) is PaymentStatus.PARTIALLY_REFUNDED
    assert payment_status_after(PaymentStatus.PARTIALLY_REFUNDED, 2500, 2500) is PaymentStatus.REFUNDED
    assert payment_status_after(PaymentStatus.REFUND_NEEDED, 2500, 2500) is PaymentStatus.REFUNDED
    with pytest.raises(ValueError):
        payment_status_after(PaymentStatus.REFUNDED, 2500, 2500)


# ---------------------------------------------------------------- double payments


async def test_a_double_payment_alerts_the_seller_and_is_refunded_automatically(live: LiveApp) -> None:
    shop = await make_shop(live)
    link = await make_link(live.services, merchant_id=shop.merchant_id)
    await live.services.links.attach_message(link.id, _ref("shop-chat"))
    assert (await pay(live, link, 1))["outcome"] == "paid"
    assert (await pay(live, link, 2))["outcome"] == "refund_needed"
    texts = await alerts(live, link.id)
    assert any(t.startswith("payment.refund_needed.alert: ⚠️ Paid twice: **S$25.00** by Ann Tan")
               and "I am refunding the second payment" in t for t in texts)
    await sandbox(live).drain()
    got = (await shop.api.get(f"/api/v1/links/{link.id}")).body
    first, second = got["payments"]
    assert (first["status"], second["status"]) == ("succeeded", "refunded")
    assert second["refunds"][0]["status"] == "succeeded"
    assert (got["status"], got["amount_refunded_minor"]) == ("paid", 2500)  # the link's money stays the shop's
    assert any(t.startswith("refund.succeeded.alert: ↩️ Refunded **S$25.00** to Ann Tan") for t in await alerts(
        live, link.id))
    # The second payer's page tells the truth: refunded.
    page = await live.client.get(f"/p/{link.id}?payment=ch_2")
    assert "Your payment of S$25.00 was refunded" in await page.text()
    # The first payer still sees the receipt.
    receipt = await live.client.get(f"/p/{link.id}?payment=ch_1")
    assert "Payment received" in await receipt.text()
    # The shop's audit log says paylinks gave the money back, not a person.
    async with live.services.db.read() as conn:
        [audit] = (await conn.execute(select(table(AuditEvent)).where(
            table(AuditEvent).c.action == "link.refunded"))).all()
    assert (audit.merchant_id, audit.platform, audit.member_id, audit.detail["link_id"], audit.detail["amount"]) \
        == (shop.merchant_id, "system", None, link.id, "25.00")


async def test_with_auto_refund_off_the_alert_carries_the_refund_to_send(live: LiveApp) -> None:
    live.services.refunds.auto_refund_duplicates = False
    shop = await make_shop(live)
    link = await make_link(live.services, merchant_id=shop.merchant_id)
    await live.services.links.attach_message(link.id, _ref("shop-chat"))
    await pay(live, link, 1)
    await pay(live, link, 2)
    (_, second) = await live.services.links.payments_for(link.id)
    texts = await alerts(live, link.id)
    assert any("Paid twice" in t and f"Send `/refund {second.id}` to give it back." in t for t in texts)
    page = await live.client.get(f"/p/{link.id}?payment=ch_2")
    assert "will be refunded" in await page.text()
    both = await refund(make_shop_api(live, await make_key(live, link)), link.id)
    assert (both.status, both.error["code"]) == (400, "payment_required")


# ---------------------------------------------------------------- the timeline


async def test_the_timeline_lists_what_happened_oldest_first(live: LiveApp) -> None:
    shop = await make_shop(live)
    link = await make_link(live.services, merchant_id=shop.merchant_id)
    await live.services.links.attach_message(link.id, _ref("shop-chat"))
    for _ in range(3):
        assert (await live.client.get(f"/p/{link.id}")).status == 200
    await live.app[PAGES].views_recorded()  # counted after each page was answered
    pressed = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert pressed.status == 303
    await pay(live, link, 1)
    async with live.services.db.write() as conn:  # what the dispatcher records once Telegram took it
        await conn.execute(update(OUTBOX).where(OUTBOX.c.link_id == link.id, OUTBOX.c.kind == "link.paid.alert")
                           .values(status=OutboxStatus.SENT.value, sent_at=live.services.clock()))
    await refund(shop, link.id, {"amount": "5.00"})
    await sandbox(live).drain()
    answer = await shop.api.get(f"/api/v1/links/{link.id}/events")
    assert answer.status == 200
    events = answer.body["data"]
    types = [e["type"] for e in events]
    assert types[0] == "link.created"
    for expected in ("link.opened", "checkout.started", "payment.succeeded", "alert.delivered",
                     "refund.requested", "refund.succeeded"):
        assert types.count(expected) == 1, (expected, types)
    assert types.index("link.opened") < types.index("checkout.started") < types.index("payment.succeeded") \
        < types.index("refund.requested") < types.index("refund.succeeded")
    opened = events[types.index("link.opened")]
    assert opened["details"]["views"] == 3
    assert all(e["at"].endswith("Z") for e in events)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    delivered = events[types.index("alert.delivered")]["details"]
    assert delivered == {"platform": "console", "event": "link.paid", "as": "alert"}
    cancelled = await make_link(live.services, merchant_id=shop.merchant_id)
    await live.services.links.cancel(cancelled.id, shop.merchant_id)
    other = (await shop.api.get(f"/api/v1/links/{cancelled.id}/events")).body["data"]
    assert [e["type"] for e in other] == ["link.created", "link.cancelled"]


# ---------------------------------------------------------------- reports


async def test_report_gross_refunded_net_match_the_api_payments_to_the_minor_unit(live: LiveApp) -> None:
    from core.commands.periods import parse_period
    from core.commands.values import ParseContext
    from core.reports import render_report

    shop = await make_shop(live)
    links = [await paid_link(live, shop, minor=m, n=n) for n, m in enumerate((2500, 1999, 1001), start=1)]
    await pay(live, links[0], 9)  # paid twice: the duplicate counts in gross and, once refunded, in refunded
    await refund(shop, links[1].id, {"amount": "0.99"})
    await refund(shop, links[0].id, {"payment_id": (await live.services.links.payments_for(links[0].id))[1].id})
    await sandbox(live).drain()
    period = parse_period("today", ParseContext(now=live.services.clock()))
    data = await live.services.conversation.reports.report(shop.merchant_id, period)
    listed = (await shop.api.get("/api/v1/links")).body["data"]
    payments = [p for link in listed for p in link["payments"]]
    gross = sum(p["amount_minor"] for p in payments)
    refunded = sum(p["amount_refunded_minor"] for p in payments)
    totals = data.money["SGD"]
    assert (totals.gross_minor, totals.refunded_minor, totals.net_minor) == (gross, refunded, gross - refunded)
    assert (gross, refunded) == (2500 * 2 + 1999 + 1001, 2500 + 99)
    text = render_report(data, "Cake Shop", "en_SG", "SGD")
    assert "gross S$80.00 − refunded S$25.99 = net **S$54.01**" in text


def _ref(address: str) -> Any:
    from core.ports import MessageRef

    return MessageRef("console", address, "1")


async def make_key(live: LiveApp, link: PaymentLink) -> str:
    _, secret = await live.services.merchants.create_api_key(link.merchant_id, test=True)
    return secret


def make_shop_api(live: LiveApp, secret: str) -> Shop:
    from tests.adapters.web.api_support import ApiClient

    return Shop("", secret, ApiClient(live, secret))
