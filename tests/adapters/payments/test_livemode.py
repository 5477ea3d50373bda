"""Test and live money never mix (issue 12 point 6): `livemode` on links and payments, in the API's JSON
and as a "test mode" badge on the pay page; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bots.config import Secret, Settings
from core.links import LinkDraft
from core.models import LinkStatus, PaymentStatus
from core.money import Money
from core.ports import PaymentEvent
from tests.adapters.payments.test_stripe_plugin import WEBHOOK, make_link, press_pay
from tests.adapters.web.api_support import make_shop
from tests.adapters.web.pages_support import page_of
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.stripe import FakeStripe

LIVE_KEY = "sk_live_paylinks_fake"
TEST_KEY = "sk_test_paylinks_fake"
WHSEC = "whsec_test_paylinks"


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    server = await FakeStripe(secret_keys=(LIVE_KEY, TEST_KEY), webhook_secret=WHSEC).start()
    yield server
    await server.close()


def stripe_settings(database_url: str, fake: FakeStripe, key: str) -> Settings:
    settings = make_settings(database_url, limits__bad_auth_per_ip="1000/min")
    settings.payments.provider = "stripe"
    settings.payments.stripe.secret_key = Secret(key)
    settings.payments.stripe.webhook_secret = Secret(WHSEC)
    settings.payments.stripe.api_base_url = fake.url
    return settings


@pytest.fixture
async def live_mode(database_url: str, fake: FakeStripe) -> AsyncIterator[LiveApp]:
    app, client = await start_live_app(stripe_settings(database_url, fake, LIVE_KEY), run_jobs=False)
    fake.webhook_url = app.base_url + WEBHOOK
    yield app
    await client.close()


@pytest.fixture
async def test_mode(database_url: str, fake: FakeStripe) -> AsyncIterator[LiveApp]:
    app, client = await start_live_app(stripe_settings(database_url, fake, TEST_KEY), run_jobs=False)
    fake.webhook_url = app.base_url + WEBHOOK
    yield app
    await client.close()


def badge(html: str) -> bool:
    return "Test mode: no real money moves" in html


async def test_sandbox_links_are_test_mode_in_the_api_and_on_the_page(live: LiveApp) -> None:
    shop = await make_shop(live)
    created = await shop.api.create({"amount": "25.00", "description": "cake"})
    assert created.status == 201 and created.body["livemode"] is False
    listed = await shop.api.get("/api/v1/links")
    assert [link["livemode"] for link in listed.body["data"]] == [False]
    page = await page_of(await live.client.get(f"/p/{created.body['id']}"))
    assert badge(page.html)


async def test_a_live_key_makes_live_links_and_payments(live_mode: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live_mode)
    assert link.livemode is True
    shop = await make_shop(live_mode)
    created = await shop.api.create({"amount": "25.00", "description": "cake"})
    assert created.body["livemode"] is True
    page = await page_of(await live_mode.client.get(f"/p/{link.id}"))
    assert not badge(page.html)
    session_id = await press_pay(live_mode, link)
    await fake.complete_session(session_id)
    (payment,) = await live_mode.services.links.payments_for(link.id)
    assert (payment.status, payment.livemode) == (PaymentStatus.SUCCEEDED, True)


async def test_test_money_never_pays_a_live_link(live_mode: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(live_mode)
    session_id = await press_pay(live_mode, link)
    fake.webhook_url = None
    await fake.complete_session(session_id)
    (_, event), = fake.events_sent
    event["livemode"] = False
    event["data"]["object"]["livemode"] = False
    body, headers = fake.signed(event)
    response = await live_mode.client.post(WEBHOOK, data=body, headers=headers)
    assert (response.status, (await response.json())["outcome"]) == (200, "mismatch")
    stored = await live_mode.services.links.get(link.id)
    assert stored is not None and stored.status == LinkStatus.ACTIVE
    (payment,) = await live_mode.services.links.payments_for(link.id)
    assert (payment.status, payment.livemode) == (PaymentStatus.REFUND_NEEDED, False)


async def test_a_test_key_makes_test_links_and_payments(test_mode: LiveApp, fake: FakeStripe) -> None:
    link = await make_link(test_mode)
    assert link.livemode is False
    assert badge((await page_of(await test_mode.client.get(f"/p/{link.id}"))).html)
    session_id = await press_pay(test_mode, link)
    await fake.complete_session(session_id)
    (payment,) = await test_mode.services.links.payments_for(link.id)
    assert (payment.status, payment.livemode) == (PaymentStatus.SUCCEEDED, False)


def test_portone_is_live_only_in_its_live_environment() -> None:
    from adapters.payments.portone.provider import PortOneProvider

    def provider(environment: str) -> PortOneProvider:
        return PortOneProvider(client_key="pk", secret_key="sk", environment=environment, country_code="TH",
                               public_base_url="https://pay.example.com")

    assert (provider("sandbox").test_mode, provider("live").test_mode) == (True, False)


async def test_the_api_list_filters_by_livemode(live_mode: LiveApp) -> None:
    shop = await make_shop(live_mode)
    live_mode.services.links.livemode = False  # the shop rehearsed in test mode first
    try:
        rehearsal = await shop.api.create({"amount": "1.00", "description": "rehearsal"})
    finally:
        live_mode.services.links.livemode = True
    real = await shop.api.create({"amount": "25.00", "description": "cake"})
    assert (rehearsal.body["livemode"], real.body["livemode"]) == (False, True)

    def ids(response: Any) -> list[str]:
        assert response.status == 200, response.text
        return [link["id"] for link in response.body["data"]]

    assert ids(await shop.api.get("/api/v1/links")) == [real.body["id"], rehearsal.body["id"]]
    assert ids(await shop.api.get("/api/v1/links?livemode=true")) == [real.body["id"]]
    assert ids(await shop.api.get("/api/v1/links?livemode=false")) == [rehearsal.body["id"]]
    assert ids(await shop.api.get("/api/v1/links?livemode=false&status=active")) == [rehearsal.body["id"]]
    bad = await shop.api.get("/api/v1/links?livemode=yes")
    assert bad.status == 400
    assert (bad.error["code"], bad.error["field"]) == ("invalid_livemode", "livemode")

    document = (await shop.api.get("/api/v1/openapi.json")).body
    (param,) = [p for p in document["paths"]["/api/v1/links"]["get"]["parameters"] if p["name"] == "livemode"]
    assert param["schema"]["enum"] == ["true", "false"]


async def test_the_chat_report_keeps_test_money_apart(live_mode: LiveApp, fake: FakeStripe) -> None:
    from tests.chat_support import ChatDriver
    from tests.clock import FakeClock

    services = live_mode.services
    chat = ChatDriver(services, FakeClock())
    merchant = await services.merchants.create("Cake Shop", currency="SGD", locale="en_SG")
    await chat.conversation.members.ensure_member(merchant.id, chat.message(""))

    async def paid_link(minor: int, livemode: bool) -> None:
        services.links.livemode = livemode
        try:
            link, _ = await services.links.create(LinkDraft(merchant_id=merchant.id, money=Money(minor, "SGD"),
                                                            description="cake"))
        finally:
            services.links.livemode = True
        await services.links.record_payment(PaymentEvent(
            provider="stripe", event_id=f"evt_{link.id}", kind="payment.succeeded", link_id=link.id,
            provider_ref=f"cs_{link.id}", amount_minor=minor, currency="SGD", livemode=livemode))

    await paid_link(2500, True)
    await paid_link(9900, False)
    report = await chat.text("/report")
    assert "✅ Paid: S$25.00 (1 link)" in report, report
    assert "🧪 Test mode (not counted above): paid S$99.00 (1 link)" in report
    assert "124" not in report  # never S$124.00: test money is not added to live money
    only_test = await chat.text("/report today test")
    assert "🧪 Test mode, no real money" in only_test and "S$99.00" in only_test and "S$25.00" not in only_test
    only_live = await chat.text("/report live")
    assert "S$25.00" in only_live and "S$99.00" not in only_live
