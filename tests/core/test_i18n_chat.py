"""Sellers in their own language (issue 18, points 2 and 3): bot replies follow the platform's language,
`/language` changes it, alerts go in the language of the chat that receives them, and the connecting
words of /charge are read in the seller's language."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import i18n
from core.commands import Charge, CommandError, ParseContext, parse
from core.markup import to_plain
from core.models import ChatTarget, Member, OutboxMessage
from core.outbox_texts import AlertFacts, alert_reply
from core.sql import table
from tests.chat_support import ChatDriver

NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


async def _say(chat: ChatDriver, text: str, language: str | None = None) -> str:
    message = dataclasses.replace(chat.message(text), language=language)
    return "\n\n".join(to_plain(reply.text) for reply in await chat.conversation.handle(message))


@pytest.mark.parametrize("language", i18n.LANGUAGES)
async def test_a_bot_reply_in_every_language(chat: ChatDriver, language: str) -> None:
    """Telegram's language_code (or Slack's locale) picks the catalog: /help comes back in it."""
    tag = {"zh_Hans": "zh-hans", "zh_Hant": "zh-hant", "pt_BR": "pt-br"}.get(language, language)
    await _say(chat, "/start", tag)
    text = await _say(chat, "/help", tag)
    t = i18n.tr(language)
    assert to_plain(t.gettext("**paylinks** makes payment links right here in the chat.")) in text
    assert to_plain(t.gettext("a payment link (add `to +65 9123 4567`, `ref INV-1042`, `exp 3d`)")) in text
    # An error answers in it too, with its example.
    problem = await _say(chat, "/charge", tag)
    assert t.gettext("Tell me the amount and what it is for.") in problem
    assert t.pgettext("example description", "birthday cake") in problem


async def test_language_command_changes_and_keeps_the_language(chat: ChatDriver) -> None:
    await _say(chat, "/start", "en")
    done = await _say(chat, "/language th", "en")
    assert "ไทย" in done and "เรียบร้อย" in done
    # Kept for this person: the platform's language no longer decides.
    assert "ลิงก์ชำระเงิน" in await _say(chat, "/help", "en")
    assert "ไทย" in await _say(chat, "/language", "en")
    unknown = await _say(chat, "/language klingon", "en")
    assert "klingon" in unknown and "/language th" in unknown
    async with chat.services.db.read() as conn:
        member = (await conn.execute(select(table(Member).c.language).where(
            table(Member).c.platform_user_id == chat.user))).scalar_one()
        target = (await conn.execute(select(table(ChatTarget).c.language).where(
            table(ChatTarget).c.address == chat.user))).scalar_one()
    assert member == "th" and target == "th"
    assert "Done" in await _say(chat, "/language English", "th")


async def test_whatsapp_sellers_are_answered_in_their_numbers_language(chat: ChatDriver) -> None:
    from adapters.whatsapp.channel import parse_inbound

    message = parse_inbound({"From": "whatsapp:+66812345678", "Body": "/start", "MessageSid": "SM1"})
    assert message is not None and message.language == "th"
    replies = await chat.conversation.handle(message)
    assert "ยินดีต้อนรับ" in replies[0].text


async def test_alerts_go_in_the_language_of_the_chat_that_receives_them(chat: ChatDriver) -> None:
    seller = chat.as_user("somchai")
    await _say(seller, "/start", "th")
    await _say(seller, "/alerts on", "th")
    english = chat.as_user("alice", address="alice-chat")
    await _say(english, "/start", "en")
    # The English member joins the Thai seller's shop and turns alerts on in their own chat.
    invite = await _say(seller, "/invite", "th")
    code = invite.split("`")[1] if "`" in invite else invite.split(": ", 1)[1].split()[0]
    await _say(english, f"/join {code}", "en")
    await _say(english, "/alerts on", "en")
    made = await seller.conversation.handle(dataclasses.replace(seller.message("/charge 250 เค้ก"), language="th"))
    link_id = next(r.link_id for r in made if r.link_id)
    from tests.adapters.web.pages_support import payment_event

    link = await chat.services.links.get(link_id)
    assert link is not None
    await chat.services.links.record_payment(payment_event(link, 77))
    async with chat.services.db.read() as conn:
        rows = (await conn.execute(select(table(OutboxMessage)).where(
            table(OutboxMessage).c.link_id == link_id, table(OutboxMessage).c.kind.like("%alert")))).all()
    by_address = {r.address: r.payload for r in rows}
    assert by_address["somchai"]["language"] == "th" and "ชำระแล้ว" in by_address["somchai"]["reply"]["text"]
    assert by_address["alice-chat"]["language"] == "en" and "Paid" in by_address["alice-chat"]["reply"]["text"]


def test_alert_texts_in_each_language_keep_the_shops_clock() -> None:
    facts = AlertFacts(event="link.paid", link_id="l1", amount_minor=2500, currency="SGD", description="cake",
                       at=NOW, locale="en_SG", timezone="Asia/Jakarta", payer_name="Ani")
    for language in i18n.LANGUAGES:
        text = alert_reply(facts, language).text
        assert re.search(r"(?<!\d)(14|2)[:.]00(?!\d)", text), (language, text)
        assert "WIB" in text, (language, text)
        assert i18n.tr(language).gettext("✅ Paid") in text


# ---------------------------------------------------------------- connecting words (point 3)


def _ctx(language: str, locale: str, currency: str) -> ParseContext:
    return ParseContext(locale=locale, default_currency=currency, now=NOW, timezone=ZoneInfo("Asia/Singapore"),
                        language=language)


@pytest.mark.parametrize(("language", "locale", "currency", "text", "minor", "description", "phone", "days"), [
    ("id", "id_ID", "IDR", "/charge 150.000 untuk kue ulang tahun ke +62 812 3456 7890 kadaluarsa 3 hari",
     15_000_000, "kue ulang tahun", "+6281234567890", 3),
    ("ms", "ms_MY", "MYR", "/charge 25 untuk kek hari jadi kepada +60 12 345 6789 luput dalam 2 hari",
     2500, "kek hari jadi", "+60123456789", 2),
    ("vi", "vi_VN", "VND", "/charge 250.000 cho bánh sinh nhật gửi +84 912 345 678 hết hạn 3 ngày",
     250_000, "bánh sinh nhật", "+84912345678", 3),
    ("fil", "fil_PH", "PHP", "/charge 500 para sa birthday cake kay +63 917 123 4567 mag-expire sa 2 araw",
     50_000, "birthday cake", "+639171234567", 2),
    ("es", "es_MX", "MXN", "/charge 250 para pastel de cumpleaños a +52 55 1234 5678 vence en 3 días",
     25_000, "pastel de cumpleaños", "+525512345678", 3),
    ("pt_BR", "pt_BR", "BRL", "/charge 25,50 para bolo de aniversário para +55 11 91234 5678 expira em 2 dias",
     2550, "bolo de aniversário", "+5511912345678", 2),
])
def test_connecting_words_in_the_sellers_language(language: str, locale: str, currency: str, text: str,
                                                   minor: int, description: str, phone: str, days: int) -> None:
    charge = parse(text, _ctx(language, locale, currency))
    assert isinstance(charge, Charge), charge
    assert (charge.money.amount_minor, charge.money.currency) == (minor, currency)
    assert charge.description == description and charge.customer.phone == phone
    assert charge.expires_at == NOW + timedelta(days=days)


def test_the_same_words_are_description_in_english() -> None:
    charge = parse("/charge 25 untuk kue", _ctx("en", "en_SG", "SGD"))
    assert isinstance(charge, Charge) and charge.description == "untuk kue"


@pytest.mark.parametrize(("language", "locale", "currency", "text", "minor", "code", "description"), [
    ("th", "th_TH", "THB", "/charge 250บาท เค้กวันเกิด ref INV-1 exp 3d", 25_000, "THB", "เค้กวันเกิด"),
    ("ja", "ja_JP", "JPY", "/charge 2500円ケーキ exp 2d", 2500, "JPY", "ケーキ"),
    ("zh_Hans", "zh_CN", "CNY", "/charge 88元生日蛋糕 to +86 139 1234 5678", 8800, "CNY", "生日蛋糕"),
    ("zh_Hant", "zh_TW", "TWD", "/charge 250元 生日蛋糕", 25_000, "TWD", "生日蛋糕"),
    ("ko", "ko_KR", "KRW", "/charge 30000원 생일 케이크 exp 1d", 30_000, "KRW", "생일 케이크"),
])
def test_unspaced_scripts_read_amount_currency_ref_exp_and_contacts(
        language: str, locale: str, currency: str, text: str, minor: int, code: str, description: str) -> None:
    charge = parse(text, _ctx(language, locale, currency))
    assert isinstance(charge, Charge), charge
    assert (charge.money.amount_minor, charge.money.currency, charge.description) == (minor, code, description)


def test_grammar_errors_and_their_examples_come_in_the_sellers_language() -> None:
    error = parse("/charge 25", _ctx("id", "id_ID", "IDR"))
    assert isinstance(error, CommandError)
    with i18n.speaking("id"):
        text = error.text()
    assert "Untuk apa?" in text and "Contohnya:" in text and "kue ulang tahun" in text
    assert error.message == "What is it for? Add a description after the amount."  # the English msgid stays


# ---------------------------------------------------------------- the services' refusals and schedule words


async def _shop(chat: ChatDriver, language: str) -> None:
    await _say(chat, "/start", language)
    identity = await chat.services.conversation.members.identify(chat.message(""))
    assert identity is not None
    await chat.services.merchants.update(identity.merchant.id, currency="SGD", locale="en_SG",
                                         timezone="Asia/Singapore")


async def test_a_promo_refusal_from_the_service_is_in_the_sellers_language(chat: ChatDriver,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The promo service's own refusal (its English message is the API's) reaches the chat in the reader's
    language, in the chat's terms."""
    import core.promos

    monkeypatch.setattr(core.promos, "MAX_PROMOS", 2)
    await _shop(chat, "id")
    for code in ("SAVE10", "SAVE20"):
        assert code in await _say(chat, f"/promo {code} 10%", "id")
    refused = await _say(chat, "/promo MORE 10%", "id")
    assert "Satu toko paling banyak punya 2 kode promo; akhiri satu dulu dengan /promo off CODE." in refused
    assert "Contohnya: /promo SAVE10 10%" in refused
    assert "at most" not in refused and "promo codes" not in refused
    # English unchanged, and not the API's wording either.
    english = await _say(chat, "/promo MORE 10%", "en")
    assert "A shop may have at most 2 promo codes; end one first with /promo off CODE." in english
    assert "a shop may have at most 2 promo codes" not in english


@pytest.mark.parametrize("code", ["invalid_percent", "invalid_code", "invalid_discount", "invalid_limit",
                                  "invalid_expiry", "too_many_promos", "something_new"])
def test_every_promo_refusal_the_api_words_for_developers_reads_in_the_chats_language(code: str) -> None:
    from core.chat_errors import promo_error_text
    from core.promos import PromoError

    error = PromoError(code, "percent_off must be more than 0 and at most 100, e.g. \"10\"", "percent_off")
    with i18n.speaking("id"):
        indonesian = promo_error_text(error)
    with i18n.speaking("en"):
        english = promo_error_text(error)
    assert indonesian and indonesian != english
    assert "percent_off" not in indonesian and "percent_off" not in english


@pytest.mark.parametrize(("code", "message"), [
    ("amount_too_large", "amount must be at most 10000000 SGD"),
    ("amount_too_large", "amount must be at most 5.00 SGD (what is left to refund)"),
    ("missing_description", "description is required"),
    ("idempotency_conflict", "this Idempotency-Key was already used with a different request"),
])
def test_link_refusals_never_show_the_apis_english_in_chat(code: str, message: str) -> None:
    from core.chat_errors import link_error_text
    from core.links import LinkError

    with i18n.speaking("th"):
        thai = link_error_text(LinkError(code, message))
    with i18n.speaking("en"):
        english = link_error_text(LinkError(code, message))
    assert message not in thai and message not in english
    assert thai != english and not re.search(r"[A-Za-z]{4}", re.sub(r"`[^`]*`|/help", "", thai))


@pytest.mark.parametrize(("language", "head", "listed"), [
    ("vi", "mỗi 2 tuần, 13 lần, đến", "mỗi 2 tuần, đã tạo 1/13, đang chạy"),
    ("es", "cada 2 semanas, 13 veces, hasta el", "cada 2 semanas, 1/13 creados, activa"),
    ("en", "every 2 weeks, 13 times, until", "every 2 weeks, 1/13 made, active"),
])
async def test_schedule_words_of_a_recurring_charge_in_the_sellers_language(
        chat: ChatDriver, language: str, head: str, listed: str) -> None:
    await _shop(chat, language)
    text = await _say(chat, "/charge 150 tuition every 2 weeks for 6 months until 2027-06 to +65 9123 4567",
                      language)
    first = text.splitlines()[0]
    assert first.startswith(f"🔁 S$150.00 — tuition, {head} "), first
    assert "2027-06-30" not in first  # the date as the reader writes dates
    listing = await _say(chat, "/series", language)
    assert listed in listing, listing


def test_every_counts_with_the_languages_plural_forms() -> None:
    from core.chat_invoices import schedule_words

    with i18n.speaking("es"):
        assert schedule_words("month", 1, 1, None, "es_MX") == "cada mes, 1 vez"
        assert schedule_words("year", 3, 2, None, "es_MX") == "cada 3 años, 2 veces"
    with i18n.speaking("vi"):
        assert schedule_words("week", 1, None, None, "vi_VN") == "hằng tuần"
        assert schedule_words("month", 2, None, date(2027, 6, 30), "vi_VN").startswith("mỗi 2 tháng, đến ")
    with i18n.speaking("en"):
        assert schedule_words("week", 2, 6, None, "en_SG") == "every 2 weeks, 6 times"
        assert schedule_words("month", 1, None, date(2027, 6, 30), "en_SG") == "every month, until 30 Jun 2027"
