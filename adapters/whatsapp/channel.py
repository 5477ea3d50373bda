"""WhatsApp through Twilio: the inbound webhook, the outbound sender and the 24-hour window rule.

Pure parts: `parse_inbound` (Twilio's form -> IncomingMessage), `render` (Reply -> message body),
`parse_templates` (settings -> Template), `classify` (Twilio error -> RetryLater/Transient/Permanent).
I/O parts: `WhatsAppSender` (the ChatSender the outbox and the webhook both use, on the twilio async
client) and `WhatsAppWebhook` (POST /whatsapp/webhook, signature-checked against the public URL).

The window rule lives in the sender because only it knows when a contact last wrote to us
(ChatTarget.last_inbound_at): inside 24 hours it sends free-form text; outside, the approved template
for the message's purpose from `whatsapp.templates`; with no template it raises `NoTemplate` (a
Permanent error), which the outbox reports to the seller together with the link to forward.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from aiohttp import ClientError, ClientTimeout, web
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.rest import Client

from adapters.whatsapp.address import whatsapp_address
from core.clock import Clock, utcnow
from core.db import Database
from core.i18n import language_for_phone
from core.links import LinkService
from core.markup import grouped, parse, to_plain, wrap_bold
from core.merchants import MerchantService
from core.models import ChatTarget, LinkStatus, PaymentLink
from core.money import format_money
from core.ports import IncomingMessage, MessageRef, Permanent, Reply, RetryLater, SendError, Transient
from core.settings import reveal
from core.sql import table

log = logging.getLogger("paylinks.whatsapp")

PLATFORM = "whatsapp"
WEBHOOK_PATH = "/whatsapp/webhook"
# Free-form messages are allowed within 24 h of the contact's last message; keep a margin so a message
# that waits in Twilio's queue for a moment is not refused at the edge.
WINDOW = timedelta(hours=24)
WINDOW_MARGIN = timedelta(minutes=5)
# Twilio's 429 usually has no Retry-After; its concurrency limit clears within seconds.
DEFAULT_RETRY_AFTER_S = 10.0
REQUEST_TIMEOUT_S = 15.0
MAX_BODY_CHARS = 1600  # Twilio refuses longer bodies (error 21617)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

OUTSIDE_WINDOW = 63016
RATE_LIMITED = 20429
# The recipient can never get this message: invalid 'To' number, not a mobile number, opted out,
# not on WhatsApp / not joined to the sandbox, region not enabled.
PERMANENT_CODES = frozenset({21211, 21614, 21610, 21408, 63003, 63015, 63024, OUTSIDE_WINDOW})
# Our own configuration is wrong (credentials, sender): retrying later after a fix is the remedy, and
# the contact must not be marked unreachable for it.
# (21603 no From, 21212 a From that is not ours, 21701 an unknown Messaging Service: SMS settings.)
CONFIG_CODES = frozenset({20003, 20404, 21212, 21603, 21606, 21659, 21701, 63007})

TARGETS = table(ChatTarget)

def to_whatsapp(text: str) -> str:
    """WhatsApp formatting: *bold* and ```monospace```. WhatsApp has no escape syntax."""
    out: list[str] = []
    for bold, runs in grouped(parse(text)):
        inner = "".join(f"```{r.text}```" if r.code else r.text for r in runs)
        out.append(wrap_bold(inner, "*", "*") if bold else inner)
    return "".join(out)


# ---------------------------------------------------------------- addresses and inbound messages


def parse_inbound(form: Mapping[str, Any]) -> IncomingMessage | None:
    """Twilio's inbound message form -> IncomingMessage; None for anything that is not a WhatsApp message."""
    sender = str(form.get("From", ""))
    if not sender.lower().startswith("whatsapp:"):
        return None
    try:
        address = whatsapp_address(sender)
    except ValueError:
        return None
    if "MessageStatus" in form and "Body" not in form:
        return None  # a delivery status callback, not a message
    number = address[len("whatsapp:"):]
    sid = str(form.get("MessageSid") or form.get("SmsMessageSid") or "")
    return IncomingMessage(
        platform=PLATFORM,
        user_id=number,
        address=address,
        text=str(form.get("Body", "")).strip(),
        display_name=str(form.get("ProfileName", "")).strip(),
        extra={"message_sid": sid} if sid else {},
        # WhatsApp says nothing of the person's language: their number's country is the best guess.
        language=language_for_phone(number),
        # Twilio redelivers a message with its MessageSid (and its signatures carry no timestamp, so a
        # replay verifies too): the core handles each sid once, recorded in the database.
        delivery_id=sid or None,
    )


def webhook_url(public_base_url: str, query_string: str = "") -> str:
    """The URL Twilio signed: the configured public one (request.url is wrong behind a TLS proxy)."""
    url = public_base_url.rstrip("/") + WEBHOOK_PATH
    return f"{url}?{query_string}" if query_string else url


# ---------------------------------------------------------------- rendering


def render(reply: Reply) -> str:
    """Reply -> WhatsApp message body. Free-form WhatsApp has no URL buttons: they become text lines."""
    body = to_whatsapp(reply.text).strip()
    for button in reply.buttons:
        # No answer buttons on free-form WhatsApp: the text numbers the choices instead.
        if button.url and button.url not in body:
            body += f"\n\n{button.label}: {button.url}"
    if len(body) > MAX_BODY_CHARS:
        body = body[: MAX_BODY_CHARS - 1].rstrip() + "…"
    return body


def one_line(text: str) -> str:
    """What a template variable may hold: no newlines, tabs or runs of spaces (Twilio refuses them)."""
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------- templates


TEMPLATE_PURPOSES = ("payment_link", "receipt", "paid_alert", "notification")
TEMPLATE_FIELDS = ("merchant", "amount", "description", "url", "link_id", "reference", "text")
# Template placeholder -> field, when a template entry does not say `variables`.
DEFAULT_VARIABLES: dict[str, dict[str, str]] = {
    "payment_link": {"1": "merchant", "2": "amount", "3": "description", "4": "url"},
    "receipt": {"1": "merchant", "2": "amount", "3": "description"},
    "paid_alert": {"1": "amount", "2": "description"},
    "notification": {"1": "text"},
}
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


@dataclass(frozen=True, slots=True)
class Template:
    purpose: str
    content_sid: str
    variables: Mapping[str, str]  # placeholder ("1") -> field name ("amount")

    def content_variables(self, fields: Mapping[str, str]) -> str:
        # Twilio refuses empty variables and ones with newlines; "-" keeps the template sendable.
        values = {key: one_line(fields.get(name, ""))[:1000] or "-" for key, name in self.variables.items()}
        return json.dumps(values, ensure_ascii=False)


def parse_templates(raw: Mapping[str, Any]) -> dict[str, Template]:
    """`whatsapp.templates` -> templates by purpose; ValueError naming the key when something is off."""
    templates: dict[str, Template] = {}
    for purpose, entry in raw.items():
        key = f"whatsapp.templates.{purpose}"
        if purpose not in TEMPLATE_PURPOSES:
            raise ValueError(f"{key}: unknown purpose (known: {', '.join(TEMPLATE_PURPOSES)})")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{key}: expected a table with content_sid")
        unknown = set(entry) - {"content_sid", "variables"}
        if unknown:
            raise ValueError(f"{key}: unknown key {sorted(unknown)[0]} (known: content_sid, variables)")
        sid = entry.get("content_sid")
        if not isinstance(sid, str) or not _CONTENT_SID.match(sid):
            raise ValueError(f"{key}.content_sid: expected a Content SID like \"HX\" + 32 hex digits")
        variables = entry.get("variables", DEFAULT_VARIABLES[purpose])
        if not isinstance(variables, Mapping):
            raise ValueError(f"{key}.variables: expected a table like {{ \"1\" = \"amount\" }}")
        for placeholder, name in variables.items():
            if name not in TEMPLATE_FIELDS:
                raise ValueError(
                    f"{key}.variables.{placeholder}: unknown field {name!r} (known: {', '.join(TEMPLATE_FIELDS)})"
                )
        templates[purpose] = Template(purpose, sid, {str(k): str(v) for k, v in variables.items()})
    return templates


def in_window(last_inbound_at: datetime | None, now: datetime) -> bool:
    return last_inbound_at is not None and now - last_inbound_at < WINDOW - WINDOW_MARGIN


def template_purpose(link: PaymentLink | None, address: str) -> str:
    """Which approved template a message needs outside the window, from whom it goes to and the link."""
    if link is None:
        return "notification"
    to_customer = False
    if link.customer_phone:
        try:
            to_customer = whatsapp_address(link.customer_phone) == address
        except ValueError:
            to_customer = False
    paid = link.status == LinkStatus.PAID
    if to_customer:
        return "receipt" if paid else "payment_link"
    return "paid_alert" if paid else "notification"


# ---------------------------------------------------------------- errors


class OutsideWindow(Permanent):
    """Twilio error 63016: free-form text outside the contact's 24-hour window. Permanent for that message."""

    # The outbox may send a customer's message by SMS instead (OutboxStore.fallbacks).
    other_channel = True


class NoTemplate(OutsideWindow):
    """Outside the contact's 24-hour window and no approved template for this purpose is configured."""

    def __init__(self, purpose: str, *, twilio_refused: bool = False) -> None:
        # The outbox quotes this to the seller, so it says what happened before naming the setting.
        said = f"; Twilio error {OUTSIDE_WINDOW}" if twilio_refused else ""
        super().__init__(
            f"they have not written to us in the last 24 hours and no approved template is set up "
            f"(whatsapp.templates.{purpose}{said})"
        )
        self.purpose = purpose


def classify(exc: BaseException, retry_after: str | None = None) -> SendError:
    """A Twilio or network failure -> the outbox's error classes. Messages carry codes, never secrets."""
    if isinstance(exc, TwilioException):
        status = int(getattr(exc, "status", 0) or 0)
        code = getattr(exc, "code", None)
        code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
        label = f"twilio {status} code {code}" if code else f"twilio {status}"
        if status == 429 or code == RATE_LIMITED:
            return RetryLater(_retry_after_s(retry_after), f"{label}: rate limited")
        if code == OUTSIDE_WINDOW:
            return OutsideWindow(f"{label}: outside the 24-hour window, a template is required")
        if code in PERMANENT_CODES:
            return Permanent(f"{label}: recipient cannot be reached on WhatsApp")
        if status >= 500 or status in (401, 403) or code in CONFIG_CODES:
            # 401/403: our credentials or sender are wrong; an operator fix, then the retry succeeds.
            return Transient(label)
        return Permanent(f"{label}: refused")
    if isinstance(exc, ClientError | asyncio.TimeoutError | OSError):
        return Transient(f"network: {type(exc).__name__}")
    return Transient(f"unexpected: {type(exc).__name__}")


def _retry_after_s(value: str | None) -> float:
    if value:
        try:
            seconds = float(value)
            if seconds >= 0:
                return seconds
        except ValueError:
            pass  # an HTTP date: rare from Twilio; the default is close enough
    return DEFAULT_RETRY_AFTER_S


# ---------------------------------------------------------------- the Twilio client

# The Retry-After of the last 429 in this task: TwilioRestException drops response headers, so the HTTP
# client leaves it here for the sender (one send per task, so no other send can overwrite it).
_RETRY_AFTER: ContextVar[str | None] = ContextVar("twilio_retry_after", default=None)


class _HttpClient(AsyncTwilioHttpClient):
    """AsyncTwilioHttpClient with a real timeout (the stock one passes None: no timeout at all), Basic auth
    as a header (aiohttp deprecates `auth=`), and Retry-After kept for the sender."""

    def __init__(self, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        super().__init__(timeout=timeout_s)

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the twilio HttpClient signature
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        session = self.session
        if session is None:
            raise Transient("whatsapp sender is closed")
        async with session.request(
            method.upper(),
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=ClientTimeout(total=timeout or self.timeout or REQUEST_TIMEOUT_S),
            allow_redirects=allow_redirects,
        ) as response:
            text = await response.text()
            if response.status == 429:
                _RETRY_AFTER.set(response.headers.get("Retry-After"))
            return TwilioResponse(response.status, text, response.headers)


class TwilioClientOwner:
    """One twilio Client on our aiohttp-based HTTP client, for the senders of one Twilio account (WhatsApp
    here, adapters/sms): start() makes it, close() ends it."""

    def __init__(self, *, account_sid: str, auth_token: str, api_base_url: str) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.api_base_url = api_base_url.rstrip("/")
        self._client: Client | None = None
        self._http: _HttpClient | None = None
        self._closed = False

    async def _started(self, name: str, *, configured: bool, settings: str) -> Client:
        """The client, made on first use; Transient after close() or while the account is not set up (the
        outbox keeps the message and retries)."""
        if self._closed:
            raise Transient(f"{name} sender is closed (shutting down)")
        if not self.account_sid or not self._auth_token or not configured:
            raise Transient(f"{name} is not configured ({settings})")
        await self.start()
        assert self._client is not None
        return self._client

    async def start(self) -> None:
        if self._client is not None:
            return
        self._closed = False
        self._http = _HttpClient()
        client = Client(self.account_sid, self._auth_token, http_client=self._http)
        # Domain.absolute_url reads base_url on every request: this points the whole API elsewhere
        # (a regional host, or the fake in tests). `edge`/`region` cannot name an arbitrary host.
        client.api.base_url = self.api_base_url
        self._client = client

    async def close(self) -> None:
        self._closed = True
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()


class WhatsAppSender(TwilioClientOwner):
    """ChatSender for WhatsApp on Twilio's REST API with the async client (never blocks the loop).

    The twilio Client and its aiohttp session are built lazily inside the running loop on first use
    (or by `start()`), and closed by `close()`; a send after close is Transient, so the outbox retries it.
    """

    platform = PLATFORM

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base_url: str,
        templates: Mapping[str, Any],
        db: Database,
        links: LinkService,
        merchants: MerchantService,
        clock: Clock = utcnow,
        status_callback: str = "",
    ) -> None:
        super().__init__(account_sid=account_sid, auth_token=auth_token, api_base_url=api_base_url)
        # Where Twilio reports delivery (POST /twilio/status): late failures reach the seller.
        self.status_callback = status_callback
        self.from_address = whatsapp_address(from_number) if from_number else ""
        self.templates = parse_templates(templates)
        self.db = db
        self.links = links
        self.merchants = merchants
        self.clock = clock

    def __repr__(self) -> str:  # never the token
        return f"WhatsAppSender(account_sid={self.account_sid!r}, from={self.from_address!r})"

    async def _require_client(self) -> Client:
        return await self._started("whatsapp", configured=bool(self.from_address),
                                   settings="account_sid, auth_token, from_number")

    # ------------------------------------------------------------ ChatSender

    async def send(self, address: str, reply: Reply) -> MessageRef:
        try:
            to = whatsapp_address(address)
        except ValueError as exc:
            raise Permanent(f"not a WhatsApp address: {exc}") from None
        if in_window(await self.last_inbound_at(to), self.clock()):
            content: dict[str, Any] = {"body": render(reply)}
            if reply.invoice_pdf:
                # /invoice: the PDF as a media message (Twilio fetches the public URL); only inside the
                # window, since a template carries no document of ours.
                content["media_url"] = [f"{self.links.url(reply.invoice_pdf)}/invoice.pdf"]
            try:
                sid = await self._create(to, **content)
            except OutsideWindow:
                # Our idea of the window was wrong (Twilio knows better): a template may still reach them.
                sid = await self._send_template(to, reply, twilio_refused=True)
        else:
            sid = await self._send_template(to, reply)
        return MessageRef(PLATFORM, to, sid)

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """WhatsApp messages cannot be edited: the paid alert arrives as its own message instead."""
        log.debug("whatsapp cannot edit messages; edit of %s skipped", ref.message_id)

    # ------------------------------------------------------------ window and templates

    async def last_inbound_at(self, address: str) -> datetime | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(TARGETS.c.last_inbound_at).where(
                        TARGETS.c.platform == PLATFORM, TARGETS.c.address == address
                    )
                )
            ).first()
        return row.last_inbound_at if row else None

    async def _send_template(self, to: str, reply: Reply, *, twilio_refused: bool = False) -> str:
        link = await self.links.get(reply.link_id) if reply.link_id else None
        purpose = template_purpose(link, to)
        template = self.templates.get(purpose)
        if template is None:
            log.info("whatsapp outside window, no template purpose=%s link=%s", purpose, reply.link_id)
            raise NoTemplate(purpose, twilio_refused=twilio_refused)
        fields = await self._template_fields(link, reply)
        return await self._create(
            to, content_sid=template.content_sid, content_variables=template.content_variables(fields)
        )

    async def _template_fields(self, link: PaymentLink | None, reply: Reply) -> dict[str, str]:
        fields = {"text": to_plain(reply.text), "url": reply.buttons[0].url if reply.buttons else ""}
        if link is None:
            return fields
        merchant = await self.merchants.get(link.merchant_id)
        locale = merchant.locale if merchant else "en"
        fields.update(
            merchant=merchant.name if merchant else "",
            amount=format_money(link.amount_minor, link.currency, locale),
            description=link.description,
            url=self.links.url(link.id),
            link_id=link.id,
            reference=link.reference or "",
        )
        return fields

    async def _create(self, to: str, **content: Any) -> str:
        client = await self._require_client()
        _RETRY_AFTER.set(None)
        try:
            extra = {"status_callback": self.status_callback} if self.status_callback else {}
            message = await client.messages.create_async(to=to, from_=self.from_address, **content, **extra)
        except SendError:
            raise
        except Exception as exc:  # every SDK and network failure is classified, none leaks out
            error = classify(exc, _RETRY_AFTER.get())
            log.info("whatsapp send failed to=%s: %s", _masked(to), error)
            raise error from exc
        log.info("whatsapp sent sid=%s to=%s template=%s", message.sid, _masked(to), "content_sid" in content)
        return str(message.sid)


def _masked(address: str) -> str:
    """Logs keep the country code and last digits only."""
    number = address.removeprefix("whatsapp:")
    return f"whatsapp:{number[:3]}…{number[-3:]}" if len(number) > 6 else "whatsapp:…"


class WhatsAppConfig(Protocol):
    """The `[whatsapp]` section (adapters/whatsapp/plugin.WhatsAppSettings)."""

    @property
    def account_sid(self) -> str: ...
    @property
    def auth_token(self) -> SecretStr | str: ...
    @property
    def from_number(self) -> str: ...
    @property
    def api_base_url(self) -> str: ...
    @property
    def templates(self) -> dict[str, Any]: ...


def check_settings(cfg: WhatsAppConfig) -> None:
    """Start-up check of an enabled `[whatsapp]` section; ValueError naming the key."""
    for key in ("account_sid", "auth_token", "from_number"):
        if not reveal(getattr(cfg, key)):
            raise ValueError(f"whatsapp.{key}: required when whatsapp.enabled is true")
    if not re.match(r"^AC[0-9a-fA-F]{32}$", cfg.account_sid):
        raise ValueError("whatsapp.account_sid: expected \"AC\" + 32 hex digits (Twilio Console, Account Info)")
    try:
        whatsapp_address(cfg.from_number)
    except ValueError:
        raise ValueError("whatsapp.from_number: expected your Twilio WhatsApp sender, "
                         "e.g. \"whatsapp:+14155238886\"") from None
    if not re.match(r"^https?://[^/\s]+", cfg.api_base_url):
        raise ValueError("whatsapp.api_base_url: expected a URL like \"https://api.twilio.com\"")
    parse_templates(cfg.templates)


def sender_from_settings(
    cfg: WhatsAppConfig, *, db: Database, links: LinkService, merchants: MerchantService, clock: Clock = utcnow,
    status_callback: str = "",
) -> WhatsAppSender:
    """Pure construction (no I/O, no SDK objects yet): the Twilio client is built in the loop on first use."""
    return WhatsAppSender(
        account_sid=cfg.account_sid, auth_token=reveal(cfg.auth_token), from_number=cfg.from_number,
        api_base_url=cfg.api_base_url, templates=cfg.templates, db=db, links=links, merchants=merchants,
        clock=clock, status_callback=status_callback,
    )


# ---------------------------------------------------------------- contacts


async def record_inbound(db: Database, address: str, at: datetime) -> None:
    """The contact wrote to us: their 24-hour window is open, and they are reachable again."""
    values = {
        "platform": PLATFORM, "address": address, "last_inbound_at": at, "disabled_at": None,
        "disabled_reason": None,
    }
    async with db.write() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(TARGETS).values(**values)
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=["platform", "address"],
                set_={"last_inbound_at": insert.excluded.last_inbound_at, "disabled_at": None,
                      "disabled_reason": None},
            )
        )


# ---------------------------------------------------------------- the webhook

Handler = Callable[[IncomingMessage], Awaitable[list[Reply]]]
AttachMessage = Callable[[str, MessageRef], Awaitable[None]]


class WhatsAppWebhook:
    """POST /whatsapp/webhook: verify, record the contact, answer at once with empty TwiML, then handle
    the message in the background and send the answers through the REST API (the outbox's sender)."""

    # Direct answers retry a little on rate limits and network errors; beyond that the seller retries.
    ANSWER_ATTEMPTS = 3
    MAX_ANSWER_WAIT_S = 30.0

    def __init__(
        self,
        *,
        public_base_url: str,
        auth_token: str,
        db: Database,
        sender: WhatsAppSender,
        handle: Handler,
        attach_message: AttachMessage,
        clock: Clock = utcnow,
    ) -> None:
        self.public_base_url = public_base_url
        self._validator = RequestValidator(auth_token)
        self._has_token = bool(auth_token)
        self.db = db
        self.sender = sender
        self.handle = handle
        self.attach_message = attach_message
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests replace it

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.webhook)]

    def verify(self, url: str, form: Mapping[str, Any], signature: str, settings_header: str = "") -> bool:
        if not self._has_token or not signature:
            return False  # fail closed: no token configured means nothing can be verified
        return bool(self._validator.validate(url, form, signature, get_signature_algorithm(settings_header)))

    async def webhook(self, request: web.Request) -> web.Response:
        form = await request.post()
        url = webhook_url(self.public_base_url, request.query_string)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not self.verify(url, form, signature, request.headers.get(SIGNATURE_SETTINGS_HEADER, "")):
            log.warning("whatsapp webhook refused: bad or missing %s", SIGNATURE_HEADER)
            return web.Response(status=403, text="invalid signature")
        message = parse_inbound(form)
        if message is not None:
            await record_inbound(self.db, message.address, self.clock())
            # A redelivered MessageSid is answered with nothing by the core (message.delivery_id).
            task = asyncio.create_task(self._answer(message), name="whatsapp-answer")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(text=EMPTY_TWIML, content_type="application/xml")

    async def _answer(self, message: IncomingMessage) -> None:
        try:
            replies = await self.handle(message)
            for reply in replies:
                ref = await self._send(message.address, reply)
                if ref is not None and reply.link_id:
                    await self.attach_message(reply.link_id, ref)
        except Exception:  # a background task has no caller to tell; log with the ids we have
            log.exception("whatsapp answer failed to=%s sid=%s", _masked(message.address),
                          message.extra.get("message_sid"))

    async def _send(self, address: str, reply: Reply) -> MessageRef | None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((RetryLater, Transient)),  # Permanent ends it at once
            wait=_answer_wait,
            # Out of attempts, or the platform asks for a longer wait than a chat answer is worth.
            stop=stop_after_attempt(self.ANSWER_ATTEMPTS) | _waits_longer_than(self.MAX_ANSWER_WAIT_S),
            sleep=lambda seconds: self.sleep(seconds),  # looked up per call: tests replace self.sleep
            reraise=True,
        )
        try:
            ref: MessageRef = await retrying(self.sender.send, address, reply)
            return ref
        except Permanent as exc:
            log.warning("whatsapp answer not deliverable to=%s: %s", _masked(address), exc)
        except (RetryLater, Transient):
            log.warning("whatsapp answer dropped after retries to=%s", _masked(address))
        return None

    async def drain(self) -> None:
        """Wait for answers in flight (shutdown, and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout_s: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: it can turn a cancel into TimeoutError
                await self.drain()
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _answer_wait(state: RetryCallState) -> float:
    # The platform's own "retry after" when it gave one; otherwise 2 s, 4 s …
    error = state.outcome.exception() if state.outcome is not None else None
    return error.after_s if isinstance(error, RetryLater) else float(2**state.attempt_number)


def _waits_longer_than(limit_s: float) -> stop_base:
    class _TooLong(stop_base):
        def __call__(self, state: RetryCallState) -> bool:
            return state.upcoming_sleep > limit_s

    return _TooLong()


# Where the plug-in keeps the mounted webhook (tests drain its answers in flight).
WHATSAPP_WEBHOOK = web.AppKey("whatsapp_webhook", WhatsAppWebhook)
