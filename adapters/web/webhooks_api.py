"""/api/v1/webhook_endpoints: a merchant's webhook endpoints and their deliveries (core/webhooks.py)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters.web.api import ApiError, _respond, iso_utc, parse_json_object
from adapters.web.api_models import (
    API_PREFIX,
    DELIVERY_ID_PATTERN,
    MAX_BODY_BYTES,
    WEBHOOK_ENDPOINT_ID_PATTERN,
    CreateWebhookEndpoint,
    first_error,
)
from core.models import WebhookEndpoint
from core.webhooks import Delivery, WebhookEndpoints, WebhookError

_ENDPOINT_ID = re.compile(WEBHOOK_ENDPOINT_ID_PATTERN)
_DELIVERY_ID = re.compile(DELIVERY_ID_PATTERN)
_NO_STORE = {"Cache-Control": "no-store"}
BASE = f"{API_PREFIX}/webhook_endpoints"


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id, "url": endpoint.url, "events": list(endpoint.events or []),
        "status": "disabled" if endpoint.disabled_at is not None else "enabled",
        "disabled_reason": endpoint.disabled_reason, "failing_since": iso_utc(endpoint.failing_since),
        "created_at": iso_utc(endpoint.created_at),
    }


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id, "event_id": delivery.event_id, "type": delivery.event_type, "status": delivery.status,
        "attempts": delivery.attempts, "response_code": delivery.response_code, "last_error": delivery.last_error,
        "link_id": delivery.link_id, "created_at": iso_utc(delivery.created_at),
        "next_attempt_at": iso_utc(delivery.next_attempt_at), "sent_at": iso_utc(delivery.sent_at),
    }


class WebhooksApi:
    def __init__(self, endpoints: WebhookEndpoints, merchant_of: Any) -> None:
        self.endpoints = endpoints
        self._merchant = merchant_of  # LinksApi._merchant: the same key check and 401

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(BASE, self.create),
            web.get(BASE, self.list_endpoints),
            web.get(f"{BASE}/{{id}}", self.get),
            web.delete(f"{BASE}/{{id}}", self.delete),
            web.post(f"{BASE}/{{id}}/test", self.test),
            web.get(f"{BASE}/{{id}}/deliveries", self.deliveries),
            web.post(f"{BASE}/{{id}}/deliveries/{{delivery_id}}/resend", self.resend),
        ]

    @staticmethod
    def _endpoint_id(request: web.Request) -> str:
        endpoint_id = request.match_info["id"]
        if not _ENDPOINT_ID.fullmatch(endpoint_id):
            raise ApiError(404, "not_found", "no such webhook endpoint", "id")
        return endpoint_id

    async def create(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes", "body")
        body = await request.read()
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes", "body")
        try:
            parsed = CreateWebhookEndpoint.model_validate(parse_json_object(body))
        except ValidationError as exc:
            code, message, field = first_error(exc)
            if field == "url" and code in ("invalid_text", "too_long"):
                code = "invalid_url"  # the pattern or length of a URL
            elif field.startswith("events") and code not in ("missing_field",):
                code, field = "invalid_events", "events"
            elif code not in ("invalid_type", "missing_field", "unknown_field", "too_long"):
                code = "invalid_type"
            raise ApiError(400, code, message, field) from None
        try:
            endpoint, secret = await self.endpoints.create(merchant.id, parsed.url, parsed.events)
        except WebhookError as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        headers = {"Location": f"{BASE}/{endpoint.id}", **_NO_STORE}
        return _respond({**endpoint_json(endpoint), "secret": secret}, 201, headers)

    async def list_endpoints(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        found = await self.endpoints.list_endpoints(merchant.id)
        return _respond({"data": [endpoint_json(e) for e in found]}, headers=_NO_STORE)

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except WebhookError as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None

    async def get(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        endpoint = await self.endpoints.get(merchant.id, self._endpoint_id(request))
        if endpoint is None:
            raise ApiError(404, "not_found", "no such webhook endpoint", "id")
        return _respond(endpoint_json(endpoint), headers=_NO_STORE)

    async def delete(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        endpoint = await self._call(self.endpoints.delete(merchant.id, self._endpoint_id(request)))
        return _respond(endpoint_json(endpoint), headers=_NO_STORE)

    async def test(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        delivery = await self._call(self.endpoints.send_test(merchant.id, self._endpoint_id(request)))
        return _respond(delivery_json(delivery), 202, _NO_STORE)

    async def deliveries(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        found = await self._call(self.endpoints.deliveries(merchant.id, self._endpoint_id(request)))
        return _respond({"data": [delivery_json(d) for d in found]}, headers=_NO_STORE)

    async def resend(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        endpoint_id = self._endpoint_id(request)
        text = request.match_info["delivery_id"]
        if not _DELIVERY_ID.fullmatch(text):
            raise ApiError(404, "not_found", "no such delivery for this endpoint", "delivery_id")
        delivery = await self._call(self.endpoints.resend(merchant.id, endpoint_id, int(text)))
        return _respond(delivery_json(delivery), 202, _NO_STORE)
