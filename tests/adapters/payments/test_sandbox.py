"""The sandbox provider: test cards, signed checkout sessions, one charge per checkout, strict webhooks."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from adapters.payments import signing
from adapters.payments.sandbox import (
    SESSION_LIFETIME_S,
    SIGNATURE_HEADER,
    CardResult,
    SandboxProvider,
    classify_card,
)
from core.models import PaymentLink
from core.ports import WebhookError
from tests.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> SandboxProvider:
    return SandboxProvider(public_base_url="https://pay.example/", webhook_secret="whsec_unit", clock=clock)


def link(amount_minor: int = 2500) -> PaymentLink:
    return PaymentLink(id="l" * 28, merchant_id="mer_1", amount_minor=amount_minor, currency="SGD",
                       description="cake", status="active")


@pytest.mark.parametrize(("number", "result"), [
    ("4242 4242 4242 4242", CardResult.APPROVED),
    ("4242424242424242", CardResult.APPROVED),
    ("4242-4242-4242-4242", CardResult.APPROVED),
    ("4000 0000 0000 0002", CardResult.DECLINED),
    ("5555 5555 5555 4444", CardResult.NOT_A_TEST_CARD),
    ("4242 4242 4242 4241", CardResult.NOT_A_TEST_CARD),
    ("4242", CardResult.INVALID),
    ("", CardResult.INVALID),
    ("card", CardResult.INVALID),
    ("४२४२४२४२४२४२४२४२", CardResult.INVALID),  # non-ASCII digits are not card digits
])
def test_cards(number: str, result: CardResult) -> None:
    assert classify_card(number) is result


async def test_checkout_is_idempotent_per_key_and_carries_the_link_amount(sandbox: SandboxProvider) -> None:
    first = await sandbox.create_checkout(link(), return_url="https://pay.example/p/x", idempotency_key="x:1")
    again = await sandbox.create_checkout(link(), return_url="https://pay.example/p/x", idempotency_key="x:1")
    other = await sandbox.create_checkout(link(), return_url="https://pay.example/p/x", idempotency_key="x:2")
    assert first.provider_ref == again.provider_ref != other.provider_ref
    assert first.url.startswith("https://pay.example/sandbox/checkout/")
    session = sandbox.decode_session(first.url.rsplit("/", 1)[1])
    assert session is not None
    assert (session.amount_minor, session.currency, session.ref) == (2500, "SGD", first.provider_ref)


async def test_sessions_expire(sandbox: SandboxProvider, clock: FakeClock) -> None:
    checkout = await sandbox.create_checkout(link(), return_url="r", idempotency_key="k")
    session = sandbox.decode_session(checkout.url.rsplit("/", 1)[1])
    assert session is not None and not sandbox.is_expired(session)
    clock.now += timedelta(seconds=SESSION_LIFETIME_S + 1)
    assert sandbox.is_expired(session)


async def test_a_session_signed_with_another_secret_or_edited_is_rejected(sandbox: SandboxProvider) -> None:
    checkout = await sandbox.create_checkout(link(), return_url="r", idempotency_key="k")
    token = checkout.url.rsplit("/", 1)[1]
    session = sandbox.decode_session(token)
    assert session is not None
    other = SandboxProvider(public_base_url="https://pay.example", webhook_secret="other")
    assert sandbox.decode_session(other.encode_session(replace(session, amount_minor=1))) is None
    payload, mac = token.split(".")
    assert sandbox.decode_session(f"{payload}x.{mac}") is None
    assert sandbox.decode_session("") is None and sandbox.decode_session(".") is None


async def test_one_checkout_makes_one_charge(sandbox: SandboxProvider) -> None:
    one = await sandbox.create_checkout(link(), return_url="r", idempotency_key="k:1")
    two = await sandbox.create_checkout(link(), return_url="r", idempotency_key="k:2")
    first, second = (sandbox.decode_session(c.url.rsplit("/", 1)[1]) for c in (one, two))
    assert first is not None and second is not None
    assert sandbox.charge_ids(first) == sandbox.charge_ids(first)
    assert sandbox.charge_ids(first)[0] != sandbox.charge_ids(second)[0]


async def test_built_webhook_verifies_and_maps_to_a_payment_event(sandbox: SandboxProvider, clock: FakeClock) -> None:
    checkout = await sandbox.create_checkout(link(), return_url="r", idempotency_key="k")
    session = sandbox.decode_session(checkout.url.rsplit("/", 1)[1])
    assert session is not None
    charge, event_id = sandbox.charge_ids(session)
    body, headers = sandbox.build_webhook(session, charge_id=charge, event_id=event_id, payer_name="Ann")
    assert headers[SIGNATURE_HEADER].startswith(f"t={int(clock.now.timestamp())},v1=")
    event = sandbox.verify_webhook(headers, body)
    assert (event.event_id, event.provider_ref, event.link_id) == (event_id, charge, "l" * 28)
    assert (event.amount_minor, event.currency, event.kind, event.payer_name) == (2500, "SGD",
                                                                                   "payment.succeeded", "Ann")
    clock.now += timedelta(seconds=301)
    with pytest.raises(WebhookError):
        sandbox.verify_webhook(headers, body)


def test_signed_garbage_is_a_webhook_error(sandbox: SandboxProvider, clock: FakeClock) -> None:
    ts = int(clock.now.timestamp())
    good = {"id": "evt_1", "type": "payment.succeeded",
            "data": {"charge_id": "ch_1", "link_id": "l" * 28, "amount_minor": 1, "currency": "SGD"}}
    bad_values = [
        {**good, "id": 7},
        {**good, "data": {**good["data"], "amount_minor": 1.5}},  # type: ignore[dict-item]
        {**good, "data": {**good["data"], "amount_minor": 0}},  # type: ignore[dict-item]
        {**good, "data": {**good["data"], "currency": ""}},  # type: ignore[dict-item]
        {**good, "data": {**good["data"], "payer_name": ["x"]}},  # type: ignore[dict-item]
        {**good, "data": "nope"},
    ]
    for value in bad_values:
        body = json.dumps(value).encode()
        with pytest.raises(WebhookError, match="malformed"):
            sandbox.verify_webhook({SIGNATURE_HEADER: signing.sign_header("whsec_unit", ts, body)}, body)
    body = json.dumps(good).encode()
    event = sandbox.verify_webhook({SIGNATURE_HEADER: signing.sign_header("whsec_unit", ts, body)}, body)
    assert event.amount_minor == 1
