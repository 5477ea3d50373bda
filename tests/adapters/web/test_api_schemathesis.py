"""schemathesis against GET /api/v1/openapi.json of the real app, on SQLite and PostgreSQL (issue 11.3).

Every operation is fuzzed with schema-valid and schema-invalid data and all of schemathesis' checks (no
5xx, status codes, content types, headers and bodies as documented, valid data accepted, invalid data
refused...), then the stateful test follows the document's OpenAPI links create → get → cancel.

aiohttp is not ASGI, so the app runs for real on 127.0.0.1 in a thread of its own and schemathesis calls
it over HTTP. JSON Schema cannot say "in the future", "no more decimals than the currency has", "within
links.max_amount" or "a possible phone number"; `_keep_positive_cases_within_business_rules` brings the
schema-valid cases inside those rules (the invalid ones stay as generated), so positive_data_acceptance
tests everything the schema can state.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from sqlalchemy import delete

from bots.app import SERVICES, create_app
from bots.config import Secret
from core import limits
from core.durations import parse_duration
from core.models import metadata
from core.money import Money, MoneyError
from core.secretbox import new_key
from core.webhooks import WebhookError, check_url
from tests.conftest import make_settings

MAX_EXAMPLES = 40
KEPT_TABLES = {"merchant", "api_key", "alembic_version"}


class ThreadedApp:
    """create_app(settings) served on 127.0.0.1 by an event loop in its own thread."""

    def __init__(self, database_url: str) -> None:
        # Fuzzing sends many requests, bad keys among them, from one address: the limits have tests of their own.
        self.settings = make_settings(database_url, limits__api_per_key="1000000/s",
                                      limits__bad_auth_per_ip="1000000/s", limits__public_per_ip="1000000/s",
                                      webhooks__secret_key=Secret(new_key()))  # PostgreSQL needs one
        self.base_url = self.settings.server.public_base_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="schemathesis-app", daemon=True)
        self.runner: web.AppRunner | None = None

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        app = create_app(self.settings, migrate=False)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.settings.server.port).start()
        self.app = app

    def api_key(self) -> str:
        async def make() -> str:
            services = self.app[SERVICES]
            merchant = await services.merchants.create("Fuzz Cakes", currency="SGD", locale="en_SG")
            _, secret = await services.merchants.create_api_key(merchant.id, test=True)
            return secret

        return str(self.run(make()))

    def forget_links(self) -> None:
        """Every link and what hangs off it gone (the shop and its key stay): each stateful run starts from
        the same state, so hypothesis sees the same answers when it replays a run."""
        async def wipe() -> None:
            async with self.app[SERVICES].db.write() as conn:
                for t in reversed(metadata.sorted_tables):
                    if t.name not in KEPT_TABLES:
                        await conn.execute(delete(t))

        self.run(wipe())

    def stop(self) -> None:
        if self.runner is not None:
            self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def served(database_url: str) -> Iterator[tuple[ThreadedApp, str]]:
    app = ThreadedApp(database_url)
    app.start()
    try:
        yield app, app.api_key()
    finally:
        app.stop()


def _fits(amount: str, currency: str) -> bool:
    try:
        money = Money.parse(amount, currency)
    except MoneyError:
        return False
    return 0 < money.amount_minor and money.decimal() <= limits.DEFAULT_MAX_AMOUNT


def _keep_positive_cases_within_business_rules(ctx: Any, case: Any) -> Any:
    meta = case.meta
    body = case.body
    if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
        return case
    if "events" in body and "url" in body:  # a webhook endpoint: a URL the SSRF rules allow
        try:
            check_url(body["url"], allow_private=False, livemode=False)
        except WebhookError:
            body["url"] = "https://shop.example/hooks"
    if str(case.operation.path).endswith("/refund"):
        # payment_id must name a payment of that link, and the amount fit its currency: no schema can say.
        body.pop("payment_id", None)
        if "amount" in body:
            body["amount"] = "1"
        return case
    if str(case.operation.path).endswith("/promo_codes"):
        _promo_within_business_rules(body)
        return case
    _sales_within_business_rules(body)
    items = body.get("line_items")
    if isinstance(items, list):
        # The items' total must fit links.max_amount and be above zero, tax at most 100 %, the discount at
        # most the subtotal: inside those rules, keep the generated names (text rules are the schema's).
        for item in items:
            if isinstance(item, dict):
                item.update(unit_amount="1", quantity=1)
                if "tax_rate" in item:
                    item["tax_rate"] = "9"
    body.pop("discount", None)
    schedule = body.get("schedule")
    if isinstance(schedule, dict):
        # A series starts within a year, never in the past, and ends after it starts; its links have no
        # fixed expiry (expires_in only).
        if "start_at" in schedule:
            schedule["start_at"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        if "until" in schedule:
            schedule["until"] = "2099-12-31"
        body.pop("expires_at", None)
    currency = str(body.get("currency") or "SGD").upper()
    if "amount" in body and not _fits(body["amount"], currency):
        body["amount"] = "1"
    if "amount_minor" in body:
        body["amount_minor"] = min(body["amount_minor"], limits.max_amount_minor(limits.DEFAULT_MAX_AMOUNT, currency))
    if "expires_at" in body:
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    if "expires_in" in body:
        delta = parse_duration(body["expires_in"])
        if not timedelta(0) < delta <= limits.MAX_EXPIRY:
            body["expires_in"] = "1d"
    customer = body.get("customer")
    if isinstance(customer, dict):
        if customer.get("email"):
            try:
                limits.normalise_email(customer["email"])
            except ValueError:
                customer["email"] = "ana@example.com"
        if customer.get("phone"):
            try:
                possible = phonenumbers.is_possible_number(phonenumbers.parse(customer["phone"], None))
            except phonenumbers.NumberParseException:
                possible = False
            if not possible:
                customer["phone"] = "+6591234567"
    return case


_SALES_LIMITS = ("max_payments", "stock", "max_total")
_CHOSEN = ("min_amount", "max_amount", "suggested_amounts")


def _sales_within_business_rules(body: dict[str, Any]) -> None:
    """Reusable-link fields that fit together (core/reusable.py's rules, which no schema can say)."""
    currency = str(body.get("currency") or "SGD").upper()
    if body.get("reusable") is False:
        for name in (*_SALES_LIMITS, *_CHOSEN, "quantity", "split", "amount_mode"):
            body.pop(name, None)
        return
    if "max_total" in body and not _fits(body["max_total"], currency):
        body["max_total"] = "1"
    if body.get("amount_mode") == "customer_chooses":
        for name in ("quantity", "split", "amount", "amount_minor", "line_items", "discount"):
            body.pop(name, None)
        if not _fits(body.get("min_amount", ""), currency):
            body["min_amount"] = "1"
        low = Money.parse(body["min_amount"], currency)
        if "max_amount" in body and (not _fits(body["max_amount"], currency)
                                     or Money.parse(body["max_amount"], currency).amount_minor < low.amount_minor):
            body["max_amount"] = body["min_amount"]
        if "suggested_amounts" in body:
            body["suggested_amounts"] = [body["min_amount"]] * len(body["suggested_amounts"])
        if "max_total" in body and Money.parse(body["max_total"], currency).amount_minor < low.amount_minor:
            body["max_total"] = body["min_amount"]
        return
    for name in _CHOSEN:
        body.pop(name, None)
    quantity = body.get("quantity")
    if isinstance(quantity, dict) and quantity.get("adjustable"):
        low = quantity.get("min", 1)
        if quantity.get("max", low) < low:
            quantity["max"] = low
        if "stock" in body and body["stock"] < low:
            body["stock"] = low
    if "split" in body:
        for name in _SALES_LIMITS:
            body.pop(name, None)
        body.pop("amount_minor", None)
        body["amount"] = "100"


def _promo_within_business_rules(body: dict[str, Any]) -> None:
    # A fresh code each time (a repeat is a 409), links of this shop only, amounts that fit.
    body["code"] = f"{str(body.get('code', 'X'))[:30]}{next(_PROMO_SERIAL):06d}"
    body.pop("link_ids", None)
    if "percent_off" in body and not 0 < float(body["percent_off"]) <= 100:
        body["percent_off"] = "10"
    if "amount_off" in body and not _fits(body["amount_off"], str(body.get("currency") or "SGD").upper()):
        body["amount_off"] = "1"
    if "expires_at" in body:
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()


_PROMO_SERIAL = itertools.count()


def _keep_positive_queries_within_business_rules(ctx: Any, case: Any) -> Any:
    # A cursor must name a link of yours, which no schema can say; the stateful test pages for real.
    if case.meta is not None and case.meta.generation.mode.is_positive and isinstance(case.query, dict):
        case.query.pop("cursor", None)
    return case


def _schema(served: tuple[ThreadedApp, str]) -> Any:
    app, key = served
    schema = schemathesis.openapi.from_url(f"{app.base_url}/api/v1/openapi.json")
    schema.config.update(base_url=app.base_url, headers={"Authorization": f"Bearer {key}"})
    # The real key comes from the headers above; generated Bearer tokens would only ever be refused.
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, with_security_parameters=False)

    @schema.hook("map_case")
    def within_business_rules(ctx: Any, case: Any) -> Any:
        case = _keep_positive_cases_within_business_rules(ctx, case)
        return _keep_positive_queries_within_business_rules(ctx, case)

    return schema


_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_against_the_document(served: tuple[ThreadedApp, str], mode: GenerationMode) -> None:
    # schemathesis' own pytest plug-in (schema.parametrize) does not run on pytest 9 yet, so each
    # operation's strategy is driven by hypothesis here, the way its docs show for custom runners.
    schema = _schema(served)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /api/v1/links", "GET /api/v1/links",
                                               "GET /api/v1/links/{id}", "POST /api/v1/links/{id}/cancel"}
    session = requests.Session()
    auth = {"Authorization": f"Bearer {served[1]}"}
    statuses: list[int] = []
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.label in ("GET /api/v1/webhook_endpoints",
                                                                   "GET /api/v1/series",
                                                                   "GET /api/v1/promo_codes"):
            continue  # no parameter and no body: nothing a request could get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @_SETTINGS
        def check(case: Any) -> None:
            case = _keep_positive_cases_within_business_rules(None, case)
            case = _keep_positive_queries_within_business_rules(None, case)
            statuses.append(case.call_and_validate(session=session, headers=auth).status_code)

        check()
    # The run really sent both kinds: accepted requests, and (negative mode) refusals.
    assert any(200 <= status < 300 for status in statuses)
    if mode is GenerationMode.NEGATIVE:
        assert sum(400 <= status < 500 for status in statuses) > len(statuses) // 2, statuses


def test_stateful_create_get_cancel(served: tuple[ThreadedApp, str]) -> None:
    # The links workflow only: with every operation in the state machine, its few derandomized steps went to
    # other operations whenever the document changed (each one is run on its own above).
    schema = _schema(served).include(operation_id=["createLink", "getLink", "cancelLink", "listLinkEvents"])
    auth = {"Authorization": f"Bearer {served[1]}"}

    seen: set[tuple[str, int]] = set()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            served[0].forget_links()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": auth}  # explicit, so ignored_auth probes without it

        def before_call(self, case: Any) -> None:
            # `notify` only decides who hears of a link (covered by the per-operation runs above); left in,
            # it made this machine's replays of a case meet a different server state and call it flaky.
            if isinstance(case.body, dict):
                case.body.pop("notify", None)
            super().before_call(case)

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            seen.add((case.operation.label, response.status_code))

    Workflow.run(settings=settings(max_examples=15, stateful_step_count=6, deadline=None, derandomize=True,
                                  database=None, suppress_health_check=list(HealthCheck)))
    # The links were followed: a created link was read and cancelled by its real id.
    assert {("POST /api/v1/links", 201), ("GET /api/v1/links/{id}", 200),
            ("POST /api/v1/links/{id}/cancel", 200)} <= seen, sorted(seen)
