"""Merchant webhooks: endpoints, the events written with each link change, and their deliveries.

An event is written by `WebhookEvents` (a LinkService hook) inside the transaction that changes the
link: one outbox_message row per subscribed endpoint (platform "webhook", address = the endpoint's id,
kind "webhook.<type>"). The dispatcher delivers them through the webhook sender
(adapters/webhooks/sender.py), which signs per Standard Webhooks and records every HTTP attempt in
webhook_attempt. A delivery is its outbox row: the deliveries list reads those rows, and a resend makes
the row due again (same `webhook-id`, so receivers can dedupe).

URLs are checked here against SSRF (no loopback, link-local or private addresses unless
`[webhooks] allow_private`; https only in live mode); the sender checks every address a name resolves
to again, so a DNS answer cannot point a delivery inside the network later.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
from base64 import b64encode
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from sqlalchemy import and_, bindparam, delete, func, insert, select, update

from core import i18n, ids
from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.i18n import N_, Tr
from core.links import LinkEvent, LinkEventKind
from core.models import OutboxMessage, OutboxStatus, Payment, PaymentLink, WebhookAttempt, WebhookEndpoint
from core.outbox import Target, dedupe_key, insert_rows, new_row
from core.ports import MessageRef, Reply
from core.secretbox import SecretBox
from core.sql import insert_row, select_all, table

log = logging.getLogger("paylinks.webhooks")

ENDPOINTS = table(WebhookEndpoint)
ATTEMPTS = table(WebhookAttempt)
OUTBOX = table(OutboxMessage)

PLATFORM = "webhook"  # the outbox platform of deliveries; their address is the endpoint id
ACTION_WEBHOOK = "webhook"
KIND_PREFIX = "webhook."
EVENT_TYPES = ("link.created", "link.paid", "payment.succeeded", "link.expired", "link.cancelled",
               "payment.refunded")
TEST_EVENT = "webhook.test"
MAX_URL = 2000
MAX_ENDPOINTS_PER_SHOP = 20

# The link's JSON as the API returns it (adapters/web/api.py link_json, with its payments and refunds read
# in the change's transaction), injected by bots/webhooks.py.
LinkRenderer = Callable[[DbConnection, PaymentLink], Awaitable[dict[str, Any]]]
# An event's data, or how to make it: built only when some endpoint listens (most shops have none).
EventData = Mapping[str, Any] | Callable[[], Awaitable[Mapping[str, Any]]]


class WebhookError(Exception):
    """A client-caused problem with an endpoint request; rendered by the API like LinkError (in English,
    `message`). `template` is a catalog msgid (N_) with named placeholders filled from `values`:
    `translated(t)` is the dashboard's wording in its reader's language."""

    def __init__(self, code: str, message: str, *, field: str | None = None, status: int = 400,
                 values: Mapping[str, object] | None = None) -> None:
        self.template, self.values = message, dict(values or {})
        message = message % self.values if self.values else message
        super().__init__(message)
        self.code, self.message, self.field, self.status = code, message, field, status

    def translated(self, t: Tr) -> str:
        return t.gettext(self.template, **self.values)


# ---------------------------------------------------------------- SSRF rules


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """May a delivery connect to this IP? Never to unspecified/multicast; private ones only if allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return False
    if allow_private:
        return True
    return ip.is_global


def check_url(url: str, *, allow_private: bool, livemode: bool) -> str:
    """The URL if an endpoint may use it; WebhookError naming `url` otherwise. Names are resolved (and
    every address they give checked) only when delivering: creating an endpoint asks no DNS server."""
    text = url.strip()

    def bad(message: str, **values: object) -> WebhookError:
        return WebhookError("invalid_url", message, field="url", values=values)

    if not text or len(text) > MAX_URL:
        raise bad(N_("url must be 1 to %(max)s characters"), max=MAX_URL)
    if any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise bad(N_("url may not contain spaces or control characters"))
    try:
        parts = urlsplit(text)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise bad(N_("url is not a valid URL")) from None
    if parts.scheme not in ("http", "https"):
        raise bad(N_("url must start with https:// (or http:// in test mode)"))
    if livemode and parts.scheme != "https":
        raise bad(N_("url must use https in live mode"))
    if not host:
        raise bad(N_("url has no host"))
    if parts.username is not None or parts.password is not None:
        raise bad(N_("url may not contain a user name or password"))
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        literal = True
    except ValueError:
        literal = False
    if literal:
        if not address_allowed(host, allow_private=allow_private):
            raise bad(N_("url points at a loopback, link-local or private address (set [webhooks] "
                         "allow_private to allow it)"))
    elif not allow_private and (host == "localhost" or host.endswith((".localhost", ".local", ".internal"))):
        raise bad(N_("url points at a local host name (set [webhooks] allow_private to allow it)"))
    return text


def check_events(events: Sequence[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise WebhookError("invalid_events", N_("unknown event %(event)s; events are one or more of %(events)s"),
                           field="events", values={"event": repr(unknown[0]), "events": ", ".join(EVENT_TYPES)})
    if not events:
        raise WebhookError("invalid_events", N_("events must name at least one of %(events)s"), field="events",
                           values={"events": ", ".join(EVENT_TYPES)})
    return sorted(set(events), key=EVENT_TYPES.index)


def new_signing_secret() -> str:
    # Standard Webhooks: whsec_ + base64 of 24 to 64 random bytes.
    return "whsec_" + b64encode(secrets.token_bytes(32)).decode()


# ---------------------------------------------------------------- events, written with the change


def event_body(event_id: str, event_type: str, at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "timestamp": _iso(at), "data": dict(data)}


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payment_json(payment: Payment) -> dict[str, Any]:
    return {"id": payment.id, "amount_minor": payment.amount_minor, "currency": payment.currency,
            "status": str(payment.status), "provider": payment.provider, "created_at": _iso(payment.created_at),
            "livemode": bool(payment.livemode), "amount_refunded_minor": payment.amount_refunded_minor or 0}


# Built once: this runs inside every link change's transaction.
_LISTENING = (select(ENDPOINTS.c.id, ENDPOINTS.c.events)
              .where(ENDPOINTS.c.merchant_id == bindparam("merchant_id"), ENDPOINTS.c.disabled_at.is_(None))
              .order_by(ENDPOINTS.c.id))


async def write_event(
    conn: DbConnection, *, merchant_id: str, event_type: str, data: EventData, at: datetime,
    link_id: str | None = None, only_endpoint: str | None = None,
) -> list[str]:
    """Queue one event for every enabled endpoint of the shop that listens to it, in the caller's
    transaction. Returns the event id (one per endpoint row; the same id for all of them)."""
    if only_endpoint is None:
        # Compiled once, on the driver connection on SQLite: every link creation asks this.
        endpoints = await select_all(conn, _LISTENING, {"merchant_id": merchant_id})
    else:
        endpoints = [tuple(row) for row in (await conn.execute(_LISTENING.where(ENDPOINTS.c.id == only_endpoint),
                                                               {"merchant_id": merchant_id})).all()]
    wanted = [endpoint_id for endpoint_id, events in endpoints
              if only_endpoint is not None or event_type in (events or [])]
    if not wanted:
        return []
    event_id = ids.prefixed("evt", 12)
    body = event_body(event_id, event_type, at, await data() if callable(data) else data)
    rows = [
        new_row(target=Target(PLATFORM, endpoint_id), kind=KIND_PREFIX + event_type,
                body={"action": ACTION_WEBHOOK, "event": event_type, "webhook": body},
                key=dedupe_key("webhook", event_id, endpoint_id), now=at, merchant_id=merchant_id,
                link_id=link_id)
        for endpoint_id in wanted
    ]
    await insert_rows(conn, rows)
    return [event_id]


class WebhookEvents:
    """The LinkService hook: link.created/paid/expired/cancelled and payment.succeeded, in the change's
    transaction. payment.refunded is written by bots/webhooks.py from core/refunds.py's refund hook, in the
    transaction that records the refund as succeeded."""

    def __init__(self, render_link: LinkRenderer, *, on_written: Callable[[], None] | None = None) -> None:
        self.render_link = render_link
        self.on_written = on_written

    async def __call__(self, conn: DbConnection, event: LinkEvent) -> None:
        link = event.link
        rendered: list[dict[str, Any]] = []

        async def data() -> dict[str, Any]:
            if not rendered:
                rendered.append(await self.render_link(conn, link))
            return rendered[0]

        written = await write_event(conn, merchant_id=link.merchant_id, event_type=event.kind.value, data=data,
                                    at=event.at, link_id=link.id)
        payment = event.payment
        # A link that sells many times: each payment that counted (its link.paid, if any, is the whole bill).
        per_payment = LinkEventKind.PAYMENT_RECEIVED if link.reusable else LinkEventKind.PAID
        if event.kind is per_payment and payment is not None:

            async def paid_data() -> dict[str, Any]:
                return {**await data(), "payment": payment_json(payment)}

            written += await write_event(conn, merchant_id=link.merchant_id, event_type="payment.succeeded",
                                         data=paid_data, at=event.at, link_id=link.id)
        if written and self.on_written is not None:
            self.on_written()


# ---------------------------------------------------------------- endpoints and deliveries


@runtime_checkable
class RowDeliverer(Protocol):
    """A sender that delivers a whole outbox row itself (the webhook sender), not a chat Reply."""

    async def deliver(self, row: OutboxMessage) -> MessageRef: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    status: str  # pending | sent | dead
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    response_code: int | None  # of the last attempt; None: none yet, or no HTTP answer
    link_id: str | None


# Why deliveries failed, as the sender records it (English in the database and the API: an endpoint's
# disabled_reason, a delivery's last error), in the seller's words (the chat notice, the dashboard).
_FAILURES = {
    "timed out": N_("no answer in time"),
    "connection failed": N_("no connection"),
    "address not allowed (loopback, link-local or private)": N_("a private or local address, which is not allowed"),
    "failing": N_("repeated failures"),
}


def failure_text(t: Tr, reason: str) -> str:
    """A recorded failure ("HTTP 500", "timed out", "connection failed (…)") in the reader's language;
    anything else as it was recorded."""
    status = reason.removeprefix("HTTP ")
    if status != reason and status.isdigit():
        return t.gettext("an HTTP %(status)s answer", status=status)
    if reason.startswith("connection failed"):
        return t.gettext(_FAILURES["connection failed"])
    return t.gettext(_FAILURES[reason]) if reason in _FAILURES else reason


def disabled_notice(url: str, reason: str, language: str | None = None) -> Reply:
    """To the shop's chat, in its language: the endpoint was disabled (the reason as recorded)."""
    t = i18n.tr(language)
    return Reply(text=t.gettext(
        "⚠️ Your webhook endpoint %(url)s failed for days (%(reason)s), so I stopped sending to it. Fix it, then "
        "resend one of its deliveries from the dashboard (or %(resend)s) to turn it back on.",
        url=f"`{url}`", reason=failure_text(t, reason), resend="POST …/deliveries/{id}/resend"))


class WebhookEndpoints:
    def __init__(self, db: Database, box: Callable[[], SecretBox], *, allow_private: bool,
                 livemode: Callable[[str], Awaitable[bool]], clock: Clock = utcnow) -> None:
        self.db = db
        self._box = box  # built on first use: the key file is made only when webhooks are used
        self.allow_private = allow_private
        self.livemode = livemode  # the shop's mode: live endpoints must be https
        self.clock = clock
        self.on_written: Callable[[], None] | None = None

    def box(self) -> SecretBox:
        return self._box()

    async def create(self, merchant_id: str, url: str, events: Sequence[str]) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret, which is never shown again."""
        checked_url = check_url(url, allow_private=self.allow_private, livemode=await self.livemode(merchant_id))
        checked_events = check_events(events)
        secret = new_signing_secret()
        endpoint = WebhookEndpoint(
            id=ids.prefixed("we"), merchant_id=merchant_id, url=checked_url, events=checked_events,
            secret_sealed=self.box().seal(secret), created_at=self.clock(),
        )
        async with self.db.write() as conn:
            count = (await conn.execute(select(func.count()).select_from(ENDPOINTS)
                                        .where(ENDPOINTS.c.merchant_id == merchant_id))).scalar_one()
            if count >= MAX_ENDPOINTS_PER_SHOP:
                raise WebhookError("too_many_endpoints", N_("a shop may have at most %(max)s webhook endpoints; "
                                                            "delete one first"),
                                   field="url", status=409, values={"max": MAX_ENDPOINTS_PER_SHOP})
            await insert_row(conn, ENDPOINTS, endpoint.model_dump())
        log.info("webhook endpoint created endpoint=%s merchant=%s", endpoint.id, merchant_id)
        return endpoint, secret

    async def list_endpoints(self, merchant_id: str) -> list[WebhookEndpoint]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(ENDPOINTS).where(ENDPOINTS.c.merchant_id == merchant_id)
                                       .order_by(ENDPOINTS.c.created_at, ENDPOINTS.c.id))).all()
        return [WebhookEndpoint.model_construct(**r._mapping) for r in rows]

    async def get(self, merchant_id: str | None, endpoint_id: str) -> WebhookEndpoint | None:
        query = select(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id)
        if merchant_id is not None:
            query = query.where(ENDPOINTS.c.merchant_id == merchant_id)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return WebhookEndpoint.model_construct(**row._mapping) if row else None

    async def _owned(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await self.get(merchant_id, endpoint_id)
        if endpoint is None:
            raise WebhookError("not_found", N_("no such webhook endpoint"), field="id", status=404)
        return endpoint

    async def delete(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await self._owned(merchant_id, endpoint_id)
        async with self.db.write() as conn:
            await conn.execute(delete(ENDPOINTS).where(ENDPOINTS.c.id == endpoint.id))
            await conn.execute(
                update(OUTBOX).where(OUTBOX.c.platform == PLATFORM, OUTBOX.c.address == endpoint.id,
                                     OUTBOX.c.status == OutboxStatus.PENDING.value)
                .values(status=OutboxStatus.DEAD.value, last_error="endpoint deleted", lease_until=None,
                        leased_by=None))
        log.info("webhook endpoint deleted endpoint=%s merchant=%s", endpoint.id, merchant_id)
        return endpoint

    async def send_test(self, merchant_id: str, endpoint_id: str) -> Delivery:
        """Queue a `webhook.test` event to this endpoint alone; its delivery shows how it went."""
        endpoint = await self._owned(merchant_id, endpoint_id)
        if endpoint.disabled_at is not None:
            raise WebhookError("endpoint_disabled", N_("this endpoint is disabled; resend a delivery to enable it"),
                               field="id", status=409)
        now = self.clock()
        async with self.db.write() as conn:
            await write_event(conn, merchant_id=merchant_id, event_type=TEST_EVENT, only_endpoint=endpoint.id,
                              data={"endpoint_id": endpoint.id, "message": "a test event from paylinks"}, at=now)
            row_id = (await conn.execute(
                select(func.max(OUTBOX.c.id)).where(OUTBOX.c.platform == PLATFORM, OUTBOX.c.address == endpoint.id)
            )).scalar_one()
        self._wake()
        found = await self.delivery(merchant_id, endpoint.id, int(row_id))
        assert found is not None
        return found

    def _wake(self) -> None:
        if self.on_written is not None:
            self.on_written()

    async def deliveries(self, merchant_id: str, endpoint_id: str, *, limit: int = 50) -> list[Delivery]:
        endpoint = await self._owned(merchant_id, endpoint_id)
        return await self._deliveries(endpoint.id, limit=limit)

    async def delivery(self, merchant_id: str, endpoint_id: str, delivery_id: int) -> Delivery | None:
        endpoint = await self._owned(merchant_id, endpoint_id)
        found = await self._deliveries(endpoint.id, limit=1, delivery_id=delivery_id)
        return found[0] if found else None

    async def _deliveries(self, endpoint_id: str, *, limit: int, delivery_id: int | None = None) -> list[Delivery]:
        last_code = (
            select(ATTEMPTS.c.status_code).where(ATTEMPTS.c.delivery_id == OUTBOX.c.id)
            .order_by(ATTEMPTS.c.id.desc()).limit(1).correlate(OUTBOX).scalar_subquery()
        )
        query = (select(OUTBOX, last_code.label("response_code"))
                 .where(OUTBOX.c.platform == PLATFORM, OUTBOX.c.address == endpoint_id))
        if delivery_id is not None:
            query = query.where(OUTBOX.c.id == delivery_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(OUTBOX.c.id.desc()).limit(limit))).all()
        return [
            Delivery(
                id=r.id, endpoint_id=endpoint_id, event_id=r.payload["webhook"]["id"], event_type=r.payload["event"],
                status=r.status, attempts=r.attempts, created_at=r.created_at,
                next_attempt_at=r.next_attempt_at if r.status == OutboxStatus.PENDING.value else None,
                sent_at=r.sent_at, last_error=r.last_error, response_code=r.response_code, link_id=r.link_id,
            )
            for r in rows
        ]

    async def resend(self, merchant_id: str, endpoint_id: str, delivery_id: int) -> Delivery:
        """Deliver again (whatever its state), with the same webhook-id; the endpoint is enabled again."""
        endpoint = await self._owned(merchant_id, endpoint_id)
        now = self.clock()
        async with self.db.write() as conn:
            result = await conn.execute(
                update(OUTBOX).where(OUTBOX.c.id == delivery_id, OUTBOX.c.platform == PLATFORM,
                                     OUTBOX.c.address == endpoint.id)
                .values(status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=now, requeued_at=now,
                        lease_until=None, leased_by=None, last_error=None))
            if result.rowcount != 1:
                raise WebhookError("not_found", "no such delivery for this endpoint", field="delivery_id",
                                   status=404)
            await conn.execute(update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint.id)
                               .values(disabled_at=None, disabled_reason=None, failing_since=None))
        self._wake()
        found = await self.delivery(merchant_id, endpoint.id, delivery_id)
        assert found is not None
        return found

    # ------------------------------------------------------------ what the sender records

    async def record_attempt(
        self, endpoint: WebhookEndpoint, delivery_id: int, *, status_code: int | None, error: str | None,
        duration_ms: int, disable_after: Any, notify: Callable[[DbConnection, WebhookEndpoint, str], Any],
    ) -> bool:
        """Record one HTTP attempt; True when it disabled the endpoint (failing longer than disable_after)."""
        now = self.clock()
        ok = error is None
        async with self.db.write() as conn:
            await conn.execute(insert(ATTEMPTS), {"delivery_id": delivery_id, "endpoint_id": endpoint.id,
                                              "attempted_at": now, "status_code": status_code,
                                              "error": (error or None) and error[:500], "duration_ms": duration_ms})
            if ok:
                await conn.execute(update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint.id, ENDPOINTS.c.failing_since
                                                           .is_not(None)).values(failing_since=None))
                return False
            await conn.execute(update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint.id,
                                                       ENDPOINTS.c.failing_since.is_(None)).values(failing_since=now))
            since = (await conn.execute(select(ENDPOINTS.c.failing_since, ENDPOINTS.c.disabled_at)
                                        .where(ENDPOINTS.c.id == endpoint.id))).first()
            if since is None or since.disabled_at is not None or now - since.failing_since < disable_after:
                return False
            reason = (error or "failing")[:500]
            await conn.execute(update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint.id)
                               .values(disabled_at=now, disabled_reason=reason))
            await conn.execute(
                update(OUTBOX).where(and_(OUTBOX.c.platform == PLATFORM, OUTBOX.c.address == endpoint.id,
                                          OUTBOX.c.status == OutboxStatus.PENDING.value, OUTBOX.c.id != delivery_id))
                .values(status=OutboxStatus.DEAD.value, last_error=f"endpoint disabled: {reason}"[:1000],
                        lease_until=None, leased_by=None))
            await notify(conn, endpoint, reason)
        log.warning("webhook endpoint disabled endpoint=%s merchant=%s reason=%s", endpoint.id,
                    endpoint.merchant_id, reason)
        return True


def webhook_payload_text(body: Mapping[str, Any]) -> str:
    """The exact bytes that are signed and sent (compact JSON, UTF-8)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
