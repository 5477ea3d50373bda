"""The series API: create (a link made at once), list, get, cancel; bad schedules name their field."""

from __future__ import annotations

import pytest

from tests.adapters.web.api_support import Shop, make_shop
from tests.conftest import LiveApp


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live)


TUITION = {"amount": "150.00", "description": "Tuition", "customer": {"phone": "+65 9123 4567"},
           "schedule": {"every": "month", "count": 6}}


async def test_create_get_list_cancel(live: LiveApp, shop: Shop) -> None:
    resp = await shop.api.post("/api/v1/series", json_body=TUITION)
    assert resp.status == 201, resp.text
    series = resp.body
    assert series["status"] == "active" and series["links_made"] == 1
    assert series["schedule"] == {"every": "month", "interval": 1, "count": 6, "until": None,
                                  "start_at": series["schedule"]["start_at"]}
    assert (series["amount"], series["currency"], series["customer"]["phone"]) == ("150.00", "SGD", "+6591234567")
    first = series["links"][0]
    assert first["period"] == 1
    link = await shop.api.get(f"/api/v1/links/{first['link_id']}")
    assert link.status == 200 and link.body["amount"] == "150.00"
    assert link.body["metadata"] == {"series_id": series["id"], "series_period": "1"}
    got = await shop.api.get(f"/api/v1/series/{series['id']}")
    assert got.status == 200 and got.body["id"] == series["id"]
    listed = await shop.api.get("/api/v1/series")
    assert [s["id"] for s in listed.body["data"]] == [series["id"]]
    cancelled = await shop.api.post(f"/api/v1/series/{series['id']}/cancel")
    assert cancelled.status == 200 and cancelled.body["status"] == "cancelled" and cancelled.body["next_at"] is None
    again = await shop.api.post(f"/api/v1/series/{series['id']}/cancel")
    assert again.status == 409 and again.error["code"] == "not_active"
    other = await make_shop(live, name="Other")
    assert (await other.api.get(f"/api/v1/series/{series['id']}")).status == 404


async def test_a_series_with_line_items_and_a_later_start(live: LiveApp, shop: Shop) -> None:
    body = {"description": "Piano lessons", "line_items": [{"name": "Lesson", "quantity": 4, "unit_amount": "40",
                                                            "tax_rate": "9"}],
            "schedule": {"every": "week", "interval": 2, "start_at": "2026-12-07T09:00:00+08:00",
                         "until": "2027-06-30"}}
    resp = await shop.api.post("/api/v1/series", json_body=body)
    assert resp.status == 201, resp.text
    assert resp.body["links_made"] == 0 and resp.body["next_at"] == "2026-12-07T01:00:00.000Z"
    assert resp.body["amount"] == "174.40"


@pytest.mark.parametrize(("body", "code", "field"), [
    ({**TUITION, "schedule": {"every": "day"}}, "invalid_schedule", "schedule.every"),
    ({**TUITION, "schedule": {"every": "month", "often": True}}, "unknown_field", "schedule.often"),
    ({**TUITION, "schedule": {"every": "month", "interval": 0}}, "invalid_schedule", "schedule.interval"),
    ({**TUITION, "schedule": {"every": "month", "until": "2027-13-01"}}, "invalid_schedule", "schedule.until"),
    ({**TUITION, "schedule": {"every": "month", "start_at": "2020-01-01T00:00:00Z"}}, "invalid_schedule",
     "schedule.start_at"),
    ({**TUITION, "schedule": {"every": "month", "start_at": "2027-01-01T00:00:00"}}, "invalid_schedule",
     "schedule.start_at"),
    ({k: v for k, v in TUITION.items() if k != "schedule"}, "missing_field", "schedule"),
    ({**TUITION, "expires_at": "2027-01-01T00:00:00Z"}, "invalid_expiry", "expires_at"),
    ({**TUITION, "amount": "1.001"}, "invalid_amount", "amount"),
    # A series makes single-use links: the fields of links that sell many times are refused by name.
    ({**TUITION, "stock": 5}, "unknown_field", "stock"),
    ({**TUITION, "quantity": {"adjustable": True}}, "unknown_field", "quantity"),
    ({k: v for k, v in {**TUITION, "amount_mode": "customer_chooses", "min_amount": "1"}.items() if k != "amount"},
     "unknown_field", "amount_mode"),
])
async def test_bad_series_name_their_field(shop: Shop, body: dict[str, object], code: str, field: str) -> None:
    resp = await shop.api.post("/api/v1/series", json_body=body)
    assert resp.status == 400, resp.text
    assert resp.error["field"] == field, resp.text
    assert resp.error["code"] == code, resp.text


async def test_the_series_document_leaves_out_the_fields_of_links_that_sell_many_times(shop: Shop) -> None:
    document = (await shop.api.get("/api/v1/openapi.json")).body
    series, link = (document["components"]["schemas"][name]["properties"] for name in ("CreateSeries", "CreateLink"))
    assert "stock" in link and "amount_mode" in link
    assert not {"reusable", "stock", "quantity", "amount_mode", "min_amount", "split"} & set(series)

