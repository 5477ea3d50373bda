"""The sandbox provider: a pretend card processor served by paylinks itself under /sandbox/.

It behaves like a real gateway from the core's point of view: create_checkout returns a URL to a hosted
checkout page; a successful card posts a signed webhook (header `Paylinks-Signature`) to
/webhooks/sandbox; verify_webhook maps that webhook to a PaymentEvent and fails closed.
Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined.

Refunds: `refund` answers "pending" at once and then, like a real gateway, posts a signed
`refund.succeeded` webhook to /webhooks/sandbox (from a background task, after answering).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from adapters.payments import signing
from core.clock import Clock, utcnow
from core.models import Payment, PaymentLink
from core.ports import Checkout, PaymentEvent, RefundAnswer, RefundRefused, RefundState, WebhookError
from core.text import has_controls

log = logging.getLogger("paylinks.payments.sandbox")

SIGNATURE_HEADER = "Paylinks-Signature"
SUCCESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
# A hosted checkout stays usable this long, as with real gateways (a stale tab cannot pay a week later).
SESSION_LIFETIME_S = 3600


class CardResult(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    NOT_A_TEST_CARD = "not_a_test_card"  # a well-formed number that is not one of the sandbox cards
    INVALID = "invalid"  # not a card number at all


def classify_card(number: str) -> CardResult:
    """What the sandbox does with a card number; spaces and dashes between digits are allowed."""
    digits = number.replace(" ", "").replace("-", "")
    if not digits.isascii() or not digits.isdigit() or not 12 <= len(digits) <= 19:
        return CardResult.INVALID
    if digits == SUCCESS_CARD:
        return CardResult.APPROVED
    if digits == DECLINED_CARD:
        return CardResult.DECLINED
    return CardResult.NOT_A_TEST_CARD


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """What the sandbox checkout page needs, carried in a signed token instead of a table."""

    ref: str
    link_id: str
    amount_minor: int
    currency: str
    description: str
    return_url: str
    expires: int = 0  # unix time after which the checkout cannot be paid; 0 = never


class SandboxProvider:
    name = "sandbox"
    test_mode = True  # nothing it takes is real money

    def __init__(self, *, public_base_url: str, webhook_secret: str, clock: Clock = utcnow) -> None:
        self.public_base_url = public_base_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.clock = clock
        # Where refund webhooks go; the plug-in's web() sets the served app's own URL.
        self.webhook_url = f"{self.public_base_url}/webhooks/{self.name}"
        self._deliveries: set[asyncio.Task[int | None]] = set()

    # ---- the "provider API"

    async def create_checkout(self, link: PaymentLink, *, return_url: str, idempotency_key: str) -> Checkout:
        # Same idempotency key -> same checkout, as a real provider would answer.
        ref = "cs_" + self._mac(f"checkout:{idempotency_key}".encode())[:24]
        # Never open past the link's end (a reusable link's checkout: its reservation's end).
        expires = int(self.clock().timestamp()) + SESSION_LIFETIME_S
        if link.expires_at is not None:
            expires = min(expires, int(link.expires_at.timestamp()))
        session = CheckoutSession(ref, link.id, link.amount_minor, link.currency, link.description, return_url,
                                  expires)
        return Checkout(url=f"{self.public_base_url}/sandbox/checkout/{self.encode_session(session)}",
                        provider_ref=ref)

    async def fetch_status(self, provider_ref: str) -> str:
        # The sandbox keeps no state of its own: the webhook is the only source of truth.
        return "unknown"

    async def refund(self, payment: Payment, amount_minor: int, idempotency_key: str, *,
                     reason: str | None = None) -> RefundAnswer:
        """Pending now; the signed `refund.succeeded` webhook follows (the same key is the same refund)."""
        if payment.provider != self.name:
            raise RefundRefused(f"payment {payment.id} was not made with the sandbox")
        if not 0 < amount_minor <= payment.amount_minor:
            raise RefundRefused("amount must be more than zero and at most the payment's amount")
        ref = "re_" + self._mac(f"refund:{idempotency_key}".encode())[:24]
        body = json.dumps({
            "id": "evt_" + self._mac(f"refund-event:{idempotency_key}".encode())[:24],
            "type": "refund.succeeded",
            "created": int(self.clock().timestamp()),
            "data": {"refund_id": ref, "metadata": {"paylinks_refund": idempotency_key},
                     "charge_id": payment.provider_ref, "link_id": payment.link_id,
                     "amount_minor": amount_minor, "currency": payment.currency},
        }, separators=(",", ":")).encode()
        header = signing.sign_header(self.webhook_secret, int(self.clock().timestamp()), body)
        task = asyncio.get_running_loop().create_task(
            self._post(body, {SIGNATURE_HEADER: header, "Content-Type": "application/json"}))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
        return RefundAnswer(provider_ref=ref, state=RefundState.PENDING)

    async def _post(self, body: bytes, headers: dict[str, str]) -> int | None:
        import aiohttp  # here: the CLI builds this provider with the services and rarely posts anything

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as client, \
                    client.post(self.webhook_url, data=body, headers=headers, allow_redirects=False) as response:
                await response.read()
                if response.status >= 300:
                    log.warning("sandbox refund webhook not accepted status=%s", response.status)
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sandbox refund webhook not delivered error=%s", type(exc).__name__)
            return None

    async def drain(self) -> None:
        """Wait for the refund webhooks sent so far (tests; shutdown)."""
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    # ---- checkout sessions (signed so the checkout page cannot be pointed at another amount)

    def encode_session(self, session: CheckoutSession) -> str:
        body = json.dumps(_as_dict(session), separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._mac(payload.encode())[:32]}"

    def decode_session(self, token: str) -> CheckoutSession | None:
        payload, _, mac = token.partition(".")
        if not token.isascii():  # compare_digest refuses non-ASCII str; no real token has any
            return None
        if not payload or not hmac.compare_digest(self._mac(payload.encode())[:32], mac):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return CheckoutSession(**data)
        except (ValueError, TypeError):
            return None

    def is_expired(self, session: CheckoutSession) -> bool:
        return bool(session.expires) and self.clock().timestamp() > session.expires

    def charge_ids(self, session: CheckoutSession) -> tuple[str, str]:
        """(charge id, event id) of the one charge a checkout can make.

        Derived from the checkout, so a double-submitted form or a resent webhook is the same charge
        and the same event (one checkout pays once, as with real gateways), never a second payment.
        """
        return ("ch_" + self._mac(f"charge:{session.ref}".encode())[:24],
                "evt_" + self._mac(f"event:{session.ref}".encode())[:24])

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
            if event.get("type") == "refund.succeeded":
                return self._refund_event(event, data)
            amount = data["amount_minor"]
            if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 2**63:
                raise TypeError("amount_minor")
            payer = data.get("payer_name")
            if payer is not None and (not isinstance(payer, str) or has_controls(payer)):
                raise TypeError("payer_name")
            if payer is not None:
                payer.encode()  # a lone surrogate cannot be stored (UnicodeEncodeError is a ValueError)
            parsed = PaymentEvent(
                provider=self.name,
                event_id=_text(event["id"], 200),
                kind=_text(event["type"], 100),
                link_id=_text(data["link_id"], 40),
                provider_ref=_text(data["charge_id"], 200),
                amount_minor=amount,
                currency=_text(data["currency"], 3),
                payer_name=(payer or "")[:200] or None,
                checkout_ref=_text(data["checkout"], 200) if data.get("checkout") is not None else None,
            )
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise WebhookError(f"malformed sandbox event ({type(exc).__name__})") from None
        return parsed

    def _refund_event(self, event: dict[str, Any], data: dict[str, Any]) -> PaymentEvent:
        amount = data["amount_minor"]
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 2**63:
            raise TypeError("amount_minor")
        metadata = data.get("metadata") or {}
        ours = metadata.get("paylinks_refund") if isinstance(metadata, dict) else None
        return PaymentEvent(
            provider=self.name, event_id=_text(event["id"], 200), kind="refund.succeeded",
            link_id=_text(data["link_id"], 40), provider_ref=_text(data["charge_id"], 200), amount_minor=amount,
            currency=_text(data["currency"], 3), refund_ref=_text(data["refund_id"], 200),
            refund_id=_text(ours, 40) if ours is not None else None)

    def _mac(self, data: bytes) -> str:
        return hmac.new(self.webhook_secret.encode(), data, hashlib.sha256).hexdigest()


def _text(value: Any, max_length: int) -> str:
    # Signed events come from us, but a field that does not fit its column must be a 4xx, never a 500.
    if not isinstance(value, str) or not value or len(value) > max_length or has_controls(value):
        raise ValueError("field")
    value.encode()  # lone surrogates: UnicodeEncodeError, a ValueError
    return value


def _as_dict(session: CheckoutSession) -> dict[str, Any]:
    return {name: getattr(session, name) for name in CheckoutSession.__slots__}
