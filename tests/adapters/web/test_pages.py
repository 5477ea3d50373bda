"""The hosted pay page (issue 2, point 8): pages per status, 404, share meta, QR codes, headers, a11y."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import png
import pytest
import segno

from adapters.qr import BORDER as QR_BORDER
from adapters.web.pages import QR_PNG_SCALE
from core.models import LinkStatus
from tests.adapters.web.pages_support import Page, make_link, make_overdue, page_of, payment_event
from tests.conftest import LiveApp

CSS = Path(__file__).resolve().parents[3] / "adapters" / "web" / "static" / "paylinks.css"


# ---------------------------------------------------------------- the page per status


async def test_active_link_shows_merchant_description_and_localised_amount(live: LiveApp) -> None:
    link = await make_link(live.services, reference="INV-7")
    response = await live.client.get(f"/p/{link.id}")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = await page_of(response)
    assert page.h1 == "Cake Shop"
    assert "S$25.00" in page.text() and "Chocolate cake" in page.text() and "INV-7" in page.text()
    assert page.button_names() == ["Pay S$25.00"]
    (form,) = page.forms()
    assert (form.attrs["method"], form.attrs["action"]) == ("post", f"/p/{link.id}/pay")
    assert page.lang == "en-SG"


async def test_amount_follows_the_merchants_locale(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services, minor=15_000_000, currency="IDR", locale="id_ID",
                           merchant_name="Toko Kue")
    page = await page_of(await sqlite_live.client.get(f"/p/{link.id}"))
    # An Indonesian shop's page speaks Indonesian to a customer whose browser says nothing else.
    assert page.button_names() == ["Bayar Rp 150.000,00"]
    assert page.meta("og:title") == "Bayar Rp 150.000,00 ke Toko Kue"
    assert page.lang == "id-ID"
    # A browser asking for Thai gets Thai words; the amount keeps the shop's way of writing it.
    thai = await page_of(await sqlite_live.client.get(f"/p/{link.id}", headers={"Accept-Language": "th,en;q=0.5"}))
    assert thai.lang == "th" and thai.button_names() == ["ชำระ Rp 150.000,00"]


async def test_paid_link_shows_a_receipt(live: LiveApp) -> None:
    link = await make_link(live.services, reference="INV-8")
    _outcome, payment = await live.services.links.record_payment(payment_event(link, 1))
    assert payment is not None
    page = await page_of(await live.client.get(f"/p/{link.id}"))
    assert page.h1 == "Payment received"
    text = page.text()
    assert "S$25.00" in text and "Cake Shop" in text and "INV-8" in text
    assert payment.id in text
    # The date and time on the shop's clock (en_SG: Asia/Singapore), with the zone's short name.
    assert re.search(r"\d{1,2} \w{3} \d{4}, \d{1,2}:\d{2} [ap]m SGT", text), text
    assert page.button_names() == []  # nothing left to pay
    assert page.meta("og:title") == "Paid: S$25.00 to Cake Shop"


async def test_cancelled_link_says_so_and_offers_no_pay_button(live: LiveApp) -> None:
    link = await make_link(live.services)
    await live.services.links.cancel(link.id, link.merchant_id)
    page = await page_of(await live.client.get(f"/p/{link.id}"))
    assert page.h1 == "This payment link was cancelled"
    assert page.button_names() == [] and page.forms() == []
    assert "Nothing was charged" in page.text()


async def test_overdue_link_shows_as_expired_at_once_and_is_recorded(live: LiveApp) -> None:
    link = await make_link(live.services)
    await make_overdue(live.services, link.id, live.services.clock() - timedelta(minutes=1))
    page = await page_of(await live.client.get(f"/p/{link.id}"))
    assert page.h1 == "This payment link has expired"
    assert page.button_names() == []
    stored = await live.services.links.get(link.id)
    assert stored is not None and stored.status == LinkStatus.EXPIRED


async def test_unknown_link_is_a_404_page(live: LiveApp) -> None:
    for path in ("/p/" + "a" * 28, "/p/not-a-link-id!", "/p/" + "b" * 200):
        response = await live.client.get(path)
        assert response.status == 404, path
        page = await page_of(response)
        assert page.h1 == "Payment link not found"
        assert page.lang == "en"
        assert page.button_names() == []


async def test_link_ids_are_matched_case_insensitively(sqlite_live: LiveApp) -> None:
    # Some chat clients and people retyping a link upper-case it; base32 ids survive that.
    link = await make_link(sqlite_live.services)
    assert (await sqlite_live.client.get(f"/p/{link.id.upper()}")).status == 200


async def test_page_reflects_a_payment_made_after_it_was_first_shown(sqlite_live: LiveApp) -> None:
    # The active page is reused while its row is unchanged; a payment changes the row, so the page too.
    link = await make_link(sqlite_live.services)
    for _ in range(2):
        assert (await page_of(await sqlite_live.client.get(f"/p/{link.id}"))).h1 == "Cake Shop"
    await sqlite_live.services.links.record_payment(payment_event(link, 1))
    assert (await page_of(await sqlite_live.client.get(f"/p/{link.id}"))).h1 == "Payment received"


async def test_html_in_a_description_is_escaped(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services, description='<script>alert(1)</script> & "cake"')
    response = await sqlite_live.client.get(f"/p/{link.id}")
    html = await response.text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert Page(html).meta("og:description") == '<script>alert(1)</script> & "cake"'


# ---------------------------------------------------------------- the customer who paid second


async def test_second_payer_sees_they_were_not_charged_twice(live: LiveApp) -> None:
    link = await make_link(live.services)
    await live.services.links.record_payment(payment_event(link, 1))
    _outcome, second = await live.services.links.record_payment(payment_event(link, 2))
    assert second is not None
    page = await page_of(await live.client.get(f"/p/{link.id}?payment=ch_2"))
    assert page.h1 == "This link was already paid"
    assert "will be refunded" in page.text() and "not charged twice" in page.text()
    assert second.id in page.text()
    # The first payer, and anybody else, sees the receipt.
    assert (await page_of(await live.client.get(f"/p/{link.id}?payment=ch_1"))).h1 == "Payment received"
    assert (await page_of(await live.client.get(f"/p/{link.id}"))).h1 == "Payment received"


async def test_payment_ref_of_another_link_is_ignored(sqlite_live: LiveApp) -> None:
    services = sqlite_live.services
    first = await make_link(services)
    await services.links.record_payment(payment_event(first, 1))
    await services.links.record_payment(payment_event(first, 2))  # refund_needed on `first`
    other = await make_link(services, merchant_id=first.merchant_id)
    page = await page_of(await sqlite_live.client.get(f"/p/{other.id}?payment=ch_2"))
    assert page.h1 == "Cake Shop" and page.button_names() == ["Pay S$25.00"]


# ---------------------------------------------------------------- share previews


async def test_open_graph_and_twitter_meta_unfurl_as_pay_amount_to_merchant(live: LiveApp) -> None:
    link = await make_link(live.services)
    page = await page_of(await live.client.get(f"/p/{link.id}"))
    assert page.title == "Pay S$25.00 to Cake Shop"
    assert page.meta("og:title") == "Pay S$25.00 to Cake Shop"
    assert page.meta("twitter:title") == "Pay S$25.00 to Cake Shop"
    assert page.meta("og:description") == "Chocolate cake"
    assert page.meta("twitter:description") == "Chocolate cake"
    assert page.meta("og:url") == f"{live.base_url}/p/{link.id}"
    assert page.meta("og:type") == "website"
    # The preview card (issue 14): a 1200×630 PNG whose URL changes with the link's state.
    assert page.meta("twitter:card") == "summary_large_image"
    assert page.meta("og:image").startswith(f"{live.base_url}/p/{link.id}/og.png?v=")
    assert page.meta("og:image:width") == "1200" and page.meta("og:image:height") == "630"
    assert page.meta("og:site_name") == "Cake Shop"
    assert page.meta("robots") == "noindex, nofollow"


# ---------------------------------------------------------------- QR codes


def _png_modules(data: bytes) -> list[list[bool]]:
    """Dark modules of a QR PNG, sampled at the centre of each module."""
    width, height, rows, _info = png.Reader(bytes=data).asRGB8()
    pixels = [list(row) for row in rows]
    size = width // QR_PNG_SCALE - 2 * QR_BORDER
    assert width == height and width % QR_PNG_SCALE == 0
    grid = []
    for y in range(size):
        line = []
        for x in range(size):
            py = (y + QR_BORDER) * QR_PNG_SCALE + QR_PNG_SCALE // 2
            px = (x + QR_BORDER) * QR_PNG_SCALE + QR_PNG_SCALE // 2
            value = pixels[py][px * 3]  # red channel of a black-or-white pixel
            line.append(value < 128)
        grid.append(line)
    return grid


async def test_qr_png_encodes_the_link_url(live: LiveApp) -> None:
    link = await make_link(live.services)
    response = await live.client.get(f"/p/{link.id}/qr.png")
    assert response.status == 200 and response.content_type == "image/png"
    data = await response.read()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    expected = [[bool(cell) for cell in row] for row in segno.make(f"{live.base_url}/p/{link.id}", error="m",
                                                                   micro=False).matrix]
    assert _png_modules(data) == expected


async def test_qr_svg_is_valid_svg(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services)
    response = await sqlite_live.client.get(f"/p/{link.id}/qr.svg")
    assert response.status == 200 and response.content_type == "image/svg+xml"
    root = ET.fromstring(await response.read())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert int(root.attrib["width"]) > 0 and root.find("{http://www.w3.org/2000/svg}path") is not None


async def test_qr_of_unknown_link_is_404(sqlite_live: LiveApp) -> None:
    for path in ("/p/" + "a" * 28 + "/qr.svg", "/p/" + "a" * 28 + "/qr.png", "/p/x!/qr.png"):
        assert (await sqlite_live.client.get(path)).status == 404


# ---------------------------------------------------------------- headers and what the page loads


def assert_security_headers(headers: Any) -> None:
    csp = headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives  # so default-src 'none' forbids every script
    assert directives["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp and "http" not in " ".join(directives["style-src"] + directives["img-src"])
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_security_headers_on_every_page(live: LiveApp) -> None:
    link = await make_link(live.services)
    paths = [f"/p/{link.id}", "/p/" + "a" * 28, f"/p/{link.id}/qr.svg", "/static/paylinks.css", "/nowhere"]
    for path in paths:
        response = await live.client.get(path)
        assert_security_headers(response.headers)
    checkout = await live.client.post(f"/p/{link.id}/pay", allow_redirects=False)
    assert_security_headers(checkout.headers)
    sandbox = await live.client.get(urlsplit(checkout.headers["Location"]).path)
    assert_security_headers(sandbox.headers)


async def test_pages_load_only_our_own_stylesheet_and_no_script(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services)
    page = await page_of(await sqlite_live.client.get(f"/p/{link.id}"))
    assert page.all("script") == []
    assert not any("style" in n.attrs for n in page.nodes)  # CSP blocks inline styles; none are used
    assert page.all("style") == []
    for node in page.all("link") + page.all("img"):
        url = node.attrs.get("href") or node.attrs.get("src") or ""
        assert url.startswith("/") and not url.startswith("//"), url
    (stylesheet,) = [n for n in page.all("link") if n.attrs.get("rel") == "stylesheet"]
    response = await sqlite_live.client.get(stylesheet.attrs["href"])
    assert response.status == 200 and response.content_type == "text/css"
    assert "immutable" in response.headers["Cache-Control"]
    assert "@import" not in await response.text() and "url(" not in await response.text()
    assert (await sqlite_live.client.get("/static/pages.py")).status == 404


# ---------------------------------------------------------------- accessibility


@pytest.mark.parametrize("state", ["active", "paid", "cancelled", "missing"])
async def test_every_page_has_one_h1_a_lang_and_labelled_controls(sqlite_live: LiveApp, state: str) -> None:
    services = sqlite_live.services
    link = await make_link(services)
    if state == "paid":
        await services.links.record_payment(payment_event(link, 1))
    elif state == "cancelled":
        await services.links.cancel(link.id, link.merchant_id)
    path = f"/p/{link.id}" if state != "missing" else "/p/" + "c" * 28
    page = Page(await (await sqlite_live.client.get(path)).text())
    assert len(page.all("h1")) == 1
    assert re.fullmatch(r"[a-z]{2}(-[A-Z]{2})?", page.lang)
    assert page.title
    assert any(n.attrs.get("name") == "viewport" for n in page.all("meta"))
    assert page.unlabelled_controls() == []
    assert all(img.attrs.get("alt") for img in page.all("img"))


def _css_variables() -> dict[str, str]:
    root = re.search(r":root\s*{(.*?)}", CSS.read_text(), re.S)
    assert root is not None
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", root.group(1)))


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# (text, background) pairs as the stylesheet uses them.
TEXT_PAIRS = [
    ("text", "card"), ("muted", "card"), ("muted", "page"), ("text", "page"), ("on-accent", "accent"),
    ("on-accent", "accent-hover"), ("accent", "card"), ("ok", "ok-bg"), ("bad", "bad-bg"), ("warn", "warn-bg"),
]


@pytest.mark.parametrize(("foreground", "background"), TEXT_PAIRS)
def test_text_contrast_is_at_least_4_5(foreground: str, background: str) -> None:
    colours = _css_variables()
    assert contrast(colours[foreground], colours[background]) >= 4.5


def test_focus_ring_and_input_borders_are_visible() -> None:
    colours = _css_variables()
    css = CSS.read_text()
    assert re.search(r":focus-visible\s*{[^}]*outline:\s*3px solid var\(--focus\)", css)
    # WCAG 1.4.11: focus indicators and control borders need 3:1 against what is next to them.
    for background in ("card", "page"):
        assert contrast(colours["focus"], colours[background]) >= 3
    assert contrast(colours["border"], colours["card"]) >= 3


async def test_the_receipt_follows_a_refund_on_the_next_view(live: LiveApp) -> None:
    """The receipt's HTML is reused while its link, payment and refunds are unchanged, and only then."""
    from core.refunds import RefundRequest

    link = await make_link(live.services)
    _outcome, payment = await live.services.links.record_payment(payment_event(link, 1))
    assert payment is not None
    for _ in range(2):  # the second view is the reused HTML
        page = await page_of(await live.client.get(f"/p/{link.id}"))
        assert page.h1 == "Payment received" and "A refund of" not in page.text()
    await live.services.refunds.request(RefundRequest(link_id=link.id, merchant_id=link.merchant_id,
                                                      amount_minor=400, payment_id=payment.id))
    provider = live.services.provider
    drain = getattr(provider, "drain", None)
    page = await page_of(await live.client.get(f"/p/{link.id}"))
    assert page.h1 == "Payment received, partly refunded" or "A refund of S$4.00 is on its way." in page.text()
    if drain is not None:
        await drain()  # the sandbox's refund.succeeded webhook
        page = await page_of(await live.client.get(f"/p/{link.id}"))
        assert page.h1 == "Payment received, partly refunded", page.text()
        assert "S$4.00" in page.text()


async def test_a_refund_settled_between_the_pages_two_reads_still_shows(live: LiveApp) -> None:
    """The receipt reads the payment, then its refunds: a refund webhook settling in between leaves the
    refund SUCCEEDED while the payment read first does not count it yet. The page still says refunded."""
    from sqlalchemy import insert

    from core.models import Refund, RefundStatus
    from core.sql import table

    link = await make_link(live.services)
    _outcome, payment = await live.services.links.record_payment(payment_event(link, 1))
    assert payment is not None and payment.amount_refunded_minor == 0
    now = live.services.clock()
    async with live.services.db.write() as conn:  # the refund's row as settled, the payment not yet updated
        await conn.execute(insert(table(Refund)).values(
            id="rf_between_reads", payment_id=payment.id, link_id=link.id, merchant_id=link.merchant_id,
            amount_minor=400, currency=payment.currency, status=RefundStatus.SUCCEEDED.value, requested_by="api",
            provider=payment.provider, idempotency_key="between-reads", created_at=now, updated_at=now,
            completed_at=now))
    page = await page_of(await live.client.get(f"/p/{link.id}"))
    assert page.h1 == "Payment received, partly refunded", page.text()
    assert "S$4.00" in page.text()
