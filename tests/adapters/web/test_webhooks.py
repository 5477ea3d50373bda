"""POST /webhooks/sandbox (issue 2, point 9): verified on the raw body, deduped, never a second payment."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.payments.sandbox import SIGNATURE_HEADER
from bots.config import Settings
from core.models import LinkStatus, PaymentLink, PaymentStatus
from tests.adapters.web.pages_support import make_link, signed, webhook_body
from tests.clock import FakeClock
from tests.conftest import LiveApp, make_settings, start_live_app

PATH = "/webhooks/sandbox"


@pytest.fixture
def sqlite_settings(sqlite_database_url: str) -> Settings:
    # Refused webhooks count against the sender's bad_auth_per_ip; some tests here send a dozen in a row.
    return make_settings(sqlite_database_url, limits__bad_auth_per_ip="1000/min")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, limits__bad_auth_per_ip="1000/min")


async def post(live: LiveApp, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = await live.client.post(PATH, data=body, headers=headers, allow_redirects=False)
    assert not 300 <= response.status < 400, "webhook routes never redirect"
    assert response.status < 500, await response.text()
    return response.status, await response.json()


async def statuses(live: LiveApp, link: PaymentLink) -> list[str]:
    return sorted(p.status for p in await live.services.links.payments_for(link.id))


async def link_status(live: LiveApp, link: PaymentLink) -> str:
    stored = await live.services.links.get(link.id)
    assert stored is not None
    return stored.status


# ---------------------------------------------------------------- the good case and its repeats


async def test_valid_webhook_pays_the_link(live: LiveApp) -> None:
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    status, answer = await post(live, body, signed(body))
    assert (status, answer["outcome"]) == (200, "paid")
    assert await link_status(live, link) == LinkStatus.PAID
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.provider_ref, payment.amount_minor, payment.currency) == ("ch_1", 2500, "SGD")


async def test_duplicated_webhook_is_2xx_and_no_second_payment(live: LiveApp) -> None:
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    outcomes = []
    for _ in range(3):
        status, answer = await post(live, body, signed(body))
        assert status == 200
        outcomes.append(answer["outcome"])
    assert outcomes == ["paid", "duplicate", "duplicate"]
    # The same charge under a new event id is the same payment too.
    again = webhook_body(link, 1).replace(b'"evt_1"', b'"evt_1b"')
    assert (await post(live, again, signed(again)))[1]["outcome"] == "duplicate"
    assert await statuses(live, link) == [PaymentStatus.SUCCEEDED]


async def test_reordered_webhooks_keep_one_payment_for_the_link(live: LiveApp) -> None:
    link = await make_link(live.services)
    first, second = webhook_body(link, 1), webhook_body(link, 2)
    ignored = webhook_body(link, 3, kind="payment.created")
    # Delivered out of order, interleaved with redeliveries and an event kind we do not act on.
    answers = [(await post(live, body, signed(body)))[1]["outcome"]
               for body in (second, ignored, first, second, first, ignored)]
    assert answers == ["paid", "ignored", "refund_needed", "duplicate", "duplicate", "ignored"]
    assert await statuses(live, link) == [PaymentStatus.REFUND_NEEDED, PaymentStatus.SUCCEEDED]
    payments = {p.provider_ref: p.status for p in await live.services.links.payments_for(link.id)}
    assert payments == {"ch_2": PaymentStatus.SUCCEEDED, "ch_1": PaymentStatus.REFUND_NEEDED}


async def test_two_different_payments_at_the_same_moment(live: LiveApp) -> None:
    link = await make_link(live.services)
    bodies = [webhook_body(link, n) for n in (1, 2)]
    answers = await asyncio.gather(*(post(live, body, signed(body)) for body in bodies))
    assert sorted(a["outcome"] for _s, a in answers) == ["paid", "refund_needed"]
    assert await statuses(live, link) == [PaymentStatus.REFUND_NEEDED, PaymentStatus.SUCCEEDED]
    assert await link_status(live, link) == LinkStatus.PAID


# ---------------------------------------------------------------- what the link says, not the webhook


async def test_amount_or_currency_different_from_the_link_never_pays_it(live: LiveApp) -> None:
    link = await make_link(live.services)
    for n, changes in enumerate(({"minor": 1}, {"currency": "USD"}), start=1):
        body = webhook_body(link, n, **changes)  # type: ignore[arg-type]
        status, answer = await post(live, body, signed(body))
        assert (status, answer["outcome"]) == (200, "mismatch")
    assert await link_status(live, link) == LinkStatus.ACTIVE
    assert await statuses(live, link) == [PaymentStatus.REFUND_NEEDED] * 2


async def test_unknown_link_is_acknowledged_without_a_payment(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services)
    body = webhook_body(link, 1).replace(link.id.encode(), b"z" * 28)
    status, answer = await post(sqlite_live, body, signed(body))
    assert (status, answer["outcome"]) == (200, "unknown_link")
    assert await statuses(sqlite_live, link) == []


# ---------------------------------------------------------------- authentication fails closed


async def assert_refused(live: LiveApp, link: PaymentLink, body: bytes, headers: dict[str, str]) -> None:
    status, answer = await post(live, body, headers)
    assert 400 <= status < 500
    assert answer["error"]["code"] == "invalid_webhook"
    assert "whsec" not in json.dumps(answer)  # the secret never appears in an answer
    assert await statuses(live, link) == []
    assert await link_status(live, link) == LinkStatus.ACTIVE


async def test_tampered_body_is_refused(live: LiveApp) -> None:
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    headers = signed(body)
    await assert_refused(live, link, body.replace(b'"amount_minor":2500', b'"amount_minor":2501'), headers)
    await assert_refused(live, link, body + b" ", headers)


async def test_reserialised_json_is_refused(live: LiveApp) -> None:
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    headers = signed(body)
    reserialised = json.dumps(json.loads(body)).encode()  # same data, other bytes (", " and ": ")
    assert reserialised != body and json.loads(reserialised) == json.loads(body)
    await assert_refused(live, link, reserialised, headers)


async def test_wrong_secret_missing_or_malformed_signature_is_refused(live: LiveApp) -> None:
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    good = signed(body)[SIGNATURE_HEADER]
    await assert_refused(live, link, body, signed(body, secret="whsec_someone_else"))
    await assert_refused(live, link, body, {"Content-Type": "application/json"})
    for header in ("", "garbage", good.split(",")[0], good.split(",")[1], good.replace("v1=", "v0="),
                   f"t=abc,{good.split(',')[1]}"):
        await assert_refused(live, link, body, {SIGNATURE_HEADER: header})


async def test_stale_or_future_timestamp_is_refused(live: LiveApp) -> None:
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    now = int(time.time())
    await assert_refused(live, link, body, signed(body, timestamp=now - 301))
    await assert_refused(live, link, body, signed(body, timestamp=now + 301))
    status, _answer = await post(live, body, signed(body, timestamp=now - 290))  # inside the tolerance
    assert status == 200


async def test_signed_but_malformed_events_are_4xx_never_500(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services)
    bodies = [
        b"not json",
        b"[]",
        b'{"id":"evt_1"}',
        webhook_body(link, 1).replace(b'"amount_minor":2500', b'"amount_minor":"2500"'),
        webhook_body(link, 1).replace(b'"amount_minor":2500', b'"amount_minor":true'),
        webhook_body(link, 1).replace(b'"amount_minor":2500', b'"amount_minor":99999999999999999999'),
        webhook_body(link, 1).replace(b'"amount_minor":2500', b'"amount_minor":-5'),
        webhook_body(link, 1).replace(b'"evt_1"', b'"' + b"e" * 500 + b'"'),
        webhook_body(link, 1).replace(link.id.encode(), b"x" * 100),
        webhook_body(link, 1).replace(b'"SGD"', b'"SGDX"'),
        webhook_body(link, 1).replace(b'"Ann Tan"', b"42"),
        "\N{EURO SIGN}".encode("utf-16"),
    ]
    for body in bodies:
        await assert_refused(sqlite_live, link, body, signed(body))


async def test_webhook_route_accepts_only_post_and_never_redirects(sqlite_live: LiveApp) -> None:
    for method in ("GET", "PUT"):
        response = await sqlite_live.client.request(method, PATH, allow_redirects=False)
        assert response.status == 405
    response = await sqlite_live.client.post(PATH + "/", data=b"{}", allow_redirects=False)
    assert response.status == 404
    too_big = b"x" * (300 * 1024)
    response = await sqlite_live.client.post(PATH, data=too_big, headers=signed(too_big), allow_redirects=False)
    assert response.status == 413


# ---------------------------------------------------------------- replays, with a clock we can move




@pytest.fixture
async def clocked(settings: Settings) -> AsyncIterator[tuple[LiveApp, FakeClock]]:
    clock = FakeClock(datetime.now(UTC))
    live, client = await start_live_app(settings, clock=clock, run_jobs=False)
    yield live, clock
    await client.close()


async def test_replayed_webhook_is_a_duplicate_then_stale(clocked: tuple[LiveApp, FakeClock]) -> None:
    live, clock = clocked
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    headers = signed(body, timestamp=int(clock.now.timestamp()))
    assert (await post(live, body, headers))[1]["outcome"] == "paid"
    clock.now += timedelta(seconds=120)
    assert (await post(live, body, headers)) == (200, {"received": True, "outcome": "duplicate"})
    clock.now += timedelta(seconds=200)  # 320 s after signing: a captured request cannot be replayed
    status, answer = await post(live, body, headers)
    assert status == 400 and "tolerance" in answer["error"]["message"]
    assert await statuses(live, link) == [PaymentStatus.SUCCEEDED]
