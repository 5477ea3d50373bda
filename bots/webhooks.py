"""Wiring merchant webhooks into the services: the endpoints store, the link hook, the outbox sender."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters import registry
from adapters.webhooks.sender import WebhookSender
from core import invoices
from core.db import DbConnection, _sqlite_path
from core.models import Payment, PaymentLink, Refund
from core.refunds import RefundService
from core.reusable import promos_of
from core.secretbox import KEY_FILE_NAME, SecretBox, key_from_file
from core.settings import reveal
from core.webhooks import PLATFORM, WebhookEndpoints, WebhookError, WebhookEvents, payment_json, write_event

if TYPE_CHECKING:
    from bots.services import Services


def _secret_box(services: Services) -> SecretBox:
    key = reveal(services.settings.webhooks.secret_key)
    if not key:
        if not services.db.is_sqlite:
            raise WebhookError("webhooks_not_configured", "webhooks need [webhooks] secret_key with PostgreSQL "
                               "(every process must share it); ask the operator", field=None, status=503)
        database = Path(_sqlite_path(services.db.url) or ".").resolve()
        key = key_from_file(database.parent / KEY_FILE_NAME)
    return SecretBox(key)


def install_webhooks(services: Services) -> WebhookEndpoints:
    settings = services.settings.webhooks
    links = services.links
    endpoints = WebhookEndpoints(
        services.db, functools.cache(lambda: _secret_box(services)), allow_private=settings.allow_private,
        livemode=links.livemode_for, clock=services.clock,
    )

    async def render(conn: DbConnection, link: PaymentLink) -> dict[str, Any]:
        # Imported on first event: the API brings aiohttp, which commands that only open the database skip.
        from adapters.web.api import link_json
        from adapters.web.invoice_json import invoice_fields

        payments, refunds = await RefundService.of_link(conn, link.id)
        promos = await promos_of(conn, [p.id for p in payments]) if link.reusable else {}
        return {**link_json(link, links.status_of(link, services.clock()), links.url(link.id), payments, refunds,
                            promos),
                **invoice_fields(link, await invoices.read(conn, link.id))}

    outbox = services.outbox
    wake = outbox.wake if outbox is not None else None
    endpoints.on_written = wake
    links.hooks.append(WebhookEvents(render, on_written=wake))

    async def refunded(conn: DbConnection, link: PaymentLink, payment: Payment, refund: Refund) -> None:
        """payment.refunded, in the transaction that records the provider's confirmation."""
        from adapters.web.api import refund_json

        at = refund.completed_at or services.clock()
        data = {**await render(conn, link), "payment": payment_json(payment), "refund": refund_json(refund)}
        if await write_event(conn, merchant_id=link.merchant_id, event_type="payment.refunded", data=data, at=at,
                             link_id=link.id) and wake is not None:
            wake()

    services.refunds.refund_hooks.append(refunded)
    services.senders[PLATFORM] = WebhookSender(
        endpoints, timeout=settings.timeout, disable_after=settings.disable_after,
        allow_private=settings.allow_private, address_rules=registry.address_rules(), clock=services.clock,
    )
    return endpoints
