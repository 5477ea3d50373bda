"""Stripe mapping (pure), and the real `stripe` SDK through our StripeApi against the fake Stripe."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import stripe
from aiohttp import web

from adapters.payments import signing
from adapters.payments.common import OutcomeStatus, ProviderAuthError, ProviderRejected, ProviderUnavailable
from adapters.payments.stripe import mapping
from adapters.payments.stripe.client import StripeApi, construct_event
from adapters.payments.stripe.currencies import StripeCurrencyError
from core.models import PaymentLink
from core.ports import WebhookError
from tests.conftest import free_port
from tests.fakes.stripe import FakeStripe, fixtures, parse_form

KEY = "sk_test_paylinks_fake"
WHSEC = "whsec_test_paylinks"
BASE = "https://pay.example.com"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def make_link(amount_minor: int = 2550, currency: str = "SGD", **kw: Any) -> PaymentLink:
    return PaymentLink(id=kw.pop("id", "abcdefghijklmnopqrstuvwxyz23"), merchant_id="m_shop1",
                       amount_minor=amount_minor, currency=currency, description=kw.pop("description", "Blue mug"),
                       created_at=NOW, expires_at=kw.pop("expires_at", NOW + timedelta(days=7)), **kw)


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    server = await FakeStripe(secret_keys=(KEY,), webhook_secret=WHSEC).start()
    yield server
    await server.close()


@pytest.fixture
async def api(fake: FakeStripe) -> AsyncIterator[StripeApi]:
    client = StripeApi(secret_key=KEY, api_base_url=fake.url, timeout_s=2)
    yield client
    await client.close()


def params_now(link: PaymentLink, attempt: int = 1) -> dict[str, Any]:
    return mapping.checkout_session_params(link, attempt, public_base_url=BASE,
                                           now=datetime.fromtimestamp(int(time.time()), UTC))


# ---------------------------------------------------------------- mapping (pure)


def test_checkout_session_params() -> None:
    params = mapping.checkout_session_params(make_link(), 3, public_base_url=BASE + "/", now=NOW)
    assert params["mode"] == "payment"
    assert params["line_items"] == [{"quantity": 1, "price_data": {
        "currency": "sgd", "unit_amount": 2550, "product_data": {"name": "Blue mug"}}}]
    assert params["client_reference_id"] == "abcdefghijklmnopqrstuvwxyz23"
    assert params["metadata"] == {"link_id": "abcdefghijklmnopqrstuvwxyz23", "merchant_id": "m_shop1",
                                  "attempt": "3"}
    assert params["payment_intent_data"] == {"metadata": params["metadata"]}
    assert params["success_url"] == (f"{BASE}/p/abcdefghijklmnopqrstuvwxyz23/return/stripe"
                                     "?session_id={CHECKOUT_SESSION_ID}")
    assert params["cancel_url"] == f"{BASE}/p/abcdefghijklmnopqrstuvwxyz23"
    assert "customer_email" not in params
    assert mapping.checkout_session_params(make_link(customer_email="a@b.c"), 1, public_base_url=BASE,
                                           now=NOW)["customer_email"] == "a@b.c"


def test_unit_amount_follows_stripe_rules() -> None:
    assert mapping.checkout_session_params(make_link(500, "JPY"), 1, public_base_url=BASE, now=NOW)[
        "line_items"][0]["price_data"]["unit_amount"] == 500
    assert mapping.checkout_session_params(make_link(7, "ISK"), 1, public_base_url=BASE, now=NOW)[
        "line_items"][0]["price_data"]["unit_amount"] == 700
    with pytest.raises(StripeCurrencyError):
        mapping.checkout_session_params(make_link(5124, "KWD"), 1, public_base_url=BASE, now=NOW)
    with pytest.raises(StripeCurrencyError):
        mapping.checkout_session_params(make_link(1000, "IRR"), 1, public_base_url=BASE, now=NOW)


@pytest.mark.parametrize(("link_expires_in", "session_lifetime"), [
    (timedelta(days=7), timedelta(hours=24) - mapping.CLOCK_MARGIN),   # capped at Stripe's 24 h
    (timedelta(hours=3), timedelta(hours=3)),                          # the link's own expiry
    (timedelta(minutes=10), timedelta(minutes=30) + mapping.CLOCK_MARGIN),  # at least Stripe's 30 min
    (timedelta(minutes=-5), timedelta(minutes=30) + mapping.CLOCK_MARGIN),
])
def test_expires_at(link_expires_in: timedelta, session_lifetime: timedelta) -> None:
    assert mapping.session_expires_at(NOW + link_expires_in, NOW) == int((NOW + session_lifetime).timestamp())


def test_naive_link_expiry_is_utc() -> None:
    naive = (NOW + timedelta(hours=3)).replace(tzinfo=None)
    assert mapping.session_expires_at(naive, NOW) == int((NOW + timedelta(hours=3)).timestamp())


def test_idempotency_key_is_per_link_and_attempt() -> None:
    assert mapping.idempotency_key("L1", 1) == mapping.idempotency_key("L1", 1)
    assert len({mapping.idempotency_key("L1", 1), mapping.idempotency_key("L1", 2),
                mapping.idempotency_key("L2", 1)}) == 3


def _session(**kw: Any) -> dict[str, Any]:
    session = dict(fixtures()["checkout.session"])
    session.update({"id": "cs_test_1", "client_reference_id": "L1", "currency": "sgd", "amount_total": 2550,
                    "payment_intent": "pi_1", "livemode": False, "status": "complete", "payment_status": "paid"})
    session.update(kw)
    return session


@pytest.mark.parametrize(("status", "payment_status", "outcome"), [
    ("complete", "paid", OutcomeStatus.PAID), ("complete", "unpaid", OutcomeStatus.PENDING),
    ("open", "unpaid", OutcomeStatus.PENDING), ("expired", "unpaid", OutcomeStatus.EXPIRED),
])
def test_outcome_from_session(status: str, payment_status: str, outcome: OutcomeStatus) -> None:
    got = mapping.outcome_from_session(_session(status=status, payment_status=payment_status))
    assert got.status is outcome
    assert (got.provider_ref, got.link_id, got.amount_minor, got.currency, got.payment_ref, got.livemode) == (
        "cs_test_1", "L1", 2550, "SGD", "pi_1", False)


def test_outcome_amount_back_to_our_minor_units() -> None:
    assert mapping.outcome_from_session(_session(currency="isk", amount_total=700)).amount_minor == 7
    assert mapping.outcome_from_session(_session(currency="jpy", amount_total=500)).amount_minor == 500
    link_from_metadata = mapping.outcome_from_session(_session(client_reference_id=None, metadata={"link_id": "L9"}))
    assert link_from_metadata.link_id == "L9"


@pytest.mark.parametrize(("event_type", "payment_status", "outcome"), [
    ("checkout.session.completed", "paid", OutcomeStatus.PAID),
    ("checkout.session.completed", "unpaid", OutcomeStatus.PENDING),  # delayed method: wait
    ("checkout.session.async_payment_succeeded", "paid", OutcomeStatus.PAID),
    ("checkout.session.async_payment_failed", "unpaid", OutcomeStatus.FAILED),
    ("checkout.session.expired", "unpaid", OutcomeStatus.EXPIRED),
])
def test_outcome_from_event(event_type: str, payment_status: str, outcome: OutcomeStatus) -> None:
    event = {"id": "evt_1", "type": event_type, "data": {"object": _session(payment_status=payment_status)}}
    got = mapping.outcome_from_event(event)
    assert got is not None and got.status is outcome


def test_unknown_events_are_ignored_and_bad_ones_refused() -> None:
    assert mapping.outcome_from_event(fixtures()["event"]) is None  # plan.created
    assert mapping.outcome_from_event({"type": "charge.refunded", "data": {}}) is None
    with pytest.raises(mapping.StripeMappingError):
        mapping.outcome_from_event({"type": "checkout.session.completed", "data": {"object": {"object": "charge"}}})
    with pytest.raises(mapping.StripeMappingError):
        mapping.outcome_from_session(_session(currency="isk", amount_total=750))


def test_test_keys() -> None:
    assert mapping.is_test_key("sk_test_123") and mapping.is_test_key("rk_test_1")
    assert not mapping.is_test_key("sk_live_123")


# ---------------------------------------------------------------- the fake parses like Stripe


def test_parse_form_brackets() -> None:
    parsed = parse_form([("mode", "payment"), ("line_items[0][quantity]", "1"),
                         ("line_items[0][price_data][currency]", "sgd"), ("line_items[1][quantity]", "2"),
                         ("metadata[link_id]", "L1"), ("expand[0]", "payment_intent")])
    assert parsed == {"mode": "payment", "line_items": [{"quantity": "1", "price_data": {"currency": "sgd"}},
                                                        {"quantity": "2"}],
                      "metadata": {"link_id": "L1"}, "expand": ["payment_intent"]}


async def test_sdk_sends_brackets_the_fake_reads(fake: FakeStripe, api: StripeApi) -> None:
    await api.create_checkout_session(params_now(make_link()), idempotency_key="k1")
    call = fake.calls_of("sessions.create")[0]
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.params["line_items"][0]["price_data"]["unit_amount"] == "2550"
    assert call.params["metadata"]["link_id"] == "abcdefghijklmnopqrstuvwxyz23"
    assert call.headers["Idempotency-Key"] == "k1"


# ---------------------------------------------------------------- client against the fake


async def test_create_retrieve_expire(fake: FakeStripe, api: StripeApi) -> None:
    link = make_link()
    session = await api.create_checkout_session(params_now(link), idempotency_key=mapping.idempotency_key(link.id, 1))
    assert session["url"] == f"{fake.url}/pay/{session['id']}" and session["id"].startswith("cs_test_")
    assert set(fixtures()["checkout.session"]) <= set(session)  # shaped like Stripe's fixture
    opened = mapping.outcome_from_session(await api.retrieve_checkout_session(session["id"]))
    assert (opened.status, opened.link_id, opened.amount_minor, opened.currency) == (
        OutcomeStatus.PENDING, link.id, 2550, "SGD")
    expired = mapping.outcome_from_session(await api.expire_checkout_session(session["id"]))
    assert expired.status is OutcomeStatus.EXPIRED
    with pytest.raises(ProviderRejected) as info:
        await api.expire_checkout_session(session["id"])
    assert info.value.status == 400 and info.value.request_id and info.value.request_id.startswith("req_")


async def test_same_idempotency_key_same_session_other_params_refused(fake: FakeStripe, api: StripeApi) -> None:
    link = make_link()
    key = mapping.idempotency_key(link.id, 1)
    params = params_now(link)
    first = await api.create_checkout_session(params, idempotency_key=key)
    again = await api.create_checkout_session(params, idempotency_key=key)
    assert again["id"] == first["id"] and len(fake.sessions) == 1
    with pytest.raises(ProviderRejected) as info:
        await api.create_checkout_session({**params, "client_reference_id": "other"}, idempotency_key=key)
    assert info.value.code == "idempotency_error"
    second_attempt = await api.create_checkout_session(params_now(link, 2),
                                                       idempotency_key=mapping.idempotency_key(link.id, 2))
    assert second_attempt["id"] != first["id"]


async def test_missing_and_unknown_params_get_stripe_errors(fake: FakeStripe, api: StripeApi) -> None:
    params = params_now(make_link())
    with pytest.raises(ProviderRejected) as info:
        await api.create_checkout_session({k: v for k, v in params.items() if k != "mode"}, idempotency_key="a")
    assert (info.value.code, info.value.param) == ("parameter_missing", "mode")
    with pytest.raises(ProviderRejected) as info:
        await api.create_checkout_session({**params, "amount": 5}, idempotency_key="b")
    assert info.value.param == "amount"
    with pytest.raises(ProviderRejected) as info:
        await api.create_checkout_session({**params, "expires_at": int(time.time()) + 60}, idempotency_key="c")
    assert info.value.param == "expires_at"
    bad_currency = {**params, "line_items": [{"quantity": 1, "price_data": {
        "currency": "irr", "unit_amount": 1, "product_data": {"name": "x"}}}]}
    with pytest.raises(ProviderRejected) as info:
        await api.create_checkout_session(bad_currency, idempotency_key="d")
    assert info.value.param == "line_items[0][price_data][currency]"
    with pytest.raises(ProviderRejected) as info:
        await api.retrieve_checkout_session("cs_test_nope")
    assert (info.value.status, info.value.code) == (404, "resource_missing")


async def test_bad_key_is_an_auth_error_without_the_key(fake: FakeStripe) -> None:
    wrong = StripeApi(secret_key="sk_test_wrong_key_0000", api_base_url=fake.url)
    try:
        with pytest.raises(ProviderAuthError) as info:
            await wrong.retrieve_account()
    finally:
        await wrong.close()
    assert info.value.status == 401 and info.value.request_id
    assert "sk_test_wrong_key_0000" not in str(info.value)
    assert "sk_test_wrong" not in repr(wrong)


async def test_credential_checks(api: StripeApi) -> None:
    account = await api.retrieve_account()
    assert account["object"] == "account" and account["id"].startswith("acct_")
    balance = await api.retrieve_balance()
    assert balance["object"] == "balance" and balance["livemode"] is False
    assert api.is_test_mode


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_outages_are_unavailable(fake: FakeStripe, api: StripeApi, status: int) -> None:
    fake.fail("sessions.create", status=status)
    with pytest.raises(ProviderUnavailable) as info:
        await api.create_checkout_session(params_now(make_link()), idempotency_key="x1")
    assert info.value.status == status and info.value.request_id and info.value.request_id.startswith("req_")
    # The outage answer was not stored under the idempotency key: the retry creates the session.
    session = await api.create_checkout_session(params_now(make_link()), idempotency_key="x1")
    assert session["id"] in fake.sessions


async def test_timeout_is_unavailable(fake: FakeStripe) -> None:
    fake.stall("sessions.retrieve", 1.0)
    impatient = StripeApi(secret_key=KEY, api_base_url=fake.url, timeout_s=0.2)
    try:
        with pytest.raises(ProviderUnavailable, match="in time"):
            await impatient.retrieve_checkout_session("cs_test_x")
    finally:
        await impatient.close()


async def test_connection_refused_is_unavailable() -> None:
    nowhere = StripeApi(secret_key=KEY, api_base_url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ProviderUnavailable):
            await nowhere.retrieve_balance()
    finally:
        await nowhere.close()


async def test_refunds(fake: FakeStripe, api: StripeApi) -> None:
    session = await api.create_checkout_session(params_now(make_link()), idempotency_key="r1")
    await fake.complete_session(session["id"])
    paid = mapping.outcome_from_session(await api.retrieve_checkout_session(session["id"]))
    assert paid.status is OutcomeStatus.PAID and paid.payment_ref
    refund = await api.create_refund(payment_intent=paid.payment_ref, amount=1000, idempotency_key="rf1")
    # Card refunds start pending; refund.updated / charge.refunded say when they succeeded.
    assert (refund["object"], refund["amount"], refund["status"]) == ("refund", 1000, "pending")
    await fake.drain()
    assert fake.refunds[refund["id"]]["status"] == "succeeded"
    with pytest.raises(ProviderRejected) as info:
        await api.create_refund(payment_intent=paid.payment_ref, amount=5000)
    assert info.value.code == "amount_too_large"
    rest = await api.create_refund(payment_intent=paid.payment_ref)
    assert rest["amount"] == 1550


# ---------------------------------------------------------------- webhooks


def test_vendored_signature_vector() -> None:
    text = (Path(__file__).parents[2] / "fakes" / "stripe_fixtures" / "stripe_sig_vector.txt").read_text()
    payload = text.split("payload: ", 1)[1].split("\n", 1)[0]
    header = text.split("Stripe-Signature: ", 1)[1].split("\n", 1)[0]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    secret = "whsec_test_secret"  # the vector's secret (NOTICE.md)
    assert stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp) == header
    assert signing.sign_header(secret, timestamp, payload.encode()) == header  # our sandbox uses the same scheme
    stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
    with pytest.raises(WebhookError):  # 2023: far outside the 300 s tolerance
        construct_event(payload.encode(), header, secret)


def test_construct_event_verifies_the_fakes_signature(fake: FakeStripe) -> None:
    event = fake.event("checkout.session.completed", {**_session(), "livemode": False})
    body, headers = fake.signed(event)
    verified = construct_event(body, headers["Stripe-Signature"], WHSEC)
    assert verified["id"] == event["id"] and verified["type"] == "checkout.session.completed"
    outcome = mapping.outcome_from_event(verified)
    assert outcome is not None and outcome.status is OutcomeStatus.PAID


@pytest.mark.parametrize("tamper", ["body", "secret", "stale", "missing", "no_secret", "not_json"])
def test_construct_event_fails_closed(fake: FakeStripe, tamper: str) -> None:
    event = fake.event("checkout.session.completed", _session())
    body, headers = fake.signed(event, timestamp=int(time.time()) - 301 if tamper == "stale" else None)
    header: str | None = headers["Stripe-Signature"]
    secret = WHSEC
    if tamper == "body":
        body = body.replace(b'"amount_total": 2550', b'"amount_total": 1')
    elif tamper == "secret":
        secret = "whsec_other"
    elif tamper == "missing":
        header = None
    elif tamper == "no_secret":
        secret = ""
    elif tamper == "not_json":
        body = b"not json"
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), WHSEC)
    with pytest.raises(WebhookError):
        construct_event(body, header, secret)


async def test_hosted_page_pays_and_sends_a_signed_webhook(fake: FakeStripe, api: StripeApi) -> None:
    received: list[tuple[bytes, str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get("Stripe-Signature")))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/stripe", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.webhook_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/webhooks/stripe"  # type: ignore[union-attr]
    link = make_link()
    try:
        session = await api.create_checkout_session(params_now(link), idempotency_key="hp1")
        async with aiohttp.ClientSession() as browser:
            async with browser.get(session["url"]) as page:
                assert page.status == 200 and "Pay" in await page.text()
            async with browser.post(session["url"], allow_redirects=False) as paid:
                assert paid.status == 303
                location = paid.headers["Location"]
        await api.expire_checkout_session((await api.create_checkout_session(
            params_now(link, 2), idempotency_key="hp2"))["id"])
        for _ in range(50):  # the expired event is sent after the API answer
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    assert location == f"{BASE}/p/{link.id}/return/stripe?session_id={session['id']}"
    events = [construct_event(body, header, WHSEC) for body, header in received]
    outcomes = [mapping.outcome_from_event(e) for e in events]
    assert [o.status for o in outcomes if o] == [OutcomeStatus.PAID, OutcomeStatus.EXPIRED]
    paid_outcome = outcomes[0]
    assert paid_outcome is not None
    assert (paid_outcome.link_id, paid_outcome.amount_minor, paid_outcome.currency, paid_outcome.payer_name) == (
        link.id, 2550, "SGD", "Jenny Rosen")
    assert json.loads(received[0][0])["api_version"] == stripe.api_version


async def test_delayed_payment_events(fake: FakeStripe, api: StripeApi) -> None:
    session = await api.create_checkout_session(params_now(make_link()), idempotency_key="d1")
    await fake.complete_session(session["id"], paid=False)
    await fake.settle_async(session["id"], succeeded=True)
    statuses = [mapping.outcome_from_event(e) for _, e in fake.events_sent]
    assert [o.status for o in statuses if o] == [OutcomeStatus.PENDING, OutcomeStatus.PAID]


async def test_check_credentials(fake: FakeStripe) -> None:
    good = StripeApi(secret_key=KEY, api_base_url=fake.url)
    restricted = await FakeStripe(restricted_keys=("rk_test_restricted",)).start()
    limited = StripeApi(secret_key="rk_test_restricted", api_base_url=restricted.url)
    bad = StripeApi(secret_key="sk_test_bad", api_base_url=fake.url)
    try:
        assert (await good.check_credentials())["object"] == "account"
        assert (await limited.check_credentials())["object"] == "balance"
        assert [c.kind for c in restricted.calls] == ["account", "balance"]
        with pytest.raises(ProviderAuthError):
            await bad.check_credentials()
        fake.fail("account", status=503)
        with pytest.raises(ProviderUnavailable):
            await good.check_credentials()
    finally:
        for client in (good, limited, bad):
            await client.close()
        await restricted.close()


def test_outcome_matches_the_link_exactly() -> None:
    outcome = mapping.outcome_from_session(_session())
    assert outcome.matches(2550, "SGD") and outcome.matches(2550, "sgd")
    assert not outcome.matches(2551, "SGD") and not outcome.matches(2550, "USD")
    unknown = mapping.outcome_from_session(_session(amount_total=None))
    assert unknown.amount_minor is None and not unknown.matches(2550, "SGD")
