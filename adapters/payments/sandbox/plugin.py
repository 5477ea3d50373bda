"""The sandbox plug-in: `[payments.sandbox]`, the SandboxProvider and its hosted checkout pages."""

from __future__ import annotations

import secrets
from typing import cast

from pydantic import BaseModel, SecretStr

from adapters.payments.sandbox.provider import SandboxProvider
from adapters.plugin import PaymentProviderPlugin, PluginContext, WebParts
from core.ports import PaymentProvider
from core.settings import NO_SECRET, Section, reveal


class SandboxSettings(Section):
    # Empty: a random secret per process, fine while one `paylinks serve` both signs and verifies.
    webhook_secret: SecretStr = NO_SECRET


class SandboxPlugin(PaymentProviderPlugin[SandboxSettings]):
    name = "sandbox"
    settings_model = SandboxSettings

    def check(self, section: SandboxSettings, settings: BaseModel) -> None:
        pass

    def build(self, section: SandboxSettings, ctx: PluginContext) -> PaymentProvider:
        if not reveal(section.webhook_secret):
            # One process both signs and verifies sandbox webhooks, so a per-process secret is enough.
            section.webhook_secret = SecretStr(secrets.token_urlsafe(32))
        return SandboxProvider(public_base_url=ctx.public_base_url, webhook_secret=reveal(section.webhook_secret),
                               clock=ctx.clock)

    def web(self, section: SandboxSettings, ctx: PluginContext, provider: PaymentProvider, *,
            webhook_url: str) -> WebParts:
        # The sandbox "gateway" posts its webhooks to us over real HTTP, like an outside provider.
        from adapters.payments.sandbox.checkout import SandboxCheckout

        sandbox = cast(SandboxProvider, provider)
        sandbox.webhook_url = webhook_url  # refund webhooks come back to this app too
        checkout = SandboxCheckout(sandbox, webhook_url=webhook_url)
        return WebParts(routes=checkout.routes(), lifespans=[checkout.lifespan])


PLUGIN = SandboxPlugin()
