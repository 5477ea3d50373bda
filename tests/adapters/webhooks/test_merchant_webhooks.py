"""Merchant webhooks end to end on SQLite and PostgreSQL: the endpoints API, events written with the link
change, Standard Webhooks signatures checked with the `standardwebhooks` package's own Webhook.verify,
retries through the outbox against a receiver that fails, times out and recovers, in order per link, the
per-kind retry policy, disabling after days of failure (owner told), deliveries and resend, SSRF rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from adapters.payments.sandbox.provider import SandboxProvider
from bots.config import Secret, Settings
from bots.dispatcher import Dispatcher, build_dispatcher
from core import i18n
from core.models import ChatTarget, Member, OutboxMessage, WebhookAttempt, WebhookEndpoint
from core.outbox import NOTICE_KIND
from core.ports import PaymentEvent
from core.secretbox import new_key
from core.sql import table
from core.webhooks import WebhookError, check_url, disabled_notice
from tests.adapters.web.api_support import Shop, make_shop
from tests.clock import FakeClock
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.webhook_receiver import webhook_receiver

OUTBOX = table(OutboxMessage)
ATTEMPTS = table(WebhookAttempt)
MEMBERS = table(Member)
TARGETS = table(ChatTarget)
ALL_EVENTS = ["link.created", "link.paid", "payment.succeeded", "link.expired", "link.cancelled"]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, webhooks__allow_private=True, webhooks__timeout=timedelta(seconds=0.3),
                         webhooks__secret_key=Secret(new_key()), limits__bad_auth_per_ip="1000/min")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def live(settings: Settings, clock: FakeClock) -> AsyncIterator[LiveApp]:
    # No background jobs: each test runs the dispatcher itself, with a hand-moved clock for the retries.
    app, client = await start_live_app(settings, run_jobs=False, clock=clock)
    yield app
    await client.close()


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live)


@pytest.fixture
async def dispatcher(live: LiveApp) -> Dispatcher:
    return build_dispatcher(live.services)


async def add_endpoint(shop: Shop, url: str, events: list[str] | None = None) -> dict[str, Any]:
    resp = await shop.api.post("/api/v1/webhook_endpoints", json_body={"url": url, "events": events or ALL_EVENTS})
    assert resp.status == 201, resp.text
    return resp.body  # type: ignore[no-any-return]


def verified(secret: str, received: Any) -> dict[str, Any]:
    """The event, checked by the standardwebhooks package exactly as a receiver would."""
    event: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return event


async def pay(live: LiveApp, link_id: str, ref: str = "ch_1") -> None:
    link = await live.services.links.get(link_id)
    assert link is not None
    await live.services.links.record_payment(PaymentEvent(
        "sandbox", f"evt_{ref}", "payment.succeeded", link_id, ref, link.amount_minor, link.currency))


async def attempts_of(live: LiveApp, delivery_id: int) -> list[int | None]:
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(ATTEMPTS.c.status_code).where(ATTEMPTS.c.delivery_id == delivery_id)
                                   .order_by(ATTEMPTS.c.id))).all()
    return [r.status_code for r in rows]


# ---------------------------------------------------------------- the endpoints API


async def test_endpoint_is_created_with_its_secret_once_listed_fetched_and_deleted(shop: Shop, live: LiveApp) -> None:
    created = await add_endpoint(shop, "https://shop.example/hooks", ["link.paid", "link.created"])
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["link.created", "link.paid"]  # in the documented order, once each
    assert created["status"] == "enabled"
    listed = await shop.api.get("/api/v1/webhook_endpoints")
    assert [e["id"] for e in listed.body["data"]] == [created["id"]]
    assert "secret" not in listed.body["data"][0]
    one = await shop.api.get(f"/api/v1/webhook_endpoints/{created['id']}")
    assert one.status == 200 and "secret" not in one.body and one.body["url"] == "https://shop.example/hooks"
    # Stored sealed: the database never holds the secret in the clear.
    async with live.services.db.read() as conn:
        stored = (await conn.execute(select(table(WebhookEndpoint)))).one()
    assert created["secret"] not in str(tuple(stored))
    other = await make_shop(live, "Other Shop")
    assert (await other.api.get(f"/api/v1/webhook_endpoints/{created['id']}")).status == 404
    assert (await other.api.request("DELETE", f"/api/v1/webhook_endpoints/{created['id']}")).status == 404
    deleted = await shop.api.request("DELETE", f"/api/v1/webhook_endpoints/{created['id']}")
    assert deleted.status == 200
    assert (await shop.api.get(f"/api/v1/webhook_endpoints/{created['id']}")).status == 404


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"url": "ftp://shop.example/x", "events": ["link.paid"]}, "invalid_url", "url"),
    ({"url": "https://user:pw@shop.example/x", "events": ["link.paid"]}, "invalid_url", "url"),
    ({"url": "https://shop.example/x", "events": ["link.bought"]}, "invalid_events", "events"),
    ({"url": "https://shop.example/x", "events": []}, "invalid_events", "events"),
    ({"url": "https://shop.example/x"}, "missing_field", "events"),
    ({"url": "https://shop.example/x", "events": ["link.paid"], "extra": 1}, "unknown_field", "extra"),
    ({"url": 5, "events": ["link.paid"]}, "invalid_type", "url"),
])
async def test_bad_endpoint_requests_name_the_field(shop: Shop, body: dict[str, Any], code: str, field: str) -> None:
    resp = await shop.api.post("/api/v1/webhook_endpoints", json_body=body)
    assert resp.status == 400, resp.text
    assert (resp.error["code"], resp.error["field"]) == (code, field)


def test_ssrf_rules_refuse_private_addresses_unless_allowed_and_need_https_in_live_mode() -> None:
    for url in ("http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x",
                "http://192.168.0.10/x", "http://[::ffff:10.0.0.1]/x", "http://localhost:9000/x",
                "http://0.0.0.0/x"):
        with pytest.raises(WebhookError) as refused:
            check_url(url, allow_private=False, livemode=False)
        assert refused.value.field == "url"
    assert check_url("http://10.1.2.3/x", allow_private=True, livemode=False) == "http://10.1.2.3/x"
    assert check_url("http://93.184.215.14/x", allow_private=False, livemode=False)
    with pytest.raises(WebhookError, match="https in live mode"):
        check_url("http://shop.example/x", allow_private=False, livemode=True)
    assert check_url("https://shop.example/x", allow_private=False, livemode=True)


async def test_private_url_refused_by_the_api_when_not_allowed(shop: Shop, live: LiveApp) -> None:
    live.services.webhooks.allow_private = False
    resp = await shop.api.post("/api/v1/webhook_endpoints",
                               json_body={"url": "http://127.0.0.1:9/x", "events": ["link.paid"]})
    assert resp.status == 400 and resp.error["field"] == "url" and resp.error["code"] == "invalid_url"


async def test_a_name_that_resolves_to_loopback_is_not_delivered_to_when_private_is_not_allowed(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher
) -> None:
    async with webhook_receiver(host="localhost") as receiver:
        # A name that resolves to loopback later (DNS rebinding): "localhost" stands in for it, being the only
        # name tests may resolve; the endpoint is made while private addresses are allowed, then they are not.
        endpoint = await add_endpoint(shop, receiver.url, ["link.created"])
        sender: Any = live.services.senders["webhook"]
        sender.allow_private = False
        await sender.close()  # the next session resolves through the stricter resolver
        await shop.api.create({"amount": "5.00", "description": "Tea"})
        await dispatcher.run_once()
        assert receiver.received == []
        deliveries = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries")).body["data"]
        assert deliveries[0]["status"] == "pending" and deliveries[0]["response_code"] is None
        assert "address not allowed" in deliveries[0]["last_error"]


# ---------------------------------------------------------------- events and signatures


async def test_events_are_signed_per_standard_webhooks_and_carry_the_links_api_json(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher
) -> None:
    async with webhook_receiver() as receiver:
        endpoint = await add_endpoint(shop, receiver.url)
        made = (await shop.api.create({"amount": "25.00", "description": "Cake", "reference": "o-1"})).body
        await pay(live, made["id"])
        other = (await shop.api.create({"amount": "3.00", "description": "Tea"})).body
        await shop.api.post(f"/api/v1/links/{other['id']}/cancel")
        while await dispatcher.run_once():
            pass
        events = [verified(endpoint["secret"], r) for r in receiver.received]
        by_link: dict[str, list[str]] = {}
        for event in events:
            by_link.setdefault(event["data"]["id"], []).append(event["type"])
        assert by_link[made["id"]] == ["link.created", "link.paid", "payment.succeeded"]
        assert by_link[other["id"]] == ["link.created", "link.cancelled"]
        paid = next(e for e in events if e["type"] == "link.paid")
        now_json = (await shop.api.get(f"/api/v1/links/{made['id']}")).body
        assert paid["data"] == now_json  # the link as the API returns it
        assert set(paid) == {"id", "type", "timestamp", "data"} and paid["timestamp"].endswith("Z")
        succeeded = next(e for e in events if e["type"] == "payment.succeeded")
        assert succeeded["data"]["payment"]["amount_minor"] == 2500
        first = receiver.received[0]
        assert first.headers["webhook-id"] == events[0]["id"]
        # Tampering is caught by the same package: another secret, or a changed body.
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 43 + "=").verify(first.body, first.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(first.body.replace('"type"', '"typo"'), first.headers)


async def test_a_refund_the_provider_confirms_is_a_payment_refunded_event_with_the_refund(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher
) -> None:
    provider = live.services.provider
    assert isinstance(provider, SandboxProvider)
    async with webhook_receiver() as receiver:
        endpoint = await add_endpoint(shop, receiver.url, ["payment.refunded"])
        made = (await shop.api.create({"amount": "25.00", "description": "Cake"})).body
        await pay(live, made["id"])
        asked = await shop.api.post(f"/api/v1/links/{made['id']}/refund", json_body={"amount": "10.00"})
        assert asked.status == 201, asked.text
        while await dispatcher.run_once():
            pass
        assert receiver.received == []  # pending: nothing is refunded before the provider says so
        await provider.drain()  # the sandbox's signed refund.succeeded webhook, over HTTP
        while await dispatcher.run_once():
            pass
        (event,) = [verified(endpoint["secret"], r) for r in receiver.received]
        assert event["type"] == "payment.refunded"
        data = event["data"]
        assert (data["refund"]["id"], data["refund"]["status"], data["refund"]["amount_minor"]) == (
            asked.body["id"], "succeeded", 1000)
        assert (data["payment"]["amount_refunded_minor"], data["payment"]["status"]) == (1000, "partially_refunded")
        now_json = (await shop.api.get(f"/api/v1/links/{made['id']}")).body
        assert {k: v for k, v in data.items() if k not in ("payment", "refund")} == now_json
        assert (now_json["status"], now_json["amount_refunded_minor"]) == ("paid", 1000)


async def test_only_subscribed_events_and_only_the_shops_own_endpoints(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher
) -> None:
    async with webhook_receiver() as mine, webhook_receiver() as theirs:
        await add_endpoint(shop, mine.url, ["link.paid"])
        other = await make_shop(live, "Other Shop")
        await add_endpoint(other, theirs.url, ALL_EVENTS)
        made = (await shop.api.create({"amount": "25.00", "description": "Cake"})).body
        await pay(live, made["id"])
        while await dispatcher.run_once():
            pass
        assert [r.event["type"] for r in mine.received] == ["link.paid"]
        assert theirs.received == []


async def test_the_event_row_is_written_in_the_links_transaction(shop: Shop, live: LiveApp) -> None:
    await add_endpoint(shop, "https://shop.example/hooks", ["link.created"])
    made = (await shop.api.create({"amount": "1.00", "description": "Gum"})).body
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(OUTBOX.c.kind, OUTBOX.c.link_id).where(OUTBOX.c.platform == "webhook"))).all()
    assert [(r.kind, r.link_id) for r in rows] == [("webhook.link.created", made["id"])]


# ---------------------------------------------------------------- failures, retries, order


async def test_failing_then_timing_out_receiver_gets_every_event_in_order_once_it_recovers(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    async with webhook_receiver([500, "hang", 503]) as receiver:
        endpoint = await add_endpoint(shop, receiver.url)
        made = (await shop.api.create({"amount": "25.00", "description": "Cake"})).body
        await pay(live, made["id"])
        for _ in range(8):
            await dispatcher.run_once()
            clock.advance(hours=2)  # past any backoff
        types = [r.event["type"] for r in receiver.received]
        # link.created was tried four times (500, timeout, 503, then 200); link.paid waited behind it.
        assert types == ["link.created"] * 4 + ["link.paid", "payment.succeeded"]
        assert [r.status for r in receiver.received] == [500, 0, 503, 200, 200, 200]
        # Each try is signed afresh, always with the event's own id.
        assert len({r.headers["webhook-id"] for r in receiver.received[:4]}) == 1
        for received in receiver.received:
            verified(endpoint["secret"], received)
        listed = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries")).body["data"]
        created_delivery = next(d for d in listed if d["type"] == "link.created")
        assert created_delivery["status"] == "sent" and created_delivery["attempts"] == 4
        assert created_delivery["response_code"] == 200
        assert await attempts_of(live, created_delivery["id"]) == [500, None, 503, 200]
        current = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}")).body
        assert current["failing_since"] is None and current["status"] == "enabled"


async def test_webhooks_retry_for_three_days_while_chat_alerts_keep_outbox_max_age(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    async with webhook_receiver(default=500) as receiver:
        endpoint = await add_endpoint(shop, receiver.url, ["link.created"])
        await shop.api.create({"amount": "25.00", "description": "Cake"})
        clock.advance(hours=30)  # beyond [outbox] max_age (24 h), which would have killed a chat alert
        await dispatcher.run_once()
        listed = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries")).body["data"]
        assert listed[0]["status"] == "pending" and listed[0]["response_code"] == 500
        clock.advance(hours=43)  # 73 h: past [webhooks] max_age
        await dispatcher.run_once()
        listed = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries")).body["data"]
        assert listed[0]["status"] == "dead" and listed[0]["attempts"] == 2
    assert dispatcher.config.policy_for("link.paid.alert").max_age == timedelta(hours=24)
    assert dispatcher.config.policy_for("webhook.link.paid").max_age == timedelta(days=3)


async def test_an_endpoint_failing_for_five_days_is_disabled_and_its_owner_told_then_resend_enables_it(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    async with live.services.db.write() as conn:
        await conn.execute(insert(MEMBERS), {"merchant_id": shop.merchant_id, "platform": "telegram",
                                         "platform_user_id": "1001", "display_name": "Ana", "role": "owner",
                                         "created_at": clock()})
    async with webhook_receiver(default=500) as receiver:
        endpoint = await add_endpoint(shop, receiver.url, ["link.created"])
        await shop.api.create({"amount": "1.00", "description": "Day 0"})
        await dispatcher.run_once()
        for day in range(1, 6):
            clock.advance(days=1)
            await shop.api.create({"amount": "1.00", "description": f"Day {day}"})
            await dispatcher.run_once()
        current = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}")).body
        assert current["status"] == "disabled" and "HTTP 500" in current["disabled_reason"]
        async with live.services.db.read() as conn:
            notices = (await conn.execute(select(OUTBOX).where(OUTBOX.c.kind == NOTICE_KIND))).all()
        assert [(n.platform, n.address) for n in notices] == [("telegram", "1001")]
        assert endpoint["url"] in notices[0].payload["reply"]["text"]
        listed = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries")).body["data"]
        assert {d["status"] for d in listed} == {"dead"}
        # New events are not queued for a disabled endpoint; a test is refused until it is enabled again.
        await shop.api.create({"amount": "1.00", "description": "Day 5b"})
        assert len((await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries")).body["data"]) == 6
        refused = await shop.api.post(f"/api/v1/webhook_endpoints/{endpoint['id']}/test")
        assert refused.status == 409 and refused.error["code"] == "endpoint_disabled"
        receiver.default = 200
        before = len(receiver.received)
        resent = await shop.api.post(
            f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries/{listed[0]['id']}/resend")
        assert resent.status == 202 and resent.body["status"] == "pending" and resent.body["attempts"] == 0
        await dispatcher.run_once()
        assert len(receiver.received) == before + 1
        assert receiver.received[-1].headers["webhook-id"] == listed[0]["event_id"]
        current = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}")).body
        assert current["status"] == "enabled"



async def test_the_disabled_notice_is_in_the_language_of_the_chat_it_goes_to(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """The owner's chat reads Vietnamese (chat_target.language): the notice and its reason are Vietnamese;
    the endpoint's stored reason stays as recorded (English, for the API)."""
    async with live.services.db.write() as conn:
        await conn.execute(insert(MEMBERS), {"merchant_id": shop.merchant_id, "platform": "telegram",
                                         "platform_user_id": "1002", "display_name": "Lan", "role": "owner",
                                         "created_at": clock()})
        await conn.execute(insert(TARGETS), {"platform": "telegram", "address": "1002", "language": "vi",
                                         "last_inbound_at": clock()})
    async with webhook_receiver(default=503) as receiver:
        endpoint = await add_endpoint(shop, receiver.url, ["link.created"])
        for day in range(6):
            if day:
                clock.advance(days=1)
            await shop.api.create({"amount": "1.00", "description": f"Day {day}"})
            await dispatcher.run_once()
    current = (await shop.api.get(f"/api/v1/webhook_endpoints/{endpoint['id']}")).body
    assert current["status"] == "disabled" and current["disabled_reason"] == "HTTP 503"
    async with live.services.db.read() as conn:
        (notice,) = (await conn.execute(select(OUTBOX).where(OUTBOX.c.kind == NOTICE_KIND))).all()
    vi = i18n.tr("vi")
    expected = disabled_notice(endpoint["url"], "HTTP 503", "vi").text
    assert (notice.platform, notice.address, notice.payload["reply"]["text"]) == ("telegram", "1002", expected)
    assert vi.gettext("an HTTP %(status)s answer", status="503") in expected and endpoint["url"] in expected
    assert "Your webhook endpoint" not in expected and "failed for days" not in expected
    assert notice.payload["language"] == "vi"


async def test_test_event_and_resend_of_a_sent_delivery(shop: Shop, live: LiveApp, dispatcher: Dispatcher) -> None:
    async with webhook_receiver() as receiver:
        endpoint = await add_endpoint(shop, receiver.url, ["link.paid"])
        queued = await shop.api.post(f"/api/v1/webhook_endpoints/{endpoint['id']}/test")
        assert queued.status == 202 and queued.body["type"] == "webhook.test" and queued.body["status"] == "pending"
        await dispatcher.run_once()
        event = verified(endpoint["secret"], receiver.received[0])
        assert event["type"] == "webhook.test"
        resent = await shop.api.post(
            f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries/{queued.body['id']}/resend")
        assert resent.status == 202
        await dispatcher.run_once()
        assert [r.headers["webhook-id"] for r in receiver.received] == [event["id"], event["id"]]
        missing = await shop.api.post(f"/api/v1/webhook_endpoints/{endpoint['id']}/deliveries/999999/resend")
        assert missing.status == 404 and missing.error["field"] == "delivery_id"


async def test_deleting_an_endpoint_drops_its_waiting_deliveries(
    shop: Shop, live: LiveApp, dispatcher: Dispatcher
) -> None:
    async with webhook_receiver() as receiver:
        endpoint = await add_endpoint(shop, receiver.url, ["link.created"])
        await shop.api.create({"amount": "1.00", "description": "Gum"})
        await shop.api.request("DELETE", f"/api/v1/webhook_endpoints/{endpoint['id']}")
        await dispatcher.run_once()
        assert receiver.received == []
        async with live.services.db.read() as conn:
            row = (await conn.execute(select(OUTBOX).where(OUTBOX.c.platform == "webhook"))).one()
        assert row.status == "dead" and row.last_error == "endpoint deleted"
