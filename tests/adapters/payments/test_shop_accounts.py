"""Shops' own provider accounts (issue 12, point 1): one app, the deployment's provider for one shop and a
shop's own Stripe / PortOne account for another. Pay, webhooks, return pages, closing and reconciling
use the account the checkout was opened on; each webhook verifies with its own account's secret only.
Real `stripe` SDK against FakeStripe, the PortOne adapter against FakePortOne; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy import select

from adapters.payments.portone import signing
from bots.config import Secret
from core.links import LinkDraft
from core.models import CheckoutAttempt, LinkStatus, PaymentLink, ProviderAccount
from core.money import Money
from core.sql import table
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.portone import FakePortOne
from tests.fakes.stripe import FakeStripe

KEY, WHSEC = "sk_test_deployment_key_0001", "whsec_deployment_secret"
SHOP_KEY, SHOP_WHSEC = "sk_live_shop_own_key_9876", "whsec_shop_own_secret_5432"
PORTONE_KEY, PORTONE_SECRET = "pk_test_DEPLOYMENT", "sk_test_deployment_portone"
SHOP_PORTONE_KEY, SHOP_PORTONE_SECRET = "pk_test_SHOP_OWN", "sk_test_shop_portone_secret_77"
ALL_SECRETS = (KEY, WHSEC, SHOP_KEY, SHOP_WHSEC, PORTONE_SECRET, SHOP_PORTONE_SECRET)


async def make_link(live: LiveApp, merchant_id: str, minor: int = 2500, currency: str = "SGD") -> PaymentLink:
    link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(minor, currency), description="Chocolate cake"))
    return link


async def press_pay(live: LiveApp, link: PaymentLink) -> str:
    response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert response.status == 303, await response.text()
    return response.headers["Location"]


async def post(live: LiveApp, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = await live.client.post(path, data=body, headers=headers or {"Content-Type": "application/json"})
    assert response.status < 500, await response.text()
    return response.status, await response.json()


async def status_of(live: LiveApp, link: PaymentLink) -> str:
    stored = await live.services.links.get(link.id)
    assert stored is not None
    return stored.status


def bearer(call: Any) -> str:
    return str(call.headers["Authorization"]).removeprefix("Bearer ")


# ---------------------------------------------------------------- Stripe: deployment account + a shop's own


@pytest.fixture
async def stripe_fake() -> AsyncIterator[FakeStripe]:
    server = await FakeStripe(secret_keys=(KEY,), webhook_secret=WHSEC).start()
    yield server
    await server.close()


@pytest.fixture
async def stripe_live(database_url: str, stripe_fake: FakeStripe) -> AsyncIterator[LiveApp]:
    settings = make_settings(database_url, limits__bad_auth_per_ip="1000/min")
    settings.payments.provider = "stripe"
    settings.payments.stripe.secret_key = Secret(KEY)
    settings.payments.stripe.webhook_secret = Secret(WHSEC)
    settings.payments.stripe.api_base_url = stripe_fake.url
    app, client = await start_live_app(settings, run_jobs=False)
    stripe_fake.webhook_url = app.base_url + "/webhooks/stripe"
    yield app
    await client.close()


async def two_shops(live: LiveApp, fake: FakeStripe) -> tuple[str, str]:
    """(a shop on the deployment's account, a shop with its own Stripe account)."""
    default_shop = await live.services.merchants.create("Default Cakes", currency="SGD", locale="en_SG")
    own_shop = await live.services.merchants.create("Own Account Bakery", currency="SGD", locale="en_SG")
    fake.add_account(SHOP_KEY, webhook_secret=SHOP_WHSEC,
                     webhook_url=f"{live.base_url}/webhooks/stripe/{own_shop.id}")
    await live.services.accounts.set(own_shop.id, "stripe",
                                     secrets={"secret_key": SHOP_KEY, "webhook_secret": SHOP_WHSEC})
    return default_shop.id, own_shop.id


async def test_both_shops_get_paid_each_on_its_own_account(stripe_live: LiveApp, stripe_fake: FakeStripe,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    default_id, own_id = await two_shops(stripe_live, stripe_fake)
    default_link, own_link = await make_link(stripe_live, default_id), await make_link(stripe_live, own_id)
    # The shop's own key is live: its links are live money, the deployment's test key makes test links.
    assert (default_link.livemode, own_link.livemode) == (False, True)

    for link in (default_link, own_link):
        session_id = (await press_pay(stripe_live, link)).rsplit("/", 1)[1]
        async with aiohttp.ClientSession() as client, client.post(f"{stripe_fake.url}/pay/{session_id}",
                                                                  allow_redirects=False) as response:
            assert response.status == 303
    creates = stripe_fake.calls_of("sessions.create")
    assert [bearer(c) for c in creates] == [KEY, SHOP_KEY]
    # Each event went to its own account's endpoint, signed with its own secret, and was accepted.
    assert [status for status, _ in stripe_fake.events_sent] == [200, 200]
    assert await status_of(stripe_live, default_link) == LinkStatus.PAID
    assert await status_of(stripe_live, own_link) == LinkStatus.PAID
    [paid_default] = await stripe_live.services.links.payments_for(default_link.id)
    [paid_own] = await stripe_live.services.links.payments_for(own_link.id)
    assert (paid_default.account, paid_own.account) == (None, own_id)
    assert (paid_default.livemode, paid_own.livemode) == (False, True)
    [checkout] = await stripe_live.services.links.open_checkouts(own_link.id)
    assert checkout.account == own_id
    logged = caplog.text
    assert not [secret for secret in ALL_SECRETS if secret in logged]


async def test_a_webhook_signed_with_the_other_accounts_secret_is_refused(
        stripe_live: LiveApp, stripe_fake: FakeStripe) -> None:
    default_id, own_id = await two_shops(stripe_live, stripe_fake)
    default_link, own_link = await make_link(stripe_live, default_id), await make_link(stripe_live, own_id)
    stripe_fake.webhook_url = None
    stripe_fake.accounts[SHOP_KEY].webhook_url = None  # the events are posted by the test
    own_session = (await press_pay(stripe_live, own_link)).rsplit("/", 1)[1]
    default_session = (await press_pay(stripe_live, default_link)).rsplit("/", 1)[1]
    await stripe_fake.complete_session(own_session)
    await stripe_fake.complete_session(default_session)
    (_, own_event), (_, default_event) = stripe_fake.events_sent
    own_path, default_path = f"/webhooks/stripe/{own_id}", "/webhooks/stripe"

    refused = [
        (own_path, stripe_fake.signed(own_event, secret=WHSEC)),  # the shop's event, the deployment's secret
        (default_path, stripe_fake.signed(own_event, secret=SHOP_WHSEC)),  # to the deployment's endpoint
        (default_path, stripe_fake.signed(default_event, secret=SHOP_WHSEC)),
        (own_path, stripe_fake.signed(default_event, secret=WHSEC)),
        # Signed right by the shop's account, but for another shop's link: never pays it.
        (own_path, stripe_fake.signed(default_event, secret=SHOP_WHSEC)),
        # The deployment's account paying a checkout opened on the shop's own account.
        (default_path, stripe_fake.signed(own_event, secret=WHSEC)),
    ]
    for path, (body, headers) in refused:
        status, answer = await post(stripe_live, path, body, headers)
        assert (status, answer["error"]["code"]) == (400, "invalid_webhook"), (path, answer)
    # A shop without its own account, an unknown merchant, a malformed id: 404, nothing verified.
    for path in (f"/webhooks/stripe/{default_id}", "/webhooks/stripe/mer_nobody", "/webhooks/stripe/x%20y"):
        status, answer = await post(stripe_live, path, *stripe_fake.signed(default_event, secret=WHSEC))
        assert (status, answer["error"]["code"]) == (404, "unknown_account")
    assert await status_of(stripe_live, own_link) == LinkStatus.ACTIVE
    assert await status_of(stripe_live, default_link) == LinkStatus.ACTIVE
    assert await stripe_live.services.links.payments_for(own_link.id) == []

    # Each with its own secret, at its own endpoint: paid.
    assert (await post(stripe_live, own_path, *stripe_fake.signed(own_event)))[1]["outcome"] == "paid"
    assert (await post(stripe_live, default_path, *stripe_fake.signed(default_event)))[1]["outcome"] == "paid"


async def test_return_cancel_and_reconcile_use_the_shops_own_account(
        stripe_live: LiveApp, stripe_fake: FakeStripe) -> None:
    _, own_id = await two_shops(stripe_live, stripe_fake)
    stripe_fake.accounts[SHOP_KEY].webhook_url = None  # webhooks missed: the return page records it
    link = await make_link(stripe_live, own_id)
    session_id = (await press_pay(stripe_live, link)).rsplit("/", 1)[1]
    async with aiohttp.ClientSession() as client, client.post(f"{stripe_fake.url}/pay/{session_id}",
                                                              allow_redirects=False) as response:
        back = urlsplit(response.headers["Location"])
    response = await stripe_live.client.get(f"{back.path}?{back.query}", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/p/{link.id}?payment={session_id}")
    assert bearer(stripe_fake.calls_of("sessions.retrieve")[-1]) == SHOP_KEY
    [payment] = await stripe_live.services.links.payments_for(link.id)
    assert payment.account == own_id

    # Cancelling a link expires its open session on the shop's account.
    cancelled = await make_link(stripe_live, own_id)
    await press_pay(stripe_live, cancelled)
    await stripe_live.services.links.cancel(cancelled.id, own_id)
    [expire] = stripe_fake.calls_of("sessions.expire")
    assert bearer(expire) == SHOP_KEY
    assert await stripe_live.services.links.open_checkouts(cancelled.id) == []

    # A missed webhook is reconciled by asking the shop's account.
    stripe_live.services.links.reconcile_after = timedelta(0)
    missed = await make_link(stripe_live, own_id)
    missed_session = (await press_pay(stripe_live, missed)).rsplit("/", 1)[1]
    await stripe_fake.complete_session(missed_session)
    assert await stripe_live.services.links.reconcile() == 1
    assert bearer(stripe_fake.calls_of("sessions.retrieve")[-1]) == SHOP_KEY
    assert await status_of(stripe_live, missed) == LinkStatus.PAID
    [reconciled] = await stripe_live.services.links.payments_for(missed.id)
    assert reconciled.account == own_id


async def test_new_secrets_are_picked_up_and_stored_encrypted(stripe_live: LiveApp, stripe_fake: FakeStripe) -> None:
    _, own_id = await two_shops(stripe_live, stripe_fake)
    first = await stripe_live.services.providers.own(own_id, "stripe")
    assert first is not None and first is await stripe_live.services.providers.own(own_id, "stripe")  # cached
    async with stripe_live.services.db.read() as conn:
        [row] = (await conn.execute(select(table(ProviderAccount)))).all()
    assert row.secrets.startswith("fernet:") and SHOP_KEY not in row.secrets and SHOP_WHSEC not in row.secrets
    # Another process (the CLI) replaces the secrets: the next use builds a client from the new ones.
    new_key = "sk_live_shop_rotated_key_1111"
    stripe_fake.add_account(new_key, webhook_secret="whsec_rotated", webhook_url=None)
    await stripe_live.services.accounts.set(own_id, "stripe",
                                            secrets={"secret_key": new_key, "webhook_secret": "whsec_rotated"})
    second = await stripe_live.services.providers.own(own_id, "stripe")
    assert second is not None and second is not first
    link = await make_link(stripe_live, own_id)
    await press_pay(stripe_live, link)
    assert bearer(stripe_fake.calls_of("sessions.create")[-1]) == new_key
    assert "sk_live" not in repr(second)


# ---------------------------------------------------------------- PortOne: a shop's own, sandbox default


@pytest.fixture
async def portone_fake() -> AsyncIterator[FakePortOne]:
    server = await FakePortOne(client_key=PORTONE_KEY, secret_key=PORTONE_SECRET).start()
    yield server
    await server.close()


@pytest.fixture
async def portone_live(database_url: str, portone_fake: FakePortOne) -> AsyncIterator[LiveApp]:
    settings = make_settings(database_url, limits__bad_auth_per_ip="1000/min")
    settings.payments.portone.api_base_url = portone_fake.url  # the deployment pays through the sandbox
    app, client = await start_live_app(settings, run_jobs=False)
    yield app
    await client.close()


async def test_a_portone_shop_on_a_sandbox_deployment(portone_live: LiveApp, portone_fake: FakePortOne,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox_shop = await portone_live.services.merchants.create("Sandbox Shop", currency="THB", locale="en_SG")
    shop = await portone_live.services.merchants.create("Noodle Bar", currency="THB", locale="en_SG")
    webhook_path = f"/webhooks/portone/{shop.id}"
    portone_fake.add_account(SHOP_PORTONE_KEY, SHOP_PORTONE_SECRET, webhook_url=None)
    await portone_live.services.accounts.set(shop.id, "portone", environment="sandbox", country_code="TH",
                                             secrets={"client_key": SHOP_PORTONE_KEY,
                                                      "secret_key": SHOP_PORTONE_SECRET})
    # The deployment's shop still pays through the sandbox's own hosted checkout.
    sandbox_link = await make_link(portone_live, sandbox_shop.id, 250000, "THB")
    assert (await press_pay(portone_live, sandbox_link)).startswith(portone_live.base_url + "/sandbox/")

    link = await make_link(portone_live, shop.id, 250000, "THB")
    location = await press_pay(portone_live, link)
    ref = location.split("ref=", 1)[1]
    [create] = portone_fake.calls_of("create")
    assert create.headers["X-Portone-Client-Key"] == SHOP_PORTONE_KEY and create.body["portone_key"] == SHOP_PORTONE_KEY
    await portone_fake.settle(ref)
    body = portone_fake.webhook_body(portone_fake.links[ref])
    assert body["portone_key"] == SHOP_PORTONE_KEY

    # The deployment has no PortOne account: no /webhooks/portone; the deployment's secret is not the shop's.
    assert (await portone_live.client.post("/webhooks/portone", data=json.dumps(body))).status == 404
    forged = {**body, "signature_hash": signing.signature_hash(signing.payment_link_webhook_fields(body),
                                                                PORTONE_SECRET)}
    status, answer = await post(portone_live, webhook_path, json.dumps(forged).encode())
    assert (status, answer["error"]["code"]) == (400, "invalid_webhook")
    status, answer = await post(portone_live, f"/webhooks/portone/{sandbox_shop.id}", json.dumps(body).encode())
    assert (status, answer["error"]["code"]) == (404, "unknown_account")
    assert await status_of(portone_live, link) == LinkStatus.ACTIVE

    # The return page verifies the redirect with the shop's secret and confirms on the shop's account.
    forged_params = {**portone_fake.redirect_params(portone_fake.links[ref], "Success")}
    forged_params["signature_hash"] = signing.signature_hash(
        {k: forged_params[k] for k in signing.REDIRECT_FIELDS}, PORTONE_SECRET)
    response = await portone_live.client.get(f"/p/{link.id}/return/portone", params=forged_params,
                                             allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/p/{link.id}")
    assert await status_of(portone_live, link) == LinkStatus.ACTIVE
    params = portone_fake.redirect_params(portone_fake.links[ref], "Success")
    response = await portone_live.client.get(f"/p/{link.id}/return/portone", params=params, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/p/{link.id}?payment={ref}")
    [fetch] = portone_fake.calls_of("fetch")
    assert fetch.headers["X-Portone-Client-Key"] == SHOP_PORTONE_KEY
    [payment] = await portone_live.services.links.payments_for(link.id)
    assert payment.account == shop.id

    # The webhook that follows, verified with the shop's secret, is the same payment.
    status, answer = await post(portone_live, webhook_path, json.dumps(body).encode())
    assert (status, answer["outcome"]) == (200, "duplicate")
    assert not [secret for secret in ALL_SECRETS if secret in caplog.text]


async def test_checkouts_no_provider_can_reconcile_stop_being_due(portone_live: LiveApp) -> None:
    """Sandbox checkouts (nothing to ask) leave the reconcile queue instead of filling every batch."""
    links = portone_live.services.links
    links.reconcile_after = timedelta(0)
    shop = await portone_live.services.merchants.create("Sandbox Shop", currency="THB", locale="en_SG")
    for _ in range(3):
        await press_pay(portone_live, await make_link(portone_live, shop.id, 250000, "THB"))
    assert await links.reconcile(batch=2) == 0
    assert await links.reconcile(batch=2) == 0
    async with portone_live.services.db.read() as conn:
        due = (await conn.execute(select(table(CheckoutAttempt).c.next_check_at))).scalars().all()
    assert due == [None, None, None]
