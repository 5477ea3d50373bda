"""Thin async calls to Stripe through the official `stripe` SDK (StripeClient + its aiohttp HTTP client).

Only what paylinks needs: Checkout Session create / retrieve / expire, account and balance retrieval
(credential checks), refunds, and webhook verification with `stripe.Webhook.construct_event`.
Objects come back as plain dicts (`StripeObject.to_dict()`) for adapters.payments.stripe.mapping.
SDK errors are classified (adapters.payments.common) with Stripe's request id; messages never contain
the secret key (Stripe masks keys in its own messages; we scrub ours as well).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import stripe

from adapters.payments.common import ProviderAuthError, ProviderError, ProviderRejected, ProviderUnavailable
from adapters.payments.stripe import DEFAULT_API_BASE_URL
from adapters.payments.stripe.mapping import PROVIDER
from core.ports import WebhookError

DEFAULT_TIMEOUT_S = 15.0
WEBHOOK_TOLERANCE_S = 300
_MAX_ERROR_TEXT = 300


class StripeApi:
    def __init__(self, *, secret_key: str, api_base_url: str = DEFAULT_API_BASE_URL,
                 timeout_s: float = DEFAULT_TIMEOUT_S, max_network_retries: int = 0) -> None:
        if not secret_key:
            raise ValueError("Stripe secret_key is required")
        self._secret_key = secret_key
        self.api_base_url = api_base_url.rstrip("/")
        # Retries are ours to decide (the Pay page shows "try again"); the SDK's own stay off by default.
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._client = stripe.StripeClient(
            secret_key, base_addresses={"api": self.api_base_url}, max_network_retries=max_network_retries,
            http_client=self._http)

    def __repr__(self) -> str:  # never the key
        return f"StripeApi(api_base_url={self.api_base_url!r}, livemode={not self.is_test_mode})"

    @property
    def is_test_mode(self) -> bool:
        return self._secret_key.startswith(("sk_test_", "rk_test_"))

    # ---------------------------------------------------------------- Checkout Sessions

    async def create_checkout_session(self, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """POST /v1/checkout/sessions with params from mapping.checkout_session_params."""
        # A plain dict where stripe's types want its TypedDict (the same keys, built by mapping.py).
        return await self._call(self._client.v1.checkout.sessions.create_async(
            dict(params), options={"idempotency_key": idempotency_key}))  # type: ignore[arg-type]

    async def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        return await self._call(self._client.v1.checkout.sessions.retrieve_async(_required(session_id)))

    async def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        """POST /v1/checkout/sessions/{id}/expire (only an open session can be expired)."""
        return await self._call(self._client.v1.checkout.sessions.expire_async(_required(session_id)))

    # ---------------------------------------------------------------- credential checks

    async def retrieve_account(self) -> dict[str, Any]:
        """GET /v1/account: the account the key belongs to."""
        return await self._call(self._client.v1.accounts.retrieve_current_async())

    async def retrieve_balance(self) -> dict[str, Any]:
        """GET /v1/balance: works for restricted keys that may not read the account."""
        return await self._call(self._client.v1.balance.retrieve_async())

    async def check_credentials(self) -> dict[str, Any]:
        """Prove the key works: the account, or for a restricted key that may not read it, the balance.

        Raises ProviderAuthError for a bad key, ProviderUnavailable when Stripe cannot be asked now.
        """
        try:
            return await self.retrieve_account()
        except ProviderAuthError as exc:
            if exc.status != 403:
                raise
        return await self.retrieve_balance()

    # ---------------------------------------------------------------- refunds

    async def create_refund(self, *, payment_intent: str, amount: int | None = None,
                            idempotency_key: str | None = None,
                            metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        """POST /v1/refunds; `amount` in Stripe's unit (currencies.stripe_unit_amount), None = all of it."""
        params: dict[str, Any] = {"payment_intent": _required(payment_intent)}
        if amount is not None:
            params["amount"] = amount
        if metadata:
            params["metadata"] = dict(metadata)
        options: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
        # Plain dicts where stripe's types want its TypedDicts (same keys, built by mapping.py).
        return await self._call(self._client.v1.refunds.create_async(params, options=options))  # type: ignore[arg-type]

    async def close(self) -> None:
        await self._http.close_async()

    # ---------------------------------------------------------------- plumbing

    async def _call(self, pending: Any) -> dict[str, Any]:
        try:
            result = await pending
        except stripe.StripeError as exc:
            raise self._classify(exc) from None
        return result.to_dict()

    def _classify(self, exc: stripe.StripeError) -> ProviderError:
        message = (exc.user_message or type(exc).__name__).replace(self._secret_key, "[secret]")[:_MAX_ERROR_TEXT]
        request_id = exc.request_id
        status = exc.http_status
        code = exc.code
        if isinstance(exc, stripe.APIConnectionError):
            return ProviderUnavailable(f"Stripe could not be reached or did not answer in time ({type(exc).__name__})",
                                       provider=PROVIDER, request_id=request_id)
        if isinstance(exc, stripe.RateLimitError) or status == 429 or (status or 0) >= 500 or (
                isinstance(exc, stripe.APIError) and status is None):
            retry_after = _retry_after(exc.headers)
            return ProviderUnavailable(f"Stripe is unavailable ({message})", provider=PROVIDER,
                                       request_id=request_id, status=status, code=code, retry_after_s=retry_after)
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            return ProviderAuthError(f"Stripe refused the key ({message})", provider=PROVIDER,
                                     request_id=request_id, status=status, code=code)
        param = getattr(exc, "param", None)
        return ProviderRejected(f"Stripe refused the request ({message})", provider=PROVIDER,
                                request_id=request_id, status=status, code=code or _error_type(exc),
                                param=param if isinstance(param, str) else None)


def construct_event(raw_body: bytes, sig_header: str | None, webhook_secret: str, *,
                    tolerance_s: int = WEBHOOK_TOLERANCE_S) -> dict[str, Any]:
    """Verify a Stripe webhook on its raw body (`Stripe-Signature`, 300 s tolerance) -> the event as a dict.

    Raises core.ports.WebhookError (fails closed: no secret, no header, bad or stale signature, bad JSON).
    """
    if not webhook_secret:
        raise WebhookError("Stripe webhook secret is not configured")
    try:
        event = stripe.Webhook.construct_event(raw_body, sig_header, webhook_secret, tolerance=tolerance_s)
    except stripe.SignatureVerificationError:
        raise WebhookError("Stripe signature does not verify") from None
    except (ValueError, TypeError, KeyError):
        raise WebhookError("Stripe webhook body is not a JSON event") from None
    data: dict[str, Any] = event.to_dict()
    if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
        raise WebhookError("Stripe webhook body is not an event")
    return data


def _required(value: str) -> str:
    if not value:
        raise ValueError("a Stripe id is required")
    return value


def _error_type(exc: stripe.StripeError) -> str | None:
    error = exc.error
    kind = getattr(error, "type", None) if error is not None else None
    return kind if isinstance(kind, str) else None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
