"""Stripe-style webhook signatures: raw bytes, constant-time compare, 300 s tolerance (issue 2, point 9)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.payments import signing
from core.ports import WebhookError

SECRET = "whsec_unit"
NOW = 1_800_000_000
BODY = b'{"id":"evt_1","type":"payment.succeeded"}'


def test_header_is_t_and_v1_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signing.sign_header(SECRET, NOW, BODY) == f"t={NOW},v1={expected}"


def test_a_good_signature_verifies_within_the_tolerance() -> None:
    header = signing.sign_header(SECRET, NOW, BODY)
    for offset in (0, 299, -299, 300, -300):
        signing.verify(SECRET, header, BODY, now=NOW + offset)


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_outside_the_tolerance_fails(offset: int) -> None:
    with pytest.raises(WebhookError, match="tolerance"):
        signing.verify(SECRET, signing.sign_header(SECRET, NOW, BODY), BODY, now=NOW + offset)


def test_any_other_secret_or_body_fails() -> None:
    header = signing.sign_header(SECRET, NOW, BODY)
    with pytest.raises(WebhookError):
        signing.verify("whsec_other", header, BODY, now=NOW)
    with pytest.raises(WebhookError):
        signing.verify(SECRET, header, BODY.replace(b"evt_1", b"evt_2"), now=NOW)
    with pytest.raises(WebhookError):
        signing.verify(SECRET, header, b'{"id": "evt_1", "type": "payment.succeeded"}', now=NOW)


@pytest.mark.parametrize("header", [None, "", "t=1", "v1=abc", "t=x,v1=abc", "nonsense"])
def test_missing_or_malformed_headers_fail(header: str | None) -> None:
    with pytest.raises(WebhookError):
        signing.verify(SECRET, header, BODY, now=NOW)


def test_an_empty_secret_fails_closed() -> None:
    with pytest.raises(WebhookError, match="not configured"):
        signing.verify("", signing.sign_header("", NOW, BODY), BODY, now=NOW)


def test_one_matching_v1_among_several_is_enough() -> None:
    # Providers send two v1 values while a secret is being rotated.
    good = signing.signature(SECRET, NOW, BODY)
    signing.verify(SECRET, f"t={NOW},v1={'0' * 64},v1={good}", BODY, now=NOW)


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=200))
def test_no_other_body_verifies(body: bytes, other: bytes) -> None:
    header = signing.sign_header(SECRET, NOW, body)
    signing.verify(SECRET, header, body, now=NOW)
    if other != body:
        with pytest.raises(WebhookError):
            signing.verify(SECRET, header, other, now=NOW)
