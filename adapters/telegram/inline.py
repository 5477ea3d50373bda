"""Inline mode on the conversation core: "@YourBot 25 cake" in any chat drops a payment-link card there.

Only links that were really sent may exist (an offered, never chosen result must not fill /links), so:

1. inline_query: read the query with the /charge grammar (core.commands) in the person's shop context,
   draw a fresh link id (ids.link_id(), 136 random bits) and offer the card the /charge answer would show
   (Conversation.link_reply of an unsaved link carrying that id). Nothing is written.
2. chosen_inline_result (Telegram sends it only with inline feedback on: BotFather /setinlinefeedback):
   read the query again and create the link under exactly that id. The idempotency key
   "telegram-inline:<id>" makes a repeated report harmless.

The card's URL points at a link that exists a moment after the card is sent. People who do not have
paylinks yet get a button that opens the private chat, where /start opens their shop.
"""

from __future__ import annotations

import logging
import re

from babel.lists import format_list

from adapters.telegram.bot import InlineHint, InlineOffer
from adapters.telegram.parse import PLATFORM
from core import i18n, markup
from core.clock import Clock, utcnow
from core.commands import Charge, Choice, CommandError, ParseContext, parse
from core.conversation import Conversation
from core.i18n import N_
from core.links import LinkError
from core.locales import timezone_for
from core.members import Identity
from core.models import LinkStatus, Merchant, PaymentLink
from core.money import format_money
from core.ports import IncomingMessage

log = logging.getLogger("paylinks.telegram")

EMPTY_HINT = N_("Type an amount and what it is for, e.g. 25 cake")
STRANGER_HINT = N_("Set up paylinks first: tap here, then /start")
# ids.link_id(): 28 characters of lowercase base32.
_LINK_ID = re.compile(r"[a-z2-7]{28}")


class CoreInlineCharges:
    def __init__(self, conversation: Conversation, *, clock: Clock = utcnow) -> None:
        self.conversation = conversation
        self.links = conversation.links
        self.clock = clock

    async def _identity(self, user_id: str, display_name: str) -> Identity | None:
        # Inline queries come from one person: their private chat with the bot has their user id.
        who = IncomingMessage(platform=PLATFORM, user_id=user_id, address=user_id, text="",
                              display_name=display_name)
        return await self.conversation.members.identify(who)

    def _read(self, query: str, merchant: Merchant) -> Charge | CommandError:
        context = ParseContext(
            locale=merchant.locale,
            default_currency=merchant.default_currency,
            max_amount=self.links.max_amount,
            now=self.clock(),
            timezone=timezone_for(merchant.locale),
        )
        command = parse(f"/charge {query}", context)
        if isinstance(command, Choice) and len(command.readings) == 1:
            # "25k": the card's title shows the full amount, and picking the card is the confirmation.
            return command.readings[0]
        if isinstance(command, Choice):
            # Several readings: never guess which one the seller meant; say how to write it clearly.
            amounts = [format_money(r.money.amount_minor, r.money.currency, merchant.locale)
                       for r in command.readings]
            either = format_list(amounts, style="or", locale=i18n.current().locale)
            return CommandError(N_("Did you mean %(amounts)s? Write the amount so it means one."), "25 cake",
                                values={"amounts": either})
        if isinstance(command, Charge | CommandError):
            return command
        return CommandError(N_("Type an amount and what it is for."), "25 cake")  # pragma: no cover

    async def offer(self, user_id: str, display_name: str, query: str, link_id: str, *,
                    language: str | None = None) -> InlineOffer | InlineHint:
        """The card (or a hint) in the person's language: their /language, else Telegram's language_code,
        else their shop's, as the conversation answers them."""
        identity = await self._identity(user_id, display_name) if query else None
        who = IncomingMessage(platform=PLATFORM, user_id=user_id, address=user_id, text="", language=language)
        chosen = self.conversation.language_of(identity.member if identity else None,
                                               identity.merchant if identity else None, who)
        with i18n.speaking(chosen) as t:
            if not query:
                return InlineHint(t.gettext(EMPTY_HINT))
            if identity is None:
                return InlineHint(t.gettext(STRANGER_HINT))
            return self._offer(identity, query, link_id, t)

    def _offer(self, identity: Identity, query: str, link_id: str, t: i18n.Tr) -> InlineOffer | InlineHint:
        command = self._read(query, identity.merchant)
        if isinstance(command, CommandError):
            return InlineHint(markup.to_plain(command.translated(t)))
        now = self.clock()
        merchant = identity.merchant
        preview = PaymentLink(
            id=link_id, merchant_id=merchant.id, amount_minor=command.money.amount_minor,
            currency=command.money.currency, description=command.description, reference=command.reference,
            customer_name=command.customer.name, customer_email=command.customer.email,
            customer_phone=command.customer.phone, status=LinkStatus.ACTIVE, created_at=now,
            expires_at=command.expires_at or now + self.links.default_expiry,
        )
        # The same card as a /charge answer (an inline result is one text message, never a QR picture).
        reply = self.conversation.link_reply(preview, merchant.locale, now=now)
        amount = format_money(command.money.amount_minor, command.money.currency, merchant.locale)
        return InlineOffer(link_id=link_id, title=t.gettext("Payment link: %(amount)s", amount=amount),
                           description=command.description, reply=reply)

    async def create(self, user_id: str, display_name: str, query: str, link_id: str) -> str | None:
        if not _LINK_ID.fullmatch(link_id):
            log.warning("telegram inline result with a foreign id user=%s", user_id)
            return None
        identity = await self._identity(user_id, display_name)
        if identity is None:
            log.warning("telegram inline result from an unknown person user=%s link=%s", user_id, link_id)
            return None
        command = self._read(query, identity.merchant)
        if isinstance(command, CommandError):
            log.warning("telegram inline result no longer reads as a charge user=%s link=%s", user_id, link_id)
            return None
        try:
            link, created = await self.links.create(
                command.draft(merchant_id=identity.merchant.id, member_id=identity.member.id,
                              platform=PLATFORM, address=user_id, link_id=link_id,
                              idempotency_key=f"telegram-inline:{link_id}")
            )
        except LinkError as error:
            log.warning("telegram inline link not created link=%s: %s", link_id, error.code)
            return None
        if not created:
            log.info("telegram inline result reported again link=%s", link.id)
        return link.id
