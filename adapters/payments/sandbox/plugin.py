"""The sandbox plug-in: `[payments.sandbox]`, the SandboxProvider and its hosted checkout pages."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, cast

from pydantic import BaseModel, SecretStr

from adapters.plugin import PaymentProviderPlugin, PluginContext, WebParts
from core.settings import NO_SECRET, Section, reveal

if TYPE_CHECKING:
    from core.ports import PaymentProvider

log = logging.getLogger("paylinks.payments.sandbox")


class SandboxSettings(Section):
    # Empty: derived from [security] secret_key (or paylinks.key), so `serve`, `worker` and the CLI agree.
    webhook_secret: SecretStr = NO_SECRET


def _shared_secret(ctx: PluginContext) -> str:
    """The same in every process of this deployment (a refund asked from the CLI is signed by the CLI and
    verified by `serve`); a random one per process when there is no key to derive it from."""
    from core.secrets import SecretsError

    try:
        return ctx.secrets.derive("paylinks sandbox webhooks")
    except SecretsError as exc:
        log.warning("sandbox webhooks signed with a per-process secret (%s)", exc)
        return secrets.token_urlsafe(32)


class SandboxPlugin(PaymentProviderPlugin[SandboxSettings]):
    name = "sandbox"
    settings_model = SandboxSettings

    def check(self, section: SandboxSettings, settings: BaseModel) -> None:
        pass

    def build(self, section: SandboxSettings, ctx: PluginContext) -> PaymentProvider:
        if not reveal(section.webhook_secret):
            section.webhook_secret = SecretStr(_shared_secret(ctx))
        from adapters.payments.sandbox.provider import SandboxProvider

        return SandboxProvider(public_base_url=ctx.public_base_url, webhook_secret=reveal(section.webhook_secret),
                               clock=ctx.clock)

    def web(self, section: SandboxSettings, ctx: PluginContext, provider: PaymentProvider, *,
            webhook_url: str) -> WebParts:
        # The sandbox "gateway" posts its webhooks to us over real HTTP, like an outside provider.
        from adapters.payments.sandbox.checkout import SandboxCheckout
        from adapters.payments.sandbox.provider import SandboxProvider
        from adapters.web.branding import link_branding

        sandbox = cast(SandboxProvider, provider)
        sandbox.webhook_url = webhook_url  # refund webhooks come back to this app too
        checkout = SandboxCheckout(sandbox, webhook_url=webhook_url,
                                   branding=lambda link_id: link_branding(ctx.db, link_id))
        return WebParts(routes=checkout.routes(), lifespans=[checkout.lifespan])


PLUGIN = SandboxPlugin()
