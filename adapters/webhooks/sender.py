"""The outbox sender for platform "webhook": one signed POST per delivery row.

Signed per Standard Webhooks with the `standardwebhooks` package (`webhook-id` = the event id, the same
on a resend; `webhook-timestamp` = this attempt; `webhook-signature` = v1,HMAC-SHA256). Every attempt is
recorded (status code, error, duration) before the outcome goes back to the dispatcher, which retries by
the "webhook." policy ([webhooks] max_age). Connections go only to addresses the SSRF rules allow: IP
literals are checked here, names through a resolver that drops every address that is not allowed.
Redirects are not followed (a 3xx is a failure), and only the first KiB of an answer is read.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from core import i18n
from core.clock import Clock, utcnow
from core.db import DbConnection
from core.models import Member, MemberRole, Merchant, OutboxMessage, WebhookEndpoint
from core.outbox import (
    ACTION_SEND,
    NOTICE_KIND,
    OutboxStore,
    Target,
    dedupe_key,
    insert_rows,
    new_row,
    payload,
    reader_language,
    target_facts,
)
from core.ports import AddressRules, Dropped, MessageRef, Reply, Transient
from core.sql import table
from core.webhooks import PLATFORM, WebhookEndpoints, address_allowed, disabled_notice, webhook_payload_text

if TYPE_CHECKING:
    import aiohttp

# aiohttp is imported when a delivery is made (adapters/webhooks/resolver.py too): every command builds
# this sender with the services, and most never send anything.

log = logging.getLogger("paylinks.webhooks")

MEMBERS = table(Member)
MERCHANTS = table(Merchant)
USER_AGENT = "paylinks-webhooks/1"
READ_AT_MOST = 1024


class WebhookSender:
    platform = PLATFORM

    def __init__(
        self, endpoints: WebhookEndpoints, *, timeout: timedelta, disable_after: timedelta, allow_private: bool,
        address_rules: dict[str, AddressRules], clock: Clock = utcnow,
    ) -> None:
        self.endpoints = endpoints
        self.timeout_s = timeout.total_seconds()
        self.disable_after = disable_after
        self.allow_private = allow_private
        self.address_rules = address_rules
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        from adapters.webhooks.resolver import GuardedResolver

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=self.allow_private),
                                             limit_per_host=4, force_close=True)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT})
        return self._session

    # Chat senders' methods: a webhook row always goes through deliver().
    async def send(self, address: str, reply: Reply) -> MessageRef:
        raise Dropped("a chat message cannot go to a webhook endpoint")

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        raise Dropped("a chat message cannot go to a webhook endpoint")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def signed_headers(self, secret: str, body: dict[str, Any], text: str) -> dict[str, str]:
        # The wall clock, never the injectable one: receivers check the timestamp against their own time.
        now = utcnow()
        return {
            "webhook-id": str(body["id"]),
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(str(body["id"]), now, text),
            "Content-Type": "application/json",
        }

    async def deliver(self, row: OutboxMessage) -> MessageRef:
        endpoint = await self.endpoints.get(None, row.address)
        if endpoint is None:
            raise Dropped("endpoint deleted")
        if endpoint.disabled_at is not None:
            raise Dropped("endpoint disabled")
        body = row.payload["webhook"]
        text = webhook_payload_text(body)
        headers = self.signed_headers(self.endpoints.box().open(endpoint.secret_sealed), body, text)
        started = time.monotonic()
        status, error = await self._post(endpoint.url, text, headers)
        duration_ms = int((time.monotonic() - started) * 1000)
        assert row.id is not None
        disabled = await self.endpoints.record_attempt(
            endpoint, row.id, status_code=status, error=error, duration_ms=duration_ms,
            disable_after=self.disable_after, notify=self._tell_owner)
        if error is None:
            return MessageRef(PLATFORM, endpoint.id, str(status))
        log.info("webhook attempt failed endpoint=%s delivery=%s error=%s", endpoint.id, row.id, error)
        if disabled:
            raise Dropped(f"{error}; endpoint disabled")
        raise Transient(error)

    async def _post(self, url: str, text: str, headers: dict[str, str]) -> tuple[int | None, str | None]:
        import aiohttp

        from adapters.webhooks.resolver import BlockedAddress

        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            literal = True
        except ValueError:
            literal = False
        if literal and not address_allowed(host, allow_private=self.allow_private):
            return None, "address not allowed (loopback, link-local or private)"
        try:
            async with self._client().post(
                url, data=text.encode(), headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                await response.content.read(READ_AT_MOST)
                if 200 <= response.status < 300:
                    return response.status, None
                return response.status, f"HTTP {response.status}"
        except TimeoutError:
            return None, "timed out"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                return None, "address not allowed (loopback, link-local or private)"
            return None, "connection failed"
        except aiohttp.ClientError as exc:
            return None, f"connection failed ({type(exc).__name__})"

    async def _tell_owner(self, conn: DbConnection, endpoint: WebhookEndpoint, reason: str) -> None:
        """A notice to the shop's owners' chats (else any of its chats) that the endpoint was disabled."""
        owners = (await conn.execute(
            select(MEMBERS.c.platform, MEMBERS.c.platform_user_id)
            .where(MEMBERS.c.merchant_id == endpoint.merchant_id, MEMBERS.c.role == MemberRole.OWNER.value)
            .order_by(MEMBERS.c.id))).all()
        chats: list[Target] = []
        for owner in owners:
            rules = self.address_rules.get(owner.platform)
            address = rules.member_address(owner.platform_user_id) if rules is not None else None
            if address:
                chats.append(Target(owner.platform, address))
        store = OutboxStore(self.endpoints.db, clock=self.clock, address_rules=self.address_rules)
        chats += [t for t in await store.seller_chats(conn, endpoint.merchant_id, None) if t not in chats]
        blocked, languages = await target_facts(conn, chats)
        usable = [t for t in chats if t not in blocked]
        if not usable:
            log.warning("webhook endpoint disabled and no chat to tell merchant=%s", endpoint.merchant_id)
            return
        now = self.clock()
        destination = usable[0]
        locale = (await conn.execute(select(MERCHANTS.c.locale).where(MERCHANTS.c.id == endpoint.merchant_id))).scalar()
        # The chat's own language (the last person who wrote from it), else the shop's.
        language = reader_language(destination, languages, i18n.language_of_locale(locale), customer=False)
        await insert_rows(conn, [new_row(
            target=destination, kind=NOTICE_KIND,
            body=payload(ACTION_SEND, disabled_notice(endpoint.url, reason, language), event=NOTICE_KIND,
                         language=language),
            key=dedupe_key("webhook-disabled", endpoint.id, now.isoformat()), now=now,
            merchant_id=endpoint.merchant_id, link_id=None,
        )])
