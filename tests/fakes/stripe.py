"""A fake Stripe API on 127.0.0.1 for tests, for the real `stripe` SDK (`base_addresses={"api": fake.url}`).

Faithful where it matters to paylinks:
- `Authorization: Bearer sk_…` checked: a missing or unknown key gets 401 with Stripe's error JSON;
- form bodies with bracket parameters parsed as Stripe does (`line_items[0][price_data][unit_amount]=…`);
- required and known parameters validated, errors in Stripe's shape
  `{"error": {"type": "invalid_request_error", "code", "message", "param"}}`;
- idempotency keys: the same key with the same parameters answers the same object again
  (`Idempotent-Replayed: true`); with other parameters, 400 `idempotency_error`;
- objects start from Stripe's own fixtures (tests/fakes/stripe_fixtures/selected_fixtures.json, MIT);
- every answer has a `Request-Id`.

The customer's side: GET {url}/pay/{session_id} is a hosted page with a Pay button; paying marks the
session complete + paid and sends `checkout.session.completed` to `webhook_url`, signed with the SDK's
own `stripe.WebhookSignature.generate_signature_header`, then 303s to the success_url with the
session id filled in. `expire_session` / POST /v1/checkout/sessions/{id}/expire sends
`checkout.session.expired`.

Refunds (POST /v1/refunds, `payment_intent`, optional `amount`, `metadata`): answered `pending`, as card
refunds often are, then settled after the answer to `refund_outcome` ("succeeded" or "failed") with
`refund.updated` (and `charge.refunded` when it succeeded), signed like every event. A refund beyond what
is left answers Stripe's `amount_too_large`; failed refunds give their amount back. `dispute(session_id)`
sends `charge.dispute.created`. `drain()` waits for the events sent so far.

Scripting:
    fake.fail("sessions.create", status=500)             # kinds: sessions.create, sessions.retrieve,
    fake.fail("sessions.create", status=429, times=2)    #   sessions.expire, account, balance, refunds.create
    fake.stall("sessions.retrieve", seconds=3)           # answer late (client timeouts)
Several accounts: `add_account(secret_key, webhook_secret=…, webhook_url=…)` adds a Stripe account of its
own (a shop's): its key sees only its own sessions, its events are signed with its own webhook secret and
sent to its own endpoint. The constructor's keys are the first account (`webhook_secret`, `webhook_url`).

Scripted failures happen in front of the API (as rate limiting or an outage at the edge would), before
idempotency keys are looked at, so a retry with the same key reaches the API. A restricted key
(`restricted_keys`) may not read the account: GET /v1/account answers 403, the balance works.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import stripe
from aiohttp import web

from adapters.payments.stripe.currencies import SUPPORTED

FIXTURES_PATH = Path(__file__).parent / "stripe_fixtures" / "selected_fixtures.json"
_SESSION_PARAMS = {
    "mode", "line_items", "success_url", "cancel_url", "client_reference_id", "metadata", "payment_intent_data",
    "expires_at", "customer_email", "customer", "locale", "payment_method_types", "submit_type",
    "allow_promotion_codes", "billing_address_collection", "phone_number_collection", "ui_mode", "currency",
    "custom_text", "expand",
}
_SESSION_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@cache
def fixtures() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURES_PATH.read_text())
    return data


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back to nested values: a[b][0][c]=v -> {"a": {"b": [{"c": "v"}]}}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        if not match:
            raise StripeParamError(key, f"Invalid parameter name: {key}")
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: Any = root
        for here in path[:-1]:
            child = node.get(here) if isinstance(node, dict) else None
            if child is None:
                child = {}
                node[here] = child
            node = child
        node[path[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    # Maps whose keys are all 0..n-1 are arrays (Stripe's line_items[0], expand[0]).
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node) and sorted(map(int, node)) == list(range(len(node))):
            return [node[str(i)] for i in range(len(node))]
    return node


class StripeParamError(Exception):
    def __init__(self, param: str | None, message: str, *, code: str = "parameter_invalid",
                 status: int = 400, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.code = code
        self.status = status
        self.kind = kind


@dataclass
class Call:
    kind: str
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeAccount:
    """One Stripe account: its id, the signing secret and URL of its webhook endpoint."""

    id: str
    webhook_secret: str
    webhook_url: str | None = None


@dataclass
class _Failure:
    kind: str
    status: int
    times: int


class FakeStripe:
    def __init__(self, *, secret_keys: tuple[str, ...] = ("sk_test_paylinks_fake",),
                 webhook_secret: str = "whsec_test_paylinks", clock: Callable[[], float] = time.time,
                 restricted_keys: tuple[str, ...] = ()) -> None:
        self.secret_keys = set(secret_keys) | set(restricted_keys)
        self.restricted_keys = set(restricted_keys)
        self.webhook_secret = webhook_secret
        self.clock = clock
        self.webhook_url: str | None = None
        self.calls: list[Call] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.refund_outcome = "succeeded"  # what a pending refund becomes: "succeeded" | "failed"
        self._tasks: set[asyncio.Task[None]] = set()
        self.events_sent: list[tuple[int, dict[str, Any]]] = []
        self._idempotency: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = {}
        self._failures: list[_Failure] = []
        self._stalls: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._account_id = "acct_fake" + secrets.token_hex(4)
        self.accounts: dict[str, FakeAccount] = {}  # secret key -> the other accounts (add_account)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_account(self, secret_key: str, *, webhook_secret: str, webhook_url: str | None = None) -> FakeAccount:
        account = FakeAccount("acct_fake" + secrets.token_hex(4), webhook_secret, webhook_url)
        self.accounts[secret_key] = account
        self.secret_keys.add(secret_key)
        return account

    def _endpoint(self, key: str) -> tuple[str, str | None]:
        """(webhook secret, webhook URL) of the account this key belongs to."""
        account = self.accounts.get(key)
        if account is None:
            return self.webhook_secret, self.webhook_url
        return account.webhook_secret, account.webhook_url

    async def start(self) -> FakeStripe:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._session_create)
        app.router.add_get("/v1/checkout/sessions/{id}", self._session_retrieve)
        app.router.add_post("/v1/checkout/sessions/{id}/expire", self._session_expire)
        app.router.add_get("/v1/account", self._account)
        app.router.add_get("/v1/balance", self._balance)
        app.router.add_post("/v1/refunds", self._refund_create)
        app.router.add_get("/pay/{id}", self._pay_page)
        app.router.add_post("/pay/{id}", self._pay)
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

    def fail(self, kind: str, *, status: int = 500, times: int = 1) -> None:
        self._failures.append(_Failure(kind, status, times))

    def stall(self, kind: str, seconds: float) -> None:
        self._stalls[kind] = seconds

    def calls_of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]

    # ------------------------------------------------------------ plumbing

    @staticmethod
    def _request_id() -> str:
        return "req_" + secrets.token_hex(7)

    def _error(self, exc: StripeParamError) -> web.Response:
        error: dict[str, Any] = {"type": exc.kind, "message": exc.message}
        if exc.code:
            error["code"] = exc.code
        if exc.param:
            error["param"] = exc.param
        return web.json_response({"error": error}, status=exc.status, headers={"Request-Id": self._request_id()})

    async def _handle(self, request: web.Request, kind: str,
                      handler: Callable[[dict[str, Any], str], dict[str, Any]]) -> web.Response:
        body = await request.text()
        try:
            params = parse_form(_form_pairs(body)) if body else {}
            if request.method == "GET":
                params = {**params, **parse_form(list(request.query.items()))}
        except StripeParamError as exc:
            return self._error(exc)
        self.calls.append(Call(kind, request.method, request.path, params, dict(request.headers)))
        if kind in self._stalls:
            await asyncio.sleep(self._stalls[kind])
        for failure in self._failures:
            if failure.kind == kind and failure.times > 0:
                failure.times -= 1
                if failure.status == 429:
                    return self._error(StripeParamError(None, "Too many requests. Try again later.",
                                                        code="rate_limit", status=429))
                return self._error(StripeParamError(None, "An unknown error occurred", code="", status=failure.status,
                                                    kind="api_error"))
        key = _bearer(request.headers.get("Authorization", ""))
        if not key:
            return self._error(StripeParamError(None, "You did not provide an API key. You need to provide your API "
                                                "key in the Authorization header, using Bearer auth.", code="",
                                                status=401))
        if key not in self.secret_keys:
            masked = key[:8] + "*" * max(len(key) - 12, 4) + key[-4:]
            return self._error(StripeParamError(None, f"Invalid API Key provided: {masked}", code="api_key_invalid",
                                                status=401))
        idem = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        fingerprint = json.dumps([request.method, request.path, params], sort_keys=True)
        if idem:
            seen = self._idempotency.get((key, idem))
            if seen is not None:
                if seen[0] != fingerprint:
                    return self._error(StripeParamError(
                        None, "Keys for idempotent requests can only be used with the same parameters they were "
                        f"first used with. Try using a key other than '{idem}' if you meant to execute a different "
                        "request.", code="", kind="idempotency_error"))
                return web.json_response(seen[2], status=seen[1], headers={
                    "Request-Id": self._request_id(), "Idempotent-Replayed": "true", "Idempotency-Key": idem})
        if "id" in request.match_info:
            params = {**params, "__id": request.match_info["id"]}
        try:
            status, answer = 200, handler(params, key)
        except StripeParamError as exc:
            status, answer = exc.status, {"error": {k: v for k, v in {
                "type": exc.kind, "code": exc.code, "message": exc.message, "param": exc.param}.items() if v}}
        # Stripe saves the result once the endpoint ran; a request refused by validation is not saved.
        if idem and status < 400:
            self._idempotency[(key, idem)] = (fingerprint, status, answer)
        return web.json_response(answer, status=status, headers={"Request-Id": self._request_id()})

    # ------------------------------------------------------------ checkout sessions

    async def _session_create(self, request: web.Request) -> web.Response:
        return await self._handle(request, "sessions.create", self._create_session)

    async def _session_retrieve(self, request: web.Request) -> web.Response:
        return await self._handle(request, "sessions.retrieve", lambda p, k: self._session(p["__id"], k))

    async def _session_expire(self, request: web.Request) -> web.Response:
        return await self._handle(request, "sessions.expire", self._expire)

    def _create_session(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        for name in params:
            if name not in _SESSION_PARAMS:
                raise StripeParamError(name, f"Received unknown parameter: {name}")
        mode = params.get("mode")
        if mode is None:
            raise StripeParamError("mode", "Missing required param: mode.", code="parameter_missing")
        if mode not in ("payment", "setup", "subscription"):
            raise StripeParamError("mode", "Invalid mode: must be one of payment, setup, or subscription")
        if "success_url" not in params and params.get("ui_mode") != "embedded":
            raise StripeParamError("success_url", "Missing required param: success_url.", code="parameter_missing")
        items = params.get("line_items")
        if mode == "payment" and not items:
            raise StripeParamError("line_items", "Missing required param: line_items.", code="parameter_missing")
        if not isinstance(items, list):
            raise StripeParamError("line_items", "Invalid array")
        total, currency = 0, None
        for i, item in enumerate(items):
            total_i, currency_i = _line_item(item, i)
            if currency is not None and currency_i != currency:
                raise StripeParamError(f"line_items[{i}][price_data][currency]", "All line items must use the same "
                                       "currency.")
            currency = currency_i
            total += total_i
        now = int(self.clock())
        expires_at = now + 86400
        if "expires_at" in params:
            expires_at = _int(params["expires_at"], "expires_at")
            if not now + 1800 <= expires_at <= now + 86400:
                raise StripeParamError("expires_at", "The `expires_at` timestamp must be at least 30 minutes and "
                                       "at most 24 hours from Checkout Session creation.")
        _metadata(params.get("metadata"), "metadata")
        pi_data = params.get("payment_intent_data") or {}
        if not isinstance(pi_data, dict):
            raise StripeParamError("payment_intent_data", "Invalid object")
        _metadata(pi_data.get("metadata"), "payment_intent_data[metadata]")
        ref = params.get("client_reference_id")
        if ref is not None and not 1 <= len(ref) <= 200:
            raise StripeParamError("client_reference_id", "client_reference_id must be 1 to 200 characters")
        session_id = "cs_test_" + "".join(secrets.choice(_SESSION_ID_CHARS) for _ in range(58))
        session = copy.deepcopy(fixtures()["checkout.session"])
        session.update({
            "id": session_id, "object": "checkout.session", "amount_subtotal": total, "amount_total": total,
            "currency": currency, "mode": mode, "status": "open", "payment_status": "unpaid",
            "client_reference_id": ref, "metadata": params.get("metadata") or {}, "created": now,
            "expires_at": expires_at, "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"), "customer_email": params.get("customer_email"),
            "customer_details": None, "payment_intent": None, "livemode": key.startswith("sk_live_"),
            "url": f"{self.url}/pay/{session_id}",
        })
        session["_paylinks_fake"] = {"key": key, "line_items": items, "pi_metadata": pi_data.get("metadata") or {}}
        self.sessions[session_id] = session
        return _public(session)

    def _session(self, session_id: str, key: str) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None or session["_paylinks_fake"]["key"] != key:
            raise StripeParamError("id", f"No such checkout.session: '{session_id}'", code="resource_missing",
                                   status=404)
        return _public(session)

    def _expire(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        self._session(params["__id"], key)
        session = self.sessions[params["__id"]]
        if session["status"] != "open":
            raise StripeParamError(None, "Only Checkout Sessions with a status in [\"open\"] can be expired.",
                                   code="")
        session["status"] = "expired"
        self._schedule_event("checkout.session.expired", session)
        return _public(session)

    # ------------------------------------------------------------ account, balance, refunds

    async def _account(self, request: web.Request) -> web.Response:
        return await self._handle(request, "account", self._retrieve_account)

    def _retrieve_account(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        if key in self.restricted_keys:
            raise StripeParamError(None, "The provided key does not have the required permissions for this "
                                   "endpoint on account.", code="", status=403)
        account = self.accounts.get(key)
        return {
            "id": account.id if account else self._account_id, "object": "account", "charges_enabled": True,
            "country": "SG", "default_currency": "sgd", "details_submitted": True, "payouts_enabled": True,
            "type": "standard", "email": "seller@example.com"}

    async def _balance(self, request: web.Request) -> web.Response:
        return await self._handle(request, "balance", lambda p, k: {
            "object": "balance", "available": [{"amount": 0, "currency": "sgd", "source_types": {"card": 0}}],
            "livemode": k.startswith("sk_live_"),
            "pending": [{"amount": 0, "currency": "sgd", "source_types": {"card": 0}}]})

    async def _refund_create(self, request: web.Request) -> web.Response:
        return await self._handle(request, "refunds.create", self._create_refund)

    def _create_refund(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        intent = params.get("payment_intent")
        if not intent and not params.get("charge"):
            raise StripeParamError(None, "One of the following params should be provided for this request: "
                                   "payment_intent or charge.", code="parameter_missing")
        session = next((s for s in self.sessions.values() if s.get("payment_intent") == intent
                        and s["_paylinks_fake"]["key"] == key), None)
        if session is None:
            raise StripeParamError("payment_intent", f"No such payment_intent: '{intent}'", code="resource_missing",
                                   status=404)
        already = sum(r["amount"] for r in self.refunds.values()
                      if r["payment_intent"] == intent and r["status"] != "failed")
        amount = _int(params["amount"], "amount") if "amount" in params else session["amount_total"] - already
        if amount <= 0 or amount + already > session["amount_total"]:
            raise StripeParamError("amount", f"Refund amount ({amount}) is greater than unrefunded amount on charge",
                                   code="amount_too_large")
        _metadata(params.get("metadata"), "metadata")
        refund = copy.deepcopy(fixtures()["refund"])
        refund.update({"id": "re_" + secrets.token_hex(12), "amount": amount, "currency": session["currency"],
                       "payment_intent": intent, "charge": session["_paylinks_fake"].setdefault(
                           "charge", "ch_" + secrets.token_hex(12)),
                       "created": int(self.clock()), "metadata": params.get("metadata") or {}, "status": "pending"})
        self.refunds[refund["id"]] = refund
        answer = copy.deepcopy(refund)
        self._later(self._settle_refund(refund["id"], session))
        return answer

    async def _settle_refund(self, refund_id: str, session: dict[str, Any]) -> None:
        refund = self.refunds[refund_id]
        refund["status"] = self.refund_outcome
        if self.refund_outcome == "failed":
            refund["failure_reason"] = "expired_or_canceled_card"
        key = session["_paylinks_fake"]["key"]
        await self.send_object_event("refund.updated", refund, livemode=session["livemode"], key=key)
        if refund["status"] == "succeeded":
            await self.send_object_event("charge.refunded", self.charge(session), livemode=session["livemode"], key=key)

    def charge(self, session: dict[str, Any]) -> dict[str, Any]:
        """The session's charge, with its refunds newest first (as Stripe lists them)."""
        intent = session["payment_intent"]
        refunds = sorted((r for r in self.refunds.values() if r["payment_intent"] == intent),
                         key=lambda r: r["created"], reverse=True)
        refunded = sum(r["amount"] for r in refunds if r["status"] == "succeeded")
        charge = copy.deepcopy(fixtures()["charge"])
        charge.update({"id": session["_paylinks_fake"].setdefault("charge", "ch_" + secrets.token_hex(12)),
                       "amount": session["amount_total"], "amount_captured": session["amount_total"],
                       "amount_refunded": refunded, "refunded": refunded >= session["amount_total"],
                       "currency": session["currency"], "payment_intent": intent, "livemode": session["livemode"],
                       "refunds": {"object": "list", "data": [copy.deepcopy(r) for r in refunds], "has_more": False,
                                   "url": f"/v1/charges/{session['_paylinks_fake']['charge']}/refunds"}})
        return charge

    async def dispute(self, session_id: str, *, reason: str = "fraudulent") -> None:
        """The customer disputed the payment with their bank: `charge.dispute.created`."""
        session = self.sessions[session_id]
        charge = self.charge(session)
        dispute = {"id": "dp_" + secrets.token_hex(12), "object": "dispute", "amount": session["amount_total"],
                   "currency": session["currency"], "charge": charge["id"],
                   "payment_intent": session["payment_intent"], "reason": reason, "status": "needs_response",
                   "created": int(self.clock()), "livemode": session["livemode"], "metadata": {},
                   "evidence_details": {"due_by": int(self.clock()) + 7 * 86400, "has_evidence": False,
                                        "past_due": False, "submission_count": 0}}
        await self.send_object_event("charge.dispute.created", dispute, livemode=session["livemode"],
                                     key=session["_paylinks_fake"]["key"])

    def _later(self, work: Any) -> None:
        # Stripe sends the event after answering the API call.
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every event scheduled so far was delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------ hosted page and webhooks

    async def _pay_page(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None or session["status"] != "open":
            return web.Response(status=404, text="This checkout session is no longer available.")
        item = session["_paylinks_fake"]["line_items"][0]
        name = html.escape(item.get("price_data", {}).get("product_data", {}).get("name", ""))
        page = (f"<!doctype html><title>Stripe Checkout (fake)</title><h1>{name}</h1>"
                f"<p>{session['amount_total']} {session['currency']}</p>"
                f'<form method="post"><button>Pay</button></form>')
        return web.Response(text=page, content_type="text/html")

    async def _pay(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None or session["status"] != "open":
            return web.Response(status=404, text="This checkout session is no longer available.")
        await self.complete_session(session["id"])
        target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
        raise web.HTTPSeeOther(target)

    async def complete_session(self, session_id: str, *, paid: bool = True, payer_name: str = "Jenny Rosen") -> None:
        """The customer finished checkout: paid now, or (paid=False) a delayed method still processing."""
        session = self.sessions[session_id]
        session.update({"status": "complete", "payment_status": "paid" if paid else "unpaid",
                        "payment_intent": "pi_" + secrets.token_hex(12),
                        "customer_details": {**(fixtures()["checkout.session"].get("customer_details") or {}),
                                             "name": payer_name, "email": "jenny.rosen@example.com"}})
        await self.send_event("checkout.session.completed", session)

    async def settle_async(self, session_id: str, *, succeeded: bool) -> None:
        session = self.sessions[session_id]
        session["payment_status"] = "paid" if succeeded else "unpaid"
        kind = "succeeded" if succeeded else "failed"
        await self.send_event(f"checkout.session.async_payment_{kind}", session)

    async def expire_session(self, session_id: str) -> None:
        session = self.sessions[session_id]
        session["status"] = "expired"
        await self.send_event("checkout.session.expired", session)

    def event(self, event_type: str, session: dict[str, Any]) -> dict[str, Any]:
        return self.object_event(event_type, _public(session), livemode=session["livemode"])

    def object_event(self, event_type: str, obj: dict[str, Any], *, livemode: bool) -> dict[str, Any]:
        event = copy.deepcopy(fixtures()["event"])
        event.update({"id": "evt_" + secrets.token_hex(12), "type": event_type, "created": int(self.clock()),
                      "api_version": stripe.api_version, "livemode": livemode,
                      "data": {"object": copy.deepcopy(obj)}, "pending_webhooks": 1})
        return event

    def signed(self, event: dict[str, Any], *, timestamp: int | None = None,
               secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        """Signed as Stripe signs it: with `secret`, else the secret of the account the event's session is in."""
        if secret is None:
            session = self.sessions.get(str(event.get("data", {}).get("object", {}).get("id")))
            secret = self._endpoint(session["_paylinks_fake"]["key"])[0] if session else self.webhook_secret
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(
            payload, secret, timestamp=int(self.clock()) if timestamp is None else timestamp)
        return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json; charset=utf-8"}

    async def send_event(self, event_type: str, session: dict[str, Any]) -> None:
        await self._deliver(self.event(event_type, session), session["_paylinks_fake"]["key"])

    async def send_object_event(self, event_type: str, obj: dict[str, Any], *, livemode: bool, key: str) -> None:
        """An event about another object (a refund, a charge, a dispute) of the account `key` belongs to."""
        await self._deliver(self.object_event(event_type, obj, livemode=livemode), key)

    async def _deliver(self, event: dict[str, Any], key: str) -> None:
        secret, webhook_url = self._endpoint(key)
        if not webhook_url:
            self.events_sent.append((0, event))
            return
        body, headers = self.signed(event, secret=secret)
        async with aiohttp.ClientSession() as client, client.post(webhook_url, data=body,
                                                                  headers=headers) as response:
            self.events_sent.append((response.status, event))

    def _schedule_event(self, event_type: str, session: dict[str, Any]) -> None:
        self._later(self.send_event(event_type, session))


def _form_pairs(body: str) -> list[tuple[str, str]]:
    return parse_qsl(body, keep_blank_values=True, strict_parsing=False)


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme == "Bearer" and token.strip() else None


def _int(value: Any, param: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise StripeParamError(param, f"Invalid integer: {value}")


def _metadata(value: Any, param: str) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, dict):
        raise StripeParamError(param, "Invalid object")
    if len(value) > 50:
        raise StripeParamError(param, "You can specify up to 50 keys.")
    for k, v in value.items():
        if len(k) > 40:
            raise StripeParamError(f"{param}[{k}]", "Metadata keys can be at most 40 characters long.")
        if not isinstance(v, str) or len(v) > 500:
            raise StripeParamError(f"{param}[{k}]", "Metadata values can be at most 500 characters long.")


def _line_item(item: Any, i: int) -> tuple[int, str]:
    where = f"line_items[{i}]"
    if not isinstance(item, dict):
        raise StripeParamError(where, "Invalid object")
    quantity = _int(item.get("quantity", ""), f"{where}[quantity]") if "quantity" in item else None
    if quantity is None:
        raise StripeParamError(f"{where}[quantity]", "Missing required param: line_items[0][quantity].",
                               code="parameter_missing")
    if quantity < 1:
        raise StripeParamError(f"{where}[quantity]", "This value must be greater than or equal to 1.")
    price = item.get("price_data")
    if not isinstance(price, dict):
        raise StripeParamError(f"{where}[price_data]", "You must specify either `price` or `price_data`.",
                               code="parameter_missing")
    currency = price.get("currency")
    if not currency:
        raise StripeParamError(f"{where}[price_data][currency]", "Missing required param: currency.",
                               code="parameter_missing")
    if currency != currency.lower() or currency.upper() not in SUPPORTED:
        raise StripeParamError(f"{where}[price_data][currency]", f"Invalid currency: {currency}.")
    if "unit_amount" not in price:
        raise StripeParamError(f"{where}[price_data][unit_amount]", "Missing required param: unit_amount.",
                               code="parameter_missing")
    unit = _int(price["unit_amount"], f"{where}[price_data][unit_amount]")
    if unit < 0:
        raise StripeParamError(f"{where}[price_data][unit_amount]", "This value must be greater than or equal to 0.")
    product = price.get("product_data")
    if not isinstance(product, dict) or not product.get("name"):
        raise StripeParamError(f"{where}[price_data][product_data][name]", "Missing required param: name.",
                               code="parameter_missing")
    return unit * quantity, currency


def _public(session: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in session.items() if not k.startswith("_")}
