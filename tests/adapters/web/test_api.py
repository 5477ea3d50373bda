"""POST /api/v1/links through the app factory on SQLite and PostgreSQL: creation, validation, auth, idempotency."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import update

from adapters.web import api
from adapters.web.api_keys import ApiKeys
from bots.config import Settings
from core.merchants import API_KEYS
from tests.adapters.web.api_support import ApiClient, Shop, make_shop, parse_time
from tests.conftest import LiveApp, make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    # These tests send 24 refused requests in a row from one address; the limits have tests of their own.
    return make_settings(database_url, limits__bad_auth_per_ip="1000/min")


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live)


# ---------------------------------------------------------------- creating


async def test_create_with_amount_string(live: LiveApp, shop: Shop) -> None:
    resp = await shop.api.create({"amount": "25.00", "description": "Chocolate cake"})
    assert resp.status == 201
    link = resp.body
    assert link["amount"] == "25.00" and link["amount_minor"] == 2500
    assert link["currency"] == "SGD"  # the merchant's default, not the server's USD
    assert link["status"] == "active"
    assert link["description"] == "Chocolate cake"
    assert link["url"] == f"{live.base_url}/p/{link['id']}"
    assert len(link["id"]) >= 26  # ≥128 bits of base32
    assert link["reference"] is None and link["paid_at"] is None and link["cancelled_at"] is None
    assert link["customer"] == {"name": None, "email": None, "phone": None}
    assert link["metadata"] == {}
    assert resp.headers["Location"] == f"/api/v1/links/{link['id']}"
    assert "Idempotent-Replayed" not in resp.headers
    created, expires = parse_time(link["created_at"]), parse_time(link["expires_at"])
    assert expires - created == timedelta(days=7)  # links.default_expiry
    stored = await live.services.links.get(link["id"])
    assert stored is not None and stored.merchant_id == shop.merchant_id and stored.amount_minor == 2500


async def test_create_with_amount_minor_and_currency_exponents(shop: Shop) -> None:
    jpy = await shop.api.create({"amount_minor": 1200, "currency": "jpy", "description": "Tea"})
    assert jpy.status == 201, jpy.text
    assert (jpy.body["amount"], jpy.body["amount_minor"], jpy.body["currency"]) == ("1200", 1200, "JPY")
    kwd = await shop.api.create({"amount": "1.5", "currency": "KWD", "description": "Dates"})
    assert (kwd.body["amount"], kwd.body["amount_minor"]) == ("1.500", 1500)
    idr = await shop.api.create({"amount": "150000", "currency": "IDR", "description": "Batik"})
    assert (idr.body["amount"], idr.body["amount_minor"]) == ("150000.00", 15000000)


async def test_create_with_every_optional_field(shop: Shop) -> None:
    soon = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    body = {
        "amount": "99.90",
        "currency": "USD",
        "description": "  Birthday cake  ",
        "reference": "order-1042",
        "expires_at": soon.astimezone(timezone(timedelta(hours=8))).isoformat(),
        "customer": {"name": "Ana", "email": "ana@example.com", "phone": "+65 9123 4567"},
        "metadata": {"order_id": "1042", "channel": "web"},
    }
    resp = await shop.api.create(body)
    assert resp.status == 201, resp.text
    link = resp.body
    assert link["description"] == "Birthday cake"
    assert link["reference"] == "order-1042"
    assert link["customer"] == {"name": "Ana", "email": "ana@example.com", "phone": "+6591234567"}
    assert link["metadata"] == {"order_id": "1042", "channel": "web"}
    assert parse_time(link["expires_at"]) == soon  # +08:00 in, UTC out


async def test_create_with_expires_in(shop: Shop) -> None:
    resp = await shop.api.create({"amount": "5", "description": "Coffee", "expires_in": "2h"})
    assert resp.status == 201, resp.text
    assert parse_time(resp.body["expires_at"]) - parse_time(resp.body["created_at"]) == timedelta(hours=2)


# ---------------------------------------------------------------- validation: every error names its field

VALID: dict[str, Any] = {"amount": "25.00", "description": "cake"}


def _with(**changes: Any) -> dict[str, Any]:
    body = {**VALID, **changes}
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()
_SOON = (datetime.now(UTC) + timedelta(days=1)).isoformat()

# (case name, body or raw bytes, expected field, expected status)
VALIDATION_CASES: list[tuple[str, Any, str, int]] = [
    ("malformed json", b'{"amount": "25.00",', "body", 400),
    ("json array", b"[1, 2]", "body", 400),
    ("empty body", b"", "body", 400),
    ("NaN", b'{"amount_minor": NaN, "description": "x"}', "body", 400),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, "body", 400),
    ("not utf-8", b'{"description": "\xff\xfe"}', "body", 400),
    ("float amount", _with(amount=25.5), "amount", 400),
    ("integer amount", _with(amount=25), "amount", 400),
    ("amount words", _with(amount="twenty"), "amount", 400),
    ("amount exponent", _with(amount="1e3"), "amount", 400),
    ("negative amount", _with(amount="-5.00"), "amount", 400),
    ("zero amount", _with(amount="0.00"), "amount", 400),
    ("too many decimals", _with(amount="25.001"), "amount", 400),
    ("decimals for JPY", _with(amount="10.5", currency="JPY"), "amount", 400),
    ("amount too large", _with(amount="10000000.01"), "amount", 400),
    ("no amount", _with(amount=_DROP), "amount", 400),
    ("amount and amount_minor", _with(amount_minor=2500), "amount", 400),
    ("fractional amount_minor", _with(amount=_DROP, amount_minor=2500.5), "amount_minor", 400),
    ("string amount_minor", _with(amount=_DROP, amount_minor="2500"), "amount_minor", 400),
    ("boolean amount_minor", _with(amount=_DROP, amount_minor=True), "amount_minor", 400),
    ("zero amount_minor", _with(amount=_DROP, amount_minor=0), "amount_minor", 400),
    ("amount_minor too large", _with(amount=_DROP, amount_minor=10**18), "amount_minor", 400),
    ("amount_minor beyond bigint", _with(amount=_DROP, amount_minor=10**30), "amount_minor", 400),
    ("unknown currency", _with(currency="XYZ"), "currency", 400),
    ("currency number", _with(currency=840), "currency", 400),
    ("no description", _with(description=_DROP), "description", 400),
    ("blank description", _with(description="   "), "description", 400),
    ("description number", _with(description=5), "description", 400),
    ("description too long", _with(description="x" * 501), "description", 400),
    ("reference too long", _with(reference="r" * 101), "reference", 400),
    ("reference number", _with(reference=12), "reference", 400),
    ("customer string", _with(customer="Ana"), "customer", 400),
    ("customer unknown key", _with(customer={"address": "x"}), "customer.address", 400),
    ("customer email", _with(customer={"email": "not-an-email"}), "customer.email", 400),
    ("customer phone", _with(customer={"phone": "12"}), "customer.phone", 400),
    ("customer name too long", _with(customer={"name": "n" * 201}), "customer.name", 400),
    ("metadata list", _with(metadata=["a"]), "metadata", 400),
    ("metadata number value", _with(metadata={"a": 1}), "metadata", 400),
    ("metadata too many keys", _with(metadata={f"k{i}": "v" for i in range(21)}), "metadata", 400),
    ("metadata long key", _with(metadata={"k" * 41: "v"}), "metadata", 400),
    ("metadata long value", _with(metadata={"k": "v" * 501}), "metadata", 400),
    ("expires_at past", _with(expires_at="2020-01-01T00:00:00Z"), "expires_at", 400),
    ("expires_at naive", _with(expires_at="2030-01-01T00:00:00"), "expires_at", 400),
    ("expires_at garbage", _with(expires_at="next tuesday"), "expires_at", 400),
    ("expires_at too far", _with(expires_at="2999-01-01T00:00:00Z"), "expires_at", 400),
    ("expires_at number", _with(expires_at=1700000000), "expires_at", 400),
    ("NUL in description", _with(description="cake\u0000"), "description", 400),
    ("control character in reference", _with(reference="INV\u001b1"), "reference", 400),
    ("NUL in metadata", _with(metadata={"order": "1\u0000"}), "metadata", 400),
    ("expires_in words", _with(expires_in="two fortnights"), "expires_in", 400),
    ("expires_in zero", _with(expires_in="0h"), "expires_in", 400),
    ("expires_in huge", _with(expires_in="999999w"), "expires_in", 400),
    ("both expiries", _with(expires_in="2h", expires_at=_SOON), "expires_in", 400),
    ("unknown field", _with(ammount="25.00"), "ammount", 400),
    ("body too large", _with(description="x" * (api.MAX_BODY_BYTES + 10)), "body", 413),
]


async def test_each_validation_error_names_its_field(live: LiveApp, shop: Shop) -> None:
    failures: list[str] = []
    for name, body, field, status in VALIDATION_CASES:
        if isinstance(body, bytes):
            resp = await shop.api.request("POST", "/api/v1/links", data=body,
                                          headers={"Content-Type": "application/json"})
        else:
            resp = await shop.api.create(body)
        got = resp.body.get("error", {}) if isinstance(resp.body, dict) else {}
        if resp.status != status or got.get("field") != field or not got.get("message") or not got.get("code"):
            failures.append(f"{name}: {resp.status} {resp.text[:200]}")
    assert not failures, "\n".join(failures)
    listed = await shop.api.get("/api/v1/links")
    assert listed.body["data"] == []  # nothing half-created


async def test_bad_idempotency_key_names_the_header(shop: Shop) -> None:
    for bad in ("k" * 256, "cl\u00e9"):
        resp = await shop.api.create(VALID, headers={"Idempotency-Key": bad})
        assert resp.status == 400 and resp.error["field"] == "Idempotency-Key", resp.text


# ---------------------------------------------------------------- authentication


async def test_auth_failures_are_401_and_never_echo_the_key(
    live: LiveApp, shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = shop.key[:-4] + ("AAAA" if not shop.key.endswith("AAAA") else "BBBB")
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": f"Basic {shop.key}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {wrong}"},
        {"Authorization": "Bearer ' OR 1=1 --"},
        {"Authorization": "Bearer " + "x" * 5000},
    ]
    for headers in attempts:
        for method, path in (("POST", "/api/v1/links"), ("GET", "/api/v1/links"), ("GET", "/api/v1/links/abc"),
                             ("POST", "/api/v1/links/abc/cancel")):
            kw: dict[str, Any] = {"json_body": VALID} if method == "POST" else {}
            resp = await shop.api.request(method, path, key=None, headers=headers, **kw)
            assert resp.status == 401, (headers, path, resp.text)
            assert resp.error["field"] == "Authorization" and resp.error["code"] == "unauthorized"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert shop.key not in resp.text and wrong not in resp.text
    assert shop.key not in caplog.text and wrong not in caplog.text
    ok = await shop.api.create(VALID)
    assert ok.status == 201


async def test_revoked_key_is_refused(live: LiveApp) -> None:
    shop = await make_shop(live)
    async with live.services.db.write() as conn:
        await conn.execute(update(API_KEYS).values(revoked_at=datetime.now(UTC)))
    resp = await shop.api.create(VALID)
    assert resp.status == 401


async def test_a_revoked_key_is_refused_on_the_very_next_request(live: LiveApp) -> None:
    shop = await make_shop(live)
    other = await make_shop(live, "Other Shop")
    assert (await shop.api.create(VALID)).status == 201  # known to this process now
    [key] = await live.services.merchants.list_api_keys(shop.merchant_id)
    key, revoked = await live.services.merchants.revoke_api_key(key.id)
    assert revoked and key.revoked_at is not None
    refused = await shop.api.create(VALID)
    assert refused.status == 401 and refused.error["field"] == "Authorization"
    assert (await shop.api.get("/api/v1/links")).status == 401
    assert (await other.api.create(VALID)).status == 201  # only that key
    again, revoked_again = await live.services.merchants.revoke_api_key(key.id)
    assert not revoked_again and again.revoked_at == key.revoked_at


async def test_a_new_default_currency_applies_at_once(live: LiveApp, shop: Shop) -> None:
    assert (await shop.api.create(VALID)).body["currency"] == "SGD"
    await live.services.merchants.update(shop.merchant_id, currency="MYR")
    assert (await shop.api.create(VALID)).body["currency"] == "MYR"


async def test_test_and_live_keys_both_work_and_say_which_they_are(live: LiveApp, shop: Shop) -> None:
    assert shop.key.startswith("pl_test_")
    live_key, secret = await live.services.merchants.create_api_key(shop.merchant_id, test=False)
    assert secret.startswith("pl_live_") and live_key.prefix == "pl_live_" and live_key.hint == secret[-4:]
    assert (await ApiClient(live, secret).create(VALID)).status == 201
    assert (await shop.api.create(VALID)).status == 201
    prefixes = [k.prefix for k in await live.services.merchants.list_api_keys(shop.merchant_id)]
    assert prefixes == ["pl_test_", "pl_live_"]


async def test_last_used_is_recorded_at_most_once_a_minute_per_key(
    live: LiveApp, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    merchants = live.services.merchants
    [key] = await merchants.list_api_keys(shop.merchant_id)
    assert key.last_used_at is None
    clock = {"now": 1000.0}
    keys = ApiKeys(merchants, monotonic=lambda: clock["now"])
    writes: list[str] = []
    record = merchants.record_key_use

    async def counting(key_id: str, when: datetime | None = None) -> None:
        writes.append(key_id)
        await record(key_id, when)

    monkeypatch.setattr(merchants, "record_key_use", counting)
    try:
        found = await keys.merchant_for(shop.key)
        assert found is not None and (found.id, found.default_currency, found.key_id) == (
            shop.merchant_id, "SGD", key.id)
        await keys.flush()
        [used] = await merchants.list_api_keys(shop.merchant_id)
        assert used.last_used_at is not None
        for _ in range(5):
            clock["now"] += 10
            assert await keys.merchant_for(shop.key) is not None
        await keys.flush()
        assert writes == [key.id]  # 50 s: one write
        clock["now"] += 11
        assert await keys.merchant_for(shop.key) is not None
        await keys.flush()
        assert writes == [key.id, key.id]
        assert await keys.merchant_for("pl_test_" + "x" * 43) is None
        await keys.flush()
        assert writes == [key.id, key.id]  # unknown secrets write nothing
    finally:
        await keys.close()


# ---------------------------------------------------------------- idempotency


async def test_idempotent_replay_returns_the_same_link(live: LiveApp, shop: Shop) -> None:
    headers = {"Idempotency-Key": "order-1042-attempt"}
    body = {"amount": "25.00", "description": "cake", "metadata": {"a": "1", "b": "2"}}
    first = await shop.api.create(body, headers=headers)
    assert first.status == 201, first.text
    # Same body with another key order and spacing is the same request.
    reordered = b'{ "metadata": {"b": "2", "a": "1"},  "description": "cake", "amount": "25.00" }'
    again = await shop.api.request("POST", "/api/v1/links", data=reordered,
                                   headers={**headers, "Content-Type": "application/json"})
    assert again.status == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body == first.body
    listed = await shop.api.get("/api/v1/links")
    assert [link["id"] for link in listed.body["data"]] == [first.body["id"]]


async def test_same_idempotency_key_with_another_body_is_409(shop: Shop) -> None:
    headers = {"Idempotency-Key": "k-1"}
    assert (await shop.api.create({"amount": "25.00", "description": "cake"}, headers=headers)).status == 201
    resp = await shop.api.create({"amount": "26.00", "description": "cake"}, headers=headers)
    assert resp.status == 409
    assert resp.error["code"] == "idempotency_conflict" and resp.error["field"] == "Idempotency-Key"


async def test_idempotency_keys_are_per_merchant(live: LiveApp, shop: Shop) -> None:
    other = await make_shop(live, "Tea Shop")
    headers = {"Idempotency-Key": "shared"}
    mine = await shop.api.create(VALID, headers=headers)
    theirs = await other.api.create(VALID, headers=headers)
    assert mine.status == theirs.status == 201
    assert mine.body["id"] != theirs.body["id"]


async def test_concurrent_retries_with_one_key_make_one_link(live: LiveApp, shop: Shop) -> None:
    headers = {"Idempotency-Key": "burst"}
    results = await asyncio.gather(*(shop.api.create(VALID, headers=headers) for _ in range(6)))
    assert {r.status for r in results} <= {200, 201}, [r.text for r in results]
    assert sorted(r.status for r in results).count(201) == 1
    assert len({r.body["id"] for r in results}) == 1


async def test_api_client_checks_against_the_document(live: LiveApp, shop: Shop) -> None:
    """The checker itself refuses an undocumented status, so the other tests' checks can fail."""
    client = ApiClient(live, shop.key)
    del client.checker.doc["paths"]["/api/v1/links"]["post"]["responses"]["201"]
    with pytest.raises(AssertionError, match="not documented"):
        await client.create(VALID)
