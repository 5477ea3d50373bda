"""The Stripe plug-in: `[payments.stripe]`, the StripeProvider and its return route.

GET /p/{link_id}/return/stripe?session_id=cs_… is where Stripe Checkout sends the customer back. It
asks Stripe for the session (never trusting the query) and, when it is paid, records the payment at
once exactly as its webhook would (the webhook that follows is then a duplicate), so the receipt shows
without waiting for the webhook; otherwise a "processing" page refreshes itself without JavaScript.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import cast
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, SecretStr

from adapters.payments.common import OutcomeStatus, ProviderError, ProviderUnavailable
from adapters.payments.return_pages import ReturnPages
from adapters.payments.stripe.client import DEFAULT_API_BASE_URL
from adapters.payments.stripe.provider import CHECKOUT_ORIGIN, StripeProvider, event_of
from adapters.plugin import PaymentProviderPlugin, PluginContext, WebParts
from adapters.web.webhooks import ShopWebhooks
from core.ports import PaymentProvider
from core.provider_accounts import ShopAccount
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
    account_secrets = ("secret_key", "webhook_secret")

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

    # ---- shops' own accounts

    def check_account(self, section: StripeSettings, account: ShopAccount) -> None:
        key = account.secrets.get("secret_key", "")
        if not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise ValueError("secret_key: expected a Stripe secret key (sk_live_… or sk_test_…)")
        if not account.secrets.get("webhook_secret", "").startswith("whsec_"):
            raise ValueError("webhook_secret: expected the signing secret (whsec_…) of the webhook endpoint "
                             "registered for this shop")

    def build_account(self, section: StripeSettings, ctx: PluginContext, account: ShopAccount) -> PaymentProvider:
        return StripeProvider(secret_key=account.secrets["secret_key"],
                              webhook_secret=account.secrets["webhook_secret"], public_base_url=ctx.public_base_url,
                              api_base_url=section.api_base_url, clock=ctx.clock)

    async def verify_account(self, provider: PaymentProvider) -> None:
        await cast(StripeProvider, provider).api.check_credentials()

    def checkout_origins(self, section: StripeSettings) -> tuple[str, ...]:
        return (CHECKOUT_ORIGIN, section.api_base_url)

    def account_web(self, section: StripeSettings, ctx: PluginContext) -> WebParts:
        pages = StripeReturnPages(ctx.providers, ctx.links)
        webhooks = ShopWebhooks(ctx.providers, ctx.links, self.name)
        return WebParts(routes=[*pages.routes(), *webhooks.routes()])


class StripeReturnPages(ReturnPages):
    name = "stripe"
    provider: StripeProvider

    async def back_from_checkout(self, request: web.Request) -> web.StreamResponse:
        link_id = self.link_id_of(request)
        page_url = f"/p/{link_id}"
        session_id = request.query.get("session_id", "")
        if not SESSION_ID.fullmatch(session_id):
            raise web.HTTPSeeOther(page_url)  # the pay page says what the link's state is
        link = await self.links.get(link_id)
        if link is None:
            raise web.HTTPNotFound()
        # The session is asked about on the account its checkout was opened on.
        chosen = await self.provider_for(link, session_id)
        if chosen is None:
            raise web.HTTPSeeOther(page_url)
        provider = cast(StripeProvider, chosen.provider)
        test_mode = provider.test_mode
        try:
            outcome = await provider.session_outcome(session_id)
        except ProviderUnavailable as exc:
            log.warning("stripe session not retrieved link=%s session=%s request_id=%s error=%s",
                        link_id, session_id, exc.request_id, exc)
            return await self.message(link, "Processing", "Checking your payment",
                                "We could not reach the payment provider just now. This page will try again "
                                "in a moment; you were not charged twice.", test_mode=test_mode, status=503,
                                refresh=True,
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
            result, _payment = await self.links.record_payment(replace(event, account=chosen.account))
            log.info("stripe return recorded link=%s session=%s outcome=%s", link_id, session_id, result.value)
            # The pay page shows the receipt, or the refund notice when this payment could not count.
            raise web.HTTPSeeOther(f"{page_url}?payment={quote(session_id)}")
        if outcome.status is OutcomeStatus.PENDING:
            return await self.message(link, "Processing", "Your payment is processing",
                                "The payment provider has not confirmed it yet. This page refreshes by itself "
                                "and shows your receipt once it is confirmed.", test_mode=test_mode, refresh=True,
                                back_url="")
        return await self.message(link, "Not paid", "The payment was not completed",
                            "Nothing was charged. You can try again.", test_mode=test_mode, back_url=page_url)


PLUGIN = StripePlugin()
