"""Sending and editing Telegram messages, with Telegram's errors classified for the outbox.

`TelegramSender` is the ChatSender the outbox uses (in `paylinks serve` and in `paylinks worker`); it owns a
plain `telegram.Bot` built lazily inside the running loop. The interactive bot (bot.py) posts its answers
with the same `post_reply` / `edit_reply` helpers through its Application's bot.

Rate limits are the outbox's job (it paces per chat and honours `RetryLater` exactly). PTB's
AIORateLimiter is deliberately not used: on one 429 it pauses every request of the bot.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from datetime import timedelta
from typing import Any

from telegram import Bot, Message, ReplyParameters
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from adapters.telegram.config import TelegramOptions
from adapters.telegram.parse import PLATFORM
from adapters.telegram.render import render, render_plain
from core.ports import AddressMoved, MessageRef, Permanent, Reply, RetryLater, SendError, Transient
from core.settings import reveal

log = logging.getLogger("paylinks.telegram")

# Substrings of Telegram's 400 descriptions meaning the chat itself is unreachable for this bot.
_CHAT_GONE = (
    "chat not found", "user not found", "peer_id_invalid", "chat_write_forbidden", "have no rights to send",
    "not enough rights to send", "bot is not a member", "group chat was deactivated", "user is deactivated",
    "chat_restricted", "need administrator rights",
)
# 400s about the message content, which a plain-text resend avoids (bad markup; a button URL that
# Telegram refuses, such as http://127.0.0.1 while developing).
_CONTENT = ("can't parse entities", "button_url_invalid", "button url", "wrong http url", "url host is empty",
            "unsupported url protocol", "wrong url")
# Edits that cannot happen and never will; the chat itself is fine.
_EDIT_GONE = ("message to edit not found", "message can't be edited", "message_id_invalid",
              "message identifier is not specified")


def redact(text: str, token: str) -> str:
    """PTB puts the token in some messages (InvalidToken, URLs); logs and errors must never carry it."""
    return text.replace(token, "***") if token else text


class _RedactToken(logging.Filter):
    """Masks the bot token in log records (Bot API URLs are /bot<token>/method; PTB's InvalidToken quotes
    it), in the message and in the traceback text."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "***"), None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is rendered once, redacted.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, "***")
        return True


def redact_http_logs(token: str) -> None:
    """Whatever levels an operator sets, records of httpx, httpcore and PTB never show the token."""
    if not token:
        return
    names = ["httpx", "httpcore", "telegram"]
    # PTB logs through one logger per module/class (telegram.ext.Updater, …); filters do not inherit.
    names += [n for n in logging.root.manager.loggerDict if n.startswith(("telegram.", "httpx.", "httpcore."))]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactToken) and f.token == token for f in logger.filters):
            logger.addFilter(_RedactToken(token))


def make_request(*, pool_size: int = 16, read_timeout: float = 10.0) -> HTTPXRequest:
    # A slow Telegram must not hold an outbox slot or a webhook update for long: bounded connect, write
    # and pool waits; reads get a little longer because Telegram answers sendPhoto after processing it.
    return HTTPXRequest(
        connection_pool_size=pool_size,
        connect_timeout=5.0,
        read_timeout=read_timeout,
        write_timeout=10.0,
        pool_timeout=3.0,
        media_write_timeout=30.0,
    )


def build_bot(options: TelegramOptions) -> Bot:
    base = options.api_base_url.rstrip("/")
    redact_http_logs(reveal(options.token))
    return Bot(
        reveal(options.token),
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=make_request(),
        get_updates_request=make_request(pool_size=1),
    )


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 returns an int and warns that it will become a timedelta; accept both.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def classify(exc: TelegramError, token: str = "") -> SendError:
    """Telegram's error → RetryLater / AddressMoved / Permanent / Transient (see core.ports)."""
    message = redact(exc.message, token)
    if isinstance(exc, RetryAfter):
        return RetryLater(retry_after_seconds(exc), f"telegram: {message}")
    if isinstance(exc, ChatMigrated):
        return AddressMoved(str(exc.new_chat_id))
    if isinstance(exc, Forbidden):
        # Blocked by the user, kicked from the group, user deactivated, never started the bot.
        return Permanent(f"telegram: {message}")
    if isinstance(exc, InvalidToken):
        # Our configuration, not the chat: retried (and dead after outbox.max_attempts), never disables it.
        return Transient("telegram rejected the bot token")
    if isinstance(exc, BadRequest):
        lowered = message.lower()
        if any(part in lowered for part in _CHAT_GONE):
            return Permanent(f"telegram: {message}")
        # Other refusals are about this one request (our bug, not the chat's): do not disable the target.
        return Transient(f"telegram refused the request: {message}")
    return Transient(f"telegram: {message}")  # TimedOut, NetworkError (5xx, connection), Conflict, …


def is_content_problem(exc: BadRequest) -> bool:
    lowered = exc.message.lower()
    return any(part in lowered for part in _CONTENT)


async def post_reply(bot: Bot, chat_id: int | str, reply: Reply, *, reply_to: int | None = None) -> Message:
    """Send one Reply; on a refused rich message (markup or a button URL) send it again as plain text."""
    extra: dict[str, Any] = {}
    if reply_to is not None:
        extra["reply_parameters"] = ReplyParameters(reply_to, allow_sending_without_reply=True)
    try:
        return await bot.send_message(chat_id=chat_id, **render(reply), **extra)
    except BadRequest as exc:
        if not is_content_problem(exc):
            raise
        log.warning("telegram refused the formatted message (%s); sending plain text", exc.message)
        return await bot.send_message(chat_id=chat_id, **render_plain(reply), **extra)


async def edit_reply(bot: Bot, ref: MessageRef, reply: Reply) -> None:
    """Replace the text (and keyboard) of a message we sent, or of an inline message sent through us."""
    inline_id = ref.extra.get("inline_message_id")
    target: dict[str, Any] = (
        {"inline_message_id": str(inline_id)} if inline_id
        else {"chat_id": ref.address, "message_id": int(ref.message_id)}
    )
    try:
        try:
            await bot.edit_message_text(**target, **render(reply))
        except BadRequest as exc:
            if not is_content_problem(exc):
                raise
            await bot.edit_message_text(**target, **render_plain(reply))
    except BadRequest as exc:
        lowered = exc.message.lower()
        if "message is not modified" in lowered:
            return  # already edited (a retry after a crash): done
        if any(part in lowered for part in _EDIT_GONE):
            # The message was deleted or is too old to edit: nothing to update, and the chat is fine.
            log.info("telegram message to edit is gone chat=%s message=%s", ref.address, ref.message_id)
            return
        raise


class TelegramSender:
    """ChatSender for the outbox. Raises only core.ports errors, never PTB's."""

    platform = PLATFORM

    def __init__(self, options: TelegramOptions, *, bot: Bot | None = None) -> None:
        self.options = options
        self._bot = bot
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def _token(self) -> str:
        return reveal(self.options.token)

    async def _ready_bot(self) -> Bot:
        # One Bot per event loop: PTB's HTTP client belongs to the loop it was first used in.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._lock = loop, asyncio.Lock()
            if self._bot is None or self._bot._requests_initialized:
                self._bot = build_bot(self.options)
        assert self._lock is not None and self._bot is not None
        async with self._lock:
            if not self._bot._requests_initialized:
                try:
                    await self._bot.initialize()
                except TelegramError as exc:
                    raise classify(exc, self._token) from None
        return self._bot

    async def send(self, address: str, reply: Reply) -> MessageRef:
        bot = await self._ready_bot()
        try:
            message = await post_reply(bot, address, reply)
        except TelegramError as exc:
            raise classify(exc, self._token) from None
        return MessageRef(PLATFORM, str(message.chat_id), str(message.message_id))

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        bot = await self._ready_bot()
        try:
            await edit_reply(bot, ref, reply)
        except TelegramError as exc:
            raise classify(exc, self._token) from None

    async def close(self) -> None:
        bot, self._bot, self._loop = self._bot, None, None
        if bot is not None:
            await bot.shutdown()
