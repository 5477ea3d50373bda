"""The PortOne Global provider: a payment link per press of Pay, webhooks confirmed before recording.

Thin on purpose: HTTP is adapters.payments.portone.client, bodies and outcomes are
adapters.payments.portone.mapping, signatures adapters.payments.portone.signing. A webhook's only
authentication is the `signature_hash` inside its body, so a payment is recorded only after PortOne's
own fetch-status says the same payment link succeeded (fails closed). The provider's ref of a
payment is its payment_link_ref: one PortOne link can only ever be one payment.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from adapters.payments.common import (
    OutcomeStatus,
    ProviderError,
    ProviderOutcome,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.payments.portone import CHECKOUT_ORIGINS, mapping, signing
from adapters.payments.portone.client import DEFAULT_API_BASE_URL, PortOneClient
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

log = logging.getLogger("paylinks.payments.portone")

PAID_KIND = "payment.succeeded"
_ID_MAX = 200
# PortOne takes no idempotency key: our refund's id goes in the refund's description, and is read back.
_REFUND_DESCRIPTION = "paylinks refund"
_OUR_REFUND = re.compile(re.escape(_REFUND_DESCRIPTION) + r" (\S+)")
_LINK_ID_MAX = 40


MerchantName = Callable[[str], Awaitable[str]]


async def _no_name(_merchant_id: str) -> str:
    return "paylinks"


class PortOneProvider:
    name = mapping.PROVIDER

    def __init__(self, *, client_key: str, secret_key: str, environment: str, country_code: str,
                 public_base_url: str, api_base_url: str = DEFAULT_API_BASE_URL, timeout_s: float = 15.0,
                 merchant_name: MerchantName = _no_name, clock: Clock = utcnow) -> None:
        if not client_key or not secret_key:
            raise ValueError("payments.portone.client_key and secret_key are required")
        self.client_key = client_key
        self._secret_key = secret_key
        self.environment = environment
        self.country_code = country_code
        self.public_base_url = public_base_url.rstrip("/")
        self.api_base_url = api_base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.merchant_name = merchant_name
        self.clock = clock
        self.test_mode = environment != "live"
        # Pay's 303 goes there (CSP form-action, adapters/web/security.py); the API's origin too (a stand-in).
        self.checkout_origins = (*CHECKOUT_ORIGINS, self.api_base_url)
        self._client: PortOneClient | None = None

    def __repr__(self) -> str:  # never the secret
        return f"PortOneProvider(environment={self.environment!r}, api_base_url={self.api_base_url!r})"

    @property
    def client(self) -> PortOneClient:
        # Built on first use, inside the running loop (its aiohttp session belongs to it).
        if self._client is None:
            self._client = PortOneClient(client_key=self.client_key, secret_key=self._secret_key,
                                         api_base_url=self.api_base_url, timeout_s=self.timeout_s)
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def check_money(self, money: Money) -> tuple[str, str] | None:
        try:
            mapping.check_chargeable(money.amount_minor, money.currency)
        except mapping.PortOneMappingError as exc:
            return exc.field, str(exc)
        return None

    # ---------------------------------------------------------------- Pay

    async def create_checkout(self, link: PaymentLink, *, return_url: str, idempotency_key: str) -> Checkout:
        """A PortOne payment link for this attempt; `idempotency_key` is "{link id}:{attempt}" (pages.py)."""
        _, _, attempt_text = idempotency_key.rpartition(":")
        attempt = int(attempt_text) if attempt_text.isdigit() else 0
        body = mapping.create_body(
            link, attempt, client_key=self.client_key, secret_key=self._secret_key, environment=self.environment,
            country_code=self.country_code, public_base_url=self.public_base_url,
            merchant_name=await self.merchant_name(link.merchant_id))
        created = await self.client.create_payment_link(body)
        return Checkout(url=created.url, provider_ref=created.ref)

    async def link_outcome(self, provider_ref: str) -> ProviderOutcome:
        answer = await self.client.fetch_status(provider_ref)
        try:
            return mapping.outcome_from_fetch_status(answer, provider_ref=provider_ref)
        except mapping.PortOneMappingError as exc:
            raise ProviderUnavailable(f"PortOne answered with an unreadable status ({exc})",
                                      provider=self.name) from None

    async def reconcile_event(self, provider_ref: str, link: PaymentLink) -> PaymentEvent | None:
        """A missed webhook: fetch-status of one PortOne link of ours, as its confirmed webhook would record it.

        fetch-status carries no amount, but the PortOne link was created by us, signed, for exactly the
        stored link's amount and currency, and PortOne charges what the link says: a Success of that
        PortOne link (for our merchant_order_id) is a payment of that amount. The later webhook (event id
        "{ref}:paid") then meets the same payment ref and is a duplicate.
        """
        outcome = await self.link_outcome(provider_ref)
        if outcome.status is not OutcomeStatus.PAID:
            return None
        if outcome.link_id != link.id:
            log.warning("portone fetch-status names another link checkout=%s link=%s", provider_ref, link.id)
            return None
        if outcome.amount_minor is None or outcome.currency is None:
            outcome = replace(outcome, amount_minor=link.amount_minor, currency=link.currency)
        event = event_of(replace(outcome, livemode=not self.test_mode))
        return replace(event, event_id=f"reconcile:{provider_ref}"[:_ID_MAX])

    async def fetch_status(self, provider_ref: str) -> str:
        return (await self.link_outcome(provider_ref)).status.value

    async def close_checkout(self, provider_ref: str) -> None:
        """Cancel an open PortOne payment link; one already paid, expired or cancelled needs nothing."""
        outcome = await self.link_outcome(provider_ref)
        if outcome.status is not OutcomeStatus.PENDING:
            return
        try:
            await self.client.cancel_payment_link(provider_ref)
        except ProviderRejected as exc:
            if exc.status not in (400, 404, 409):
                raise

    # ---------------------------------------------------------------- refunds

    async def refund(self, payment: Payment, amount_minor: int, idempotency_key: str, *,
                     reason: str | None = None) -> RefundAnswer:
        """POST /api/refund/{order_ref}, full or partial. PortOne takes no idempotency key, so ours goes in
        the description (core never sends one refund twice; the refund list shows which is ours)."""
        try:
            order_ref = payment.payment_ref or (await self.link_outcome(payment.provider_ref)).payment_ref
            if not order_ref:
                raise RefundRefused("PortOne has no transaction for this payment")
            if not payment.channel:
                raise RefundRefused("PortOne did not say which payment channel took this payment; refund it from "
                                    "the PortOne admin console")
            full = amount_minor == payment.amount_minor and not payment.amount_refunded_minor
            body = mapping.refund_body(amount_minor=amount_minor, currency=payment.currency,
                                       channel=payment.channel, environment=self.environment,
                                       reason=reason or "refund from paylinks", full=full)
            body["description"] = f"{_REFUND_DESCRIPTION} {idempotency_key}"
            made = await self._made_before(order_ref, idempotency_key)
            details = made if made else mapping.refund_details(await self.client.refund(order_ref, body))
        except ProviderUnavailable as exc:
            raise RefundUnavailable(str(exc)) from None
        except (ProviderError, mapping.PortOneMappingError) as exc:
            raise RefundRefused(str(exc)) from None
        ours = [d for d in details if idempotency_key in str(d.get("description") or "")] or details[-1:]
        if not ours:
            return RefundAnswer(provider_ref=None, state=RefundState.PENDING)
        detail = ours[-1]
        state = RefundState(mapping.refund_state(detail.get("refund_status")))
        return RefundAnswer(provider_ref=mapping.refund_ref_of(detail), state=state,
                            reason=str(detail.get("refund_status"))[:200] if state is RefundState.FAILED else None)

    async def _made_before(self, order_ref: str, idempotency_key: str) -> list[Mapping[str, Any]]:
        """Our refund, if an earlier attempt made it (PortOne has no idempotency keys: its list says)."""
        try:
            listed = mapping.refund_details(await self.client.fetch_refunds(order_ref))
        except (ProviderRejected, mapping.PortOneMappingError):  # no refunds yet, or an unreadable list
            return []
        return [d for d in listed if idempotency_key in str(d.get("description") or "")]

    async def confirmed_refund(self, order_ref: str, refund_ref: str) -> tuple[RefundState, str | None] | None:
        """What PortOne's own refund list says of one refund (its webhook is unsigned), with our refund's id
        from its description (the webhook may come before PortOne's answer to us is stored); None: not listed.
        """
        for detail in mapping.refund_details(await self.client.fetch_refunds(order_ref)):
            if mapping.refund_ref_of(detail) == refund_ref:
                ours = _OUR_REFUND.search(str(detail.get("description") or ""))
                return RefundState(mapping.refund_state(detail.get("refund_status"))), ours[1] if ours else None
        return None

    # ---------------------------------------------------------------- webhooks

    def verify_redirect(self, query: Mapping[str, str]) -> None:
        signing.verify_redirect(query, self._secret_key)

    def read_webhook(self, raw_body: bytes) -> ProviderOutcome:
        """Verify the signature_hash in the body (constant time) -> its outcome. Not yet confirmed."""
        try:
            body = json.loads(raw_body)
        except (ValueError, RecursionError):
            raise WebhookError("PortOne webhook body is not JSON") from None
        if not isinstance(body, dict):
            raise WebhookError("PortOne webhook body is not a JSON object")
        try:
            if "link_ref" in body:
                signing.verify_payment_link_webhook(body, self._secret_key)
                return mapping.outcome_from_webhook(body, environment=self.environment)
            signing.verify_payment_webhook(body, self._secret_key)
            return mapping.outcome_from_payment_webhook(body)
        except mapping.PortOneMappingError as exc:
            raise WebhookError(f"PortOne webhook is malformed ({exc})") from None

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> PaymentEvent:
        """The signed webhook as an event; PortOneWebhooks confirms a paid one with fetch-status first."""
        return event_of(self.read_webhook(raw_body))

    async def confirmed(self, outcome: ProviderOutcome) -> bool:
        """True when PortOne's fetch-status says the same link of ours succeeded."""
        status = await self.link_outcome(outcome.provider_ref)
        return status.status is OutcomeStatus.PAID and status.link_id == outcome.link_id


def event_of(outcome: ProviderOutcome) -> PaymentEvent:
    ours = outcome.link_id is not None and len(outcome.link_id) <= _LINK_ID_MAX
    paid = outcome.status is OutcomeStatus.PAID and ours
    ref = outcome.provider_ref
    if not ref or len(ref) > _ID_MAX or has_controls(ref):
        raise WebhookError("PortOne payment link ref is not usable")
    if paid and (outcome.amount_minor is None or outcome.currency is None):
        raise WebhookError("PortOne paid webhook has no amount")
    payer = outcome.payer_name if outcome.payer_name and not has_controls(outcome.payer_name) else None
    return PaymentEvent(
        provider=mapping.PROVIDER,
        # PortOne's webhooks carry no event id: the link and its status name the event (a redelivery is
        # the same event); the payment itself is unique by the link ref anyway.
        event_id=f"{ref}:{outcome.status.value}"[:_ID_MAX],
        # A failed transaction is told to the seller (the link stays open for another try); expiries and
        # cancellations change nothing here.
        kind=PAID_KIND if paid else ("payment.failed" if outcome.status is OutcomeStatus.FAILED and ours
                                     else f"portone.{outcome.status.value}"),
        link_id=outcome.link_id if ours and outcome.link_id else "",
        provider_ref=ref,
        amount_minor=outcome.amount_minor or 0,
        currency=outcome.currency or "",
        payer_name=payer,
        livemode=outcome.livemode,
        payment_ref=outcome.payment_ref,
        channel=outcome.channel,
    )
