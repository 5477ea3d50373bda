"""Who sees which language on the pay pages (issue 18, points 2 and 5): Accept-Language among the catalogs,
then the shop's locale; the switcher's ?lang= remembered in a cookie; <html lang>; wide and right-to-left
text kept whole."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core import i18n
from tests.adapters.web.pages_support import make_link, page_of
from tests.conftest import LiveApp

CSS = Path(__file__).resolve().parents[3] / "adapters" / "web" / "static" / "paylinks.css"
HTML_LANG = {"zh_Hans": "zh-Hans", "zh_Hant": "zh-Hant", "pt_BR": "pt-BR", "fil": "fil"}


@pytest.mark.parametrize("language", i18n.LANGUAGES)
async def test_the_pay_page_speaks_every_language(sqlite_live: LiveApp, language: str) -> None:
    link = await make_link(sqlite_live.services, minor=2500, currency="SGD", locale="en_SG",
                           merchant_name="Cake Shop")
    page = await page_of(await sqlite_live.client.get(f"/p/{link.id}?lang={language}"))
    t = i18n.tr(language)
    assert page.lang == (HTML_LANG.get(language, language) if language != "en" else "en-SG")
    # A word of the catalog on the page: the button, and the switcher marks this language as current.
    assert page.button_names() == [t.gettext("Pay %(amount)s", amount="S$25.00")]
    assert t.gettext("Payment request") in page.text()
    current = [a for a in page.all("a") if a.attrs.get("aria-current") == "true"]
    assert [a.text() for a in current] == [i18n.AUTONYMS[language]]


async def test_accept_language_then_the_shops_locale_then_english(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services, minor=250_000, currency="VND", locale="vi_VN",
                           merchant_name="Tiệm Bánh")
    url = f"/p/{link.id}"
    ask = sqlite_live.client.get
    assert (await page_of(await ask(url))).lang == "vi-VN"  # no header: the shop's language
    assert (await page_of(await ask(url, headers={"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.8"}))).lang == "ja"
    # Best quality first; a language with no catalog (German) is passed over.
    taiwan = await page_of(await ask(url, headers={"Accept-Language": "de;q=1, zh-TW;q=0.8, en;q=0.5"}))
    assert taiwan.lang == "zh-Hant" and "付款請求" in taiwan.text()
    assert (await page_of(await ask(url, headers={"Accept-Language": "zh-CN"}))).lang == "zh-Hans"
    assert (await page_of(await ask(url, headers={"Accept-Language": "pt-PT"}))).lang == "pt-BR"
    assert (await page_of(await ask(url, headers={"Accept-Language": "tl-PH"}))).lang == "fil"
    assert (await page_of(await ask(url, headers={"Accept-Language": "de, fr;q=0.5"}))).lang == "vi-VN"


async def test_the_switcher_choice_is_remembered_in_a_cookie(sqlite_live: LiveApp) -> None:
    link = await make_link(sqlite_live.services, locale="en_SG")
    client = sqlite_live.client
    chosen = await client.get(f"/p/{link.id}?lang=th", headers={"Accept-Language": "ja"})
    assert "paylinks_lang=th" in chosen.headers["Set-Cookie"] and "HttpOnly" in chosen.headers["Set-Cookie"]
    assert "Accept-Language" in chosen.headers["Vary"]
    assert (await page_of(chosen)).lang == "th"
    # The next page (no ?lang) follows the cookie over the browser's Accept-Language.
    again = await page_of(await client.get(f"/p/{link.id}", headers={"Accept-Language": "ja"}))
    assert again.lang == "th" and "ชำระ" in again.button_names()[0]
    # The switcher is plain links: every catalog, no script.
    page = await page_of(await client.get(f"/p/{link.id}"))
    hrefs = {a.attrs["href"] for a in page.all("a") if a.attrs.get("href", "").startswith("?lang=")}
    assert hrefs == {f"?lang={code}" for code in i18n.LANGUAGES}
    assert page.all("script") == []


async def test_a_link_expiring_within_a_day_shows_its_time_and_zone(sqlite_live: LiveApp) -> None:
    services = sqlite_live.services
    soon = await make_link(services, locale="en_SG", expires_at=services.clock() + timedelta(minutes=1))
    later = await make_link(services, locale="en_SG", expires_at=services.clock() + timedelta(days=3))
    clock = i18n.Clock.of(language="en", shop_locale="en_SG", timezone=None)
    soon_page = (await page_of(await sqlite_live.client.get(f"/p/{soon.id}"))).text()
    assert " ".join(clock.when(soon.expires_at).split()) in soon_page and "SGT" in soon_page
    later_page = (await page_of(await sqlite_live.client.get(f"/p/{later.id}"))).text()
    assert " ".join(clock.date(later.expires_at).split()) in later_page and "SGT" not in later_page


async def test_wide_and_right_to_left_text_is_kept_whole(sqlite_live: LiveApp) -> None:
    arabic = "كعكة عيد ميلاد"
    link = await make_link(sqlite_live.services, locale="th_TH", currency="THB", merchant_name="ร้านเค้ก 東京ケーキ店",
                           description=arabic)
    response = await sqlite_live.client.get(f"/p/{link.id}")
    assert response.charset == "utf-8"
    page = await page_of(response)
    assert "ร้านเค้ก 東京ケーキ店" in page.text() and arabic in page.text()
    description = next(p for p in page.all("p") if "description" in p.attrs.get("class", ""))
    assert description.attrs.get("dir") == "auto"
    assert any(n.tag == "bdi" and n.text() == arabic for n in description.walk())


def test_the_stylesheet_declares_fonts_with_system_fallbacks_for_every_script() -> None:
    css = CSS.read_text(encoding="utf-8")
    for family in ("Noto Sans Thai", "PingFang SC", "Hiragino", "Malgun Gothic", "Microsoft JhengHei",
                   "Noto Sans Arabic", "sans-serif"):
        assert family in css, family
    for lang in ("th", "ja", "ko", "zh-Hans", "zh-Hant"):
        assert f':lang({lang})' in css, lang
    assert "overflow-wrap: anywhere" in css  # long words without spaces (Thai, CJK) wrap, never clip
