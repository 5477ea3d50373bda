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

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Literal, cast

from pydantic import BaseModel, SecretStr

from adapters.payments.portone import CHECKOUT_ORIGINS, DEFAULT_API_BASE_URL
from adapters.plugin import PaymentProviderPlugin, PluginContext, WebParts
from core.settings import NO_SECRET, Section, reveal

if TYPE_CHECKING:
    from aiohttp import web

    from core.links import LinkService
    from core.ports import PaymentProvider
    from core.provider_accounts import ShopAccount

# The provider, aiohttp and the web routes are imported by the methods that build something: the
# registry imports this module for its settings in every command, `paylinks --help` included.


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
        from adapters.payments.portone.provider import PortOneProvider

        async def merchant_name(merchant_id: str) -> str:
            merchant = await ctx.merchants.get(merchant_id)
            return merchant.name if merchant is not None else "paylinks"

        return PortOneProvider(client_key=section.client_key, secret_key=reveal(section.secret_key),
                               environment=section.environment, country_code=section.country_code.upper(),
                               public_base_url=ctx.public_base_url, api_base_url=section.api_base_url,
                               merchant_name=merchant_name, clock=ctx.clock)

    def webhook_routes(self, provider: PaymentProvider, links: LinkService) -> list[web.RouteDef]:
        from aiohttp import web

        from adapters.payments.portone.provider import PortOneProvider
        from adapters.payments.portone.web import PortOneWebhooks

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
        from adapters.payments.portone.provider import PortOneProvider

        async def merchant_name(merchant_id: str) -> str:
            merchant = await ctx.merchants.get(merchant_id)
            return merchant.name if merchant is not None else "paylinks"

        return PortOneProvider(client_key=account.secrets["client_key"], secret_key=account.secrets["secret_key"],
                               environment=account.environment or "sandbox",
                               country_code=(account.country_code or "").upper(),
                               public_base_url=ctx.public_base_url, api_base_url=section.api_base_url,
                               merchant_name=merchant_name, clock=ctx.clock)

    async def verify_account(self, provider: PaymentProvider) -> None:
        from adapters.payments.portone.provider import PortOneProvider

        await cast(PortOneProvider, provider).client.check_credentials()

    def checkout_origins(self, section: PortOneSettings) -> tuple[str, ...]:
        return (*CHECKOUT_ORIGINS, section.api_base_url)

    def account_web(self, section: PortOneSettings, ctx: PluginContext) -> WebParts:
        from adapters.payments.portone.provider import PortOneProvider
        from adapters.payments.portone.web import PortOneReturnPages, PortOneWebhooks
        from adapters.web.webhooks import ShopWebhooks

        pages = PortOneReturnPages(ctx.providers, ctx.links)
        webhooks = PortOneWebhooks(ctx.links)
        shop = ShopWebhooks(ctx.providers, ctx.links, self.name,
                            lambda request, provider, account: webhooks.handle(
                                request, cast(PortOneProvider, provider), account))
        return WebParts(routes=[*pages.routes(), *shop.routes()])


PLUGIN = PortOnePlugin()
