"""Links that sell many times through the API and the pay page (HTML forms, the sandbox checkout), on
SQLite and PostgreSQL: stock under 100 buyers at once, quantity, chosen amounts, split bills, promo codes."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest

from adapters.payments.sandbox import SandboxProvider
from bots.config import Settings
from core.models import LinkStatus
from tests.adapters.web.api_support import Shop, make_shop
from tests.adapters.web.pages_support import page_of
from tests.conftest import LiveApp, make_settings

CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123", "name": "Ann Tan"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    # 100 buyers from one test client: the per-IP limit of the public pages must not be what refuses them.
    return make_settings(database_url, limits__public_per_ip="1000/s")


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live, "Concert Hall")


def sandbox(live: LiveApp) -> SandboxProvider:
    assert isinstance(live.services.provider, SandboxProvider)
    return live.services.provider


async def create(shop: Shop, **body: Any) -> dict[str, Any]:
    resp = await shop.api.create({"description": "concert ticket", **body})
    assert resp.status == 201, resp.text
    return resp.body  # type: ignore[no-any-return]


async def press_pay(live: LiveApp, link_id: str, **form: str) -> Any:
    return await live.client.post(f"/p/{link_id}/pay", data=form or {}, allow_redirects=False)


async def checkout(live: LiveApp, link_id: str, **form: str) -> str:
    response = await press_pay(live, link_id, **form)
    assert response.status == 303, await response.text()
    return urlsplit(response.headers["Location"]).path


async def pay_card(live: LiveApp, checkout_path: str) -> str:
    """Pay the sandbox checkout; the receipt URL (path?payment=…) it returns to."""
    response = await live.client.post(checkout_path, data=CARD, allow_redirects=False)
    assert response.status == 303, await response.text()
    location = urlsplit(response.headers["Location"])
    return f"{location.path}?{location.query}"


def session_amount(live: LiveApp, path: str) -> int:
    session = sandbox(live).decode_session(path.rsplit("/", 1)[1])
    assert session is not None
    return session.amount_minor


async def test_tickets_with_quantity_and_stock(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, amount="25.00", reusable=True, stock=50, quantity={"adjustable": True, "max": 10})
    assert (link["reusable"], link["stock"], link["quantity"]) == (True, 50, {"adjustable": True, "min": 1, "max": 10})
    assert (link["payments_count"], link["units_sold"], link["amount_collected"]) == (0, 0, "0.00")
    page = await page_of(await live.client.get(f"/p/{link['id']}"))
    quantity = page.labelled("Quantity")
    assert (quantity.attrs["min"], quantity.attrs["max"], quantity.attrs["type"]) == ("1", "10", "number")
    assert page.labelled("Promo code (optional)").attrs["name"] == "promo_code"
    assert "0 of 50 sold · 50 left" in page.text()
    # A quantity out of range is refused on the page, with the reason; nothing is reserved.
    bad = await press_pay(live, link["id"], quantity="11")
    assert bad.status == 422 and "Choose a quantity from 1 to 10" in await bad.text()
    path = await checkout(live, link["id"], quantity="3")
    assert session_amount(live, path) == 7500  # unit × quantity, in minor units
    receipt_url = await pay_card(live, path)
    receipt = await page_of(await live.client.get(receipt_url))
    assert receipt.h1 == "Payment received" and "concert ticket × 3" in receipt.text()
    after = (await shop.api.get(f"/api/v1/links/{link['id']}")).body
    assert (after["status"], after["payments_count"], after["units_sold"]) == ("active", 1, 3)
    assert (after["amount_collected"], after["amount_collected_minor"]) == ("75.00", 7500)
    (payment,) = after["payments"]
    assert payment["id"] in receipt.text() and payment["amount_minor"] == 7500
    assert "3 of 50 sold · 47 left" in (await page_of(await live.client.get(f"/p/{link['id']}"))).text()


async def test_hundred_buyers_at_once_on_stock_ten(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, amount="25.00", reusable=True, stock=10)
    presses = list(await asyncio.gather(*(press_pay(live, link["id"]) for _ in range(100))))
    # A press the server was too busy for (503, all database connections in use on PostgreSQL) is pressed
    # again, as the page tells the customer to.
    while busy := [n for n, r in enumerate(presses) if r.status == 503]:
        for n, response in zip(busy, await asyncio.gather(*(press_pay(live, link["id"]) for _ in busy)),
                               strict=True):
            presses[n] = response
    statuses = sorted(r.status for r in presses)
    assert statuses.count(303) == 10 and statuses.count(409) == 90
    for response in presses:
        if response.status == 303:
            await pay_card(live, urlsplit(response.headers["Location"]).path)
    after = (await shop.api.get(f"/api/v1/links/{link['id']}")).body
    assert (after["status"], after["units_sold"], after["payments_count"]) == ("sold_out", 10, 10)
    assert len({p["id"] for p in after["payments"]}) == 10
    page = await page_of(await live.client.get(f"/p/{link['id']}"))
    assert "Sold out" in page.text() and page.forms() == []
    assert (await press_pay(live, link["id"])).status == 409
    listed = await shop.api.get("/api/v1/links", params={"status": "sold_out"})
    assert [x["id"] for x in listed.body["data"]] == [link["id"]]


async def test_max_payments_limit(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, amount="30.00", reusable=True, max_payments=1)
    await pay_card(live, await checkout(live, link["id"]))
    after = (await shop.api.get(f"/api/v1/links/{link['id']}")).body
    assert (after["status"], after["max_payments"]) == ("sold_out", 1)


async def test_customer_chooses_the_amount(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, description="school library fund", amount_mode="customer_chooses", min_amount="5.00",
                        max_amount="500", suggested_amounts=["10", "20.00", "50"])
    assert (link["amount_mode"], link["min_amount"], link["suggested_amounts"]) == \
        ("customer_chooses", "5.00", ["10.00", "20.00", "50.00"])
    page = await page_of(await live.client.get(f"/p/{link['id']}"))
    assert [b for b in page.button_names() if b.startswith("S$")] == ["S$10.00", "S$20.00", "S$50.00"]
    for typed, reason in (("1.00", "The smallest amount is 5.00 SGD"), ("abc", "is not an amount"),
                          ("", "Enter the amount"), ("600", "The largest amount is 500.00 SGD")):
        refused = await press_pay(live, link["id"], other_amount=typed)
        assert refused.status == 422 and reason in await refused.text(), typed
    assert session_amount(live, await checkout(live, link["id"], amount="20.00")) == 2000
    path = await checkout(live, link["id"], other_amount="12.34")
    assert session_amount(live, path) == 1234
    await pay_card(live, path)
    after = (await shop.api.get(f"/api/v1/links/{link['id']}")).body
    assert (after["amount_collected"], after["payments_count"], after["status"]) == ("12.34", 1, "active")


async def test_split_bill(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, amount="100.00", description="dinner", split={"ways": 3})
    assert link["split"] == {"ways": 3, "paid": 0, "shares": ["33.34", "33.33", "33.33"]}
    page = await page_of(await live.client.get(f"/p/{link['id']}"))
    assert "0 of 3 paid" in page.text() and "S$33.34" in page.text()
    first = await checkout(live, link["id"], quantity="1")
    assert session_amount(live, first) == 3334
    await pay_card(live, first)
    assert "1 of 3 paid" in (await page_of(await live.client.get(f"/p/{link['id']}"))).text()
    both = await checkout(live, link["id"], quantity="2")  # one share paid for two people
    assert session_amount(live, both) == 6666
    await pay_card(live, both)
    after = (await shop.api.get(f"/api/v1/links/{link['id']}")).body
    assert (after["status"], after["amount_collected_minor"], after["split"]["paid"]) == ("paid", 10000, 3)
    assert "Paid in full" in (await page_of(await live.client.get(f"/p/{link['id']}"))).text()


async def test_promo_codes_api_and_pay_page(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, amount="25.00", reusable=True)
    made = await shop.api.post("/api/v1/promo_codes", json_body={"code": "save10", "percent_off": "10",
                                                                 "max_redemptions": 1})
    assert made.status == 201, made.text
    assert (made.body["code"], made.body["percent_off"], made.body["times_redeemed"]) == ("SAVE10", "10", 0)
    again = await shop.api.post("/api/v1/promo_codes", json_body={"code": "SAVE10", "percent_off": "5"})
    assert again.status == 409 and again.error["code"] == "promo_exists"
    both = await shop.api.post("/api/v1/promo_codes", json_body={"code": "X1", "percent_off": "5",
                                                                 "amount_off": "1.00", "currency": "SGD"})
    assert both.status == 400 and both.error["field"] == "percent_off"
    fixed = await shop.api.post("/api/v1/promo_codes", json_body={"code": "WELCOME", "amount_off": "5.00",
                                                                  "currency": "SGD", "link_ids": [link["id"]]})
    assert fixed.status == 201 and fixed.body["amount_off_minor"] == 500
    bad = await press_pay(live, link["id"], promo_code="NOPE")
    assert bad.status == 422 and "not valid for this link" in await bad.text()
    path = await checkout(live, link["id"], promo_code="save10")
    assert session_amount(live, path) == 2250  # the discounted amount goes to the provider
    receipt = await page_of(await live.client.get(await pay_card(live, path)))
    assert "SAVE10" in receipt.text() and "S$22.50" in receipt.text()
    used = await press_pay(live, link["id"], promo_code="SAVE10")
    assert used.status == 409 and "used as many times" in await used.text()
    got = await shop.api.get("/api/v1/promo_codes/save10")
    assert got.status == 200 and got.body["times_redeemed"] == 1
    listed = await shop.api.get("/api/v1/promo_codes")
    assert [p["code"] for p in listed.body["data"]] == ["WELCOME", "SAVE10"]
    gone = await shop.api.request("DELETE", "/api/v1/promo_codes/WELCOME")
    assert gone.status == 200 and (await shop.api.get("/api/v1/promo_codes/WELCOME")).status == 404


async def test_bad_reusable_fields_name_the_field(shop: Shop) -> None:
    for body, field in (({"amount": "5", "stock": 0}, "stock"),
                        ({"amount": "5", "reusable": False, "stock": 3}, "reusable"),
                        ({"amount_mode": "customer_chooses", "min_amount": "0"}, "min_amount"),
                        ({"amount": "0.02", "split": {"ways": 3}}, "split.ways"),
                        ({"amount": "5", "suggested_amounts": ["1"]}, "amount_mode")):
        resp = await shop.api.create({"description": "x", **body})
        assert resp.status == 400 and resp.error["field"] == field, (body, resp.text)


async def test_reservation_times_out_on_the_page(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, amount="25.00", reusable=True, stock=1)
    path = await checkout(live, link["id"])
    session = sandbox(live).decode_session(path.rsplit("/", 1)[1])
    assert session is not None
    # The provider's checkout ends with the reservation ([links] reservation_timeout, 30m by default).
    assert session.expires <= int(live.services.clock() .timestamp()) + 30 * 60
    assert (await press_pay(live, link["id"])).status == 409
    released = await live.services.links.reservations.release_due()
    assert released == []
    stored = await live.services.links.get(link["id"])
    assert stored is not None and stored.units_reserved == 1 and stored.status == LinkStatus.ACTIVE


async def test_sweeper_releases_a_timed_out_reservation(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, amount="25.00", reusable=True, stock=1)
    path = await checkout(live, link["id"])
    assert (await press_pay(live, link["id"])).status == 409
    clock = live.services.clock
    later = clock() + live.services.settings.links.reservation_timeout
    live.services.links.reservations.clock = lambda: later  # the sweeper runs after the timeout
    assert await live.services.links.release_reservations() == 1
    live.services.links.reservations.clock = clock
    stored = await live.services.links.get(link["id"])
    assert stored is not None and stored.units_reserved == 0
    # The checkout it held has ended too (the sandbox's session expiry is the reservation's).
    session = sandbox(live).decode_session(path.rsplit("/", 1)[1])
    assert session is not None and session.expires <= int(later.timestamp())
    assert (await press_pay(live, link["id"])).status == 303


async def test_each_payment_is_refunded_on_its_own(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, amount="25.00", reusable=True, stock=5)
    for _ in range(2):
        await pay_card(live, await checkout(live, link["id"]))
    first, second = (await shop.api.get(f"/api/v1/links/{link['id']}")).body["payments"]
    which = await shop.api.post(f"/api/v1/links/{link['id']}/refund", json_body={})
    assert which.status == 400 and which.error["code"] == "payment_required"
    done = await shop.api.post(f"/api/v1/links/{link['id']}/refund", json_body={"payment_id": second["id"]})
    assert done.status in (200, 201, 202), done.text
    assert done.body["payment_id"] == second["id"] and done.body["amount_minor"] == 2500
    await sandbox(live).drain()
    after = (await shop.api.get(f"/api/v1/links/{link['id']}")).body
    statuses = {p["id"]: p["status"] for p in after["payments"]}
    assert statuses == {first["id"]: "succeeded", second["id"]: "refunded"}
    assert after["status"] == "active" and after["payments_count"] == 2


async def test_a_sold_out_link_in_the_dashboard(live: LiveApp, shop: Shop) -> None:
    from tests.adapters.web.dashboard_support import shop_with_member, sign_in, signin_url

    link = await create(shop, amount="25.00", reusable=True, max_payments=1)
    await pay_card(live, await checkout(live, link["id"]))
    _, member_id = await shop_with_member(live, merchant_id=shop.merchant_id)
    await sign_in(live.client, await signin_url(live, shop.merchant_id, member_id))
    listing = await live.client.get("/dashboard/links")
    text = await listing.text()
    assert listing.status == 200 and ("sold_out" in text or "Sold out" in text)
    one = await live.client.get(f"/dashboard/links/{link['id']}")
    assert one.status == 200


async def test_a_chosen_amount_above_the_deployment_ceiling_is_refused(live: LiveApp, shop: Shop) -> None:
    link = await create(shop, description="fund", amount_mode="customer_chooses", min_amount="1")
    ceiling = live.services.links.max_amount
    refused = await press_pay(live, link["id"], other_amount=str(ceiling + 1))
    assert refused.status == 422 and "The largest amount is" in await refused.text()
