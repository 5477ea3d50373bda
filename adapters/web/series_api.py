"""POST/GET /api/v1/series, GET /api/v1/series/{id}, POST /api/v1/series/{id}/cancel: recurring charges.

The body is a link's (checked by the links API's own rules) plus `schedule`; core/series.py does the rest.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters.web import api_models
from adapters.web.api import _NO_STORE, ApiError, LinksApi, _read_body, _respond, amount_str, iso_utc, parse_json_object
from adapters.web.api_models import API_PREFIX, REUSABLE_FIELDS, ScheduleIn
from core.models import PaymentSeries
from core.series import Schedule, SeriesDraft, SeriesError, SeriesService

_SERIES_ID = re.compile(api_models.SERIES_ID_PATTERN)


def series_json(series: PaymentSeries, links: list[tuple[int, str, datetime]]) -> dict[str, Any]:
    template = series.template
    currency = str(template["currency"])
    customer = template.get("customer") or {}
    return {
        "id": series.id,
        "status": str(series.status),
        "schedule": {"every": series.every, "interval": series.interval, "count": series.count,
                     "until": series.until, "start_at": iso_utc(series.start_at)},
        "timezone": series.timezone,
        "amount": amount_str(int(template["amount_minor"]), currency),
        "amount_minor": int(template["amount_minor"]),
        "currency": currency,
        "description": template["description"],
        "reference": template.get("reference"),
        "customer": {"name": customer.get("name"), "email": customer.get("email"), "phone": customer.get("phone")},
        "links_made": series.made,
        "next_at": iso_utc(series.next_at),
        "created_at": iso_utc(series.created_at),
        "cancelled_at": iso_utc(series.cancelled_at),
        "links": [{"period": p + 1, "link_id": link_id, "due_at": iso_utc(due)} for p, link_id, due in links],
    }


def parse_schedule(raw: Any) -> Schedule:
    try:
        body = ScheduleIn.model_validate(raw)
    except ValidationError as exc:
        code, message, field = api_models.first_error(exc)
        field = f"schedule.{field}" if field != "body" else "schedule"
        if code not in ("missing_field", "unknown_field"):
            code = "invalid_schedule"
        raise ApiError(400, code, message.replace(field.removeprefix("schedule."), field, 1), field) from None
    start = None
    if body.start_at is not None:
        try:
            start = datetime.fromisoformat(body.start_at)
        except ValueError:
            raise ApiError(400, "invalid_schedule", "schedule.start_at is not an ISO 8601 time such as "
                           "\"2027-01-31T09:00:00+08:00\"", "schedule.start_at") from None
        if start.utcoffset() is None:
            raise ApiError(400, "invalid_schedule", "schedule.start_at needs a UTC offset", "schedule.start_at")
        try:
            start = start.astimezone(UTC)
        except OverflowError:
            raise ApiError(400, "invalid_schedule", "schedule.start_at is out of range", "schedule.start_at") from None
    until = None
    if body.until is not None:
        try:
            until = date.fromisoformat(body.until)
        except ValueError:
            raise ApiError(400, "invalid_schedule", "schedule.until is not a date such as 2027-06-30",
                           "schedule.until") from None
    return Schedule(body.every, body.interval, body.count, until, start)


class SeriesApi:
    def __init__(self, api: LinksApi, series: SeriesService) -> None:
        self.api = api
        self.series = series

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{API_PREFIX}/series", self.create),
            web.get(f"{API_PREFIX}/series", self.list),
            web.get(f"{API_PREFIX}/series/{{id}}", self.get),
            web.post(f"{API_PREFIX}/series/{{id}}/cancel", self.cancel),
        ]

    async def _answer(self, series: PaymentSeries, status: int = 200) -> web.Response:
        return _respond(series_json(series, await self.series.links_of(series.id)), status, _NO_STORE)

    async def create(self, request: web.Request) -> web.Response:
        merchant = await self.api._merchant(request)
        payload = parse_json_object(await _read_body(request))
        if "schedule" not in payload:
            raise ApiError(400, "missing_field", "schedule is required ({\"every\": \"month\"}); a one-off link "
                           "is POST /api/v1/links", "schedule")
        if "expires_at" in payload:
            raise ApiError(400, "invalid_expiry", "a series' links use expires_in (e.g. \"7d\"), not a fixed "
                           "expires_at", "expires_at")
        for name in REUSABLE_FIELDS:
            if name in payload:
                raise ApiError(400, "unknown_field", f"{name} is for links that sell many times (POST "
                               "/api/v1/links); a series makes a single-use link each period", name)
        schedule = parse_schedule(payload.pop("schedule"))
        draft, amount_field, _expiry = self.api._draft(merchant, payload)
        try:
            series = await self.series.create(SeriesDraft(
                merchant_id=merchant.id, money=draft.money, description=draft.description, schedule=schedule,
                reference=draft.reference, customer=draft.customer, expires_in=draft.expires_in, meta=draft.meta,
                notify=draft.notify, line_items=draft.line_items))
        except SeriesError as exc:
            field = amount_field if exc.field == "amount" else exc.field
            raise ApiError(exc.status, exc.code, exc.message, field) from None
        return await self._answer(series, 201)

    async def list(self, request: web.Request) -> web.Response:
        merchant = await self.api._merchant(request)
        found = await self.series.list_series(merchant.id)
        data = [series_json(s, await self.series.links_of(s.id)) for s in found]
        return _respond({"data": data}, 200, _NO_STORE)

    async def _found(self, request: web.Request) -> tuple[str, str]:
        merchant = await self.api._merchant(request)
        series_id = request.match_info["id"]
        if not _SERIES_ID.fullmatch(series_id):
            raise ApiError(404, "not_found", "no such series", "id")
        return merchant.id, series_id

    async def get(self, request: web.Request) -> web.Response:
        merchant_id, series_id = await self._found(request)
        series = await self.series.get(series_id, merchant_id)
        if series is None:
            raise ApiError(404, "not_found", "no such series", "id")
        return await self._answer(series)

    async def cancel(self, request: web.Request) -> web.Response:
        merchant_id, series_id = await self._found(request)
        try:
            series = await self.series.cancel(series_id, merchant_id)
        except SeriesError as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        return await self._answer(series)
