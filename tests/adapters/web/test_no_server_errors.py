"""Issue 11.3, the web half: inputs that once reached a 500 get a 4xx with the JSON error shape instead,
and nothing is logged as a traceback. Runs on SQLite and PostgreSQL (NUL cannot even be sent to PostgreSQL).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from adapters.payments import signing
from adapters.payments.sandbox import SIGNATURE_HEADER
from tests.adapters.web.api_support import Shop, make_shop
from tests.adapters.web.pages_support import WEBHOOK_SECRET, make_link, signed, webhook_body
from tests.conftest import LiveApp


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live)


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert tracebacks == [], tracebacks


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("t=²,v1=00", "superscript digit in the timestamp"),
        ("t={now},v1=é", "non-ASCII signature"),
        ("t=١٢٣,v1=00", "Arabic-Indic digits"),
        ("t=99999999999999999999999,v1=00", "timestamp beyond any clock"),
    ],
)
async def test_odd_signature_headers_are_refused_with_a_400(live: LiveApp, header: str, why: str) -> None:
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    headers = {SIGNATURE_HEADER: header.format(now=int(time.time())), "Content-Type": "application/json"}
    resp = await live.client.post("/webhooks/sandbox", data=body, headers=headers)
    assert resp.status == 400, (why, await resp.text())
    assert (await resp.json())["error"]["code"] == "invalid_webhook"


async def test_deeply_nested_json_in_a_signed_webhook_is_a_400(live: LiveApp) -> None:
    body = b'{"id": "evt_1", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = await live.client.post("/webhooks/sandbox", data=body, headers=signed(body))
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "invalid_webhook"


def test_signing_verify_refuses_non_ascii_without_raising_anything_else() -> None:
    now = time.time()
    good = signing.sign_header(WEBHOOK_SECRET, int(now), b"{}")
    signing.verify(WEBHOOK_SECRET, good, b"{}", now=now)  # the real one still passes
    for header in ("t=²,v1=00", f"t={int(now)},v1=é", f"t={int(now)},v1=" + "é" * 64):
        with pytest.raises(signing.WebhookError):
            signing.verify(WEBHOOK_SECRET, header, b"{}", now=now)


@pytest.mark.parametrize("token", ["é", "abc.é", "ä" * 40 + ".00", "a\u0000b.cd"])
async def test_a_checkout_token_with_non_ascii_is_not_found(live: LiveApp, token: str) -> None:
    for method in ("GET", "POST"):
        resp = await live.client.request(method, f"/sandbox/checkout/{token}", data={"card_number": "4242"})
        assert 400 <= resp.status < 500, (method, token, resp.status)


@pytest.mark.parametrize("limit", ["²", "١", "0x10", "1e2", " 5", "5" * 30, "-1"])
async def test_odd_limits_are_a_400_naming_limit(shop: Shop, limit: str) -> None:
    resp = await shop.api.get("/api/v1/links", params={"limit": limit})
    assert resp.status == 400, resp.text
    assert resp.error["field"] == "limit" and resp.error["code"] == "invalid_limit"


async def test_empty_status_means_no_filter_and_odd_ones_are_a_400(shop: Shop) -> None:
    created = await shop.api.create({"amount": "1.00", "description": "cake"})
    everything = await shop.api.get("/api/v1/links", params={"status": ""})
    assert [link["id"] for link in everything.body["data"]] == [created.body["id"]]
    for status in ("ACTIVE", "\u0000", "paid "):
        resp = await shop.api.get("/api/v1/links", params={"status": status})
        assert resp.status == 400 and resp.error["field"] == "status", resp.text


@pytest.mark.parametrize(
    ("path", "field", "status"),
    [
        ("/api/v1/links/a%00b", "id", 404),
        ("/api/v1/links/a%00b/cancel", "id", 404),
        ("/api/v1/links/%C2%B2", "id", 404),
        ("/api/v1/links?cursor=%00", "cursor", 400),
        ("/api/v1/links?cursor=abc%00def", "cursor", 400),
        ("/api/v1/links?status=%00", "status", 400),
    ],
)
async def test_nul_and_odd_characters_in_path_or_query_never_reach_the_database(
    shop: Shop, path: str, field: str, status: int
) -> None:
    method = "POST" if path.endswith("/cancel") else "GET"
    resp = await shop.api.request(method, path)
    assert resp.status == status, resp.text
    assert resp.error["field"] == field


# "a\ud800": valid JSON syntax, but no UTF-8 text can hold it (PostgreSQL refuses it; SQLite stores garbage).
SURROGATE = "a\\ud800"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f'{{"amount": "1.00", "description": "{SURROGATE}"}}', "description"),
        (f'{{"amount": "1.00", "description": "x", "reference": "{SURROGATE}"}}', "reference"),
        (f'{{"amount": "1.00", "description": "x", "customer": {{"name": "{SURROGATE}"}}}}', "customer.name"),
        (f'{{"amount": "1.00", "description": "x", "customer": {{"email": "{SURROGATE}@x.com"}}}}',
         "customer.email"),
        (f'{{"amount": "1.00", "description": "x", "customer": {{"phone": "{SURROGATE}"}}}}', "customer.phone"),
        (f'{{"amount": "1.00", "description": "x", "metadata": {{"{SURROGATE}": "v"}}}}', "metadata"),
        (f'{{"amount": "1.00", "description": "x", "metadata": {{"k": "{SURROGATE}"}}}}', "metadata"),
        (f'{{"amount": "{SURROGATE}", "description": "x"}}', "amount"),
        (f'{{"amount": "1.00", "currency": "{SURROGATE}", "description": "x"}}', "currency"),
        (f'{{"amount": "1.00", "description": "x", "expires_at": "{SURROGATE}"}}', "expires_at"),
        (f'{{"amount": "1.00", "description": "x", "{SURROGATE}": 1}}', "body"),
    ],
)
async def test_lone_surrogates_are_a_400_naming_the_field(shop: Shop, body: str, field: str) -> None:
    resp = await shop.api.request("POST", "/api/v1/links", data=body.encode(),
                                  headers={"Content-Type": "application/json"})
    assert resp.status == 400, resp.text
    got = resp.error["field"]
    assert got == field or (field == "body" and got.startswith("a")), resp.text
    listed = await shop.api.get("/api/v1/links")
    assert listed.body["data"] == []


async def test_lone_surrogate_in_a_webhook_field_is_a_4xx(live: LiveApp) -> None:
    link = await make_link(live.services)
    body = webhook_body(link, 1).replace(b'"Ann Tan"', b'"Ann\\ud800"')
    assert json.loads(body)["data"]["payer_name"] == "Ann\ud800"
    resp = await live.client.post("/webhooks/sandbox", data=body, headers=signed(body))
    assert 400 <= resp.status < 500, await resp.text()
