"""PortOne Global request signing, webhook/redirect verification and the API's JWT.

All three follow docs.portone.cloud ("Payment Request", "Payment Link Webhook Signature", "Redirect
Response", "JWT Authentication"):

- signature_hash: take the fields, sort by key, form-urlencode (`urllib.parse.urlencode`, so spaces
  become "+"), HMAC-SHA256 with the secret key, standard base64.
- amounts enter the message as text: two decimals with trailing zeros (and a bare ".") removed, so
  2500 -> "2500", 100.50 -> "100.5".
- the API's bearer token is a JWT HS256 signed with the secret key, claims iss "PORTONE",
  sub = the client (PortOne) key, iat, exp (the docs use iat + 100 s).

Verification compares in constant time and fails closed: a missing field or signature is a mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import jwt

from core.ports import WebhookError

JWT_ISSUER = "PORTONE"
JWT_LIFETIME_S = 100  # the docs' iat + 100 s: a token is made per request, so short is free
# Clock skew allowed when checking a token's exp (verify_jwt).
JWT_LEEWAY_S = 5

# Which fields each signature covers (the message keys; the payment-link webhook body spells the
# country `countryCode` but the signed key is `country_code`).
REQUEST_FIELDS = ("amount", "client_key", "currency", "failure_url", "merchant_order_id", "success_url")
PAYMENT_LINK_WEBHOOK_FIELDS = ("amount", "country_code", "currency", "link_ref", "merchant_order_ref", "status")
PAYMENT_WEBHOOK_FIELDS = ("amount", "channel_key", "channel_order_ref", "country_code", "currency",
                          "merchant_order_ref", "method_name", "order_ref", "status")
REDIRECT_FIELDS = ("channel_order_ref", "merchant_order_ref", "order_ref", "status")

_CENT = Decimal("0.01")
# PyJWT >= 2.10 warns about HMAC keys under 32 bytes; older versions have no such warning class.
_INSECURE_KEY_WARNING: type[Warning] | None = getattr(jwt, "InsecureKeyLengthWarning", None)


def amount_text(amount: Decimal | int | float | str) -> str:
    """An amount as PortOne signs it: `f"{a:.2f}".rstrip("0").rstrip(".")`.

    Decimal, int and str are formatted exactly (no float on our own money); a float, as a JSON parser
    may hand us from a webhook, is formatted as PortOne's own Python sample does.
    """
    if isinstance(amount, bool):
        raise TypeError("amount must be a number, not a bool")
    if isinstance(amount, float):
        text = f"{amount:.2f}"
    else:
        try:
            value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
        except InvalidOperation:
            raise ValueError("amount is not a number") from None
        if not value.is_finite():
            raise ValueError("amount is not a finite number")
        text = f"{value.quantize(_CENT, rounding=ROUND_HALF_EVEN):f}"
    return text.rstrip("0").rstrip(".")


def signature_message(fields: Mapping[str, Any]) -> str:
    """The text that is signed: the fields sorted by key and form-urlencoded."""
    pairs = []
    for key in sorted(fields):
        value = fields[key]
        if key == "amount":
            value = amount_text(value)
        elif value is None:
            value = ""
        pairs.append((key, str(value)))
    return urllib.parse.urlencode(pairs)


def signature_hash(fields: Mapping[str, Any], secret_key: str) -> str:
    """Base64 (standard alphabet) HMAC-SHA256 of `signature_message(fields)` under the secret key."""
    if not secret_key:
        raise ValueError("PortOne secret key is not configured")
    mac = hmac.new(secret_key.encode(), signature_message(fields).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def request_signature(*, client_key: str, secret_key: str, amount: Decimal | int | str, currency: str,
                      merchant_order_id: str, success_url: str, failure_url: str) -> str:
    """The `signature_hash` of a create-payment-link (or initiate-payment) request."""
    return signature_hash({
        "amount": amount, "client_key": client_key, "currency": currency, "failure_url": failure_url,
        "merchant_order_id": merchant_order_id, "success_url": success_url,
    }, secret_key)


def signature_matches(fields: Mapping[str, Any], secret_key: str, given: object) -> bool:
    """Constant-time comparison of a received signature_hash with the one we compute."""
    if not isinstance(given, str) or not given or not secret_key:
        return False
    try:
        expected = signature_hash(fields, secret_key)
    except (TypeError, ValueError):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _pick(source: Mapping[str, Any], names: Iterable[str], aliases: Mapping[str, str] | None = None
          ) -> dict[str, Any]:
    picked: dict[str, Any] = {}
    for name in names:
        value = source.get(name)
        if value is None and aliases and name in aliases:
            value = source.get(aliases[name])
        if value is None or isinstance(value, dict | list | bool):
            raise WebhookError(f"signed field {name!r} is missing")
        picked[name] = value
    return picked


def payment_link_webhook_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The signed fields of a payment-link webhook body (`countryCode` in the body, `country_code` signed)."""
    return _pick(body, PAYMENT_LINK_WEBHOOK_FIELDS, {"country_code": "countryCode"})


def verify_payment_link_webhook(body: Mapping[str, Any], secret_key: str) -> None:
    """Raise WebhookError unless the body's `signature_hash` is PortOne's for its signed fields."""
    _verify(payment_link_webhook_fields(body), body.get("signature_hash"), secret_key, "payment link webhook")


def verify_payment_webhook(body: Mapping[str, Any], secret_key: str) -> None:
    """The transaction (payment_status) webhook: same scheme, its own field set."""
    fields = _pick(body, PAYMENT_WEBHOOK_FIELDS, {"country_code": "countryCode"})
    _verify(fields, body.get("signature_hash"), secret_key, "payment webhook")


def verify_redirect(query: Mapping[str, str], secret_key: str) -> None:
    """The customer's redirect to success/failure/pending URL. Never mark paid from this alone."""
    _verify(_pick(query, REDIRECT_FIELDS), query.get("signature_hash"), secret_key, "redirect")


def _verify(fields: Mapping[str, Any], given: object, secret_key: str, what: str) -> None:
    if not secret_key:
        raise WebhookError("PortOne secret key is not configured")
    if not isinstance(given, str) or not given:
        raise WebhookError(f"{what} has no signature_hash")
    if not signature_matches(fields, secret_key, given):
        raise WebhookError(f"{what} signature does not match")


# ---------------------------------------------------------------- JWT


def make_jwt(client_key: str, secret_key: str, *, now: float, lifetime_s: int = JWT_LIFETIME_S) -> str:
    """The bearer token for one API call (claims in the docs' order: exp, iat, iss, sub)."""
    if not client_key or not secret_key:
        raise ValueError("PortOne client key and secret key are required")
    iat = int(now)
    claims = {"exp": iat + lifetime_s, "iat": iat, "iss": JWT_ISSUER, "sub": client_key}
    with _short_keys_allowed():
        return jwt.encode(claims, secret_key, algorithm="HS256")


@contextmanager
def _short_keys_allowed() -> Iterator[None]:
    # PortOne issues the secret key, we cannot lengthen it: PyJWT's short-HMAC-key warning is noise here.
    with warnings.catch_warnings():
        if _INSECURE_KEY_WARNING is not None:
            warnings.simplefilter("ignore", _INSECURE_KEY_WARNING)
        yield


class JWTRejected(Exception):
    """A token that is not PortOne's: bad signature, wrong iss/sub, expired or malformed."""


def verify_jwt(token: str, *, client_key: str, secret_key: str, now: float,
               leeway_s: int = JWT_LEEWAY_S) -> dict[str, Any]:
    """Check a bearer token as PortOne would (the test fake uses it; so could a self-check)."""
    try:
        with _short_keys_allowed():
            claims: dict[str, Any] = jwt.decode(
                token, secret_key, algorithms=["HS256"], issuer=JWT_ISSUER, leeway=leeway_s,
                options={"require": ["exp", "iat", "iss", "sub"], "verify_exp": False, "verify_iat": False},
            )
    except jwt.PyJWTError as exc:
        raise JWTRejected(type(exc).__name__) from None
    # exp is checked against the caller's clock (tests use a fake one), not time.time().
    if not isinstance(claims.get("exp"), int) or claims["exp"] + leeway_s < now:
        raise JWTRejected("ExpiredSignatureError")
    if not hmac.compare_digest(str(claims.get("sub", "")).encode(), client_key.encode()):
        raise JWTRejected("InvalidSubjectError")
    return claims
