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

from core import markup
from core.audit import Actor, AuditLog
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
    Shop,
    Status,
    parse,
    parse_money,
    split_command,
)
from core.commands.values import Promo, Sell, SeriesCharge
from core.db import DatabaseBusy
from core.deliveries import DeliveryLog
from core.links import LinkError, LinkService
from core.locales import timezone_for
from core.members import Identity, MemberError, MemberService
from core.merchants import MerchantError, MerchantService
from core.models import LinkStatus, Member, MemberRole, Merchant, PaymentLink, RefundStatus
from core.money import Money, format_money
from core.ports import Button, IncomingMessage, Reply
from core.promos import PromoService
from core.questions import Asker, Question, QuestionStore
from core.refunds import RefundRequest, RefundService
from core.reminders import ReminderError, Reminders
from core.reports import (
    ReportService,
    format_relative,
    format_when,
    render_links,
    render_money_life,
    render_report,
    render_status,
    short_id,
)
from core.reusable import CUSTOMER_CHOOSES
from core.sales_texts import counts_text, kind_text
from core.series import SeriesService
from core.signin import SigninService
from core.sql import table
from core.text import without_controls
from core.timeline import timeline

log = logging.getLogger("paylinks.conversation")

LINKS = table(PaymentLink)
APOLOGY = "😕 Sorry, something went wrong on my side. Please try again in a moment."
BUSY = "⏳ Paylinks is busy, try again in a moment."
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
        # Set by bots/services.py: recurring charges (/charge … every month, /series).
        self.series: SeriesService | None = None

    # ------------------------------------------------------------ entry point

    async def handle(self, message: IncomingMessage) -> list[Reply]:
        # Control characters (NUL above all, which PostgreSQL refuses in text) never mean anything in a
        # chat message or a name; drop them before anything is parsed or stored.
        message = dataclasses.replace(
            message, text=without_controls(message.text), display_name=without_controls(message.display_name)
        )
        try:
            return await self.deliveries.once(message, self._handle)
        except DatabaseBusy as busy:  # another process held the database past database.busy_timeout
            log.warning("conversation refused: database busy (%s) platform=%s", busy.reason, message.platform)
            return [Reply(BUSY)]
        except Exception:  # the chat must always get an answer; the log gets the details
            log.exception("conversation failed platform=%s address=%s", message.platform, message.address)
            return [Reply(APOLOGY)]

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
        command = parse(message.text, self._context(identity.merchant))
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
            return (f"I don't know “{markup.user(typed[:60])}”. "
                    f"Did you mean `{markup.escape(found.suggestion[:200])}`? Everything I can do: /help")
        word = split_command(message.text)
        unknown = word.typed if word.slash else message.text.strip()
        return self._help(None, unknown=unknown, known=await self._known(message))

    async def _known(self, message: IncomingMessage) -> bool:
        return await self.members.identify(message) is not None

    def _context(self, merchant: Merchant) -> ParseContext:
        return ParseContext(
            locale=merchant.locale,
            default_currency=merchant.default_currency,
            max_amount=self.links.max_amount,
            now=self.clock(),
            timezone=timezone_for(merchant.locale),
            channels=self.via_words,
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
            return [Reply(f"{markup.escape(error.message[:1].upper() + error.message[1:])}.")]

    # ------------------------------------------------------------ texts

    def _help(self, topic: str | None, *, unknown: str | None = None, known: bool) -> str:
        spec = BY_NAME.get(topic or "")
        if spec is not None:
            return spec.details or f"`{spec.usage}` — {spec.help}"
        lines = []
        if unknown:
            lines.append(f"I don't know “{markup.user(unknown[:60])}”. Here is what I can do:")
        else:
            lines.append("**paylinks** makes payment links right here in the chat.")
        lines.extend(f"• `{spec.usage}` — {spec.help}" for spec in COMMANDS if spec.listed)
        lines.append("The slash is optional: `charge 25 cake` works too. More: `/help charge`")
        if not known:
            lines.append("New here? Send /start to open your shop, or `/join CODE` to join one.")
        return "\n".join(lines)

    def _hello(self, greeting: Greeting, *, known: bool) -> str:
        if greeting.thanks:
            return "You're welcome! 🙂"
        if known:
            return "👋 Hi! Send `/charge 25 birthday cake` for a payment link, or /help for the rest."
        return "👋 Hi! I make payment links. Send /start to open your shop, or /help to see what I can do."

    def _welcome(self, identity: Identity) -> str:
        merchant = identity.merchant
        return (
            f"👋 Welcome! I opened a shop for you: **{markup.user(merchant.name)}** "
            f"({merchant.default_currency}, {merchant.locale}).\n"
            f"Make a payment link with `/charge 25 birthday cake`. "
            f"Change the currency with `/currency {'SGD' if merchant.default_currency != 'SGD' else 'USD'}`, "
            "or join an existing shop with `/join CODE`."
        )

    def _greeting(self, identity: Identity) -> str:
        role = "owner" if identity.is_owner else "staff"
        return (
            f"👋 Hi! You're in **{markup.user(identity.merchant.name)}** ({role}, "
            f"{identity.merchant.default_currency}).\n"
            "Try `/charge 25 birthday cake`, `/links` or `/report`. Everything else: /help"
        )

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
        return self.link_reply(link, identity.merchant.locale, notify=command.notify)

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
        shown = [self._reading(r, locale) for r in choice.readings]
        amounts = [f"**{format_money(r.money.amount_minor, r.money.currency, locale)}**" for r in choice.readings]
        if len(choice.readings) == 1:
            if choice.reason == Doubt.SHORTHAND:
                head = f"`{markup.escape(choice.typed)}` is {amounts[0]}. Shall I make the link?"
            else:
                head = f"{amounts[0]} is much more than your usual links. Shall I make it?"
            lines = [f"🤔 {head}", f"1. Yes: {shown[0]}", "Reply `1` to make it, or `cancel`."]
            labels = [f"Yes, {markup.to_plain(shown[0])}"]
        else:
            head = ", ".join(amounts[:-1]) + f" or {amounts[-1]}"
            lines = [f"🤔 Did you mean {head}?"]
            lines.extend(f"{n}. {text}" for n, text in enumerate(shown, start=1))
            typed = [f"`{n}`" for n in range(1, len(shown) + 1)]
            lines.append(f"Reply {', '.join(typed[:-1])} or {typed[-1]} to pick, or `cancel`. "
                         "No link is made until you do.")
            labels = [markup.to_plain(text) for text in shown]
        buttons = [Button(label[:60], action=f"{ANSWER_PREFIX}{question.id}:{n}")
                   for n, label in enumerate(labels, start=1)]
        buttons.append(Button("Cancel", action=f"{ANSWER_PREFIX}{question.id}:0"))
        return Reply("\n".join(lines), buttons=tuple(buttons))

    @staticmethod
    def _reading(charge: Charge, locale: str) -> str:
        amount = format_money(charge.money.amount_minor, charge.money.currency, locale)
        return f"{amount} — {markup.user(charge.description[:80])}"

    async def _answer_button(self, message: IncomingMessage) -> list[Reply]:
        question_id, _, pick = (message.action or "")[len(ANSWER_PREFIX):].partition(":")
        if not (pick.isascii() and pick.isdigit()):
            return [Reply("I couldn't read that answer. Send the /charge again, e.g. `/charge 25 cake`.")]
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
            return [Reply(f"Which one? Reply a number from 1 to {len(question.readings)}, or `cancel`.")]
        else:
            pick = 0
        return await self._answer(message, question.id, pick)

    async def _answer(self, message: IncomingMessage, question_id: str, pick: int) -> list[Reply]:
        open_now = await self.questions.open_question(self._asker(message))
        if open_now is not None and open_now.confirm is None and open_now.id == question_id \
                and pick > len(open_now.readings):
            return [Reply(f"Reply a number from 1 to {len(open_now.readings)}, or `cancel`.")]
        question = await self.questions.take(self._asker(message), question_id)
        if question is None:
            return [Reply("That question was for someone else. Send your own `/charge 25 cake`.")]
        if question is not False and question.confirm is not None:
            return [await self._confirmed(message, question, pick)]
        if question is False or pick > len(question.readings):
            return [Reply("That question is closed (answered, replaced or expired). "
                          "Send the command again, e.g. `/charge 25 cake`.")]
        if pick == 0:
            return [Reply("OK, no link made.")]
        identity = await self.members.identify(message)
        if identity is None or identity.merchant.id != question.merchant_id:
            return [Reply("You're not in that shop any more, so I made no link.")]
        try:
            # Keyed by the question: a second tap, or the same answer in two processes, is one link.
            return [await self._make_link(question.readings[pick - 1], identity, message,
                                          idempotency_key=f"chat-question:{question.id}")]
        except LinkError as error:
            return [Reply(f"{markup.escape(error.message[:1].upper() + error.message[1:])}.")]

    def link_reply(self, link: PaymentLink, locale: str, *, now: datetime | None = None,
                   notify: frozenset[str] | None = None) -> Reply:
        """The message that shows a new link: amount, description, URL, expiry and a Pay button."""
        now = now or self.clock()
        url = self.links.url(link.id)
        amount = format_money(link.amount_minor, link.currency, locale)
        if link.amount_mode == CUSTOMER_CHOOSES:
            amount = f"from {amount}"  # a donation: its link amount is the smallest one
        lines = [f"💳 **{amount}** — {markup.user(link.description)}"]
        details = []
        if link.reference:
            details.append(f"ref `{markup.user(link.reference)}`")
        customer = link.customer_phone or link.customer_email or link.customer_name
        if customer:
            details.append(f"for {markup.user(customer)}")
        details.append(f"id `{short_id(link.id)}`")
        lines.append(" · ".join(details))
        if link.reusable:
            lines.append(f"{kind_text(link, locale)} · {counts_text(link, locale)}")
        lines.append(url)
        reach = self.customer_reach(link, notify) if self.customer_reach is not None else []
        if reach:
            # A follow-up says when it arrived (email accepted, SMS or WhatsApp delivered) or failed.
            lines.append(f"📨 Sent to {' and '.join(markup.user(r) for r in reach)}")
        elif notify:
            asked = " or ".join(sorted(self.channel_titles.get(n, n) for n in notify))
            lines.append(f"📭 Not sent: I can't reach this customer by {asked} here "
                         "(not set up, or no matching contact). Send them the link yourself.")
        when = format_when(link.expires_at, locale)
        lines.append(f"⏳ Expires {format_relative(link.expires_at, now, locale)} ({when})")
        return Reply(
            text="\n".join(lines),
            buttons=(Button("Give" if link.amount_mode == CUSTOMER_CHOOSES
                            else "Pay a share" if link.split_ways else f"Pay {amount}", url),),
            link_id=link.id,
        )

    async def _sell(self, command: Sell, identity: Identity, message: IncomingMessage) -> list[Reply]:
        """/sell, /donate and /split: one link many can pay (core/reusable.py)."""
        link, _created = await self.links.create(command.draft(
            merchant_id=identity.merchant.id, member_id=identity.member.id, platform=message.platform,
            address=message.address))
        return [self.link_reply(link, identity.merchant.locale)]

    async def _promo(self, command: Promo, identity: Identity, message: IncomingMessage) -> list[Reply]:
        from core.sales_chat import promo_reply

        return [await promo_reply(PromoService(self.links.db, clock=self.clock), command, identity.merchant)]

    async def _links(self, command: Links, identity: Identity, message: IncomingMessage) -> list[Reply]:
        links, cursor = await self.links.list_links(identity.merchant.id, status=command.status, limit=LIST_LIMIT)
        return [Reply(render_links(links, command.label, identity.merchant.locale, more=cursor is not None))]

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
        return Reply(
            f"I can't find a link “{markup.user(key)}” in **{markup.user(identity.merchant.name)}**. "
            f"Use its id or reference from /links, e.g. `/{command} INV-1042`."
        )

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
            buttons = (Button(f"Pay {format_money(link.amount_minor, link.currency, locale)}", url),)
        text = render_status(link, url, locale, self.clock())
        if self.refunds is not None:
            payments = (await self.refunds.payments_of([link.id])).get(link.id, [])
            refunds = await self.refunds.refunds_for([link.id])
            events = await timeline(self.links.db, link, self.links.status_of(link))
            text = "\n".join([text, *render_money_life(payments, refunds, events, locale)])
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
            return Reply(
                f"That link ({amount} — {markup.user(link.description)}) is {current.status}; "
                "only an open link can be cancelled."
            )
        log.info("link cancelled from chat link=%s member=%s", link.id, identity.member.id)
        await self._audit(identity, message, "link.cancelled", link_id=link.id,
                          amount=Money(link.amount_minor, link.currency).amount_str(), currency=link.currency)
        return Reply(
            f"🚫 Cancelled **{amount}** — {markup.user(link.description)}. The link no longer takes payments."
        )

    async def _remind(self, command: Remind, identity: Identity, message: IncomingMessage) -> list[Reply]:
        link = await self.find_link(identity.merchant.id, command.key)
        if link is None:
            return [self._not_found(command.key, identity, "remind")]
        amount = format_money(link.amount_minor, link.currency, identity.merchant.locale)
        if self.reminders is None:
            return [Reply("Reminders are not available here.")]
        try:
            done = await self.reminders.remind_now(link.id, identity.merchant.id)
        except ReminderError as error:
            return [Reply(f"No reminder sent for {amount} — {markup.user(link.description)}: {error.message}.")]
        where = " and ".join(done.channels)
        return [Reply(f"⏰ Reminder sent for **{amount}** — {markup.user(link.description)} (by {where}).")]

    async def _currency(self, command: SetCurrency, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [await self._currency_reply(command, identity)]

    async def _currency_reply(self, command: SetCurrency, identity: Identity) -> Reply:
        merchant = identity.merchant
        if command.code is None:
            other = "SGD" if merchant.default_currency != "SGD" else "USD"
            return Reply(
                f"**{markup.user(merchant.name)}** charges in **{merchant.default_currency}** unless you say "
                f"otherwise. Change it with `/currency {other}`."
            )
        if not identity.is_owner:
            return Reply(f"Only the owner of **{markup.user(merchant.name)}** can change its currency.")
        try:
            await self.merchants.update(merchant.id, currency=command.code)
        except MerchantError as error:  # pragma: no cover — the grammar already checked the code
            return Reply(markup.escape(str(error)))
        example = format_money(2500, command.code, merchant.locale)
        return Reply(
            f"Done: new links are in **{command.code}** unless you say otherwise (`/charge 25 cake` → {example})."
        )

    async def _audit(self, identity: Identity, message: IncomingMessage, action: str, **detail: Any) -> None:
        """An audit entry (core/audit.py) for what a member did in chat: their name, platform and chat address."""
        await AuditLog(self.links.db, clock=self.clock).record(
            identity.merchant.id, action, Actor(identity.member.display_name or message.display_name or "member",
                                                message.platform, identity.member.id, message.address), **detail)

    async def _invite(self, command: Invite, identity: Identity, message: IncomingMessage) -> list[Reply]:
        invite = await self.members.create_invite(identity)
        await self._audit(identity, message, "invite.created", code=invite.code)
        hours = int((invite.expires_at - invite.created_at).total_seconds() // 3600)
        return [Reply(
            f"🎟 Invite code for **{markup.user(identity.merchant.name)}**: `{invite.code}`\n"
            f"Whoever sends `/join {invite.code}` — here or in any other chat app I am on — becomes staff. "
            f"It works once, for {hours} hours."
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
        name = markup.user(result.identity.merchant.name)
        who = "This workspace is" if result.workspace else "You're"
        text = f"🤝 {who} now part of **{name}** (staff). Try `/charge 25 birthday cake`."
        if result.previous is not None:
            subject = "it" if result.workspace else "you"
            text += (f"\n(Before, {subject} belonged to **{markup.user(result.previous.name)}**; "
                     "that shop and its links are unchanged.)")
        return Reply(text)

    async def _alerts(self, command: Alerts, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [await self._alerts_reply(command, identity, message)]

    async def _alerts_reply(self, command: Alerts, identity: Identity, message: IncomingMessage) -> Reply:
        merchant = identity.merchant
        name = markup.user(merchant.name)
        if command.on is None:
            on = await self.members.alerts_on(merchant.id, message.platform, message.address)
            state = "on" if on else "off"
            return Reply(f"Paid alerts for **{name}** are **{state}** in this chat. "
                         f"Switch with `/alerts {'off' if on else 'on'}`.")
        changed = await self.members.set_alerts(merchant.id, message.platform, message.address, command.on)
        if command.on:
            already = "" if changed else " (they already were)"
            return Reply(
                f"🔔 Paid alerts for **{name}** are on in this chat{already}. I'll post here when a link is paid."
            )
        already = "" if changed else " (they already were)"
        return Reply(f"🔕 Paid alerts for **{name}** are off in this chat{already}.")

    # ------------------------------------------------------------ refunds

    async def _refund(self, command: RefundAsk, identity: Identity, message: IncomingMessage) -> list[Reply]:
        return [await self._refund_question(command, identity, message)]

    async def _refund_question(self, command: RefundAsk, identity: Identity, message: IncomingMessage) -> Reply:
        """Check what would be refunded, then ask the owner to confirm: a refund cannot be undone."""
        if self.refunds is None:
            return Reply("Refunds are not set up here; refund from your payment provider's dashboard.")
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
            return Reply(f"There is nothing to refund on **{format_money(link.amount_minor, link.currency, locale)}**"
                         f" — {markup.user(link.description)} (it is {self.links.status_of(link).value}).")
        if len(choices) > 1:
            lines = [f"That link has {len(choices)} payments you can refund. Say which:"]
            lines.extend(f"• `/refund {c.payment.id}` — {format_money(c.refundable_minor, c.payment.currency, locale)}"
                         f"{' by ' + markup.user(c.payment.payer_name) if c.payment.payer_name else ''}"
                         for c in choices)
            return Reply("\n".join(lines))
        chosen = choices[0]
        amount_minor = chosen.refundable_minor
        most = format_money(chosen.refundable_minor, link.currency, locale)
        if command.amount_text:
            context = dataclasses.replace(self._context(merchant), default_currency=link.currency)
            try:
                money = parse_money(command.amount_text, context)
            except CommandError:
                return Reply(f"I couldn't read “{markup.user(command.amount_text[:40])}” as an amount in "
                             f"{link.currency}.\nFor example: `/refund {short_id(link.id)} "
                             f"{self._plain(chosen.refundable_minor, link.currency)}`")
            if money.currency != link.currency:
                return Reply(f"That link was paid in {link.currency}, so the refund is in {link.currency} too.\n"
                             f"For example: `/refund {short_id(link.id)} {money.amount_str()}`")
            if not 0 < money.amount_minor <= chosen.refundable_minor:
                return Reply(f"I can refund at most {most} of that payment.\nFor example: "
                             f"`/refund {short_id(link.id)} {self._plain(chosen.refundable_minor, link.currency)}`")
            amount_minor = money.amount_minor
        amount = format_money(amount_minor, link.currency, locale)
        payer = markup.user(chosen.payment.payer_name) if chosen.payment.payer_name else "the customer"
        confirm = {"kind": "refund", "link_id": link.id, "payment_id": chosen.payment.id,
                   "amount_minor": amount_minor, "requested_by": f"chat:{message.platform}:{message.user_id}",
                   "requested_by_name": message.display_name or None}
        asker = self._asker(message)
        prefix = ""
        if not identity.is_owner:
            owner = await self._owner_here(merchant.id, message.platform)
            if owner is None or not (message.is_group or message.workspace):
                # The owner answers in a chat they share with staff; in a one-to-one chat they never would.
                return Reply(f"Only the owner of **{markup.user(merchant.name)}** can confirm a refund. Ask here in "
                             f"a group they are in, or ask them to send `/refund {short_id(link.id)}`.")
            asker = Asker(message.platform, message.address, owner.platform_user_id)
            prefix = (f"{markup.user(message.display_name or 'Staff')} asks for a refund; the owner"
                      f"{' ' + markup.user(owner.display_name) if owner.display_name else ''} confirms here.\n")
        question = await self.questions.ask(asker, merchant_id=merchant.id, member_id=identity.member.id,
                                            confirm=confirm)
        text = (f"{prefix}↩️ Refund **{amount}** to {payer} for {markup.user(link.description)}? yes / no\n"
                "A refund cannot be undone.")
        return Reply(text, buttons=(Button(f"Yes, refund {amount}", action=f"{ANSWER_PREFIX}{question.id}:1"),
                                    Button("No", action=f"{ANSWER_PREFIX}{question.id}:0")))

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
        if confirm.get("kind") == "series_stop":
            return await self._series_confirmed(message, question, pick)
        if pick != 1:
            return Reply("OK, nothing refunded.")
        identity = await self.members.identify(message)
        if identity is None or identity.merchant.id != question.merchant_id or not identity.is_owner:
            return Reply("Only the shop's owner can confirm a refund, so nothing was refunded.")
        if self.refunds is None or confirm.get("kind") != "refund":
            return Reply("That question is closed. Send the /refund again.")
        try:
            refund, created = await self.refunds.request(RefundRequest(
                link_id=str(confirm["link_id"]), merchant_id=identity.merchant.id,
                amount_minor=int(confirm["amount_minor"]), payment_id=str(confirm["payment_id"]),
                requested_by=str(confirm["requested_by"]), requested_by_name=confirm.get("requested_by_name"),
                reason="asked in chat",
                # Keyed by the question: a second tap, or the same answer in two processes, is one refund.
                idempotency_key=f"chat-question:{question.id}", request_hash=None))
        except LinkError as error:
            return Reply(f"Nothing refunded: {markup.escape(error.message)}.")
        if created:
            await self._audit(identity, message, "link.refunded", link_id=refund.link_id, refund_id=refund.id,
                              amount=self._plain(refund.amount_minor, refund.currency), currency=refund.currency,
                              status=str(refund.status), asked_by=confirm.get("requested_by_name") or "")
        amount = format_money(refund.amount_minor, refund.currency, identity.merchant.locale)
        status = RefundStatus(refund.status)
        if status is RefundStatus.SUCCEEDED:
            return Reply(f"↩️ Refunded **{amount}**; {refund.provider} confirmed it.")
        if status is RefundStatus.FAILED:
            return Reply(f"❌ The refund of **{amount}** failed: {markup.escape(refund.failure_reason or 'no reason')}."
                         " Nothing was refunded.")
        return Reply(f"↩️ Refund of **{amount}** asked of {refund.provider}. I'll tell you when it is confirmed.")

    async def _report(self, command: Report, identity: Identity, message: IncomingMessage) -> list[Reply]:
        data = await self.reports.report(identity.merchant.id, command.period, livemode=command.livemode)
        merchant = identity.merchant
        return [Reply(render_report(data, merchant.name, merchant.locale, merchant.default_currency))]

    async def _dashboard(self, command: Dashboard, identity: Identity, message: IncomingMessage) -> list[Reply]:
        url = await self.signins.create_link(identity.merchant.id, identity.member.id)
        role = "owner" if identity.is_owner else "staff"
        return [Reply(
            f"🔐 Your sign-in link to the **{markup.user(identity.merchant.name)}** dashboard ({role}):\n{url}\n"
            "It works once, for 10 minutes. Don't forward it: whoever opens it is signed in as you.",
            buttons=(Button("Open the dashboard", url),), private=True,
        )]

    async def _shop(self, command: Shop, identity: Identity, message: IncomingMessage) -> list[Reply]:
        merchant = identity.merchant
        if command.setting is None:
            zone = merchant.timezone or f"{timezone_for(merchant.locale)} (from the locale)"
            return [Reply(
                f"🏪 **{markup.user(merchant.name)}**\n• currency {merchant.default_currency}\n"
                f"• locale {merchant.locale}\n• timezone {markup.escape(str(zone))}\n"
                "Change with `/shop name Cake Corner`, `/shop timezone Asia/Singapore`, `/shop locale id_ID`; "
                "logo, colour and more in /dashboard."
            )]
        if not identity.is_owner:
            return [Reply(f"Only the owner of **{markup.user(merchant.name)}** can change its settings.")]
        if command.setting in ("invoice_prefix", "address"):
            return [await self._invoice_setting(command, identity, message)]
        try:
            await self.merchants.update(merchant.id, **{command.setting: command.value})
        except MerchantError as error:
            examples = {"name": "/shop name Cake Corner", "timezone": "/shop timezone Asia/Singapore",
                        "locale": "/shop locale id_ID"}
            return [Reply(f"{markup.escape(str(error))[:1].upper()}{markup.escape(str(error))[1:]}.\n"
                          f"For example: `{examples[command.setting]}`")]
        await AuditLog(self.links.db, clock=self.clock).record(
            merchant.id, "shop.updated", Actor(identity.member.display_name or "member", message.platform,
                                               identity.member.id, message.address), fields=[command.setting])
        updated = await self.merchants.get(merchant.id)
        shown = getattr(updated, command.setting if command.setting != "name" else "name", command.value)
        return [Reply(f"Done: the shop's {command.setting} is now **{markup.user(str(shown))}**.")]
