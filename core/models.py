"""SQLModel tables: the one schema. Statuses are StrEnums; allowed transitions sit next to them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import configure_mappers
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use core.clock.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class LinkStatus(StrEnum):
    ACTIVE = "active"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    # Paid, then all of its money given back (core/refunds.py).
    REFUNDED = "refunded"
    # A reusable link that reached one of its limits (stock, max_payments, max_total): core/reusable.py.
    SOLD_OUT = "sold_out"


# The only allowed link transitions; every status change goes through LinkService._transition (core/links.py).
LINK_TRANSITIONS: dict[LinkStatus, frozenset[LinkStatus]] = {
    LinkStatus.ACTIVE: frozenset({LinkStatus.PAID, LinkStatus.EXPIRED, LinkStatus.CANCELLED, LinkStatus.SOLD_OUT}),
    LinkStatus.PAID: frozenset({LinkStatus.REFUNDED}),
    LinkStatus.EXPIRED: frozenset(),
    LinkStatus.CANCELLED: frozenset(),
    LinkStatus.REFUNDED: frozenset(),
    LinkStatus.SOLD_OUT: frozenset(),
}


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    # The provider charged the customer but the link was already paid (or no longer payable):
    # money to give back, never a second sale.
    REFUND_NEEDED = "refund_needed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# How a payment's status follows its refunded amount; applied only by core/refunds.py (payment_status_after).
PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.REFUND_NEEDED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.PARTIALLY_REFUNDED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.REFUNDED: frozenset(),
}


class RefundStatus(StrEnum):
    PENDING = "pending"  # asked of the provider, not confirmed yet: the money is reserved, not returned
    SUCCEEDED = "succeeded"  # the provider says the money went back
    FAILED = "failed"  # the provider refused (its reason is kept) or could not be asked


# Refund transitions; every change goes through RefundService._move (core/refunds.py), a guarded UPDATE.
REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}


class MemberRole(StrEnum):
    OWNER = "owner"
    STAFF = "staff"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class Merchant(SQLModel, table=True):
    __tablename__ = "merchant"
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    default_currency: str = Field(max_length=3)
    locale: str = Field(max_length=20)
    brand_color: str | None = Field(default=None, max_length=7)
    created_at: datetime = _ts()
    # Branding the customer sees (set from the dashboard or `/shop`); None: not set, defaults apply.
    timezone: str | None = Field(default=None, max_length=64)
    support_email: str | None = Field(default=None, max_length=320)
    support_phone: str | None = Field(default=None, max_length=32)
    # Short hash of the stored logo's PNG, so its URL changes with it (the bytes are in merchant_logo).
    logo_version: str | None = Field(default=None, max_length=16)


class Member(SQLModel, table=True):
    """A person on one chat platform acting for a merchant."""

    __tablename__ = "member"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id"),)
    id: int | None = Field(default=None, primary_key=True)
    merchant_id: str = Field(foreign_key="merchant.id", index=True, max_length=40)
    platform: str = Field(max_length=20)
    platform_user_id: str = Field(max_length=120)
    display_name: str = Field(default="", max_length=200)
    role: MemberRole = Field(default=MemberRole.STAFF, sa_type=String(10))
    created_at: datetime = _ts()
    # The catalog this person chose with /language (core.i18n); None: their platform's language.
    language: str | None = Field(default=None, max_length=16)


class Invite(SQLModel, table=True):
    __tablename__ = "invite"
    code: str = Field(primary_key=True, max_length=20)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    created_by_member_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(default=None)
    used_by_member_id: int | None = Field(default=None, foreign_key="member.id")


class ApiKey(SQLModel, table=True):
    """Only a SHA-256 of the secret is kept; the secret is shown once when created."""

    __tablename__ = "api_key"
    id: str = Field(primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", index=True, max_length=40)
    secret_hash: str = Field(unique=True, max_length=64)
    hint: str = Field(max_length=20)
    created_at: datetime = _ts()
    revoked_at: datetime | None = _ts(default=None)
    # "pl_test_" or "pl_live_": the secret's prefix, shown by `paylinks apikey list`.
    prefix: str = Field(max_length=16)
    # Recorded at most once a minute per key and process (adapters/web/api.py), so it is approximate.
    last_used_at: datetime | None = _ts(default=None)


class PaymentLink(SQLModel, table=True):
    __tablename__ = "payment_link"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        Index("ix_payment_link_merchant_created", "merchant_id", "created_at"),
        Index("ix_payment_link_status_expires", "status", "expires_at"),
    )
    id: str = Field(primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    description: str = Field(max_length=500)
    reference: str | None = Field(default=None, max_length=100, index=True)
    customer_name: str | None = Field(default=None, max_length=200)
    customer_email: str | None = Field(default=None, max_length=320)
    customer_phone: str | None = Field(default=None, max_length=32)
    status: LinkStatus = Field(default=LinkStatus.ACTIVE, sa_type=String(10))
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    paid_at: datetime | None = _ts(default=None)
    cancelled_at: datetime | None = _ts(default=None)
    meta: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    # Where the link was made in a chat, so alerts can edit or answer that message.
    origin_platform: str | None = Field(default=None, max_length=20)
    origin_address: str | None = Field(default=None, max_length=200)
    origin_message: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_by_member_id: int | None = Field(default=None, foreign_key="member.id")
    checkout_attempts: int = Field(default=0)
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)
    # False: made while the provider took pretend money (the sandbox, Stripe sk_test_ keys, PortOne sandbox).
    livemode: bool = Field(default=False)
    # The last reminder sent to the customer (/remind: at most one per 12 h), and the automatic one
    # ([links] remind_before_expiry: at most one per link). core/reminders.py.
    reminded_at: datetime | None = _ts(default=None)
    auto_reminded_at: datetime | None = _ts(default=None)
    # Reusable links (core/reusable.py): many payments until cancelled, expired or a limit is reached.
    # Limits (None: none): payments, units (quantity) and money collected, in minor units.
    reusable: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    max_payments: int | None = Field(default=None)
    stock: int | None = Field(default=None)
    max_total_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # Adjustable quantity on the pay page (None: always 1).
    quantity_min: int | None = Field(default=None)
    quantity_max: int | None = Field(default=None)
    # "fixed", or "customer_chooses" (donations): then min/max and up to four suggestions, in minor units.
    amount_mode: str = Field(default="fixed", sa_column=Column(String(20), nullable=False, server_default="fixed"))
    min_amount_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    max_amount_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    suggested_amounts: list[int] | None = Field(default=None, sa_type=JSON)
    # A split bill: amount_minor shared among this many shares (stock = ways); paid when all are in.
    split_ways: int | None = Field(default=None)
    # What was paid (counted in the payment's transaction) and what open checkouts hold (reservations).
    payments_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    units_sold: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    amount_collected_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    payments_reserved: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    units_reserved: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    amount_reserved_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class ReservationStatus(StrEnum):
    HELD = "held"  # a checkout is open for these units
    PAID = "paid"  # its payment came in: the units are sold
    RELEASED = "released"  # the checkout failed, expired or timed out: the units are free again


class LinkReservation(SQLModel, table=True):
    """Units of a reusable link held for one checkout, for [links] reservation_timeout (core/reusable.py)."""

    __tablename__ = "link_reservation"
    __table_args__ = (Index("ix_link_reservation_link_status", "link_id", "status"),)
    id: str = Field(primary_key=True, max_length=40)
    link_id: str = Field(foreign_key="payment_link.id", max_length=40)
    units: int
    # What the customer pays for them (quantity × unit, their chosen amount, a share), after any promo code.
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    discount_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    promo_code: str | None = Field(default=None, max_length=40)
    status: ReservationStatus = Field(default=ReservationStatus.HELD, sa_type=String(10))
    created_at: datetime = _ts()
    expires_at: datetime = _ts(index=True)
    # The provider's checkout (set once it is open), and the payment that settled it.
    provider: str | None = Field(default=None, max_length=20)
    checkout_ref: str | None = Field(default=None, max_length=200, index=True)
    account: str | None = Field(default=None, max_length=40)
    payment_id: str | None = Field(default=None, max_length=40)


class PromoCode(SQLModel, table=True):
    """A shop's discount code (core/promos.py): a percentage or an amount off, optionally limited.

    `times_redeemed` counts paid checkouts; `redemptions_held` the open ones, so that together they never
    pass `max_redemptions` (a guarded UPDATE when checkout starts).
    """

    __tablename__ = "promo_code"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    code: str = Field(max_length=40)
    # Hundredths of a percent (10% = 1000), or an amount in minor units of `currency`: exactly one is set.
    percent_off_bp: int | None = Field(default=None)
    amount_off_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    currency: str | None = Field(default=None, max_length=3)
    max_redemptions: int | None = Field(default=None)
    times_redeemed: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    redemptions_held: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    expires_at: datetime | None = _ts(default=None)
    # Only these links (None: every link of the shop).
    link_ids: list[str] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = _ts()


class ProviderAccount(SQLModel, table=True):
    """A shop's own payment provider account (`paylinks merchant set-provider`); shops without one pay
    through the deployment's `[payments] provider`. `secrets` is a JSON object of name -> value, encrypted
    as one (core/secrets.py); `version` grows with every change, so cached clients are rebuilt."""

    __tablename__ = "provider_account"
    merchant_id: str = Field(primary_key=True, foreign_key="merchant.id", max_length=40)
    provider: str = Field(max_length=20)
    environment: str | None = Field(default=None, max_length=20)
    country_code: str | None = Field(default=None, max_length=2)
    secrets: str = Field(sa_type=Text)
    version: int = Field(default=1)
    updated_at: datetime = _ts()


class Payment(SQLModel, table=True):
    __tablename__ = "payment"
    __table_args__ = (UniqueConstraint("provider", "provider_ref"),)
    id: str = Field(primary_key=True, max_length=40)
    link_id: str = Field(foreign_key="payment_link.id", index=True, max_length=40)
    provider: str = Field(max_length=20)
    provider_ref: str = Field(max_length=200)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    status: PaymentStatus = Field(sa_type=String(20))
    payer_name: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts()
    # Real money (true) or pretend (false), as the provider said; never the other mode's link (see links.py).
    livemode: bool = Field(default=False)
    # The account it was paid into: the shop's own (its merchant id), or None for the deployment's.
    account: str | None = Field(default=None, max_length=40)
    # Refunded so far (succeeded refunds only): money is never counted as returned before the provider says.
    amount_refunded_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # The provider's own id for the money taken, which its refunds name (Stripe payment_intent, PortOne
    # order_ref) when it differs from provider_ref; and PortOne's channel_key. None: asked when refunding.
    payment_ref: str | None = Field(default=None, max_length=200)
    channel: str | None = Field(default=None, max_length=100)


class Refund(SQLModel, table=True):
    """Money given back from one payment: asked (pending), then confirmed or refused by the provider."""

    __tablename__ = "refund"
    __table_args__ = (UniqueConstraint("merchant_id", "idempotency_key"),)
    id: str = Field(primary_key=True, max_length=40)
    payment_id: str = Field(foreign_key="payment.id", index=True, max_length=40)
    link_id: str = Field(foreign_key="payment_link.id", index=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    status: RefundStatus = Field(default=RefundStatus.PENDING, sa_type=String(10))
    reason: str | None = Field(default=None, max_length=500)
    # Who asked: "api", "cli", "auto" (a double payment), "chat:<platform>:<user id>" or
    # "dashboard:<member id>"; shown as requested_by_name.
    requested_by: str = Field(max_length=200)
    requested_by_name: str | None = Field(default=None, max_length=200)
    provider: str = Field(max_length=20)
    provider_ref: str | None = Field(default=None, max_length=200, index=True)
    # The provider's words when it refused (shown to the seller); never a secret.
    failure_reason: str | None = Field(default=None, max_length=500)
    idempotency_key: str = Field(max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    completed_at: datetime | None = _ts(default=None)


class LinkEventRecord(SQLModel, table=True):
    """A timeline event that cannot be derived from other rows (the pay page's first view, its count).

    `dedupe_key` makes an event stored once (link.opened: later views add to `count`).
    """

    __tablename__ = "link_events"
    __table_args__ = (Index("ix_link_events_link_at", "link_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    link_id: str = Field(foreign_key="payment_link.id", max_length=40)
    type: str = Field(max_length=40)
    at: datetime = _ts()
    count: int = Field(default=1)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    dedupe_key: str | None = Field(default=None, unique=True, max_length=255)


class CheckoutAttempt(SQLModel, table=True):
    """One press of Pay that opened a checkout at the provider, so it can be closed when the link closes."""

    __tablename__ = "checkout_attempt"
    __table_args__ = (UniqueConstraint("provider", "provider_ref"),)
    id: int | None = Field(default=None, primary_key=True)
    link_id: str = Field(foreign_key="payment_link.id", index=True, max_length=40)
    attempt: int
    provider: str = Field(max_length=20)
    provider_ref: str = Field(max_length=200)
    created_at: datetime = _ts()
    # When we closed it at the provider (our link was cancelled or expired); None: still open there.
    closed_at: datetime | None = _ts(default=None)
    # Reconciliation (a missed webhook): when to ask the provider next, and how often it was asked.
    next_check_at: datetime | None = _ts(default=None)
    checks: int = Field(default=0)
    # The provider account it was opened on: the shop's own (its merchant id), or None for the deployment's;
    # closing, reconciling and its return page use that same account.
    account: str | None = Field(default=None, max_length=40)


class ProviderEvent(SQLModel, table=True):
    """The webhook inbox: one row per provider event id, so a redelivery is recognised."""

    __tablename__ = "provider_event"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    event_id: str = Field(max_length=200)
    received_at: datetime = _ts()


class InboundDelivery(SQLModel, table=True):
    """A chat delivery (Telegram update, Slack request, Twilio message) that was handled: a redelivery of
    it is recognised by its primary key (core.deliveries)."""

    __tablename__ = "inbound_deliveries"
    __table_args__ = (Index("ix_inbound_deliveries_received_at", "received_at"),)
    platform: str = Field(primary_key=True, max_length=20)
    delivery_id: str = Field(primary_key=True, max_length=200)
    received_at: datetime = _ts()


class AlertSubscription(SQLModel, table=True):
    __tablename__ = "alert_subscription"
    __table_args__ = (UniqueConstraint("merchant_id", "platform", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    merchant_id: str = Field(foreign_key="merchant.id", index=True, max_length=40)
    platform: str = Field(max_length=20)
    address: str = Field(max_length=200)
    created_at: datetime = _ts()


class ChatTarget(SQLModel, table=True):
    """What paylinks knows about a chat address: when it last wrote to us, whether it can be reached."""

    __tablename__ = "chat_target"
    __table_args__ = (UniqueConstraint("platform", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=20)
    address: str = Field(max_length=200)
    last_inbound_at: datetime | None = _ts(default=None)
    disabled_at: datetime | None = _ts(default=None)
    disabled_reason: str | None = Field(default=None, max_length=500)
    # The language of the last person who wrote from this chat (their /language, else their platform's):
    # alerts sent here are written in it (core.i18n). None: the shop's language.
    language: str | None = Field(default=None, max_length=16)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),
                      Index("ix_outbox_external", "platform", "external_id"))
    id: int | None = Field(default=None, primary_key=True)
    merchant_id: str | None = Field(default=None, max_length=40)
    link_id: str | None = Field(default=None, max_length=40)
    platform: str = Field(max_length=20)
    address: str = Field(max_length=200)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    dedupe_key: str = Field(unique=True, max_length=255)
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, sa_type=String(10))
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _ts()
    lease_until: datetime | None = _ts(default=None)
    leased_by: str | None = Field(default=None, max_length=80)
    last_error: str | None = Field(default=None, max_length=1000)
    message_ref: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(default=None)
    # When an operator last requeued the row (`paylinks outbox retry`): its retry age counts from here.
    requeued_at: datetime | None = _ts(default=None)
    # The platform's id for what was sent (Twilio's MessageSid): its delivery status callbacks name it.
    external_id: str | None = Field(default=None, max_length=100)


class WebhookEndpoint(SQLModel, table=True):
    """A merchant's URL that hears of link and payment events (core/webhooks.py); signed per Standard Webhooks."""

    __tablename__ = "webhook_endpoint"
    id: str = Field(primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", index=True, max_length=40)
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=list, sa_type=JSON)
    # The whsec_ signing secret, encrypted (core/secretbox.py); shown to the owner once, when created.
    secret_sealed: str = Field(max_length=400)
    created_at: datetime = _ts()
    # The start of the current run of failed attempts (None: the last attempt succeeded).
    failing_since: datetime | None = _ts(default=None)
    disabled_at: datetime | None = _ts(default=None)
    disabled_reason: str | None = Field(default=None, max_length=500)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt to deliver a webhook event; the delivery is its outbox_message row."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (Index("ix_webhook_attempt_delivery", "delivery_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field()
    endpoint_id: str = Field(max_length=40)
    attempted_at: datetime = _ts()
    status_code: int | None = Field(default=None)  # None: no HTTP answer (timeout, refused, blocked)
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int = Field(default=0)


class CustomerContact(SQLModel, table=True):
    """A customer's email (or phone) as one shop knows it: the unsubscribe token its messages carry
    (`/u/{token}`, RFC 8058 one-click) and whether they opted out of that shop's messages."""

    __tablename__ = "customer_contact"
    __table_args__ = (UniqueConstraint("merchant_id", "channel", "address"),)
    token: str = Field(primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    channel: str = Field(max_length=20)
    address: str = Field(max_length=320)
    created_at: datetime = _ts()
    opted_out_at: datetime | None = _ts(default=None)


class ConsoleMessage(SQLModel, table=True):
    """A message sent to a console chat (adapters/console.py); a running `paylinks chat` prints it."""

    __tablename__ = "console_message"
    __table_args__ = (Index("ix_console_message_unshown", "address", "shown_at"),)
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # Reply.to_dict()
    edit_of: int | None = Field(default=None)  # the console_message id this one replaces (an edit)
    created_at: datetime = _ts()
    shown_at: datetime | None = _ts(default=None)


class ChatQuestion(SQLModel, table=True):
    """A question the bot asked one person in one chat (which amount a /charge meant), until answered.

    In the database, not in memory, so the answer may come after a restart or reach another process.
    """

    __tablename__ = "chat_question"
    __table_args__ = (Index("ix_chat_question_asker", "platform", "address", "user_id"),)
    id: str = Field(primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    platform: str = Field(max_length=20)
    address: str = Field(max_length=200)
    user_id: str = Field(max_length=120)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # {"readings": [Charge.to_dict()]}
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    answered_at: datetime | None = _ts(default=None)


class MerchantLogo(SQLModel, table=True):
    """A shop's logo, re-encoded as PNG by the dashboard (never the uploaded bytes themselves)."""

    __tablename__ = "merchant_logo"
    merchant_id: str = Field(foreign_key="merchant.id", primary_key=True, max_length=40)
    png: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = _ts()


class DashboardSignin(SQLModel, table=True):
    """A one-time sign-in link for the dashboard; only a SHA-256 of its token is kept."""

    __tablename__ = "dashboard_signin"
    token_hash: str = Field(primary_key=True, max_length=64)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    role: MemberRole = Field(sa_type=String(10))
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(default=None)


class DashboardSession(SQLModel, table=True):
    """A signed-in browser. In the database so every process sees it; the cookie holds the secret whose
    SHA-256 is the key."""

    __tablename__ = "dashboard_session"
    id_hash: str = Field(primary_key=True, max_length=64)
    merchant_id: str = Field(foreign_key="merchant.id", index=True, max_length=40)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    role: MemberRole = Field(sa_type=String(10))
    csrf_token: str = Field(max_length=64)
    created_at: datetime = _ts()
    # Refreshed at most once a minute; older than the idle timeout means signed out.
    last_seen_at: datetime = _ts()
    client_address: str | None = Field(default=None, max_length=64)


class AuditEvent(SQLModel, table=True):
    """What changed money or access, by whom, when and from where. Only ever inserted."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_merchant_at", "merchant_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    at: datetime = _ts()
    action: str = Field(max_length=40)
    actor: str = Field(max_length=200)  # "Alice (telegram)", "operator (CLI)", "API key key_…"
    member_id: int | None = Field(default=None)
    platform: str | None = Field(default=None, max_length=20)  # "web", "cli", "api", a chat platform
    address: str | None = Field(default=None, max_length=200)  # client IP or chat address
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Invoice(SQLModel, table=True):
    """A link's invoice: its number (unique per shop, gap-free per year) and, for a link made from line
    items, the items and totals (core/line_items.py; the link's amount_minor is the total)."""

    __tablename__ = "invoice"
    __table_args__ = (UniqueConstraint("merchant_id", "number"),)
    link_id: str = Field(primary_key=True, foreign_key="payment_link.id", max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", max_length=40)
    number: str = Field(max_length=40)
    year: int
    seq: int
    currency: str = Field(max_length=3)
    # {"items": [...], "discount": {...} | None}; None: a link with one amount, numbered when paid.
    line_items: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    subtotal_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    discount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    tax_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    total_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _ts()


class InvoiceCounter(SQLModel, table=True):
    """The last invoice number a shop used in a year; bumped in the transaction that uses the next one,
    so a rolled-back link gives its number back (no gaps) and the row lock orders concurrent ones."""

    __tablename__ = "invoice_counter"
    merchant_id: str = Field(primary_key=True, foreign_key="merchant.id", max_length=40)
    year: int = Field(primary_key=True)
    last_seq: int = Field(default=0)


class InvoiceSettings(SQLModel, table=True):
    """What a shop's invoices say beyond its name: number prefix and postal address (`/shop`)."""

    __tablename__ = "invoice_settings"
    merchant_id: str = Field(primary_key=True, foreign_key="merchant.id", max_length=40)
    prefix: str = Field(default="INV", max_length=12)
    address: str | None = Field(default=None, max_length=500)


class SeriesStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class PaymentSeries(SQLModel, table=True):
    """A recurring charge: every `interval` `every` (week/month/year) from `start_at`, in the shop's time
    zone, a link made from `template` (core/series.py). `made` counts the periods done."""

    __tablename__ = "payment_series"
    __table_args__ = (Index("ix_payment_series_status_next", "status", "next_at"),)
    id: str = Field(primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchant.id", index=True, max_length=40)
    every: str = Field(max_length=5)
    interval: int = Field(default=1)
    count: int | None = Field(default=None)
    until: str | None = Field(default=None, max_length=10)  # YYYY-MM-DD, the last day a period may start
    start_at: datetime = _ts()
    timezone: str = Field(max_length=64)
    template: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: SeriesStatus = Field(default=SeriesStatus.ACTIVE, sa_type=String(10))
    made: int = Field(default=0)
    next_at: datetime | None = _ts(default=None)
    created_at: datetime = _ts()
    cancelled_at: datetime | None = _ts(default=None)
    origin_platform: str | None = Field(default=None, max_length=20)
    origin_address: str | None = Field(default=None, max_length=200)
    created_by_member_id: int | None = Field(default=None, foreign_key="member.id")


class SeriesLink(SQLModel, table=True):
    """Which link a series made for which period: the primary key makes each period's link exactly once."""

    __tablename__ = "series_link"
    series_id: str = Field(primary_key=True, foreign_key="payment_series.id", max_length=40)
    period: int = Field(primary_key=True)
    link_id: str = Field(foreign_key="payment_link.id", max_length=40)
    due_at: datetime = _ts()


# ---------------------------------------------------------------- Slack OAuth (multi-workspace installs)
# slack_sdk's AsyncSQLAlchemyInstallationStore / AsyncSQLAlchemyOAuthStateStore read and write these
# tables. They are declared here, column for column as slack_sdk builds them (naive UTC DateTime, its
# own indexes), so Alembic creates them with the rest of the schema and autogenerate leaves them alone;
# tests/adapters/test_slack_oauth.py fails if slack_sdk's layout ever drifts from this one.

# Token columns are wider than slack_sdk's String(200): they hold Fernet ciphertext (core/secrets.py).
SLACK_TOKEN_LENGTH = 1000
SLACK_TOKEN_COLUMNS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")

SLACK_INSTALLATIONS = Table(
    "slack_installations",
    SQLModel.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(SLACK_TOKEN_LENGTH)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(SLACK_TOKEN_LENGTH)),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", String(SLACK_TOKEN_LENGTH)),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", String(SLACK_TOKEN_LENGTH)),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False, default=func.now()),
    Index("slack_installations_idx", "client_id", "enterprise_id", "team_id", "user_id", "installed_at"),
)

SLACK_BOTS = Table(
    "slack_bots",
    SQLModel.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(SLACK_TOKEN_LENGTH)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(SLACK_TOKEN_LENGTH)),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, default=False, nullable=False),
    Column("installed_at", DateTime, nullable=False, default=func.now()),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

SLACK_OAUTH_STATES = Table(
    "slack_oauth_states",
    SQLModel.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)


metadata = SQLModel.metadata

_M = TypeVar("_M", bound=SQLModel)
# Per model: its field names in order, when construct() may build it directly (else None).
_DIRECT: dict[type[Any], tuple[str, ...] | None] = {}


def construct(model: type[_M], values: Mapping[str, Any]) -> _M:
    """`model.model_construct(**values)` (no validation: a row of our own schema) for a mapping with a value for
    every field, in field order, as a full row of the model's table is: the same object, without pydantic's
    search of every field for aliases and defaults (~2 µs instead of ~10 µs for a link; the pay page, the API
    and every link read build one). Anything else goes through model_construct itself."""
    names = _DIRECT.get(model, ())
    if names == ():
        names = _DIRECT[model] = _direct_fields(model)
    if names is None or tuple(values) != names:
        return model.model_construct(**values)
    obj: _M = model.__new__(model)
    # What model_construct sets when every field is given (pydantic.main.BaseModel.model_construct).
    object.__setattr__(obj, "__dict__", dict(values))
    object.__setattr__(obj, "__pydantic_fields_set__", set(names))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def values_of(obj: SQLModel) -> Mapping[str, Any]:
    """A model's field values as a mapping, read without SQLAlchemy's attribute descriptors (each read of a
    table model's attribute is ~0.2 µs of Python; the link JSON reads ~40): its __dict__, which holds every
    field of a model made by construct, model_construct or __init__. Read only."""
    kind = type(obj)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = frozenset(kind.__pydantic_fields__)
    values = obj.__dict__
    if values.keys() >= names:
        return values
    return {name: getattr(obj, name) for name in names}


def _direct_fields(model: type[Any]) -> tuple[str, ...] | None:
    fields = model.__pydantic_fields__
    if (model.__pydantic_post_init__ or model.model_config.get("extra") == "allow" or model.__pydantic_root_model__
            or model.__private_attributes__
            or any(f.alias is not None or f.validation_alias is not None for f in fields.values())):
        return None
    return tuple(fields)

# Rows are turned into models with model_construct (fast, no validation), which skips the lazy mapper
# set-up a first __init__ would trigger; do it once here so attribute access works in any process.
configure_mappers()
