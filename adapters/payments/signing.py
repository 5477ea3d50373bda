"""Stripe-style webhook signatures: `t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">`.

Verification works on the raw bytes as received (re-serialised JSON fails), compares in constant time
and rejects timestamps more than `tolerance_s` away from now.
"""

from __future__ import annotations

import hashlib
import hmac

from core.ports import WebhookError


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def sign_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str | None, body: bytes, *, now: float, tolerance_s: int = 300) -> None:
    if not secret:
        raise WebhookError("webhook secret is not configured")
    if not header:
        raise WebhookError("missing signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        # ASCII only: str.isdigit() accepts "²" (int() then fails) and compare_digest refuses non-ASCII str.
        if not value.isascii():
            continue
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookError("malformed signature header")
    if abs(now - timestamp) > tolerance_s:
        raise WebhookError("signature timestamp outside the tolerance")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise WebhookError("signature does not match")
