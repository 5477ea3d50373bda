"""The conversation: one platform-neutral answer to every chat message, for every platform.

`Conversation.handle(message)` finds out who is talking (core.members), reads what they asked
(core.commands) and answers with Replies (text in core.markup's tiny markup, URL buttons; a QR picture
of the pay link is for the adapter that sends one to render). It never raises for user mistakes: those are
answered with what was wrong and a corrected example; anything unexpected is logged and answered with a
short apology.

A /charge answer is a Reply with `link_id` set and a "Pay …" button; the adapter that posts it calls
`links.attach_message(link_id, ref)` so paid alerts can edit that message.

Which method answers a command comes from the command registry (core.commands.registry.COMMANDS, each
spec's `handler`). A /charge whose amount could mean two things is asked back: the question is stored
(core.questions) and the link is made when the seller presses an answer button (IncomingMessage.action)
or types the number; user text echoed in replies is bidi-isolated (markup.user).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core import i18n, markup
from core.audit import Actor, AuditLog
from core.chat_errors import link_error_text, merchant_error_text
from core.chat_invoices import InvoiceCommands
from core.clock import Clock, utcnow
from core.commands import (
    BY_NAME,
    COMMANDS,
    Alerts,
    Cancel,
    Charge,
    Choice,
    Command,
    CommandError,
    CommandSpec,
    Dashboard,
    Doubt,
    Greeting,
    Help,
    Invite,
    Join,
    Links,
    ParseContext,
    RefundAsk,
    Remind,
    Report,
    SetCurrency,
    SetLanguage,
    Shop,
    Status,
    parse,
    parse_money,
    split_command,
)
from core.commands.values import Promo, Sell, SeriesCharge
from core.db import DatabaseBusy
from core.deliveries import DeliveryLog
from core.i18n import N_
from core.links import LinkError, LinkService
from core.locales import timezone_for
from core.members import Identity, MemberError, MemberService
from core.merchants import MerchantError, MerchantService
from core.models import ChatTarget, LinkStatus, Member, MemberRole, Merchant, PaymentLink, RefundStatus
from core.money import Money, format_money
from core.ports import Button, IncomingMessage, Reply
from core.promos import PromoService
from core.questions import Asker, Question, QuestionStore
from core.refunds import RefundRequest, RefundService
from core.reminders import ReminderError, Reminders
from core.reports import (
    ReportService,
    format_relative,
    render_links,
    render_money_life,
    render_report,
    render_status,
    short_id,
    status_word,
)
from core.sales_texts import amount_text, counts_text, kind_text, pay_label
from core.series import SeriesService
from core.signin import SigninService
from core.sql import insert_ignore, table
from core.text import without_controls
from core.timeline import timeline

log = logging.getLogger("paylinks.conversation")

LINKS = table(PaymentLink)
MEMBERS = table(Member)
TARGETS = table(ChatTarget)
APOLOGY = N_("😕 Sorry, something went wrong on my side. Please try again in a moment.")
BUSY = N_("⏳ Paylinks is busy, try again in a moment.")
LIST_LIMIT = 10
# An amount this many times the median of the shop's recent links (same currency) is confirmed first.
LARGE_FACTOR = 10
RECENT_LINKS = 20
ANSWER_PREFIX = "answer:"
_NUMBER_ANSWER = re.compile(r"^\s*#?([0-9])\s*[.)]?\s*$")
_CANCEL_WORDS = frozenset({"cancel", "no", "none", "stop", "nope", "0", "n"})
_YES_WORDS = frozenset({"yes", "y", "ok", "okay", "sure", "yep", "confirm"})


class Conversation(InvoiceCommands):
    def __init__(
        self,
        *,
        links: LinkService,
        merchants: MerchantService,
        members: MemberService | None = None,
        reports: ReportService | None = None,
        clock: Clock = utcnow,
        deliveries: DeliveryLog | None = None,
        signins: SigninService | None = None,
    ) -> None:
        self.links = links
        self.merchants = merchants
        self.members = members or MemberService(links.db, merchants, clock=clock)
        self.reports = reports or ReportService(links.db, links, clock=clock)
        self.clock = clock
        # A message the platform delivers again is handled once (core/deliveries.py).
        self.deliveries = deliveries or DeliveryLog(links.db, clock=clock)
        # Questions asked back (ambiguous amounts) wait in the database, never in this object.
        self.questions = QuestionStore(links.db, clock=clock)
        self.signins = signins or SigninService(links.db, public_base_url=links.public_base_url, clock=clock)
        # Set by bots/services.py; None: /remind answers that reminders are not available here.
        self.reminders: Reminders | None = None
        # Where a new link is sent to its customer, in words ("ana@example.com by email"); set by
        # bots/services.py from the outbox's customer channels.
        self.customer_reach: Callable[[PaymentLink, frozenset[str] | None], list[str]] | None = None
        # `/charge … via sms`: words -> customer channels, and each channel's name in a sentence (set by
        # bots/services.py from the plug-ins, enabled or not, so "via sms" without SMS says so).
        self.via_words: dict[str, str] = {}
        self.channel_titles: dict[str, str] = {}
        # Set by bots/services.py: /refund and the refunds shown by /status.
        self.refunds: RefundService | None = None
        # (platform, address) -> the language last written to chat_target (see _remember_chat_language).
        self._chat_languages: dict[tuple[str, str], str] = {}
        # Set by bots/services.py: recurring charges (/charge … every month, /series).
        self.series: SeriesService | None = None

    # ------------------------------------------------------------ entry point

    async def handle(self, message: IncomingMessage) -> list[Reply]:
        # Control characters (NUL above all, which PostgreSQL refuses in text) never mean anything in a
        # chat message or a name; drop them before anything is parsed or stored.
        message = dataclasses.replace(
            message, text=without_controls(message.text), display_name=without_controls(message.display_name)
        )
        # Until we know who this is, answer in the language their platform says (core.i18n).
        with i18n.speaking(i18n.match_language(message.language)) as t:
            try:
                return await self.deliveries.once(message, self._handle_in_language)
            except DatabaseBusy as busy:  # another process held the database past database.busy_timeout
                log.warning("conversation refused: database busy (%s) platform=%s", busy.reason, message.platform)
                return [Reply(t.gettext(BUSY))]
            except Exception:  # the chat must always get an answer; the log gets the details
                log.exception("conversation failed platform=%s address=%s", message.platform, message.address)
                return [Reply(t.gettext(APOLOGY))]

    def language_of(self, member: Member | None, merchant: Merchant | None, message: IncomingMessage) -> str:
        """Who reads the answer: their /language, else their platform's language (Telegram's
        language_code, Slack's locale, a WhatsApp number's country), else their shop's, else English."""
        return i18n.first_language(member.language if member else None, message.language,
                                   merchant.locale if merchant else None)

    async def _handle_in_language(self, message: IncomingMessage) -> list[Reply]:
        identity = await self.members.identify(message)
        language = self.language_of(identity.member if identity else None,
                                    identity.merchant if identity else None, message)
        if identity is not None:
            await self._remember_chat_language(message, language)
        with i18n.speaking(language):
            return await self._handle(message)

    async def _remember_chat_language(self, message: IncomingMessage, language: str) -> None:
        """The chat's language for the alerts sent to it (core/outbox.py): the last writer's. Written only
        when it changes (remembered per process), so most messages cost no write."""
        key = (message.platform, message.address)
        if self._chat_languages.get(key) == language:
            return
        async with self.links.db.write() as conn:
            changed = await conn.execute(TARGETS.update().where(
                TARGETS.c.platform == message.platform, TARGETS.c.address == message.address,
                TARGETS.c.language.is_distinct_from(language)).values(language=language))
            if changed.rowcount == 0:
                exists = (await conn.execute(select(TARGETS.c.id).where(
                    TARGETS.c.platform == message.platform, TARGETS.c.address == message.address))).first()
                if exists is None:
                    await insert_ignore(conn, TARGETS, {"platform": message.platform, "address": message.address,
                                                        "language": language})
        if len(self._chat_languages) > 10_000:
            self._chat_languages.clear()
        self._chat_languages[key] = language

    async def _handle(self, message: IncomingMessage) -> list[Reply]:
        if message.action and message.action.startswith(ANSWER_PREFIX):
            return await self._answer_button(message)
        # "2", "yes", "cancel" right after a question answer it (only then is "cancel" not /cancel).
        if (answer := await self._answer_typed(message)) is not None:
            return answer
        word = split_command(message.text)
        if word.name is None:
            # Chatter in a group is not for us.
            if message.is_group or not message.text.strip():
                return [] if message.is_group else [Reply(self._help(None, known=False))]
            return [Reply(await self._not_a_command(message))]
        if word.name == "unknown":
            return [Reply(await self._not_a_command(message))]
        spec = BY_NAME[word.name]
        if not spec.needs_shop:
            command = parse(message.text, ParseContext())
            if isinstance(command, CommandError):
                return [Reply(command.text())]
            replies: list[Reply] = await getattr(self, f"_{spec.handler}")(command, None, message)
            return replies

        identity = await self.members.identify(message)
        welcome: Reply | None = None
        if identity is None:
            identity = await self.members.onboard(message)
            if identity.created:
                welcome = Reply(self._welcome(identity))
        if spec.name == "start":
            return [welcome or Reply(self._greeting(identity))]
        command = parse(message.text, self._context(identity.merchant, identity.member))
        replies = [Reply(command.text())] if isinstance(command, CommandError) else await self._run(
            spec, command, identity, message
        )
        return [welcome, *replies] if welcome else replies

    async def _not_a_command(self, message: IncomingMessage) -> str:
        """A greeting, a mistyped command ("did you mean /charge?"), or anything else (the help)."""
        found = parse(message.text, ParseContext())
        if isinstance(found, Greeting):
            return self._hello(found, known=await self._known(message))
        if isinstance(found, Help) and found.suggestion:
            typed = found.unknown or message.text.split()[0]
            return i18n.current().gettext(
                "I don't know “%(typed)s”. Did you mean %(suggestion)s? Everything I can do: /help",
                typed=markup.user(typed[:60]), suggestion=f"`{markup.escape(found.suggestion[:200])}`")
        word = split_command(message.text)
        unknown = word.typed if word.slash else message.text.strip()
        return self._help(None, unknown=unknown, known=await self._known(message))

    async def _known(self, message: IncomingMessage) -> bool:
        return await self.members.identify(message) is not None

    def _context(self, merchant: Merchant, member: Member | None = None) -> ParseContext:
        return ParseContext(
            locale=merchant.locale,
            default_currency=merchant.default_currency,
            max_amount=self.links.max_amount,
            now=self.clock(),
            timezone=i18n.shop_zone(merchant.timezone, merchant.locale),
            channels=self.via_words,
            language=i18n.current().language,
        )

    async def _run(self, spec: CommandSpec, command: Command, identity: Identity,
                   message: IncomingMessage) -> list[Reply]:
        """Dispatch from the registry: the spec names the method that answers its command."""
        try:
            replies: list[Reply] = await getattr(self, f"_{spec.handler}")(command, identity, message)
            return replies
        except MemberError as error:
            return [Reply(error.text())]
        except LinkError as error:
            return [Reply(link_error_text(error))]

    # ------------------------------------------------------------ texts

    def _help(self, topic: str | None, *, unknown: str | None = None, known: bool) -> str:
        t = i18n.current()
        spec = BY_NAME.get(topic or "")
        if spec is not None:
            return t.gettext(spec.details) if spec.details else f"`{spec.usage}` — {t.gettext(spec.help)}"
        lines = []
        if unknown:
            lines.append(t.gettext("I don't know “%(typed)s”. Here is what I can do:", typed=markup.user(unknown[:60])))
        else:
            lines.append(t.gettext("**paylinks** makes payment links right here in the chat."))
        lines.extend(f"• `{spec.usage}` — {t.gettext(spec.help)}" for spec in COMMANDS if spec.listed)
        lines.append(t.gettext("The slash is optional: `charge 25 cake` works too. More: `/help charge`"))
        if not known:
            lines.append(t.gettext("New here? Send /start to open your shop, or `/join CODE` to join one."))
        return "\n".join(lines)

    def _hello(self, greeting: Greeting, *, known: bool) -> str:
        t = i18n.current()
        if greeting.thanks:
            return t.gettext("You're welcome! 🙂")
        if known:
            return t.gettext("👋 Hi! Send `/charge 25 birthday cake` for a payment link, or /help for the rest.")
        return t.gettext("👋 Hi! I make payment links. Send /start to open your shop, or /help to see what I can do.")

    def _welcome(self, identity: Identity) -> str:
        merchant = identity.merchant
        return i18n.current().gettext(
            "👋 Welcome! I opened a shop for you: %(shop)s (%(currency)s, %(locale)s).\n"
            "Make a payment link with `/charge 25 birthday cake`. Change the currency with %(example)s, "
            "or join an existing shop with `/join CODE`.",
            shop=f"**{markup.user(merchant.name)}**", currency=merchant.default_currency, locale=merchant.locale,
            example=f"`/currency {'SGD' if merchant.default_currency != 'SGD' else 'USD'}`")

    def _greeting(self, identity: Identity) -> str:
        t = i18n.current()
        values = {"shop": f"**{markup.user(identity.merchant.name)}**", "currency": identity.merchant.default_currency}
        if identity.is_owner:
            return t.gettext("👋 Hi! You're in %(shop)s (owner, %(currency)s).\n"
                             "Try `/charge 25 birthday cake`, `/links` or `/report`. Everything else: /help", **values)
        return t.gettext("👋 Hi! You're in %(shop)s (staff, %(currency)s).\n"
                         "Try `/charge 25 birthday cake`, `/links` or `/report`. Everything else: /help", **values)

    # ------------------------------------------------------------ commands (COMMANDS' handlers)

    async def _help_command(self, command: Help, identity: None, message: IncomingMessage) -> list[Reply]:
        return [Reply(self._help(command.topic, known=await self._known(message)))]

    async def _start(self, command: object, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [Reply(self._greeting(identity))]  # pragma: no cover — answered before parsing

    async def _charge(self, command: Charge | Choice | SeriesCharge, identity: Identity,
                      message: IncomingMessage) -> list[Reply]:
        if isinstance(command, SeriesCharge):
            return [await self._charge_series(command, identity, message)]
        if isinstance(command, Charge) and await self._unusually_large(command, identity.merchant.id):
            command = Choice((command,), Doubt.LARGE)
        if isinstance(command, Choice):
            return [await self._ask(command, identity, message)]
        return [await self._make_link(command, identity, message)]

    async def _make_link(self, command: Charge, identity: Identity, message: IncomingMessage,
                         *, idempotency_key: str | None = None) -> Reply:
        link, _created = await self.links.create(
            command.draft(merchant_id=identity.merchant.id, member_id=identity.member.id,
                          platform=message.platform, address=message.address, idempotency_key=idempotency_key)
        )
        return self.link_reply(link, identity.merchant, notify=command.notify)

    async def _unusually_large(self, charge: Charge, merchant_id: str) -> bool:
        """More than LARGE_FACTOR times the median of the shop's last RECENT_LINKS links in this currency."""
        async with self.links.db.read() as conn:
            amounts: list[int] = sorted((await conn.execute(
                select(LINKS.c.amount_minor)
                .where(LINKS.c.merchant_id == merchant_id, LINKS.c.currency == charge.money.currency)
                .order_by(LINKS.c.created_at.desc(), LINKS.c.id.desc())
                .limit(RECENT_LINKS)
            )).scalars().all())
        if not amounts:
            return False
        middle = len(amounts) // 2
        # Twice the median, kept in integers (money never goes through floats).
        median2 = amounts[middle] * 2 if len(amounts) % 2 else amounts[middle - 1] + amounts[middle]
        return charge.money.amount_minor * 2 > LARGE_FACTOR * median2

    # ------------------------------------------------------------ asking back

    @staticmethod
    def _asker(message: IncomingMessage) -> Asker:
        return Asker(message.platform, message.address, message.user_id)

    async def _ask(self, choice: Choice, identity: Identity, message: IncomingMessage) -> Reply:
        question = await self.questions.ask(self._asker(message), merchant_id=identity.merchant.id,
                                            member_id=identity.member.id, readings=choice.readings)
        return self.question_reply(question, choice, identity.merchant.locale)

    def question_reply(self, question: Question, choice: Choice, locale: str) -> Reply:
        """"Did you mean S$1.00 or S$1,000.00?" with one answer button per reading, and numbers to type."""
        t = i18n.current()
        shown = [self._reading(r, locale) for r in choice.readings]
        amounts = [f"**{format_money(r.money.amount_minor, r.money.currency, locale)}**" for r in choice.readings]
        if len(choice.readings) == 1:
            if choice.reason == Doubt.SHORTHAND:
                head = t.gettext("%(typed)s is %(amount)s. Shall I make the link?",
                                 typed=f"`{markup.escape(choice.typed)}`", amount=amounts[0])
            else:
                head = t.gettext("%(amount)s is much more than your usual links. Shall I make it?", amount=amounts[0])
            lines = [f"🤔 {head}", t.gettext("1. Yes: %(link)s", link=shown[0]),
                     t.gettext("Reply `1` to make it, or `cancel`.")]
            labels = [t.gettext("Yes, %(link)s", link=markup.to_plain(shown[0]))]
        else:
            if len(amounts) == 2:
                head = t.gettext("Did you mean %(first)s or %(second)s?", first=amounts[0], second=amounts[1])
                pick = t.gettext("Reply `1` or `2` to pick, or `cancel`. No link is made until you do.")
            else:
                head = t.gettext("Did you mean %(first)s, %(second)s or %(third)s?", first=amounts[0],
                                 second=amounts[1], third=amounts[2])
                pick = t.gettext("Reply `1`, `2` or `3` to pick, or `cancel`. No link is made until you do.")
            lines = [f"🤔 {head}"]
            lines.extend(f"{n}. {text}" for n, text in enumerate(shown, start=1))
            lines.append(pick)
            labels = [markup.to_plain(text) for text in shown]
        buttons = [Button(label[:60], action=f"{ANSWER_PREFIX}{question.id}:{n}")
                   for n, label in enumerate(labels, start=1)]
        buttons.append(Button(t.gettext("Cancel"), action=f"{ANSWER_PREFIX}{question.id}:0"))
        return Reply("\n".join(lines), buttons=tuple(buttons))

    @staticmethod
    def _reading(charge: Charge, locale: str) -> str:
        amount = format_money(charge.money.amount_minor, charge.money.currency, locale)
        return f"{amount} — {markup.user(charge.description[:80])}"

    async def _answer_button(self, message: IncomingMessage) -> list[Reply]:
        question_id, _, pick = (message.action or "")[len(ANSWER_PREFIX):].partition(":")
        if not (pick.isascii() and pick.isdigit()):
            return [Reply(i18n.current().gettext(
                "I couldn't read that answer. Send the /charge again, e.g. `/charge 25 cake`."))]
        return await self._answer(message, question_id, int(pick))

    async def _answer_typed(self, message: IncomingMessage) -> list[Reply] | None:
        """"2", "cancel", "yes" typed after a question; None when nothing waits or it is not an answer."""
        text = message.text.strip().casefold().lstrip("/").rstrip(".!")
        number = _NUMBER_ANSWER.match(text)
        if number is None and text not in _CANCEL_WORDS | _YES_WORDS:
            return None
        question = await self.questions.open_question(self._asker(message))
        if question is None:
            return None
        if question.confirm is not None:
            if number is not None:
                pick = 1 if number.group(1) == "1" else 0
            else:
                pick = 1 if text in _YES_WORDS else 0
            return await self._answer(message, question.id, pick)
        if number is not None:
            pick = int(number.group(1))
        elif text in _YES_WORDS and len(question.readings) == 1:
            pick = 1
        elif text in _YES_WORDS:
            return [Reply(i18n.current().gettext("Which one? Reply a number from 1 to %(most)s, or `cancel`.",
                                                 most=len(question.readings)))]
        else:
            pick = 0
        return await self._answer(message, question.id, pick)

    async def _answer(self, message: IncomingMessage, question_id: str, pick: int) -> list[Reply]:
        t = i18n.current()
        open_now = await self.questions.open_question(self._asker(message))
        if open_now is not None and open_now.confirm is None and open_now.id == question_id \
                and pick > len(open_now.readings):
            return [Reply(t.gettext("Reply a number from 1 to %(most)s, or `cancel`.", most=len(open_now.readings)))]
        question = await self.questions.take(self._asker(message), question_id)
        if question is None:
            return [Reply(t.gettext("That question was for someone else. Send your own `/charge 25 cake`."))]
        if question is not False and question.confirm is not None:
            return [await self._confirmed(message, question, pick)]
        if question is False or pick > len(question.readings):
            return [Reply(t.gettext("That question is closed (answered, replaced or expired). "
                                    "Send the command again, e.g. `/charge 25 cake`."))]
        if pick == 0:
            return [Reply(t.gettext("OK, no link made."))]
        identity = await self.members.identify(message)
        if identity is None or identity.merchant.id != question.merchant_id:
            return [Reply(t.gettext("You're not in that shop any more, so I made no link."))]
        try:
            # Keyed by the question: a second tap, or the same answer in two processes, is one link.
            return [await self._make_link(question.readings[pick - 1], identity, message,
                                          idempotency_key=f"chat-question:{question.id}")]
        except LinkError as error:
            return [Reply(link_error_text(error))]

    def link_reply(self, link: PaymentLink, merchant: Merchant | str, *, now: datetime | None = None,
                   notify: frozenset[str] | None = None) -> Reply:
        """The message that shows a new link: amount, description, URL, expiry and a Pay button."""
        t = i18n.current()
        locale = merchant if isinstance(merchant, str) else merchant.locale
        zone = None if isinstance(merchant, str) else merchant.timezone
        clock = i18n.Clock.of(language=t.language, shop_locale=locale, timezone=zone)
        now = now or self.clock()
        url = self.links.url(link.id)
        amount = amount_text(link, locale)
        lines = [f"💳 **{amount}** — {markup.user(link.description)}"]
        details = []
        if link.reference:
            details.append(t.gettext("ref %(reference)s", reference=f"`{markup.user(link.reference)}`"))
        customer = link.customer_phone or link.customer_email or link.customer_name
        if customer:
            details.append(t.gettext("for %(customer)s", customer=markup.user(customer)))
        details.append(t.gettext("id %(id)s", id=f"`{short_id(link.id)}`"))
        lines.append(" · ".join(details))
        if link.reusable:
            lines.append(f"{kind_text(link, locale)} · {counts_text(link, locale)}")
        lines.append(url)
        reach = self.customer_reach(link, notify) if self.customer_reach is not None else []
        if reach:
            # A follow-up says when it arrived (email accepted, SMS or WhatsApp delivered) or failed.
            reached = [markup.user(r) for r in reach]
            lines.append(t.gettext("📨 Sent to %(where)s", where=reached[0]) if len(reached) == 1 else
                         t.gettext("📨 Sent to %(first)s and %(second)s", first=", ".join(reached[:-1]),
                                   second=reached[-1]))
        elif notify:
            asked = ", ".join(sorted(self.channel_titles.get(n, n) for n in notify))
            lines.append(t.gettext("📭 Not sent: I can't reach this customer by %(channels)s here (not set up, or no "
                                   "matching contact). Send them the link yourself.", channels=asked))
        lines.append(t.gettext("⏳ Expires %(relative)s (%(when)s)",
                               relative=format_relative(link.expires_at, now, t.language),
                               when=clock.when(link.expires_at)))
        return Reply(
            text="\n".join(lines),
            buttons=(Button(pay_label(link, locale), url),),
            link_id=link.id,
        )

    async def _sell(self, command: Sell, identity: Identity, message: IncomingMessage) -> list[Reply]:
        """/sell, /donate and /split: one link many can pay (core/reusable.py)."""
        link, _created = await self.links.create(command.draft(
            merchant_id=identity.merchant.id, member_id=identity.member.id, platform=message.platform,
            address=message.address))
        return [self.link_reply(link, identity.merchant.locale)]

    async def _promo(self, command: Promo, identity: Identity, message: IncomingMessage) -> list[Reply]:
        from core.sales_chat import end_promo_question, no_such_promo, promo_reply

        service = PromoService(self.links.db, clock=self.clock)
        if command.action != "off":
            return [await promo_reply(service, command, identity.merchant)]
        # Ending a code cannot be undone: asked first, like /refund and /series stop.
        found = await service.get(identity.merchant.id, command.code)
        if found is None:
            return [no_such_promo(command.code)]
        question = await self.questions.ask(self._asker(message), merchant_id=identity.merchant.id,
                                            member_id=identity.member.id,
                                            confirm={"kind": "promo_off", "code": found.code})
        return [Reply(end_promo_question(found, identity.merchant.locale),
                      buttons=(Button(i18n.current().gettext("Yes, end %(code)s", code=found.code)[:60],
                                      action=f"{ANSWER_PREFIX}{question.id}:1"),
                               Button(i18n.current().gettext("No"), action=f"{ANSWER_PREFIX}{question.id}:0")))]

    async def _promo_confirmed(self, message: IncomingMessage, question: Question, pick: int) -> Reply:
        from core.sales_chat import end_promo

        code = str((question.confirm or {}).get("code", ""))
        if pick != 1:
            return Reply(i18n.current().gettext("OK, %(code)s stays on.", code=f"`{markup.user(code)}`"))
        identity = await self.members.identify(message)
        if identity is None or identity.merchant.id != question.merchant_id:
            return Reply(i18n.current().gettext("You're not in that shop any more, so nothing changed."))
        return await end_promo(PromoService(self.links.db, clock=self.clock), code, identity.merchant)

    async def _links(self, command: Links, identity: Identity, message: IncomingMessage) -> list[Reply]:
        links, cursor = await self.links.list_links(identity.merchant.id, status=command.status, limit=LIST_LIMIT)
        return [Reply(render_links(links, command.label, identity.merchant, more=cursor is not None))]

    async def find_link(self, merchant_id: str, key: str) -> PaymentLink | None:
        """By full id, reference, or the short id shown in listings (a unique prefix of 6+ characters)."""
        link = await self.links.find(merchant_id, key)
        if link is not None:
            return link
        prefix = key.lower()
        if len(prefix) < 6 or not re.fullmatch(r"[a-z0-9]+", prefix):
            return None
        async with self.links.db.read() as conn:
            rows = (
                await conn.execute(
                    select(LINKS.c.id)
                    .where(LINKS.c.merchant_id == merchant_id, LINKS.c.id.like(f"{prefix}%"))
                    .limit(2)
                )
            ).all()
        if len(rows) != 1:
            return None
        return await self.links.get(rows[0].id, merchant_id)

    def _not_found(self, key: str, identity: Identity, command: str) -> Reply:
        return Reply(i18n.current().gettext(
            "I can't find a link “%(key)s” in %(shop)s. Use its id or reference from /links, e.g. %(example)s.",
            key=markup.user(key), shop=f"**{markup.user(identity.merchant.name)}**", example=f"`/{command} INV-1042`"))

    async def _status(self, command: Status, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [await self._status_reply(command, identity)]

    async def _status_reply(self, command: Status, identity: Identity) -> Reply:
        link = await self.find_link(identity.merchant.id, command.key)
        if link is None:
            return self._not_found(command.key, identity, "status")
        url = self.links.url(link.id)
        locale = identity.merchant.locale
        buttons: tuple[Button, ...] = ()
        if LinkStatus(link.status) is LinkStatus.ACTIVE:
            buttons = (Button(pay_label(link, locale), url),)
        text = render_status(link, url, identity.merchant, self.clock())
        if self.refunds is not None:
            payments = (await self.refunds.payments_of([link.id])).get(link.id, [])
            refunds = await self.refunds.refunds_for([link.id])
            events = await timeline(self.links.db, link, self.links.status_of(link))
            promos = await self.links.reservations.promos_of([p.id for p in payments]) if link.reusable else {}
            text = "\n".join([text, *render_money_life(payments, refunds, events, identity.merchant, promos)])
        return Reply(text, buttons=buttons)

    async def _cancel(self, command: Cancel, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [await self._cancel_reply(command, identity, message)]

    async def _cancel_reply(self, command: Cancel, identity: Identity, message: IncomingMessage) -> Reply:
        link = await self.find_link(identity.merchant.id, command.key)
        if link is None:
            return self._not_found(command.key, identity, "cancel")
        locale = identity.merchant.locale
        amount = format_money(link.amount_minor, link.currency, locale)
        try:
            await self.links.cancel(link.id, identity.merchant.id)
        except LinkError as error:
            if error.code != "not_active":
                raise
            current = await self.links.get(link.id, identity.merchant.id) or link
            return Reply(i18n.current().gettext(
                "That link (%(amount)s — %(description)s) is %(status)s; only an open link can be cancelled.",
                amount=amount, description=markup.user(link.description),
                status=status_word(LinkStatus(current.status)).casefold()))
        log.info("link cancelled from chat link=%s member=%s", link.id, identity.member.id)
        await self._audit(identity, message, "link.cancelled", link_id=link.id,
                          amount=Money(link.amount_minor, link.currency).amount_str(), currency=link.currency)
        return Reply(i18n.current().gettext(
            "🚫 Cancelled %(amount)s — %(description)s. The link no longer takes payments.",
            amount=f"**{amount}**", description=markup.user(link.description)))

    async def _remind(self, command: Remind, identity: Identity, message: IncomingMessage) -> list[Reply]:
        link = await self.find_link(identity.merchant.id, command.key)
        if link is None:
            return [self._not_found(command.key, identity, "remind")]
        amount = format_money(link.amount_minor, link.currency, identity.merchant.locale)
        t = i18n.current()
        if self.reminders is None:
            return [Reply(t.gettext("Reminders are not available here."))]
        try:
            done = await self.reminders.remind_now(link.id, identity.merchant.id)
        except ReminderError as error:
            reasons = {"not_active": N_("No reminder sent for %(amount)s — %(description)s: this link is %(status)s."),
                       "no_contact": N_("No reminder sent for %(amount)s — %(description)s: it has no customer "
                                        "email or phone I can reach."),
                       "too_soon": N_("No reminder sent for %(amount)s — %(description)s: one went out less than "
                                      "12 hours ago.")}
            status = status_word(self.links.status_of(await self.links.get(link.id, identity.merchant.id) or link))
            return [Reply(t.gettext(reasons.get(error.code, reasons["not_active"]), amount=amount,
                                    description=markup.user(link.description), status=status.casefold()))]
        where = ", ".join(done.channels)
        return [Reply(t.gettext("⏰ Reminder sent for %(amount)s — %(description)s (by %(where)s).",
                                amount=f"**{amount}**", description=markup.user(link.description), where=where))]

    async def _currency(self, command: SetCurrency, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [await self._currency_reply(command, identity)]

    async def _currency_reply(self, command: SetCurrency, identity: Identity) -> Reply:
        merchant = identity.merchant
        t = i18n.current()
        if command.code is None:
            other = "SGD" if merchant.default_currency != "SGD" else "USD"
            return Reply(t.gettext(
                "%(shop)s charges in %(currency)s unless you say otherwise. Change it with %(example)s.",
                shop=f"**{markup.user(merchant.name)}**", currency=f"**{merchant.default_currency}**",
                example=f"`/currency {other}`"))
        if not identity.is_owner:
            return Reply(t.gettext("Only the owner of %(shop)s can change its currency.",
                                   shop=f"**{markup.user(merchant.name)}**"))
        try:
            await self.merchants.update(merchant.id, currency=command.code)
        except MerchantError as error:  # pragma: no cover — the grammar already checked the code
            return Reply(merchant_error_text(error))
        example = format_money(2500, command.code, merchant.locale)
        return Reply(t.gettext(
            "Done: new links are in %(currency)s unless you say otherwise (`/charge 25 cake` → %(example)s).",
            currency=f"**{command.code}**", example=example))

    async def _audit(self, identity: Identity, message: IncomingMessage, action: str, **detail: Any) -> None:
        """An audit entry (core/audit.py) for what a member did in chat: their name, platform and chat address."""
        await AuditLog(self.links.db, clock=self.clock).record(
            identity.merchant.id, action, Actor(identity.member.display_name or message.display_name or "member",
                                                message.platform, identity.member.id, message.address), **detail)

    async def _invite(self, command: Invite, identity: Identity, message: IncomingMessage) -> list[Reply]:
        invite = await self.members.create_invite(identity)
        await self._audit(identity, message, "invite.created", code=invite.code)
        hours = int((invite.expires_at - invite.created_at).total_seconds() // 3600)
        return [Reply(i18n.current().ngettext(
            "🎟 Invite code for %(shop)s: %(code)s\n"
            "Whoever sends %(join)s — here or in any other chat app I am on — becomes staff. "
            "It works once, for %(count)s hour.",
            "🎟 Invite code for %(shop)s: %(code)s\n"
            "Whoever sends %(join)s — here or in any other chat app I am on — becomes staff. "
            "It works once, for %(count)s hours.",
            hours, shop=f"**{markup.user(identity.merchant.name)}**", code=f"`{invite.code}`",
            join=f"`/join {invite.code}`")
        )]

    async def _join(self, command: Join, identity: None, message: IncomingMessage) -> list[Reply]:
        return [await self._join_reply(message, command)]

    async def _join_reply(self, message: IncomingMessage, command: Join) -> Reply:
        try:
            result = await self.members.join(message, command.code)
        except MemberError as error:
            return Reply(error.text())
        await self._audit(result.identity, message, "member.joined", role=str(result.identity.member.role),
                          member=f"{result.identity.member.display_name or message.display_name or 'member'} "
                                 f"({message.platform})", workspace=result.workspace)
        t = i18n.current()
        shop = f"**{markup.user(result.identity.merchant.name)}**"
        text = (t.gettext("🤝 This workspace is now part of %(shop)s (staff). Try `/charge 25 birthday cake`.",
                          shop=shop)
                if result.workspace else
                t.gettext("🤝 You're now part of %(shop)s (staff). Try `/charge 25 birthday cake`.", shop=shop))
        if result.previous is not None:
            before = f"**{markup.user(result.previous.name)}**"
            text += "\n" + (
                t.gettext("(Before, it belonged to %(shop)s; that shop and its links are unchanged.)", shop=before)
                if result.workspace else
                t.gettext("(Before, you belonged to %(shop)s; that shop and its links are unchanged.)", shop=before))
        return Reply(text)

    async def _alerts(self, command: Alerts, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [await self._alerts_reply(command, identity, message)]

    async def _alerts_reply(self, command: Alerts, identity: Identity, message: IncomingMessage) -> Reply:
        merchant = identity.merchant
        t = i18n.current()
        shop = f"**{markup.user(merchant.name)}**"
        if command.on is None:
            on = await self.members.alerts_on(merchant.id, message.platform, message.address)
            if on:
                return Reply(t.gettext("Paid alerts for %(shop)s are **on** in this chat. Switch with `/alerts off`.",
                                       shop=shop))
            return Reply(t.gettext("Paid alerts for %(shop)s are **off** in this chat. Switch with `/alerts on`.",
                                   shop=shop))
        changed = await self.members.set_alerts(merchant.id, message.platform, message.address, command.on)
        if command.on:
            return Reply(t.gettext("🔔 Paid alerts for %(shop)s are on in this chat. "
                                   "I'll post here when a link is paid.", shop=shop) if changed else
                         t.gettext("🔔 Paid alerts for %(shop)s are on in this chat (they already were). "
                                   "I'll post here when a link is paid.", shop=shop))
        return Reply(t.gettext("🔕 Paid alerts for %(shop)s are off in this chat.", shop=shop) if changed else
                     t.gettext("🔕 Paid alerts for %(shop)s are off in this chat (they already were).", shop=shop))

    # ------------------------------------------------------------ refunds

    async def _refund(self, command: RefundAsk, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [await self._refund_question(command, identity, message)]

    async def _refund_question(self, command: RefundAsk, identity: Identity, message: IncomingMessage) -> Reply:
        """Check what would be refunded, then ask the owner to confirm: a refund cannot be undone."""
        t = i18n.current()
        if self.refunds is None:
            return Reply(t.gettext("Refunds are not set up here; refund from your payment provider's dashboard."))
        merchant = identity.merchant
        payment_id = command.key if command.key.startswith("pay_") else None
        link = None
        if payment_id is not None:
            payment = await self.refunds.payment(payment_id, merchant.id)
            link = await self.links.get(payment.link_id, merchant.id) if payment is not None else None
        else:
            link = await self.find_link(merchant.id, command.key)
        if link is None:
            return self._not_found(command.key, identity, "refund")
        locale = merchant.locale
        choices = await self.refunds.refundable(link.id)
        if payment_id is not None:
            choices = [c for c in choices if c.payment.id == payment_id]
        if not choices:
            return Reply(t.gettext("There is nothing to refund on %(amount)s — %(description)s (it is %(status)s).",
                                   amount=f"**{format_money(link.amount_minor, link.currency, locale)}**",
                                   description=markup.user(link.description),
                                   status=status_word(self.links.status_of(link)).casefold()))
        if len(choices) > 1:
            lines = [t.ngettext("That link has %(count)s payment you can refund. Say which:",
                                "That link has %(count)s payments you can refund. Say which:", len(choices))]
            for c in choices:
                refundable = format_money(c.refundable_minor, c.payment.currency, locale)
                lines.append(f"• `/refund {c.payment.id}` — " + (
                    t.gettext("%(amount)s by %(payer)s", amount=refundable, payer=markup.user(c.payment.payer_name))
                    if c.payment.payer_name else refundable))
            return Reply("\n".join(lines))
        chosen = choices[0]
        amount_minor = chosen.refundable_minor
        most = format_money(chosen.refundable_minor, link.currency, locale)
        if command.amount_text:
            context = dataclasses.replace(self._context(merchant), default_currency=link.currency)
            try:
                money = parse_money(command.amount_text, context)
            except CommandError:
                return Reply(CommandError(
                    N_("I couldn't read “%(typed)s” as an amount in %(currency)s."),
                    f"/refund {short_id(link.id)} {self._plain(chosen.refundable_minor, link.currency)}",
                    values={"typed": markup.user(command.amount_text[:40]), "currency": link.currency}).text(t))
            if money.currency != link.currency:
                return Reply(CommandError(
                    N_("That link was paid in %(currency)s, so the refund is in %(currency)s too."),
                    f"/refund {short_id(link.id)} {money.amount_str()}", values={"currency": link.currency}).text(t))
            if not 0 < money.amount_minor <= chosen.refundable_minor:
                return Reply(CommandError(
                    N_("I can refund at most %(most)s of that payment."),
                    f"/refund {short_id(link.id)} {self._plain(chosen.refundable_minor, link.currency)}",
                    values={"most": most}).text(t))
            amount_minor = money.amount_minor
        amount = format_money(amount_minor, link.currency, locale)
        payer = markup.user(chosen.payment.payer_name) if chosen.payment.payer_name else None
        confirm = {"kind": "refund", "link_id": link.id, "payment_id": chosen.payment.id,
                   "amount_minor": amount_minor, "requested_by": f"chat:{message.platform}:{message.user_id}",
                   "requested_by_name": message.display_name or None}
        asker = self._asker(message)
        prefix = ""
        if not identity.is_owner:
            owner = await self._owner_here(merchant.id, message.platform)
            if owner is None or not (message.is_group or message.workspace):
                # The owner answers in a chat they share with staff; in a one-to-one chat they never would.
                return Reply(t.gettext(
                    "Only the owner of %(shop)s can confirm a refund. Ask here in a group they are in, "
                    "or ask them to send %(example)s.", shop=f"**{markup.user(merchant.name)}**",
                    example=f"`/refund {short_id(link.id)}`"))
            asker = Asker(message.platform, message.address, owner.platform_user_id)
            who = markup.user(message.display_name) if message.display_name else t.gettext("Staff")
            prefix = (t.gettext("%(who)s asks for a refund; the owner %(owner)s confirms here.", who=who,
                                owner=markup.user(owner.display_name)) if owner.display_name else
                      t.gettext("%(who)s asks for a refund; the owner confirms here.", who=who)) + "\n"
        question = await self.questions.ask(asker, merchant_id=merchant.id, member_id=identity.member.id,
                                            confirm=confirm)
        values = {"amount": f"**{amount}**", "description": markup.user(link.description)}
        ask = (t.gettext("↩️ Refund %(amount)s to %(payer)s for %(description)s? yes / no", payer=payer, **values)
               if payer else t.gettext("↩️ Refund %(amount)s to the customer for %(description)s? yes / no", **values))
        undone = t.gettext("A refund cannot be undone.")
        text = f"{prefix}{ask}\n{undone}"
        return Reply(text, buttons=(Button(t.gettext("Yes, refund %(amount)s", amount=amount),
                                           action=f"{ANSWER_PREFIX}{question.id}:1"),
                                    Button(t.gettext("No"), action=f"{ANSWER_PREFIX}{question.id}:0")))

    async def _owner_here(self, merchant_id: str, platform: str) -> Member | None:
        for member in await self.members.members_of(merchant_id):
            if member.platform == platform and MemberRole(member.role) is MemberRole.OWNER \
                    and not member.platform_user_id.startswith("workspace:"):
                return member
        return None

    @staticmethod
    def _plain(amount_minor: int, currency: str) -> str:
        return Money(amount_minor, currency).amount_str()

    async def _confirmed(self, message: IncomingMessage, question: Question, pick: int) -> Reply:
        confirm = question.confirm or {}
        t = i18n.current()
        if confirm.get("kind") == "series_stop":
            return await self._series_confirmed(message, question, pick)
        if confirm.get("kind") == "promo_off":
            return await self._promo_confirmed(message, question, pick)
        if pick != 1:
            return Reply(t.gettext("OK, nothing refunded."))
        identity = await self.members.identify(message)
        if identity is None or identity.merchant.id != question.merchant_id or not identity.is_owner:
            return Reply(t.gettext("Only the shop's owner can confirm a refund, so nothing was refunded."))
        if self.refunds is None or confirm.get("kind") != "refund":
            return Reply(t.gettext("That question is closed. Send the /refund again."))
        try:
            refund, created = await self.refunds.request(RefundRequest(
                link_id=str(confirm["link_id"]), merchant_id=identity.merchant.id,
                amount_minor=int(confirm["amount_minor"]), payment_id=str(confirm["payment_id"]),
                requested_by=str(confirm["requested_by"]), requested_by_name=confirm.get("requested_by_name"),
                reason="asked in chat",
                # Keyed by the question: a second tap, or the same answer in two processes, is one refund.
                idempotency_key=f"chat-question:{question.id}", request_hash=None))
        except LinkError as error:
            return Reply(t.gettext("Nothing refunded: %(reason)s", reason=link_error_text(error)))
        if created:
            await self._audit(identity, message, "link.refunded", link_id=refund.link_id, refund_id=refund.id,
                              amount=self._plain(refund.amount_minor, refund.currency), currency=refund.currency,
                              status=str(refund.status), asked_by=confirm.get("requested_by_name") or "")
        amount = f"**{format_money(refund.amount_minor, refund.currency, identity.merchant.locale)}**"
        status = RefundStatus(refund.status)
        if status is RefundStatus.SUCCEEDED:
            return Reply(t.gettext("↩️ Refunded %(amount)s; %(provider)s confirmed it.", amount=amount,
                                   provider=refund.provider))
        if status is RefundStatus.FAILED:
            # The provider's reason is its own words (English, as it gave them).
            return Reply(t.gettext("❌ The refund of %(amount)s failed: %(reason)s. Nothing was refunded.",
                                   amount=amount, reason=markup.escape(refund.failure_reason or "-")))
        return Reply(t.gettext("↩️ Refund of %(amount)s asked of %(provider)s. I'll tell you when it is confirmed.",
                               amount=amount, provider=refund.provider))

    async def _report(self, command: Report, identity: Identity, message: IncomingMessage) -> list[Reply]:
        data = await self.reports.report(identity.merchant.id, command.period, livemode=command.livemode)
        merchant = identity.merchant
        return [Reply(render_report(data, merchant.name, merchant, merchant.default_currency))]

    async def _dashboard(self, command: Dashboard, identity: Identity, message: IncomingMessage) -> list[Reply]:
        url = await self.signins.create_link(identity.merchant.id, identity.member.id)
        t = i18n.current()
        shop = f"**{markup.user(identity.merchant.name)}**"
        head = (t.gettext("🔐 Your sign-in link to the %(shop)s dashboard (owner):", shop=shop) if identity.is_owner
                else t.gettext("🔐 Your sign-in link to the %(shop)s dashboard (staff):", shop=shop))
        warning = t.gettext("It works once, for 10 minutes. Don't forward it: whoever opens it is signed in as you.")
        return [Reply(f"{head}\n{url}\n{warning}", buttons=(Button(t.gettext("Open the dashboard"), url),),
                      private=True)]

    async def _shop(self, command: Shop, identity: Identity, message: IncomingMessage) -> list[Reply]:
        merchant = identity.merchant
        t = i18n.current()
        if command.setting is None:
            zone = (markup.escape(merchant.timezone) if merchant.timezone else
                    t.gettext("%(zone)s (from the locale)", zone=markup.escape(str(timezone_for(merchant.locale)))))
            return [Reply(t.gettext(
                "🏪 %(shop)s\n• currency %(currency)s\n• locale %(locale)s\n• timezone %(zone)s\n"
                "Change with `/shop name Cake Corner`, `/shop timezone Asia/Singapore`, `/shop locale id_ID`; "
                "logo, colour and more in /dashboard.", shop=f"**{markup.user(merchant.name)}**",
                currency=merchant.default_currency, locale=merchant.locale, zone=zone))]
        if not identity.is_owner:
            return [Reply(t.gettext("Only the owner of %(shop)s can change its settings.",
                                    shop=f"**{markup.user(merchant.name)}**"))]
        if command.setting in ("invoice_prefix", "address"):
            return [await self._invoice_setting(command, identity, message)]
        try:
            await self.merchants.update(merchant.id, **{command.setting: command.value})
        except MerchantError as error:
            examples = {"name": "/shop name Cake Corner", "timezone": "/shop timezone Asia/Singapore",
                        "locale": "/shop locale id_ID"}
            problems = {"timezone": N_("%(typed)s is not a time zone name."),
                        "locale": N_("%(typed)s is not a locale I know.")}
            if error.field not in problems:
                return [Reply(t.gettext("%(problem)s\nFor example: %(example)s", problem=merchant_error_text(error),
                                        example=f"`{examples[command.setting]}`"))]
            return [Reply(CommandError(problems[error.field], examples[command.setting],
                                       values={"typed": f"“{markup.user(command.value[:60])}”"}).text(t))]
        await AuditLog(self.links.db, clock=self.clock).record(
            merchant.id, "shop.updated", Actor(identity.member.display_name or "member", message.platform,
                                               identity.member.id, message.address), fields=[command.setting])
        updated = await self.merchants.get(merchant.id)
        shown = f"**{markup.user(str(getattr(updated, command.setting, command.value)))}**"
        done = {"name": N_("Done: the shop's name is now %(value)s."),
                "timezone": N_("Done: the shop's time zone is now %(value)s."),
                "locale": N_("Done: the shop's locale is now %(value)s.")}
        return [Reply(t.gettext(done[command.setting], value=shown))]

    async def _language(self, command: SetLanguage, identity: Identity, message: IncomingMessage) -> list[Reply]:
        """/language: which language I answer you in; /language th changes it (for you, on this platform)."""
        t = i18n.current()
        choices = ", ".join(f"`{code}` {i18n.AUTONYMS[code]}" for code in i18n.LANGUAGES)
        if command.language is None:
            return [Reply(t.gettext(
                "I answer you in %(language)s. Change it with `/language th` — I speak %(choices)s.",
                language=i18n.AUTONYMS[t.language], choices=choices))]
        async with self.links.db.write() as conn:
            await conn.execute(MEMBERS.update().where(MEMBERS.c.id == identity.member.id)
                               .values(language=command.language))
        await self._remember_chat_language(message, command.language)
        with i18n.speaking(command.language) as now_speaking:
            return [Reply(now_speaking.gettext(
                "Done: I'll answer you in %(language)s. Alerts in this chat come in it too.",
                language=i18n.AUTONYMS[command.language]))]

