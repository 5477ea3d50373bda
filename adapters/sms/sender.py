"""The SMS sender: one outbox row -> one text message through Twilio's Messages API.

Delivered as a whole row (core.webhooks.RowDeliverer), like email: an SMS is composed from the row's
facts (adapters/sms/text.py: amount and link first, one GSM-7 segment where it fits), not from the chat
Reply with its buttons. It uses the twilio client with the `[whatsapp]` account (one Twilio account),
from `[sms] from_number` or `messaging_service_sid`, and asks Twilio for status callbacks at
POST /twilio/status (adapters/twilio_status.py), which report late failures (30003 unreachable …).
Errors are classified like WhatsApp's: 21211 / 21610 (the customer sent STOP) / 21614 are Permanent for
that number, 429 RetryLater, 5xx and our own configuration errors Transient.
"""

from __future__ import annotations

import logging

from adapters.sms.text import sms_text
from adapters.whatsapp.address import whatsapp_address
from adapters.whatsapp.channel import _RETRY_AFTER, TwilioClientOwner, classify
from core.models import OutboxMessage
from core.outbox_texts import AlertFacts
from core.ports import Dropped, MessageRef, Permanent, Reply, SendError

log = logging.getLogger("paylinks.sms")

PLATFORM = "sms"


def sms_address(number: str) -> str:
    """"+65 9123 4567" or "whatsapp:+6591234567" -> "+6591234567"; ValueError otherwise."""
    return whatsapp_address(number).removeprefix("whatsapp:")


class SmsSender(TwilioClientOwner):
    platform = PLATFORM

    def __init__(
        self, *, account_sid: str, auth_token: str, from_number: str = "", messaging_service_sid: str = "",
        api_base_url: str = "https://api.twilio.com", status_callback: str = "",
    ) -> None:
        super().__init__(account_sid=account_sid, auth_token=auth_token, api_base_url=api_base_url)
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback

    def __repr__(self) -> str:  # never the token
        return f"SmsSender(account_sid={self.account_sid!r}, from={self.from_number or self.messaging_service_sid!r})"

    async def send(self, address: str, reply: Reply) -> MessageRef:
        # Only notices without facts come this way; customers' messages go through deliver().
        from core.markup import to_plain

        text = to_plain(reply.text)
        if reply.buttons and reply.buttons[0].url and reply.buttons[0].url not in text:
            text += f" {reply.buttons[0].url}"
        return await self._create(address, text)

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        raise Dropped("a sent SMS cannot be edited")

    async def deliver(self, row: OutboxMessage) -> MessageRef:
        facts_data = row.payload.get("facts")
        if not facts_data:
            raise Dropped("nothing to say in an SMS")
        return await self._create(row.address, sms_text(row.kind, AlertFacts.from_dict(facts_data)))

    async def _create(self, address: str, body: str) -> MessageRef:
        try:
            to = sms_address(address)
        except ValueError as exc:
            raise Permanent(f"not a phone number: {exc}") from None
        client = await self._started("sms", configured=bool(self.from_number or self.messaging_service_sid),
                                     settings="whatsapp.account_sid, whatsapp.auth_token, sms.from_number")
        sender = ({"messaging_service_sid": self.messaging_service_sid} if self.messaging_service_sid
                  else {"from_": self.from_number})
        extra = {"status_callback": self.status_callback} if self.status_callback else {}
        _RETRY_AFTER.set(None)
        try:
            message = await client.messages.create_async(to=to, body=body, **sender, **extra)
        except SendError:
            raise
        except Exception as exc:  # every SDK and network failure is classified, none leaks out
            error = classify(exc, _RETRY_AFTER.get())
            log.info("sms send failed to=%s: %s", _masked(to), error)
            raise error from exc
        log.info("sms sent sid=%s to=%s segments=%s", message.sid, _masked(to), message.num_segments)
        return MessageRef(PLATFORM, to, str(message.sid))


def _masked(number: str) -> str:
    return f"{number[:3]}…{number[-3:]}" if len(number) > 6 else "…"
