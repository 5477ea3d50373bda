"""PortOne mapping (pure) and our aiohttp client against the fake PortOne, which validates every body
against the vendored OpenAPI spec, the JWT, the client key and the signature_hash."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.payments.common import OutcomeStatus, ProviderAuthError, ProviderRejected, ProviderUnavailable
from adapters.payments.portone import mapping, signing
from adapters.payments.portone.client import PortOneClient
from core.models import PaymentLink
from tests.conftest import free_port
from tests.fakes.portone import CREATE_SCHEMA, REFUND_SCHEMA, FakePortOne, spec_errors

KEY = "pk_test_PAYLINKS"
SECRET = "sk_test_secret_123"
BASE = "https://pay.example.com"
EXPIRES = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)


def make_link(amount_minor: int = 250000, currency: str = "THB", **kw: Any) -> PaymentLink:
    return PaymentLink(id=kw.pop("id", "abcdefghijklmnopqrstuvwxyz23"), merchant_id="m_shop1",
                       amount_minor=amount_minor, currency=currency, description="Blue mug",
                       created_at=EXPIRES - timedelta(days=1), expires_at=kw.pop("expires_at", EXPIRES), **kw)


def body_for(link: PaymentLink, attempt: int = 1, **kw: Any) -> dict[str, Any]:
    return mapping.create_body(link, attempt, client_key=KEY, secret_key=SECRET,
                               environment=kw.get("environment", "sandbox"), country_code=kw.get("country", "TH"),
                               public_base_url=BASE, merchant_name="Mug Shop")


@pytest.fixture
async def portone() -> AsyncIterator[FakePortOne]:
    fake = await FakePortOne(client_key=KEY, secret_key=SECRET).start()
    yield fake
    await fake.close()


@pytest.fixture
async def client(portone: FakePortOne) -> AsyncIterator[PortOneClient]:
    c = PortOneClient(client_key=KEY, secret_key=SECRET, api_base_url=portone.url, timeout_s=2)
    yield c
    await c.close()


# ---------------------------------------------------------------- mapping (pure)


def test_create_body_amount_in_major_units_and_signed() -> None:
    body = body_for(make_link(250050, "THB"))
    assert body["amount"] == 2500.5 and isinstance(body["amount"], float)
    assert json.dumps(body["amount"]) == "2500.5"
    assert body["currency"] == "THB" and body["country_code"] == "TH"
    assert body["merchant_order_id"] == "abcdefghijklmnopqrstuvwxyz23_1"
    url = f"{BASE}/p/abcdefghijklmnopqrstuvwxyz23/return/portone"
    assert body["success_url"] == body["failure_url"] == body["pending_url"] == url
    assert body["expiry_date"] == "2026-12-01T18:30:00.000Z"
    assert body["environment"] == "sandbox" and body["source"] == "api"
    assert body["merchant_details"] == {"name": "Mug Shop", "promo_discount": 0, "shipping_charges": 0}
    assert body["signature_hash"] == signing.request_signature(
        client_key=KEY, secret_key=SECRET, amount=Decimal("2500.50"), currency="THB",
        merchant_order_id="abcdefghijklmnopqrstuvwxyz23_1", success_url=url, failure_url=url)
    assert spec_errors(CREATE_SCHEMA, body) == []


@pytest.mark.parametrize(("amount_minor", "currency", "major"), [
    (250000, "THB", 2500), (140000, "VND", 140000), (500, "JPY", 500), (1, "USD", 0.01), (199, "SGD", 1.99),
])
def test_major_amount_is_exact(amount_minor: int, currency: str, major: int | float) -> None:
    body = body_for(make_link(amount_minor, currency))
    assert body["amount"] == major and type(body["amount"]) is type(major)
    assert mapping.minor_amount(body["amount"], currency) == amount_minor


def test_naive_expiry_is_utc() -> None:
    link = make_link(expires_at=datetime(2026, 12, 1, 18, 30, 5, 123456))
    assert body_for(link)["expiry_date"] == "2026-12-01T18:30:05.123Z"


@pytest.mark.parametrize(("currency", "field"), [("KWD", "currency"), ("BHD", "currency"), ("XYZ", "currency")])
def test_currencies_portone_cannot_sign_are_refused(currency: str, field: str) -> None:
    with pytest.raises(mapping.PortOneMappingError) as info:
        mapping.check_chargeable(1000, currency)
    assert info.value.field == field


def test_bad_environment_and_country_are_refused() -> None:
    with pytest.raises(mapping.PortOneMappingError, match="environment"):
        body_for(make_link(), environment="production")
    with pytest.raises(mapping.PortOneMappingError, match="country"):
        body_for(make_link(), country="Thailand")


def test_minor_amount_refuses_fractions_of_minor_units() -> None:
    with pytest.raises(mapping.PortOneMappingError):
        mapping.minor_amount(10.005, "USD")
    with pytest.raises(mapping.PortOneMappingError):
        mapping.minor_amount(1.5, "JPY")
    assert mapping.minor_amount("25.5", "THB") == 2550
    assert mapping.minor_amount(Decimal("2500"), "VND") == 2500


def test_merchant_order_id_round_trip() -> None:
    assert mapping.parse_merchant_order_id(mapping.merchant_order_id("PL-000123", 7)) == ("PL-000123", 7)
    assert mapping.parse_merchant_order_id("a_b_12") == ("a_b", 12)
    for bad in ("PL-000123", "_1", "x_", "x_1a", None, 5):
        assert mapping.parse_merchant_order_id(bad) is None


@pytest.mark.parametrize(("status", "outcome"), [
    ("Success", OutcomeStatus.PAID), ("SUCCESS", OutcomeStatus.PAID), ("Created", OutcomeStatus.PENDING),
    ("Processing", OutcomeStatus.PENDING), ("Expired", OutcomeStatus.EXPIRED),
    ("Cancelled", OutcomeStatus.CANCELLED), ("Deleted", OutcomeStatus.CANCELLED),
    ("Failed", OutcomeStatus.FAILED), ("Something new", OutcomeStatus.PENDING), (None, OutcomeStatus.PENDING),
])
def test_status_words(status: Any, outcome: OutcomeStatus) -> None:
    assert mapping.outcome_status(status) is outcome


def test_outcome_from_fetch_status_spec_example() -> None:
    body = {"content": {"merchantOrderRef": "linkid_2", "paymentLinkRef": "2kxG", "status": "Success",
                        "transactionsList": [{"status": "Failed", "orderRef": "o1"},
                                             {"status": "Success", "orderRef": "o2"}]},
            "status_code": "2000", "status_reason": "SUCCESS"}
    outcome = mapping.outcome_from_fetch_status(body, provider_ref="2kxG")
    assert (outcome.status, outcome.link_id, outcome.payment_ref) == (OutcomeStatus.PAID, "linkid", "o2")
    assert outcome.amount_minor is None and outcome.currency is None
    with pytest.raises(mapping.PortOneMappingError):
        mapping.outcome_from_fetch_status(body, provider_ref="another")
    flat = mapping.outcome_from_fetch_status({"paymentLinkRef": "r", "status": "Expired"}, provider_ref="r")
    assert flat.status is OutcomeStatus.EXPIRED


def test_outcome_from_webhook_converts_to_minor_units() -> None:
    body = {"link_ref": "2mba", "currency": "THB", "amount": 2500.5, "countryCode": "TH", "status": "Success",
            "merchant_order_ref": "linkid_3", "customer_name": "Nitesh"}
    outcome = mapping.outcome_from_webhook(body, environment="sandbox")
    assert (outcome.status, outcome.provider_ref, outcome.link_id) == (OutcomeStatus.PAID, "2mba", "linkid")
    assert (outcome.amount_minor, outcome.currency, outcome.livemode, outcome.payer_name) == (250050, "THB", False,
                                                                                             "Nitesh")
    with pytest.raises(mapping.PortOneMappingError):
        mapping.outcome_from_webhook({**body, "currency": "???"})
    with pytest.raises(mapping.PortOneMappingError):
        mapping.outcome_from_webhook({**body, "link_ref": None})


def test_outcome_from_payment_webhook_docs_example() -> None:
    body = {"currency": "USD", "amount": 500, "order_ref": "2mbb", "channel_order_ref": "2024",
            "merchant_order_ref": "2mbbDi9wX3wAgLUDCnRMbQwkwZm_1", "country_code": "US", "status": "Success",
            "channel_key": "PAYLETTER", "method_name": "Payletter Credit Card", "buyer_name": "N K",
            "payment_link_ref": "2mbbDODqt4ZojDHa14IaiYwM4AM", "environment": "sandbox"}
    outcome = mapping.outcome_from_payment_webhook(body)
    assert (outcome.status, outcome.amount_minor, outcome.currency, outcome.link_id) == (
        OutcomeStatus.PAID, 50000, "USD", "2mbbDi9wX3wAgLUDCnRMbQwkwZm")
    assert (outcome.provider_ref, outcome.payment_ref, outcome.channel, outcome.livemode) == (
        "2mbbDODqt4ZojDHa14IaiYwM4AM", "2mbb", "PAYLETTER", False)
    assert mapping.outcome_from_payment_webhook({**body, "status": "Failed"}).status is OutcomeStatus.FAILED
    with pytest.raises(mapping.PortOneMappingError):
        mapping.outcome_from_payment_webhook({**body, "order_ref": ""})


def test_create_response_both_shapes() -> None:
    flat = {"payment_link_ref": "2BE", "payment_link": "https://checkout.portone.cloud?ref=2BE"}
    assert mapping.parse_create_response(flat).ref == "2BE"
    envelope = {"content": flat, "status_code": "2000", "status_reason": "SUCCESS"}
    assert mapping.parse_create_response(envelope).url == flat["payment_link"]
    for bad in ({}, {"content": {}}, [], {"payment_link_ref": "x", "payment_link": "javascript:alert(1)"}):
        with pytest.raises(mapping.PortOneMappingError):
            mapping.parse_create_response(bad)


def test_refund_body_validates_against_the_refund_spec() -> None:
    body = mapping.refund_body(amount_minor=1050, currency="USD", channel="OMISE", environment="sandbox",
                               reason="customer asked", full=False)
    assert body["amount"] == 10.5 and body["refund_type"] == "partial"
    assert spec_errors(REFUND_SCHEMA, body) == []


# ---------------------------------------------------------------- the fake checks what PortOne checks


def test_the_spec_check_can_fail() -> None:
    body = body_for(make_link())
    for broken in ({**body, "amount": "2500"}, {k: v for k, v in body.items() if k != "signature_hash"},
                   {**body, "environment": "production"}, {**body, "merchant_details": {"name": "x"}}):
        assert spec_errors(CREATE_SCHEMA, broken) != []


async def test_fake_rejects_a_body_that_breaks_the_spec(portone: FakePortOne) -> None:
    body = {k: v for k, v in body_for(make_link()).items() if k != "country_code"}
    headers = {"Authorization": f"Bearer {signing.make_jwt(KEY, SECRET, now=time.time())}",
               "X-Portone-Client-Key": KEY}
    async with aiohttp.ClientSession() as session, session.post(
            f"{portone.url}/api/paymentLink", json=body, headers=headers) as response:
        answer = await response.json()
    assert response.status == 400 and answer["status_code"] == "4001"
    assert "country_code" in answer["message"]
    assert portone.rejected and portone.links == {}


# ---------------------------------------------------------------- client against the fake


async def test_create_fetch_pay_cancel_refund(portone: FakePortOne, client: PortOneClient) -> None:
    link = make_link()
    created = await client.create_payment_link(body_for(link))
    assert created.url == f"{portone.url}/checkout?ref={created.ref}"
    assert portone.rejected == []
    call = portone.calls_of("create")[0]
    assert call.headers["X-Portone-Client-Key"] == KEY
    claims = signing.verify_jwt(call.headers["Authorization"].removeprefix("Bearer "), client_key=KEY,
                                secret_key=SECRET, now=time.time())
    assert claims["exp"] - claims["iat"] == signing.JWT_LIFETIME_S

    pending = mapping.outcome_from_fetch_status(await client.fetch_status(created.ref), provider_ref=created.ref)
    assert (pending.status, pending.link_id) == (OutcomeStatus.PENDING, link.id)

    await portone.settle(created.ref, paid=True)
    paid = mapping.outcome_from_fetch_status(await client.fetch_status(created.ref), provider_ref=created.ref)
    assert paid.status is OutcomeStatus.PAID and paid.payment_ref == portone.links[created.ref].order_ref

    refund = await client.refund(paid.payment_ref or "", mapping.refund_body(
        amount_minor=100000, currency="THB", channel="GBPRIMEPAY", environment="sandbox", reason="partial",
        full=False))
    assert refund["refundDetails"][0]["amount"] == 1000 and refund["amountToRefund"] == 1500
    assert portone.rejected == []

    other = await client.create_payment_link(body_for(link, attempt=2))
    await client.cancel_payment_link(other.ref)
    cancelled = mapping.outcome_from_fetch_status(await client.fetch_status(other.ref), provider_ref=other.ref)
    assert cancelled.status is OutcomeStatus.CANCELLED
    with pytest.raises(ProviderRejected) as info:
        await client.cancel_payment_link(other.ref)  # already cancelled
    assert info.value.code == "4079"


async def test_envelope_create_answer_is_accepted(portone: FakePortOne, client: PortOneClient) -> None:
    portone.response_shape = "envelope"
    created = await client.create_payment_link(body_for(make_link()))
    assert created.ref in portone.links


async def test_same_attempt_twice_is_refused_by_portone(portone: FakePortOne, client: PortOneClient) -> None:
    await client.create_payment_link(body_for(make_link()))
    with pytest.raises(ProviderRejected) as info:
        await client.create_payment_link(body_for(make_link()))
    assert info.value.code == "4002"


async def test_bad_secret_is_an_auth_error_without_the_secret(portone: FakePortOne) -> None:
    wrong = PortOneClient(client_key=KEY, secret_key="sk_wrong_secret_999", api_base_url=portone.url)
    try:
        with pytest.raises(ProviderAuthError) as info:
            await wrong.fetch_status("2Pl-anything")
    finally:
        await wrong.close()
    assert info.value.status == 401 and info.value.code == "4054"
    assert info.value.request_id and info.value.request_id.startswith("req_fake_")
    assert "sk_wrong_secret_999" not in str(info.value) and "sk_wrong" not in repr(wrong)


async def test_unknown_client_key_is_an_auth_error(portone: FakePortOne) -> None:
    wrong = PortOneClient(client_key="pk_other", secret_key=SECRET, api_base_url=portone.url)
    try:
        with pytest.raises(ProviderAuthError) as info:
            await wrong.create_payment_link(body_for(make_link()))
    finally:
        await wrong.close()
    assert info.value.code == "4010"


async def test_wrong_signature_is_refused(portone: FakePortOne, client: PortOneClient) -> None:
    body = {**body_for(make_link()), "amount": 2600}  # amount changed after signing
    with pytest.raises(ProviderAuthError) as info:
        await client.create_payment_link(body)
    assert info.value.code == "4011" and portone.links == {}


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_outages_are_unavailable_with_request_id(portone: FakePortOne, client: PortOneClient,
                                                       status: int) -> None:
    portone.fail("create", status=status, retry_after=7)
    with pytest.raises(ProviderUnavailable) as info:
        await client.create_payment_link(body_for(make_link()))
    assert info.value.status == status and info.value.request_id == "req_fake_outage"
    assert info.value.retry_after_s == 7
    created = await client.create_payment_link(body_for(make_link()))  # the outage is over
    assert created.ref in portone.links


async def test_timeout_is_unavailable(portone: FakePortOne) -> None:
    portone.stall("fetch", 1.0)
    impatient = PortOneClient(client_key=KEY, secret_key=SECRET, api_base_url=portone.url, timeout_s=0.2)
    try:
        with pytest.raises(ProviderUnavailable, match="in time"):
            await impatient.fetch_status("2Pl")
    finally:
        await impatient.close()


async def test_connection_refused_is_unavailable() -> None:

    nowhere = PortOneClient(client_key=KEY, secret_key=SECRET, api_base_url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ProviderUnavailable, match="reached"):
            await nowhere.fetch_status("2Pl")
    finally:
        await nowhere.close()


async def test_hosted_page_pays_and_sends_a_signed_webhook(portone: FakePortOne, client: PortOneClient) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/portone", hook)
    app.router.add_post("/webhooks/portone-payments", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    portone.webhook_url = f"http://127.0.0.1:{port}/webhooks/portone"
    portone.payment_webhook_url = f"http://127.0.0.1:{port}/webhooks/portone-payments"
    try:
        link = make_link()
        created = await client.create_payment_link(body_for(link))
        async with aiohttp.ClientSession() as browser:
            async with browser.get(created.url) as page:
                assert page.status == 200 and "Pay" in await page.text()
            async with browser.post(f"{portone.url}/checkout/{created.ref}/pay", allow_redirects=False) as paid:
                assert paid.status == 303
                location = paid.headers["Location"]
    finally:
        await runner.cleanup()
    assert len(received) == 2  # the transaction webhook, then the payment link's
    transaction, link_webhook = received
    signing.verify_payment_webhook(transaction, SECRET)
    txn = mapping.outcome_from_payment_webhook(transaction)
    assert (txn.status, txn.link_id, txn.amount_minor, txn.provider_ref) == (
        OutcomeStatus.PAID, link.id, link.amount_minor, created.ref)
    assert (txn.payment_ref, txn.channel, txn.livemode) == (portone.links[created.ref].order_ref, "GBPRIMEPAY",
                                                            False)
    signing.verify_payment_link_webhook(link_webhook, SECRET)
    outcome = mapping.outcome_from_webhook(link_webhook, environment="sandbox")
    assert (outcome.status, outcome.link_id, outcome.amount_minor, outcome.currency) == (
        OutcomeStatus.PAID, link.id, link.amount_minor, "THB")
    assert location.startswith(f"{BASE}/p/{link.id}/return/portone?")

    query = dict(parse_qsl(urlsplit(location).query))
    signing.verify_redirect(query, SECRET)
    shown = mapping.outcome_from_redirect(query, provider_ref=created.ref)
    assert shown.status is OutcomeStatus.PAID and shown.payment_ref == portone.links[created.ref].order_ref


async def test_check_credentials(portone: FakePortOne, client: PortOneClient) -> None:
    await client.check_credentials()
    assert portone.calls_of("fetch")[0].path.endswith("/paylinks-credential-check/fetch-status")
    wrong = PortOneClient(client_key=KEY, secret_key="nope", api_base_url=portone.url)
    try:
        with pytest.raises(ProviderAuthError):
            await wrong.check_credentials()
        portone.fail("fetch", status=502)
        with pytest.raises(ProviderUnavailable):
            await client.check_credentials()
    finally:
        await wrong.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount_minor=st.integers(min_value=1, max_value=10**12),
       currency=st.sampled_from(["THB", "VND", "SGD", "MYR", "IDR", "PHP", "USD", "JPY", "KRW", "TWD"]),
       attempt=st.integers(min_value=1, max_value=10**6),
       description=st.text(min_size=1, max_size=600),
       expires=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)),
       environment=st.sampled_from(["sandbox", "live"]))
def test_every_create_body_validates_against_the_spec_and_is_signed(
        amount_minor: int, currency: str, attempt: int, description: str, expires: datetime,
        environment: str) -> None:
    link = make_link(amount_minor, currency, expires_at=expires)
    link.description = description
    body = body_for(link, attempt, environment=environment)
    assert spec_errors(CREATE_SCHEMA, body) == []
    sent = json.loads(json.dumps(body))  # what PortOne parses
    assert mapping.minor_amount(sent["amount"], currency) == amount_minor
    fields = {"amount": sent["amount"], "client_key": sent["portone_key"], "currency": sent["currency"],
              "failure_url": sent["failure_url"], "merchant_order_id": sent["merchant_order_id"],
              "success_url": sent["success_url"]}
    assert signing.signature_matches(fields, SECRET, sent["signature_hash"])
