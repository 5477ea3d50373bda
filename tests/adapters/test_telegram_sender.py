"""TelegramSender (the outbox's ChatSender) with the real PTB against the fake Bot API server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from adapters.telegram.sender import TelegramSender
from core.ports import AddressMoved, Button, ChatSender, MessageRef, Permanent, Reply, RetryLater, Transient
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-token"


@dataclass
class Options:
    token: str
    api_base_url: str
    mode: str = "webhook"
    webhook_secret: str = "s3cret"
    send_qr: bool = False


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
async def sender(fake: FakeTelegram) -> AsyncIterator[TelegramSender]:
    sender = TelegramSender(Options(TOKEN, fake.url))
    yield sender
    await sender.close()


LINK = Reply(
    text="**S$25.00** — cake\nhttps://pay.example/p/abc",
    buttons=(Button("Pay S$25.00", "https://pay.example/p/abc"),),
    link_id="abc",
)


async def test_is_a_chat_sender(sender: TelegramSender) -> None:
    assert isinstance(sender, ChatSender)
    assert sender.platform == "telegram"


async def test_send_posts_html_with_buttons_and_returns_the_message_ref(
    fake: FakeTelegram, sender: TelegramSender
) -> None:
    ref = await sender.send("111", LINK)
    (call,) = fake.calls_to("sendMessage")
    assert call.chat_id == "111"
    assert call.params["parse_mode"] == "HTML"
    assert call.params["text"].startswith("<b>S$25.00</b> — cake")
    labels = [row[0]["text"] for row in call.keyboard]
    assert labels[0] == "Pay S$25.00" and "Share" in labels[1]
    assert (ref.platform, ref.address) == ("telegram", "111")
    assert ("111", ref.message_id) in fake.messages


async def test_edit_replaces_text_and_removes_the_pay_button(fake: FakeTelegram, sender: TelegramSender) -> None:
    ref = await sender.send("111", LINK)
    await sender.edit(ref, Reply(text="**S$25.00** — cake\n✅ Paid by Bo at 10:02 UTC"))
    (call,) = fake.calls_to("editMessageText")
    assert (call.chat_id, call.params["message_id"]) == ("111", ref.message_id)
    assert "✅ Paid by Bo" in call.params["text"]
    assert "reply_markup" not in call.params
    assert fake.messages[("111", ref.message_id)].endswith("✅ Paid by Bo at 10:02 UTC")


async def test_edit_twice_is_harmless(fake: FakeTelegram, sender: TelegramSender) -> None:
    ref = await sender.send("111", LINK)
    paid = Reply(text="✅ Paid")
    await sender.edit(ref, paid)
    await sender.edit(ref, paid)  # a retry after a crash: Telegram says "message is not modified"
    assert len(fake.calls_to("editMessageText")) == 2


async def test_edit_of_a_deleted_message_is_not_an_error(fake: FakeTelegram, sender: TelegramSender) -> None:
    await sender.edit(MessageRef("telegram", "111", "999999"), Reply(text="✅ Paid"))
    assert len(fake.calls_to("editMessageText")) == 1


async def test_edit_of_an_inline_message_uses_its_id(fake: FakeTelegram, sender: TelegramSender) -> None:
    ref = MessageRef("telegram", "111", "inl-9", {"inline_message_id": "inl-9"})
    await sender.edit(ref, Reply(text="✅ Paid"))
    (call,) = fake.calls_to("editMessageText")
    assert call.params["inline_message_id"] == "inl-9"
    assert "chat_id" not in call.params
    assert fake.inline_messages["inl-9"] == "✅ Paid"


async def test_rate_limit_is_retry_later_with_the_exact_value(fake: FakeTelegram, sender: TelegramSender) -> None:
    fake.rate_limit("sendMessage", retry_after=17)
    with pytest.raises(RetryLater) as caught:
        await sender.send("111", LINK)
    assert caught.value.after_s == 17.0
    await sender.send("111", LINK)  # only the one call was limited


async def test_blocked_user_is_permanent(fake: FakeTelegram, sender: TelegramSender) -> None:
    fake.block("111")
    with pytest.raises(Permanent, match="blocked"):
        await sender.send("111", LINK)
    await sender.send("222", LINK)


async def test_chat_not_found_is_permanent(fake: FakeTelegram, sender: TelegramSender) -> None:
    fake.lose_chat("-5")
    with pytest.raises(Permanent, match=r"(?i)chat not found"):
        await sender.send("-5", LINK)
    with pytest.raises(Permanent):
        await sender.edit(MessageRef("telegram", "-5", "1"), Reply(text="✅ Paid"))


async def test_migrated_group_is_address_moved(fake: FakeTelegram, sender: TelegramSender) -> None:
    fake.migrate("-5", "-1001234")
    with pytest.raises(AddressMoved) as caught:
        await sender.send("-5", LINK)
    assert caught.value.new_address == "-1001234"
    ref = await sender.send(caught.value.new_address, LINK)
    assert ref.address == "-1001234"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(fake: FakeTelegram, sender: TelegramSender, status: int) -> None:
    fake.fail("sendMessage", status=status, description="Internal Server Error")
    with pytest.raises(Transient):
        await sender.send("111", LINK)


async def test_unreachable_api_is_transient(fake: FakeTelegram) -> None:
    sender = TelegramSender(Options(TOKEN, fake.url))
    await sender.send("111", LINK)
    await fake.close()
    try:
        with pytest.raises(Transient):
            await sender.send("111", LINK)
    finally:
        await sender.close()


async def test_rejected_token_is_transient_and_never_shown(fake: FakeTelegram) -> None:
    sender = TelegramSender(Options("999:WRONG-secret-token", fake.url))
    try:
        with pytest.raises(Transient) as caught:
            await sender.send("111", LINK)
    finally:
        await sender.close()
    assert "WRONG-secret-token" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_refused_button_url_falls_back_to_plain_text(fake: FakeTelegram, sender: TelegramSender) -> None:
    # Telegram refuses buttons pointing at http://127.0.0.1 (a developer's public_base_url).
    fake.fail("sendMessage", status=400,
              description="Bad Request: inline keyboard button URL 'http://127.0.0.1/p/x' is invalid: Wrong HTTP URL")
    local = Reply(text="**S$1.00** x", buttons=(Button("Pay S$1.00", "http://127.0.0.1/p/x"),), link_id="x")
    await sender.send("111", local)
    first, second = fake.calls_to("sendMessage")
    assert first.keyboard and not second.keyboard
    assert second.params["text"] == "S$1.00 x\nhttp://127.0.0.1/p/x"
    assert "parse_mode" not in second.params


async def test_http_library_logs_never_show_the_token(
    fake: FakeTelegram, sender: TelegramSender, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="httpx"):
        await sender.send("111", LINK)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("httpx")]
    assert any("/bot***/sendMessage" in line for line in lines)  # httpx did log the request …
    assert all(TOKEN not in line for line in lines)  # … without the token


def test_the_cli_quiets_httpx_request_lines() -> None:
    from bots.cli import configure_logging

    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    saved = (root.level, list(root.handlers), httpx.level)
    try:
        configure_logging("debug")
        assert httpx.getEffectiveLevel() == logging.WARNING
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        httpx.setLevel(saved[2])


def test_ptb_log_records_and_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import adapters.telegram.bot  # noqa: F401  (imports telegram.ext, whose loggers exist from then on)
    from adapters.telegram.sender import redact_http_logs

    redact_http_logs(TOKEN)
    updater_log = logging.getLogger("telegram.ext.Updater")
    with caplog.at_level(logging.ERROR, logger="telegram.ext.Updater"):
        try:
            raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
        except RuntimeError:
            updater_log.exception("polling failed for %s", TOKEN)
    (record,) = caplog.records
    assert TOKEN not in record.getMessage()
    assert record.exc_text and TOKEN not in record.exc_text and "***" in record.exc_text
    assert TOKEN not in caplog.text
