"""Ports: what the core needs from the outside world, and the plain values that cross them.

Chat adapters turn platform events into IncomingMessage and render Reply for their platform; payment
adapters implement PaymentProvider. Nothing here knows a platform SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from core.money import Money

if TYPE_CHECKING:  # annotations only: the plug-ins' settings import this module, the models need SQLAlchemy
    from core.models import Payment, PaymentLink

# ---------------------------------------------------------------- chat


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    platform: str  # the chat platform plug-in's name ("console", "telegram", …)
    user_id: str  # the person, as the platform names them
    address: str  # where answers go (chat id, channel id, "whatsapp:+6591234567")
    text: str
    display_name: str = ""
    is_group: bool = False
    # A group of people that share one shop (a Slack workspace id); None elsewhere.
    workspace: str | None = None
    # Platform-specific extras an adapter wants echoed back (e.g. Slack's response_url); core ignores it.
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The platform's id for this delivery (Telegram bot id + update_id, Twilio MessageSid, a hash of Slack's
    # signed request…), the same when the platform delivers the message again: it is handled once
    # (core.deliveries). None: no dedupe (the console).
    delivery_id: str | None = None
    # The `action` of the Button this person pressed (Telegram callback data, a Slack block action), if any.
    action: str | None = None
    # The language the platform says this person uses (Telegram's language_code "th", Slack's locale
    # "ja-JP"), if it says; core.i18n matches it to a catalog. None: ask the member's setting, the phone.
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """A URL button, or (with `action`) an answer button: pressing it comes back as IncomingMessage.action.

    Platforms without answer buttons (WhatsApp, the console) leave them out; the reply text then lists
    the same choices as numbers to type.
    """

    label: str
    url: str = ""
    action: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A platform-neutral answer. `text` uses a tiny markup: **bold** and `code`; URLs are plain."""

    text: str
    buttons: tuple[Button, ...] = ()
    # Set on the /charge answer: adapters store where it was posted (LinkService.attach_message) so
    # paid alerts can edit that message.
    link_id: str | None = None
    # Only for the person who asked (a sign-in link): a DM, or Slack's ephemeral message, never the group.
    private: bool = False
    # A link whose invoice PDF goes with this answer as a file, where the platform can send one (/invoice).
    invoice_pdf: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            **({"private": True} if self.private else {}),
            "buttons": [{"label": b.label, "url": b.url, **({"action": b.action} if b.action else {})}
                        for b in self.buttons],
            "link_id": self.link_id,
            **({"invoice_pdf": self.invoice_pdf} if self.invoice_pdf else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        return cls(
            text=str(data["text"]),
            buttons=tuple(Button(str(b["label"]), str(b.get("url") or ""), b.get("action"))
                          for b in data.get("buttons", ())),
            link_id=data.get("link_id"),
            private=bool(data.get("private", False)),
            invoice_pdf=data.get("invoice_pdf"),
        )


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a sent message lives, enough to edit or answer it later."""

    platform: str
    address: str
    message_id: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"platform": self.platform, "address": self.address, "message_id": self.message_id,
                "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MessageRef:
        return cls(str(data["platform"]), str(data["address"]), str(data["message_id"]),
                   dict(data.get("extra") or {}))


class SendError(Exception):
    """Base of the classified errors a ChatSender raises. Messages must not contain secrets."""


class RetryLater(SendError):
    """The platform said to slow down: retry after exactly this many seconds."""

    def __init__(self, after_s: float, reason: str = "rate limited") -> None:
        super().__init__(reason)
        self.after_s = after_s


class Transient(SendError):
    """Network error or 5xx: retry with backoff."""


class Permanent(SendError):
    """The target cannot be reached (blocked, chat gone, outside a window with no template)."""


class Dropped(Permanent):
    """This one message can never be delivered (its webhook endpoint was deleted or disabled); the
    target itself is not marked unreachable."""


class AddressMoved(SendError):
    """The chat lives at a new address now (Telegram group -> supergroup); retry there."""

    def __init__(self, new_address: str) -> None:
        super().__init__(f"chat moved to {new_address}")
        self.new_address = new_address


class AddressRules(Protocol):
    """A chat platform's own rules for reaching people, so the outbox needs to know no platform."""

    def member_address(self, user_id: str) -> str | None:
        """Where a member (by their platform user id) can be reached directly; None: nowhere."""
        ...

    def customer_address(self, contact: str | None) -> str | None:
        """A customer's contact on a link (e.g. their phone) as an address here; None: not reachable."""
        ...

    def describe_contact(self, address: str) -> str:
        """An address in words for a seller's notice, e.g. "+6591234567 on WhatsApp"."""
        ...


@runtime_checkable
class ChatSender(Protocol):
    platform: str

    async def send(self, address: str, reply: Reply) -> MessageRef: ...

    async def edit(self, ref: MessageRef, reply: Reply) -> None: ...

    async def close(self) -> None:
        """Release connections at shutdown; safe to call twice, or when nothing was ever sent."""


# ---------------------------------------------------------------- payments


@dataclass(frozen=True, slots=True)
class Checkout:
    url: str
    provider_ref: str


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A verified provider webhook, mapped to plain values."""

    provider: str
    event_id: str
    # "payment.succeeded"; "refund.succeeded" | "refund.failed" (refund_ref / refund_id say which refund);
    # "payment.failed" (a checkout the provider reports failed); "dispute.created". Others are ignored.
    kind: str
    link_id: str
    provider_ref: str
    amount_minor: int
    currency: str
    payer_name: str | None = None
    occurred_at: datetime | None = None
    # Real money (true) or pretend (false), when the provider says; None: the link's own mode.
    livemode: bool | None = None
    # The provider account it came through: a shop's own (its merchant id), None for the deployment's.
    account: str | None = None
    # The provider's id of the money taken when it differs from provider_ref (Stripe payment_intent,
    # PortOne order_ref), and PortOne's channel_key: what a refund must name.
    payment_ref: str | None = None
    channel: str | None = None
    # Refund events: the provider's refund id and/or ours (echoed back in its metadata).
    refund_ref: str | None = None
    refund_id: str | None = None
    # The provider's checkout this payment came through, when its event says (a reusable link's
    # reservation is found by it: core/reusable.py).
    checkout_ref: str | None = None
    # The provider's words: why a refund or payment failed, why a dispute was opened.
    reason: str | None = None


class WebhookError(Exception):
    """A webhook that failed verification (bad or missing signature, stale timestamp, bad body)."""


class PaymentProvider(Protocol):
    """A payment gateway. `name` is its key in `[payments] provider` and its webhook path segment.

    `fetch_status` asks the gateway what became of a payment; nothing calls it yet (reconciliation,
    which compares it with what the webhooks said, comes with the real providers). A gateway that can
    give money back implements `RefundingProvider` too (the refunds work adds the caller).
    """

    name: str
    # True when payments are pretend (the sandbox; Stripe test keys, PortOne's sandbox): the shop's API
    # keys are then `pl_test_…` keys.
    test_mode: bool

    async def create_checkout(
        self, link: PaymentLink, *, return_url: str, idempotency_key: str
    ) -> Checkout: ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> PaymentEvent: ...

    async def fetch_status(self, provider_ref: str) -> str: ...


@runtime_checkable
class CheckingProvider(Protocol):
    """Optional: a provider with its own rules on amounts and currencies (Stripe's currency table)."""

    def check_money(self, money: Money) -> tuple[str, str] | None:
        """(field, message) when this money cannot be charged, None when it can; LinkService refuses the link."""
        ...


@runtime_checkable
class ClosingProvider(Protocol):
    """Optional: a provider whose checkouts stay payable until closed (Stripe sessions, PortOne links)."""

    async def close_checkout(self, provider_ref: str) -> None:
        """Close one open checkout; an already finished one is not an error."""
        ...


@runtime_checkable
class ReconcilingProvider(Protocol):
    """Optional: a provider that can say whether a checkout was paid (a missed webhook is reconciled)."""

    async def reconcile_event(self, provider_ref: str, link: PaymentLink) -> PaymentEvent | None:
        """The payment this checkout of `link` made, as its webhook would say it; None while it is not paid.

        `link` is the stored link the checkout was opened for (a provider whose status call carries no
        amount, like PortOne's fetch-status, charges exactly what the checkout was created with).
        """
        ...


class RefundState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RefundAnswer:
    """What the provider answered to a refund request: its refund id and what it says happened."""

    provider_ref: str | None
    state: RefundState
    reason: str | None = None  # the provider's words when it failed


class RefundRefused(Exception):
    """The provider refused the refund; `str(exc)` is its reason, safe to show the seller (no secret)."""


class RefundUnavailable(Exception):
    """The provider could not be asked (network, 5xx, rate limit); nothing is known to have been refunded."""


@runtime_checkable
class RefundingProvider(Protocol):
    """Optional: a provider that can give money back (core/refunds.py calls it, outside any transaction)."""

    async def refund(self, payment: Payment, amount_minor: int, idempotency_key: str, *,
                     reason: str | None = None) -> RefundAnswer:
        """Refund part or all of a payment. The same idempotency key never refunds twice.

        Raises RefundRefused (the provider said no) or RefundUnavailable (it could not be asked).
        """
        ...


@dataclass(frozen=True, slots=True)
class AccountProvider:
    """A provider instance and the account it acts for: a shop's own (its merchant id), or None for the
    deployment's `[payments] provider`."""

    provider: PaymentProvider
    account: str | None = None


class ProviderResolver(Protocol):
    """Which provider account serves a shop, and which one a recorded checkout was opened on
    (adapters/payments/accounts.ProviderDirectory)."""

    async def for_merchant(self, merchant_id: str) -> AccountProvider:
        """The shop's own account when it has one, else the deployment's provider."""
        ...

    async def for_account(self, provider: str, account: str | None) -> PaymentProvider | None:
        """The provider instance for this provider name and account; None when there is none (any more)."""
        ...

    async def own(self, merchant_id: str, provider: str) -> PaymentProvider | None:
        """The shop's own account of this provider; None when it has none."""
        ...
