"""What alerts, receipts and notices say: pure functions from plain facts to platform-neutral Replies.

The facts are captured when the outbox row is written (in the link's transaction) and stored in its
payload, so a message sent an hour later still says what happened then. Each text is written in the
language of the chat that receives it (core/outbox.py picks it per target), amounts in the shop's
locale, times on the shop's clock with the zone's short name (core.i18n.Clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core import i18n
from core.i18n import N_
from core.money import format_money
from core.ports import Button, Reply

EVENT_PAID = "link.paid"
EVENT_EXPIRED = "link.expired"
EVENT_CANCELLED = "link.cancelled"
EVENT_CREATED = "link.created"


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """One link event as the seller (or the customer) should hear of it."""

    event: str
    link_id: str
    amount_minor: int
    currency: str
    description: str
    at: datetime
    locale: str = "en"
    merchant_name: str = ""
    reference: str | None = None
    payer_name: str | None = None
    url: str | None = None
    # False for test money (sandbox, Stripe test keys, PortOne sandbox): every text says so. Rows written
    # before this was recorded read as live, so nothing is ever marked test by mistake.
    livemode: bool = True
    # The shop's time zone setting when the facts were captured (None: its locale's main zone).
    timezone: str | None = None

    @property
    def amount_text(self) -> str:
        return format_money(self.amount_minor, self.currency, self.locale)

    def clock(self, language: str) -> i18n.Clock:
        return i18n.Clock.of(language=language, shop_locale=self.locale, timezone=self.timezone)

    @property
    def shop_language(self) -> str:
        return i18n.language_of_locale(self.locale)

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies, and this runs inside every payment's transaction.
        return {
            "event": self.event, "link_id": self.link_id, "amount_minor": self.amount_minor,
            "currency": self.currency, "description": self.description, "at": self.at.astimezone(UTC).isoformat(),
            "locale": self.locale, "merchant_name": self.merchant_name, "reference": self.reference,
            "payer_name": self.payer_name, "url": self.url, "livemode": self.livemode, "timezone": self.timezone,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertFacts:
        values = dict(data)
        at = datetime.fromisoformat(str(values["at"]))
        values["at"] = at if at.tzinfo else at.replace(tzinfo=UTC)
        known = set(cls.__slots__)
        return cls(**{k: v for k, v in values.items() if k in known})


def clock_time(facts: AlertFacts, language: str) -> str:
    """"14:05 SGT": the shop's clock, as receipts, /status and the dashboard show it."""
    return facts.clock(language).time(facts.at)


def _details(facts: AlertFacts, t: i18n.Tr) -> str:
    parts = []
    if facts.payer_name:
        parts.append(t.gettext("by %(payer)s", payer=facts.payer_name))
    parts.append(t.gettext("at %(time)s", time=clock_time(facts, t.language)))
    if facts.reference:
        parts.append(t.gettext("ref %(reference)s", reference=facts.reference))
    return " · ".join(parts)


_HEADLINES = {
    EVENT_PAID: N_("✅ Paid"),
    EVENT_EXPIRED: N_("⌛ Expired unpaid"),
    EVENT_CANCELLED: N_("✖️ Cancelled"),
}
# Beside the headline of anything about test money, so a seller never ships goods for a rehearsal.
TEST_MARK = N_("🧪 Test mode")


def test_mark(facts: AlertFacts, language: str = "en") -> str:
    """" (🧪 Test mode)" for test money, "" for live money."""
    return "" if facts.livemode else f" ({i18n.tr(language).gettext(TEST_MARK)})"


def alert_reply(facts: AlertFacts, language: str | None = None) -> Reply:
    """The message that makes the seller's phone buzz: "✅ Paid: **S$25.00** — cake"
    ("✅ Paid (🧪 Test mode): …" for test money)."""
    t = i18n.tr(language or facts.shop_language)
    headline = (t.gettext(_HEADLINES[facts.event]) if facts.event in _HEADLINES else facts.event) + \
        test_mark(facts, t.language)
    details = (_details(facts, t) if facts.event == EVENT_PAID
               else t.gettext("at %(time)s", time=clock_time(facts, t.language)))
    return Reply(text=f"{headline}: **{facts.amount_text}** — {facts.description}\n{details}",
                 link_id=facts.link_id)


def edited_link_reply(facts: AlertFacts, language: str | None = None) -> Reply:
    """What the original /charge message becomes: its status instead of the Pay button."""
    t = i18n.tr(language or facts.shop_language)
    mark = test_mark(facts, t.language)
    time = clock_time(facts, t.language)
    status = {
        EVENT_PAID: t.gettext("✅ Paid") + f"{mark} {_details(facts, t)}",
        EVENT_EXPIRED: t.gettext("⌛ Expired%(mark)s at %(time)s, not paid", mark=mark, time=time),
        EVENT_CANCELLED: t.gettext("✖️ Cancelled%(mark)s at %(time)s", mark=mark, time=time),
    }.get(facts.event, facts.event)
    return Reply(text=f"**{facts.amount_text}** — {facts.description}\n{status}", link_id=facts.link_id)


def receipt_reply(facts: AlertFacts, language: str | None = None) -> Reply:
    """The customer's receipt after paying."""
    t = i18n.tr(language or facts.shop_language)
    values = {"amount": f"**{facts.amount_text}**", "shop": facts.merchant_name, "description": facts.description}
    what = (t.gettext("%(amount)s to %(shop)s for %(description)s", **values) if facts.merchant_name
            else t.gettext("%(amount)s for %(description)s", **values))
    when = clock_time(facts, t.language)
    if facts.reference:
        when += " · " + t.gettext("ref %(reference)s", reference=facts.reference)
    test = "" if facts.livemode else "\n" + t.gettext("%(mark)s: no real money was charged.",
                                                      mark=t.gettext(TEST_MARK))
    return Reply(
        text=t.gettext("✅ Payment received, thank you!") + f"\n{what}\n{when}{test}",
        link_id=facts.link_id,
    )


def customer_link_reply(facts: AlertFacts, language: str | None = None) -> Reply:
    """The payment link sent to the customer (a template fills the same facts outside the 24 h window)."""
    t = i18n.tr(language or facts.shop_language)
    url = facts.url or ""
    values = {"shop": facts.merchant_name, "amount": f"**{facts.amount_text}**", "description": facts.description}
    text = (t.gettext("Hello! %(shop)s asks you to pay %(amount)s for %(description)s.", **values)
            if facts.merchant_name else t.gettext("Hello! A shop asks you to pay %(amount)s for %(description)s.",
                                                  **values))
    return Reply(
        text=f"{text}\n{url}",
        buttons=(Button(t.gettext("Pay %(amount)s", amount=facts.amount_text), url),) if url else (),
        link_id=facts.link_id,
    )


def customer_reminder_reply(facts: AlertFacts, language: str | None = None) -> Reply:
    """A reminder to a customer who has not paid yet."""
    t = i18n.tr(language or facts.shop_language)
    url = facts.url or ""
    values = {"shop": facts.merchant_name, "amount": f"**{facts.amount_text}**", "description": facts.description}
    text = (t.gettext("⏰ A reminder from %(shop)s: %(amount)s for %(description)s is still open.", **values)
            if facts.merchant_name else
            t.gettext("⏰ A reminder: %(amount)s for %(description)s is still open.", **values))
    return Reply(
        text=f"{text}\n{url}",
        buttons=(Button(t.gettext("Pay %(amount)s", amount=facts.amount_text), url),) if url else (),
        link_id=facts.link_id,
    )


def target_disabled_notice(platform: str, address: str, reason: str, language: str = "en") -> Reply:
    return Reply(text=i18n.tr(language).gettext(
        "⚠️ I can no longer send messages to the %(platform)s chat %(address)s (%(reason)s). "
        "Alerts for it are stopped; write to me from that chat again to restart them.",
        platform=platform, address=f"`{address}`", reason=reason))


def customer_undeliverable_notice(facts: AlertFacts, contact: str, reason: str, *, receipt: bool,
                                  language: str | None = None) -> Reply:
    """`contact` says who and where, as the platform's plug-in words it ("+6591234567 on WhatsApp")."""
    t = i18n.tr(language or facts.shop_language)
    values = {"amount": f"**{facts.amount_text}**", "description": facts.description, "contact": contact,
              "reason": reason}
    text = (t.gettext("⚠️ I could not send the receipt for %(amount)s (%(description)s) to %(contact)s (%(reason)s).",
                      **values) if receipt else
            t.gettext("⚠️ I could not send the payment link for %(amount)s (%(description)s) to %(contact)s "
                      "(%(reason)s).", **values))
    if not receipt and facts.url:
        text += "\n" + t.gettext("Send it to them yourself: %(url)s", url=facts.url)
    return Reply(text=text, link_id=facts.link_id)


def customer_refund_reply(facts: AlertFacts, language: str | None = None) -> Reply:
    """To the customer: a refund of their payment went through (facts carry the refunded amount)."""
    t = i18n.tr(language or facts.shop_language)
    values = {"shop": facts.merchant_name, "amount": f"**{facts.amount_text}**", "description": facts.description}
    head = (t.gettext("↩️ %(shop)s refunded %(amount)s for %(description)s.", **values) if facts.merchant_name
            else t.gettext("↩️ The shop refunded %(amount)s for %(description)s.", **values))
    if facts.reference:
        head += " · " + t.gettext("ref %(reference)s", reference=facts.reference)
    test = "" if facts.livemode else "\n" + t.gettext("%(mark)s: no real money was charged.",
                                                      mark=t.gettext(TEST_MARK))
    later = t.gettext("It can take a few days to show on your statement.")
    return Reply(text=f"{head}\n{later}{test}", link_id=facts.link_id)


def delivery_followup(facts: AlertFacts, contact: str, *, delivered: bool, language: str | None = None) -> Reply:
    """The seller's follow-up to "📨 Sent to …": the link reached the customer (email handed to the mail
    server, SMS or WhatsApp delivered to the phone). Failures are customer_undeliverable_notice."""
    t = i18n.tr(language or facts.shop_language)
    values = {"amount": f"**{facts.amount_text}**", "description": facts.description, "contact": contact}
    reminder = facts.event == "link.reminder"
    # Email has no delivery report: accepted by the mail server is all we can know.
    if delivered:
        text = (t.gettext("📬 The reminder for %(amount)s (%(description)s) was delivered to %(contact)s.", **values)
                if reminder else
                t.gettext("📬 The payment link for %(amount)s (%(description)s) was delivered to %(contact)s.",
                          **values))
    else:
        text = (t.gettext("📬 The reminder for %(amount)s (%(description)s) was sent to %(contact)s.", **values)
                if reminder else
                t.gettext("📬 The payment link for %(amount)s (%(description)s) was sent to %(contact)s.", **values))
    return Reply(text=text, link_id=facts.link_id)
