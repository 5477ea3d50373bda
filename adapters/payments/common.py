"""Values and errors shared by the real payment providers (Stripe, PortOne).

A provider's answer about a checkout is mapped to a ProviderOutcome (amounts in integer minor units,
ISO 4217 upper-case currency), and every failure of a provider call is one of the ProviderError
classes below, whose messages never contain a secret (keys, tokens, signatures).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OutcomeStatus(StrEnum):
    PAID = "paid"
    FAILED = "failed"
    PENDING = "pending"  # started, not finished (or the provider is still processing)
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ProviderOutcome:
    """What a provider says about one checkout (Stripe Checkout Session / PortOne payment link)."""

    provider: str  # "stripe" | "portone"
    status: OutcomeStatus
    provider_ref: str  # the checkout's id at the provider (cs_… / PortOne payment_link_ref)
    link_id: str | None  # our link id, when the provider echoed it back
    amount_minor: int | None  # None when the provider did not say
    currency: str | None  # ISO 4217, upper case
    # The payment's own id, needed for refunds (Stripe payment_intent, PortOne order_ref).
    payment_ref: str | None = None
    livemode: bool | None = None
    payer_name: str | None = None
    raw_status: str = ""  # the provider's own status words, for logs
    channel: str | None = None  # PortOne's channel_key (a PortOne refund names it); None for Stripe

    def matches(self, amount_minor: int, currency: str) -> bool:
        """True when the provider's amount and currency are exactly the link's (unknown is not a match)."""
        return (self.amount_minor is not None and self.currency is not None
                and self.amount_minor == amount_minor and self.currency == currency.upper())


class ProviderError(Exception):
    """A provider call failed. `str(exc)` is safe to log: it never contains a secret."""

    def __init__(self, message: str, *, provider: str, request_id: str | None = None,
                 status: int | None = None, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.request_id = request_id  # the provider's id for the request, to quote to its support
        self.status = status  # HTTP status, None for a network error or timeout
        self.code = code  # the provider's error code ("amount_too_small", "4010", …)
        self.param = param  # the request parameter the provider blamed, when it says


class ProviderUnavailable(ProviderError):
    """Timeout, connection error, 5xx, 429 or a malformed answer: try again later."""

    def __init__(self, message: str, *, provider: str, request_id: str | None = None,
                 status: int | None = None, code: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message, provider=provider, request_id=request_id, status=status, code=code)
        self.retry_after_s = retry_after_s


class ProviderAuthError(ProviderError):
    """The provider refused our credentials (bad or revoked key): retrying will not help."""


class ProviderRejected(ProviderError):
    """The provider refused the request itself (4xx other than auth/rate limit)."""
