"""The conversation: one platform-neutral answer to every chat message, for every platform.

`Conversation.handle(message)` finds out who is talking (core.members), reads what they asked
(core.commands) and answers with Replies (text in core.markup's tiny markup, URL buttons, an optional QR
picture). It never raises for user mistakes: those are answered with what was wrong and a corrected
example; anything unexpected is logged and answered with a short apology.

A /charge answer is a Reply with `link_id` set and a "Pay …" button; the adapter that posts it calls
`links.attach_message(link_id, ref)` so paid alerts can edit that message.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
from datetime import datetime

import segno
from sqlalchemy import select

from core import markup
from core.clock import Clock, utcnow
from core.commands import (
    USAGE,
    Alerts,
    Cancel,
    Charge,
    Command,
    CommandError,
    Help,
    Invite,
    Join,
    Links,
    ParseContext,
    Report,
    SetCurrency,
    Start,
    Status,
    parse,
    split_command,
)
from core.db import DatabaseBusy
from core.links import LinkError, LinkService
from core.members import Identity, MemberError, MemberService
from core.merchants import MerchantError, MerchantService
from core.models import LinkStatus, Merchant, PaymentLink
from core.money import format_money
from core.ports import Button, IncomingMessage, Reply
from core.reports import (
    ReportService,
    format_relative,
    format_when,
    render_links,
    render_report,
    render_status,
    short_id,
    timezone_for,
)
from core.sql import table
from core.text import without_controls

log = logging.getLogger("paylinks.conversation")

LINKS = table(PaymentLink)
APOLOGY = "😕 Sorry, something went wrong on my side. Please try again in a moment."
BUSY = "⏳ Paylinks is busy, try again in a moment."
LIST_LIMIT = 10

HELP_LINES = (
    ("charge", "a payment link (add `to +65 9123 4567`, `ref INV-1042`, `exp 3d`)"),
    ("links", "your recent links"),
    ("status", "one link, by id or reference"),
    ("cancel", "cancel an open link"),
    ("report", "totals, paid versus open"),
    ("currency", "your default currency"),
    ("invite", "a one-time code for staff, or for your other chat apps"),
    ("join", "use an invite code"),
    ("alerts", "paid alerts in this chat"),
)

CHARGE_HELP = """**/charge** makes a payment link.
• Amount first: `25`, `25.50`, `1,250.00`, `USD 25`, `25 usd`, `S$25`, `Rp150.000`, `€25`
• Then what it is for: `/charge 25 for 2 birthday cakes`
• Optional: `to +65 9123 4567` / `to alice@example.com` / `to @alice`
• Optional: `exp 2h`, `expires in 3 days`, `valid 30m`, `exp 2026-12-31`
• Optional: `ref INV-1042` or `#INV-1042`
Example: `/charge 25 for 2 birthday cakes to +65 9123 4567 ref INV-1042 exp 3d`"""


def qr_png(url: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=6, border=2)
    return buffer.getvalue()


class Conversation:
    def __init__(
        self,
        *,
        links: LinkService,
        merchants: MerchantService,
        members: MemberService | None = None,
        reports: ReportService | None = None,
        clock: Clock = utcnow,
        qr_codes: bool = True,
    ) -> None:
        self.links = links
        self.merchants = merchants
        self.members = members or MemberService(links.db, merchants, clock=clock)
        self.reports = reports or ReportService(links.db, links, clock=clock)
        self.clock = clock
        self.qr_codes = qr_codes

    # ------------------------------------------------------------ entry point

    async def handle(self, message: IncomingMessage) -> list[Reply]:
        # Control characters (NUL above all, which PostgreSQL refuses in text) never mean anything in a
        # chat message or a name; drop them before anything is parsed or stored.
        message = dataclasses.replace(
            message, text=without_controls(message.text), display_name=without_controls(message.display_name)
        )
        try:
            return await self._handle(message)
        except DatabaseBusy as busy:  # another process held the database past database.busy_timeout
            log.warning("conversation refused: database busy (%s) platform=%s", busy.reason, message.platform)
            return [Reply(BUSY)]
        except Exception:  # the chat must always get an answer; the log gets the details
            log.exception("conversation failed platform=%s address=%s", message.platform, message.address)
            return [Reply(APOLOGY)]

    async def _handle(self, message: IncomingMessage) -> list[Reply]:
        word = split_command(message.text)
        if word.name is None:
            # Chatter in a group is not for us; in a private chat, anything unknown gets the help.
            if message.is_group or not message.text.strip():
                return [] if message.is_group else [Reply(self._help(None, known=False))]
            return [Reply(self._help(None, unknown=word.rest, known=await self._known(message)))]
        if word.name == "unknown":
            return [Reply(self._help(None, unknown=word.typed, known=await self._known(message)))]
        if word.name == "help":
            topic = parse(message.text, ParseContext())
            return [Reply(self._help(topic.topic if isinstance(topic, Help) else None,
                                     known=await self._known(message)))]
        if word.name == "join":
            command = parse(message.text, ParseContext())
            if isinstance(command, CommandError):
                return [Reply(command.text())]
            assert isinstance(command, Join)
            return [await self._join(message, command)]

        identity = await self.members.identify(message)
        welcome: Reply | None = None
        if identity is None:
            identity = await self.members.onboard(message)
            if identity.created:
                welcome = Reply(self._welcome(identity))
        if word.name == "start":
            return [welcome or Reply(self._greeting(identity))]
        command = parse(message.text, self._context(identity.merchant))
        replies = [Reply(command.text())] if isinstance(command, CommandError) else await self._run(
            command, identity, message
        )
        return [welcome, *replies] if welcome else replies

    async def _known(self, message: IncomingMessage) -> bool:
        return await self.members.identify(message) is not None

    def _context(self, merchant: Merchant) -> ParseContext:
        return ParseContext(
            locale=merchant.locale,
            default_currency=merchant.default_currency,
            max_amount=self.links.max_amount,
            now=self.clock(),
            timezone=timezone_for(merchant.locale),
        )

    async def _run(self, command: Command, identity: Identity, message: IncomingMessage) -> list[Reply]:
        try:
            if isinstance(command, Charge):
                return [await self._charge(command, identity, message)]
            if isinstance(command, Links):
                return [await self._links(command, identity)]
            if isinstance(command, Status):
                return [await self._status(command, identity)]
            if isinstance(command, Cancel):
                return [await self._cancel(command, identity)]
            if isinstance(command, Report):
                data = await self.reports.report(identity.merchant.id, command.period)
                merchant = identity.merchant
                return [Reply(render_report(data, merchant.name, merchant.locale, merchant.default_currency))]
            if isinstance(command, SetCurrency):
                return [await self._currency(command, identity)]
            if isinstance(command, Invite):
                return [await self._invite(identity)]
            if isinstance(command, Alerts):
                return [await self._alerts(command, identity, message)]
            if isinstance(command, Help | Start | Join):  # pragma: no cover — answered before parsing
                return [Reply(self._help(None, known=True))]
        except MemberError as error:
            return [Reply(error.text())]
        except LinkError as error:
            return [Reply(f"{markup.escape(error.message[:1].upper() + error.message[1:])}.")]
        raise AssertionError(f"unhandled command {command!r}")  # pragma: no cover

    # ------------------------------------------------------------ texts

    def _help(self, topic: str | None, *, unknown: str | None = None, known: bool) -> str:
        if topic == "charge":
            return CHARGE_HELP
        if topic in USAGE:
            return f"`{USAGE[topic]}` — {dict(HELP_LINES).get(topic, 'see /help')}"
        lines = []
        if unknown:
            lines.append(f"I don't know “{markup.escape(unknown[:60])}”. Here is what I can do:")
        else:
            lines.append("**paylinks** makes payment links right here in the chat.")
        lines.extend(f"• `{USAGE[name]}` — {text}" for name, text in HELP_LINES)
        lines.append("The slash is optional: `charge 25 cake` works too. More: `/help charge`")
        if not known:
            lines.append("New here? Send /start to open your shop, or `/join CODE` to join one.")
        return "\n".join(lines)

    def _welcome(self, identity: Identity) -> str:
        merchant = identity.merchant
        return (
            f"👋 Welcome! I opened a shop for you: **{markup.escape(merchant.name)}** "
            f"({merchant.default_currency}, {merchant.locale}).\n"
            f"Make a payment link with `/charge 25 birthday cake`. "
            f"Change the currency with `/currency {'SGD' if merchant.default_currency != 'SGD' else 'USD'}`, "
            "or join an existing shop with `/join CODE`."
        )

    def _greeting(self, identity: Identity) -> str:
        role = "owner" if identity.is_owner else "staff"
        return (
            f"👋 Hi! You're in **{markup.escape(identity.merchant.name)}** ({role}, "
            f"{identity.merchant.default_currency}).\n"
            "Try `/charge 25 birthday cake`, `/links` or `/report`. Everything else: /help"
        )

    # ------------------------------------------------------------ commands

    async def _charge(self, command: Charge, identity: Identity, message: IncomingMessage) -> Reply:
        link, _created = await self.links.create(
            command.draft(merchant_id=identity.merchant.id, member_id=identity.member.id,
                          platform=message.platform, address=message.address)
        )
        return self.link_reply(link, identity.merchant.locale)

    def link_reply(self, link: PaymentLink, locale: str, *, now: datetime | None = None) -> Reply:
        """The message that shows a new link: amount, description, URL, expiry and a Pay button."""
        now = now or self.clock()
        url = self.links.url(link.id)
        amount = format_money(link.amount_minor, link.currency, locale)
        lines = [f"💳 **{amount}** — {markup.escape(link.description)}"]
        details = []
        if link.reference:
            details.append(f"ref `{markup.escape(link.reference)}`")
        customer = link.customer_phone or link.customer_email or link.customer_name
        if customer:
            details.append(f"for {markup.escape(customer)}")
        details.append(f"id `{short_id(link.id)}`")
        lines.append(" · ".join(details))
        lines.append(url)
        when = format_when(link.expires_at, locale)
        lines.append(f"⏳ Expires {format_relative(link.expires_at, now, locale)} ({when})")
        return Reply(
            text="\n".join(lines),
            buttons=(Button(f"Pay {amount}", url),),
            image_png=qr_png(url) if self.qr_codes else None,
            link_id=link.id,
        )

    async def _links(self, command: Links, identity: Identity) -> Reply:
        links, cursor = await self.links.list(identity.merchant.id, status=command.status, limit=LIST_LIMIT)
        return Reply(render_links(links, command.label, identity.merchant.locale, more=cursor is not None))

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
            f"I can't find a link “{markup.escape(key)}” in **{markup.escape(identity.merchant.name)}**. "
            f"Use its id or reference from /links, e.g. `/{command} INV-1042`."
        )

    async def _status(self, command: Status, identity: Identity) -> Reply:
        link = await self.find_link(identity.merchant.id, command.key)
        if link is None:
            return self._not_found(command.key, identity, "status")
        url = self.links.url(link.id)
        locale = identity.merchant.locale
        buttons: tuple[Button, ...] = ()
        if LinkStatus(link.status) is LinkStatus.ACTIVE:
            buttons = (Button(f"Pay {format_money(link.amount_minor, link.currency, locale)}", url),)
        return Reply(render_status(link, url, locale, self.clock()), buttons=buttons)

    async def _cancel(self, command: Cancel, identity: Identity) -> Reply:
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
                f"That link ({amount} — {markup.escape(link.description)}) is {current.status}; "
                "only an open link can be cancelled."
            )
        log.info("link cancelled from chat link=%s member=%s", link.id, identity.member.id)
        return Reply(
            f"🚫 Cancelled **{amount}** — {markup.escape(link.description)}. The link no longer takes payments."
        )

    async def _currency(self, command: SetCurrency, identity: Identity) -> Reply:
        merchant = identity.merchant
        if command.code is None:
            other = "SGD" if merchant.default_currency != "SGD" else "USD"
            return Reply(
                f"**{markup.escape(merchant.name)}** charges in **{merchant.default_currency}** unless you say "
                f"otherwise. Change it with `/currency {other}`."
            )
        if not identity.is_owner:
            return Reply(f"Only the owner of **{markup.escape(merchant.name)}** can change its currency.")
        try:
            await self.merchants.update(merchant.id, currency=command.code)
        except MerchantError as error:  # pragma: no cover — the grammar already checked the code
            return Reply(markup.escape(str(error)))
        example = format_money(2500, command.code, merchant.locale)
        return Reply(
            f"Done: new links are in **{command.code}** unless you say otherwise (`/charge 25 cake` → {example})."
        )

    async def _invite(self, identity: Identity) -> Reply:
        invite = await self.members.create_invite(identity)
        hours = int((invite.expires_at - invite.created_at).total_seconds() // 3600)
        return Reply(
            f"🎟 Invite code for **{markup.escape(identity.merchant.name)}**: `{invite.code}`\n"
            f"Whoever sends `/join {invite.code}` — here or on Telegram, Slack or WhatsApp — becomes staff. "
            f"It works once, for {hours} hours."
        )

    async def _join(self, message: IncomingMessage, command: Join) -> Reply:
        try:
            result = await self.members.join(message, command.code)
        except MemberError as error:
            return Reply(error.text())
        name = markup.escape(result.identity.merchant.name)
        who = "This workspace is" if result.workspace else "You're"
        text = f"🤝 {who} now part of **{name}** (staff). Try `/charge 25 birthday cake`."
        if result.previous is not None:
            subject = "it" if result.workspace else "you"
            text += (f"\n(Before, {subject} belonged to **{markup.escape(result.previous.name)}**; "
                     "that shop and its links are unchanged.)")
        return Reply(text)

    async def _alerts(self, command: Alerts, identity: Identity, message: IncomingMessage) -> Reply:
        merchant = identity.merchant
        name = markup.escape(merchant.name)
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
