"""POST /twilio/status: Twilio's message status callbacks, for SMS and WhatsApp alike.

Both senders ask for them (`StatusCallback`) on the public URL. Twilio signs each like its inbound
webhooks (X-Twilio-Signature over the public URL and the form, with the account's auth token), so this
verifies the same way as POST /whatsapp/webhook (twilio's RequestValidator) and refuses anything else
with 403. The report itself is core.delivery_status's: timeline, the seller told, SMS instead of
WhatsApp. Twilio retries a callback that is not answered 2xx, so unknown messages are answered 204 too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from adapters.plugin import PluginContext, WebParts
from core.delivery_status import DeliveryReports, Report
from core.ports import ChatSender

log = logging.getLogger("paylinks.twilio")

STATUS_PATH = "/twilio/status"
OUTSIDE_WINDOW = "63016"
# What Twilio's delivery error codes mean, in the seller's words (https://www.twilio.com/docs/api/errors).
REASONS: Mapping[str, str] = {
    "30003": "the phone is unreachable or switched off",
    "30004": "the number blocks messages from us",
    "30005": "the number is unknown or no longer in use",
    "30006": "it is a landline or the carrier cannot take texts",
    "30007": "the carrier filtered it as spam",
    "30008": "the carrier did not say why",
    "30034": "the sending number is not registered for US texts (A2P 10DLC)",
    "21610": "the customer replied STOP to our texts",
    "63016": "the customer has not written to us in the last 24 hours and no approved template is set up",
    "63024": "the number is not on WhatsApp",
}



def reason_for(code: str) -> str:
    said = REASONS.get(code, "the carrier refused it")
    return f"{said}, error {code}" if code else said



class TwilioStatus:
    def __init__(self, *, public_base_url: str, auth_token: str, reports: DeliveryReports) -> None:
        self.url = public_base_url.rstrip("/") + STATUS_PATH
        self._validator = RequestValidator(auth_token)
        self._has_token = bool(auth_token)
        self.reports = reports

    def routes(self) -> list[web.RouteDef]:
        return [web.post(STATUS_PATH, self.status)]

    def verify(self, url: str, form: Any, signature: str, settings_header: str = "") -> bool:
        if not self._has_token or not signature:
            return False  # fail closed
        return bool(self._validator.validate(url, form, signature, get_signature_algorithm(settings_header)))

    async def status(self, request: web.Request) -> web.Response:
        form = await request.post()
        url = f"{self.url}?{request.query_string}" if request.query_string else self.url
        if not self.verify(url, form, request.headers.get(SIGNATURE_HEADER, ""),
                           request.headers.get(SIGNATURE_SETTINGS_HEADER, "")):
            log.warning("twilio status callback refused: bad or missing %s", SIGNATURE_HEADER)
            return web.Response(status=403, text="invalid signature")
        sid = str(form.get("MessageSid") or form.get("SmsSid") or "")
        status = str(form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        if not sid or not status:
            return web.Response(status=400, text="MessageSid and MessageStatus are required")
        to = str(form.get("To", ""))
        platform = "whatsapp" if to.lower().startswith("whatsapp:") else "sms"
        code = str(form.get("ErrorCode") or "")
        await self.reports.record(Report(platform, sid, status, code, reason=reason_for(code),
                                         other_channel=code == OUTSIDE_WINDOW))
        return web.Response(status=204)


def status_parts(ctx: PluginContext, auth_token: str, sender: ChatSender) -> WebParts:
    """The route, for whichever Twilio plug-in mounts it first (bots/app.py mounts a path once)."""
    from adapters import registry
    from core.outbox import OutboxStore

    store = OutboxStore(ctx.db, clock=ctx.clock, address_rules=registry.address_rules(),
                        fallbacks=registry.fallbacks(ctx.settings))
    outbox = getattr(ctx, "outbox", None)
    reports = DeliveryReports(ctx.db, store, clock=ctx.clock, wake=outbox.wake if outbox is not None else None)
    handler = TwilioStatus(public_base_url=ctx.public_base_url, auth_token=auth_token, reports=reports)
    return WebParts(routes=handler.routes())
