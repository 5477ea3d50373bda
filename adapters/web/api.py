"""The REST API under /api/v1: payment links for a merchant's own systems.

Authentication is `Authorization: Bearer <key>` with keys from `paylinks apikey create`. Every error a
client can cause is a 4xx JSON body `{"error": {"code", "message", "field"}}` naming the field; anything
unexpected becomes a JSON 500 without details (logged with an error id) through `api_errors`.
Bodies are checked by the pydantic models of api_models.py (from which openapi.py generates the
document), then here for what JSON Schema cannot state, then by LinkService (core/limits.py).

Speed: link creation is one key lookup (adapters/web/api_keys.py: uncached, so a revoked key is refused
on the next request) plus one short write transaction (LinkService.create), on SQLAlchemy Core, with no
ORM session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import phonenumbers
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from adapters.web import api_models, sales
from adapters.web.api_keys import ApiKeys, ApiMerchant
from adapters.web.api_models import (
    API_PREFIX,
    CREATE_FIELDS,
    CUSTOMER_FIELDS,
    DEFAULT_LIMIT,
    MAX_BODY_BYTES,
    MAX_IDEMPOTENCY_KEY,
    MAX_LIMIT,
    CreateLink,
    CreateRefund,
    StatusFilter,
)
from adapters.web.invoice_json import ItemsError, invoice_fields, totals_from_body
from adapters.web.openapi import build_document
from core import ids, limits
from core.audit import Actor, AuditLog
from core.db import DatabaseBusy
from core.durations import parse_duration
from core.invoices import Invoices
from core.links import Customer, LinkDraft, LinkError, LinkService
from core.merchants import MerchantService
from core.models import LinkStatus, Payment, PaymentLink, Refund, values_of
from core.money import Money, MoneyError, amount_str, normalize_currency
from core.refunds import RefundRequest, RefundService
from core.reusable import PaymentPromo
from core.timeline import timeline

log = logging.getLogger("paylinks.api")

__all__ = ["API_PREFIX", "CREATE_FIELDS", "CUSTOMER_FIELDS", "MAX_BODY_BYTES", "ApiError", "LinksApi"]

MAX_EXPIRY = limits.MAX_EXPIRY
STATUSES = tuple(s.value for s in LinkStatus)

_LINK_ID = re.compile(api_models.LINK_ID_PATTERN)
_IDEMPOTENCY_KEY = re.compile(api_models.IDEMPOTENCY_KEY_PATTERN)
_SECRET = re.compile(r"^[A-Za-z0-9_\-]{16,200}$")
_NO_STORE = {"Cache-Control": "no-store"}


class ApiError(Exception):
    """A client-caused problem, rendered as `{"error": {"code", "message", "field"}}`."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.field, self.headers)


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, "field": field}},
        status=status,
        headers={**_NO_STORE, **(headers or {})},
    )


def _bad(code: str, message: str, field: str | None) -> ApiError:
    return ApiError(400, code, message, field)


_HTTP_CODES = {
    404: ("not_found", "no such endpoint; see /api/v1/openapi.json"),
    405: ("method_not_allowed", "this endpoint does not accept that method"),
    413: ("body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes"),
}


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/ every error is JSON: client errors name their field, the unexpected ones say nothing."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        field = "body" if exc.status == 413 else None
        return error_response(exc.status, code, message, field, headers)
    except asyncio.CancelledError:
        raise
    except DatabaseBusy as exc:
        log.warning("api request refused: database busy (%s) method=%s", exc.reason, request.method)
        return error_response(503, "database_busy", "the database is busy; nothing was changed, try again in a moment",
                              None, {"Retry-After": str(exc.retry_after_s)})
    except Exception:
        error_id = ids.prefixed("err")
        log.exception("api request failed error=%s method=%s path=%s", error_id, request.method, request.path)
        return error_response(500, "internal_error", f"something went wrong on our side (error {error_id})")


# ---------------------------------------------------------------- authentication


def _bearer_secret(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    challenge = {"WWW-Authenticate": 'Bearer realm="paylinks"'}
    if not header:
        raise ApiError(401, "unauthorized", "send your API key as 'Authorization: Bearer <key>'",
                       "Authorization", challenge)
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer <key>'",
                       "Authorization", challenge)
    return secret


# ---------------------------------------------------------------- JSON shapes


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def refund_json(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "payment_id": refund.payment_id,
        "amount": amount_str(refund.amount_minor, refund.currency),
        "amount_minor": refund.amount_minor,
        "currency": refund.currency,
        "status": str(refund.status),
        "reason": refund.reason,
        "failure_reason": refund.failure_reason,
        "created_at": iso_utc(refund.created_at),
        "completed_at": iso_utc(refund.completed_at),
    }


def payment_json(payment: Payment, refunds: list[Refund], promo: PaymentPromo | None = None) -> dict[str, Any]:
    discount = promo.discount_minor if promo is not None else 0
    return {
        "id": payment.id,
        "status": str(payment.status),
        "amount": amount_str(payment.amount_minor, payment.currency),
        "amount_minor": payment.amount_minor,
        "amount_refunded": amount_str(payment.amount_refunded_minor, payment.currency),
        "amount_refunded_minor": payment.amount_refunded_minor,
        "currency": payment.currency,
        "provider": payment.provider,
        "provider_ref": payment.provider_ref,
        "payer_name": payment.payer_name,
        "paid_at": iso_utc(payment.created_at),
        "refunds": [refund_json(r) for r in refunds],
        # A payment made with a promo code: the code, and what it took off (amount is what was paid).
        "promo_code": promo.code if promo is not None else None,
        "discount": amount_str(discount, payment.currency),
        "discount_minor": discount,
    }


def link_json(link: PaymentLink, status: LinkStatus, url: str, payments: list[Payment] | None = None,
              refunds: Mapping[str, list[Refund]] | None = None,
              promos: Mapping[str, PaymentPromo] | None = None) -> dict[str, Any]:
    payments = payments or []
    refunds = refunds or {}
    promos = promos or {}
    row = values_of(link)  # plain reads: every link answer reads ~40 of its fields
    currency = row["currency"]
    # Refunds are in the payment's currency, which is the link's (a mismatched payment is refunded in
    # its own currency and not added here).
    refunded = sum(p.amount_refunded_minor for p in payments if p.currency == currency)
    return {
        "id": row["id"],
        "url": url,
        "status": status.value,
        "amount": amount_str(row["amount_minor"], currency),
        "amount_minor": row["amount_minor"],
        "currency": currency,
        "description": row["description"],
        "reference": row["reference"],
        "customer": {"name": row["customer_name"], "email": row["customer_email"], "phone": row["customer_phone"]},
        "metadata": dict(row["meta"] or {}),
        "created_at": iso_utc(row["created_at"]),
        "expires_at": iso_utc(row["expires_at"]),
        "paid_at": iso_utc(row["paid_at"]),
        "cancelled_at": iso_utc(row["cancelled_at"]),
        "livemode": bool(row["livemode"]),
        "amount_refunded": amount_str(refunded, currency),
        "amount_refunded_minor": refunded,
        "payments": [payment_json(p, refunds.get(p.id, []), promos.get(p.id)) for p in payments],
        **sales.sales_json(row),
    }


def request_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON body, so key order and spacing do not make a request "different"."""
    # default=str: JSON numbers with a fraction arrive as Decimal.
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


# Built once: json.loads with hooks would build a decoder per request.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON, as _ENCODER writes it. orjson gives the same bytes for what the API answers
    (str, int, bool, None, lists, str-keyed dicts) at a fraction of the cost; anything it would write
    differently goes through the standard encoder: floats (1e16 vs 1e+16), and, as orjson refuses them
    with these options, str/int subclasses (enum members), non-str keys and ints past 64 bits."""
    if not _has_float(data):
        try:
            return orjson.dumps(data, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
        except TypeError:
            pass
    return _ENCODER.encode(data).encode()


def _has_float(data: Any) -> bool:
    stack = [data]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            stack.extend(value.values())
        elif kind is list or kind is tuple:
            stack.extend(value)
        elif kind is float:
            return True
    return False


def _respond(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=encode_json(data), status=status, headers=headers, content_type="application/json")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; JSON numbers with a fraction come back as Decimal (never float)."""
    if not body.strip():
        raise _bad("invalid_json", "the body must be a JSON object", "body")
    try:
        payload = _DECODER.decode(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            detail = f": {exc.msg} at position {exc.pos}"
        elif isinstance(exc, RecursionError):
            detail = ": nested too deeply"
        else:
            detail = f": {exc}"[:120]
        raise _bad("invalid_json", f"the body is not valid JSON{detail}", "body") from None
    if not isinstance(payload, dict):
        raise _bad("invalid_json", "the body must be a JSON object", "body")
    return payload


# ---------------------------------------------------------------- the API


class LinksApi:
    def __init__(
        self, links: LinkService, merchants: MerchantService, *, keys: ApiKeys | None = None,
        refunds: RefundService | None = None,
    ) -> None:
        self.links = links
        self.merchants = merchants
        self.refunds = refunds or RefundService(links.db, links, clock=links.clock)
        self.keys = keys or ApiKeys(merchants)
        self.invoices = Invoices(links.db)
        # cleanup_ctx: the key reader's connection and last-used writes end before the database does.
        self.lifespan = self.keys.lifespan
        self._openapi = json.dumps(build_document(links.public_base_url)).encode()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{API_PREFIX}/links", self.create_link),
            web.get(f"{API_PREFIX}/links", self.list_links),
            # Before /links/{id}, which would otherwise take "export.csv" for a link id.
            web.get(f"{API_PREFIX}/links/export.csv", self.export_csv),
            web.get(f"{API_PREFIX}/links/{{id}}", self.get_link),
            web.post(f"{API_PREFIX}/links/{{id}}/cancel", self.cancel_link),
            web.post(f"{API_PREFIX}/links/{{id}}/refund", self.refund_link),
            web.get(f"{API_PREFIX}/links/{{id}}/events", self.link_events),
            web.get(f"{API_PREFIX}/openapi.json", self.openapi),
        ]

    async def _merchant(self, request: web.Request) -> ApiMerchant:
        secret = _bearer_secret(request)
        merchant = await self.keys.merchant_for(secret) if _SECRET.match(secret) else None
        if merchant is None:
            log.info("api key refused method=%s path=%s", request.method, request.path)
            raise ApiError(401, "unauthorized", "the API key is not valid (or was revoked)", "Authorization",
                           {"WWW-Authenticate": 'Bearer realm="paylinks", error="invalid_token"'})
        return merchant

    async def _json(self, link: PaymentLink) -> dict[str, Any]:
        return (await self._many([link]))[0]

    async def _many(self, found: list[PaymentLink]) -> list[dict[str, Any]]:
        """Links as JSON with their payments and refunds (two queries for the whole page)."""
        ids_ = [link.id for link in found]
        payments = await self.refunds.payments_of(ids_) if ids_ else {}
        refunds = await self.refunds.refunds_for(ids_) if any(payments.values()) else {}
        # Only a reusable link's payments can carry a promo code (core/reusable.py reservations).
        sold = [p.id for link in found if link.reusable for p in payments.get(link.id, [])]
        promos = await self.links.reservations.promos_of(sold) if sold else {}
        now = self.links.clock()
        invoices = await self.invoices.many(ids_)
        return [{**link_json(link, self.links.status_of(link, now), self.links.url(link.id),
                             payments.get(link.id, []), refunds, promos),
                 **invoice_fields(link, invoices.get(link.id))}
                for link in found]

    # ------------------------------------------------------------ POST /links

    async def create_link(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        idempotency_key = self._idempotency_key(request)
        body = await _read_body(request)
        payload = parse_json_object(body)
        draft, amount_field, expiry_field = self._draft(merchant, payload)
        if idempotency_key is not None:
            draft = _with_idempotency(draft, idempotency_key, request_hash(payload))
        try:
            link, created = await self.links.create(draft)
        except LinkError as exc:
            field = exc.field
            if field == "amount":
                field = amount_field
            elif field == "expires_at":
                field = expiry_field
            raise ApiError(exc.status, exc.code, exc.message, field) from None
        headers = {"Location": f"{API_PREFIX}/links/{link.id}", **_NO_STORE}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        # A new link has no payments yet: no query for them on the creation path.
        if created:
            answer = link_json(link, self.links.status_of(link), self.links.url(link.id))
            answer.update(invoice_fields(link, await self.invoices.of(link.id) if draft.line_items else None))
        else:
            answer = await self._json(link)
        return _respond(answer, 201 if created else 200, headers)

    @staticmethod
    def _idempotency_key(request: web.Request) -> str | None:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not _IDEMPOTENCY_KEY.fullmatch(key) or len(key) > MAX_IDEMPOTENCY_KEY:
            raise _bad(
                "invalid_idempotency_key",
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters (a UUID is ideal)",
                "Idempotency-Key",
            )
        return key.rstrip()

    def _draft(self, merchant: ApiMerchant, payload: dict[str, Any]) -> tuple[LinkDraft, str, str]:
        """Validate the create body; also returns which amount and expiry fields the client used."""
        if "schedule" in payload:
            raise _bad("use_series", "a link with a schedule is a recurring charge: POST it to /api/v1/series",
                       "schedule")
        try:
            # One model built at import; validating a dict is a single call into pydantic-core.
            body = CreateLink.model_validate(payload)
        except ValidationError as exc:
            code, message, field = api_models.first_error(exc)
            raise _bad(code, message, field) from None
        if body.currency is None:
            currency = merchant.default_currency
        else:
            try:
                currency = normalize_currency(body.currency)
            except MoneyError as exc:
                raise _bad("invalid_currency", str(exc), "currency") from None
        try:
            totals = totals_from_body(body, currency, self.links.max_amount)
        except ItemsError as exc:
            raise _bad(exc.code, exc.message, exc.field) from None
        if totals is not None and sales.customer_chooses(body):
            raise _bad("invalid_amount_mode", "line_items fix the amount, so the customer cannot choose it: "
                       "leave out amount_mode (or line_items)", "amount_mode")
        if totals is not None:
            money, amount_field = Money(totals.total_minor, currency), "line_items"
        elif sales.customer_chooses(body) and body.amount is None and body.amount_minor is None:
            try:  # a donation's link amount is its smallest one
                money, amount_field = Money(sales.min_minor(body, currency), currency), "min_amount"
            except sales.TermsProblem as exc:
                raise _bad(exc.code, exc.message, exc.field) from None
        else:
            money, amount_field = self._money(body, currency)
        try:
            terms = sales.terms_of(body, currency)
        except sales.TermsProblem as exc:
            raise _bad(exc.code, exc.message, exc.field) from None
        reference = (body.reference or "").strip() or None
        expires_at, expires_in, expiry_field = self._expiry(body)
        return (
            LinkDraft(
                merchant_id=merchant.id,
                money=money,
                description=body.description,
                reference=reference,
                customer=self._customer(body),
                expires_at=expires_at,
                expires_in=expires_in,
                meta=dict(body.metadata or {}),
                notify=frozenset(body.notify) if body.notify is not None else None,
                line_items=totals,
                terms=terms,
            ),
            amount_field,
            expiry_field,
        )

    def _money(self, body: CreateLink, currency: str) -> tuple[Money, str]:
        if (body.amount is None) == (body.amount_minor is None):
            message = "give exactly one of amount (\"25.00\") and amount_minor (2500)"
            raise _bad("missing_field" if body.amount is None else "invalid_amount", message, "amount")
        if body.amount is not None:
            try:
                money = Money.parse(body.amount, currency)
            except MoneyError as exc:
                raise _bad("invalid_amount", str(exc), "amount") from None
            if money.amount_minor <= 0:
                raise _bad("invalid_amount", "amount must be greater than zero", "amount")
            if money.decimal() > self.links.max_amount:
                most = Money(limits.max_amount_minor(self.links.max_amount, currency), currency)
                raise _bad("amount_too_large", f"amount must be at most {most.amount_str()} {currency}", "amount")
            return money, "amount"
        minor = body.amount_minor
        assert minor is not None
        most_minor = limits.max_amount_minor(self.links.max_amount, currency)
        if minor > most_minor:
            most = Money(most_minor, currency)
            raise _bad("amount_too_large", f"amount_minor must be at most {most.amount_minor} "
                       f"({most.amount_str()} {currency})", "amount_minor")
        return Money(minor, currency), "amount_minor"

    def _expiry(self, body: CreateLink) -> tuple[datetime | None, timedelta | None, str]:
        at, within = body.expires_at, body.expires_in
        if at is not None and within is not None:
            raise _bad("invalid_expiry", "give expires_at or expires_in, not both", "expires_in")
        now = self.links.clock()
        if within is not None:
            try:
                delta = parse_duration(within)
            except ValueError as exc:
                raise _bad("invalid_expiry", str(exc), "expires_in") from None
            if delta <= timedelta(0):
                raise _bad("invalid_expiry", "expires_in must be longer than zero", "expires_in")
            if delta > MAX_EXPIRY:
                raise _bad("invalid_expiry", f"expires_in must be at most {MAX_EXPIRY.days} days", "expires_in")
            return None, delta, "expires_in"
        if at is None:
            return None, None, "expires_at"
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise _bad("invalid_expiry", f"{at[:40]!r} is not an ISO 8601 time such as "
                       "\"2026-12-01T18:00:00+08:00\"", "expires_at") from None
        if when.tzinfo is None or when.utcoffset() is None:
            raise _bad("invalid_expiry", "expires_at needs a UTC offset, e.g. \"2026-12-01T18:00:00+08:00\" or "
                       "\"…Z\"", "expires_at")
        try:
            when = when.astimezone(UTC)
        except OverflowError:  # "0001-01-01T00:00:00+01:00" has no UTC time
            raise _bad("invalid_expiry", "expires_at is out of range", "expires_at") from None
        if when <= now:
            raise _bad("invalid_expiry", "expires_at must be in the future", "expires_at")
        if when - now > MAX_EXPIRY:
            raise _bad("invalid_expiry", f"expires_at must be within {MAX_EXPIRY.days} days", "expires_at")
        return when, None, "expires_at"

    @staticmethod
    def _customer(body: CreateLink) -> Customer:
        customer = body.customer
        if customer is None:
            return Customer()
        email = customer.email
        if email is not None:  # given means checked: "" or " a@b.example" is no address, as the document says
            try:
                email = limits.normalise_email(email)
            except ValueError as exc:
                raise _bad("invalid_email", f"customer.email: {exc}", "customer.email") from None
        phone = (customer.phone or "").strip() or None
        if phone is not None:
            try:
                number = phonenumbers.parse(phone, None)
            except phonenumbers.NumberParseException:
                number = None
            if number is None or not phonenumbers.is_possible_number(number):
                raise _bad("invalid_phone", "customer.phone must be an international number such as "
                           "\"+6591234567\"", "customer.phone")
            phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return Customer(name=(customer.name or "").strip() or None, email=email, phone=phone)

    # ------------------------------------------------------------ GET /links, /links/{id}, cancel

    async def get_link(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        link_id = request.match_info["id"]
        # Another merchant's link is indistinguishable from a missing one.
        # Not shaped like a link id (NUL, "²", too long…): not found, without asking the database.
        link = await self.links.get(link_id, merchant.id) if _LINK_ID.fullmatch(link_id) else None
        if link is None:
            raise ApiError(404, "not_found", "no such link", "id")
        return _respond(await self._json(link), headers=_NO_STORE)

    async def list_links(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        query = request.query
        status = None
        try:
            wanted = StatusFilter(query.get("status", ""))
        except ValueError:
            raise _bad("invalid_status", f"status must be one of {', '.join(STATUSES)} (or empty for all)",
                       "status") from None
        if wanted is not StatusFilter.ANY:
            status = LinkStatus(wanted.value)
        livemode: bool | None = None
        if "livemode" in query:
            # Test and live money never mix: exports of one never carry the other.
            livemode = {"true": True, "false": False}.get(query["livemode"])
            if livemode is None:
                raise _bad("invalid_livemode", "livemode must be true or false (or absent for both)", "livemode")
        limit = DEFAULT_LIMIT
        if "limit" in query:
            text = query["limit"]
            # ASCII digits only: "²".isdigit() is true, but int("²") fails.
            if not (text.isascii() and text.isdigit() and len(text) <= 4 and 1 <= int(text) <= MAX_LIMIT):
                raise _bad("invalid_limit", f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")
            limit = int(text)
        cursor = query.get("cursor") or None
        if cursor is not None and not _LINK_ID.fullmatch(cursor):
            raise _bad("invalid_cursor", "cursor does not name a link of yours", "cursor")
        try:
            found, next_cursor = await self.links.list_links(merchant.id, status=status, limit=limit, cursor=cursor,
                                                             livemode=livemode)
        except LinkError as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        data = await self._many(found)
        return _respond({"data": data, "next_cursor": next_cursor}, headers=_NO_STORE)

    async def cancel_link(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        link_id = request.match_info["id"]
        if not _LINK_ID.fullmatch(link_id):
            raise ApiError(404, "not_found", "no such link", "id")
        try:
            link = await self.links.cancel(link_id, merchant.id)
        except LinkError as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        await AuditLog(self.links.db, clock=self.links.clock).record(
            merchant.id, "link.cancelled", Actor(f"API key {merchant.key_id}", "api", address=request.remote),
            link_id=link.id)
        return _respond(await self._json(link), headers=_NO_STORE)

    # ------------------------------------------------------------ refunds and the timeline

    async def refund_link(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        link_id = request.match_info["id"]
        idempotency_key = self._idempotency_key(request)
        body = await _read_body(request)
        payload = parse_json_object(body) if body.strip() else {}
        try:
            asked = CreateRefund.model_validate(payload)
        except ValidationError as exc:
            code, message, field = api_models.first_error(exc)
            raise _bad(code, message, field) from None
        link = await self.links.get(link_id, merchant.id) if _LINK_ID.fullmatch(link_id) else None
        if link is None:
            raise ApiError(404, "not_found", "no such link", "id")
        amount_minor = None
        if asked.amount is not None:
            try:
                amount_minor = Money.parse(asked.amount, link.currency).amount_minor
            except MoneyError as exc:
                raise _bad("invalid_amount", str(exc), "amount") from None
        try:
            refund, created = await self.refunds.request(RefundRequest(
                link_id=link.id, merchant_id=merchant.id, amount_minor=amount_minor, payment_id=asked.payment_id,
                reason=(asked.reason or "").strip() or None, requested_by="api",
                idempotency_key=idempotency_key,
                request_hash=request_hash(payload) if idempotency_key is not None else None))
        except LinkError as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        if created:
            await AuditLog(self.links.db, clock=self.links.clock).record(
                merchant.id, "link.refunded", Actor(f"API key {merchant.key_id}", "api", address=request.remote),
                link_id=link.id, refund_id=refund.id, amount=amount_str(refund.amount_minor, refund.currency),
                currency=refund.currency, status=str(refund.status))
        headers = dict(_NO_STORE)
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return _respond(refund_json(refund), 201 if created else 200, headers)

    async def link_events(self, request: web.Request) -> web.Response:
        merchant = await self._merchant(request)
        link_id = request.match_info["id"]
        link = await self.links.get(link_id, merchant.id) if _LINK_ID.fullmatch(link_id) else None
        if link is None:
            raise ApiError(404, "not_found", "no such link", "id")
        events = await timeline(self.links.db, link, self.links.status_of(link))
        data = [{"type": e.type, "at": iso_utc(e.at), "details": e.details} for e in events]
        return _respond({"data": data}, headers=_NO_STORE)

    async def export_csv(self, request: web.Request) -> web.StreamResponse:
        from adapters.web.export import csv_chunks, stream_csv
        from adapters.web.link_filters import FilterError, parse_filter
        from core.link_search import LinkSearch

        merchant = await self._merchant(request)
        for name, code in EXPORT_FILTERS.items():
            value = request.query.get(name)
            # The dashboard's form sends empty fields; an API caller that names a filter must give it.
            if value is not None and (not value or value != value.strip()):
                raise _bad(code, f"{name} must not be empty or padded with spaces", name)
        try:
            where = parse_filter(request.query, ZoneInfo("UTC"))
        except FilterError as exc:
            raise _bad(exc.code, exc.message, exc.field) from None
        chunks = csv_chunks(LinkSearch(self.links.db), merchant.id, where, self.links.status_of)
        return await stream_csv(request, chunks, "paylinks-links.csv")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")


# The export's filters that have a format (q is free text; status may be empty, meaning all).
EXPORT_FILTERS = {"currency": "invalid_currency", "from": "invalid_date", "to": "invalid_date",
                  "origin": "invalid_origin"}


async def _read_body(request: web.Request) -> bytes:
    """The request body, refused (413) past MAX_BODY_BYTES whether or not it declared its length."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes", "body")
    body = await request.read()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes", "body")
    return body


def _with_idempotency(draft: LinkDraft, key: str, body_hash: str) -> LinkDraft:
    return replace(draft, idempotency_key=key, request_hash=body_hash)
