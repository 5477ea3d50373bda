"""GET/list/cancel of /api/v1/links on SQLite and PostgreSQL: ownership, pagination, effective status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from adapters.web.api import link_json
from core.links import LINKS, PaymentOutcome
from core.models import PaymentLink
from core.ports import PaymentEvent
from tests.adapters.web.api_support import Shop, make_shop, parse_time
from tests.conftest import LiveApp


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live)


@pytest.fixture
async def other(live: LiveApp) -> Shop:
    return await make_shop(live, "Tea Shop", currency="USD", locale="en_US")


async def _create(shop: Shop, description: str = "cake", **extra: Any) -> dict[str, Any]:
    resp = await shop.api.create({"amount": "25.00", "description": description, **extra})
    assert resp.status == 201, resp.text
    return resp.body  # type: ignore[no-any-return]


async def _make_overdue(live: LiveApp, link_id: str) -> None:
    async with live.services.db.write() as conn:
        await conn.execute(
            update(LINKS).where(LINKS.c.id == link_id).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )


async def _pay(live: LiveApp, link: dict[str, Any]) -> None:
    outcome, _ = await live.services.links.record_payment(
        PaymentEvent(provider="sandbox", event_id=f"evt_{link['id']}", kind="payment.succeeded",
                     link_id=link["id"], provider_ref=f"ch_{link['id']}", amount_minor=link["amount_minor"],
                     currency=link["currency"])
    )
    assert outcome is PaymentOutcome.PAID


# ---------------------------------------------------------------- GET /links/{id}


async def test_get_returns_the_link(shop: Shop) -> None:
    created = await _create(shop, reference="r-1", metadata={"k": "v"})
    resp = await shop.api.get(f"/api/v1/links/{created['id']}")
    assert resp.status == 200
    assert resp.body == created


async def test_unknown_and_other_merchants_links_are_404(shop: Shop, other: Shop) -> None:
    theirs = await _create(other)
    for path in (f"/api/v1/links/{theirs['id']}", "/api/v1/links/nosuchlink", "/api/v1/links/" + "a" * 300):
        resp = await shop.api.get(path)
        assert resp.status == 404, resp.text
        assert resp.error == {"code": "not_found", "message": "no such link", "field": "id"}
    # And the owner still sees it untouched.
    assert (await other.api.get(f"/api/v1/links/{theirs['id']}")).body["status"] == "active"


async def test_paid_link_shows_paid_at(live: LiveApp, shop: Shop) -> None:
    link = await _create(shop)
    await _pay(live, link)
    resp = await shop.api.get(f"/api/v1/links/{link['id']}")
    assert resp.body["status"] == "paid"
    assert parse_time(resp.body["paid_at"]) >= parse_time(link["created_at"])


async def test_overdue_link_reads_expired_on_access(live: LiveApp, shop: Shop) -> None:
    link = await _create(shop)
    await _make_overdue(live, link["id"])
    resp = await shop.api.get(f"/api/v1/links/{link['id']}")
    assert resp.body["status"] == "expired"
    listed = await shop.api.get("/api/v1/links", params={"status": "expired"})
    assert [item["id"] for item in listed.body["data"]] == [link["id"]]
    assert (await shop.api.get("/api/v1/links", params={"status": "active"})).body["data"] == []


async def test_status_of_an_overdue_link_is_expired_even_before_it_is_stored(live: LiveApp, shop: Shop) -> None:
    """The serializer itself uses the effective status (a listing races the sweeper)."""
    link = await _create(shop)
    await _make_overdue(live, link["id"])
    async with live.services.db.read() as conn:
        row = (await conn.execute(LINKS.select().where(LINKS.c.id == link["id"]))).one()
    stored = PaymentLink(**row._mapping)
    assert stored.status == "active"
    services = live.services
    assert link_json(stored, services.links.status_of(stored), services.links.url(stored.id))["status"] == "expired"


# ---------------------------------------------------------------- GET /links


async def test_list_is_newest_first_with_cursor_pages(shop: Shop, other: Shop) -> None:
    made = [await _create(shop, f"item {i}") for i in range(5)]
    await _create(other, "not mine")
    everything = await shop.api.get("/api/v1/links", params={"limit": "100"})
    all_ids = [link["id"] for link in everything.body["data"]]
    assert set(all_ids) == {link["id"] for link in made}
    assert everything.body["next_cursor"] is None
    # Newest first. created_at is shown to the millisecond while the order uses the stored microseconds,
    # so links made within one millisecond are checked against the order they were made in, not by id.
    times = [parse_time(link["created_at"]) for link in everything.body["data"]]
    assert times == sorted(times, reverse=True)
    assert all_ids == [link["id"] for link in reversed(made)]
    assert all_ids[0] == made[-1]["id"] and all_ids[-1] == made[0]["id"]

    paged: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await shop.api.get("/api/v1/links", params=params)
        assert page.status == 200 and len(page.body["data"]) <= 2
        paged += [link["id"] for link in page.body["data"]]
        pages += 1
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert paged == all_ids and pages == 3


async def test_list_default_limit_is_20(shop: Shop) -> None:
    for i in range(21):
        await _create(shop, f"item {i}")
    page = await shop.api.get("/api/v1/links")
    assert len(page.body["data"]) == 20 and page.body["next_cursor"] is not None


async def test_list_filters_by_status(live: LiveApp, shop: Shop) -> None:
    active, cancelled, paid = (await _create(shop, "a")), (await _create(shop, "c")), (await _create(shop, "p"))
    assert (await shop.api.post(f"/api/v1/links/{cancelled['id']}/cancel")).status == 200
    await _pay(live, paid)
    for status, expected in (("active", active), ("cancelled", cancelled), ("paid", paid)):
        resp = await shop.api.get("/api/v1/links", params={"status": status})
        assert [link["id"] for link in resp.body["data"]] == [expected["id"]], status
        assert resp.body["data"][0]["status"] == status
    assert (await shop.api.get("/api/v1/links", params={"status": "expired"})).body["data"] == []


async def test_list_parameters_are_validated(shop: Shop, other: Shop) -> None:
    theirs = await _create(other)
    cases = [
        ({"status": "open"}, "status"),
        ({"status": "ACTIVE"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"cursor": "nosuchlink"}, "cursor"),
        ({"cursor": theirs["id"]}, "cursor"),  # another merchant's link is no cursor of yours
        ({"cursor": "c" * 500}, "cursor"),
    ]
    for params, field in cases:
        resp = await shop.api.get("/api/v1/links", params=params)
        assert resp.status == 400, (params, resp.text)
        assert resp.error["field"] == field, (params, resp.text)


# ---------------------------------------------------------------- POST /links/{id}/cancel


async def test_cancel_then_cancel_again_is_409(shop: Shop) -> None:
    link = await _create(shop)
    resp = await shop.api.post(f"/api/v1/links/{link['id']}/cancel")
    assert resp.status == 200
    assert resp.body["status"] == "cancelled" and resp.body["cancelled_at"] is not None
    again = await shop.api.post(f"/api/v1/links/{link['id']}/cancel")
    assert again.status == 409
    assert again.error["code"] == "not_active" and again.error["field"] == "id"
    assert (await shop.api.get(f"/api/v1/links/{link['id']}")).body["status"] == "cancelled"


async def test_cancel_paid_or_expired_link_is_409(live: LiveApp, shop: Shop) -> None:
    paid, overdue = await _create(shop), await _create(shop)
    await _pay(live, paid)
    await _make_overdue(live, overdue["id"])
    for link, status in ((paid, "paid"), (overdue, "expired")):
        resp = await shop.api.post(f"/api/v1/links/{link['id']}/cancel")
        assert resp.status == 409, resp.text
        assert status in resp.error["message"]
        assert (await shop.api.get(f"/api/v1/links/{link['id']}")).body["status"] == status


async def test_cancel_other_merchants_link_is_404_and_leaves_it_alone(shop: Shop, other: Shop) -> None:
    theirs = await _create(other)
    resp = await shop.api.post(f"/api/v1/links/{theirs['id']}/cancel")
    assert resp.status == 404 and resp.error["field"] == "id"
    assert (await shop.api.post("/api/v1/links/nosuchlink/cancel")).status == 404
    assert (await other.api.get(f"/api/v1/links/{theirs['id']}")).body["status"] == "active"
