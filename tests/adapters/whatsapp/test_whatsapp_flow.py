"""WhatsApp end to end: the real app (webhook, conversation, outbox dispatcher) and the real twilio client
against the fake Twilio API on 127.0.0.1. Sellers and customers are phones; messages are signed like
Twilio signs them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, update
from twilio.request_validator import RequestValidator

from adapters.whatsapp import WHATSAPP_WEBHOOK, WhatsAppWebhook
from bots.config import Secret, Settings
from core.clock import utcnow
from core.models import ChatTarget, OutboxMessage, PaymentLink
from core.ports import PaymentEvent
from core.sql import table
from tests.conftest import LiveApp, start_live_app
from tests.fakes.twilio import FakeTwilio, Request

SELLER = "whatsapp:+6598765432"
CUSTOMER = "whatsapp:+6591234567"
SANDBOX = "whatsapp:+14155238886"
LINK_TEMPLATE = "HX" + "1" * 32
RECEIPT_TEMPLATE = "HX" + "2" * 32
TARGETS = table(ChatTarget)
OUTBOX = table(OutboxMessage)
LINKS = table(PaymentLink)

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = 10.0) -> T:
    """Wait for a state the dispatcher reaches in the background (re-checked every 20 ms)."""
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return result


class Phone:
    """A WhatsApp user writing to the paylinks number, and what the fake Twilio delivered to them."""

    def __init__(self, harness: Harness, address: str, name: str) -> None:
        self.harness, self.address, self.name = harness, address, name
        self._sid = 0

    def form(self, text: str) -> dict[str, str]:
        self._sid += 1
        sid = f"SM{self.address[-4:]}{self._sid:028d}"
        return {
            "SmsMessageSid": sid, "MessageSid": sid, "SmsSid": sid, "AccountSid": self.harness.fake.account_sid,
            "From": self.address, "To": SANDBOX, "Body": text, "NumMedia": "0", "NumSegments": "1",
            "ProfileName": self.name, "WaId": self.address.removeprefix("whatsapp:+"), "SmsStatus": "received",
            "ApiVersion": "2010-04-01", "MessageType": "text",
        }

    async def say(self, text: str) -> list[Request]:
        """Write to paylinks; returns what paylinks answered this phone directly (the conversation)."""
        before = len(self.received)
        status = await self.harness.post(self.form(text))
        assert status == 200
        await self.harness.webhook.drain()
        return self.received[before:]

    @property
    def received(self) -> list[Request]:
        return self.harness.fake.messages_to(self.address)

    async def wait_for(self, count: int) -> list[Request]:
        async def enough() -> list[Request] | None:
            return self.received if len(self.received) >= count else None

        return await eventually(enough)


class Harness:
    def __init__(self, live: LiveApp, fake: FakeTwilio) -> None:
        self.live, self.fake = live, fake
        self.seller = Phone(self, SELLER, "Sam's Cakes")
        self.customer = Phone(self, CUSTOMER, "Alice")

    @property
    def webhook(self) -> WhatsAppWebhook:
        return self.live.app[WHATSAPP_WEBHOOK]

    @property
    def url(self) -> str:
        return self.live.base_url + "/whatsapp/webhook"

    async def post(self, form: dict[str, str], *, signature: str | None = None, sign: bool = True) -> int:
        headers = {}
        if sign:
            headers["X-Twilio-Signature"] = signature or RequestValidator(self.fake.auth_token).compute_signature(
                self.url, form)
        response = await self.live.client.post("/whatsapp/webhook", data=form, headers=headers)
        await response.read()
        return response.status

    async def charge(self, text: str) -> tuple[str, Request]:
        [answer] = await self.seller.say(text)
        async with self.live.services.db.read() as conn:
            link_id = (await conn.execute(select(LINKS.c.id).order_by(LINKS.c.created_at.desc()))).scalars().first()
        assert link_id and link_id in (answer.body or "")
        return link_id, answer

    async def pay(self, link_id: str) -> None:
        link = await self.live.services.links.get(link_id)
        assert link is not None
        outcome, _ = await self.live.services.links.record_payment(PaymentEvent(
            provider="sandbox", event_id=f"evt_{link_id}", kind="payment.succeeded", link_id=link_id,
            provider_ref=f"pr_{link_id}", amount_minor=link.amount_minor, currency=link.currency, payer_name="Alice",
        ))
        assert outcome.value == "paid"

    async def rows(self, kind_suffix: str = "") -> list[Any]:
        async with self.live.services.db.read() as conn:
            rows = (await conn.execute(select(OUTBOX).order_by(OUTBOX.c.id))).all()
        return [r for r in rows if r.kind.endswith(kind_suffix)]

    async def settled(self, kind_suffix: str) -> Any:
        """The first outbox row of this kind once it is sent or dead."""
        async def done() -> Any:
            rows = [r for r in await self.rows(kind_suffix) if r.status in ("sent", "dead")]
            return rows[0] if rows else None

        return await eventually(done)

    async def target(self, address: str) -> Any:
        async with self.live.services.db.read() as conn:
            return (await conn.execute(select(TARGETS).where(TARGETS.c.address == address))).first()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    server = FakeTwilio()
    await server.start()
    yield server
    await server.close()


def whatsapp_settings(settings: Settings, fake: FakeTwilio, templates: dict[str, Any] | None = None) -> Settings:
    wa = settings.whatsapp
    wa.enabled = True
    wa.account_sid = fake.account_sid
    wa.auth_token = Secret(fake.auth_token)
    wa.from_number = SANDBOX
    wa.api_base_url = fake.base_url
    wa.templates = templates or {}
    return settings


async def open_harness(settings: Settings, fake: FakeTwilio, **templates: Any) -> AsyncIterator[Harness]:
    live, client = await start_live_app(whatsapp_settings(settings, fake, templates))
    try:
        yield Harness(live, fake)
    finally:
        await client.close()


@pytest.fixture
async def wa(settings: Settings, fake: FakeTwilio) -> AsyncIterator[Harness]:
    async for harness in open_harness(settings, fake):
        yield harness


@pytest.fixture
async def wa_templates(settings: Settings, fake: FakeTwilio) -> AsyncIterator[Harness]:
    async for harness in open_harness(
        settings, fake, payment_link={"content_sid": LINK_TEMPLATE},
        receipt={"content_sid": RECEIPT_TEMPLATE, "variables": {"1": "amount", "2": "merchant"}},
    ):
        yield harness


# ---------------------------------------------------------------- the door


async def test_unsigned_and_forged_requests_are_refused(wa: Harness) -> None:
    form = wa.seller.form("charge 25 cake")
    assert await wa.post(form, sign=False) == 403
    assert await wa.post(form, signature="c2lnbmF0dXJl") == 403
    forged = RequestValidator("not-the-auth-token").compute_signature(wa.url, form)
    assert await wa.post(form, signature=forged) == 403
    await wa.webhook.drain()
    assert wa.fake.requests == [] and await wa.target(SELLER) is None
    assert await wa.live.services.merchants.list_merchants() == []


# ---------------------------------------------------------------- commands without slashes


async def test_seller_runs_the_shop_without_slashes(wa: Harness) -> None:
    [welcome] = await wa.seller.say("start")
    assert welcome.fields["From"] == SANDBOX and welcome.content_sid is None
    assert "Sam" in (welcome.body or "")
    [merchant] = await wa.live.services.merchants.list_merchants()

    link_id, card = await wa.charge("charge 25 cake")
    body = card.body or ""
    assert "*$25.00*" in body and "cake" in body and "**" not in body  # WhatsApp bold, one star
    assert f"{wa.live.base_url}/p/{link_id}" in body
    link = await wa.live.services.links.get(link_id)
    assert link is not None and link.merchant_id == merchant.id
    # Where the card was posted is kept for the paid alert.
    assert link.origin_message == {"platform": "whatsapp", "address": SELLER, "message_id": card.sid, "extra": {}}

    [listing] = await wa.seller.say("links")
    assert "cake" in (listing.body or "")
    [status] = await wa.seller.say(f"status {link_id}")
    assert "cake" in (status.body or "") and "$25.00" in (status.body or "")

    [mistake] = await wa.seller.say("charge 25.555 cake")
    assert "2 decimals" in (mistake.body or "") or "decimal" in (mistake.body or "")

    target = await wa.target(SELLER)
    assert target.platform == "whatsapp" and target.last_inbound_at is not None


# ---------------------------------------------------------------- links to customers


async def test_link_to_a_customer_inside_the_window_is_free_form(wa: Harness) -> None:
    await wa.customer.say("hi")  # the customer wrote first: their 24-hour window is open
    before = len(wa.customer.received)
    await wa.seller.say("start")
    link_id, card = await wa.charge("charge 25 cake to +65 9123 4567")
    assert "+6591234567" in (card.body or "")  # the seller's confirmation names the customer

    received = await wa.customer.wait_for(before + 1)
    sent = received[before]
    assert sent.content_sid is None
    assert f"/p/{link_id}" in (sent.body or "") and "$25.00" in (sent.body or "")
    row = await wa.settled(".customer_link")
    assert row.status == "sent"


async def test_link_to_a_customer_outside_the_window_uses_the_template(wa_templates: Harness) -> None:
    wa = wa_templates
    await wa.seller.say("start")
    link_id, _ = await wa.charge("charge 25 cake to +65 9123 4567")  # the customer never wrote to us

    [sent] = await wa.customer.wait_for(1)
    assert sent.body is None and sent.content_sid == LINK_TEMPLATE
    variables = json.loads(sent.content_variables or "{}")
    assert variables["2"] == "$25.00" and variables["3"] == "cake"
    assert variables["4"] == f"{wa.live.base_url}/p/{link_id}"


async def test_an_old_window_counts_as_closed(wa_templates: Harness) -> None:
    wa = wa_templates
    await wa.customer.say("hi")
    async with wa.live.services.db.write() as conn:  # that was 25 hours ago
        await conn.execute(update(TARGETS).where(TARGETS.c.address == CUSTOMER)
                           .values(last_inbound_at=utcnow() - timedelta(hours=25)))
    before = len(wa.customer.received)
    await wa.seller.say("start")
    await wa.charge("charge 25 cake to +65 9123 4567")
    sent = (await wa.customer.wait_for(before + 1))[before]
    assert sent.content_sid == LINK_TEMPLATE and sent.body is None


async def test_without_a_template_the_seller_gets_the_link_to_forward(wa: Harness) -> None:
    await wa.seller.say("start")
    link_id, _ = await wa.charge("charge 25 cake to +65 9123 4567")

    row = await wa.settled(".customer_link")
    assert row.status == "dead" and "NoTemplate" in (row.last_error or "")
    notices = await wa.seller.wait_for(3)  # welcome, card, then the notice
    notice = notices[2].body or ""
    assert "could not send the payment link" in notice and "+6591234567" in notice
    assert f"{wa.live.base_url}/p/{link_id}" in notice  # to forward by hand
    assert "24 hours" in notice
    assert wa.customer.received == []
    assert wa.fake.messages_to(CUSTOMER) == [] and all(r.to != CUSTOMER for r in wa.fake.requests)


async def test_twilio_63016_is_permanent_for_that_message(wa: Harness) -> None:
    await wa.customer.say("hi")
    await wa.seller.say("start")
    wa.fake.closed_windows.add(CUSTOMER)  # Twilio says the window is closed, and there is no template
    link_id, _ = await wa.charge("charge 25 cake to +65 9123 4567")

    row = await wa.settled(".customer_link")
    assert row.status == "dead" and "63016" in (row.last_error or "") and row.attempts == 1
    notice = (await wa.seller.wait_for(3))[2].body or ""
    assert "could not send the payment link" in notice and f"/p/{link_id}" in notice
    # The customer writing again opens the window and makes them reachable again.
    wa.fake.closed_windows.clear()
    await wa.customer.say("sorry, what was the link?")
    assert (await wa.target(CUSTOMER)).disabled_at is None


# ---------------------------------------------------------------- paid alerts and receipts


async def test_paid_alert_to_the_seller_and_receipt_to_the_customer(wa: Harness) -> None:
    await wa.customer.say("hi")
    await wa.seller.say("start")
    link_id, _ = await wa.charge("charge 25 cake to +65 9123 4567")
    await wa.settled(".customer_link")
    seller_before, customer_before = len(wa.seller.received), len(wa.customer.received)

    await wa.pay(link_id)

    alert = (await wa.seller.wait_for(seller_before + 1))[seller_before]
    assert "✅ Paid" in (alert.body or "") and "$25.00" in (alert.body or "")
    receipt = (await wa.customer.wait_for(customer_before + 1))[customer_before]
    assert "Payment received" in (receipt.body or "") and "$25.00" in (receipt.body or "")
    assert (await wa.settled(".receipt")).status == "sent"
    assert (await wa.settled("link.paid.alert")).status == "sent"
    # WhatsApp cannot edit the card: the edit row is done without a second message.
    assert (await wa.settled("link.paid.edit")).status == "sent"
    assert len(wa.seller.received) == seller_before + 1


async def test_receipt_outside_the_window_uses_the_receipt_template(wa_templates: Harness) -> None:
    wa = wa_templates
    await wa.seller.say("start")
    link_id, _ = await wa.charge("charge 25 cake to +65 9123 4567")
    await wa.customer.wait_for(1)  # the link, by template

    await wa.pay(link_id)

    receipt = (await wa.customer.wait_for(2))[1]
    assert receipt.content_sid == RECEIPT_TEMPLATE and receipt.body is None
    assert json.loads(receipt.content_variables or "{}") == {"1": "$25.00", "2": "Sam's Cakes"}


async def test_rate_limited_alert_is_retried_after_retry_after(wa: Harness) -> None:
    await wa.seller.say("start")
    link_id, _ = await wa.charge("charge 25 cake")
    before = len(wa.seller.received)
    wa.fake.fail_next(429, 20429, retry_after=1)

    await wa.pay(link_id)

    alert = (await wa.seller.wait_for(before + 1))[before]
    assert "✅ Paid" in (alert.body or "")
    row = await wa.settled("link.paid.alert")
    assert row.status == "sent" and row.attempts == 2
    assert [r.status for r in wa.fake.requests if r.to == SELLER][-2:] == [429, 201]


async def test_an_ambiguous_amount_is_asked_with_numbered_choices(wa: Harness) -> None:
    await wa.seller.say("start")
    [question] = await wa.seller.say("charge 25k wedding cake")
    body = question.body or ""
    assert "```25k``` is *$25,000.00*" in body and "1. Yes: $25,000.00 — wedding cake" in body
    assert "answer:" not in body  # answer buttons never reach WhatsApp, the numbers replace them
    async with wa.live.services.db.read() as conn:
        assert (await conn.execute(select(LINKS.c.id))).first() is None
    link_id, card = await wa.charge("1")
    assert "$25,000.00" in (card.body or "")
    link = await wa.live.services.links.get(link_id)
    assert link is not None and (link.amount_minor, link.description) == (2_500_000, "wedding cake")


async def test_the_dashboards_resend_asks_first_then_sends_the_link_again(wa: Harness) -> None:
    """Issue 14 point 3: the link page's Resend button, with its confirmation, sends on WhatsApp again."""
    from tests.adapters.web.dashboard_support import CSRF, sign_in, signin_url

    await wa.customer.say("hi")
    await wa.seller.say("start")
    link_id, _card = await wa.charge("charge 25 cake to +65 9123 4567")
    await wa.settled(".customer_link")
    before = len(wa.customer.received)
    link = await wa.live.services.links.get(link_id)
    assert link is not None
    await sign_in(wa.live.client, await signin_url(wa.live, link.merchant_id))
    page = await (await wa.live.client.get(f"/dashboard/links/{link_id}")).text()
    assert f'href="/dashboard/links/{link_id}/resend">Resend to customer' in page
    confirm = await (await wa.live.client.get(f"/dashboard/links/{link_id}/resend")).text()
    assert "Send the link again?" in confirm and "+6591234567" in confirm
    assert len(await wa.rows(".customer_link")) == 1  # the confirmation page sends nothing
    token = CSRF.search(confirm)
    assert token is not None
    sent = await wa.live.client.post(f"/dashboard/links/{link_id}/resend", data={"csrf": token.group(1)},
                                     allow_redirects=False)
    assert (sent.status, sent.headers["Location"]) == (303, f"/dashboard/links/{link_id}?done=resent")
    received = await wa.customer.wait_for(before + 1)
    assert f"/p/{link_id}" in (received[before].body or "")
    # Cancelled: no Resend button, and the page refuses.
    await wa.live.services.links.cancel(link_id, link.merchant_id)
    assert (await wa.live.client.get(f"/dashboard/links/{link_id}/resend")).status == 403
    page = await (await wa.live.client.get(f"/dashboard/links/{link_id}")).text()
    assert "Resend to customer" not in page


async def test_invoice_sends_the_pdf_as_media_inside_the_window(wa: Harness) -> None:
    await wa.seller.say("start")
    # The seller just wrote, so their window is open: the answer carries the PDF as media.
    [answer] = await wa.seller.say("invoice to alice@example.com\n2 x cake 25\ndelivery 5\ntax 9%")
    assert "Subtotal" in (answer.body or "")
    assert answer.media_url is not None and answer.media_url.endswith("/invoice.pdf")
    link_id = answer.media_url.split("/p/")[1].split("/")[0]
    pdf = await wa.live.client.get(f"/p/{link_id}/invoice.pdf")  # what Twilio fetches from that URL
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF-")
