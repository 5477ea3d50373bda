"""A fake Twilio REST API on 127.0.0.1: records Messages.json POSTs and answers planned errors.

The real twilio client talks to it (WhatsAppSender points `client.api.base_url` here). It checks Basic
auth like Twilio (401 + code 20003), answers 201 with a message resource, and can be told to fail:
`fail_next(429, 20429, retry_after=7)`, `fail_next(400, 63016)`, `fail_next(503)`; or to refuse
free-form text to numbers whose 24-hour window is closed (`closed_windows`), as Twilio does with 63016.

SMS as Twilio's Messages API does it: `From` or `MessagingServiceSid` (one of `messaging_services`, else
21701), an E.164 `To` (21211), a `Body` of at most 1600 characters (21617); errors in Twilio's JSON shape
{code, message, more_info, status}. A message's `StatusCallback` is kept, and `report(sid, "undelivered",
error_code=30003)` posts Twilio's status callback to it, signed with X-Twilio-Signature like Twilio.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# 3GPP TS 23.038: the GSM 7-bit default alphabet and its extension table (two septets each).
_GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How Twilio counts an SMS body: 160 septets (153 when split), or 70 UCS-2 units (67 when split)."""
    if all(c in _GSM_BASIC or c in _GSM_EXT for c in body):
        septets = sum(2 if c in _GSM_EXT else 1 for c in body)
        return 1 if septets <= 160 else -(-septets // 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


@dataclass(frozen=True)
class PlannedError:
    status: int
    code: int | None
    message: str
    retry_after: str | None


@dataclass
class Request:
    """One POST to Messages.json, answered or not."""

    account_sid: str
    fields: dict[str, str]
    status: int
    sid: str | None = None

    @property
    def to(self) -> str:
        return self.fields.get("To", "")

    @property
    def body(self) -> str | None:
        return self.fields.get("Body")

    @property
    def content_sid(self) -> str | None:
        return self.fields.get("ContentSid")

    @property
    def media_url(self) -> str | None:
        return self.fields.get("MediaUrl")

    @property
    def content_variables(self) -> str | None:
        return self.fields.get("ContentVariables")

    @property
    def status_callback(self) -> str | None:
        return self.fields.get("StatusCallback")


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-auth-token"
    host: str = "127.0.0.1"
    # Every POST in arrival order, including the ones answered with an error.
    requests: list[Request] = field(default_factory=list)
    # Addresses ("whatsapp:+65…") for which free-form Body is refused with 63016 (no template).
    closed_windows: set[str] = field(default_factory=set)
    # Messaging Services of this account ("MG…"); any other MessagingServiceSid is refused (21701).
    messaging_services: set[str] = field(default_factory=set)
    # Status callbacks posted, with the HTTP status our app answered.
    callbacks: list[tuple[dict[str, str], int]] = field(default_factory=list)
    _planned: deque[PlannedError] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    base_url: str = ""
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def messages(self) -> list[Request]:
        """The messages Twilio accepted (201)."""
        return [r for r in self.requests if r.status == 201]

    def messages_to(self, address: str) -> list[Request]:
        return [r for r in self.messages if r.to == address]

    def fail_next(
        self, status: int, code: int | None = None, *, message: str = "", retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        for _ in range(times):
            self._planned.append(
                PlannedError(status, code, message or f"fake error {code or status}",
                             None if retry_after is None else str(retry_after))
            )

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Messages.json", self._create_message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{self.host}:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ handler

    def _authorized(self, request: web.Request, account_sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid == account_sid and secrets.compare_digest(password, self.auth_token)

    def by_sid(self, sid: str) -> Request:
        return next(r for r in self.requests if r.sid == sid)

    async def report(self, sid: str, status: str, *, error_code: int | None = None,
                     signature: str | None = None) -> int:
        """Post Twilio's status callback for an accepted message to its StatusCallback; the app's answer."""
        message = self.by_sid(sid)
        url = message.status_callback
        assert url, "the message was sent without a StatusCallback"
        params = {
            "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "MessageSid": sid, "SmsSid": sid,
            "MessageStatus": status, "SmsStatus": status, "To": message.to,
            "From": message.fields.get("From", ""),
        }
        if message.fields.get("MessagingServiceSid"):
            params["MessagingServiceSid"] = message.fields["MessagingServiceSid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        if message.to.startswith("whatsapp:"):
            params["ChannelPrefix"] = "whatsapp"
        if signature is None:
            signature = RequestValidator(self.auth_token).compute_signature(url, params)
        # Twilio calls the public URL; in tests that is the app's own 127.0.0.1 address.
        async with aiohttp.ClientSession() as session, session.post(
                url, data=params, headers={"X-Twilio-Signature": signature}) as response:
            self.callbacks.append((params, response.status))
            return response.status

    @staticmethod
    def _error(status: int, code: int | None, message: str, headers: dict[str, str] | None = None) -> web.Response:
        body: dict[str, Any] = {"code": code, "message": message,
                                "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else "",
                                "status": status}
        return web.json_response(body, status=status, headers=headers)

    async def _create_message(self, request: web.Request) -> web.Response:
        account_sid = request.match_info["account_sid"]
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        record = Request(account_sid, fields, status=0)
        self.requests.append(record)
        if not self._authorized(request, account_sid):
            record.status = 401
            return self._error(401, 20003, "Authenticate")
        if self._planned:
            planned = self._planned.popleft()
            record.status = planned.status
            headers = {"Retry-After": planned.retry_after} if planned.retry_after is not None else None
            return self._error(planned.status, planned.code, planned.message, headers)
        if not fields.get("To"):
            record.status = 400
            return self._error(400, 21604, "A 'To' phone number is required.")
        service = fields.get("MessagingServiceSid")
        if not fields.get("From") and not service:
            record.status = 400
            return self._error(400, 21603, "A 'From' phone number is required.")
        if service and service not in self.messaging_services:
            record.status = 400
            return self._error(400, 21701, f"The Messaging Service Sid {service} is invalid.")
        sms = not fields["To"].startswith("whatsapp:")
        if sms and not _E164.match(fields["To"]):
            record.status = 400
            return self._error(400, 21211, f"The 'To' number {fields['To']} is not a valid phone number.")
        media = [str(v) for k, v in form.items() if k == "MediaUrl"]
        if not fields.get("Body") and not fields.get("ContentSid") and not media:
            record.status = 400
            return self._error(400, 21602, "Message body is required.")
        if any(not url.startswith(("http://", "https://")) for url in media):
            record.status = 400
            return self._error(400, 21620, "Invalid media URL(s)")
        if len(fields.get("Body", "")) > 1600:
            record.status = 400
            return self._error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if (fields.get("Body") or media) and fields["To"] in self.closed_windows:
            record.status = 400
            return self._error(400, 63016, "Failed to send freeform message because you are outside the "
                                            "allowed window. Please use a Template.")
        record.status = 201
        record.sid = f"SM{next(self._counter):032x}"
        return web.json_response(
            {
                "sid": record.sid,
                "account_sid": account_sid,
                "to": fields["To"],
                "from": fields.get("From") or None,
                "messaging_service_sid": service,
                "body": fields.get("Body", ""),
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": str(num_segments(fields.get("Body", ""))),
                "num_media": str(len(media)),
                "api_version": "2010-04-01",
                "date_created": "Thu, 26 Nov 2026 11:00:00 +0000",
                "date_updated": "Thu, 26 Nov 2026 11:00:00 +0000",
                "date_sent": None,
                "error_code": None,
                "error_message": None,
                "price": None,
                "price_unit": "USD",
                "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{record.sid}.json",
                "subresource_uris": {},
            },
            status=201,
        )
