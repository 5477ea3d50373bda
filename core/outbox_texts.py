"""What alerts, receipts and notices say: pure functions from plain facts to platform-neutral Replies.

The facts are captured when the outbox row is written (in the link's transaction) and stored in its
payload, so a message sent an hour later still says what happened then, in the merchant's locale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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

    @property
    def amount_text(self) -> str:
        return format_money(self.amount_minor, self.currency, self.locale)

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies, and this runs inside every payment's transaction.
        return {
            "event": self.event, "link_id": self.link_id, "amount_minor": self.amount_minor,
            "currency": self.currency, "description": self.description, "at": self.at.astimezone(UTC).isoformat(),
            "locale": self.locale, "merchant_name": self.merchant_name, "reference": self.reference,
            "payer_name": self.payer_name, "url": self.url, "livemode": self.livemode,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertFacts:
        values = dict(data)
        at = datetime.fromisoformat(str(values["at"]))
        values["at"] = at if at.tzinfo else at.replace(tzinfo=UTC)
        known = set(cls.__slots__)
        return cls(**{k: v for k, v in values.items() if k in known})


def clock_time(at: datetime) -> str:
    # Merchants have no time zone setting yet, so times say UTC rather than pretend to be local.
    return at.astimezone(UTC).strftime("%H:%M UTC")


def _details(facts: AlertFacts) -> str:
    parts = []
    if facts.payer_name:
        parts.append(f"by {facts.payer_name}")
    parts.append(f"at {clock_time(facts.at)}")
    if facts.reference:
        parts.append(f"ref {facts.reference}")
    return " · ".join(parts)


_HEADLINES = {
    EVENT_PAID: "✅ Paid",
    EVENT_EXPIRED: "⌛ Expired unpaid",
    EVENT_CANCELLED: "✖️ Cancelled",
}
# Beside the headline of anything about test money, so a seller never ships goods for a rehearsal.
TEST_MARK = "🧪 Test mode"


def test_mark(facts: AlertFacts) -> str:
    """" (🧪 Test mode)" for test money, "" for live money."""
    return "" if facts.livemode else f" ({TEST_MARK})"


def alert_reply(facts: AlertFacts) -> Reply:
    """The message that makes the seller's phone buzz: "✅ Paid: **S$25.00** — cake"
    ("✅ Paid (🧪 Test mode): …" for test money)."""
    headline = _HEADLINES.get(facts.event, facts.event) + test_mark(facts)
    details = _details(facts) if facts.event == EVENT_PAID else f"at {clock_time(facts.at)}"
    return Reply(text=f"{headline}: **{facts.amount_text}** — {facts.description}\n{details}",
                 link_id=facts.link_id)


def edited_link_reply(facts: AlertFacts) -> Reply:
    """What the original /charge message becomes: its status instead of the Pay button."""
    mark = test_mark(facts)
    status = {
        EVENT_PAID: f"✅ Paid{mark} {_details(facts)}",
        EVENT_EXPIRED: f"⌛ Expired{mark} at {clock_time(facts.at)}, not paid",
        EVENT_CANCELLED: f"✖️ Cancelled{mark} at {clock_time(facts.at)}",
    }.get(facts.event, facts.event)
    return Reply(text=f"**{facts.amount_text}** — {facts.description}\n{status}", link_id=facts.link_id)


def receipt_reply(facts: AlertFacts) -> Reply:
    """The customer's receipt after paying."""
    shop = f" to {facts.merchant_name}" if facts.merchant_name else ""
    ref = f" · ref {facts.reference}" if facts.reference else ""
    test = "" if facts.livemode else f"\n{TEST_MARK}: no real money was charged."
    return Reply(
        text=f"✅ Payment received, thank you!\n**{facts.amount_text}**{shop} for {facts.description}\n"
             f"{clock_time(facts.at)}{ref}{test}",
        link_id=facts.link_id,
    )


def customer_link_reply(facts: AlertFacts) -> Reply:
    """The payment link sent to the customer (a template fills the same facts outside the 24 h window)."""
    shop = facts.merchant_name or "A shop"
    url = facts.url or ""
    return Reply(
        text=f"Hello! {shop} asks you to pay **{facts.amount_text}** for {facts.description}.\n{url}",
        buttons=(Button(f"Pay {facts.amount_text}", url),) if url else (),
        link_id=facts.link_id,
    )


def customer_reminder_reply(facts: AlertFacts) -> Reply:
    """A reminder to a customer who has not paid yet."""
    shop = facts.merchant_name or "A shop"
    url = facts.url or ""
    return Reply(
        text=f"⏰ A reminder from {shop}: **{facts.amount_text}** for {facts.description} is still open.\n{url}",
        buttons=(Button(f"Pay {facts.amount_text}", url),) if url else (),
        link_id=facts.link_id,
    )


def target_disabled_notice(platform: str, address: str, reason: str) -> Reply:
    return Reply(
        text=f"⚠️ I can no longer send messages to the {platform} chat `{address}` ({reason}). "
             "Alerts for it are stopped; write to me from that chat again to restart them."
    )


def customer_undeliverable_notice(facts: AlertFacts, contact: str, reason: str, *, receipt: bool) -> Reply:
    """`contact` says who and where, as the platform's plug-in words it ("+6591234567 on WhatsApp")."""
    what = "the receipt" if receipt else "the payment link"
    text = (f"⚠️ I could not send {what} for **{facts.amount_text}** ({facts.description}) to {contact} "
            f"({reason}).")
    if not receipt and facts.url:
        text += f"\nSend it to them yourself: {facts.url}"
    return Reply(text=text, link_id=facts.link_id)


def customer_refund_reply(facts: AlertFacts) -> Reply:
    """To the customer: a refund of their payment went through (facts carry the refunded amount)."""
    shop = facts.merchant_name or "The shop"
    ref = f" · ref {facts.reference}" if facts.reference else ""
    test = "" if facts.livemode else f"\n{TEST_MARK}: no real money was charged."
    return Reply(
        text=f"↩️ {shop} refunded **{facts.amount_text}** for {facts.description}{ref}.\n"
             f"It can take a few days to show on your statement.{test}",
        link_id=facts.link_id,
    )


def delivery_followup(facts: AlertFacts, contact: str, *, delivered: bool) -> Reply:
    """The seller's follow-up to "📨 Sent to …": the link reached the customer (email handed to the mail
    server, SMS or WhatsApp delivered to the phone). Failures are customer_undeliverable_notice."""
    what = {"link.reminder": "The reminder"}.get(facts.event, "The payment link")
    # Email has no delivery report: accepted by the mail server is all we can know.
    verb = "was delivered to" if delivered else "was sent to"
    return Reply(text=f"📬 {what} for **{facts.amount_text}** ({facts.description}) {verb} {contact}.",
                 link_id=facts.link_id)
