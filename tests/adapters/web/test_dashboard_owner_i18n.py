"""The owner-only dashboard pages in the shop's language (issue 18): API keys, team, settings, payment
provider, CSV import and webhooks read in the catalog of the shop's locale, with the right `<html lang>`;
their form errors (a provider's missing key, a refused import file and its rows) and the refusal a staff
member gets are in that language too. Through a real sign-in, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path

import pytest
from aiohttp import FormData
from markupsafe import Markup, escape
from sqlalchemy import update

from adapters.web import branding
from bots.config import Secret, Settings
from core import i18n, limits
from core.audit import Actor, AuditLog
from core.clock import utcnow
from core.imports import Importer
from core.models import MemberRole, WebhookEndpoint
from core.money import format_money
from core.secretbox import new_key
from core.sql import table
from tests.adapters.web.dashboard_support import shop_with_member, sign_in, signin_url
from tests.conftest import LiveApp, make_settings, start_live_app

ENDPOINTS = table(WebhookEndpoint)
# A shop locale for each catalog (core.i18n.language_of_locale maps it back).
LOCALES = {"en": "en_SG", "id": "id_ID", "th": "th_TH", "vi": "vi_VN", "ms": "ms_MY", "fil": "fil_PH",
           "zh_Hans": "zh_CN", "zh_Hant": "zh_TW", "ja": "ja_JP", "ko": "ko_KR", "es": "es_ES", "pt_BR": "pt_BR"}
# Each page and a msgid it shows (a heading, a button or a legend of its own template).
PAGES = {
    "/dashboard/keys": "Create a key",
    "/dashboard/team": "Invite codes",
    "/dashboard/settings": "Money, language and time",
    "/dashboard/providers": "Change the provider",
    "/dashboard/links/import": "Import links from a CSV file",
    "/dashboard/webhooks": "Add an endpoint",
}


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[LiveApp]:
    # A webhook secret key mounts the webhook pages (as in test_dashboard_reach).
    settings: Settings = make_settings(database_url, webhooks__secret_key=Secret(new_key()))
    app, client = await start_live_app(settings, run_jobs=False)
    yield app
    await client.close()


async def shop(live: LiveApp, locale: str, *, role: MemberRole = MemberRole.OWNER) -> tuple[str, str]:
    """A shop of that locale and a signed-in member of it: (merchant id, the page's CSRF token)."""
    merchant = await live.services.merchants.create(f"Shop {locale}", currency="SGD", locale=locale)
    if role is MemberRole.STAFF:
        await shop_with_member(live, user="owner-" + locale, merchant_id=merchant.id)
    _, member_id = await shop_with_member(live, role=role, user=f"{role.value}-{locale}", merchant_id=merchant.id)
    return merchant.id, await sign_in(live.client, await signin_url(live, merchant.id, member_id))


def said(language: str, message: str, **values: object) -> str:
    """The catalog's own words for a msgid, as the page writes them (HTML-escaped)."""
    return str(escape(i18n.tr(language).gettext(message, **values)))


def test_every_catalog_has_a_locale_here() -> None:
    assert set(LOCALES) == set(i18n.LANGUAGES)
    assert {i18n.language_of_locale(locale): language for language, locale in LOCALES.items()} == {
        language: language for language in LOCALES}


async def test_the_owner_pages_read_in_the_shops_language(live: LiveApp) -> None:
    for language, locale in LOCALES.items():
        merchant_id, _csrf = await shop(live, locale)
        for path, message in PAGES.items():
            response = await live.client.get(path)
            html = await response.text()
            assert response.status == 200, (language, path)
            assert f'<html lang="{i18n.html_lang(language)}">' in html, (language, path)
            words = said(language, message)
            assert words in html, (language, path, words)
            if language != "en":
                assert words != message, (language, message)  # really translated
                assert message not in html, (language, path)  # and the English is gone
        # An endpoint's own page and its delete confirmation (text built in reach.py).
        endpoint, _secret = await live.services.webhooks.create(
            merchant_id, "https://shop.example.com/hook", ["link.paid"])
        html = await (await live.client.get(f"/dashboard/webhooks/{endpoint.id}")).text()
        assert said(language, "Send a test event") in html and f'lang="{i18n.html_lang(language)}"' in html
        state = i18n.tr(language).pgettext("webhook endpoint state", "on")
        events = Markup(i18n.tr(language).gettext('Events: <span class="mono">%(events)s</span>. State: %(state)s.'))
        assert str(events % {"events": "link.paid", "state": state}) in html, language
        html = await (await live.client.get(f"/dashboard/webhooks/{endpoint.id}/delete")).text()
        assert said(language, "%(url)s hears of nothing more, and deliveries still waiting for it are dropped. "
                    "This cannot be undone.", url=endpoint.url) in html, language


async def test_a_provider_form_error_and_an_import_error_are_in_the_shops_language(live: LiveApp) -> None:
    for language in ("id", "ja", "pt_BR"):
        _, csrf = await shop(live, LOCALES[language])
        # A Stripe form sent without its keys: each field says what is missing, in the shop's language.
        response = await live.client.post("/dashboard/providers", data={
            "csrf": csrf, "provider": "stripe", "intent": "save", "secret_key": "", "webhook_secret": ""})
        html = await response.text()
        assert response.status == 422
        for message in ("Give the secret key.", "Give the webhook signing secret.",
                        "Nothing was saved: fix the fields below."):
            assert said(language, message) in html and message not in html, (language, message)
        # A key of the wrong shape, refused by the plug-in's own check before Stripe is asked.
        response = await live.client.post("/dashboard/providers", data={
            "csrf": csrf, "provider": "stripe", "intent": "test", "secret_key": "pk_live_nope",
            "webhook_secret": "whsec_nope"})
        html = await response.text()
        message = "Secret key: expected a Stripe secret key (sk_live_… or sk_test_…)."
        assert response.status == 422 and said(language, message) in html, language
        assert "expected a Stripe secret key" not in html, language
        # A file with an unknown column is refused as a whole; then a file whose row has no reference.
        form = FormData()
        form.add_field("csrf", csrf)
        form.add_field("file", b"amount,colour\n1,red\n", filename="fees.csv", content_type="text/csv")
        response = await live.client.post("/dashboard/links/import", data=form)
        html = await response.text()
        assert response.status == 400
        refusal = said(language, "unknown column %(column)s; columns are %(columns)s", column="'colour'",
                       columns="amount, currency, description, reference, customer_name, customer_email, "
                               "customer_phone, expires_in")
        assert refusal in html and "unknown column" not in html, language
        form = FormData()
        form.add_field("csrf", csrf)
        form.add_field("file", b"amount,description,reference\n10,Fees,\n", filename="fees.csv",
                       content_type="text/csv")
        html = await (await live.client.post("/dashboard/links/import", data=form)).text()
        assert said(language, "reference is required") in html, language
        summary = i18n.tr(language).ngettext("Imported %(created)s of %(count)s row.",
                                             "Imported %(created)s of %(count)s rows.", 1, created=0)
        errors = i18n.tr(language).ngettext("%(count)s with errors.", "%(count)s with errors.", 1)
        joined = summary + ("" if language == "ja" else " ") + errors  # no space after Japanese "。"
        assert str(escape(joined)) in html and "Imported 0 of 1 row" not in html, language


async def test_a_staff_members_refusal_is_in_the_shops_language(live: LiveApp) -> None:
    message = "Only the shop's owner can open this page. Ask them if you need something here."
    for language in ("th", "zh_Hant", "es"):
        await shop(live, LOCALES[language], role=MemberRole.STAFF)
        for path in PAGES:
            if path == "/dashboard/settings":
                continue  # staff may read the settings (not change them)
            response = await live.client.get(path)
            html = await response.text()
            assert response.status == 403, (language, path)
            assert f'<html lang="{i18n.html_lang(language)}">' in html
            assert said(language, message) in html and "Only the shop" not in html, (language, path)
            assert said(language, "Not allowed") in html
        settings = await (await live.client.get("/dashboard/settings")).text()
        assert said(language, "Only the owner can change these settings.") in settings


def _refused(html: str, language: str, message: str, english: str, developer: str, **values: object) -> None:
    """The page says `message` in the shop's language; not the services' English for developers."""
    assert said(language, message, **values) in html, (language, message)
    assert developer not in html, (language, developer)
    if language != "en":
        assert said(language, message, **values) != str(escape(english % values if values else english))
        assert str(escape(english % values if values else english)) not in html, (language, english)


async def test_the_services_refusals_on_the_forms_are_in_the_shops_language(live: LiveApp) -> None:
    """The new-link form and the settings page (issue 18): a service's refusal reads in the shop's language,
    never its English `message` for developers; an English shop reads the same sentences in English."""
    amount = "Write the amount as a number, like %(example)s."
    reference = "That reference is too long."
    email = "That email address doesn't look right."
    colour_refusal: branding.BrandingError | None = None
    try:
        branding.check_brand_colour("#ffff00")
    except branding.BrandingError as error:
        colour_refusal = error
    assert colour_refusal is not None
    for language in ("th", "id", "en"):
        _, csrf = await shop(live, LOCALES[language])
        response = await live.client.post("/dashboard/links/new", data={
            "csrf": csrf, "amount": "abc", "currency": "SGD", "description": "Cake"})
        html = await response.text()
        assert response.status == 422
        _refused(html, language, amount, amount, "is not a number", example="25.00")
        response = await live.client.post("/dashboard/links/new", data={
            "csrf": csrf, "amount": "10", "currency": "SGD", "description": "Cake", "reference": "R" * 101})
        html = await response.text()
        assert response.status == 422
        _refused(html, language, reference, reference, "reference is longer than")
        response = await live.client.post("/dashboard/links/new", data={
            "csrf": csrf, "amount": "99999999", "currency": "SGD", "description": "Cake"})
        html = await response.text()
        most = format_money(limits.max_amount_minor(live.services.links.max_amount, "SGD"), "SGD", LOCALES[language])
        _refused(html, language, "A link may ask for at most %(most)s.", "A link may ask for at most %(most)s.",
                 "must be at most", most=most)
        response = await live.client.post("/dashboard/settings", data={
            "csrf": csrf, "name": "Cake Corner", "brand_color": "#ffff00", "support_email": "not-an-email",
            "default_currency": "SGD", "locale": LOCALES[language]})
        html = await response.text()
        assert response.status == 422
        _refused(html, language, email, email, "is not an email address")
        shown = str(escape(colour_refusal.translated(i18n.tr(language))))
        assert shown in html, (language, shown)
        if language != "en":
            assert "White text on" not in html and "contrast of" not in html, language


async def test_an_import_rows_money_reason_is_in_the_shops_language_on_the_page_and_in_its_csv(
        live: LiveApp, tmp_path: Path) -> None:
    merchant_id, csrf = await shop(live, LOCALES["ja"])
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field("file", b"amount,description,reference\nabc,Fees,R1\n", filename="fees.csv",
                   content_type="text/csv")
    html = await (await live.client.post("/dashboard/links/import", data=form)).text()
    reason = i18n.tr("ja").gettext("Write the amount as a number, like %(example)s.", example="25.00")
    assert reason != "Write the amount as a number, like 25.00."
    assert str(escape(reason)) in html and "is not a number" not in html
    found = re.search(r'<textarea id="errors-csv"[^>]*>(.*?)</textarea>', html, re.DOTALL)
    assert found is not None
    assert list(csv.reader(io.StringIO(unescape(found.group(1))))) == [["row", "reason"], ["2", reason]]
    # The CLI (`paylinks link import`) keeps its English reason.
    path = tmp_path / "fees.csv"
    path.write_text("amount,description,reference\nabc,Fees,R1\n")
    report = await Importer(live.services.links).run(path, merchant_id)
    assert report.errors == [(2, "amount: 'abc' is not a number; write it like \"25.00\"")]


async def test_the_audit_log_names_its_actions_in_the_shops_language(live: LiveApp) -> None:
    merchant_id, _csrf = await shop(live, LOCALES["es"])
    await AuditLog(live.services.db).record(merchant_id, "link.refunded", Actor("Ana", "console"),
                                            link_id="lnk_refunded1", amount="5.00", currency="SGD")
    html = await (await live.client.get("/dashboard/audit")).text()
    label = said("es", "Payment refunded")
    assert label == "Pago reembolsado" and label in html and ">Payment refunded<" not in html
    assert "link.refunded" in html and "lnk_refunded1" in html  # the code stays, beside its label
    # The details name their parts in Spanish too (the values as stored).
    assert "Enlace: lnk_refunded1" in html and "Importe: 5.00" in html and "Moneda: SGD" in html
    assert "link_id:" not in html and "amount:" not in html


async def test_an_endpoints_disable_reason_is_shown_in_the_shops_language(live: LiveApp) -> None:
    merchant_id, _csrf = await shop(live, LOCALES["vi"])
    endpoint, _secret = await live.services.webhooks.create(merchant_id, "https://shop.example.com/hook",
                                                            ["link.paid"])
    async with live.services.db.write() as conn:
        await conn.execute(update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint.id).values(
            disabled_at=utcnow(), disabled_reason="timed out"))
    html = await (await live.client.get(f"/dashboard/webhooks/{endpoint.id}")).text()
    assert said("vi", "no answer in time") in html and "timed out" not in html
