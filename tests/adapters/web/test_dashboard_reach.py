"""The dashboard's CSV import and merchant webhook pages, through a real sign-in, on SQLite and PostgreSQL:
the same import as `paylinks link import` (good, bad and repeated rows; nothing sent without "send"),
endpoints created with their secret shown once, tested, their deliveries listed and resent, deleted after a
confirmation; owners only, CSRF on every form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import FormData
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from bots.config import Secret, Settings
from bots.dispatcher import build_dispatcher
from core.models import MemberRole, OutboxMessage, PaymentLink
from core.secretbox import new_key
from core.sql import table
from tests.adapters.web.dashboard_support import shop_with_member, sign_in, signin_url
from tests.clock import FakeClock
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.webhook_receiver import webhook_receiver

OUTBOX = table(OutboxMessage)
LINKS = table(PaymentLink)
GOOD = ("Amount,Currency,Description,Reference,Customer_Name,Customer_Email,Customer_Phone,Expires_In\n"
        "120.00,SGD,Term 1 fees,T1-001,Ana,ana@example.com,,30d\n"
        "80.50,,Term 1 fees,T1-002,Bo,,+65 9123 4567,\n"
        "abc,SGD,Bad amount,T1-003,,,,\n"
        "10.00,SGD,No reference,,,,,\n"
        "15.00,SGD,Again,T1-001,,,,\n")


@pytest.fixture
def settings(database_url: str) -> Settings:
    # An SMTP host turns email on with PostgreSQL too (no mail is sent here: the outbox rows are the point).
    return make_settings(database_url, webhooks__allow_private=True, webhooks__timeout=timedelta(seconds=2),
                         webhooks__secret_key=Secret(new_key()), email__host="127.0.0.1")


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveApp]:
    app, client = await start_live_app(settings, run_jobs=False, clock=FakeClock())
    yield app
    await client.close()


async def owner(live: LiveApp) -> tuple[str, str]:
    merchant_id, member_id = await shop_with_member(live)
    return merchant_id, await sign_in(live.client, await signin_url(live, merchant_id, member_id))


def upload(csrf: str | None, text: str, **flags: str) -> FormData:
    form = FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    for name, value in flags.items():
        form.add_field(name, value)
    form.add_field("file", text.encode(), filename="fees.csv", content_type="text/csv")
    return form


async def links_of(live: LiveApp, merchant_id: str) -> list[Any]:
    async with live.services.db.read() as conn:
        return list((await conn.execute(select(LINKS).where(LINKS.c.merchant_id == merchant_id)
                                        .order_by(LINKS.c.reference))).all())


# ---------------------------------------------------------------- CSV import


async def test_the_import_makes_good_rows_lists_bad_ones_and_never_makes_one_twice(live: LiveApp) -> None:
    merchant_id, csrf = await owner(live)
    page = await live.client.get("/dashboard/links/import")
    assert page.status == 200 and 'enctype="multipart/form-data"' in await page.text()
    response = await live.client.post("/dashboard/links/import", data=upload(csrf, GOOD))
    text = await response.text()
    assert response.status == 200, text
    assert "Imported 2 of 5 rows" in text and "3 with errors." in text and "Nothing sent to anyone." in text
    rows = re.findall(r'<tr><th scope="row">(\d+)</th><td><bdi>([^<]+)</bdi>', text)
    assert [int(n) for n, _ in rows] == [4, 5, 6]
    assert "amount" in rows[0][1] and "reference" in rows[1][1] and "earlier row" in rows[2][1]
    made = await links_of(live, merchant_id)
    assert [(r.reference, r.amount_minor, r.customer_email, r.customer_phone) for r in made] == [
        ("T1-001", 12000, "ana@example.com", None), ("T1-002", 8050, None, "+6591234567")]
    async with live.services.db.read() as conn:
        assert (await conn.execute(select(OUTBOX))).all() == []  # without "send", nobody hears a thing
    again = await live.client.post("/dashboard/links/import", data=upload(csrf, GOOD))
    assert "Imported 0 of 5 rows. 3 already imported (same reference)." in await again.text()
    assert len(await links_of(live, merchant_id)) == 2


async def test_send_puts_the_links_in_the_outbox_and_a_dry_run_makes_nothing(live: LiveApp) -> None:
    merchant_id, csrf = await owner(live)
    dry = await live.client.post("/dashboard/links/import", data=upload(csrf, GOOD, dry_run="1"))
    assert "Would import 2 of 5 rows" in await dry.text() and await links_of(live, merchant_id) == []
    sent = await live.client.post("/dashboard/links/import", data=upload(csrf, GOOD, send="1"))
    assert "Links sent to customers through the outbox." in await sent.text()
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(OUTBOX.c.platform, OUTBOX.c.address))).all()
    assert [(r.platform, r.address) for r in rows] == [("email", "ana@example.com")]


async def test_the_import_refuses_bad_files_strangers_staff_and_forged_forms(live: LiveApp) -> None:
    merchant_id, csrf = await owner(live)
    bad = await live.client.post("/dashboard/links/import", data=upload(csrf, "amount,colour\n1,red\n"))
    assert bad.status == 400 and "unknown column" in await bad.text() and "colour" in await bad.text()
    assert (await live.client.post("/dashboard/links/import", data=upload(None, GOOD))).status == 403
    assert (await live.client.post("/dashboard/links/import", data=upload("forged", GOOD))).status == 403
    assert await links_of(live, merchant_id) == []
    _, staff_id = await shop_with_member(live, role=MemberRole.STAFF, user="u2", merchant_id=merchant_id)
    staff_csrf = await sign_in(live.client, await signin_url(live, merchant_id, staff_id))
    assert (await live.client.get("/dashboard/links/import")).status == 403
    assert (await live.client.post("/dashboard/links/import", data=upload(staff_csrf, GOOD))).status == 403
    assert await links_of(live, merchant_id) == []


# ---------------------------------------------------------------- merchant webhooks


async def test_an_endpoint_shows_its_secret_once_gets_a_signed_test_and_its_deliveries_resend(
    live: LiveApp
) -> None:
    merchant_id, csrf = await owner(live)
    async with webhook_receiver() as receiver:
        made = await live.client.post("/dashboard/webhooks", data={
            "csrf": csrf, "url": receiver.url, "events": ["link.created", "link.paid"]})
        text = await made.text()
        assert made.status == 200, text
        found = re.search(r'id="new-secret" type="text" readonly value="(whsec_[^"]+)"', text)
        assert found is not None
        secret = found.group(1)
        (endpoint,) = await live.services.webhooks.list_endpoints(merchant_id)
        assert endpoint.events == ["link.created", "link.paid"]
        listing = await (await live.client.get("/dashboard/webhooks")).text()
        assert receiver.url in listing and secret not in listing  # shown once
        page = await (await live.client.get(f"/dashboard/webhooks/{endpoint.id}")).text()
        assert "Nothing sent yet" in page and secret not in page
        tested = await live.client.post(f"/dashboard/webhooks/{endpoint.id}/test", data={"csrf": csrf})
        assert "webhook.test" in await tested.text()
        await build_dispatcher(live.services).run_once()
        (received,) = receiver.received
        event = Webhook(secret).verify(received.body, received.headers)
        assert event["type"] == "webhook.test"
        page = await (await live.client.get(f"/dashboard/webhooks/{endpoint.id}")).text()
        assert "webhook.test" in page and "<td>200</td>" in page
        (delivery,) = await live.services.webhooks.deliveries(merchant_id, endpoint.id)
        again = await live.client.post(f"/dashboard/webhooks/{endpoint.id}/deliveries/{delivery.id}/resend",
                                       data={"csrf": csrf})
        assert again.status == 200 and "is sent again" in await again.text()
        await build_dispatcher(live.services).run_once()
        assert [r.event["id"] for r in receiver.received] == [event["id"]] * 2
        missing = await live.client.post(f"/dashboard/webhooks/{endpoint.id}/deliveries/999999/resend",
                                         data={"csrf": csrf})
        assert missing.status == 404


async def test_a_bad_url_names_the_field_and_delete_asks_first(live: LiveApp) -> None:
    merchant_id, csrf = await owner(live)
    bad = await live.client.post("/dashboard/webhooks", data={"csrf": csrf, "url": "ftp://x", "events": "link.paid"})
    text = await bad.text()
    assert bad.status == 400 and 'id="url-error"' in text and 'value="ftp://x"' in text
    none = await live.client.post("/dashboard/webhooks", data={"csrf": csrf, "url": "http://127.0.0.1:9/x"})
    assert none.status == 400 and 'id="events-error"' in await none.text()
    assert await live.services.webhooks.list_endpoints(merchant_id) == []
    await live.client.post("/dashboard/webhooks", data={"csrf": csrf, "url": "http://127.0.0.1:9/x",
                                                         "events": "link.paid"})
    (endpoint,) = await live.services.webhooks.list_endpoints(merchant_id)
    confirm = await live.client.get(f"/dashboard/webhooks/{endpoint.id}/delete")
    assert confirm.status == 200 and "cannot be undone" in await confirm.text()
    assert len(await live.services.webhooks.list_endpoints(merchant_id)) == 1  # a GET deletes nothing
    forged = await live.client.post(f"/dashboard/webhooks/{endpoint.id}/delete", data={})
    assert forged.status == 403 and len(await live.services.webhooks.list_endpoints(merchant_id)) == 1
    gone = await live.client.post(f"/dashboard/webhooks/{endpoint.id}/delete", data={"csrf": csrf},
                                  allow_redirects=False)
    assert gone.status == 303 and await live.services.webhooks.list_endpoints(merchant_id) == []
    assert (await live.client.get(f"/dashboard/webhooks/{endpoint.id}")).status == 404


async def test_webhook_pages_are_for_owners_of_that_shop_only(live: LiveApp) -> None:
    merchant_id, csrf = await owner(live)
    await live.client.post("/dashboard/webhooks", data={"csrf": csrf, "url": "http://127.0.0.1:9/x",
                                                         "events": "link.paid"})
    (endpoint,) = await live.services.webhooks.list_endpoints(merchant_id)
    other_id, other_csrf = await owner(live)  # another shop's owner, signed in on the same client now
    assert (await live.client.get(f"/dashboard/webhooks/{endpoint.id}")).status == 404
    assert (await live.client.post(f"/dashboard/webhooks/{endpoint.id}/delete",
                                   data={"csrf": other_csrf})).status == 404
    _, staff_id = await shop_with_member(live, role=MemberRole.STAFF, user="u3", merchant_id=merchant_id)
    staff_csrf = await sign_in(live.client, await signin_url(live, merchant_id, staff_id))
    for path in ("/dashboard/webhooks", f"/dashboard/webhooks/{endpoint.id}"):
        assert (await live.client.get(path)).status == 403, path
    assert (await live.client.post("/dashboard/webhooks", data={"csrf": staff_csrf, "url": "http://127.0.0.1:9/y",
                                                                 "events": "link.paid"})).status == 403
    assert len(await live.services.webhooks.list_endpoints(merchant_id)) == 1
    assert await live.services.webhooks.list_endpoints(other_id) == []
