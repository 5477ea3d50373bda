"""Email to customers against a real SMTP server (aiosmtpd on 127.0.0.1), on SQLite and PostgreSQL:
message structure and branding, RFC 8058 one-click unsubscribe honoured thereafter, a 550 bounce told to
the seller, and the embedded default keeping .eml files beside the database."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select, update

from bots.config import Settings
from bots.dispatcher import Dispatcher, build_dispatcher
from core.models import Member, Merchant, OutboxMessage
from core.outbox import FOLLOWUP_KIND, NOTICE_KIND
from core.ports import PaymentEvent
from core.sql import table
from tests.adapters.web.api_support import Shop, make_shop
from tests.clock import FakeClock
from tests.conftest import LiveApp, free_port, make_settings, start_live_app

OUTBOX = table(OutboxMessage)
MERCHANTS = table(Merchant)
MEMBERS = table(Member)
BOUNCING = "nobody@example.com"


class Mailbox:
    """aiosmtpd handler: keeps every message, refuses BOUNCING with 550 at RCPT."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address == BOUNCING:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def settings(database_url: str, mailbox: tuple[Mailbox, int]) -> Settings:
    return make_settings(database_url, email__host="127.0.0.1", email__port=mailbox[1], email__security="none",
                         email__from_address="shop@paylinks.example", email__reply_to="help@cakes.example",
                         outbox__email_per_sender="1000/s", limits__bad_auth_per_ip="1000/min")


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveApp]:
    app, client = await start_live_app(settings, run_jobs=False, clock=FakeClock())
    yield app
    await client.close()


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    made = await make_shop(live)
    async with live.services.db.write() as conn:
        await conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == made.merchant_id).values(brand_color="#d9480f"))
    return made


@pytest.fixture
def dispatcher(live: LiveApp) -> Dispatcher:
    return build_dispatcher(live.services)


async def link_to(shop: Shop, address: str, description: str = "Chocolate cake") -> dict[str, Any]:
    resp = await shop.api.create({"amount": "25.00", "description": description,
                                  "customer": {"name": "Ana", "email": address}})
    assert resp.status == 201, resp.text
    return resp.body  # type: ignore[no-any-return]


async def test_the_link_email_is_multipart_branded_with_a_button_an_inline_qr_and_one_click_unsubscribe(
    live: LiveApp, shop: Shop, dispatcher: Dispatcher, mailbox: tuple[Mailbox, int]
) -> None:
    link = await link_to(shop, "Ana@Example.com")
    await dispatcher.run_once()
    (message,) = mailbox[0].messages
    assert message["To"] == "Ana@example.com"
    assert message["From"] == "Cake Shop <shop@paylinks.example>" and message["Reply-To"] == "help@cakes.example"
    assert message["Subject"] == "Cake Shop asks you to pay S$25.00"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert link["url"] in plain.get_content()
    related = [part for part in message.iter_parts() if part.get_content_type() == "multipart/related"]
    assert related, "the HTML part and its QR code travel together"
    (qr,) = [p for p in related[0].iter_parts() if p.get_content_type() == "image/png"]
    assert qr.get_content().startswith(b"\x89PNG")
    page = html.get_content()
    assert f'href="{link["url"]}"' in page and "#d9480f" in page and "Cake Shop" in page
    assert f'cid:{qr["Content-ID"].strip("<>")}' in page
    unsubscribe = message["List-Unsubscribe"]
    assert unsubscribe.startswith(f"<{live.base_url}/u/") and unsubscribe.endswith(">")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_a_receipt_follows_payment(live: LiveApp, shop: Shop, dispatcher: Dispatcher,
                                         mailbox: tuple[Mailbox, int]) -> None:
    link = await link_to(shop, "ana@example.com")
    await live.services.links.record_payment(PaymentEvent("sandbox", "evt_1", "payment.succeeded", link["id"],
                                                          "ch_1", 2500, "SGD"))
    await dispatcher.run_once()
    subjects = [m["Subject"] for m in mailbox[0].messages]
    assert subjects == ["Cake Shop asks you to pay S$25.00", "Receipt: S$25.00 to Cake Shop"]
    receipt = mailbox[0].messages[1].get_body(preferencelist=("plain",))
    assert receipt is not None and "Payment received" in receipt.get_content()
    assert link["url"] not in receipt.get_content()


async def test_one_click_unsubscribe_stops_that_shops_emails_to_that_customer(
    live: LiveApp, shop: Shop, dispatcher: Dispatcher, mailbox: tuple[Mailbox, int]
) -> None:
    await link_to(shop, "ana@example.com")
    await dispatcher.run_once()
    path = mailbox[0].messages[0]["List-Unsubscribe"].strip("<>").removeprefix(live.base_url)
    page = await live.client.get(path)
    assert page.status == 200 and "Unsubscribe" in await page.text() and 'method="post"' in await page.text()
    # What a mail client's button sends (RFC 8058), with no page in between.
    clicked = await live.client.post(path, data="List-Unsubscribe=One-Click",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert clicked.status == 200 and "no longer get emails from Cake Shop" in await clicked.text()
    await link_to(shop, "ana@example.com", "Second cake")
    other = await make_shop(live, "Tea House")
    await other.api.create({"amount": "3.00", "description": "Tea", "customer": {"email": "ana@example.com"}})
    await dispatcher.run_once()
    assert [m["Subject"] for m in mailbox[0].messages] == ["Cake Shop asks you to pay S$25.00",
                                                          "Tea House asks you to pay S$3.00"]
    async with live.services.db.read() as conn:
        dropped = (await conn.execute(select(OUTBOX.c.status, OUTBOX.c.last_error).where(
            OUTBOX.c.platform == "email", OUTBOX.c.merchant_id == shop.merchant_id).order_by(OUTBOX.c.id))).all()
    assert dropped[1].status == "dead" and "unsubscribed" in dropped[1].last_error
    assert (await live.client.get("/u/not-a-real-token-at-all")).status == 404


async def test_a_550_bounce_is_told_to_the_seller(live: LiveApp, shop: Shop, dispatcher: Dispatcher) -> None:
    async with live.services.db.write() as conn:
        await conn.execute(insert(MEMBERS), {"merchant_id": shop.merchant_id, "platform": "telegram",
                                             "platform_user_id": "1001", "display_name": "Ana", "role": "owner",
                                             "created_at": live.services.clock()})
    await link_to(shop, BOUNCING)
    await dispatcher.run_once()
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(OUTBOX).order_by(OUTBOX.c.id))).all()
    sent = next(r for r in rows if r.platform == "email")
    assert sent.status == "dead" and "550" in sent.last_error
    (notice,) = [r for r in rows if r.kind == NOTICE_KIND]
    assert (notice.platform, notice.address) == ("telegram", "1001")
    text = notice.payload["reply"]["text"]
    assert BOUNCING in text and "payment link" in text and "550" in text


async def test_without_a_host_mail_is_kept_as_eml_files_beside_the_database(
    sqlite_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(sqlite_database_url)
    app, client = await start_live_app(settings, run_jobs=False)
    try:
        made = await make_shop(app)
        await made.api.create({"amount": "9.50", "description": "Scones", "customer": {"email": "bo@example.com"}})
        with caplog.at_level("INFO", logger="paylinks.email"):
            await build_dispatcher(app.services).run_once()
    finally:
        await client.close()
    folder = Path(sqlite_database_url.split(":///", 1)[1]).parent / "paylinks-mail"
    (path,) = list(folder.glob("*.eml"))
    kept = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert kept["To"] == "bo@example.com" and "S$9.50" in kept["Subject"]
    assert str(path) in caplog.text


async def test_notify_chooses_the_channels_and_the_default_is_every_one_the_customer_has(
    live: LiveApp, shop: Shop
) -> None:
    for notify, description in ((None, "default"), (["email"], "email"), (["whatsapp"], "whatsapp"), ([], "none")):
        body: dict[str, Any] = {"amount": "2.00", "description": description, "customer": {"email": "a@example.com"}}
        if notify is not None:
            body["notify"] = notify
        assert (await shop.api.create(body)).status == 201
    bad = await shop.api.create({"amount": "2.00", "description": "x", "notify": ["pigeon"]})
    assert bad.status == 400 and bad.error["field"].startswith("notify")
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(OUTBOX.c.payload).where(OUTBOX.c.platform == "email"))).all()
    assert sorted(r.payload["facts"]["description"] for r in rows) == ["default", "email"]


async def test_the_sellers_charge_message_says_where_the_link_went_and_then_that_it_was_sent(
    chat: Any, mailbox: tuple[Mailbox, int]
) -> None:
    text = await chat.text("/charge 25 cake to alice@example.com")
    assert "📨 Sent to alice@example.com by email" in text, text
    assert "Sent to" not in await chat.text("/charge 5 tea")
    assert "Sent to alice@example.com by email" in await chat.text("/charge 3 tea to alice@example.com via email")
    await build_dispatcher(chat.services).run_once()
    assert len(mailbox[0].messages) == 2
    async with chat.services.db.read() as conn:
        followups = (await conn.execute(select(OUTBOX).where(OUTBOX.c.kind == FOLLOWUP_KIND))).all()
    assert sorted((r.platform, r.address) for r in followups) == [("console", "alice")] * 2
    assert all("was sent to alice@example.com by email" in r.payload["reply"]["text"] for r in followups)


async def test_a_refund_is_told_to_the_customer_by_email(live: LiveApp, shop: Shop, dispatcher: Dispatcher,
                                                         mailbox: tuple[Mailbox, int]) -> None:
    from adapters.payments.sandbox.provider import SandboxProvider

    made = await link_to(shop, "ana@example.com")
    link = await live.services.links.get(made["id"])
    assert link is not None
    await live.services.links.record_payment(PaymentEvent("sandbox", "evt_1", "payment.succeeded", link.id,
                                                          "ch_1", 2500, "SGD"))
    answer = await shop.api.post(f"/api/v1/links/{link.id}/refund", json_body={"amount": "10.00"})
    assert answer.status == 201, answer.text
    provider = live.services.provider
    assert isinstance(provider, SandboxProvider)
    await provider.drain()
    await dispatcher.run_once()
    by_subject = {m["Subject"]: m for m in mailbox[0].messages}
    assert sorted(by_subject) == ["Cake Shop asks you to pay S$25.00", "Receipt: S$25.00 to Cake Shop",
                                  "Refund: S$10.00 from Cake Shop"]
    message = by_subject["Refund: S$10.00 from Cake Shop"]
    refund = message.get_body(preferencelist=("plain",))
    assert refund is not None and "refunded your payment" in refund.get_content()
    assert "S$10.00" in refund.get_content() and made["url"] not in refund.get_content()
    assert message["List-Unsubscribe"].startswith(f"<{live.base_url}/u/")


async def test_the_dashboards_new_link_form_chooses_the_channels_as_the_api_does(live: LiveApp) -> None:
    """Issue 14 point 3: /dashboard/links/new has the API's `notify` (ticked boxes; none ticked: nothing)."""
    from tests.adapters.web.dashboard_support import shop_with_member, sign_in, signin_url

    merchant_id, owner_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
    form = await (await live.client.get("/dashboard/links/new")).text()
    assert form.count('name="notify"') == 3 and form.count(" checked>") == 3
    for ticked, description in ((["email", "sms"], "ticked"), ([], "unticked")):
        data = [("csrf", csrf), ("amount", "3.00"), ("description", description), ("notify_shown", "1"),
                ("customer_email", "c@example.com"), *(("notify", channel) for channel in ticked)]
        made = await live.client.post("/dashboard/links/new", data=data, allow_redirects=False)
        assert made.status == 303, await made.text()
    refused = await live.client.post("/dashboard/links/new", data=[
        ("csrf", csrf), ("amount", "3.00"), ("description", "bad"), ("notify_shown", "1"),
        ("customer_email", "not an address"), ("notify", "email")])
    page = await refused.text()
    assert refused.status == 422 and 'value="email" checked' in page and 'value="sms">' in page
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(OUTBOX.c.payload).where(OUTBOX.c.platform == "email"))).all()
    assert [r.payload["facts"]["description"] for r in rows] == ["ticked"]
