"""POST /webhooks/{provider} and /webhooks/{provider}/{merchant_id}: payment provider webhooks.

Verified on the raw body bytes (never on re-serialised JSON), then recorded by LinkService.record_payment
in ONE transaction (inbox row for dedupe, payment, link transition, hooks). The 2xx is sent only after that
commit; a redelivery gets a 2xx too, so the provider stops retrying. Bad or missing signatures get a 400,
and nothing on this route ever redirects.

/webhooks/{provider} is the deployment's account; /webhooks/{provider}/{merchant_id} a shop's own, verified
with that shop's secrets only: an unknown merchant, or one without its own account of this provider, gets
a 404 and nothing is recorded. An event is recorded only for its own account's links and checkouts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web

from core.links import LinkService
from core.ports import PaymentEvent, PaymentProvider, ProviderResolver, WebhookError

log = logging.getLogger("paylinks.webhooks")

MERCHANT_ID = re.compile(r"[A-Za-z0-9_]{1,40}")
PAID_KIND = "payment.succeeded"

# Verifies and records one webhook for this provider instance and account.
AccountHandler = Callable[[web.Request, PaymentProvider, str | None], Awaitable[web.Response]]


def invalid(message: str, *, status: int = 400, code: str = "invalid_webhook") -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "field": None}}, status=status)


async def foreign_reason(links: LinkService, event: PaymentEvent, account: str | None) -> str | None:
    """Why a verified payment event may not be recorded on this account (None: it may).

    A shop's own account pays only that shop's links; a checkout opened on one account is paid only
    through that account (a shop's Stripe account cannot mark another shop's link paid).
    """
    if event.kind != PAID_KIND or not event.link_id:
        return None
    if account is not None:
        link = await links.get(event.link_id, account)
        if link is None:
            return "the payment is for a link of another shop"
    checkout = await links.checkout_by_ref(event.provider, event.provider_ref)
    if checkout is not None and checkout.account != account:
        return "the checkout was opened on another provider account"
    return None


class PaymentWebhooks:
    def __init__(self, provider: PaymentProvider, links: LinkService, *, path: str | None = None) -> None:
        self.provider = provider
        self.links = links
        self.path = path or f"/webhooks/{provider.name}"

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        return await record_webhook(self.links, request, self.provider, None)


async def record_webhook(links: LinkService, request: web.Request, provider: PaymentProvider,
                         account: str | None) -> web.Response:
    """Verify with this provider instance (this account's secrets), then record on this account."""
    raw_body = await request.read()
    try:
        event = replace(provider.verify_webhook(request.headers, raw_body), account=account)
    except WebhookError as exc:
        # The reason is ours (no secret, no body) and helps whoever configures the provider.
        log.warning("webhook rejected provider=%s account=%s reason=%s", provider.name, account or "-", exc)
        return invalid(str(exc))
    reason = await foreign_reason(links, event, account)
    if reason is not None:
        log.warning("webhook refused provider=%s account=%s link=%s reason=%s", provider.name,
                    account or "-", event.link_id, reason)
        return invalid(reason)
    outcome, payment = await links.record_payment(event)
    log.info(
        "webhook processed provider=%s account=%s event=%s outcome=%s link=%s payment=%s", provider.name,
        account or "-", event.event_id, outcome.value, event.link_id, payment.id if payment else "-",
    )
    return web.json_response({"received": True, "outcome": outcome.value})


class ShopWebhooks:
    """POST /webhooks/<provider>/{merchant_id}: the shop's own account verifies, or nothing happens."""

    def __init__(self, providers: ProviderResolver, links: LinkService, provider_name: str,
                 handle: AccountHandler | None = None) -> None:
        self.providers = providers
        self.links = links
        self.provider_name = provider_name
        self.handle: AccountHandler = handle or self._record

    async def _record(self, request: web.Request, provider: PaymentProvider, account: str | None) -> web.Response:
        return await record_webhook(self.links, request, provider, account)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"/webhooks/{self.provider_name}/{{merchant_id}}", self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        merchant_id = request.match_info["merchant_id"]
        provider = (await self.providers.own(merchant_id, self.provider_name)
                    if MERCHANT_ID.fullmatch(merchant_id) else None)
        if provider is None:
            log.warning("webhook refused provider=%s: no shop account %r", self.provider_name, merchant_id[:40])
            return invalid(f"no shop here has its own {self.provider_name} account at this address", status=404,
                           code="unknown_account")
        return await self.handle(request, provider, merchant_id)
