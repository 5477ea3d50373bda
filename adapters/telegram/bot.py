"""The Telegram bot inside the paylinks aiohttp app: webhook route, long polling, commands, inline mode.

One PTB `Application` per app instance, built inside the running loop (`start()`, from a cleanup_ctx) and
never at import: PTB's HTTP client and queues belong to the loop that first used them.

- Webhook mode (production): built with `updater(None)`; Telegram posts updates to POST /telegram/webhook,
  which checks X-Telegram-Bot-Api-Secret-Token in constant time, puts the update on PTB's queue and answers
  at once (the conversation runs after the answer, so a slow database never makes Telegram retry).
- Polling mode (development, no public URL): PTB's Updater long-polls getUpdates inside `paylinks serve`.

Start-up (getMe, setMyCommands, polling) retries in the background with backoff, so Telegram being
unreachable never stops the pay pages from serving; until it is up the webhook answers 503 and Telegram
delivers again later.

Inline mode ("@YourBot 25 cake" in any chat): the offered result already carries a link id generated at
offer time, but the link is only created when Telegram reports the result as chosen
(chosen_inline_result, which needs /setinlinefeedback in BotFather). Offers that nobody picks never reach
the database, so they never show up in /links.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy import select, update
from telegram import (
    BotCommand,
    ChatMemberUpdated,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Update,
)
from telegram.constants import ChatMemberStatus
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackContext,
    CallbackQueryHandler,
    ChatMemberHandler,
    ChosenInlineResultHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from adapters.telegram.config import TelegramOptions, check_options
from adapters.telegram.parse import GROUP_TYPES, PLATFORM, parse_callback, parse_command, parse_private_text
from adapters.telegram.render import keyboard, qr_photo, render, render_plain
from adapters.telegram.sender import is_content_problem, make_request, post_reply, redact, redact_http_logs
from core import i18n, ids
from core.commands import COMMANDS as REGISTRY
from core.commands import greeting, split_command, suggest
from core.deliveries import DeliveryLog
from core.links import LinkService
from core.models import ChatTarget, Member, Merchant
from core.ports import IncomingMessage, MessageRef, Reply
from core.settings import reveal
from core.sql import table

log = logging.getLogger("paylinks.telegram")

TARGETS = table(ChatTarget)
MEMBERS = table(Member)
MERCHANTS = table(Merchant)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Every update type a handler below uses; Telegram sends nothing else (setWebhook / getUpdates).
ALLOWED_UPDATES = ["message", "inline_query", "chosen_inline_result", "my_chat_member", "callback_query"]

# The command menu (setMyCommands), from the core's command registry, in each catalog's language. The
# conversation answers every one.
# setMyCommands takes a two-letter ISO 639-1 language_code (empty: everyone without a menu of their own).
# Telegram's own Chinese (its users' language_code "zh-hans" / "zh-hant") has one such code, "zh": the
# Simplified menu; Filipino has none of its own, Tagalog's "tl"; Portuguese is Brazil's catalog.
MENU_LANGUAGES: dict[str, str] = {
    "id": "id", "th": "th", "vi": "vi", "ms": "ms", "tl": "fil", "zh": "zh_Hans", "ja": "ja", "ko": "ko",
    "es": "es", "pt": "pt_BR",
}


def menu_commands(language: str) -> list[BotCommand]:
    t = i18n.tr(language)
    return [BotCommand(spec.name, t.gettext(spec.menu)[:256]) for spec in REGISTRY]


COMMANDS = menu_commands(i18n.DEFAULT)  # everyone else: English
# Private text that is not a command but is still for the conversation: a typed answer to its question.
_ANSWER_TEXT = re.compile(r"^\s*(?:#?[0-9][.)]?|cancel|yes|no|ok)\s*[.!]?\s*$", re.IGNORECASE)


def private_hint(language: str | None) -> Reply:
    """The answer to private text that is not for the conversation, in the person's language."""
    return Reply(text=i18n.tr(language).gettext(
        "Send `/charge 25 cake` for a payment link, or /help to see everything I can do."))


Conversation = Callable[[IncomingMessage], Awaitable[list[Reply]]]


# ---------------------------------------------------------------- inline mode port


@dataclass(frozen=True, slots=True)
class InlineOffer:
    """A payment-link card to offer for an inline query; nothing is stored yet."""

    link_id: str
    title: str
    description: str
    reply: Reply  # the card: text plus the Pay button pointing at the (future) link


@dataclass(frozen=True, slots=True)
class InlineHint:
    """No card for this query (empty, wrong, or an unknown person): a short hint instead."""

    text: str


class InlineCharges(Protocol):
    """What inline mode needs from the core: preview a /charge without storing it, then create it."""

    async def offer(self, user_id: str, display_name: str, query: str, link_id: str, *,
                    language: str | None = None) -> InlineOffer | InlineHint:
        """`language`: the person's Telegram language_code (their /language, if they set one, comes first)."""
        ...

    async def create(self, user_id: str, display_name: str, query: str, link_id: str) -> str | None:
        """Create the link with exactly this id (once); its id, or None when the query no longer works."""
        ...


# ---------------------------------------------------------------- the bot


class TelegramBot:
    def __init__(
        self,
        options: TelegramOptions,
        *,
        conversation: Conversation,
        links: LinkService,
        inline: InlineCharges | None = None,
    ) -> None:
        check_options(options)
        self.options = options
        self.conversation = conversation
        self.links = links
        self.inline = inline
        # Updates Telegram delivers again (no timely 2xx) are answered once, by update_id (per bot).
        self.deliveries = DeliveryLog(links.db, clock=links.clock)
        self.polling = options.mode == "polling"
        self.application: Application[Any, Any, Any, Any, Any, Any] | None = None
        self.username = ""
        # Exceptions raised by handlers (PTB swallows them after the error handler): for health and tests.
        self.errors: list[BaseException] = []
        self._ready: asyncio.Event | None = None
        self._handled: asyncio.Condition | None = None
        self._handled_ids: Counter[int] = Counter()  # update_id -> times PTB finished handling it
        self._starter: asyncio.Task[None] | None = None
        self._initialized = False

    @property
    def _token(self) -> str:
        return reveal(self.options.token)

    @property
    def ready(self) -> bool:
        return self._ready is not None and self._ready.is_set()

    # ------------------------------------------------------------ aiohttp wiring

    def routes(self) -> list[web.RouteDef]:
        # Polling mode has no webhook: an open route would only be something to probe.
        return [] if self.polling else [web.post(WEBHOOK_PATH, self.webhook)]

    async def start(self) -> None:
        self._ready = asyncio.Event()
        self._handled = asyncio.Condition()
        self.application = self._build()
        self._starter = asyncio.create_task(self._start_with_retries(), name="telegram-start")

    async def wait_ready(self, within: float = 10.0) -> None:
        assert self._ready is not None, "start() first"
        async with asyncio.timeout(within):
            await self._ready.wait()

    async def wait_handled(self, update_id: int, within: float = 10.0, *, times: int = 1) -> None:
        """Until PTB has run every handler for this update, `times` deliveries of it (tests; the webhook
        answers before that)."""
        assert self._handled is not None, "start() first"
        async with asyncio.timeout(within), self._handled:
            await self._handled.wait_for(lambda: self._handled_ids[update_id] >= times)

    def _build(self) -> Application[Any, Any, Any, Any, Any, Any]:
        base = self.options.api_base_url.rstrip("/")
        redact_http_logs(self._token)
        builder = (
            Application.builder()
            .token(self._token)
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .request(make_request(pool_size=32))
            # Conversations of different chats must not wait for each other's database and Telegram calls.
            .concurrent_updates(16)
            .job_queue(None)
        )
        if self.polling:
            # getUpdates holds the connection for its long-poll timeout; PTB adds that to read_timeout.
            builder = builder.get_updates_request(make_request(pool_size=1, read_timeout=10.0))
        else:
            builder = builder.updater(None)
        application = builder.build()
        application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, self._on_command))
        application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE,
                                               self._on_private_text))
        application.add_handler(CallbackQueryHandler(self._on_button))
        application.add_handler(InlineQueryHandler(self._on_inline_query))
        application.add_handler(ChosenInlineResultHandler(self._on_chosen_inline_result))
        application.add_handler(ChatMemberHandler(self._on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
        # A later group runs after the handlers (and the error handler) of group 0 are done.
        application.add_handler(TypeHandler(Update, self._mark_handled), group=99)
        application.add_error_handler(self._on_error)
        return application

    async def _start_with_retries(self) -> None:
        # Until Telegram answers, however long that takes: 1 s, 2 s, 4 s … then every 60 s. Cancelling
        # (shutdown) is not an Exception, so it ends the retries at once.
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=1, min=1, max=60),
            retry=retry_if_exception_type(Exception),
            before_sleep=self._log_start_failure,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._start_once()

    def _log_start_failure(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.error("telegram bot not started (%s); retrying in %.0fs",
                  self._describe(exc) if exc is not None else "?", delay)

    async def _start_once(self) -> None:
        application = self.application
        assert application is not None and self._ready is not None
        if not self._initialized:
            await application.initialize()  # getMe: checks the token, learns our @username
            self._initialized = True
        self.username = application.bot.username
        await self._set_menus(application)
        if self.polling:
            assert application.updater is not None
            await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES, timeout=10)
        await application.start()
        self._ready.set()
        log.info("telegram bot @%s running (%s)", self.username, self.options.mode)

    async def _set_menus(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """The command menu in English for everyone, and in each catalog's language for its speakers."""
        for code, language in (("", i18n.DEFAULT), *MENU_LANGUAGES.items()):
            try:
                await application.bot.set_my_commands(menu_commands(language), language_code=code or None)
            except TelegramError as exc:  # only that menu is missing; commands work anyway
                log.warning("telegram setMyCommands failed language=%s: %s", code or "-", self._describe(exc))

    async def stop(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            await asyncio.gather(self._starter, return_exceptions=True)
            self._starter = None
        application, self.application = self.application, None
        if application is None:
            return
        try:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            if application.running:
                await application.stop()
        finally:
            if self._initialized:
                await application.shutdown()
                self._initialized = False
        if self._ready is not None:
            self._ready.clear()

    # ------------------------------------------------------------ the webhook

    async def webhook(self, request: web.Request) -> web.Response:
        """POST /telegram/webhook: authenticate, enqueue, answer. Never waits for the conversation."""
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), reveal(self.options.webhook_secret).encode()):
            log.warning("telegram webhook with a missing or wrong secret token from %s", request.remote)
            return web.json_response({"error": "forbidden"}, status=403)
        application = self.application
        if application is None or not self.ready:
            # Telegram delivers the update again later; nothing is lost.
            return web.json_response({"error": "starting"}, status=503, headers={"Retry-After": "5"})
        try:
            data = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be a JSON Telegram Update"}, status=400)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return web.json_response({"error": "update_id is missing"}, status=400)
        try:
            update = Update.de_json(data, application.bot)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("telegram webhook: unreadable update update_id=%s (%s)", data["update_id"], exc)
            return web.json_response({"error": "not a Telegram Update"}, status=400)
        await application.update_queue.put(update)
        return web.json_response({"ok": True})

    # ------------------------------------------------------------ handlers

    def _delivery_id(self, update: Update) -> str:
        # update_id counts per bot; the token's first part is the bot's id (public, not the secret).
        return f"{self._token.split(':', 1)[0]}:{update.update_id}"

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = parse_command(update, self.username or context.bot.username)
        if message is None:
            return  # another bot's command in a shared group, or not a command after all
        message = replace(message, delivery_id=self._delivery_id(update))
        await self._reachable_again(message.address)
        replies = await self.conversation(message)
        reply_to = int(message.extra["message_id"]) if message.is_group else None
        if message.is_group:
            replies = [await self._privately(context, message, reply) if reply.private else reply
                       for reply in replies]
        await self._answer(context, message.address, replies, reply_to=reply_to)

    async def _on_private_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = parse_private_text(update)
        if message is None:
            return
        message = replace(message, delivery_id=self._delivery_id(update))
        await self._reachable_again(message.address)
        word = split_command(message.text)
        if (word.name not in (None, "unknown") or greeting(message.text) is not None or suggest(word)
                or _ANSWER_TEXT.match(message.text)):
            # "charge 25 cake" without the slash is read like the command (as on WhatsApp); greetings,
            # typos ("chrage 25 cake") and typed answers to a question go to the conversation too.
            await self._answer(context, message.address, await self.conversation(message), reply_to=None)
            return
        if await self.deliveries.first_time(PLATFORM, message.delivery_id):
            await post_reply(context.bot, message.address,
                             private_hint(await self._language_of(message.user_id, message.language)))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An answer button (Reply Button.action) was pressed: the conversation gets it as an action."""
        query = update.callback_query
        if query is None:
            return
        message = parse_callback(update)
        # Telegram shows a spinner on the button until the query is answered, whatever happens next.
        await query.answer()
        if message is None:
            return
        # A tap Telegram delivers again (its update_id) is answered once.
        message = replace(message, delivery_id=self._delivery_id(update))
        replies = await self.conversation(message)
        await self._answer(context, message.address, replies, reply_to=None)

    async def _privately(self, context: ContextTypes.DEFAULT_TYPE, message: IncomingMessage,
                         reply: Reply) -> Reply:
        """A private answer asked for in a group goes to the person's DM; the group hears only where it went."""
        t = i18n.tr(await self._language_of(message.user_id, message.language))
        try:
            await post_reply(context.bot, message.user_id, reply)
        except TelegramError as exc:  # they never opened a chat with the bot: it may not write first
            log.info("telegram private answer not delivered user DM: %s", self._describe(exc))
            return Reply(t.gettext("I can only send that privately. Open a chat with me and send the command "
                                   "there."))
        return Reply(t.gettext("I sent it to you in a private chat."))

    async def _answer(
        self, context: ContextTypes.DEFAULT_TYPE, chat_id: str, replies: list[Reply], *, reply_to: int | None
    ) -> None:
        for reply in replies:
            sent = await post_reply(context.bot, chat_id, reply, reply_to=reply_to)
            if reply.link_id:
                # Paid alerts edit this message later (the outbox reads it from the link).
                ref = MessageRef(PLATFORM, str(sent.chat_id), str(sent.message_id))
                await self.links.attach_message(reply.link_id, ref)
                if self.options.send_qr:
                    await self._send_qr(context, chat_id, reply)
            if reply.invoice_pdf:
                await self._send_invoice(context, chat_id, reply.invoice_pdf)

    async def _send_invoice(self, context: ContextTypes.DEFAULT_TYPE, chat_id: str, link_id: str) -> None:
        """/invoice: the invoice PDF as a document (sendDocument, multipart upload)."""
        from adapters.web.invoice_pages import InvoicePdfs

        file = await InvoicePdfs(self.links.db, self.links).invoice_file(link_id)
        if file is None:
            return
        try:
            await context.bot.send_document(chat_id, document=file.body, filename=file.filename, caption=file.caption)
        except TelegramError as exc:  # the link message is out already, with the PDF's URL as a button
            log.warning("telegram invoice document not sent chat=%s link=%s: %s", chat_id, link_id,
                        self._describe(exc))

    async def _send_qr(self, context: ContextTypes.DEFAULT_TYPE, chat_id: str, reply: Reply) -> None:
        photo = await asyncio.to_thread(qr_photo, reply)  # rendering is CPU work: off the event loop
        if photo is None:
            return
        png, caption = photo
        try:
            await context.bot.send_photo(chat_id, photo=png, caption=caption or None)
        except TelegramError as exc:  # the link message is out already; the QR is a convenience
            log.warning("telegram QR photo not sent chat=%s link=%s: %s", chat_id, reply.link_id,
                        self._describe(exc))

    async def _on_inline_query(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.inline_query
        if query is None:
            return
        # Personal and uncached: the card depends on who asks (their shop, currency) and holds a fresh id.
        answer: dict[str, Any] = {"cache_time": 0, "is_personal": True}
        if self.inline is None:
            await query.answer([], **answer)
            return
        user = query.from_user
        offer = await self.inline.offer(str(user.id), user.full_name, query.query.strip(), ids.link_id(),
                                        language=user.language_code)
        if isinstance(offer, InlineHint):
            # Shown above the (empty) results; tapping it opens our private chat (/start onboards).
            button = InlineQueryResultsButton(text=_fit(offer.text, 64), start_parameter="inline")
            await query.answer([], button=button, **answer)
            return
        try:
            await query.answer([_article(offer, plain=False)], **answer)
        except BadRequest as exc:
            if not is_content_problem(exc):
                raise
            await query.answer([_article(offer, plain=True)], **answer)

    async def _on_chosen_inline_result(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chosen = update.chosen_inline_result
        if chosen is None or self.inline is None:
            return
        user = chosen.from_user
        link_id = await self.inline.create(str(user.id), user.full_name, chosen.query.strip(), chosen.result_id)
        if link_id is None:
            return
        if chosen.inline_message_id:
            # An inline message is edited by its own id; "answers" go to the seller's private chat with us.
            ref = MessageRef(PLATFORM, str(user.id), chosen.inline_message_id,
                             {"inline_message_id": chosen.inline_message_id})
            await self.links.attach_message(link_id, ref)
        log.info("telegram inline link sent link=%s user=%s", link_id, user.id)

    async def _on_my_chat_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change: ChatMemberUpdated | None = update.my_chat_member
        if change is None:
            return
        old, new = change.old_chat_member.status, change.new_chat_member.status
        gone = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)
        if new in gone:
            # Alerts to this chat will fail as Permanent and the outbox disables the target then.
            log.info("telegram bot removed or blocked chat=%s", change.chat.id)
            return
        if old in gone:
            await self._reachable_again(str(change.chat.id))
        if old in gone and change.chat.type in GROUP_TYPES and await self.deliveries.first_time(
            PLATFORM, self._delivery_id(update)
        ):
            adder = change.from_user
            language = (await self._language_of(str(adder.id), adder.language_code) if adder is not None
                        else i18n.DEFAULT)
            hint = Reply(text=i18n.tr(language).gettext("Hello! Make a payment link here with %(command)s.",
                                                     command=f"`/charge@{self.username} 25 cake`"))
            await post_reply(context.bot, change.chat.id, hint)

    async def _language_of(self, user_id: str, language_code: str | None) -> str:
        """The person's language as the conversation answers them (Conversation.language_of): their
        /language, else Telegram's language_code, else their shop's, else English. One read."""
        async with self.links.db.read() as conn:
            row = (await conn.execute(
                select(MEMBERS.c.language, MERCHANTS.c.locale)
                .join_from(MEMBERS, MERCHANTS, MERCHANTS.c.id == MEMBERS.c.merchant_id)
                .where(MEMBERS.c.platform == PLATFORM, MEMBERS.c.platform_user_id == user_id)
                .order_by(MEMBERS.c.id).limit(1))).first()
        return i18n.first_language(row.language if row else None, language_code, row.locale if row else None)

    async def _reachable_again(self, address: str) -> None:
        """The chat wrote to us (or unblocked us): if the outbox disabled it, alerts go there again.

        One read per message; a write only for a chat that was disabled.
        """
        db = self.links.db
        where = (TARGETS.c.platform == PLATFORM, TARGETS.c.address == address)
        async with db.read() as conn:
            row = (await conn.execute(select(TARGETS.c.disabled_at).where(*where))).first()
        if row is None or row.disabled_at is None:
            return
        async with db.write() as conn:
            await conn.execute(update(TARGETS).where(*where).values(
                last_inbound_at=self.links.clock(), disabled_at=None, disabled_reason=None))
        log.info("telegram chat reachable again chat=%s", address)

    async def _mark_handled(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self._handled is not None
        async with self._handled:
            self._handled_ids[update.update_id] += 1
            if len(self._handled_ids) > 10_000:  # only recent ids matter to a waiter
                self._handled_ids = Counter({k: self._handled_ids[k] for k in sorted(self._handled_ids)[-1000:]})
            self._handled.notify_all()

    async def _on_error(self, update: object, context: CallbackContext[Any, Any, Any, Any]) -> None:
        error = context.error
        if error is None:
            return
        self.errors.append(error)
        del self.errors[:-100]
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram update failed update=%s: %s", update_id, self._describe(error, trace=True))

    def _describe(self, exc: BaseException, *, trace: bool = False) -> str:
        text = "".join(traceback.format_exception(exc)) if trace else f"{type(exc).__name__}: {exc}"
        return redact(text, self._token)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _article(offer: InlineOffer, *, plain: bool) -> InlineQueryResultArticle:
    if plain:
        kwargs = render_plain(offer.reply)
        content = InputTextMessageContent(kwargs["text"], link_preview_options=kwargs["link_preview_options"])
        markup = None
    else:
        kwargs = render(offer.reply)
        content = InputTextMessageContent(kwargs["text"], parse_mode=kwargs["parse_mode"],
                                          link_preview_options=kwargs["link_preview_options"])
        markup = keyboard(offer.reply)
    return InlineQueryResultArticle(
        id=offer.link_id, title=_fit(offer.title, 256), description=_fit(offer.description, 256),
        input_message_content=content, reply_markup=markup,
    )


# Where bots/app.py keeps the bot (tests reach it through the app).
TELEGRAM_BOT = web.AppKey("telegram_bot", TelegramBot)
