"""The seller's dashboard in the shop's language (issue 18): for every catalog, a shop whose locale reads it
sees its overview, links, link and new-link pages in that catalog's words, under the right <html lang>, and a
refused action (a Forbidden page) explains itself in that language too. On both back ends."""

from __future__ import annotations

import pytest
from markupsafe import escape

from adapters.web.dashboard.views import link_status_word
from core import i18n
from core.links import LinkDraft
from core.money import Money
from tests.adapters.web.dashboard_support import shop_with_member, sign_in, signin_url
from tests.conftest import LiveApp

# A shop locale for each catalog (core.i18n.language_of_locale maps it back).
LOCALES = {
    "en": "en_SG", "id": "id_ID", "th": "th_TH", "vi": "vi_VN", "ms": "ms_MY", "fil": "fil_PH",
    "zh_Hans": "zh_Hans_CN", "zh_Hant": "zh_Hant_TW", "ja": "ja_JP", "ko": "ko_KR", "es": "es_ES", "pt_BR": "pt_BR",
}
# msgids each page shows whatever the shop holds (each catalog's translation differs from the English).
PAGE_WORDS = {
    "/dashboard": ("The same as a table", "Last 7 days", "Open links"),
    "/dashboard/links": ("Download CSV", "Description, reference, customer name, email or phone, or id"),
    "/dashboard/links/new": ("Make the link", "What it is for", "Send the link to the customer by"),
    "link": ("Link to send", "Open the pay page", "No payments yet."),
}


def test_every_catalog_is_covered() -> None:
    assert set(LOCALES) == set(i18n.LANGUAGES)
    assert all(i18n.language_of_locale(locale) == language for language, locale in LOCALES.items())


async def _shop(live: LiveApp, locale: str) -> tuple[str, str]:
    """A signed-in owner of a shop in `locale`, with one open link: (the shop's id, the link's id)."""
    merchant = await live.services.merchants.create("Toko Kue", currency="SGD", locale=locale)
    merchant_id, member_id = await shop_with_member(live, merchant_id=merchant.id)
    await sign_in(live.client, await signin_url(live, merchant_id, member_id))
    link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(2500, "SGD"), description="kue ulang tahun",
        origin_platform="console", origin_address="console:u1"))
    return merchant_id, link.id


@pytest.mark.parametrize("language", i18n.LANGUAGES)
async def test_the_dashboard_pages_are_in_the_shops_language(live: LiveApp, language: str) -> None:
    _merchant_id, link_id = await _shop(live, LOCALES[language])
    t = i18n.tr(language)
    for page, msgids in PAGE_WORDS.items():
        path = f"/dashboard/links/{link_id}" if page == "link" else page
        response = await live.client.get(path)
        html = await response.text()
        assert response.status == 200, html
        assert f'<html lang="{i18n.html_lang(language)}">' in html
        assert f'<span class="dash-role">{escape(t.pgettext("member role", "owner"))}</span>' in html
        for msgid in msgids:
            word = t.gettext(msgid)
            if language != "en":
                assert word != msgid, f"{language} has no translation of {msgid!r}"
                assert str(escape(msgid)) not in html, f"{path}: English {msgid!r} left on a {language} page"
            assert str(escape(word)) in html, f"{path}: {language} misses {word!r}"
    # The statuses read in the shop's language too: the open link's badge on the links page, and the filter.
    links = await (await live.client.get("/dashboard/links")).text()
    active = link_status_word(t, "active")
    assert f'">{escape(active)}</span>' in links and f'<option value="paid">{escape(link_status_word(t, "paid"))}' \
        in links


@pytest.mark.parametrize("language", ["th", "ja", "es"])
async def test_a_refused_refund_explains_itself_in_the_shops_language(live: LiveApp, language: str) -> None:
    """A Forbidden page: a link with nothing paid has nothing to refund (the owner's Refund page says so)."""
    _merchant_id, link_id = await _shop(live, LOCALES[language])
    t = i18n.tr(language)
    response = await live.client.get(f"/dashboard/links/{link_id}/refund")
    html = await response.text()
    assert response.status == 403
    assert f'<html lang="{i18n.html_lang(language)}">' in html
    message = t.gettext("There is nothing left to refund on this link.")
    assert message != "There is nothing left to refund on this link."
    assert str(escape(message)) in html and "nothing left to refund" not in html
    assert str(escape(t.gettext("Not allowed"))) in html


async def test_views_texts_read_in_the_shops_language(live: LiveApp) -> None:
    """Texts views.py builds (a confirmation, the chart's summary, a filter's problem) come from the catalog,
    placeholders filled."""
    _merchant_id, link_id = await _shop(live, "id_ID")
    t = i18n.tr("id")
    confirm = await (await live.client.get(f"/dashboard/links/{link_id}/cancel")).text()
    assert str(escape(t.gettext("Yes, cancel the link"))) in confirm and "Ya, batalkan tautan" in confirm
    assert "kue ulang tahun. Pelanggan tidak akan bisa membayarnya lagi." in confirm
    overview = await (await live.client.get("/dashboard")).text()
    # Nothing live paid yet: the chart is the test-mode one, its summary one whole sentence of the catalog.
    assert "Mode uji: pembayaran SGD per hari dari " in overview and "; belum ada yang dibayar." in overview
    assert "aid in SGD per day" not in overview
    # A filter the API would refuse in English (for developers) is explained beside the field in the shop's words.
    links = await (await live.client.get("/dashboard/links", params={"from": "yesterday"})).text()
    assert 'id="from-error">Isi tanggal, misalnya 2026-12-01.</span>' in links and "must be a date" not in links
