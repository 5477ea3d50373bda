"""A fake PortOne Global API on 127.0.0.1 for tests, strict where PortOne is.

It checks what PortOne checks: the bearer JWT (HS256 with the secret key, iss PORTONE, sub = the client
key, not expired), the `X-Portone-Client-Key` header, every request body against the vendored OpenAPI
spec (tests/fakes/portone_spec/, validated with openapi-schema-validator), `portone_key` and the
`signature_hash` of a create request. Errors look like PortOne's: `{"message", "status_code",
"status_reason"}` (codes from docs.portone.cloud "Error Codes").

It also plays the customer's side: GET {url}/checkout?ref=… is a hosted page with Pay / Fail buttons;
paying marks the link Success, sends the signed payment-link webhook to `webhook_url` (when set) and
303s to the link's success_url with signed redirect parameters.

Several accounts: `add_account(client_key, secret_key, webhook_url=…)` adds a PortOne merchant account
of its own (a shop's). Requests are checked against the account their `X-Portone-Client-Key` names; a
link belongs to the account that created it (another account's key gets "not found"), and its webhooks
and redirects are signed with its account's secret and go to its account's webhook URL.
Refunds: POST /api/refund/{order_ref} (body checked against the spec; more than is left refused) answers
with the transaction's refunds, the new one `refund_initial` ("PENDING" unless set to "SUCCESS"); a
pending refund then settles to `refund_outcome` and its UNSIGNED refund webhook (the documented sample's
fields, tests/fakes/portone_spec/refund_webhook_sample.json) goes to `refund_webhook_url`.
GET /api/refund/{order_ref} lists them (what paylinks confirms a refund webhook with). `drain()` waits
for the webhooks scheduled so far.

Scripting:
    fake.fail("create", status=503)            # next create answers 503 (also "fetch", "cancel", "refund",
                                               #   "refunds")
    fake.fail("fetch", status=429, retry_after=3)
    fake.stall("create", seconds=5)            # answer late (client timeouts)
    fake.response_shape = "envelope"           # create answers {"content": {...}, "status_code": "2000"}
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from adapters.payments.portone import signing

SPEC_DIR = Path(__file__).parent / "portone_spec"
_PAYMENT_SPEC = "urn:portone:payment"
_REFUND_SPEC = "urn:portone:refund"
CREATE_SCHEMA = f"{_PAYMENT_SPEC}#/paths/~1api~1paymentLink/post/requestBody/content/application~1json/schema"
REFUND_SCHEMA = (f"{_REFUND_SPEC}#/paths/~1api~1refund~1{{portone_order_ref}}/post/requestBody/content/"
                 "application~1json/schema")


@cache
def _registry() -> Registry:
    registry: Registry = Registry()
    for uri, name in ((_PAYMENT_SPEC, "payment_openapispec.yaml"), (_REFUND_SPEC, "refund_openapispec.yaml")):
        spec = yaml.safe_load((SPEC_DIR / name).read_text())
        registry = registry.with_resource(uri, Resource.from_contents(spec, default_specification=DRAFT4))
    return registry


def spec_errors(schema_ref: str, body: Any) -> list[str]:
    """Every way `body` breaks the vendored spec's request schema (empty: valid)."""
    validator = OAS30Validator({"$ref": schema_ref}, registry=_registry())
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                  for e in validator.iter_errors(body))


@dataclass
class Call:
    kind: str  # "create", "fetch", "cancel", "refund"
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakeLink:
    ref: str
    body: dict[str, Any]
    status: str = "Created"
    transactions: list[dict[str, Any]] = field(default_factory=list)
    order_ref: str | None = None
    client_key: str = ""  # the account that created it
    refunds: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Failure:
    kind: str
    status: int
    retry_after: float | None
    times: int


class FakePortOne:
    def __init__(self, *, client_key: str = "pk_test_PAYLINKS", secret_key: str = "sk_test_secret_123",
                 clock: Callable[[], float] = time.time) -> None:
        self.client_key = client_key
        self.secret_key = secret_key
        self.clock = clock
        self.calls: list[Call] = []
        self.rejected: list[tuple[str, list[str]]] = []  # (kind, spec errors) of refused bodies
        self.links: dict[str, FakeLink] = {}
        self.webhooks_sent: list[tuple[int, dict[str, Any]]] = []
        self.webhook_url: str | None = None  # payment-link webhooks (payment_link_status)
        self.payment_webhook_url: str | None = None  # transaction webhooks (payment_status)
        self.response_shape = "flat"
        self.refund_webhook_url: str | None = None  # refund webhooks (refund_status), unsigned
        self.refund_initial = "PENDING"
        # True: PortOne answers the refund call "pending", but the refund settles and its webhook reaches us
        # before that answer does (a quick PortOne: its webhook beats its own API answer).
        self.refund_webhook_first = False
        self.refund_outcome = "SUCCESS"
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: list[_Failure] = []
        self._stalls: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Other accounts (add_account): client key -> (secret key, webhook URL).
        self.accounts: dict[str, tuple[str, str | None]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_account(self, client_key: str, secret_key: str, *, webhook_url: str | None = None) -> None:
        self.accounts[client_key] = (secret_key, webhook_url)

    def _secret_of(self, client_key: str) -> str | None:
        if client_key == self.client_key:
            return self.secret_key
        found = self.accounts.get(client_key)
        return found[0] if found else None

    def _link_key(self, link: FakeLink) -> str:
        return link.client_key or self.client_key

    def _link_secret(self, link: FakeLink) -> str:
        return self._secret_of(self._link_key(link)) or self.secret_key

    def _link_webhook_url(self, link: FakeLink) -> str | None:
        key = self._link_key(link)
        return self.webhook_url if key == self.client_key else self.accounts[key][1]

    async def start(self) -> FakePortOne:
        app = web.Application()
        app.router.add_post("/api/paymentLink", self._create)
        app.router.add_get("/api/paymentLink/{ref}/fetch-status", self._fetch)
        app.router.add_put("/api/paymentLink/{ref}/status/{link_status}", self._cancel)
        app.router.add_post("/api/refund/{order_ref}", self._refund)
        app.router.add_get("/api/refund/{order_ref}", self._refund_list)
        app.router.add_get("/checkout", self._checkout_page)
        app.router.add_post("/checkout/{ref}/{action}", self._checkout_action)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ scripting

    def fail(self, kind: str, *, status: int = 500, retry_after: float | None = None, times: int = 1) -> None:
        self._failures.append(_Failure(kind, status, retry_after, times))

    def stall(self, kind: str, seconds: float) -> None:
        self._stalls[kind] = seconds

    def calls_of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    # ------------------------------------------------------------ checks

    @staticmethod
    def error(http_status: int, code: str, reason: str, message: str) -> web.Response:
        return web.json_response({"message": message, "status_code": code, "status_reason": reason},
                                 status=http_status, headers={"X-Request-Id": f"req_fake_{secrets.token_hex(6)}"})

    async def _gate(self, request: web.Request, kind: str) -> tuple[Any, web.Response | None]:
        """Record the call, play scripted failures, check auth; (parsed body, error response or None)."""
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw, parse_float=Decimal)
            except ValueError:
                body = raw.decode(errors="replace")
        self.calls.append(Call(kind, request.path, body, dict(request.headers)))
        if kind in self._stalls:
            await asyncio.sleep(self._stalls[kind])
        for failure in self._failures:
            if failure.kind == kind and failure.times > 0:
                failure.times -= 1
                headers = {"X-Request-Id": "req_fake_outage"}
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(int(failure.retry_after))
                if failure.status >= 500:
                    return body, web.Response(status=failure.status, text="<html>Bad gateway</html>",
                                              content_type="text/html", headers=headers)
                return body, web.json_response(
                    {"message": "Too many requests", "status_code": "4088", "status_reason": "MAX_RETRY_LIMIT_EXCEED"},
                    status=failure.status, headers=headers)
        key = request.headers.get("X-Portone-Client-Key") or ""
        secret = self._secret_of(key)
        if secret is None:
            return body, self.error(401, "4010", "INVALID_UNAUTHORISED_TRANSACTION_IAMPORTKEY_ERROR",
                                    "X-Portone-Client-Key is missing or unknown")
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme != "Bearer" or not token:
            return body, self.error(401, "4054", "INVALID_UNAUTHORIZED_JWT_TOKEN_ERROR", "Bearer token is required")
        try:
            signing.verify_jwt(token, client_key=key, secret_key=secret, now=self.clock())
        except signing.JWTRejected as exc:
            return body, self.error(401, "4054", "INVALID_UNAUTHORIZED_JWT_TOKEN_ERROR", f"invalid token: {exc}")
        return body, None

    def _own_link(self, request: web.Request) -> FakeLink | None:
        """The link named in the path, if it belongs to the account calling (else PortOne says not found)."""
        link = self.links.get(request.match_info["ref"])
        if link is None or self._link_key(link) != request.headers.get("X-Portone-Client-Key"):
            return None
        return link

    def _invalid(self, kind: str, errors: list[str]) -> web.Response:
        self.rejected.append((kind, errors))
        return self.error(400, "4001", "INVALID_REQUEST_DATA", "Invalid Request, err : " + "; ".join(errors))

    # ------------------------------------------------------------ API

    async def _create(self, request: web.Request) -> web.Response:
        body, failed = await self._gate(request, "create")
        if failed is not None:
            return failed
        errors = spec_errors(CREATE_SCHEMA, _jsonable(body))
        if errors:
            return self._invalid("create", errors)
        key = request.headers["X-Portone-Client-Key"]
        if body["portone_key"] != key:
            return self.error(401, "4010", "INVALID_UNAUTHORISED_TRANSACTION_IAMPORTKEY_ERROR",
                              "portone_key does not match the client key")
        expected = {"amount": body["amount"], "client_key": body["portone_key"], "currency": body["currency"],
                    "failure_url": body["failure_url"], "merchant_order_id": body["merchant_order_id"],
                    "success_url": body["success_url"]}
        if not signing.signature_matches(expected, self._secret_of(key) or "", body["signature_hash"]):
            self.rejected.append(("create", ["signature_hash"]))
            return self.error(401, "4011", "INVALID_UNAUTHORISED_TRANSACTION_SIGNATURE_ERROR",
                              "signature_hash is invalid")
        if any(link.body["merchant_order_id"] == body["merchant_order_id"] for link in self.links.values()):
            return self.error(400, "4002", "DUPLICATE_TRANSACTION_ERROR", "merchant_order_id already used")
        ref = f"2Pl{next(self._ids):05d}{secrets.token_hex(8)}"
        self.links[ref] = FakeLink(ref=ref, body=body, client_key=key)
        created = {"payment_link_ref": ref, "payment_link": f"{self.url}/checkout?ref={ref}"}
        if self.response_shape == "envelope":
            return web.json_response({"content": created, "message": "Payment link created",
                                      "status_code": "2000", "status_reason": "SUCCESS"})
        return web.json_response(created)

    async def _fetch(self, request: web.Request) -> web.Response:
        _, failed = await self._gate(request, "fetch")
        if failed is not None:
            return failed
        link = self._own_link(request)
        if link is None:
            return self.error(400, "4083", "INVALID_PAYMENT_LINK_REF", "payment link not found")
        return web.json_response({
            "content": {"merchantOrderRef": link.body["merchant_order_id"], "paymentLinkRef": link.ref,
                        "status": link.status, "transactionsList": link.transactions},
            "status_code": "2000", "status_reason": "SUCCESS"})

    async def _cancel(self, request: web.Request) -> web.Response:
        _, failed = await self._gate(request, "cancel")
        if failed is not None:
            return failed
        if request.match_info["link_status"] != "cancelled":
            return self.error(401, "4001", "INVALID_PAYMENT_REQUEST",
                              "Invalid status! Only cancelled status is allowed")
        link = self._own_link(request)
        if link is None:
            return self.error(400, "4083", "INVALID_PAYMENT_LINK_REF", "payment link not found")
        if link.status not in ("Created", "Processing"):
            return self.error(400, "4079", "INVALID_STATUS_TYPE", f"payment link is {link.status}")
        link.status = "Cancelled"
        return web.json_response({"message": "Payment link status updated successfully to cancelled",
                                  "status_code": "2000", "status_reason": "SUCCESS"})

    async def _refund(self, request: web.Request) -> web.Response:
        body, failed = await self._gate(request, "refund")
        if failed is not None:
            return failed
        errors = spec_errors(REFUND_SCHEMA, _jsonable(body))
        if errors:
            return self._invalid("refund", errors)
        order_ref = request.match_info["order_ref"]
        link = next((li for li in self.links.values() if li.order_ref == order_ref), None)
        if link is None:
            return self.error(400, "4096", "INVALID_REFERENCE", "order not found")
        paid = Decimal(str(link.body["amount"]))
        refunded = sum((Decimal(str(r["amount"])) for r in link.refunds if r["refund_status"] != "FAILED"),
                       Decimal(0))
        amount = paid - refunded if body["refund_type"] == "full" else Decimal(str(body["amount"]))
        if amount <= 0 or amount > paid - refunded:
            return self.error(400, "4041", "INVALID_AMOUNT", "refund exceeds what is left of the payment")
        refund = {"refund_date": "2026-01-01T00:00:00Z", "refund_id": f"rf_{secrets.token_hex(6)}",
                  "psp_refund_id": str(next(self._ids) + 13785000), "amount": amount,
                  "currency": link.body["currency"], "refund_status": self.refund_initial,
                  "refund_type": body["refund_type"], "refund_reason": body["refund_reason"],
                  "description": body["description"], "merchant_id": "11"}
        link.refunds.append(refund)
        if self.refund_initial == "PENDING" and self.refund_webhook_first:
            answer = self._refund_answer(link)  # what PortOne answered (pending), which reaches us last
            await self._settle_refund(link, refund)
            return answer
        if self.refund_initial == "PENDING":
            self._later(self._settle_refund(link, refund))
        return self._refund_answer(link)

    def _refund_answer(self, link: FakeLink) -> web.Response:
        paid = Decimal(str(link.body["amount"]))
        left = paid - sum((Decimal(str(r["amount"])) for r in link.refunds if r["refund_status"] != "FAILED"),
                          Decimal(0))
        return web.json_response(_jsonable({"amountToRefund": left, "refundDetails": link.refunds}))

    async def _refund_list(self, request: web.Request) -> web.Response:
        _, failed = await self._gate(request, "refunds")
        if failed is not None:
            return failed
        link = next((li for li in self.links.values() if li.order_ref == request.match_info["order_ref"]), None)
        if link is None:
            return self.error(400, "4096", "INVALID_REFERENCE", "order not found")
        return self._refund_answer(link)

    async def _settle_refund(self, link: FakeLink, refund: dict[str, Any]) -> None:
        refund["refund_status"] = self.refund_outcome
        await self.send_refund_webhook(link, refund)

    def refund_webhook_body(self, link: FakeLink, refund: dict[str, Any]) -> dict[str, Any]:
        """The documented sample's fields; PortOne signs none of them."""
        return {"refund_date": "2026-01-01 10:42:24.650023 +0000 UTC", "refund_id": refund["refund_id"],
                "psp_refund_id": refund["psp_refund_id"], "amount": refund["amount"],
                "currency": refund["currency"], "refund_status": refund["refund_status"],
                "refund_type": refund["refund_type"], "refund_reason": refund["refund_reason"],
                "merchant_id": "11", "description": refund["description"], "payment_txn_ref": link.order_ref,
                "payment_channel": "GBPRIMEPAY", "payment_method": "GBPrimePay Credit Card"}

    async def send_refund_webhook(self, link: FakeLink, refund: dict[str, Any], **overrides: Any) -> int | None:
        if not self.refund_webhook_url:
            return None
        body = {**self.refund_webhook_body(link, refund), **overrides}
        async with aiohttp.ClientSession() as session, session.post(
                self.refund_webhook_url, data=json.dumps(_jsonable(body)),
                headers={"Content-Type": "application/json"}) as response:
            self.webhooks_sent.append((response.status, body))
            return response.status

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------ hosted checkout

    async def _checkout_page(self, request: web.Request) -> web.Response:
        link = self.links.get(request.query.get("ref", ""))
        if link is None or link.status not in ("Created", "Processing"):
            return web.Response(status=404, text="This payment link is not available.")
        body = link.body
        name, description = html.escape(body["merchant_details"]["name"]), html.escape(body.get("description", ""))
        page = (f"<!doctype html><title>PortOne checkout</title><h1>{name}</h1>"
                f"<p>{description}</p><p>{body['amount']} {body['currency']}</p>"
                f'<form method="post" action="/checkout/{link.ref}/pay"><button>Pay</button></form>'
                f'<form method="post" action="/checkout/{link.ref}/fail"><button>Fail</button></form>')
        return web.Response(text=page, content_type="text/html")

    async def _checkout_action(self, request: web.Request) -> web.Response:
        link = self.links.get(request.match_info["ref"])
        action = request.match_info["action"]
        if link is None or link.status not in ("Created", "Processing") or action not in ("pay", "fail"):
            return web.Response(status=404, text="This payment link is not available.")
        status = await self.settle(link.ref, paid=action == "pay")
        params = self.redirect_params(link, status)
        target = link.body["success_url"] if status == "Success" else link.body["failure_url"]
        separator = "&" if "?" in target else "?"
        raise web.HTTPSeeOther(target + separator + urllib.parse.urlencode(params))

    async def settle(self, ref: str, *, paid: bool = True) -> str:
        """The customer paid (or failed): update the link, send the webhook. Returns the transaction status."""
        link = self.links[ref]
        link.order_ref = link.order_ref or f"2Or{secrets.token_hex(10)}"
        txn_status = "Success" if paid else "Failed"
        link.transactions.append({
            "channelOrderRef": "ch_987", "createdAt": "2026-01-01T00:00:00Z", "orderRef": link.order_ref,
            "merchantOrderRef": link.body["merchant_order_id"], "status": txn_status,
            "statusCode": "2000" if paid else "6001",
            "statusReason": "SUCCESS" if paid else "BANK_REFUSED_TRANSACTION"})
        link.status = "Success" if paid else "Processing"
        await self.send_payment_webhook(link, txn_status)
        if paid:
            await self.send_webhook(link)
        return txn_status

    def webhook_body(self, link: FakeLink) -> dict[str, Any]:
        body = {
            "link_ref": link.ref, "link": f"{self.url}/checkout?ref={link.ref}",
            "currency": link.body["currency"], "amount": link.body["amount"],
            "countryCode": link.body["country_code"], "chaipaykey": self._link_key(link), "status": link.status,
            "success_url": link.body["success_url"], "cancel_url": link.body["failure_url"],
            "merchant_order_ref": link.body["merchant_order_id"],
            "merchant_name": link.body["merchant_details"]["name"],
            "created_at": "2026-01-01T00:00:00Z", "source": link.body["source"],
            "description": link.body.get("description", ""), "customer_name": "Test Customer",
            "portone_key": self._link_key(link),
        }
        body["signature_hash"] = signing.signature_hash(signing.payment_link_webhook_fields(body),
                                                        self._link_secret(link))
        return body

    async def send_webhook(self, link: FakeLink) -> None:
        webhook_url = self._link_webhook_url(link)
        if not webhook_url:
            return
        body = self.webhook_body(link)
        async with aiohttp.ClientSession() as session, session.post(
                webhook_url, data=json.dumps(_jsonable(body)),
                headers={"Content-Type": "application/json"}) as response:
            self.webhooks_sent.append((response.status, body))

    def payment_webhook_body(self, link: FakeLink, status: str) -> dict[str, Any]:
        body = {
            "currency": link.body["currency"], "amount": link.body["amount"], "order_ref": link.order_ref,
            "channel_order_ref": "ch_987", "merchant_order_ref": link.body["merchant_order_id"],
            "country_code": link.body["country_code"], "status": status, "channel_key": "GBPRIMEPAY",
            "method_name": "GBPrimePay Credit Card", "method_key": "GBPRIMEPAY_CREDIT_CARD",
            "buyer_name": "Test Customer", "status_code": "2000" if status == "Success" else "6001",
            "payment_link_ref": link.ref, "environment": link.body["environment"], "source": "checkout",
            "merchant_key": self._link_key(link),
        }
        body["signature_hash"] = signing.signature_hash({k: body[k] for k in signing.PAYMENT_WEBHOOK_FIELDS},
                                                        self._link_secret(link))
        return body

    async def send_payment_webhook(self, link: FakeLink, status: str) -> None:
        if not self.payment_webhook_url:
            return
        body = self.payment_webhook_body(link, status)
        async with aiohttp.ClientSession() as session, session.post(
                self.payment_webhook_url, data=json.dumps(_jsonable(body)),
                headers={"Content-Type": "application/json"}) as response:
            self.webhooks_sent.append((response.status, body))

    def redirect_params(self, link: FakeLink, status: str) -> dict[str, str]:
        params = {"order_ref": link.order_ref or "", "channel_order_ref": "ch_987",
                  "merchant_order_ref": link.body["merchant_order_id"], "status": status,
                  "amount": signing.amount_text(link.body["amount"]), "currency": link.body["currency"],
                  "status_code": "2000" if status == "Success" else "6001"}
        params["signature_hash"] = signing.signature_hash(
            {k: params[k] for k in signing.REDIRECT_FIELDS}, self._link_secret(link))
        return params


def _jsonable(value: Any) -> Any:
    """Decimals (we parse numbers exactly) back to JSON numbers, for schema checks and sending."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
