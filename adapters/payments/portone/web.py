"""PortOne's web routes: POST /webhooks/portone (and per shop) and GET /p/{link_id}/return/portone
(adapters/payments/portone/plugin.py describes them). Apart from the plug-in so loading the settings
does not import aiohttp and the web layer."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, cast
from urllib.parse import quote

from aiohttp import web

from adapters.payments.common import OutcomeStatus, ProviderError
from adapters.payments.portone import mapping
from adapters.payments.portone.provider import PortOneProvider, event_of
from adapters.payments.return_pages import ReturnPages
from adapters.web.webhooks import foreign_reason, invalid
from core.i18n import N_
from core.links import LinkService
from core.models import LinkStatus, PaymentLink
from core.ports import PaymentEvent, RefundState, WebhookError

log = logging.getLogger("paylinks.payments.portone")


class PortOneWebhooks:
    def __init__(self, links: LinkService) -> None:
        self.links = links

    async def handle(self, request: web.Request, provider: PortOneProvider, account: str | None) -> web.Response:
        raw_body = await request.read()
        refund = _refund_webhook(raw_body)
        if refund is not None:
            return await self._refund(refund, provider)
        try:
            outcome = provider.read_webhook(raw_body)
            event = replace(event_of(outcome), account=account)
        except WebhookError as exc:
            log.warning("webhook rejected provider=portone account=%s reason=%s", account or "-", exc)
            return invalid(str(exc))
        reason = await foreign_reason(self.links, event, account)
        if reason is not None:
            log.warning("webhook refused provider=portone account=%s link=%s reason=%s", account or "-",
                        event.link_id, reason)
            return invalid(reason)
        if event.kind == "payment.succeeded":
            try:
                confirmed = await provider.confirmed(outcome)
            except ProviderError as exc:
                # 503: PortOne retries; nothing is recorded on an unconfirmed webhook.
                log.warning("portone webhook not confirmed link=%s ref=%s request_id=%s error=%s",
                            event.link_id, event.provider_ref, exc.request_id, exc)
                return invalid("could not confirm with PortOne; retry later", status=503,
                               code="provider_unavailable")
            if not confirmed:
                log.warning("portone webhook says paid, fetch-status does not link=%s ref=%s",
                            event.link_id, event.provider_ref)
                return invalid("PortOne's status does not confirm this payment")
        result, payment = await self.links.record_payment(event)
        if event.payment_ref:  # the transaction webhook names what a refund needs, whichever came first
            await self.links.note_payment_ref(event.provider, event.provider_ref, event.payment_ref, event.channel)
        log.info("webhook processed provider=portone account=%s event=%s outcome=%s link=%s payment=%s",
                 account or "-", event.event_id, result.value, event.link_id or "-", payment.id if payment else "-")
        return web.json_response({"received": True, "outcome": result.value})

    async def _refund(self, body: dict[str, Any], provider: PortOneProvider) -> web.Response:
        order_ref, refund_ref = str(body.get("payment_txn_ref") or ""), str(body.get("refund_id") or "")
        if not order_ref or not refund_ref or len(order_ref) > 200 or len(refund_ref) > 200:
            return web.json_response({"error": {"code": "invalid_webhook", "message": "refund webhook names no "
                                                "transaction or refund", "field": None}}, status=400)
        try:
            confirmed = await provider.confirmed_refund(order_ref, refund_ref)
        except (ProviderError, mapping.PortOneMappingError) as exc:
            log.warning("portone refund webhook not confirmed refund=%s error=%s", refund_ref, exc)
            return web.json_response({"error": {"code": "provider_unavailable", "message":
                                                "could not confirm with PortOne; retry later", "field": None}},
                                     status=503)
        if confirmed is None:
            log.warning("portone refund webhook for a refund PortOne does not list refund=%s", refund_ref)
            return web.json_response({"error": {"code": "invalid_webhook", "message":
                                                "PortOne does not list this refund", "field": None}}, status=400)
        state, our_refund_id = confirmed
        if state is RefundState.PENDING:
            return web.json_response({"received": True, "outcome": "ignored"})
        event = PaymentEvent(provider=provider.name, event_id=f"refund:{refund_ref}:{state.value}"[:200],
                             kind=f"refund.{state.value}", link_id="", provider_ref="", amount_minor=0,
                             currency="", payment_ref=order_ref, refund_ref=refund_ref, refund_id=our_refund_id,
                             reason="PortOne marked the refund failed" if state is RefundState.FAILED else None)
        result, _ = await self.links.record_payment(event)
        log.info("refund webhook processed provider=portone refund=%s outcome=%s", refund_ref, result.value)
        return web.json_response({"received": True, "outcome": result.value})


def _refund_webhook(raw_body: bytes) -> dict[str, Any] | None:
    """The body when it is PortOne's refund webhook (it has `refund_status` and no signature_hash)."""
    try:
        body = json.loads(raw_body)
    except (ValueError, RecursionError):
        return None
    if isinstance(body, dict) and "refund_status" in body and "signature_hash" not in body:
        return body
    return None


class PortOneReturnPages(ReturnPages):
    name = "portone"

    async def back_from_checkout(self, request: web.Request) -> web.StreamResponse:
        link_id = self.link_id_of(request)
        page_url = f"/p/{link_id}"
        query = {k: v for k, v in request.query.items()}
        link = await self.links.get(link_id)
        if link is None:
            raise web.HTTPNotFound()
        # The attempt named in the (not yet verified) redirect only picks the checkout, and so the account
        # whose secret must verify the redirect; a forged one fails that verification.
        parsed = mapping.parse_merchant_order_id(query.get("merchant_order_ref"))
        if parsed is None or parsed[0] != link_id:
            raise web.HTTPSeeOther(page_url)
        checkout = next((c for c in await self.links.open_checkouts(link.id)
                         if c.attempt == parsed[1] and c.provider == self.name), None)
        chosen = await self.provider_for(link, checkout.provider_ref if checkout is not None else None)
        if chosen is None:
            raise web.HTTPSeeOther(page_url)
        provider = cast(PortOneProvider, chosen.provider)
        try:
            provider.verify_redirect(query)
        except WebhookError as exc:
            log.info("portone redirect not verified link=%s reason=%s", link_id, exc)
            raise web.HTTPSeeOther(page_url) from None
        if link.status == LinkStatus.PAID:
            raise web.HTTPSeeOther(page_url)  # the receipt
        status = mapping.outcome_status(query.get("status"))
        if status is OutcomeStatus.PAID or status is OutcomeStatus.PENDING:
            # Never paid from the redirect alone: PortOne's fetch-status must say so, exactly as for a webhook
            # (the webhook that follows is then a duplicate). Until then this page waits and looks again.
            recorded = await self._confirm(link, provider, checkout.provider_ref if checkout else None,
                                           chosen.account)
            if recorded is not None:  # the pay page shows the receipt, or the refund notice
                raise web.HTTPSeeOther(f"{page_url}?payment={quote(recorded)}")
            return await self.message(request, link, N_("Processing"), N_("Confirming your payment"),
                                      N_("%(provider)s is confirming your payment. This page refreshes by itself "
                                         "and shows your receipt once it is confirmed."),
                                      test_mode=provider.test_mode, refresh=True, values={"provider": "PortOne"})
        return await self.message(request, link, N_("Not paid"), N_("The payment was not completed"),
                                  N_("Nothing was charged. You can try again."), test_mode=provider.test_mode,
                                  back_url=page_url)

    async def _confirm(self, link: PaymentLink, provider: PortOneProvider, provider_ref: str | None,
                       account: str | None) -> str | None:
        """Ask fetch-status (on the checkout's own account) about this attempt's PortOne link; its ref
        once a payment of it is recorded."""
        if provider_ref is None:
            return None
        try:
            event = await provider.reconcile_event(provider_ref, link)
        except ProviderError as exc:
            log.info("portone return not confirmed yet link=%s ref=%s request_id=%s error=%s",
                     link.id, provider_ref, exc.request_id, exc)
            return None
        if event is None:
            return None
        result, _payment = await self.links.record_payment(replace(event, account=account))
        log.info("portone return recorded link=%s ref=%s outcome=%s", link.id, provider_ref, result.value)
        return provider_ref
