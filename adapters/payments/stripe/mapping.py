"""Pure mapping between our links and Stripe Checkout Sessions / events (no I/O, no SDK objects).

Inputs from Stripe are plain mappings (the client hands over `StripeObject.to_dict()`; a webhook body is
json-decoded), so these functions are tested without the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.payments.common import OutcomeStatus, ProviderOutcome
from adapters.payments.stripe.currencies import StripeCurrencyError, from_stripe_amount, stripe_unit_amount
from core import money
from core.models import PaymentLink

PROVIDER = "stripe"
# Stripe: a Checkout Session expires 30 minutes to 24 hours after its creation. Stripe measures from
# when it creates the session, a moment after our `now`, so we stay a minute inside both bounds.
SESSION_MIN_LIFETIME = timedelta(minutes=30)
SESSION_MAX_LIFETIME = timedelta(hours=24)
CLOCK_MARGIN = timedelta(minutes=1)
PRODUCT_NAME_MAX = 250
HANDLED_EVENTS = frozenset({
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
})

# Events about money after checkout (adapters.payments.stripe.provider.refund_or_dispute_event).
REFUND_AND_DISPUTE_EVENTS = frozenset({"charge.refunded", "refund.updated", "refund.failed",
                                       "charge.dispute.created"})


class StripeMappingError(ValueError):
    """A Stripe object we cannot read (no id, not a checkout session, inexact amount)."""


def idempotency_key(link_id: str, attempt: int) -> str:
    """Same link + same attempt -> the same Checkout Session (a double-clicked Pay makes one)."""
    return f"paylinks-checkout-{link_id}-{attempt}"


def success_url(public_base_url: str, link_id: str) -> str:
    # {CHECKOUT_SESSION_ID} is filled in by Stripe, literally with these braces.
    return f"{public_base_url.rstrip('/')}/p/{link_id}/return/stripe?session_id={{CHECKOUT_SESSION_ID}}"


def cancel_url(public_base_url: str, link_id: str) -> str:
    return f"{public_base_url.rstrip('/')}/p/{link_id}"


def session_expires_at(link_expires_at: datetime, now: datetime) -> int:
    """Unix time: the sooner of the link's expiry and Stripe's 24 h limit, but at least Stripe's 30 min.

    A link expiring in under 30 minutes still gets a 30-minute session: the integrator expires the
    session when the link expires (POST /v1/checkout/sessions/{id}/expire).
    """
    expires = link_expires_at if link_expires_at.tzinfo else link_expires_at.replace(tzinfo=UTC)
    earliest = now + SESSION_MIN_LIFETIME + CLOCK_MARGIN
    latest = now + SESSION_MAX_LIFETIME - CLOCK_MARGIN
    return int(max(earliest, min(expires, latest)).timestamp())


def metadata(link: PaymentLink, attempt: int) -> dict[str, str]:
    # Stripe metadata: at most 50 keys, keys <= 40 characters, values <= 500, all strings.
    return {"link_id": link.id, "merchant_id": link.merchant_id, "attempt": str(attempt)}


def checkout_session_params(link: PaymentLink, attempt: int, *, public_base_url: str, now: datetime,
                            customer_email: str | None = None) -> dict[str, Any]:
    """The params of POST /v1/checkout/sessions, built from the stored link only (never from the request)."""
    currency = money.normalize_currency(link.currency)
    unit_amount = stripe_unit_amount(link.amount_minor, currency)
    meta = metadata(link, attempt)
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [{
            "quantity": 1,
            "price_data": {
                "currency": currency.lower(),
                "unit_amount": unit_amount,
                "product_data": {"name": (link.description or "Payment")[:PRODUCT_NAME_MAX]},
            },
        }],
        "client_reference_id": link.id,
        "metadata": meta,
        "payment_intent_data": {"metadata": meta},
        "expires_at": session_expires_at(link.expires_at, now),
        "success_url": success_url(public_base_url, link.id),
        "cancel_url": cancel_url(public_base_url, link.id),
    }
    email = customer_email if customer_email is not None else link.customer_email
    if email:
        params["customer_email"] = email
    return params


def is_test_key(secret_key: str) -> bool:
    """sk_test_… / rk_test_… keys move pretend money (livemode false)."""
    return secret_key.startswith(("sk_test_", "rk_test_"))


# ---------------------------------------------------------------- outcomes


def session_status(session: Mapping[str, Any]) -> OutcomeStatus:
    """Checkout Session `status` (open|complete|expired) + `payment_status` (paid|unpaid|no_payment_required)."""
    status = session.get("status")
    payment_status = session.get("payment_status")
    if status == "complete" and payment_status == "paid":
        return OutcomeStatus.PAID
    if status == "expired":
        return OutcomeStatus.EXPIRED
    # complete + unpaid: a delayed method (bank debit…) is still processing; open: not finished.
    return OutcomeStatus.PENDING


def outcome_from_session(session: Mapping[str, Any], *, status: OutcomeStatus | None = None) -> ProviderOutcome:
    """A retrieved (or event-carried) Checkout Session -> our outcome; amounts in our minor units."""
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id:
        raise StripeMappingError("Stripe session has no id")
    metadata = session.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
    link_id = session.get("client_reference_id") or meta.get("link_id")
    amount_minor: int | None = None
    currency = session.get("currency")
    if isinstance(currency, str) and isinstance(session.get("amount_total"), int):
        try:
            amount_minor = from_stripe_amount(session["amount_total"], currency)
        except StripeCurrencyError as exc:
            raise StripeMappingError(str(exc)) from None
    payment_intent = session.get("payment_intent")
    if isinstance(payment_intent, Mapping):
        payment_intent = payment_intent.get("id")
    customer_details = session.get("customer_details")
    details: Mapping[str, Any] = customer_details if isinstance(customer_details, Mapping) else {}
    payer = details.get("name")
    livemode = session.get("livemode")
    return ProviderOutcome(
        provider=PROVIDER, status=status or session_status(session), provider_ref=session_id,
        link_id=link_id if isinstance(link_id, str) and link_id else None,
        amount_minor=amount_minor, currency=currency.upper() if amount_minor is not None and currency else None,
        payment_ref=payment_intent if isinstance(payment_intent, str) and payment_intent else None,
        livemode=livemode if isinstance(livemode, bool) else None,
        payer_name=payer[:200] if isinstance(payer, str) and payer else None,
        raw_status=f"{session.get('status')}/{session.get('payment_status')}")


def outcome_from_event(event: Mapping[str, Any]) -> ProviderOutcome | None:
    """A verified webhook event -> our outcome; None for event types we acknowledge and ignore."""
    event_type = event.get("type")
    if event_type not in HANDLED_EVENTS:
        return None
    data = event.get("data")
    session = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(session, Mapping) or session.get("object", "checkout.session") != "checkout.session":
        raise StripeMappingError("event carries no checkout session")
    if event_type == "checkout.session.async_payment_succeeded":
        return outcome_from_session(session, status=OutcomeStatus.PAID)
    if event_type == "checkout.session.async_payment_failed":
        return outcome_from_session(session, status=OutcomeStatus.FAILED)
    if event_type == "checkout.session.expired":
        return outcome_from_session(session, status=OutcomeStatus.EXPIRED)
    # checkout.session.completed: paid only when payment_status says so (delayed methods come later).
    paid = session.get("payment_status") == "paid"
    return outcome_from_session(session, status=OutcomeStatus.PAID if paid else OutcomeStatus.PENDING)
