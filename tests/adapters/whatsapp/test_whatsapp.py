"""WhatsApp transport: parsing, rendering, templates, error classification, the sender against a fake Twilio
API (the real twilio async client), and webhook signature checks. The conversation is stubbed here;
tests/adapters/whatsapp/test_whatsapp_flow.py runs the whole app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from adapters.whatsapp import (
    DEFAULT_RETRY_AFTER_S,
    NoTemplate,
    OutsideWindow,
    WhatsAppSender,
    WhatsAppWebhook,
    classify,
    in_window,
    parse_inbound,
    parse_templates,
    record_inbound,
    render,
    template_purpose,
    webhook_url,
    whatsapp_address,
)
from adapters.whatsapp import channel as whatsapp_channel
from core.db import Database
from core.deliveries import DeliveryLog
from core.links import Customer, LinkDraft, LinkService
from core.merchants import MerchantService
from core.models import ChatTarget, LinkStatus, PaymentLink
from core.money import Money
from core.ports import Button, IncomingMessage, MessageRef, Permanent, Reply, RetryLater, Transient
from core.sql import table
from tests.clock import FakeClock
from tests.fakes.twilio import FakeTwilio

CUSTOMER = "whatsapp:+6591234567"
SELLER = "whatsapp:+6598765432"
LINK_SID = "HX" + "a" * 32
RECEIPT_SID = "HX" + "b" * 32


# ---------------------------------------------------------------- pure parts


def test_address_normalisation() -> None:
    assert whatsapp_address("+65 9123 4567") == CUSTOMER
    assert whatsapp_address("whatsapp:+6591234567") == CUSTOMER
    assert whatsapp_address("6591234567") == CUSTOMER
    for bad in ("", "whatsapp:", "+12", "call me", "+0123456789"):
        with pytest.raises(ValueError):
            whatsapp_address(bad)


def test_parse_inbound_message() -> None:
    form = {
        "From": "whatsapp:+6591234567", "To": "whatsapp:+14155238886", "Body": "  charge 25 cake ",
        "MessageSid": "SM123", "ProfileName": "Alice", "WaId": "6591234567", "NumMedia": "0",
    }
    message = parse_inbound(form)
    assert message == IncomingMessage(
        platform="whatsapp", user_id="+6591234567", address=CUSTOMER, text="charge 25 cake",
        display_name="Alice", extra={"message_sid": "SM123"}, delivery_id="SM123",
        language="en",  # nothing else known: the language of the number's country (Singapore)
    )


def test_parse_inbound_ignores_what_is_not_a_whatsapp_message() -> None:
    assert parse_inbound({"From": "+6591234567", "Body": "sms"}) is None
    assert parse_inbound({"From": "whatsapp:nonsense", "Body": "x"}) is None
    assert parse_inbound({"From": CUSTOMER, "MessageStatus": "delivered", "MessageSid": "SM1"}) is None
    assert parse_inbound({}) is None


def test_webhook_url_is_the_configured_public_one() -> None:
    assert webhook_url("https://pay.example/") == "https://pay.example/whatsapp/webhook"
    assert webhook_url("https://pay.example", "a=1") == "https://pay.example/whatsapp/webhook?a=1"


def test_render_uses_whatsapp_bold_and_plain_links() -> None:
    reply = Reply(
        text="**S$25.00** for `cake`\nhttps://pay.example/p/abc",
        buttons=(Button("Pay S$25.00", "https://pay.example/p/abc"), Button("Receipt", "https://pay.example/r")),
    )
    body = render(reply)
    assert body.startswith("*S$25.00* for ```cake```")
    assert "**" not in body
    assert body.count("https://pay.example/p/abc") == 1  # already in the text: no duplicate line
    assert body.endswith("Receipt: https://pay.example/r")


def test_render_keeps_within_twilio_body_limit() -> None:
    assert len(render(Reply(text="x" * 5000))) == 1600


def test_templates_are_validated_with_the_key_named() -> None:
    templates = parse_templates({
        "payment_link": {"content_sid": LINK_SID},
        "receipt": {"content_sid": RECEIPT_SID, "variables": {"1": "amount", "2": "merchant"}},
    })
    assert templates["payment_link"].variables == {"1": "merchant", "2": "amount", "3": "description", "4": "url"}
    assert templates["receipt"].variables == {"1": "amount", "2": "merchant"}
    cases = [
        ({"invoice": {"content_sid": LINK_SID}}, "whatsapp.templates.invoice: unknown purpose"),
        ({"receipt": {"content_sid": "HX12"}}, "whatsapp.templates.receipt.content_sid"),
        ({"receipt": "HX12"}, "whatsapp.templates.receipt: expected a table"),
        ({"receipt": {"content_sid": RECEIPT_SID, "variables": {"1": "card"}}},
         "whatsapp.templates.receipt.variables.1: unknown field 'card'"),
        ({"receipt": {"content_sid": RECEIPT_SID, "vars": {}}}, "unknown key vars"),
    ]
    for raw, message in cases:
        with pytest.raises(ValueError, match=message.replace(".", r"\.")):
            parse_templates(raw)


def test_template_variables_are_single_line_and_never_empty() -> None:
    template = parse_templates({"notification": {"content_sid": LINK_SID,
                                                 "variables": {"1": "text", "2": "reference"}}})["notification"]
    values = json.loads(template.content_variables({"text": "Paid\n\tS$25.00", "reference": ""}))
    assert values == {"1": "Paid S$25.00", "2": "-"}


def test_window() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert not in_window(None, now)
    assert in_window(now - timedelta(hours=23), now)
    assert not in_window(now - timedelta(hours=24), now)
    assert not in_window(now - timedelta(hours=23, minutes=58), now)  # inside the safety margin


def _link(status: LinkStatus, phone: str | None) -> PaymentLink:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    return PaymentLink(id="l1", merchant_id="m", amount_minor=1, currency="SGD", description="d",
                       customer_phone=phone, status=status, created_at=now, expires_at=now)


def test_template_purpose() -> None:
    assert template_purpose(None, CUSTOMER) == "notification"
    assert template_purpose(_link(LinkStatus.ACTIVE, "+6591234567"), CUSTOMER) == "payment_link"
    assert template_purpose(_link(LinkStatus.PAID, "+6591234567"), CUSTOMER) == "receipt"
    assert template_purpose(_link(LinkStatus.PAID, "+6591234567"), SELLER) == "paid_alert"
    assert template_purpose(_link(LinkStatus.PAID, None), SELLER) == "paid_alert"
    assert template_purpose(_link(LinkStatus.CANCELLED, None), SELLER) == "notification"


def _rest_error(status: int, code: int | None) -> TwilioRestException:
    return TwilioRestException(status, "https://api.twilio.com/x", "msg", code)


def test_classify() -> None:
    limited = classify(_rest_error(429, 20429), "7")
    assert isinstance(limited, RetryLater) and limited.after_s == 7
    default = classify(_rest_error(400, 20429))
    assert isinstance(default, RetryLater) and default.after_s == DEFAULT_RETRY_AFTER_S
    assert isinstance(classify(_rest_error(400, 63016)), OutsideWindow)
    for code in (21211, 21614):
        assert isinstance(classify(_rest_error(400, code)), Permanent)
    for status, code in ((500, None), (503, 503), (401, 20003)):
        assert isinstance(classify(_rest_error(status, code)), Transient)
    assert isinstance(classify(ConnectionRefusedError()), Transient)


# ---------------------------------------------------------------- the sender against the fake


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def merchants(db: Database, clock: FakeClock) -> MerchantService:
    return MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)


def make_sender(fake: FakeTwilio, db: Database, links: LinkService, merchants: MerchantService,
                clock: FakeClock, templates: dict[str, Any] | None = None, **kw: Any) -> WhatsAppSender:
    params: dict[str, Any] = {
        "account_sid": fake.account_sid, "auth_token": fake.auth_token, "from_number": "whatsapp:+14155238886",
        "api_base_url": fake.base_url, "templates": templates or {}, **kw,
    }
    return WhatsAppSender(db=db, links=links, merchants=merchants, clock=clock, **params)


@pytest.fixture
async def sender(fake_twilio: FakeTwilio, db: Database, links: LinkService, merchants: MerchantService,
                 clock: FakeClock) -> AsyncIterator[WhatsAppSender]:
    s = make_sender(fake_twilio, db, links, merchants, clock, templates={
        "payment_link": {"content_sid": LINK_SID},
        "receipt": {"content_sid": RECEIPT_SID, "variables": {"1": "amount", "2": "link_id"}},
    })
    yield s
    await s.close()


async def customer_link(links: LinkService, merchants: MerchantService) -> PaymentLink:
    merchant = await merchants.create("Cake Shop", currency="SGD", locale="en_SG")
    link, _ = await links.create(LinkDraft(merchant_id=merchant.id, money=Money(2500, "SGD"), description="cake",
                                           customer=Customer(phone="+6591234567")))
    return link


async def test_inside_window_sends_free_form_text(
    sender: WhatsAppSender, fake_twilio: FakeTwilio, db: Database, clock: FakeClock
) -> None:
    await record_inbound(db, CUSTOMER, clock.now - timedelta(hours=2))
    ref = await sender.send(CUSTOMER, Reply(text="**Hello** there"))
    [sent] = fake_twilio.messages
    assert ref == MessageRef("whatsapp", CUSTOMER, sent.sid or "")
    assert sent.fields["From"] == "whatsapp:+14155238886"
    assert sent.to == CUSTOMER and sent.body == "*Hello* there" and sent.content_sid is None


async def test_outside_window_uses_the_template_without_a_body(
    sender: WhatsAppSender, fake_twilio: FakeTwilio, db: Database, links: LinkService,
    merchants: MerchantService, clock: FakeClock,
) -> None:
    link = await customer_link(links, merchants)
    await record_inbound(db, CUSTOMER, clock.now - timedelta(hours=30))  # wrote once, long ago
    await sender.send(CUSTOMER, Reply(text="Pay here", buttons=(Button("Pay", links.url(link.id)),), link_id=link.id))
    [sent] = fake_twilio.messages
    assert sent.body is None and sent.content_sid == LINK_SID
    assert json.loads(sent.content_variables or "") == {
        "1": "Cake Shop", "2": "S$25.00", "3": "cake", "4": f"https://pay.example/p/{link.id}",
    }


async def test_never_wrote_to_us_counts_as_outside_the_window(
    sender: WhatsAppSender, fake_twilio: FakeTwilio, links: LinkService, merchants: MerchantService,
) -> None:
    link = await customer_link(links, merchants)
    await links.record_payment(_paid(link))
    await sender.send(CUSTOMER, Reply(text="Thanks, paid", link_id=link.id))
    [sent] = fake_twilio.messages
    assert sent.content_sid == RECEIPT_SID and sent.body is None
    assert json.loads(sent.content_variables or "") == {"1": "S$25.00", "2": link.id}


async def test_outside_window_without_template_is_permanent_and_sends_nothing(
    sender: WhatsAppSender, fake_twilio: FakeTwilio, links: LinkService, merchants: MerchantService,
) -> None:
    link = await customer_link(links, merchants)
    await links.record_payment(_paid(link))
    with pytest.raises(NoTemplate) as info:
        await sender.send(SELLER, Reply(text="Paid!", link_id=link.id))  # paid_alert: not configured
    assert isinstance(info.value, Permanent)
    assert "whatsapp.templates.paid_alert" in str(info.value)
    assert fake_twilio.requests == []


async def test_twilio_63016_inside_our_window_falls_back_to_the_template(
    sender: WhatsAppSender, fake_twilio: FakeTwilio, db: Database, links: LinkService,
    merchants: MerchantService, clock: FakeClock,
) -> None:
    link = await customer_link(links, merchants)
    await record_inbound(db, CUSTOMER, clock.now - timedelta(hours=1))
    fake_twilio.closed_windows.add(CUSTOMER)  # Twilio disagrees with our clock
    await sender.send(CUSTOMER, Reply(text="Pay here", link_id=link.id))
    assert [r.status for r in fake_twilio.requests] == [400, 201]
    assert fake_twilio.messages[0].content_sid == LINK_SID


async def test_twilio_63016_without_template_is_permanent(
    sender: WhatsAppSender, fake_twilio: FakeTwilio, db: Database, clock: FakeClock,
) -> None:
    await record_inbound(db, SELLER, clock.now - timedelta(hours=1))
    fake_twilio.fail_next(400, 63016)
    with pytest.raises(Permanent):
        await sender.send(SELLER, Reply(text="hi"))


async def test_rate_limits_are_retry_later_with_retry_after(
    sender: WhatsAppSender, fake_twilio: FakeTwilio, db: Database, clock: FakeClock,
) -> None:
    await record_inbound(db, SELLER, clock.now)
    fake_twilio.fail_next(429, 20429, retry_after=7)
    with pytest.raises(RetryLater) as info:
        await sender.send(SELLER, Reply(text="hi"))
    assert info.value.after_s == 7
    fake_twilio.fail_next(429, 20429)
    with pytest.raises(RetryLater) as info:
        await sender.send(SELLER, Reply(text="hi"))
    assert info.value.after_s == DEFAULT_RETRY_AFTER_S
    await sender.send(SELLER, Reply(text="hi"))  # and then it goes through
    assert len(fake_twilio.messages) == 1


@pytest.mark.parametrize(("status", "code", "error"), [
    (503, None, Transient), (500, 20500, Transient), (400, 21211, Permanent), (400, 21614, Permanent),
])
async def test_errors_are_classified(
    sender: WhatsAppSender, fake_twilio: FakeTwilio, db: Database, clock: FakeClock,
    status: int, code: int | None, error: type[Exception],
) -> None:
    await record_inbound(db, SELLER, clock.now)
    fake_twilio.fail_next(status, code)
    with pytest.raises(error) as info:
        await sender.send(SELLER, Reply(text="hi"))
    assert type(info.value).__module__ != "twilio"


async def test_wrong_credentials_are_transient_and_token_stays_out_of_errors(
    fake_twilio: FakeTwilio, db: Database, links: LinkService, merchants: MerchantService, clock: FakeClock,
) -> None:
    bad = make_sender(fake_twilio, db, links, merchants, clock, auth_token="wrong-token-value")
    await record_inbound(db, SELLER, clock.now)
    try:
        with pytest.raises(Transient) as info:
            await bad.send(SELLER, Reply(text="hi"))
        assert "wrong-token-value" not in str(info.value) and "wrong-token-value" not in repr(bad)
        assert fake_twilio.requests[0].status == 401
    finally:
        await bad.close()


async def test_network_failure_and_closed_sender_are_transient(
    fake_twilio: FakeTwilio, sender: WhatsAppSender, db: Database, clock: FakeClock,
) -> None:
    await record_inbound(db, SELLER, clock.now)
    await fake_twilio.close()  # nothing listens there any more
    with pytest.raises(Transient):
        await sender.send(SELLER, Reply(text="hi"))
    await sender.close()
    with pytest.raises(Transient, match="closed"):
        await sender.send(SELLER, Reply(text="hi"))


async def test_bad_address_is_permanent(sender: WhatsAppSender) -> None:
    with pytest.raises(Permanent):
        await sender.send("C0123SLACK", Reply(text="hi"))


async def test_edit_is_a_no_op(sender: WhatsAppSender, fake_twilio: FakeTwilio) -> None:
    await sender.edit(MessageRef("whatsapp", SELLER, "SM1"), Reply(text="✅ Paid"))
    assert fake_twilio.requests == []


async def test_record_inbound_upserts_and_reenables(db: Database, clock: FakeClock) -> None:
    targets = table(ChatTarget)
    await record_inbound(db, CUSTOMER, clock.now - timedelta(days=3))
    async with db.write() as conn:
        await conn.execute(targets.update().values(disabled_at=clock.now, disabled_reason="63016"))
    await record_inbound(db, CUSTOMER, clock.now)
    async with db.read() as conn:
        rows = (await conn.execute(select(targets).where(targets.c.address == CUSTOMER))).all()
    assert len(rows) == 1
    assert rows[0].last_inbound_at == clock.now and rows[0].disabled_at is None


def _paid(link: PaymentLink) -> Any:
    from core.ports import PaymentEvent

    return PaymentEvent(provider="sandbox", event_id=f"evt_{link.id}", kind="payment.succeeded", link_id=link.id,
                        provider_ref=f"ch_{link.id}", amount_minor=link.amount_minor, currency=link.currency)


# ---------------------------------------------------------------- the webhook, with a stub conversation

PUBLIC = "https://paylinks.example.com"


class Webhook:
    def __init__(self, client: TestClient, hook: WhatsAppWebhook, handled: list[IncomingMessage],
                 fake: FakeTwilio) -> None:
        self.client, self.hook, self.handled, self.fake = client, hook, handled, fake

    async def post(self, form: dict[str, str], *, signature: str | None = "sign",
                   url: str = PUBLIC + "/whatsapp/webhook", token: str | None = None) -> Any:
        headers = {}
        if signature == "sign":
            signature = RequestValidator(token or self.fake.auth_token).compute_signature(url, form)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        response = await self.client.post("/whatsapp/webhook", data=form, headers=headers)
        await self.hook.drain()
        return response


def inbound(text: str, sender: str = SELLER, sid: str = "SM1", **extra: str) -> dict[str, str]:
    return {"SmsMessageSid": sid, "MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": "whatsapp:+14155238886", "Body": text, "NumMedia": "0", "ProfileName": "Sam",
            "WaId": sender.removeprefix("whatsapp:+"), **extra}


@pytest.fixture
async def webhook(sender: WhatsAppSender, db: Database, fake_twilio: FakeTwilio,
                  clock: FakeClock) -> AsyncIterator[Webhook]:
    handled: list[IncomingMessage] = []
    attached: list[tuple[str, MessageRef]] = []

    async def handle(message: IncomingMessage) -> list[Reply]:
        handled.append(message)
        return [Reply(text=f"you said **{message.text}**")]

    async def attach(link_id: str, ref: MessageRef) -> None:
        attached.append((link_id, ref))

    hook = WhatsAppWebhook(public_base_url=PUBLIC, auth_token=fake_twilio.auth_token, db=db, sender=sender,
                           handle=handle, attach_message=attach, clock=clock)
    app = web.Application()
    app.router.add_routes(hook.routes())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield Webhook(client, hook, handled, fake_twilio)
    await hook.close()
    await client.close()


async def test_signed_message_is_answered_through_the_rest_api(webhook: Webhook, db: Database,
                                                               clock: FakeClock) -> None:
    response = await webhook.post(inbound("links"))
    assert response.status == 200
    assert "<Response></Response>" in await response.text()  # empty TwiML: answers go via the REST API
    assert [m.text for m in webhook.handled] == ["links"]
    assert webhook.handled[0].user_id == "+6598765432"
    [sent] = webhook.fake.messages
    assert (sent.to, sent.body) == (SELLER, "you said *links*")
    async with db.read() as conn:
        target = (await conn.execute(select(table(ChatTarget)))).one()
    assert (target.platform, target.address, target.last_inbound_at) == ("whatsapp", SELLER, clock.now)


async def test_unknown_extra_fields_are_part_of_the_signature(webhook: Webhook) -> None:
    response = await webhook.post(inbound("links", ReferralNumMedia="0", ButtonPayload="x"))
    assert response.status == 200 and len(webhook.handled) == 1


@pytest.mark.parametrize("case", ["unsigned", "garbage", "wrong_token", "request_url", "tampered"])
async def test_bad_signatures_are_refused(webhook: Webhook, db: Database, case: str) -> None:
    form = inbound("charge 25 cake")
    if case == "unsigned":
        response = await webhook.post(form, signature=None)
    elif case == "garbage":
        response = await webhook.post(form, signature="bm90IGEgc2lnbmF0dXJl")
    elif case == "wrong_token":
        response = await webhook.post(form, token="another-accounts-token")
    elif case == "request_url":  # signed for the internal URL, not the configured public one
        response = await webhook.post(form, url=str(webhook.client.make_url("/whatsapp/webhook")))
    else:
        signature = RequestValidator(webhook.fake.auth_token).compute_signature(
            PUBLIC + "/whatsapp/webhook", form)
        response = await webhook.post({**form, "Body": "charge 9999 cake"}, signature=signature)
    assert response.status == 403
    assert webhook.handled == [] and webhook.fake.requests == []
    async with db.read() as conn:
        assert (await conn.execute(select(table(ChatTarget)))).all() == []


async def test_no_auth_token_configured_fails_closed(sender: WhatsAppSender, db: Database) -> None:
    async def handle(message: IncomingMessage) -> list[Reply]:
        raise AssertionError("must not be called")

    async def attach(link_id: str, ref: MessageRef) -> None:
        raise AssertionError("must not be called")

    hook = WhatsAppWebhook(public_base_url=PUBLIC, auth_token="", db=db, sender=sender, handle=handle,
                           attach_message=attach)
    form = inbound("hi")
    assert not hook.verify(PUBLIC + "/whatsapp/webhook", form, RequestValidator("").compute_signature(
        PUBLIC + "/whatsapp/webhook", form))


async def test_a_redelivered_message_is_answered_once(webhook: Webhook, db: Database) -> None:
    # The dedupe is the conversation core's (core.deliveries), by the MessageSid the webhook hands over.
    echo = webhook.hook.handle

    async def once(message: IncomingMessage) -> list[Reply]:
        return await DeliveryLog(db).once(message, echo)

    webhook.hook.handle = once
    await webhook.post(inbound("links", sid="SMdup"))
    await webhook.post(inbound("links", sid="SMdup"))
    assert [m.delivery_id for m in webhook.handled] == ["SMdup"] and len(webhook.fake.messages) == 1
    await webhook.post(inbound("links", sid="SMother"))
    assert len(webhook.handled) == 2 and len(webhook.fake.messages) == 2


async def test_answer_retries_after_a_rate_limit(webhook: Webhook) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    webhook.hook.sleep = no_sleep
    webhook.fake.fail_next(429, 20429, retry_after=2)
    await webhook.post(inbound("links"))
    assert waits == [2.0]
    assert [r.status for r in webhook.fake.requests] == [429, 201]


async def test_answer_retries_server_errors_with_backoff_up_to_three_attempts(webhook: Webhook) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    webhook.hook.sleep = no_sleep
    webhook.fake.fail_next(503, times=5)
    await webhook.post(inbound("links"))
    assert waits == [2.0, 4.0]  # three attempts in all, then the answer is dropped
    assert [r.status for r in webhook.fake.requests] == [503, 503, 503]


async def test_answer_gives_up_on_a_wait_longer_than_a_chat_answer_is_worth(webhook: Webhook) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    webhook.hook.sleep = no_sleep
    webhook.fake.fail_next(429, 20429, retry_after=120)
    await webhook.post(inbound("links"))
    assert waits == [] and [r.status for r in webhook.fake.requests] == [429]


# ---------------------------------------------------------------- settings


def test_enabled_whatsapp_is_checked_at_start_up() -> None:
    from bots.config import ConfigError, load_settings

    base = {"PAYLINKS_WHATSAPP__ENABLED": "true"}
    with pytest.raises(ConfigError, match=r"whatsapp\.account_sid: required"):
        load_settings(env=base)
    good = {**base, "PAYLINKS_WHATSAPP__ACCOUNT_SID": "AC" + "1" * 32, "PAYLINKS_WHATSAPP__AUTH_TOKEN": "t",
            "PAYLINKS_WHATSAPP__FROM_NUMBER": "whatsapp:+14155238886"}
    assert load_settings(env=good).whatsapp.enabled
    with pytest.raises(ConfigError, match=r"whatsapp\.from_number"):
        load_settings(env={**good, "PAYLINKS_WHATSAPP__FROM_NUMBER": "sandbox"})
    with pytest.raises(ConfigError, match=r"whatsapp\.account_sid"):
        load_settings(env={**good, "PAYLINKS_WHATSAPP__ACCOUNT_SID": "SK123"})
    assert not load_settings(env={}).whatsapp.enabled  # disabled: nothing required


def test_customer_addresses_need_a_number_with_its_country_code() -> None:
    # The one WhatsApp address rule (adapters/whatsapp/address.py), as the outbox applies it to a link's
    # customer phone through the plug-in.
    from adapters.whatsapp.plugin import PLUGIN

    assert PLUGIN.customer_address("+65 9123 4567") == "whatsapp:+6591234567"
    assert PLUGIN.customer_address("whatsapp:+6591234567") == "whatsapp:+6591234567"
    assert PLUGIN.customer_address("91234567") is None and PLUGIN.customer_address(None) is None
    assert PLUGIN.customer_address("+12") is None
    assert PLUGIN.member_address("6591234567") == "whatsapp:+6591234567"
    assert PLUGIN.member_address("not a number") is None


# ---------------------------------------------------------------- the core's markup as this platform's


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**S$25.00** — cake", "*S$25.00* — cake"),
        ("ref `INV-1`", "ref ```INV-1```"),
        ("<b>&", "<b>&"),  # WhatsApp shows text as written
    ],
)
def test_whatsapp(text: str, expected: str) -> None:
    assert whatsapp_channel.to_whatsapp(text) == expected
