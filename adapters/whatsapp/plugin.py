"""The WhatsApp plug-in: the `[whatsapp]` section, the Twilio sender, POST /whatsapp/webhook, pacing, and
the address rules (members by their number, customers by the phone on their link)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field, SecretStr

from adapters.plugin import ChatPlatform, PluginContext, WebParts
from adapters.whatsapp import address
from core.pacing import PlatformLimits, rate_setting
from core.settings import NO_SECRET, PluginSection, reveal

if TYPE_CHECKING:  # annotations only: `paylinks --help` and the settings load this module
    from aiohttp import web

    from core.ports import ChatSender


class WhatsAppSettings(PluginSection):
    account_sid: str = ""
    auth_token: SecretStr = NO_SECRET
    from_number: str = ""
    api_base_url: str = "https://api.twilio.com"
    # name -> {content_sid = "HX…", variables = {...}}; used outside the 24-hour window.
    templates: dict[str, Any] = Field(default_factory=dict)


class WhatsAppPlugin(ChatPlatform[WhatsAppSettings]):
    name = "whatsapp"
    title = "WhatsApp"
    settings_model = WhatsAppSettings
    outbox_keys: ClassVar[dict[str, str]] = {"whatsapp_per_sender": "80/s"}
    reaches_customers = True

    def check(self, section: WhatsAppSettings, settings: BaseModel) -> None:
        if section.enabled:
            from adapters.whatsapp.channel import check_settings

            check_settings(section)

    def pacing(self, outbox: Mapping[str, str]) -> PlatformLimits:
        # Twilio counts messages per sending number; paylinks sends from one number, so it is one bucket.
        return PlatformLimits(overall=rate_setting("outbox.whatsapp_per_sender", outbox["whatsapp_per_sender"]))

    def member_address(self, user_id: str) -> str | None:
        return address.member_address(user_id)

    def customer_address(self, contact: str | None) -> str | None:
        return address.customer_address(contact)

    def describe_contact(self, address: str) -> str:
        return f"{address.removeprefix('whatsapp:')} on WhatsApp"

    def build_sender(self, section: WhatsAppSettings | None, ctx: PluginContext) -> ChatSender:
        # Pure construction: the Twilio client is built in the loop on first use (serve and worker alike).
        from adapters.whatsapp.channel import sender_from_settings

        assert section is not None
        from adapters.twilio_status import STATUS_PATH

        return sender_from_settings(section, db=ctx.db, links=ctx.links, merchants=ctx.merchants, clock=ctx.clock,
                                    status_callback=ctx.public_base_url.rstrip("/") + STATUS_PATH)

    def web(self, section: WhatsAppSettings | None, ctx: PluginContext, sender: ChatSender) -> WebParts:
        """POST /whatsapp/webhook. Answers go out through the sender (the outbox's too), whose Twilio client
        lives in this loop and is closed at shutdown."""
        from adapters.whatsapp.channel import WHATSAPP_WEBHOOK, WhatsAppSender, WhatsAppWebhook

        assert section is not None and isinstance(sender, WhatsAppSender)
        webhook = WhatsAppWebhook(
            public_base_url=ctx.public_base_url, auth_token=reveal(section.auth_token), db=ctx.db,
            sender=sender, handle=ctx.handle, attach_message=ctx.links.attach_message, clock=ctx.clock,
        )

        async def whatsapp_ctx(app: web.Application) -> AsyncIterator[None]:
            await sender.start()
            yield
            await webhook.close()  # answers in flight finish before their sender goes
            await sender.close()

        from adapters.twilio_status import status_parts

        status = status_parts(ctx, reveal(section.auth_token), sender)
        return WebParts(routes=webhook.routes() + status.routes, lifespans=[whatsapp_ctx],
                        values={WHATSAPP_WEBHOOK: webhook})


PLUGIN = WhatsAppPlugin()
