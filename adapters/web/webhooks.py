"""POST /webhooks/{provider}: payment provider webhooks.

Verified on the raw body bytes (never on re-serialised JSON), then recorded by LinkService.record_payment
in ONE transaction (inbox row for dedupe, payment, link transition, hooks). The 2xx is sent only after that
commit; a redelivery gets a 2xx too, so the provider stops retrying. Bad or missing signatures get a 400,
and nothing on this route ever redirects.
"""

from __future__ import annotations

import logging

from aiohttp import web

from core.links import LinkService
from core.ports import PaymentProvider, WebhookError

log = logging.getLogger("paylinks.webhooks")


class PaymentWebhooks:
    def __init__(self, provider: PaymentProvider, links: LinkService, *, path: str | None = None) -> None:
        self.provider = provider
        self.links = links
        self.path = path or f"/webhooks/{provider.name}"

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        raw_body = await request.read()
        try:
            event = self.provider.verify_webhook(request.headers, raw_body)
        except WebhookError as exc:
            # The reason is ours (no secret, no body) and helps whoever configures the provider.
            log.warning("webhook rejected provider=%s reason=%s", self.provider.name, exc)
            return web.json_response(
                {"error": {"code": "invalid_webhook", "message": str(exc), "field": None}},
                status=400,
            )
        outcome, payment = await self.links.record_payment(event)
        log.info(
            "webhook processed provider=%s event=%s outcome=%s link=%s payment=%s",
            self.provider.name, event.event_id, outcome.value, event.link_id, payment.id if payment else "-",
        )
        return web.json_response({"received": True, "outcome": outcome.value})
