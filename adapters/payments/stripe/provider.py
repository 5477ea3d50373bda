"""The Stripe provider: Checkout Sessions for Pay, verified webhooks mapped to PaymentEvents.

Thin on purpose: the SDK calls are adapters.payments.stripe.client, the link <-> session mapping is
adapters.payments.stripe.mapping, and recording is core.links.LinkService. The provider's ref of a
payment is its Checkout Session id (cs_…): the webhook, the return route and a late duplicate all name
the same session, so one session can only ever be one payment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.payments.common import (
    OutcomeStatus,
    ProviderError,
    ProviderOutcome,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.payments.stripe import CHECKOUT_ORIGIN, mapping
from adapters.payments.stripe.client import DEFAULT_API_BASE_URL, StripeApi, construct_event
from adapters.payments.stripe.currencies import (
    StripeCurrencyError,
    check_chargeable,
    from_stripe_amount,
    stripe_unit_amount,
)
from core.clock import Clock, utcnow
from core.models import Payment, PaymentLink
from core.money import Money
from core.ports import (
    Checkout,
    PaymentEvent,
    RefundAnswer,
    RefundRefused,
    RefundState,
    RefundUnavailable,
    WebhookError,
)
from core.text import has_controls

log = logging.getLogger("paylinks.payments.stripe")

SIGNATURE_HEADER = "Stripe-Signature"
# The kind core.links.LinkService.record_payment records; every other kind is acknowledged and ignored.
PAID_KIND = "payment.succeeded"
_ID_MAX = 200  # provider_event.event_id and payment.provider_ref columns
_LINK_ID_MAX = 40
# An example currency for the message refusing one Stripe cannot charge.
_EXAMPLE = "25.00 SGD"


class StripeProvider:
    name = mapping.PROVIDER

    def __init__(self, *, secret_key: str, webhook_secret: str, public_base_url: str,
                 api_base_url: str = DEFAULT_API_BASE_URL, timeout_s: float = 15.0, clock: Clock = utcnow) -> None:
        if not secret_key:
            raise ValueError("payments.stripe.secret_key is required")
        self._secret_key = secret_key
        self._webhook_secret = webhook_secret
        self.public_base_url = public_base_url.rstrip("/")
        self.api_base_url = api_base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.clock = clock
        # Sandbox-like pretend money with sk_test_/rk_test_ keys.
        self.test_mode = mapping.is_test_key(secret_key)
        # Pay's 303 goes there (CSP form-action, adapters/web/security.py); the API's own origin too, for a
        # stand-in such as stripe-mock or the tests' fake that serves its hosted page itself.
        self.checkout_origins = (CHECKOUT_ORIGIN, self.api_base_url)
        self._api: StripeApi | None = None

    def __repr__(self) -> str:  # never the keys
        return f"StripeProvider(api_base_url={self.api_base_url!r}, test_mode={self.test_mode})"

    @property
    def api(self) -> StripeApi:
        # Built on first use, inside the running loop (the SDK's aiohttp client belongs to it).
        if self._api is None:
            self._api = StripeApi(secret_key=self._secret_key, api_base_url=self.api_base_url,
                                  timeout_s=self.timeout_s)
        return self._api

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            await api.close()

    # ---------------------------------------------------------------- what links may be made

    def check_money(self, money: Money) -> tuple[str, str] | None:
        """(field, message) when Stripe cannot charge this amount in this currency; None when it can."""
        try:
            check_chargeable(money.amount_minor, money.currency)
        except StripeCurrencyError as exc:
            message = str(exc)
            if exc.field == "currency":
                message += f" (for example {_EXAMPLE})"
            return exc.field, message
        return None

    # ---------------------------------------------------------------- Pay

    async def create_checkout(self, link: PaymentLink, *, return_url: str, idempotency_key: str) -> Checkout:
        """A Checkout Session for the stored link; `idempotency_key` is "{link id}:{attempt}" (pages.py)."""
        attempt = _attempt_of(idempotency_key)
        params = mapping.checkout_session_params(link, attempt, public_base_url=self.public_base_url,
                                                 now=self.clock())
        session = await self.api.create_checkout_session(
            params, idempotency_key=mapping.idempotency_key(link.id, attempt))
        url, session_id = session.get("url"), session.get("id")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or not isinstance(session_id, str):
            raise ProviderUnavailable("Stripe answered without a checkout URL", provider=self.name)
        return Checkout(url=url, provider_ref=session_id)

    async def session_outcome(self, session_id: str) -> ProviderOutcome:
        """What became of one Checkout Session (the return route, reconciliation)."""
        session = await self.api.retrieve_checkout_session(session_id)
        try:
            return mapping.outcome_from_session(session)
        except mapping.StripeMappingError as exc:
            raise ProviderUnavailable(f"Stripe answered with an unreadable session ({exc})",
                                      provider=self.name) from None

    async def reconcile_event(self, provider_ref: str, link: PaymentLink) -> PaymentEvent | None:
        """The paid session as its webhook would record it (the later webhook is then a duplicate).

        The session carries its own amount and currency; record_payment checks them against `link`.
        """
        outcome = await self.session_outcome(provider_ref)
        if outcome.status is not OutcomeStatus.PAID:
            return None
        return event_of(outcome, event_id=f"reconcile:{provider_ref}", kind="checkout.session.reconciled")

    async def fetch_status(self, provider_ref: str) -> str:
        return (await self.session_outcome(provider_ref)).status.value

    async def close_checkout(self, provider_ref: str) -> None:
        """Expire an open Checkout Session; one that is already complete or expired needs nothing."""
        try:
            await self.api.expire_checkout_session(provider_ref)
        except ProviderRejected as exc:
            if exc.status == 400:  # "Only Checkout Sessions with a status in ["open"] can be expired."
                return
            raise

    # ---------------------------------------------------------------- refunds

    async def refund(self, payment: Payment, amount_minor: int, idempotency_key: str, *,
                     reason: str | None = None) -> RefundAnswer:
        """POST /v1/refunds on the payment intent; `charge.refunded` / `refund.updated` confirm it later."""
        try:
            intent = payment.payment_ref or (await self.session_outcome(payment.provider_ref)).payment_ref
            if not intent:
                raise RefundRefused("Stripe has no payment intent for this payment")
            answer = await self.api.create_refund(
                payment_intent=intent, amount=stripe_unit_amount(amount_minor, payment.currency),
                idempotency_key=f"paylinks-refund-{idempotency_key}",
                metadata={"paylinks_refund": idempotency_key, "link_id": payment.link_id})
        except ProviderUnavailable as exc:
            raise RefundUnavailable(str(exc)) from None
        except (ProviderError, StripeCurrencyError) as exc:  # refused (amount, already refunded, key)
            raise RefundRefused(str(exc)) from None
        return refund_answer(answer)

    # ---------------------------------------------------------------- webhooks

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> PaymentEvent:
        event = construct_event(raw_body, headers.get(SIGNATURE_HEADER), self._webhook_secret)
        event_id = _bounded(event["id"], _ID_MAX, "event id")
        if event.get("type") in mapping.REFUND_AND_DISPUTE_EVENTS:
            try:
                return refund_or_dispute_event(event, event_id)
            except (KeyError, TypeError, ValueError, StripeCurrencyError) as exc:
                raise WebhookError(f"Stripe event {event['type']} is malformed ({type(exc).__name__})") from None
        try:
            outcome = mapping.outcome_from_event(event)
        except mapping.StripeMappingError as exc:
            raise WebhookError(f"Stripe event {event['type']} is malformed ({exc})") from None
        if outcome is None:
            return PaymentEvent(provider=self.name, event_id=event_id, kind=str(event["type"])[:100], link_id="",
                                provider_ref="", amount_minor=0, currency="")
        return event_of(outcome, event_id=event_id, kind=str(event["type"]))


def event_of(outcome: ProviderOutcome, *, event_id: str, kind: str) -> PaymentEvent:
    """A Stripe outcome as the PaymentEvent LinkService records: only a paid session of ours is a payment."""
    ours = outcome.link_id is not None and len(outcome.link_id) <= _LINK_ID_MAX
    paid = outcome.status is OutcomeStatus.PAID
    if paid and ours and (outcome.amount_minor is None or outcome.currency is None):
        raise WebhookError("Stripe paid session has no amount")
    payer = outcome.payer_name if outcome.payer_name and not has_controls(outcome.payer_name) else None
    failed = outcome.status is OutcomeStatus.FAILED and ours
    # Expired and still-processing sessions change nothing here (the link stays payable); a failed one
    # (a delayed method refused after checkout) is told to the seller.
    kind = PAID_KIND if paid and ours else ("payment.failed" if failed else f"stripe.{kind}"[:100])
    return PaymentEvent(
        provider=mapping.PROVIDER,
        event_id=event_id,
        kind=kind,
        link_id=outcome.link_id if ours and outcome.link_id else "",
        provider_ref=_bounded(outcome.provider_ref, _ID_MAX, "session id"),
        amount_minor=outcome.amount_minor or 0,
        currency=outcome.currency or "",
        payer_name=payer,
        livemode=outcome.livemode,
        payment_ref=outcome.payment_ref,
        reason="the payment method was refused after checkout" if failed else None,
    )


_REFUND_STATES = {"succeeded": RefundState.SUCCEEDED, "failed": RefundState.FAILED,
                  "canceled": RefundState.FAILED}


def refund_answer(refund: Mapping[str, Any]) -> RefundAnswer:
    """A Stripe refund object -> what it says: pending (also requires_action) until succeeded or failed."""
    state = _REFUND_STATES.get(str(refund.get("status")), RefundState.PENDING)
    reason = refund.get("failure_reason") if state is RefundState.FAILED else None
    ref = refund.get("id")
    return RefundAnswer(provider_ref=ref if isinstance(ref, str) and ref else None, state=state,
                        reason=str(reason or "Stripe marked the refund failed")[:200] if state is RefundState.FAILED
                        else None)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= _ID_MAX and not has_controls(value) else None


def refund_or_dispute_event(event: Mapping[str, Any], event_id: str) -> PaymentEvent:
    """charge.refunded / refund.updated / refund.failed / charge.dispute.created -> a PaymentEvent."""
    kind = str(event["type"])
    obj = event["data"]["object"]
    if kind == "charge.dispute.created":
        currency = str(obj["currency"]).upper()
        return PaymentEvent(provider=mapping.PROVIDER, event_id=event_id, kind="dispute.created", link_id="",
                            provider_ref="", amount_minor=from_stripe_amount(int(obj["amount"]), currency),
                            currency=currency, payment_ref=_text_or_none(obj.get("payment_intent")),
                            reason=_text_or_none(obj.get("reason")), livemode=event.get("livemode"))
    if kind == "charge.refunded":
        refunds = (obj.get("refunds") or {}).get("data") or []
        # Stripe lists the newest first: the refund this event is about. Older ones had their own events.
        obj = refunds[0] if refunds else {}
    answer = refund_answer(obj)
    metadata = obj.get("metadata") or {}
    ours = _text_or_none(metadata.get("paylinks_refund")) if isinstance(metadata, Mapping) else None
    currency = str(obj.get("currency") or "").upper()
    amount = obj.get("amount")
    if answer.state is RefundState.PENDING or answer.provider_ref is None or not isinstance(amount, int):
        return PaymentEvent(provider=mapping.PROVIDER, event_id=event_id, kind=f"stripe.{kind}"[:100], link_id="",
                            provider_ref="", amount_minor=0, currency="")
    return PaymentEvent(
        provider=mapping.PROVIDER, event_id=event_id,
        kind="refund.succeeded" if answer.state is RefundState.SUCCEEDED else "refund.failed",
        link_id="", provider_ref="", amount_minor=from_stripe_amount(amount, currency), currency=currency,
        payment_ref=_text_or_none(obj.get("payment_intent")), refund_ref=answer.provider_ref,
        refund_id=ours[:40] if ours else None, reason=answer.reason, livemode=event.get("livemode"))


def _attempt_of(idempotency_key: str) -> int:
    _, _, attempt = idempotency_key.rpartition(":")
    return int(attempt) if attempt.isdigit() else 0


def _bounded(value: Any, max_length: int, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length or has_controls(value):
        raise WebhookError(f"Stripe {what} is not usable")
    return value
