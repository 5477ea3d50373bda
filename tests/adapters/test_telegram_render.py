"""Pure parts of the Telegram adapter: Update → IncomingMessage, Reply → Bot API kwargs, error classes."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram import InlineKeyboardMarkup, Update
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from adapters.qr import qr_code
from adapters.telegram.parse import parse_command, parse_private_text
from adapters.telegram.render import SHARE_LABEL, qr_photo, render, render_plain, share_url, to_html
from adapters.telegram.sender import classify, redact
from core import markup as core_markup
from core.ports import AddressMoved, Button, Permanent, Reply, RetryLater, Transient
from tests.fakes.telegram import FakeTelegram

BOT = "paylinks_test_bot"


def update(data: dict[str, Any]) -> Update:
    return Update.de_json(data, None)


@pytest.fixture
def tg() -> FakeTelegram:
    return FakeTelegram()  # only its update builders; the server is not started


# ---------------------------------------------------------------- parse


def test_private_command_becomes_incoming_message(tg: FakeTelegram) -> None:
    msg = parse_command(update(tg.message_update("/charge 25 cake", chat_id=42, user_id=7, first_name="Bo")), BOT)
    assert msg is not None
    assert (msg.platform, msg.user_id, msg.address, msg.text) == ("telegram", "7", "42", "/charge 25 cake")
    assert msg.display_name == "Bo"
    assert msg.is_group is False
    assert msg.workspace is None


def test_group_command_with_our_name_drops_the_name(tg: FakeTelegram) -> None:
    data = tg.message_update("/charge@Paylinks_Test_Bot 25 cake", chat_id=-100, chat_type="supergroup")
    msg = parse_command(update(data), BOT)
    assert msg is not None
    assert msg.text == "/charge 25 cake"
    assert msg.is_group is True
    assert msg.address == "-100"


def test_another_bots_command_is_not_ours(tg: FakeTelegram) -> None:
    data = tg.message_update("/charge@OtherBot 25 cake", chat_id=-100, chat_type="group")
    assert parse_command(update(data), BOT) is None


def test_text_without_a_bot_command_entity_is_not_a_command(tg: FakeTelegram) -> None:
    data = tg.message_update("/charge 25 cake")
    del data["message"]["entities"]  # Telegram only marks commands it recognises as such
    assert parse_command(update(data), BOT) is None
    hint = parse_private_text(update(data))
    assert hint is not None and hint.text == "/charge 25 cake"


def test_command_entity_must_be_at_offset_zero(tg: FakeTelegram) -> None:
    data = tg.message_update("hello /charge 25")
    data["message"]["entities"] = [{"type": "bot_command", "offset": 6, "length": 7}]
    assert parse_command(update(data), BOT) is None


def test_start_deep_link_payload_is_dropped(tg: FakeTelegram) -> None:
    msg = parse_command(update(tg.message_update("/start inline")), BOT)
    assert msg is not None and msg.text == "/start"


def test_private_text_gets_a_hint_but_group_text_and_cards_do_not(tg: FakeTelegram) -> None:
    assert parse_private_text(update(tg.message_update("hello"))) is not None
    assert parse_private_text(update(tg.message_update("hello", chat_id=-5, chat_type="group"))) is None
    assert parse_private_text(update(tg.message_update("S$25.00 cake", via_bot=True))) is None
    assert parse_command(update(tg.message_update("/charge 2", via_bot=True)), BOT) is None


def test_edited_messages_are_ignored(tg: FakeTelegram) -> None:
    data = tg.message_update("/charge 25 cake")
    data["edited_message"] = data.pop("message")
    data["edited_message"]["edit_date"] = data["edited_message"]["date"]
    assert parse_command(update(data), BOT) is None


# ---------------------------------------------------------------- render


def charge_reply() -> Reply:
    url = "https://pay.example/p/abc123"
    return Reply(
        text=f"**S$25.00** — cake <3 & more\n{url}\nExpires `in 7 days`",
        buttons=(Button("Pay S$25.00", url),),
        link_id="abc123",
    )


def test_html_escapes_and_converts_markup() -> None:
    assert to_html("**S$25** <b>x</b> & `a<b`") == "<b>S$25</b> &lt;b&gt;x&lt;/b&gt; &amp; <code>a&lt;b</code>"


def test_charge_reply_renders_html_with_pay_and_share_buttons() -> None:
    kwargs = render(charge_reply())
    assert kwargs["parse_mode"] == "HTML"
    assert kwargs["text"].startswith("<b>S$25.00</b> — cake &lt;3 &amp; more\n")
    assert kwargs["link_preview_options"].is_disabled is True
    markup = kwargs["reply_markup"]
    assert isinstance(markup, InlineKeyboardMarkup)
    (pay,), (share,) = markup.inline_keyboard
    assert (pay.text, pay.url) == ("Pay S$25.00", "https://pay.example/p/abc123")
    assert share.text == SHARE_LABEL
    parts = urlsplit(share.url)
    assert (parts.netloc, parts.path) == ("t.me", "/share/url")
    assert parse_qs(parts.query)["url"] == ["https://pay.example/p/abc123"]


def test_reply_without_buttons_has_no_keyboard() -> None:
    assert render(Reply(text="✅ Paid"))["reply_markup"] is None


def test_plain_fallback_keeps_the_urls_and_drops_markup() -> None:
    reply = Reply(text="**S$25.00** cake", buttons=(Button("Pay S$25.00", "http://127.0.0.1:8080/p/x"),))
    kwargs = render_plain(reply)
    assert kwargs["text"] == "S$25.00 cake\nhttp://127.0.0.1:8080/p/x"
    assert "parse_mode" not in kwargs and "reply_markup" not in kwargs


def test_long_text_is_clipped_to_telegrams_limit() -> None:
    assert len(render(Reply(text="x" * 5000))["text"]) == 4096


def test_share_url_encodes_the_link() -> None:
    assert share_url("https://a.example/p/x?y=1&z=2") == "https://t.me/share/url?url=https%3A%2F%2Fa.example%2Fp%2Fx%3Fy%3D1%26z%3D2"


def test_qr_is_made_from_the_pay_url() -> None:
    reply = charge_reply()
    made = qr_photo(reply)
    assert made is not None and made[0].startswith(b"\x89PNG") and made[1] == "Scan to pay S$25.00"
    assert made[0] == qr_code(reply.buttons[0].url, "png", 8)  # the pay page's qr.png, from the same cache
    assert qr_photo(Reply(text="no link")) is None


# ---------------------------------------------------------------- error classes


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Forbidden("Forbidden: bot was blocked by the user"), Permanent),
        (Forbidden("Forbidden: bot was kicked from the group chat"), Permanent),
        (BadRequest("Bad Request: chat not found"), Permanent),
        (BadRequest("Bad Request: can't parse entities"), Transient),
        (TimedOut(), Transient),
        (NetworkError("Bad Gateway"), Transient),
        (InvalidToken("The token `123:abc` was rejected by the server."), Transient),
    ],
)
def test_classification(error: Exception, expected: type) -> None:
    assert type(classify(error, "123:abc")) is expected  # type: ignore[arg-type]


def test_retry_after_keeps_the_exact_value() -> None:
    result = classify(RetryAfter(7))
    assert isinstance(result, RetryLater) and result.after_s == 7.0


def test_migration_names_the_new_chat() -> None:
    result = classify(ChatMigrated(-1001234))
    assert isinstance(result, AddressMoved) and result.new_address == "-1001234"


def test_token_never_appears_in_classified_errors() -> None:
    token = "123456:SECRET"
    for error in (InvalidToken(f"The token `{token}` was rejected"), BadRequest(f"bad {token}")):
        assert token not in str(classify(error, token))
    assert redact(f"url /bot{token}/x", token) == "url /bot***/x"


# ---------------------------------------------------------------- the core's markup as this platform's


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**S$25.00** — 2 cakes", "<b>S$25.00</b> — 2 cakes"),
        ("`<b>` & **<i>**", "<code>&lt;b&gt;</code> &amp; <b>&lt;i&gt;</b>"),
        ("**Ref `INV & 1`**", "<b>Ref <code>INV &amp; 1</code></b>"),
        ("https://pay.example/p/abc?x=1&y=2", "https://pay.example/p/abc?x=1&amp;y=2"),
    ],
)
def test_telegram_html(text: str, expected: str) -> None:
    assert to_html(text) == expected


@given(st.text())
def test_any_text_is_valid_markup_and_telegram_html_is_safe(text: str) -> None:
    rendered = to_html(text)
    # Only our own tags survive; everything else is escaped, and the visible text is the plain text.
    assert set(re.findall(r"</?[a-z]+>", rendered)) <= {"<b>", "</b>", "<code>", "</code>"}
    assert html.unescape(re.sub(r"</?(?:b|code)>", "", rendered)) == core_markup.to_plain(text)
