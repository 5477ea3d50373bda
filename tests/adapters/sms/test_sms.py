"""SMS to customers through the real twilio client against the fake Twilio Messages API on 127.0.0.1, and
Twilio's status callbacks (POST /twilio/status), signed like Twilio signs them, on SQLite and PostgreSQL:
where a link goes (SMS when WhatsApp is off, `via sms`, SMS instead of WhatsApp outside its window),
what the text says (amount and link first, one segment), the seller told of late failures and of
deliveries, and the link's timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from adapters.sms.text import septets, sms_text
from bots.config import Secret, Settings
from bots.dispatcher import Dispatcher, build_dispatcher
from core.models import ChatTarget, LinkEventRecord, OutboxMessage, PaymentLink
from core.outbox import FOLLOWUP_KIND, NOTICE_KIND
from core.outbox_texts import AlertFacts
from core.ports import IncomingMessage
from core.sql import table
from core.timeline import timeline
from tests.adapters.web.api_support import Shop, make_shop
from tests.clock import FakeClock
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.twilio import FakeTwilio, num_segments

OUTBOX = table(OutboxMessage)
RECORDS = table(LinkEventRecord)
TARGETS = table(ChatTarget)
LINKS = table(PaymentLink)
SMS_FROM = "+14155550100"
WA_FROM = "whatsapp:+14155238886"
PHONE = "+6591234567"
SERVICE = "MG" + "a" * 32


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    server = FakeTwilio(messaging_services={SERVICE})
    await server.start()
    yield server
    await server.close()


def twilio_settings(database_url: str, fake: FakeTwilio, *, whatsapp: bool = False, **overrides: Any) -> Settings:
    settings = make_settings(database_url, sms__enabled=True, outbox__sms_per_sender="1000/s",
                             outbox__whatsapp_per_sender="1000/s", **overrides)
    wa = settings.whatsapp
    wa.enabled = whatsapp
    wa.account_sid = fake.account_sid
    wa.auth_token = Secret(fake.auth_token)
    wa.from_number = WA_FROM
    wa.api_base_url = fake.base_url
    if not overrides.get("sms__messaging_service_sid"):
        settings.sms.from_number = SMS_FROM
    return settings


async def open_app(settings: Settings) -> AsyncIterator[LiveApp]:
    live, client = await start_live_app(settings, run_jobs=False, clock=FakeClock())
    try:
        yield live
    finally:
        await client.close()


@pytest.fixture
async def live(database_url: str, fake: FakeTwilio) -> AsyncIterator[LiveApp]:
    async for app in open_app(twilio_settings(database_url, fake)):
        yield app


@pytest.fixture
async def live_wa(database_url: str, fake: FakeTwilio) -> AsyncIterator[LiveApp]:
    async for app in open_app(twilio_settings(database_url, fake, whatsapp=True)):
        yield app


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live)


async def rows(live: LiveApp, **where: str) -> list[Any]:
    async with live.services.db.read() as conn:
        query = select(OUTBOX).order_by(OUTBOX.c.id)
        for key, value in where.items():
            query = query.where(OUTBOX.c[key] == value)
        return list((await conn.execute(query)).all())


async def charge(live: LiveApp, text: str) -> tuple[str, str]:
    """/charge from the seller's terminal chat (console; the first message opens the shop): (answer, link id)."""
    replies = await live.services.conversation.handle(IncomingMessage(
        platform="console", user_id="sam", address="sam", text=text, display_name="Sam"))
    (link_id,) = [r.link_id for r in replies if r.link_id]
    return "\n".join(r.text for r in replies), str(link_id)


def dispatcher(live: LiveApp) -> Dispatcher:
    return build_dispatcher(live.services)


def signed_status(fake: FakeTwilio, live: LiveApp, form: dict[str, str]) -> dict[str, str]:
    url = live.base_url + "/twilio/status"
    return {"X-Twilio-Signature": RequestValidator(fake.auth_token).compute_signature(url, form)}


async def events(live: LiveApp, link_id: str) -> list[tuple[str, dict[str, Any]]]:
    link = await live.services.links.get(link_id)
    assert link is not None
    return [(e.type, e.details) for e in await timeline(live.services.db, link, live.services.links.status_of(link))]


# ---------------------------------------------------------------- sending


async def test_a_link_for_a_phone_goes_by_sms_when_whatsapp_is_off(live: LiveApp, shop: Shop,
                                                                     fake: FakeTwilio) -> None:
    resp = await shop.api.create({"amount": "25.00", "description": "Chocolate cake",
                                  "customer": {"name": "Ana", "phone": "+65 9123 4567"}})
    assert resp.status == 201, resp.text
    await dispatcher(live).run_once()
    (sent,) = fake.messages
    assert sent.to == PHONE and sent.fields["From"] == SMS_FROM and "MessagingServiceSid" not in sent.fields
    assert sent.body == f"Pay S$25.00 {resp.body['url']} to Cake Shop (test, no real money) for Chocolate cake"
    assert num_segments(sent.body or "") == 1
    assert sent.status_callback == live.base_url + "/twilio/status"
    (row,) = await rows(live, platform="sms")
    assert row.status == "sent" and row.external_id == sent.sid and row.address == PHONE


async def test_a_messaging_service_sends_instead_of_a_number(database_url: str, fake: FakeTwilio) -> None:
    async for live in open_app(twilio_settings(database_url, fake, sms__messaging_service_sid=SERVICE)):
        shop = await make_shop(live)
        await shop.api.create({"amount": "3.00", "description": "Tea", "customer": {"phone": PHONE}})
        await dispatcher(live).run_once()
        (sent,) = fake.messages
        assert sent.fields["MessagingServiceSid"] == SERVICE and "From" not in sent.fields


async def test_twilio_errors_retry_or_tell_the_seller(live: LiveApp, shop: Shop, fake: FakeTwilio) -> None:
    fake.fail_next(429, 20429, retry_after=7)
    await shop.api.create({"amount": "3.00", "description": "Tea", "customer": {"phone": PHONE}})
    await dispatcher(live).run_once()
    (row,) = await rows(live, platform="sms")
    assert row.status == "pending" and row.attempts == 1 and "429" in row.last_error
    assert fake.requests[0].status == 429 and not fake.messages
    # A number Twilio says is not a phone (21211): dead, the number marked unreachable.
    fake.fail_next(400, 21211, message="The 'To' number +6500000000 is not a valid phone number.")
    await shop.api.create({"amount": "4.00", "description": "Scone", "customer": {"phone": "+6581234567"}})
    live.services.clock.advance(seconds=8)  # type: ignore[attr-defined]
    await dispatcher(live).run_once()
    by_address = {r.address: r for r in await rows(live, platform="sms")}
    assert by_address[PHONE].status == "sent"
    assert by_address["+6581234567"].status == "dead" and "21211" in by_address["+6581234567"].last_error


def facts(**changes: Any) -> AlertFacts:
    base: dict[str, Any] = {
        "event": "link.created", "link_id": "lnk_1", "amount_minor": 2500, "currency": "SGD", "at": datetime.now(UTC),
        "description": "Cake “Happy 30th Sam” — Sat",
        "merchant_name": "Sam's Cakes & Bakes", "url": "https://pay.example.com/p/lnk_0123456789abcdefghij",
        "locale": "en_SG",
    }
    return AlertFacts(**{**base, **changes})


def test_texts_put_amount_and_link_first_and_fit_one_segment() -> None:
    for kind in ("link.created.customer_link", "link.reminder.reminder", "link.paid.receipt",
                 "payment.refunded.refund"):
        text = sms_text(kind, facts())
        assert num_segments(text) == 1 and septets(text) is not None, (kind, text)
    link = sms_text("link.created.customer_link", facts())
    assert link.startswith("Pay S$25.00 https://pay.example.com/p/lnk_0123456789abcdefghij")
    assert link.endswith('for Cake "Happy 30th Sam" - Sat')  # typographic quotes and dashes made GSM-7
    long = sms_text("link.created.customer_link", facts(description="x" * 200))
    assert long == "Pay S$25.00 https://pay.example.com/p/lnk_0123456789abcdefghij to Sam's Cakes & Bakes"
    # Nothing GSM-7 can say: UCS-2, still one segment with the essentials (70 characters).
    korean = sms_text("link.created.customer_link", facts(merchant_name="빵집", description="생일 케이크",
                                                          currency="KRW", amount_minor=25000, locale="ko_KR"))
    assert korean.startswith("Pay ") and "https://pay.example.com/p/" in korean and num_segments(korean) == 1
    assert septets(korean) is None
    test_money = sms_text("link.created.customer_link", facts(livemode=False))
    assert "test" in test_money and num_segments(test_money) == 1


# ---------------------------------------------------------------- from chat


async def test_charge_via_sms_sends_an_sms_even_with_whatsapp_on_and_follows_up_on_delivery(
    live_wa: LiveApp, fake: FakeTwilio
) -> None:
    answer, link_id = await charge(live_wa, "/charge 25 cake to +65 9123 4567 via sms")
    assert "Sent to +6591234567 by SMS" in answer, answer
    _, plain_id = await charge(live_wa, "/charge 7 tea to +65 9123 4567")
    await dispatcher(live_wa).run_once()
    platforms: dict[str, str] = {}
    for row in await rows(live_wa):
        if row.kind.endswith("customer_link"):
            platforms.setdefault(row.link_id, row.platform)
    assert platforms == {link_id: "sms", plain_id: "whatsapp"}  # WhatsApp when possible, else SMS
    sms = next(m for m in fake.messages if m.to == PHONE and "25.00" in (m.body or ""))
    assert sms.body and sms.body.startswith("Pay $25.00 ")
    assert await fake.report(sms.sid or "", "sent") == 204  # not final: nothing to say yet
    assert await fake.report(sms.sid or "", "delivered") == 204
    assert await fake.report(sms.sid or "", "delivered") == 204  # Twilio repeats itself; told once
    (followup,) = await rows(live_wa, kind=FOLLOWUP_KIND)
    assert (followup.platform, followup.address) == ("console", "sam")
    assert "delivered to +6591234567 by SMS" in followup.payload["reply"]["text"]
    assert ("message.delivered", {"platform": "sms", "as": "customer_link", "status": "delivered"}) in \
        await events(live_wa, link_id)


async def test_a_charge_via_sms_without_sms_says_it_was_not_sent(sqlite_database_url: str) -> None:
    async for live in open_app(make_settings(sqlite_database_url)):
        answer, _ = await charge(live, "/charge 25 cake to +65 9123 4567 via sms")
        assert "Not sent" in answer and "SMS" in answer, answer
        assert await rows(live, platform="sms") == []


# ---------------------------------------------------------------- status callbacks


async def test_a_late_failure_goes_on_the_timeline_and_to_the_seller(live: LiveApp, fake: FakeTwilio) -> None:
    _, link_id = await charge(live, "/charge 25 cake to +65 9123 4567")
    await dispatcher(live).run_once()
    (sms,) = fake.messages
    assert await fake.report(sms.sid or "", "undelivered", error_code=30003) == 204
    (notice,) = await rows(live, kind=NOTICE_KIND)
    assert (notice.platform, notice.address) == ("console", "sam")
    text = notice.payload["reply"]["text"]
    assert "+6591234567 by SMS" in text and "30003" in text and "unreachable" in text
    assert f"/p/{link_id}" in text  # the link to send them another way
    assert ("message.failed", {"platform": "sms", "as": "customer_link", "status": "undelivered",
                               "error_code": "30003"}) in await events(live, link_id)
    async with live.services.db.read() as conn:
        assert (await conn.execute(select(TARGETS).where(TARGETS.c.address == PHONE))).first() is None


async def test_status_callbacks_must_be_signed(live: LiveApp, fake: FakeTwilio) -> None:
    _, link_id = await charge(live, "/charge 25 cake to +65 9123 4567")
    await dispatcher(live).run_once()
    (sms,) = fake.messages
    assert await fake.report(sms.sid or "", "undelivered", error_code=30003, signature="Zm9yZ2Vk") == 403
    form = {"MessageSid": sms.sid or "", "MessageStatus": "failed", "To": PHONE, "ErrorCode": "30005"}
    forged = RequestValidator("not-the-token").compute_signature(live.base_url + "/twilio/status", form)
    response = await live.client.post("/twilio/status", data=form, headers={"X-Twilio-Signature": forged})
    assert response.status == 403
    response = await live.client.post("/twilio/status", data=form)
    assert response.status == 403
    assert await rows(live, kind=NOTICE_KIND) == []
    assert [e for e, _ in await events(live, link_id) if e.startswith("message.")] == ["message.sent"]
    # Signed, but about a message we never sent: answered (so Twilio stops), nothing recorded.
    unknown = {**form, "MessageSid": "SM" + "f" * 32}
    response = await live.client.post("/twilio/status", data=unknown, headers=signed_status(fake, live, unknown))
    assert response.status == 204 and await rows(live, kind=NOTICE_KIND) == []


async def test_whatsapp_outside_its_window_without_a_template_goes_by_sms(
    live_wa: LiveApp, fake: FakeTwilio
) -> None:
    _, link_id = await charge(live_wa, "/charge 25 cake to +65 9123 4567")
    await dispatcher(live_wa).run_once()  # WhatsApp: no template, never written to us -> NoTemplate
    await dispatcher(live_wa).run_once()  # the SMS written in its place
    whatsapp, sms = [r for r in await rows(live_wa) if r.kind.endswith("customer_link")]
    assert whatsapp.platform == "whatsapp" and whatsapp.status == "dead"
    assert sms.platform == "sms" and sms.status == "sent" and sms.address == PHONE
    assert [m.to for m in fake.messages] == [PHONE]
    assert await rows(live_wa, kind=NOTICE_KIND) == []  # nothing to tell: the SMS took it
    async with live_wa.services.db.read() as conn:  # the WhatsApp number stays reachable for later
        assert (await conn.execute(select(TARGETS.c.disabled_at).where(
            TARGETS.c.address == "whatsapp:" + PHONE))).scalar() is None
    assert any(e == "delivery.failed" for e, _ in await events(live_wa, link_id))


async def test_a_late_whatsapp_63016_goes_by_sms_and_other_whatsapp_failures_are_told(
    live_wa: LiveApp, fake: FakeTwilio
) -> None:
    # The customer wrote to us, so WhatsApp sends free-form text; Twilio reports the failure later.
    customer = "whatsapp:" + PHONE
    async with live_wa.services.db.write() as conn:
        await conn.execute(TARGETS.insert().values(platform="whatsapp", address=customer,
                                                   last_inbound_at=live_wa.services.clock()))
    _, link_id = await charge(live_wa, "/charge 25 cake to +65 9123 4567")
    await dispatcher(live_wa).run_once()
    (wa,) = fake.messages
    assert wa.to == customer and wa.status_callback == live_wa.base_url + "/twilio/status"
    assert await fake.report(wa.sid or "", "failed", error_code=63016) == 204
    await dispatcher(live_wa).run_once()
    assert [m.to for m in fake.messages] == [customer, PHONE]
    assert ("message.failed", {"platform": "whatsapp", "as": "customer_link", "status": "failed",
                               "error_code": "63016"}) in await events(live_wa, link_id)
    assert await rows(live_wa, kind=NOTICE_KIND) == []  # the SMS took it over
    _, other_id = await charge(live_wa, "/charge 9 tea to +65 9123 4567")
    await dispatcher(live_wa).run_once()
    second = fake.messages[-1]
    assert second.to == customer
    assert await fake.report(second.sid or "", "undelivered", error_code=63024) == 204
    (notice,) = await rows(live_wa, kind=NOTICE_KIND)
    assert "+6591234567 on WhatsApp" in notice.payload["reply"]["text"] and "63024" in notice.payload["reply"]["text"]
    assert ("message.failed", {"platform": "whatsapp", "as": "customer_link", "status": "undelivered",
                               "error_code": "63024"}) in await events(live_wa, other_id)


async def test_a_reminder_and_the_receipt_go_by_sms_too(live: LiveApp, fake: FakeTwilio) -> None:
    from core.ports import PaymentEvent

    _, link_id = await charge(live, "/charge 25 cake to +65 9123 4567")
    replies = await live.services.conversation.handle(IncomingMessage(
        platform="console", user_id="sam", address="sam", text=f"/remind {link_id}", display_name="Sam"))
    assert "sms" in " ".join(r.text for r in replies).lower(), replies
    await dispatcher(live).run_once()
    link = await live.services.links.get(link_id)
    assert link is not None
    await live.services.links.record_payment(PaymentEvent("sandbox", "evt_1", "payment.succeeded", link_id, "ch_1",
                                                          link.amount_minor, link.currency, payer_name="Ana"))
    await dispatcher(live).run_once()
    bodies = [m.body or "" for m in fake.messages_to(PHONE)]
    assert [b.split(" ")[0] for b in bodies] == ["Pay", "Reminder:", "Paid"], bodies
    assert bodies[1].startswith("Reminder: pay $25.00 http") and bodies[2].startswith("Paid $25.00 to Sam")
    assert all(num_segments(b) == 1 for b in bodies)


async def test_a_refund_is_told_to_the_customer_by_sms(live: LiveApp, shop: Shop, fake: FakeTwilio) -> None:
    from adapters.payments.sandbox.provider import SandboxProvider
    from core.ports import PaymentEvent

    made = (await shop.api.create({"amount": "25.00", "description": "Cake", "customer": {"phone": PHONE}})).body
    await live.services.links.record_payment(PaymentEvent("sandbox", "evt_1", "payment.succeeded", made["id"],
                                                          "ch_1", 2500, "SGD"))
    answer = await shop.api.post(f"/api/v1/links/{made['id']}/refund", json_body={"amount": "10.00"})
    assert answer.status == 201, answer.text
    provider = live.services.provider
    assert isinstance(provider, SandboxProvider)
    await provider.drain()
    await dispatcher(live).run_once()
    bodies = sorted(m.body or "" for m in fake.messages_to(PHONE))
    assert [b.split(" ")[0] for b in bodies] == ["Paid", "Pay", "Refunded"], bodies
    assert bodies[2].startswith("Refunded S$10.00 by Cake Shop") and num_segments(bodies[2]) == 1
