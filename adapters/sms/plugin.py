"""The SMS plug-in: the `[sms]` section, the Twilio SMS sender (with the `[whatsapp]` account), pacing
(`[outbox] sms_per_sender`), POST /twilio/status, and the address rule (customers by the phone on their
link). SMS is a fallback channel: by default a customer with a phone gets WhatsApp when it is enabled
and SMS only otherwise, or when WhatsApp cannot reach them (outside the 24 h window with no template),
or when the seller asks (`via sms`, API `notify: ["sms"]`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from adapters.plugin import ChatPlatform, PluginContext, WebParts, section_of
from core.pacing import PlatformLimits, rate_setting
from core.settings import PluginSection, reveal

if TYPE_CHECKING:  # annotations only: `paylinks --help` and the settings load this module
    from aiohttp import web

    from core.ports import ChatSender

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")


class SmsSettings(PluginSection):
    # enabled (PluginSection): off by default; the Twilio account is [whatsapp] account_sid / auth_token.
    from_number: str = ""
    messaging_service_sid: str = ""


class SmsPlugin(ChatPlatform[SmsSettings]):
    name = "sms"
    title = "SMS"
    settings_model = SmsSettings
    # Twilio sends 1 message/s from a long code; a Messaging Service with several numbers (or a short
    # code) sends more: raise it to what the account allows.
    outbox_keys: ClassVar[dict[str, str]] = {"sms_per_sender": "1/s"}
    customer_contact: ClassVar[str] = "phone"
    # Used by default only when the customer platform (WhatsApp) cannot reach the customer.
    customer_fallback: ClassVar[bool] = True
    via_aliases: ClassVar[tuple[str, ...]] = ("text",)  # "/charge 25 cake to +65 9123 4567 via sms"

    def check(self, section: SmsSettings, settings: BaseModel) -> None:
        if not section.enabled:
            return
        account = section_of(settings, "whatsapp")
        for key in ("account_sid", "auth_token"):
            if not reveal(getattr(account, key)):
                raise ValueError(f"whatsapp.{key}: required when sms.enabled is true (SMS uses the Twilio "
                                 "account of [whatsapp])")
        if not re.match(r"^AC[0-9a-fA-F]{32}$", account.account_sid):
            raise ValueError("whatsapp.account_sid: expected \"AC\" + 32 hex digits (Twilio Console, Account Info)")
        if section.messaging_service_sid:
            if not _SERVICE_SID.match(section.messaging_service_sid):
                raise ValueError("sms.messaging_service_sid: expected \"MG\" + 32 hex digits")
        elif not _E164.match(section.from_number):
            raise ValueError("sms.from_number: expected your Twilio number in international form, e.g. "
                             "\"+14155238886\" (or set sms.messaging_service_sid)")

    def pacing(self, outbox: Mapping[str, str]) -> PlatformLimits:
        return PlatformLimits(overall=rate_setting("outbox.sms_per_sender", outbox["sms_per_sender"]))

    def customer_address(self, contact: str | None) -> str | None:
        # The same rule as WhatsApp: only numbers written with their country code.
        from adapters.whatsapp.address import customer_address

        address = customer_address(contact)
        return address.removeprefix("whatsapp:") if address else None

    def describe_contact(self, address: str) -> str:
        return f"{address} by SMS"

    def build_sender(self, section: SmsSettings | None, ctx: PluginContext) -> ChatSender:
        from adapters.sms.sender import SmsSender
        from adapters.twilio_status import STATUS_PATH

        assert section is not None
        account = _account(ctx)
        return SmsSender(
            account_sid=account.account_sid, auth_token=reveal(account.auth_token), from_number=section.from_number,
            messaging_service_sid=section.messaging_service_sid, api_base_url=account.api_base_url,
            status_callback=ctx.public_base_url.rstrip("/") + STATUS_PATH,
        )

    def web(self, section: SmsSettings | None, ctx: PluginContext, sender: ChatSender) -> WebParts:
        from adapters.twilio_status import status_parts

        async def sms_ctx(app: web.Application) -> AsyncIterator[None]:
            yield
            await sender.close()  # its aiohttp session lives in this loop

        status = status_parts(ctx, reveal(_account(ctx).auth_token), sender)
        return WebParts(routes=status.routes, lifespans=[sms_ctx])


def _account(ctx: PluginContext) -> Any:
    """The `[whatsapp]` section: one Twilio account for WhatsApp and SMS."""
    return section_of(ctx.settings, "whatsapp")


PLUGIN = SmsPlugin()
