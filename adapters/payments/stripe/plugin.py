"""The Stripe plug-in: `[payments.stripe]`, the StripeProvider and its return route.

GET /p/{link_id}/return/stripe?session_id=cs_… is where Stripe Checkout sends the customer back. It
asks Stripe for the session (never trusting the query) and, when it is paid, records the payment at
once exactly as its webhook would (the webhook that follows is then a duplicate), so the receipt shows
without waiting for the webhook; otherwise a "processing" page refreshes itself without JavaScript.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from pydantic import BaseModel, SecretStr

from adapters.payments.stripe import CHECKOUT_ORIGIN, DEFAULT_API_BASE_URL
from adapters.plugin import PaymentProviderPlugin, PluginContext, WebParts
from core.settings import NO_SECRET, Section, reveal

if TYPE_CHECKING:
    from core.ports import PaymentProvider
    from core.provider_accounts import ShopAccount

# The Stripe SDK, aiohttp and the web layer are imported by the methods that build something: the
# registry imports this module for its settings in every command, `paylinks --help` included.


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
        from adapters.payments.stripe.provider import StripeProvider

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
        from adapters.payments.stripe.provider import StripeProvider

        return StripeProvider(secret_key=account.secrets["secret_key"],
                              webhook_secret=account.secrets["webhook_secret"], public_base_url=ctx.public_base_url,
                              api_base_url=section.api_base_url, clock=ctx.clock)

    async def verify_account(self, provider: PaymentProvider) -> None:
        from adapters.payments.stripe.provider import StripeProvider

        await cast(StripeProvider, provider).api.check_credentials()

    def checkout_origins(self, section: StripeSettings) -> tuple[str, ...]:
        return (CHECKOUT_ORIGIN, section.api_base_url)

    def account_web(self, section: StripeSettings, ctx: PluginContext) -> WebParts:
        from adapters.payments.stripe.return_page import StripeReturnPages
        from adapters.web.webhooks import ShopWebhooks

        pages = StripeReturnPages(ctx.providers, ctx.links)
        webhooks = ShopWebhooks(ctx.providers, ctx.links, self.name)
        return WebParts(routes=[*pages.routes(), *webhooks.routes()])


PLUGIN = StripePlugin()
