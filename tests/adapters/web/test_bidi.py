"""Bidi controls through the web (issue 11 point 5): the API refuses them naming the field, and the pages
isolate every piece of shop-written text in <bdi> (a row stored before the refusal existed, or written
around it, still cannot reorder the page around it)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from core.models import Merchant, PaymentLink
from core.sql import table
from tests.adapters.web.api_support import make_shop
from tests.adapters.web.pages_support import Node, make_link, page_of, payment_event
from tests.conftest import LiveApp

RLO, PDF = "\u202e", "\u202c"
CREATE: dict[str, Any] = {"amount": "25.00", "description": "Chocolate cake"}


@pytest.mark.parametrize(("body", "field"), [
    ({**CREATE, "description": f"Chocolate cake {RLO}001$"}, "description"),
    ({**CREATE, "reference": f"INV{RLO}1"}, "reference"),
    ({**CREATE, "customer": {"name": f"Ann{PDF} Tan"}}, "customer.name"),
    ({**CREATE, "description": "cake \u2067x\u2069"}, "description"),
])
async def test_api_refuses_bidi_controls_naming_the_field(live: LiveApp, body: dict[str, Any], field: str) -> None:
    shop = await make_shop(live)
    resp = await shop.api.create(body)
    assert resp.status == 400, resp.text
    assert resp.error["field"] == field and resp.error["code"] == "invalid_text"
    assert "direction controls" in resp.error["message"]
    assert (await shop.api.get("/api/v1/links")).body["data"] == []


def bdi_texts(nodes: list[Node]) -> list[str]:
    return [n.text() for n in nodes if n.tag == "bdi"]


async def store_raw(live: LiveApp, link: PaymentLink, *, description: str, merchant_name: str) -> None:
    """Write text the services would refuse, as an older version or another tool might have stored it."""
    async with live.services.db.write() as conn:
        await conn.execute(update(table(PaymentLink)).where(table(PaymentLink).c.id == link.id)
                           .values(description=description, reference=f"REF{RLO}9"))
        await conn.execute(update(table(Merchant)).where(table(Merchant).c.id == link.merchant_id)
                           .values(name=merchant_name))


async def test_pay_page_isolates_shop_text_in_bdi(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services, reference="INV-7")
    await store_raw(sqlite_live, link, description=f"cake {RLO}001$", merchant_name=f"Cake{RLO} Shop")
    page = await page_of(await sqlite_live.client.get(f"/p/{link.id}"))
    isolated = bdi_texts(page.nodes)
    assert f"cake {RLO}001$" in isolated and f"Cake{RLO} Shop" in isolated and f"REF{RLO}9" in isolated
    # Every place the text shows is inside a <bdi>: nowhere does it stand loose beside other words.
    loose = page.html
    for text in (f"cake {RLO}001$", f"Cake{RLO} Shop", f"REF{RLO}9"):
        loose = loose.replace(f"<bdi>{text}</bdi>", "")
    body = loose.split("<body>", 1)[1]
    assert RLO not in body
    # The <title> cannot hold elements: there the name is wrapped in FSI … PDI.
    assert f"\u2068Cake{RLO} Shop\u2069" in page.one("title").text()


async def test_receipt_and_closed_pages_isolate_too(sqlite_live: LiveApp) -> None:
    services = sqlite_live.services
    paid = await make_link(services)
    await services.links.record_payment(payment_event(paid, 1))
    await store_raw(sqlite_live, paid, description=f"tart {RLO}x", merchant_name=f"Tart{RLO} Shop")
    receipt = await page_of(await sqlite_live.client.get(f"/p/{paid.id}"))
    assert receipt.h1 == "Payment received"
    assert {f"tart {RLO}x", f"Tart{RLO} Shop"} <= set(bdi_texts(receipt.nodes))
    cancelled = await make_link(services, merchant_id=paid.merchant_id)
    await services.links.cancel(cancelled.id, paid.merchant_id)
    closed = await page_of(await sqlite_live.client.get(f"/p/{cancelled.id}"))
    assert closed.h1 == "This payment link was cancelled"
    assert bdi_texts(closed.nodes).count(f"Tart{RLO} Shop") == 2  # the facts and the sentence
    assert f"\u2068Tart{RLO} Shop\u2069 cancelled it" in closed.text()


async def test_plain_names_are_unchanged_but_still_isolated(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services, merchant_name="Toko Kue", description="Kue ulang tahun")
    page = await page_of(await sqlite_live.client.get(f"/p/{link.id}"))
    assert page.title == "Pay S$25.00 to Toko Kue" and page.h1 == "Toko Kue"
    assert {"Toko Kue", "Kue ulang tahun"} <= set(bdi_texts(page.nodes))
