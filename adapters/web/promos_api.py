"""/api/v1/promo_codes: a shop's promo codes (core/promos.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters.web.api import ApiError, _read_body, _respond, iso_utc, parse_json_object
from adapters.web.api_models import API_PREFIX, CreatePromoCode, errors_for, first_error
from core.links import LinkService
from core.models import PromoCode
from core.money import Money, MoneyError, normalize_currency
from core.promos import CODE, PromoDraft, PromoError, PromoService, normalise, percent_bp, percent_text

BASE = f"{API_PREFIX}/promo_codes"
_NO_STORE = {"Cache-Control": "no-store"}


def promo_json(promo: PromoCode) -> dict[str, Any]:
    return {
        "code": promo.code,
        "percent_off": percent_text(promo.percent_off_bp) if promo.percent_off_bp is not None else None,
        "amount_off": (Money(promo.amount_off_minor, promo.currency).amount_str()
                       if promo.amount_off_minor is not None and promo.currency else None),
        "amount_off_minor": promo.amount_off_minor, "currency": promo.currency,
        "max_redemptions": promo.max_redemptions, "times_redeemed": promo.times_redeemed,
        "expires_at": iso_utc(promo.expires_at), "link_ids": promo.link_ids,
        "created_at": iso_utc(promo.created_at),
    }


class PromosApi:
    def __init__(self, promos: PromoService, links: LinkService, merchant_of: Any) -> None:
        self.promos = promos
        self.links = links
        self._merchant = merchant_of  # LinksApi._merchant: the same key check and 401

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(BASE, self.create),
            web.get(BASE, self.list_codes),
            web.get(f"{BASE}/{{code}}", self.get),
            web.delete(f"{BASE}/{{code}}", self.delete),
        ]

    async def create(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        try:
            body = CreatePromoCode.model_validate(parse_json_object(await _read_body(request)))
        except ValidationError as exc:
            code, message, field = first_error(exc)
            if field == "code" and code not in ("missing_field", "invalid_type"):
                code = "invalid_code"
            elif field == "percent_off" and code not in ("invalid_type",):
                code = "invalid_percent"
            elif field == "expires_at":
                code = "invalid_expiry"
            elif field.startswith("link_ids") and code not in ("invalid_type",):
                code, field = "invalid_link", "link_ids"
            elif field in ("amount_off", "currency") and code not in ("invalid_type",):
                code = "invalid_amount" if field == "amount_off" else "invalid_currency"
            if code not in errors_for("createPromoCode")[400]:
                code = "invalid_type"
            raise ApiError(400, code, message, field) from None
        try:
            draft = await self._draft(merchant.id, body)
            promo = await self.promos.create(merchant.id, draft)
        except PromoError as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        return _respond(promo_json(promo), 201, {"Location": f"{BASE}/{promo.code}", **_NO_STORE})

    async def _draft(self, merchant_id: str, body: CreatePromoCode) -> PromoDraft:
        if (body.percent_off is None) == (body.amount_off is None):
            raise PromoError("invalid_discount", "give exactly one of percent_off (\"10\") and amount_off (\"5.00\")",
                             "percent_off")
        amount_off = currency = None
        if body.amount_off is not None:
            if body.currency is None:
                raise PromoError("invalid_discount", "amount_off needs its currency", "currency")
            try:
                currency = normalize_currency(body.currency)
                amount_off = Money.parse(body.amount_off, currency).amount_minor
            except MoneyError as exc:
                raise PromoError("invalid_currency" if exc.field == "currency" else "invalid_amount", str(exc),
                                 "currency" if exc.field == "currency" else "amount_off") from None
        expires_at = None
        if body.expires_at is not None:
            try:
                expires_at = datetime.fromisoformat(body.expires_at)
            except ValueError:
                raise PromoError("invalid_expiry", "expires_at must be ISO 8601, e.g. \"2026-12-31T23:59:00Z\"",
                                 "expires_at") from None
            if expires_at.tzinfo is None:
                raise PromoError("invalid_expiry", "expires_at needs a UTC offset", "expires_at")
            try:
                expires_at = expires_at.astimezone(UTC)
            except OverflowError:
                raise PromoError("invalid_expiry", "expires_at is out of range", "expires_at") from None
        link_ids = None
        if body.link_ids is not None:
            for link_id in body.link_ids:
                if await self.links.get(link_id, merchant_id) is None:
                    raise PromoError("invalid_link", f"{link_id} is not a link of yours", "link_ids")
            link_ids = tuple(dict.fromkeys(body.link_ids))
        return PromoDraft(code=body.code, percent_off_bp=percent_bp(body.percent_off) if body.percent_off else None,
                          amount_off_minor=amount_off, currency=currency, max_redemptions=body.max_redemptions,
                          expires_at=expires_at, link_ids=link_ids)

    async def list_codes(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        return _respond({"data": [promo_json(p) for p in await self.promos.list(merchant.id)]}, headers=_NO_STORE)

    @staticmethod
    def _code(request: web.Request) -> str:
        code = normalise(request.match_info["code"])
        if not CODE.fullmatch(code):
            raise ApiError(404, "not_found", "no such promo code", "code")
        return code

    async def get(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        promo = await self.promos.get(merchant.id, self._code(request))
        if promo is None:
            raise ApiError(404, "not_found", "no such promo code", "code")
        return _respond(promo_json(promo), headers=_NO_STORE)

    async def delete(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        code = self._code(request)
        promo = await self.promos.get(merchant.id, code)
        if promo is None or not await self.promos.delete(merchant.id, code):
            raise ApiError(404, "not_found", "no such promo code", "code")
        return _respond(promo_json(promo), headers=_NO_STORE)
