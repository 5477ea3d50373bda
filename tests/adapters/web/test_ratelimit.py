"""Limits against abuse through the real app (issue 11 point 5): 429 + Retry-After on each kind of route,
from loopback too, X-Forwarded-For believed only from trusted proxies, per-key and bad-auth limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientResponse

from tests.adapters.web.api_support import make_shop
from tests.adapters.web.pages_support import make_link, page_of, signed, webhook_body
from tests.conftest import LiveApp, make_settings, start_live_app

StartApp = Callable[..., Awaitable[LiveApp]]
CREATE = {"amount": "25.00", "description": "Chocolate cake"}
SUCCESS = {"card_number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123", "name": "Ann Tan"}


@pytest.fixture
async def start(sqlite_database_url: str) -> AsyncIterator[StartApp]:
    """Start the app on SQLite with some settings changed: start(limits__public_per_ip="3/min")."""
    clients: list[Any] = []

    async def starter(**overrides: Any) -> LiveApp:
        live, client = await start_live_app(make_settings(sqlite_database_url, **overrides))
        clients.append(client)
        return live

    yield starter
    for client in clients:
        await client.close()


def assert_retry_after(response: ClientResponse, most_s: int) -> None:
    assert response.status == 429
    value = response.headers["Retry-After"]
    assert value.isdigit() and 1 <= int(value) <= most_s, value
    assert response.headers["Cache-Control"] == "no-store"


async def assert_json_429(response: ClientResponse, most_s: int) -> dict[str, Any]:
    assert_retry_after(response, most_s)
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == "rate_limited" and body["error"]["field"] is None
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- public pages


async def test_pay_posts_are_limited_per_client_with_a_calm_page(start: StartApp) -> None:
    live = await start(limits__public_per_ip="3/min")
    link = await make_link(live.services)
    for _ in range(3):
        pressed = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
        assert pressed.status == 303
    refused = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert_retry_after(refused, 20)  # 60 s / 3: the next press is due within 20 s
    page = await page_of(refused)
    assert page.h1 == "Too many tries in a short time"
    assert "Nothing was charged" in page.text() and "try again" in page.text()
    assert [a.attrs["href"] for a in page.all("a")] == [f"/p/{link.id}"]
    assert refused.headers["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in refused.headers
    # Reading the page is never limited, and a refused press started no checkout.
    for _ in range(5):
        assert (await live.client.get(f"/p/{link.id}")).status == 200
    stored = await live.services.links.get(link.id)
    assert stored is not None and stored.checkout_attempts == 3


async def test_checkout_posts_count_against_the_same_allowance(start: StartApp) -> None:
    live = await start(limits__public_per_ip="2/min")
    link = await make_link(live.services)
    pressed = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    checkout = urlsplit(pressed.headers["Location"]).path
    assert (await live.client.get(checkout)).status == 200  # the form itself is a read
    paid = await live.client.post(checkout, data=SUCCESS, allow_redirects=False)
    assert paid.status == 303
    again = await live.client.post(checkout, data=SUCCESS, allow_redirects=False)
    assert_retry_after(again, 30)
    assert [a.attrs["href"] for a in (await page_of(again)).all("a")] == [checkout]


async def test_the_defaults_limit_loopback_too(start: StartApp) -> None:
    live = await start()  # the built-in defaults, client 127.0.0.1
    link = await make_link(live.services)
    statuses = [(await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)).status for _ in range(61)]
    assert statuses[:60] == [303] * 60 and statuses[60] == 429


# ---------------------------------------------------------------- webhooks


async def test_webhooks_that_fail_authentication_are_limited(start: StartApp) -> None:
    live = await start(limits__bad_auth_per_ip="3/min")
    link = await make_link(live.services)
    # Genuine webhooks are not counted at all.
    for n in range(1, 6):
        body = webhook_body(link, n)
        assert (await live.client.post("/webhooks/sandbox", data=body, headers=signed(body))).status == 200
    body = webhook_body(link, 9)
    forged = signed(body, secret="whsec_guess")
    for _ in range(3):
        assert (await live.client.post("/webhooks/sandbox", data=body, headers=forged)).status == 400
    refused = await live.client.post("/webhooks/sandbox", data=body, headers=forged)
    await assert_json_429(refused, 20)
    # Until it recovers, that client is refused even with a good signature: it has to slow down.
    good = await live.client.post("/webhooks/sandbox", data=body, headers=signed(body))
    await assert_json_429(good, 20)


# ---------------------------------------------------------------- the API


async def test_api_requests_with_a_bad_key_are_limited_per_client(start: StartApp) -> None:
    live = await start(limits__bad_auth_per_ip="3/min")
    shop = await make_shop(live)
    good = {"Authorization": f"Bearer {shop.key}"}
    assert (await live.client.post("/api/v1/links", json=CREATE, headers=good)).status == 201
    bad = {"Authorization": "Bearer pl_" + "x" * 40}
    for headers in (bad, {}, bad):
        assert (await live.client.get("/api/v1/links", headers=headers)).status == 401
    error = await assert_json_429(await live.client.get("/api/v1/links", headers=bad), 20)
    assert "API key" in error["message"]
    await assert_json_429(await live.client.get("/api/v1/links"), 20)
    # A key that worked from here a moment ago keeps working: a stale key cannot lock out a good one.
    assert (await live.client.post("/api/v1/links", json=CREATE, headers=good)).status == 201
    # A key this process has not seen work yet is refused with the rest until the client slows down.
    other = await make_shop(live, "Other Shop")
    fresh = await live.client.get("/api/v1/links", headers={"Authorization": f"Bearer {other.key}"})
    await assert_json_429(fresh, 20)


async def test_a_key_refused_once_loses_its_exemption(start: StartApp) -> None:
    live = await start(limits__bad_auth_per_ip="2/min")
    # Not a key, but answered without a 401 (the document needs no key), as a since revoked key was.
    headers = {"Authorization": "Bearer pl_" + "r" * 40}
    assert (await live.client.get("/api/v1/openapi.json", headers=headers)).status == 200
    for _ in range(2):
        assert (await live.client.get("/api/v1/links", headers=headers)).status == 401
    await assert_json_429(await live.client.get("/api/v1/links", headers=headers), 30)


async def test_each_api_key_has_its_own_allowance(start: StartApp) -> None:
    live = await start(limits__api_per_key="5/min")
    first, second = await make_shop(live), await make_shop(live, "Other Shop")
    headers = {"Authorization": f"Bearer {first.key}"}
    for _ in range(5):
        assert (await live.client.post("/api/v1/links", json=CREATE, headers=headers)).status == 201
    refused = await live.client.post("/api/v1/links", json=CREATE, headers=headers)
    error = await assert_json_429(refused, 12)
    assert "this API key" in error["message"]
    assert (await live.client.get("/api/v1/links", headers=headers)).status == 429  # every endpoint
    other = await live.client.post("/api/v1/links", json=CREATE, headers={"Authorization": f"Bearer {second.key}"})
    assert other.status == 201
    listed = await live.services.links.list_links(first.merchant_id)
    assert len(listed[0]) == 5, "a refused request created nothing"


# ---------------------------------------------------------------- trusted proxies


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(start: StartApp) -> None:
    live = await start(limits__public_per_ip="2/min")
    link = await make_link(live.services)
    for n in range(2):
        response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False,
                                          headers={"X-Forwarded-For": f"203.0.113.{n}"})
        assert response.status == 303
    # Claiming to be someone else does not buy a fresh allowance.
    response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False,
                                      headers={"X-Forwarded-For": "203.0.113.77"})
    assert response.status == 429


async def test_behind_a_trusted_proxy_each_forwarded_client_is_counted_apart(start: StartApp) -> None:
    live = await start(limits__public_per_ip="2/min", server__trusted_proxies=["127.0.0.0/8"])
    link = await make_link(live.services)

    async def press(forwarded_for: str) -> int:
        response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False,
                                          headers={"X-Forwarded-For": forwarded_for})
        return response.status

    assert [await press("203.0.113.5") for _ in range(3)] == [303, 303, 429]
    assert await press("198.51.100.8") == 303  # another customer behind the same proxy
    # The client's own leftmost entries are not believed; the hop our proxy appended is.
    assert await press("198.51.100.99, 203.0.113.5") == 429


def test_limits_can_be_raised_by_environment() -> None:
    from bots.config import load_settings

    settings = load_settings(env={"PAYLINKS_LIMITS__API_PER_KEY": "1000000/s",
                                  "PAYLINKS_SERVER__TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.5"})
    assert settings.limits.api_per_key == "1000000/s"
    assert settings.server.trusted_proxies == ["10.0.0.0/8", "192.168.1.5"]
    assert settings.limits.invites_per_shop == 10


# ---------------------------------------------------------------- chat platform webhooks


async def test_chat_webhooks_count_only_their_refusals() -> None:
    """Telegram (403 on a wrong secret), Slack (401 on a bad signature) and Twilio (403) webhooks: the
    middleware knows them only as POSTs outside the pages and the API, answered 400/401/403."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from adapters.web.ratelimit import RateLimits
    from bots.config import LimitsSettings

    answers = {"/telegram/webhook": 403, "/slack/events": 401, "/whatsapp/webhook": 403}
    accepted = {"ok": True}

    def route(path: str, refusal: int) -> web.RouteDef:
        async def handle(request: web.Request) -> web.Response:
            good = request.headers.get("X-Test-Auth") == "ok"
            return web.json_response(accepted if good else {"error": "no"}, status=200 if good else refusal)

        return web.post(path, handle)

    for path, refusal in answers.items():
        app = web.Application(middlewares=[RateLimits(LimitsSettings(bad_auth_per_ip="2/min")).middleware])
        app.router.add_routes([route(p, r) for p, r in answers.items()])
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for _ in range(20):  # a busy platform's genuine updates are never limited
                assert (await client.post(path, headers={"X-Test-Auth": "ok"})).status == 200
            for _ in range(2):
                assert (await client.post(path)).status == refusal
            refused = await client.post(path, headers={"X-Test-Auth": "ok"})
            await assert_json_429(refused, 30)
            # The allowance is the client's, across every webhook route.
            other = next(p for p in answers if p != path)
            assert (await client.post(other, headers={"X-Test-Auth": "ok"})).status == 429
