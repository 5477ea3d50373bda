"""The sandbox provider: a pretend card processor served by paylinks itself under /sandbox/.

It behaves like a real gateway from the core's point of view: create_checkout returns a URL to a hosted
checkout page; a successful card posts a signed webhook (header `Paylinks-Signature`) to
/webhooks/sandbox; verify_webhook maps that webhook to a PaymentEvent and fails closed.
Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.payments import signing
from core.clock import Clock, utcnow
from core.models import PaymentLink
from core.ports import Checkout, PaymentEvent, WebhookError

SIGNATURE_HEADER = "Paylinks-Signature"
SUCCESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """What the sandbox checkout page needs, carried in a signed token instead of a table."""

    ref: str
    link_id: str
    amount_minor: int
    currency: str
    description: str
    return_url: str


class SandboxProvider:
    name = "sandbox"

    def __init__(self, *, public_base_url: str, webhook_secret: str, clock: Clock = utcnow) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.clock = clock

    # ---- the "provider API"

    async def create_checkout(self, link: PaymentLink, *, return_url: str, idempotency_key: str) -> Checkout:
        # Same idempotency key -> same checkout, as a real provider would answer.
        ref = "cs_" + self._mac(f"checkout:{idempotency_key}".encode())[:24]
        session = CheckoutSession(ref, link.id, link.amount_minor, link.currency, link.description, return_url)
        return Checkout(url=f"{self.public_base_url}/sandbox/checkout/{self.encode_session(session)}",
                        provider_ref=ref)

    async def fetch_status(self, provider_ref: str) -> str:
        # The sandbox keeps no state of its own: the webhook is the only source of truth.
        return "unknown"

    # ---- checkout sessions (signed so the checkout page cannot be pointed at another amount)

    def encode_session(self, session: CheckoutSession) -> str:
        body = json.dumps(_as_dict(session), separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._mac(payload.encode())[:32]}"

    def decode_session(self, token: str) -> CheckoutSession | None:
        payload, _, mac = token.partition(".")
        if not payload or not hmac.compare_digest(self._mac(payload.encode())[:32], mac):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return CheckoutSession(**data)
        except (ValueError, TypeError):
            return None

    # ---- webhooks

    def build_webhook(self, session: CheckoutSession, *, charge_id: str, event_id: str,
                      payer_name: str | None) -> tuple[bytes, dict[str, str]]:
        """The webhook the sandbox sends after a successful card: raw body and headers."""
        body = json.dumps({
            "id": event_id,
            "type": "payment.succeeded",
            "created": int(self.clock().timestamp()),
            "data": {
                "charge_id": charge_id,
                "checkout": session.ref,
                "link_id": session.link_id,
                "amount_minor": session.amount_minor,
                "currency": session.currency,
                "payer_name": payer_name,
            },
        }, separators=(",", ":")).encode()
        header = signing.sign_header(self.webhook_secret, int(self.clock().timestamp()), body)
        return body, {SIGNATURE_HEADER: header, "Content-Type": "application/json"}

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> PaymentEvent:
        signing.verify(self.webhook_secret, headers.get(SIGNATURE_HEADER), raw_body,
                       now=self.clock().timestamp())
        try:
            event = json.loads(raw_body)
            data = event["data"]
            amount = data["amount_minor"]
            if not isinstance(amount, int) or isinstance(amount, bool):
                raise TypeError("amount_minor")
            return PaymentEvent(
                provider=self.name,
                event_id=str(event["id"]),
                kind=str(event["type"]),
                link_id=str(data["link_id"]),
                provider_ref=str(data["charge_id"]),
                amount_minor=amount,
                currency=str(data["currency"]),
                payer_name=data.get("payer_name") or None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookError(f"malformed sandbox event ({type(exc).__name__})") from None

    def _mac(self, data: bytes) -> str:
        return hmac.new(self.webhook_secret.encode(), data, hashlib.sha256).hexdigest()


def _as_dict(session: CheckoutSession) -> dict[str, Any]:
    return {name: getattr(session, name) for name in CheckoutSession.__slots__}
