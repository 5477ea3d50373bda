"""POST /api/v1/links with line_items, GET with the invoice fields; a schedule is pointed to /series."""

from __future__ import annotations

import csv
import io

import pytest

from tests.adapters.web.api_support import Shop, make_shop
from tests.conftest import LiveApp


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live)


ORDER = {
    "description": "Birthday order",
    "line_items": [{"name": "Chocolate cake", "quantity": 2, "unit_amount": "25", "tax_rate": "9"},
                   {"name": "Delivery", "unit_amount": "5.00"}],
    "discount": {"percent": "10"},
}


async def test_create_with_line_items_returns_totals_and_a_number(shop: Shop) -> None:
    resp = await shop.api.create(ORDER)
    assert resp.status == 201, resp.text
    link = resp.body
    # 55.00 subtotal, 5.50 off (5.00 + 0.50), 9 % of 45.00 = 4.05 tax: 53.55.
    assert (link["subtotal"], link["discount"], link["tax"], link["total"]) == ("55.00", "5.50", "4.05", "53.55")
    assert (link["subtotal_minor"], link["tax_minor"], link["total_minor"]) == (5500, 405, 5355)
    assert link["amount"] == link["total"] and link["amount_minor"] == 5355
    assert link["invoice_number"] == "INV-2026-0001"
    cake, delivery = link["line_items"]
    assert (cake["quantity"], cake["unit_amount"], cake["amount"], cake["tax"], cake["total"]) == \
        ("2", "25", "50.00", "4.05", "49.05")
    assert (delivery["tax_rate"], delivery["discount"], delivery["total"]) == ("0", "0.50", "4.50")
    again = await shop.api.get(f"/api/v1/links/{link['id']}")
    assert again.status == 200 and again.body["line_items"] == link["line_items"]
    assert again.body["invoice_number"] == "INV-2026-0001"
    listed = await shop.api.get("/api/v1/links")
    assert listed.body["data"][0]["total"] == "53.55"


async def test_a_plain_link_has_totals_and_no_number(shop: Shop) -> None:
    resp = await shop.api.create({"amount": "12.50", "description": "Tea"})
    assert resp.status == 201
    assert (resp.body["subtotal"], resp.body["tax"], resp.body["total"]) == ("12.50", "0.00", "12.50")
    assert resp.body["invoice_number"] is None and resp.body["line_items"] is None


async def test_jpy_lines_round_half_to_even(shop: Shop) -> None:
    resp = await shop.api.create({"currency": "JPY", "description": "Sweets", "line_items": [
        {"name": "ひよこ饅頭", "quantity": "0.5", "unit_amount": "5"}, {"name": "団子", "quantity": "0.5",
                                                                      "unit_amount": "7"}]})
    assert resp.status == 201, resp.text
    assert [line["amount_minor"] for line in resp.body["line_items"]] == [2, 4]
    assert resp.body["total"] == "6"


@pytest.mark.parametrize(("body", "code", "field"), [
    ({**ORDER, "amount": "10.00"}, "invalid_amount", "amount"),
    ({**ORDER, "line_items": []}, "invalid_line_items", "line_items"),
    ({**ORDER, "line_items": [{"name": "x", "unit_amount": "1", "tax_rate": "250"}]}, "invalid_line_items",
     "line_items.0.tax_rate"),
    ({**ORDER, "line_items": [{"name": "x", "unit_amount": "abc"}]}, "invalid_line_items", "line_items.0.unit_amount"),
    ({**ORDER, "line_items": [{"name": "x", "unit_amount": 5}]}, "invalid_type", "line_items.0.unit_amount"),
    ({**ORDER, "discount": {"amount": "100.00"}}, "invalid_line_items", "discount"),
    ({**ORDER, "discount": {"amount": "1.00", "percent": "5"}}, "invalid_line_items", "discount"),
    ({"amount": "5.00", "description": "x", "discount": {"percent": "5"}}, "invalid_line_items", "discount"),
    ({**ORDER, "line_items": [{"name": "x", "quantity": 1000000, "unit_amount": "99999"}]}, "amount_too_large",
     "line_items"),
    # Items fix the amount: a customer-chosen amount beside them is refused (schemathesis found it accepted).
    ({**ORDER, "amount_mode": "customer_chooses", "min_amount": "1"}, "invalid_amount_mode", "amount_mode"),
])
async def test_bad_line_items_name_their_field(shop: Shop, body: dict[str, object], code: str, field: str) -> None:
    resp = await shop.api.create(body)
    assert resp.status == 400, resp.text
    assert (resp.error["code"], resp.error["field"]) == (code, field)


async def test_a_schedule_is_pointed_to_the_series_api(shop: Shop) -> None:
    resp = await shop.api.create({"amount": "150.00", "description": "Tuition", "schedule": {"every": "month"}})
    assert resp.status == 400
    assert resp.error["code"] == "use_series" and resp.error["field"] == "schedule"
    assert "/api/v1/series" in resp.error["message"]


async def test_the_csv_export_appends_the_invoice_columns(live: LiveApp, shop: Shop) -> None:
    made = await shop.api.create(ORDER)
    await shop.api.create({"amount": "12.50", "description": "Tea"})
    resp = await live.client.get("/api/v1/links/export.csv", headers={"Authorization": f"Bearer {shop.key}"})
    assert resp.status == 200
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    header = rows[0]
    assert tuple(header[:len(OLD_COLUMNS)]) == OLD_COLUMNS  # appended to, never renamed
    invoice_columns = ["invoice_number", "items", "subtotal", "discount", "tax", "total"]
    assert header[len(OLD_COLUMNS):len(OLD_COLUMNS) + len(invoice_columns)] == invoice_columns
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    order = by_id[made.body["id"]]
    assert order["invoice_number"] == "INV-2026-0001"
    assert order["items"] == "2 x Chocolate cake @ 25 (tax 9%); 1 x Delivery @ 5"
    assert (order["subtotal"], order["discount"], order["tax"], order["total"], order["amount"]) == \
        ("55.00", "5.50", "4.05", "53.55", "53.55")
    tea = next(row for key, row in by_id.items() if key != made.body["id"])
    assert (tea["invoice_number"], tea["items"], tea["tax"], tea["total"]) == ("", "", "0.00", "12.50")


OLD_COLUMNS = (
    "link_id", "created_at", "status", "livemode", "origin", "description", "reference", "customer_name",
    "customer_email", "customer_phone", "currency", "amount", "payment_id", "payment_status", "paid_at",
    "amount_paid", "amount_refunded", "provider", "provider_ref", "expires_at",
)
