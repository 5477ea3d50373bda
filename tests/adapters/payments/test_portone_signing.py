"""PortOne signatures and JWT reproduce every vector in tests/fakes/portone_spec/vectors.json."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pytest

from adapters.payments.portone import signing
from core.ports import WebhookError

SPEC_DIR = Path(__file__).parents[2] / "fakes" / "portone_spec"
VECTORS: dict[str, Any] = json.loads((SPEC_DIR / "vectors.json").read_text())
KEY = "pk_test_PAYLINKS"
SECRET = "sk_test_secret_123"
SUCCESS = "https://pay.example.com/portone/return?status=success"
FAILURE = "https://pay.example.com/portone/return?status=failure"


def test_every_vector_has_a_test() -> None:
    covered = {"A_jwt_matches_spec_example", "B_jwt", "C_request_message", "C_request_signature_hash",
               "C2_request_message", "C2_request_signature_hash", "D_webhook_message",
               "D_webhook_signature_hash", "E_redirect_message", "E_redirect_signature_hash",
               "F_payment_webhook_message", "F_payment_webhook_signature_hash"}
    assert set(VECTORS) == covered


def test_a_spec_example_token_recomputes_from_the_spec_example_secret() -> None:
    # The auth-token example of the vendored spec: key, secret and the token PortOne answered.
    spec = (SPEC_DIR / "payment_openapispec.yaml").read_text()
    token = spec.split('"token": "', 1)[1].split('"', 1)[0]
    claims = jwt.decode(token, options={"verify_signature": False})
    secret = "6cd264c70ec38d41a5dc2662e98c72bac58d3afc5bb4e80debbe3a976a0dc4eb"
    assert secret in spec
    made = signing.make_jwt(claims["sub"], secret, now=claims["iat"], lifetime_s=claims["exp"] - claims["iat"])
    assert VECTORS["A_jwt_matches_spec_example"] is True
    assert made == token


def test_b_jwt() -> None:
    assert signing.make_jwt(KEY, SECRET, now=1_700_000_000) == VECTORS["B_jwt"]


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # the test's own jwt.encode below
def test_b_jwt_verifies_and_fails_closed() -> None:
    token = VECTORS["B_jwt"]
    claims = signing.verify_jwt(token, client_key=KEY, secret_key=SECRET, now=1_700_000_050)
    assert claims == {"exp": 1_700_000_100, "iat": 1_700_000_000, "iss": "PORTONE", "sub": KEY}
    with pytest.raises(signing.JWTRejected, match="Expired"):
        signing.verify_jwt(token, client_key=KEY, secret_key=SECRET, now=1_700_000_200)
    with pytest.raises(signing.JWTRejected):
        signing.verify_jwt(token, client_key=KEY, secret_key="other-secret", now=1_700_000_050)
    with pytest.raises(signing.JWTRejected, match="Subject"):
        signing.verify_jwt(token, client_key="pk_other", secret_key=SECRET, now=1_700_000_050)
    other_issuer = jwt.encode({"exp": 1_700_000_100, "iat": 1_700_000_000, "iss": "CHAIPAY", "sub": KEY}, SECRET)
    with pytest.raises(signing.JWTRejected, match="Issuer"):
        signing.verify_jwt(other_issuer, client_key=KEY, secret_key=SECRET, now=1_700_000_050)


@pytest.mark.parametrize(("amount", "vector"), [
    (Decimal("2500"), "C"), (2500, "C"), (Decimal("2500.00"), "C"), ("2500", "C"),
    (Decimal("100.50"), "C2"), (100.5, "C2"),
])
def test_c_request_signature(amount: Any, vector: str) -> None:
    currency = "THB" if vector == "C" else "USD"
    fields = {"amount": amount, "client_key": KEY, "currency": currency, "failure_url": FAILURE,
              "merchant_order_id": "PL-000123", "success_url": SUCCESS}
    assert signing.signature_message(fields) == VECTORS[f"{vector}_request_message"]
    assert signing.request_signature(client_key=KEY, secret_key=SECRET, amount=amount, currency=currency,
                                     merchant_order_id="PL-000123", success_url=SUCCESS,
                                     failure_url=FAILURE) == VECTORS[f"{vector}_request_signature_hash"]


@pytest.mark.parametrize(("amount", "text"), [
    (Decimal("2500"), "2500"), (Decimal("100.50"), "100.5"), (Decimal("0.10"), "0.1"), (0, "0"),
    (Decimal("1000"), "1000"), (Decimal("10.05"), "10.05"), (100.25, "100.25"), ("7.00", "7"),
])
def test_amount_text_rule(amount: Any, text: str) -> None:
    assert signing.amount_text(amount) == text


@pytest.mark.parametrize("bad", [True, "ten", Decimal("NaN"), "Infinity"])
def test_amount_text_refuses_non_numbers(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        signing.amount_text(bad)


def _webhook_body() -> dict[str, Any]:
    # As the body arrives: `countryCode`, plus unsigned extras.
    return {"link_ref": "2mbaHZ6VVokmHJNtKafVCyIZIxv", "currency": "THB", "amount": 2500, "countryCode": "TH",
            "status": "Success", "merchant_order_ref": "PL-000123", "merchant_name": "ShopCity",
            "signature_hash": VECTORS["D_webhook_signature_hash"]}


def test_d_payment_link_webhook() -> None:
    body = _webhook_body()
    fields = signing.payment_link_webhook_fields(body)
    assert signing.signature_message(fields) == VECTORS["D_webhook_message"]
    assert signing.signature_hash(fields, SECRET) == VECTORS["D_webhook_signature_hash"]
    signing.verify_payment_link_webhook(body, SECRET)
    # A JSON parser may give the amount as a float or (parse_float=Decimal) a Decimal: same signature.
    signing.verify_payment_link_webhook({**body, "amount": 2500.0}, SECRET)
    signing.verify_payment_link_webhook({**body, "amount": Decimal("2500.00")}, SECRET)


@pytest.mark.parametrize("tamper", [
    {"amount": 25000}, {"currency": "USD"}, {"status": "Failed"}, {"merchant_order_ref": "PL-000124"},
    {"countryCode": "SG"}, {"link_ref": "other"}, {"signature_hash": ""}, {"signature_hash": None},
    {"signature_hash": VECTORS["C_request_signature_hash"]}, {"amount": None}, {"status": True},
])
def test_d_tampered_webhook_fails_closed(tamper: dict[str, Any]) -> None:
    with pytest.raises(WebhookError):
        signing.verify_payment_link_webhook({**_webhook_body(), **tamper}, SECRET)


def test_d_webhook_needs_a_secret() -> None:
    with pytest.raises(WebhookError, match="not configured"):
        signing.verify_payment_link_webhook(_webhook_body(), "")
    with pytest.raises(WebhookError):
        signing.verify_payment_link_webhook(_webhook_body(), "wrong-secret")


def test_e_redirect() -> None:
    query = {"channel_order_ref": "ch_987", "merchant_order_ref": "PL-000123_1",
             "order_ref": "2mbbExY77pp8iC0AQ1ucWymnd3c", "status": "Success", "amount": "2500",
             "signature_hash": VECTORS["E_redirect_signature_hash"]}
    assert signing.signature_message({k: query[k] for k in signing.REDIRECT_FIELDS}) == VECTORS["E_redirect_message"]
    signing.verify_redirect(query, SECRET)
    with pytest.raises(WebhookError):
        signing.verify_redirect({**query, "status": "Failed"}, SECRET)
    with pytest.raises(WebhookError):
        signing.verify_redirect({k: v for k, v in query.items() if k != "order_ref"}, SECRET)


def test_f_payment_webhook() -> None:
    body = {"amount": 2500, "channel_key": "GBPRIMEPAY", "channel_order_ref": "ch_987", "country_code": "TH",
            "currency": "THB", "merchant_order_ref": "PL-000123_1", "method_name": "GBPrimePay Credit Card",
            "order_ref": "2mbbExY77pp8iC0AQ1ucWymnd3c", "status": "Success",
            "signature_hash": VECTORS["F_payment_webhook_signature_hash"]}
    fields = {k: body[k] for k in signing.PAYMENT_WEBHOOK_FIELDS}
    assert signing.signature_message(fields) == VECTORS["F_payment_webhook_message"]
    assert signing.signature_hash(fields, SECRET) == VECTORS["F_payment_webhook_signature_hash"]
    signing.verify_payment_webhook(body, SECRET)
    with pytest.raises(WebhookError):
        signing.verify_payment_webhook({**body, "method_name": "Other"}, SECRET)
