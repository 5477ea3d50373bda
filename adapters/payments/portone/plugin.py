"""The PortOne plug-in: `[payments.portone]`, the PortOneProvider, its webhook and return routes.

POST /webhooks/portone: the body's signature_hash is verified (constant time), then PortOne's
fetch-status must confirm the payment link succeeded before LinkService records it. A refund webhook
(`refund_status`, no signature at all) is only a hint: the refund's state is read from PortOne's own
refund list (GET /api/refund/{order_ref}) and that is what gets recorded.
GET /p/{link_id}/return/portone: the redirect's signature is verified; the page says paid / failed /
pending honestly. A success redirect alone is never a receipt: the route asks fetch-status about that
attempt's PortOne link and, when PortOne says it succeeded, records the payment exactly as the confirmed
webhook would (which is then a duplicate); otherwise a "confirming" page refreshes itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Literal, cast
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, SecretStr

from adapters.payments.common import OutcomeStatus, ProviderError
from adapters.payments.portone import mapping
from adapters.payments.portone.client import DEFAULT_API_BASE_URL
from adapters.payments.portone.provider import CHECKOUT_ORIGINS, PortOneProvider, event_of
from adapters.payments.return_pages import ReturnPages
from adapters.plugin import PaymentProviderPlugin, PluginContext, WebParts
from adapters.web.webhooks import ShopWebhooks, foreign_reason, invalid
from core.links import LinkService
from core.models import LinkStatus, PaymentLink
from core.ports import PaymentEvent, PaymentProvider, RefundState, WebhookError
from core.provider_accounts import ShopAccount
from core.settings import NO_SECRET, Section, reveal

log = logging.getLogger("paylinks.payments.portone")



class PortOneSettings(Section):
    client_key: str = ""
    secret_key: SecretStr = NO_SECRET
    environment: Literal["sandbox", "live"] = "sandbox"
    country_code: str = ""
    api_base_url: str = DEFAULT_API_BASE_URL


class PortOnePlugin(PaymentProviderPlugin[PortOneSettings]):
    name = "portone"
    settings_model = PortOneSettings
    account_secrets = ("client_key", "secret_key")
    account_options = ("environment", "country_code")
    account_defaults: ClassVar[Mapping[str, str]] = {"environment": "sandbox"}

    def check(self, section: PortOneSettings, settings: BaseModel) -> None:
        if not section.client_key:
            raise ValueError("payments.portone.client_key: required when payments.provider is \"portone\" "
                             "(the PortOne key from PortOne's admin console)")
        if not reveal(section.secret_key):
            raise ValueError("payments.portone.secret_key: required when payments.provider is \"portone\"")
        code = section.country_code
        if len(code) != 2 or not code.isascii() or not code.isalpha():
            raise ValueError("payments.portone.country_code: a two-letter country code, e.g. \"TH\"")
        if not section.api_base_url.startswith(("https://", "http://")):
            raise ValueError("payments.portone.api_base_url: must be an http(s) URL")

    def build(self, section: PortOneSettings, ctx: PluginContext) -> PaymentProvider:
        async def merchant_name(merchant_id: str) -> str:
            merchant = await ctx.merchants.get(merchant_id)
            return merchant.name if merchant is not None else "paylinks"

        return PortOneProvider(client_key=section.client_key, secret_key=reveal(section.secret_key),
                               environment=section.environment, country_code=section.country_code.upper(),
                               public_base_url=ctx.public_base_url, api_base_url=section.api_base_url,
                               merchant_name=merchant_name, clock=ctx.clock)

    def webhook_routes(self, provider: PaymentProvider, links: LinkService) -> list[web.RouteDef]:
        webhooks = PortOneWebhooks(links)
        return [web.post(self.webhook_path(),
                         lambda request: webhooks.handle(request, cast(PortOneProvider, provider), None))]

    # ---- shops' own accounts

    def check_account(self, section: PortOneSettings, account: ShopAccount) -> None:
        if not account.secrets.get("client_key"):
            raise ValueError("client_key: required (the PortOne key from PortOne's admin console)")
        if not account.secrets.get("secret_key"):
            raise ValueError("secret_key: required (the PortOne secret key)")
        if account.environment not in ("sandbox", "live"):
            raise ValueError("--environment: \"sandbox\" or \"live\"")
        code = account.country_code or ""
        if len(code) != 2 or not code.isascii() or not code.isalpha():
            raise ValueError("--country: a two-letter country code, e.g. TH")

    def build_account(self, section: PortOneSettings, ctx: PluginContext, account: ShopAccount) -> PaymentProvider:
        async def merchant_name(merchant_id: str) -> str:
            merchant = await ctx.merchants.get(merchant_id)
            return merchant.name if merchant is not None else "paylinks"

        return PortOneProvider(client_key=account.secrets["client_key"], secret_key=account.secrets["secret_key"],
                               environment=account.environment or "sandbox",
                               country_code=(account.country_code or "").upper(),
                               public_base_url=ctx.public_base_url, api_base_url=section.api_base_url,
                               merchant_name=merchant_name, clock=ctx.clock)

    async def verify_account(self, provider: PaymentProvider) -> None:
        await cast(PortOneProvider, provider).client.check_credentials()

    def checkout_origins(self, section: PortOneSettings) -> tuple[str, ...]:
        return (*CHECKOUT_ORIGINS, section.api_base_url)

    def account_web(self, section: PortOneSettings, ctx: PluginContext) -> WebParts:
        pages = PortOneReturnPages(ctx.providers, ctx.links)
        webhooks = PortOneWebhooks(ctx.links)
        shop = ShopWebhooks(ctx.providers, ctx.links, self.name,
                            lambda request, provider, account: webhooks.handle(
                                request, cast(PortOneProvider, provider), account))
        return WebParts(routes=[*pages.routes(), *shop.routes()])


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
            state = await provider.confirmed_refund(order_ref, refund_ref)
        except (ProviderError, mapping.PortOneMappingError) as exc:
            log.warning("portone refund webhook not confirmed refund=%s error=%s", refund_ref, exc)
            return web.json_response({"error": {"code": "provider_unavailable", "message":
                                                "could not confirm with PortOne; retry later", "field": None}},
                                     status=503)
        if state is None:
            log.warning("portone refund webhook for a refund PortOne does not list refund=%s", refund_ref)
            return web.json_response({"error": {"code": "invalid_webhook", "message":
                                                "PortOne does not list this refund", "field": None}}, status=400)
        if state is RefundState.PENDING:
            return web.json_response({"received": True, "outcome": "ignored"})
        event = PaymentEvent(provider=provider.name, event_id=f"refund:{refund_ref}:{state.value}"[:200],
                             kind=f"refund.{state.value}", link_id="", provider_ref="", amount_minor=0,
                             currency="", payment_ref=order_ref, refund_ref=refund_ref,
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
            return await self.message(link, "Processing", "Confirming your payment",
                                "PortOne is confirming your payment. This page refreshes by itself and shows "
                                "your receipt once it is confirmed.", test_mode=provider.test_mode, refresh=True)
        return await self.message(link, "Not paid", "The payment was not completed",
                                  "Nothing was charged. You can try again.", test_mode=provider.test_mode,
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


PLUGIN = PortOnePlugin()
