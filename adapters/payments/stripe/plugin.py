"""The Stripe plug-in: `[payments.stripe]`, the StripeProvider and its return route.

GET /p/{link_id}/return/stripe?session_id=cs_… is where Stripe Checkout sends the customer back. It
asks Stripe for the session (never trusting the query) and, when it is paid, records the payment at
once exactly as its webhook would (the webhook that follows is then a duplicate), so the receipt shows
without waiting for the webhook; otherwise a "processing" page refreshes itself without JavaScript.
"""

from __future__ import annotations

import logging
import re
from typing import cast
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, SecretStr

from adapters.payments.common import OutcomeStatus, ProviderError, ProviderUnavailable
from adapters.payments.return_pages import ReturnPages
from adapters.payments.stripe.client import DEFAULT_API_BASE_URL
from adapters.payments.stripe.provider import StripeProvider, event_of
from adapters.plugin import PaymentProviderPlugin, PluginContext, WebParts
from core.ports import PaymentProvider
from core.settings import NO_SECRET, Section, reveal

log = logging.getLogger("paylinks.payments.stripe")

SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,200}")


class StripeSettings(Section):
    secret_key: SecretStr = NO_SECRET
    webhook_secret: SecretStr = NO_SECRET
    api_base_url: str = DEFAULT_API_BASE_URL


class StripePlugin(PaymentProviderPlugin[StripeSettings]):
    name = "stripe"
    settings_model = StripeSettings

    def check(self, section: StripeSettings, settings: BaseModel) -> None:
        key = reveal(section.secret_key)
        if not key:
            raise ValueError("payments.stripe.secret_key: required when payments.provider is \"stripe\" "
                             "(the secret key from the Stripe dashboard, sk_test_… to rehearse)")
        if not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise ValueError("payments.stripe.secret_key: expected a Stripe secret key (sk_live_… or sk_test_…)")
        if not reveal(section.webhook_secret).startswith("whsec_"):
            raise ValueError("payments.stripe.webhook_secret: required when payments.provider is \"stripe\" "
                             "(the signing secret, whsec_…, of the webhook endpoint /webhooks/stripe)")
        if not section.api_base_url.startswith(("https://", "http://")):
            raise ValueError("payments.stripe.api_base_url: must be an http(s) URL")

    def build(self, section: StripeSettings, ctx: PluginContext) -> PaymentProvider:
        return StripeProvider(secret_key=reveal(section.secret_key), webhook_secret=reveal(section.webhook_secret),
                              public_base_url=ctx.public_base_url, api_base_url=section.api_base_url,
                              clock=ctx.clock)

    def web(self, section: StripeSettings, ctx: PluginContext, provider: PaymentProvider, *,
            webhook_url: str) -> WebParts:
        pages = StripeReturnPages(cast(StripeProvider, provider), ctx.links)
        return WebParts(routes=pages.routes(), lifespans=[pages.lifespan])


class StripeReturnPages(ReturnPages):
    name = "stripe"
    provider: StripeProvider

    async def back_from_checkout(self, request: web.Request) -> web.StreamResponse:
        link_id = self.link_id_of(request)
        page_url = f"/p/{link_id}"
        session_id = request.query.get("session_id", "")
        if not SESSION_ID.fullmatch(session_id):
            raise web.HTTPSeeOther(page_url)  # the pay page says what the link's state is
        try:
            outcome = await self.provider.session_outcome(session_id)
        except ProviderUnavailable as exc:
            log.warning("stripe session not retrieved link=%s session=%s request_id=%s error=%s",
                        link_id, session_id, exc.request_id, exc)
            return self.message("Processing", "Checking your payment",
                                "We could not reach the payment provider just now. This page will try again "
                                "in a moment; you were not charged twice.", status=503, refresh=True,
                                back_url=page_url)
        except ProviderError as exc:  # no such session (for this account): nothing to show but the link
            log.info("stripe session refused link=%s session=%s request_id=%s error=%s",
                     link_id, session_id, exc.request_id, exc)
            raise web.HTTPSeeOther(page_url) from None
        if outcome.link_id != link_id:
            log.warning("stripe session of another link link=%s session=%s", link_id, session_id)
            raise web.HTTPSeeOther(page_url)
        if outcome.status is OutcomeStatus.PAID:
            event = event_of(outcome, event_id=f"return:{session_id}", kind="checkout.session.return")
            result, _payment = await self.links.record_payment(event)
            log.info("stripe return recorded link=%s session=%s outcome=%s", link_id, session_id, result.value)
            # The pay page shows the receipt, or the refund notice when this payment could not count.
            raise web.HTTPSeeOther(f"{page_url}?payment={quote(session_id)}")
        if outcome.status is OutcomeStatus.PENDING:
            return self.message("Processing", "Your payment is processing",
                                "The payment provider has not confirmed it yet. This page refreshes by itself "
                                "and shows your receipt once it is confirmed.", refresh=True, back_url="")
        return self.message("Not paid", "The payment was not completed",
                            "Nothing was charged. You can try again.", back_url=page_url)


PLUGIN = StripePlugin()
