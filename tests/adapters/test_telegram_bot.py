"""The Telegram bot end to end: the real app (create_app) with the real PTB against the fake Bot API server.

Updates are posted to POST /telegram/webhook the way Telegram posts them (with bot_command entities and
the secret token header); `bot.wait_handled(update_id)` waits until PTB has run every handler for one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from adapters.telegram.bot import SECRET_HEADER, TELEGRAM_BOT, WEBHOOK_PATH, TelegramBot
from adapters.telegram.render import render
from bots.config import ConfigError, Secret, Settings
from core import i18n, ids
from core.clock import utcnow
from core.models import ChatTarget
from core.outbox import OutboxStore
from core.ports import PaymentEvent, Reply
from core.sql import table
from tests.conftest import LiveApp, start_live_app
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-token-do-not-log"
SECRET = "webhook-secret_123"
BOT = "paylinks_test_bot"
TARGETS = table(ChatTarget)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN, username=BOT) as server:
        yield server


def telegram_settings(settings: Settings, fake: FakeTelegram, **overrides: Any) -> Settings:
    tg = settings.telegram
    tg.enabled = True
    tg.token = Secret(TOKEN)
    tg.webhook_secret = Secret(SECRET)
    tg.api_base_url = fake.url
    for key, value in overrides.items():
        setattr(tg, key, value)
    return settings


class TelegramHarness:
    def __init__(self, live: LiveApp, fake: FakeTelegram) -> None:
        self.live = live
        self.fake = fake

    @property
    def bot(self) -> TelegramBot:
        return self.live.app[TELEGRAM_BOT]

    async def post(self, update: dict[str, Any], *, secret: str | None = SECRET) -> int:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        response = await self.live.client.post(WEBHOOK_PATH, json=update, headers=headers)
        await response.read()
        return response.status

    async def send(self, update: dict[str, Any]) -> None:
        """Deliver like Telegram and wait until the bot has fully handled it."""
        assert await self.post(update) == 200
        await self.bot.wait_handled(update["update_id"])

    async def say(self, text: str, **kwargs: Any) -> list[Any]:
        before = len(self.fake.calls)
        await self.send(self.fake.message_update(text, **kwargs))
        return self.fake.calls[before:]


@pytest.fixture
async def tg(settings: Settings, fake: FakeTelegram) -> AsyncIterator[TelegramHarness]:
    live, client = await start_live_app(telegram_settings(settings, fake))
    harness = TelegramHarness(live, fake)
    await harness.bot.wait_ready()
    yield harness
    await client.close()


def sent_texts(calls: list[Any]) -> list[str]:
    return [c.params["text"] for c in calls if c.method == "sendMessage"]


# ---------------------------------------------------------------- the webhook's door


async def test_missing_or_wrong_secret_is_forbidden_and_nothing_runs(tg: TelegramHarness) -> None:
    update = tg.fake.message_update("/start")
    assert await tg.post(update, secret=None) == 403
    assert await tg.post(update, secret="wrong") == 403
    assert await tg.post(update, secret=SECRET + "x") == 403
    assert await tg.post(update, secret="") == 403
    assert tg.fake.calls_to("sendMessage") == []
    # The same update with the right secret is answered, so the 403s above were the secret's doing.
    await tg.send(update)
    assert len(tg.fake.calls_to("sendMessage")) == 1


async def test_a_body_that_is_not_an_update_is_refused(tg: TelegramHarness) -> None:
    response = await tg.live.client.post(WEBHOOK_PATH, data=b"nope", headers={SECRET_HEADER: SECRET})
    assert response.status == 400
    response = await tg.live.client.post(WEBHOOK_PATH, json={"message": {}}, headers={SECRET_HEADER: SECRET})
    assert response.status == 400


async def test_start_up_registers_the_command_menu(tg: TelegramHarness) -> None:
    assert tg.fake.calls_to("getMe")
    names = [c["command"] for c in tg.fake.commands]
    assert {"charge", "links", "status", "cancel", "report", "alerts", "help", "start"} <= set(names)
    assert tg.bot.username == BOT


async def test_start_up_sets_the_command_menu_once_per_catalog_language(tg: TelegramHarness) -> None:
    """setMyCommands per language (Telegram's two-letter ISO 639-1 language_code), texts from the catalogs;
    English for everyone else (no language_code)."""
    calls = tg.fake.calls_to("setMyCommands")
    codes = [str(c.params.get("language_code") or "") for c in calls]
    assert sorted(codes) == sorted(["", "id", "th", "vi", "ms", "tl", "zh", "ja", "ko", "es", "pt"])
    assert all(code == "" or (len(code) == 2 and code.isalpha() and code.islower()) for code in codes)

    def charge(code: str) -> str:
        return next(c["description"] for c in tg.fake.menus[code] if c["command"] == "charge")

    assert charge("") == "Make a payment link: /charge 25 cake"  # English unchanged
    assert charge("th") == i18n.tr("th").gettext("Make a payment link: /charge 25 cake") != charge("")
    assert charge("id") == "Buat tautan pembayaran: /charge 25000 kue"
    assert charge("zh") == i18n.tr("zh_Hans").gettext("Make a payment link: /charge 25 cake")
    assert charge("tl") == i18n.tr("fil").gettext("Make a payment link: /charge 25 cake")
    assert charge("pt") == i18n.tr("pt_BR").gettext("Make a payment link: /charge 25 cake")
    # Every menu has every command, in the same order.
    assert len({tuple(c["command"] for c in menu) for menu in tg.fake.menus.values()}) == 1


async def test_the_fake_refuses_a_language_code_telegram_would_refuse(tg: TelegramHarness) -> None:
    from telegram import BotCommand
    from telegram.error import BadRequest

    application = tg.bot.application
    assert application is not None
    for code in ("zh-hans", "zh_Hans", "fil", "TH"):  # IETF tags and three letters: not setMyCommands' codes
        with pytest.raises(BadRequest, match="language code"):
            await application.bot.set_my_commands([BotCommand("help", "Help")], language_code=code)
    with pytest.raises(BadRequest, match=r"(?i)bot_command_description_invalid"):
        await application.bot.set_my_commands([BotCommand("help", "x" * 257)], language_code="th")


def test_webhook_mode_without_a_secret_refuses_to_start(sqlite_settings: Settings) -> None:
    tg = sqlite_settings.telegram
    tg.enabled, tg.token, tg.mode = True, Secret(TOKEN), "webhook"
    from bots.app import create_app

    with pytest.raises(ConfigError, match=r"telegram\.webhook_secret is required"):
        create_app(sqlite_settings)


# ---------------------------------------------------------------- commands


async def test_start_in_a_private_chat_opens_a_shop(tg: TelegramHarness) -> None:
    calls = await tg.say("/start", chat_id=111, user_id=111, first_name="Alice")
    (text,) = sent_texts(calls)
    assert "Welcome" in text
    assert calls[-1].chat_id == "111"
    assert calls[-1].params["parse_mode"] == "HTML"


async def test_charge_answers_with_the_link_card_and_stores_where_it_was_posted(tg: TelegramHarness) -> None:
    await tg.say("/start")
    calls = await tg.say("/charge 25 chocolate cake")
    (call,) = [c for c in calls if c.method == "sendMessage"]
    assert "<b>" in call.params["text"] and "chocolate cake" in call.params["text"]
    pay, share = (row[0] for row in call.keyboard)
    assert pay["text"].startswith("Pay ") and "25.00" in pay["text"]
    assert "/p/" in pay["url"]
    assert share["url"].startswith("https://t.me/share/url?")
    link_id = pay["url"].rsplit("/p/", 1)[1]
    link = await tg.live.services.links.get(link_id)
    assert link is not None and link.amount_minor == 2500
    assert link.origin_message is not None
    assert link.origin_message["message_id"] == str(_message_id_of(tg.fake, call))
    assert (link.origin_platform, link.origin_address) == ("telegram", "111")
    assert tg.fake.calls_to("sendPhoto") == []  # send_qr is off by default


async def test_a_mistake_gets_a_correction_not_a_link(tg: TelegramHarness) -> None:
    await tg.say("/start")
    (text,) = sent_texts(await tg.say("/charge 25.555 USD cake"))
    assert "2 decimals" in text or "decimal" in text
    links, _ = await tg.live.services.links.list_links(await _merchant_id(tg))
    assert links == []


async def test_group_command_with_the_bots_name_is_answered_in_the_group(tg: TelegramHarness) -> None:
    await tg.say("/start")  # Alice has a shop
    calls = await tg.say(f"/charge@{BOT} 12 cupcakes", chat_id=-1001, chat_type="supergroup")
    (call,) = [c for c in calls if c.method == "sendMessage"]
    assert call.chat_id == "-1001"
    assert call.params["reply_parameters"]["message_id"] > 0  # answers the command it was given
    assert "cupcakes" in call.params["text"]


async def test_dashboard_asked_in_a_group_goes_to_the_persons_private_chat(tg: TelegramHarness) -> None:
    await tg.say("/start")
    calls = [c for c in await tg.say(f"/dashboard@{BOT}", chat_id=-1001, chat_type="supergroup")
             if c.method == "sendMessage"]
    private = [c for c in calls if c.chat_id == "111"]
    group = [c for c in calls if c.chat_id == "-1001"]
    assert len(private) == 1 and "/dashboard/signin/" in private[0].params["text"]
    assert len(group) == 1 and "private chat" in group[0].params["text"]
    assert "/dashboard/signin/" not in group[0].params["text"]


async def test_another_bots_command_is_ignored(tg: TelegramHarness) -> None:
    await tg.say("/start")
    calls = await tg.say("/charge@SomeOtherBot 12 cupcakes", chat_id=-1001, chat_type="group")
    assert calls == []
    links, _ = await tg.live.services.links.list_links(await _merchant_id(tg))
    assert links == []


async def test_private_chatter_gets_a_short_hint_and_a_slashless_command_works(tg: TelegramHarness) -> None:
    (hint,) = sent_texts(await tg.say("what is this"))
    assert "/charge 25 cake" in hint and len(hint) < 200
    (hello,) = sent_texts(await tg.say("hello there"))
    assert "Hi!" in hello and len(hello) < 200  # a greeting is answered briefly, not with the help
    (typo,) = sent_texts(await tg.say("chrage 25 cake"))
    assert "Did you mean" in typo and "/charge 25 cake" in typo
    await tg.say("/start")
    (card,) = sent_texts(await tg.say("charge 9 tea"))
    assert "tea" in card and "/p/" in card


async def test_an_ambiguous_amount_is_asked_back_with_buttons_and_made_on_the_tap(tg: TelegramHarness) -> None:
    await tg.say("/start")
    await tg.say("/currency SGD")
    calls = await tg.say("/charge 1.000 cake")
    (question,) = [c for c in calls if c.method == "sendMessage"]
    assert "Did you mean" in question.params["text"] and "SGD 1,000.00" in question.params["text"]
    buttons = [row[0] for row in question.keyboard]
    assert [b["text"] for b in buttons] == ["SGD 1.00 — cake", "SGD 1,000.00 — cake", "Cancel"]
    assert all("callback_data" in b and "url" not in b for b in buttons)
    assert (await tg.live.services.links.list_links(await _merchant_id(tg)))[0] == []  # nothing made yet
    message_id = _message_id_of(tg.fake, question)
    before = len(tg.fake.calls)
    tap = tg.fake.callback_query_update(buttons[1]["callback_data"], message_id=message_id)
    await tg.send(tap)
    after = tg.fake.calls[before:]
    assert [c.method for c in after if c.method == "answerCallbackQuery"] == ["answerCallbackQuery"]
    (card,) = [c for c in after if c.method == "sendMessage"]
    assert "SGD 1,000.00" in card.params["text"] and "/p/" in card.params["text"]
    links, _ = await tg.live.services.links.list_links(await _merchant_id(tg))
    assert [(link.amount_minor, link.currency) for link in links] == [(100000, "SGD")]
    # A second tap on the same button makes no second link.
    await tg.send(tg.fake.callback_query_update(buttons[1]["callback_data"], message_id=message_id))
    assert len((await tg.live.services.links.list_links(await _merchant_id(tg)))[0]) == 1


async def test_group_chatter_is_ignored(tg: TelegramHarness) -> None:
    assert await tg.say("nice cake everyone", chat_id=-1001, chat_type="group") == []


async def test_qr_photo_follows_the_card_when_enabled(settings: Settings, fake: FakeTelegram) -> None:
    live, client = await start_live_app(telegram_settings(settings, fake, send_qr=True))
    try:
        harness = TelegramHarness(live, fake)
        await harness.bot.wait_ready()
        await harness.say("/start")
        calls = await harness.say("/charge 25 cake")
        assert [c.method for c in calls] == ["sendMessage", "sendPhoto"]
        photo = calls[1]
        assert photo.files["photo"].startswith(b"\x89PNG")
        assert photo.params["caption"].startswith("Scan to pay")
    finally:
        await client.close()


# ---------------------------------------------------------------- errors inside handlers


async def test_handler_errors_reach_the_error_handler_and_never_the_token(
    tg: TelegramHarness, caplog: pytest.LogCaptureFixture
) -> None:
    tg.fake.fail("sendMessage", status=500, description="Internal Server Error")
    with caplog.at_level(logging.ERROR, logger="paylinks.telegram"):
        await tg.say("/start")
    assert len(tg.bot.errors) == 1
    assert any("telegram update failed" in r.getMessage() for r in caplog.records)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- inline mode


async def test_inline_offer_then_choice_creates_exactly_the_chosen_link(tg: TelegramHarness) -> None:
    await tg.say("/start")
    merchant_id = await _merchant_id(tg)
    services = tg.live.services

    await tg.send(tg.fake.inline_query_update("25 cake", query_id="q1"))
    (answer,) = tg.fake.calls_to("answerInlineQuery")
    assert answer.params["inline_query_id"] == "q1"
    assert answer.params["is_personal"] in (True, "true")
    (result,) = answer.params["results"]
    link_id = result["id"]
    assert result["type"] == "article"
    assert "cake" in result["input_message_content"]["message_text"]
    assert result["reply_markup"]["inline_keyboard"][0][0]["url"].endswith(f"/p/{link_id}")
    assert await services.links.get(link_id) is None  # offered, not created

    # Typing on: another offer that nobody picks.
    await tg.send(tg.fake.inline_query_update("30 big cake", query_id="q2"))
    unchosen = tg.fake.calls_to("answerInlineQuery")[1].params["results"][0]["id"]

    await tg.send(tg.fake.chosen_inline_result_update(link_id, "25 cake", inline_message_id="inl-77"))
    link = await services.links.get(link_id)
    assert link is not None and link.amount_minor == 2500 and link.description == "cake"
    assert link.origin_message is not None and link.origin_message["extra"] == {"inline_message_id": "inl-77"}
    assert await services.links.get(unchosen) is None
    links, _ = await services.links.list_links(merchant_id)
    assert [x.id for x in links] == [link_id]

    # Telegram reporting the same choice again changes nothing.
    await tg.send(tg.fake.chosen_inline_result_update(link_id, "25 cake", inline_message_id="inl-77"))
    assert len((await services.links.list_links(merchant_id))[0]) == 1

    # /links shows the sent one only.
    (listing,) = sent_texts(await tg.say("/links"))
    assert "cake" in listing and "big cake" not in listing


async def test_private_text_that_is_no_command_is_hinted_in_the_persons_language(tg: TelegramHarness) -> None:
    (hint,) = sent_texts(await tg.say("lorem ipsum dolor", language_code="ko"))
    assert "/charge 30000 케이크" in hint and "/help" in hint and "payment link" not in hint
    (english,) = sent_texts(await tg.say("lorem ipsum again"))
    assert "for a payment link, or /help" in english


async def test_inline_query_is_answered_in_the_persons_telegram_language(tg: TelegramHarness) -> None:
    await tg.say("/start")
    th = i18n.tr("th")
    await tg.send(tg.fake.inline_query_update("25 cake", query_id="q-th", language_code="th"))
    (answer,) = tg.fake.calls_to("answerInlineQuery")
    (result,) = answer.params["results"]
    assert result["title"].startswith("ลิงก์ชำระเงิน: ")  # "Payment link: …" in Thai
    assert result["title"] == th.gettext("Payment link: %(amount)s", amount=result["title"].split(": ", 1)[1])
    assert result["description"] == "cake"  # what the seller typed stays as typed
    card = result["input_message_content"]["message_text"]
    assert "cake" in card and "Payment link" not in card
    assert result["reply_markup"]["inline_keyboard"][0][0]["text"] != "Pay"  # the card's button too

    # Telegram's Chinese tag, and an empty query's hint, in Indonesian; English stays English.
    await tg.send(tg.fake.inline_query_update("25 cake", query_id="q-zh", language_code="zh-hant"))
    title = tg.fake.calls_to("answerInlineQuery")[-1].params["results"][0]["title"]
    assert title.startswith("付款連結：")
    await tg.send(tg.fake.inline_query_update("", query_id="q-id", language_code="id"))
    hint = tg.fake.calls_to("answerInlineQuery")[-1].params["button"]["text"]
    assert hint == "Ketik jumlah dan untuk apa, misalnya 25000 kue"
    await tg.send(tg.fake.inline_query_update("25 cake", query_id="q-en", language_code="en"))
    assert tg.fake.calls_to("answerInlineQuery")[-1].params["results"][0]["title"].startswith("Payment link: ")
    # A /language choice comes before the platform's language.
    await tg.say("/language es")
    await tg.send(tg.fake.inline_query_update("25 cake", query_id="q-es", language_code="th"))
    assert tg.fake.calls_to("answerInlineQuery")[-1].params["results"][0]["title"].startswith("Enlace de pago: ")


async def test_an_inline_query_from_a_stranger_is_hinted_in_their_language(tg: TelegramHarness) -> None:
    await tg.send(tg.fake.inline_query_update("25 cake", user_id=999, language_code="vi"))
    (answer,) = tg.fake.calls_to("answerInlineQuery")
    assert answer.params["button"]["text"] == "Hãy thiết lập paylinks trước: chạm vào đây, rồi /start"
    assert len(answer.params["button"]["text"]) <= 64


async def test_inline_query_from_a_stranger_offers_the_way_in(tg: TelegramHarness) -> None:
    await tg.send(tg.fake.inline_query_update("25 cake", user_id=999))
    (answer,) = tg.fake.calls_to("answerInlineQuery")
    assert answer.params["results"] == []
    assert answer.params["button"]["start_parameter"] == "inline"


async def test_inline_query_with_a_mistake_says_what_is_wrong(tg: TelegramHarness) -> None:
    await tg.say("/start")
    await tg.send(tg.fake.inline_query_update("25"))
    (answer,) = tg.fake.calls_to("answerInlineQuery")
    assert answer.params["results"] == []
    assert 0 < len(answer.params["button"]["text"]) <= 64


async def test_an_inline_query_that_could_mean_two_amounts_offers_no_card(tg: TelegramHarness) -> None:
    await tg.say("/start")
    await tg.send(tg.fake.inline_query_update("2 coffees 12.50"))
    (answer,) = tg.fake.calls_to("answerInlineQuery")
    assert answer.params["results"] == []
    assert "Did you mean" in answer.params["button"]["text"]
    # A chosen result for such a query (stale client) makes no link either.
    await tg.send(tg.fake.chosen_inline_result_update(ids.link_id(), "2 coffees 12.50"))
    assert (await tg.live.services.links.list_links(await _merchant_id(tg)))[0] == []


# ---------------------------------------------------------------- polling mode


async def test_polling_mode_serves_without_a_webhook(settings: Settings, fake: FakeTelegram) -> None:
    live, client = await start_live_app(telegram_settings(settings, fake, mode="polling",
                                                          webhook_secret=Secret("")))
    try:
        bot = live.app[TELEGRAM_BOT]
        await bot.wait_ready()
        assert fake.calls_to("deleteWebhook")  # polling and a webhook exclude each other
        response = await client.post(WEBHOOK_PATH, json={}, headers={SECRET_HEADER: SECRET})
        assert response.status in (404, 405)
        update = fake.queue_update(fake.message_update("/start"))
        await bot.wait_handled(update["update_id"])
        (welcome,) = fake.calls_to("sendMessage")
        assert "Welcome" in welcome.params["text"]
        polls = fake.calls_to("getUpdates")
        assert polls and set(polls[0].params["allowed_updates"]) >= {"message", "inline_query",
                                                                       "chosen_inline_result"}
    finally:
        await client.close()


# ---------------------------------------------------------------- helpers


def _message_id_of(fake: FakeTelegram, call: Any) -> int:
    for (chat, message_id), text in fake.messages.items():
        if chat == call.chat_id and text == call.params["text"]:
            return int(message_id)
    raise AssertionError("message not recorded by the fake")


async def _merchant_id(tg: TelegramHarness, user_id: str = "111") -> str:
    merchants = await tg.live.services.merchants.list_merchants()
    assert merchants, "no merchant yet"
    return merchants[-1].id




# ---------------------------------------------------------------- paid alerts through the outbox


async def _charge(tg: TelegramHarness, text: str = "/charge 25 cake", **where: Any) -> str:
    calls = await tg.say(text, **where)
    (call,) = [c for c in calls if c.method == "sendMessage"]
    return str(call.keyboard[0][0]["url"].rsplit("/p/", 1)[1])


async def _pay(tg: TelegramHarness, link_id: str, payer: str | None = "Bob Tan") -> None:
    link = await tg.live.services.links.get(link_id)
    assert link is not None
    outcome, _ = await tg.live.services.links.record_payment(PaymentEvent(
        provider="sandbox", event_id=f"evt_{link_id}", kind="payment.succeeded", link_id=link_id,
        provider_ref=f"pr_{link_id}", amount_minor=link.amount_minor, currency=link.currency, payer_name=payer,
    ))
    assert outcome.value == "paid"


async def _eventually(check: Any, within: float = 10.0) -> Any:
    """Wait for a database state the dispatcher reaches after its calls (re-checked every 20 ms; the
    database has no change notification to wait on)."""
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return result


async def _outbox_rows(tg: TelegramHarness) -> list[Any]:
    return await OutboxStore(tg.live.services.db).list_messages(statuses=("pending", "sent", "dead"))


async def test_paid_alert_edits_the_link_message_and_answers_in_the_chat(tg: TelegramHarness) -> None:
    await tg.say("/start")
    link_id = await _charge(tg)
    link = await tg.live.services.links.get(link_id)
    assert link is not None and link.origin_message is not None
    message_id = link.origin_message["message_id"]
    before = len(tg.fake.calls_to("sendMessage"))

    await _pay(tg, link_id)

    (edit,) = await tg.fake.wait_for_calls("editMessageText")
    assert (edit.chat_id, edit.params["message_id"]) == ("111", message_id)
    assert "✅ Paid" in edit.params["text"] and "Bob Tan" in edit.params["text"]
    assert "reply_markup" not in edit.params  # the Pay button is gone
    alerts = (await tg.fake.wait_for_calls("sendMessage", before + 1))[before:]
    assert alerts[0].chat_id == "111" and "✅ Paid" in alerts[0].params["text"]
    rows = await _eventually(lambda: _sent_rows(tg, 2))
    assert {r.kind for r in rows} == {"link.paid.edit", "link.paid.alert"}


async def _sent_rows(tg: TelegramHarness, count: int) -> list[Any] | None:
    rows = [r for r in await _outbox_rows(tg) if r.status == "sent"]
    return rows if len(rows) >= count else None


async def test_inline_link_paid_edits_the_inline_message(tg: TelegramHarness) -> None:
    await tg.say("/start")
    await tg.send(tg.fake.inline_query_update("40 flowers"))
    link_id = tg.fake.calls_to("answerInlineQuery")[0].params["results"][0]["id"]
    await tg.send(tg.fake.chosen_inline_result_update(link_id, "40 flowers", inline_message_id="inl-5"))

    await _pay(tg, link_id)

    (edit,) = await tg.fake.wait_for_calls("editMessageText")
    assert edit.params["inline_message_id"] == "inl-5" and "✅ Paid" in edit.params["text"]
    alert = (await tg.fake.wait_for_calls("sendMessage", 2))[-1]  # after /start's welcome
    assert alert.chat_id == "111"  # the seller's private chat with the bot


async def test_rate_limit_retry_after_is_honoured_exactly(tg: TelegramHarness) -> None:
    await tg.say("/start")
    link_id = await _charge(tg)
    tg.fake.rate_limit("sendMessage", retry_after=7)
    before = utcnow()

    await _pay(tg, link_id)

    async def limited() -> Any:
        rows = [r for r in await _outbox_rows(tg) if r.kind == "link.paid.alert" and r.attempts == 1]
        return rows[0] if rows else None

    row = await _eventually(limited)
    after = utcnow()
    assert row.status == "pending" and "RetryLater" in (row.last_error or "")
    # Due again exactly retry_after seconds after the attempt (which happened between before and after).
    assert before + timedelta(seconds=7) <= row.next_attempt_at <= after + timedelta(seconds=7)


async def test_blocked_user_disables_the_target(tg: TelegramHarness) -> None:
    await tg.say("/start")
    link_id = await _charge(tg)
    tg.fake.block("111")

    await _pay(tg, link_id)

    async def disabled() -> Any:
        async with tg.live.services.db.read() as conn:
            row = (await conn.execute(select(TARGETS).where(TARGETS.c.platform == "telegram",
                                                            TARGETS.c.address == "111"))).first()
        return row if row is not None and row.disabled_at is not None else None

    target = await _eventually(disabled)
    assert "blocked" in (target.disabled_reason or "")
    alert = next(r for r in await _outbox_rows(tg) if r.kind == "link.paid.alert")
    assert alert.status == "dead"


async def test_migrated_group_gets_its_alert_at_the_new_id(tg: TelegramHarness) -> None:
    await tg.say("/start")
    link_id = await _charge(tg, f"/charge@{BOT} 12 cupcakes", chat_id=-100, chat_type="group")
    tg.fake.migrate("-100", "-1001234")

    await _pay(tg, link_id)

    moved = await tg.fake.wait_for(
        lambda: [c for c in tg.fake.calls_to("sendMessage") if c.chat_id == "-1001234"])
    assert "✅ Paid" in moved[0].params["text"]
    link = await tg.live.services.links.get(link_id)
    assert link is not None and link.origin_address == "-1001234"


async def test_a_chat_that_unblocks_the_bot_gets_alerts_again(tg: TelegramHarness) -> None:
    await tg.say("/start")
    first = await _charge(tg)
    tg.fake.block("111")
    await tg.send(tg.fake.my_chat_member_update("member", "kicked"))
    await _pay(tg, first)

    async def target() -> Any:
        async with tg.live.services.db.read() as conn:
            return (await conn.execute(select(TARGETS).where(TARGETS.c.address == "111"))).first()

    await _eventually(lambda: _disabled(target))
    tg.fake.clear_failures()
    await tg.send(tg.fake.my_chat_member_update("kicked", "member"))  # the user unblocked the bot
    row = await target()
    assert row.disabled_at is None

    second = await _charge(tg, "/charge 5 tea")
    await _pay(tg, second)
    alerts = await tg.fake.wait_for(lambda: [c for c in tg.fake.calls_to("sendMessage")
                                             if "✅ Paid" in c.params["text"] and "tea" in c.params["text"]])
    assert alerts[0].chat_id == "111"


async def test_bot_added_to_a_group_says_how_to_charge(tg: TelegramHarness) -> None:
    await tg.send(tg.fake.my_chat_member_update("left", "member", chat_id=-300, chat_type="group"))
    (hello,) = tg.fake.calls_to("sendMessage")
    assert hello.chat_id == "-300" and f"/charge@{BOT}" in hello.params["text"]


async def _disabled(target: Any) -> Any:
    row = await target()
    return row if row is not None and row.disabled_at is not None else None


async def test_start_up_retries_until_telegram_answers_and_never_logs_the_token(
    sqlite_settings: Settings, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("getMe", status=401, description="Unauthorized", times=None)
    with caplog.at_level(logging.ERROR, logger="paylinks.telegram"):
        live, client = await start_live_app(telegram_settings(sqlite_settings, fake))
        try:
            await fake.wait_for_calls("getMe")
            harness = TelegramHarness(live, fake)
            # Not started yet: Telegram is told to deliver again later; the pay pages serve meanwhile.
            assert await harness.post(fake.message_update("/start")) == 503
            assert (await client.get("/healthz")).status == 200
            await fake.wait_for(lambda: any("not started" in r.getMessage() for r in caplog.records))
            fake.clear_failures()
            await harness.bot.wait_ready()
            await harness.say("/start")
            assert len(fake.calls_to("sendMessage")) == 1
        finally:
            await client.close()
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert all(TOKEN.split(":")[1] not in r.getMessage() for r in caplog.records)


async def test_invoice_over_several_lines_sends_the_link_and_the_pdf_as_a_document(tg: TelegramHarness) -> None:
    import io

    from pypdf import PdfReader

    await tg.say("/start")
    calls = await tg.say("/invoice to alice@example.com ref INV-77\n2 x cake 25\ndelivery 5\ntax 9%")
    # The link's answer, and maybe (when the outbox is quick) the follow-up that the email went out.
    (text,), others = [t for t in sent_texts(calls) if "Subtotal" in t], [
        t for t in sent_texts(calls) if "Subtotal" not in t]
    assert "INV-77" in text
    assert all("was sent to alice@example.com by email" in t for t in others), others
    (document,) = [c for c in calls if c.method == "sendDocument"]
    assert document.chat_id == "111"
    assert document.filenames["document"] == "INV-2026-0001.pdf"
    assert document.params["caption"] == "Invoice INV-2026-0001 (PDF)"
    pdf = "".join(p.extract_text() for p in PdfReader(io.BytesIO(document.files["document"])).pages)
    assert "INV-2026-0001" in pdf and "cake" in pdf and "alice@example.com" in pdf



def _shown(text: str) -> str:
    """A reply's text as the bot sends it to Telegram (HTML)."""
    return str(render(Reply(text=text))["text"])


async def test_the_bots_own_notes_follow_the_persons_language_choice(tg: TelegramHarness) -> None:
    """The private-text hint, the group's "sent privately" note and the group greeting read the person's
    /language before Telegram's language_code, as the conversation's answers do (issue 18)."""
    await tg.say("/start")
    await tg.say("/language es")
    es, ko = i18n.tr("es"), i18n.tr("ko")
    hint = "Send `/charge 25 cake` for a payment link, or /help to see everything I can do."
    (said,) = sent_texts(await tg.say("lorem ipsum dolor", language_code="ko"))
    assert es.gettext(hint) != hint and said == _shown(es.gettext(hint)) != _shown(ko.gettext(hint))
    calls = await tg.say(f"/dashboard@{BOT}", chat_id=-1001, chat_type="supergroup", language_code="ko")
    (group,) = [c.params["text"] for c in calls if c.method == "sendMessage" and c.chat_id == "-1001"]
    note = "I sent it to you in a private chat."
    assert group == _shown(es.gettext(note)) != _shown(ko.gettext(note))
    await tg.send(tg.fake.my_chat_member_update("left", "member", chat_id=-300, chat_type="group"))
    (hello,) = [c.params["text"] for c in tg.fake.calls_to("sendMessage") if c.chat_id == "-300"]
    greeting = "Hello! Make a payment link here with %(command)s."
    assert hello == _shown(es.gettext(greeting, command=f"`/charge@{BOT} 25 cake`")) and "Hello!" not in hello
