"""Pay → sandbox checkout → signed webhook → receipt (issue 2, point 9), through the real app over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.payments.sandbox import SandboxProvider
from core import i18n
from core.models import LinkStatus, PaymentLink, PaymentStatus
from core.ports import Checkout, PaymentEvent, WebhookError
from tests.adapters.web.pages_support import make_link, make_overdue, page_of, payment_event
from tests.conftest import LiveApp

SUCCESS = {"card_number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123", "name": "Ann Tan"}
DECLINE = {**SUCCESS, "card_number": "4000 0000 0000 0002"}


def provider(live: LiveApp) -> SandboxProvider:
    assert isinstance(live.services.provider, SandboxProvider)
    return live.services.provider


async def start_checkout(live: LiveApp, link: PaymentLink, **form: str) -> str:
    """Press Pay on the pay page; the path of the sandbox checkout it redirects to."""
    response = await live.client.post(f"/p/{link.id}/pay", data=form or None, allow_redirects=False)
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert location.startswith(f"{live.base_url}/sandbox/checkout/")
    return urlsplit(location).path


async def pay(live: LiveApp, checkout_path: str, form: dict[str, str]) -> Any:
    return await live.client.post(checkout_path, data=form, allow_redirects=False)


# ---------------------------------------------------------------- starting a checkout


async def test_pay_redirects_to_a_checkout_for_the_stored_amount_only(live: LiveApp,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    link = await make_link(live.services)
    calls: list[tuple[str, int, str, str, str]] = []
    real = provider(live).create_checkout

    async def spy(link: PaymentLink, *, return_url: str, idempotency_key: str) -> Checkout:
        calls.append((link.id, link.amount_minor, link.currency, return_url, idempotency_key))
        return await real(link, return_url=return_url, idempotency_key=idempotency_key)

    monkeypatch.setattr(provider(live), "create_checkout", spy)
    # A client that tries to choose the amount is ignored: nothing it posts reaches the provider.
    path = await start_checkout(live, link, amount="0.01", amount_minor="1", currency="USD")
    assert "amount" not in (urlsplit(path).query or "")
    session = provider(live).decode_session(path.rsplit("/", 1)[1])
    assert session is not None
    assert (session.link_id, session.amount_minor, session.currency) == (link.id, 2500, "SGD")
    assert calls == [(link.id, 2500, "SGD", f"{live.base_url}/p/{link.id}", f"{link.id}:1")]
    # Each press is a new attempt with its own idempotency key.
    second = await start_checkout(live, link)
    assert calls[-1][4] == f"{link.id}:2" and second != path
    stored = await live.services.links.get(link.id)
    assert stored is not None and stored.checkout_attempts == 2


async def test_a_link_that_is_not_active_cannot_start_a_checkout(live: LiveApp,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    services = live.services
    paid, cancelled, expired = [await make_link(services) for _ in range(3)]
    await services.links.record_payment(payment_event(paid, 1))
    await services.links.cancel(cancelled.id, cancelled.merchant_id)
    await make_overdue(services, expired.id, services.clock().replace(year=2020))

    async def must_not_be_called(*args: object, **kwargs: object) -> Checkout:
        raise AssertionError("a checkout was created for a link that cannot be paid")

    monkeypatch.setattr(provider(live), "create_checkout", must_not_be_called)
    for link in (paid, cancelled, expired):
        response = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == f"/p/{link.id}"
    unknown = await live.client.post("/p/" + "a" * 28 + "/pay", allow_redirects=False)
    assert unknown.status == 404


async def test_checkout_page_has_a_card_number_field_and_a_pay_button(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services, description="Birthday cake")
    page = await page_of(await sqlite_live.client.get(await start_checkout(sqlite_live, link)))
    card = page.labelled("Card number")
    assert card.tag == "input" and card.attrs["name"] == "card_number"
    assert card.attrs["autocomplete"] == "cc-number"
    assert page.unlabelled_controls() == []
    assert page.button_names() == ["Pay S$25.00"]  # written as the pay page writes it (the shop's locale, en_SG)
    assert len(page.all("h1")) == 1 and "Birthday cake" in page.text()
    assert "Sandbox" in page.text()


async def test_tampered_or_expired_checkout_tokens_are_refused(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services)
    path = await start_checkout(sqlite_live, link)
    prefix, token = path.rsplit("/", 1)
    payload, mac = token.split(".")
    forged = provider(sqlite_live)
    other = SandboxProvider(public_base_url=sqlite_live.base_url, webhook_secret="not-our-secret")
    session = forged.decode_session(token)
    assert session is not None
    for bad in (f"{payload}.{'0' * len(mac)}", payload, "garbage",
                other.encode_session(session.__class__(**{**_fields(session), "amount_minor": 1}))):
        response = await sqlite_live.client.get(f"{prefix}/{bad}")
        assert response.status == 404
        assert (await pay(sqlite_live, f"{prefix}/{bad}", SUCCESS)).status == 404
    stale = forged.encode_session(session.__class__(**{**_fields(session), "expires": 1}))
    response = await sqlite_live.client.get(f"{prefix}/{stale}")
    assert response.status == 410
    assert (await pay(sqlite_live, f"{prefix}/{stale}", SUCCESS)).status == 410
    assert await sqlite_live.services.links.payments_for(link.id) == []


def _fields(session: object) -> dict[str, Any]:
    return {name: getattr(session, name) for name in session.__slots__}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- paying


async def test_test_card_pays_the_link_and_lands_on_the_receipt(live: LiveApp) -> None:
    link = await make_link(live.services)
    response = await pay(live, await start_checkout(live, link), SUCCESS)
    assert response.status == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == f"/p/{link.id}"
    charge = parse_qs(location.query)["payment"][0]
    (payment,) = await live.services.links.payments_for(link.id)
    assert (payment.provider_ref, payment.status, payment.amount_minor) == (charge, PaymentStatus.SUCCEEDED, 2500)
    assert payment.payer_name == "Ann Tan"
    stored = await live.services.links.get(link.id)
    assert stored is not None and stored.status == LinkStatus.PAID
    receipt = await page_of(await live.client.get(f"{location.path}?{location.query}"))
    assert receipt.h1 == "Payment received" and payment.id in receipt.text()


async def test_card_number_spaces_and_dashes_are_allowed(sqlite_live: LiveApp) -> None:
    for number in ("4242424242424242", "4242-4242-4242-4242", " 4242 4242 4242 4242 "):
        link = await make_link(sqlite_live.services)
        response = await pay(sqlite_live, await start_checkout(sqlite_live, link), {**SUCCESS, "card_number": number})
        assert response.status == 303, number


async def test_declined_card_says_so_and_the_customer_can_try_again(live: LiveApp) -> None:
    link = await make_link(live.services)
    path = await start_checkout(live, link)
    response = await pay(live, path, DECLINE)
    assert response.status == 402
    page = await page_of(response)
    alert = [n for n in page.nodes if n.attrs.get("role") == "alert"]
    assert len(alert) == 1 and "declined" in alert[0].text() and "Nothing was charged" in alert[0].text()
    assert page.labelled("Card number").attrs.get("aria-invalid") == "true"
    assert "4000" not in page.labelled("Card number").attrs.get("value", "")  # the number is not echoed back
    assert page.button_names() == ["Pay S$25.00"]  # the form is there again
    assert await live.services.links.payments_for(link.id) == []
    retry = await pay(live, path, SUCCESS)
    assert retry.status == 303
    stored = await live.services.links.get(link.id)
    assert stored is not None and stored.status == LinkStatus.PAID


@pytest.mark.parametrize(("form", "message"), [
    ({"card_number": "5555 5555 5555 4444"}, "Use a test card"),
    ({"card_number": "4242"}, "not a card number"),
    ({"card_number": "abcd efgh ijkl mnop"}, "not a card number"),
    ({"card_number": ""}, "not a card number"),
    ({"expiry": "13/30"}, "MM/YY"),
    ({"expiry": "soon"}, "MM/YY"),
    ({"expiry": "01/20"}, "expired"),
    ({"cvc": "12"}, "CVC"),
])
async def test_other_input_gets_a_clear_message(sqlite_live: LiveApp, form: dict[str, str], message: str) -> None:
    link = await make_link(sqlite_live.services)
    response = await pay(sqlite_live, await start_checkout(sqlite_live, link), {**SUCCESS, **form})
    assert response.status == 422
    page = await page_of(response)
    (alert,) = [n for n in page.nodes if n.attrs.get("role") == "alert"]
    assert message in alert.text()
    assert await sqlite_live.services.links.payments_for(link.id) == []


async def test_a_double_submitted_checkout_is_one_payment(live: LiveApp) -> None:
    link = await make_link(live.services)
    path = await start_checkout(live, link)
    first, second = await asyncio.gather(pay(live, path, SUCCESS), pay(live, path, SUCCESS))
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"]
    (payment,) = await live.services.links.payments_for(link.id)
    assert payment.status == PaymentStatus.SUCCEEDED


async def test_two_customers_paying_at_once_one_payment_and_one_refund(live: LiveApp) -> None:
    link = await make_link(live.services)
    paths = [await start_checkout(live, link) for _ in range(2)]
    responses = await asyncio.gather(*(pay(live, p, SUCCESS) for p in paths))
    assert [r.status for r in responses] == [303, 303]
    payments = await live.services.links.payments_for(link.id)
    assert sorted(p.status for p in payments) == [PaymentStatus.REFUND_NEEDED, PaymentStatus.SUCCEEDED]
    headings = []
    for response in responses:
        location = urlsplit(response.headers["Location"])
        page = await page_of(await live.client.get(f"{location.path}?{location.query}"))
        headings.append(page.h1)
        if page.h1 == "This link was already paid":
            assert "will be refunded" in page.text()
    assert sorted(headings) == ["Payment received", "This link was already paid"]


async def test_paying_a_checkout_after_the_link_was_cancelled_is_refunded(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services)
    path = await start_checkout(sqlite_live, link)
    await sqlite_live.services.links.cancel(link.id, link.merchant_id)
    response = await pay(sqlite_live, path, SUCCESS)
    location = urlsplit(response.headers["Location"])
    page = await page_of(await sqlite_live.client.get(f"{location.path}?{location.query}"))
    assert page.h1 == "This link was cancelled before your payment arrived"
    assert "will be refunded" in page.text()


async def test_when_the_shop_does_not_confirm_the_customer_is_told(sqlite_live: LiveApp,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    link = await make_link(sqlite_live.services)
    path = await start_checkout(sqlite_live, link)

    def refuse(headers: object, raw_body: bytes) -> PaymentEvent:
        raise WebhookError("signature does not match")

    # The shop refuses every webhook (say its secret was rotated on one side only): a 400 to the gateway.
    monkeypatch.setattr(provider(sqlite_live), "verify_webhook", refuse)
    response = await pay(sqlite_live, path, SUCCESS)
    assert response.status == 502
    page = await page_of(response)
    assert page.h1 == "The shop did not confirm the payment" and "nothing was charged" in page.text()
    assert await sqlite_live.services.links.payments_for(link.id) == []


async def test_a_shop_that_fails_once_gets_the_webhook_again(sqlite_live: LiveApp,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp import web

    link = await make_link(sqlite_live.services)
    path = await start_checkout(sqlite_live, link)
    sandbox = provider(sqlite_live)
    verify = sandbox.verify_webhook
    calls: list[int] = []

    def busy_once(headers: Any, raw_body: bytes) -> PaymentEvent:
        calls.append(1)
        if len(calls) == 1:
            raise web.HTTPServiceUnavailable()  # a 5xx: the "gateway" retries (tenacity, 3 attempts)
        return verify(headers, raw_body)

    monkeypatch.setattr(sandbox, "verify_webhook", busy_once)
    response = await pay(sqlite_live, path, SUCCESS)
    assert response.status == 303 and len(calls) == 2
    assert [p.status for p in await sqlite_live.services.links.payments_for(link.id)] == [PaymentStatus.SUCCEEDED]


async def test_a_shop_that_keeps_failing_gets_three_attempts_then_the_customer_is_told(
    sqlite_live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp import web

    link = await make_link(sqlite_live.services)
    path = await start_checkout(sqlite_live, link)
    calls: list[int] = []

    def down(headers: Any, raw_body: bytes) -> PaymentEvent:
        calls.append(1)
        raise web.HTTPInternalServerError()

    monkeypatch.setattr(provider(sqlite_live), "verify_webhook", down)
    response = await pay(sqlite_live, path, SUCCESS)
    assert response.status == 502 and len(calls) == 3
    assert await sqlite_live.services.links.payments_for(link.id) == []


# ---------------------------------------------------------------- the customer's language (issue 18)


async def test_the_sandbox_card_page_speaks_the_pay_pages_language(live: LiveApp) -> None:
    """?lang, its cookie, Accept-Language, else the shop's locale, as the pay pages choose; <html lang> too."""
    link = await make_link(live.services, description="Birthday cake")
    path = await start_checkout(live, link)
    client = live.client
    # No header: the shop's language (en_SG), unchanged.
    english = await page_of(await client.get(path))
    assert english.lang == "en-SG" and english.labelled("Card number").attrs["name"] == "card_number"
    assert english.title == "Sandbox checkout: pay S$25.00"
    # The browser's language.
    th = i18n.tr("th")
    thai = await page_of(await client.get(path, headers={"Accept-Language": "th-TH,th;q=0.9,en;q=0.5"}))
    assert thai.lang == "th"
    assert thai.labelled("หมายเลขบัตร").attrs["name"] == "card_number"  # "Card number"
    assert thai.title == th.gettext("Sandbox checkout: pay %(amount)s", amount="S$25.00") != english.title
    assert thai.button_names() == [th.gettext("Pay %(amount)s", amount="S$25.00")]
    assert "Card number" not in thai.text() and "Cancel and go back" not in thai.text()
    # ?lang= (the switcher's) wins over Accept-Language and is remembered, so the declined card's answer
    # to the form post is in Japanese too.
    chosen = await client.get(f"{path}?lang=ja", headers={"Accept-Language": "th"})
    assert "paylinks_lang=ja" in chosen.headers["Set-Cookie"]
    japanese = await page_of(chosen)
    assert japanese.lang == "ja" and japanese.labelled("カード番号").attrs["name"] == "card_number"
    declined = await client.post(path, data=DECLINE, headers={"Accept-Language": "th"})
    assert declined.status == 402
    page = await page_of(declined)
    assert page.lang == "ja"
    (alert,) = [n for n in page.nodes if n.attrs.get("role") == "alert"]
    assert "カードが承認されませんでした。" in alert.text()  # "Your card was declined."
    assert "declined" not in alert.text()


async def test_the_sandbox_refusal_pages_speak_the_customers_language(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services)
    prefix = (await start_checkout(sqlite_live, link)).rsplit("/", 1)[0]
    missing = await sqlite_live.client.get(f"{prefix}/garbage", headers={"Accept-Language": "id-ID"})
    assert missing.status == 404
    page = await page_of(missing)
    assert page.lang == "id" and page.h1 == "Checkout tidak ditemukan"
    english = await page_of(await sqlite_live.client.get(f"{prefix}/garbage"))
    assert english.lang == "en" and english.h1 == "Checkout not found"
