"""The transactional outbox: alerts are written with the link change, and delivered later.

`Outbox` is a LinkService hook: inside the transaction that pays, expires, cancels (or creates) a link it
writes one row per target — edit the link message, answer in the chat where the link was made, every
chat subscribed with /alerts on, the customer's receipt on WhatsApp — so a link is never paid without
its alerts. `OutboxStore` is what dispatchers use: claim due rows under a lease, record outcomes
(sent / retry / dead / target disabled / address moved) in short Core transactions, and the operator's
list and requeue. `decide` turns a send's result into an outcome; it is pure, so it is tested alone.

On PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so several workers never take one row twice; on
SQLite the claim is one UPDATE inside BEGIN IMMEDIATE. Either way a worker that dies leaves only a
lease behind, and its rows become due again when the lease lapses.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core import i18n
from core.backoff import Random, backoff_delay
from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.links import LinkEvent, LinkEventKind
from core.models import (
    AlertSubscription,
    ChatTarget,
    Member,
    Merchant,
    OutboxMessage,
    OutboxStatus,
    PaymentLink,
)
from core.outbox_texts import (
    AlertFacts,
    alert_reply,
    customer_link_reply,
    customer_refund_reply,
    customer_reminder_reply,
    customer_undeliverable_notice,
    delivery_followup,
    edited_link_reply,
    receipt_reply,
    target_disabled_notice,
)
from core.ports import AddressMoved, AddressRules, Dropped, MessageRef, Permanent, Reply, RetryLater, SendError
from core.sql import insert_ignore, table

log = logging.getLogger("paylinks.outbox")

OUTBOX = table(OutboxMessage)
TARGETS = table(ChatTarget)
SUBSCRIPTIONS = table(AlertSubscription)
MERCHANTS = table(Merchant)
MEMBERS = table(Member)
LINKS = table(PaymentLink)

class Role(StrEnum):
    ALERT = "alert"  # an answer in a seller's chat: the phone buzzes
    EDIT = "edit"  # the /charge message itself, edited to show the new status
    RECEIPT = "receipt"  # to the customer, after paying
    CUSTOMER_LINK = "customer_link"  # the payment link, sent to the customer when it is made
    REMINDER = "reminder"  # the payment link again, to a customer who has not paid (core/reminders.py)
    REFUND = "refund"  # to the customer, when a refund of their payment went through


# Rows to customers: their failures are told to the seller, and their delivery reports too.
CUSTOMER_ROLES = (Role.RECEIPT.value, Role.CUSTOMER_LINK.value, Role.REMINDER.value, Role.REFUND.value)


def is_customer_kind(kind: str) -> bool:
    return kind.rpartition(".")[2] in CUSTOMER_ROLES


def kind_of(event: str, role: Role) -> str:
    return f"{event}.{role.value}"


# Paid alerts to one chat may be merged into a digest when that chat has a backlog.
DIGEST_KIND = kind_of(LinkEventKind.PAID.value, Role.ALERT)
NOTICE_KIND = "notice.undeliverable"
# The seller hears where their link went, and then whether it arrived (email sent, SMS delivered).
FOLLOWUP_KIND = "notice.delivery"
REFUND_EVENT = "payment.refunded"
REMINDER_EVENT = "link.reminder"
REMINDER_KIND = f"{REMINDER_EVENT}.reminder"

# Which events reach chats subscribed with /alerts on (the origin chat hears of all three).
SUBSCRIBER_EVENTS = frozenset({LinkEventKind.PAID, LinkEventKind.EXPIRED, LinkEventKind.CANCELLED})

ACTION_SEND = "send"
ACTION_EDIT = "edit"


@dataclass(frozen=True, slots=True)
class Target:
    platform: str
    address: str


def dedupe_key(*parts: str) -> str:
    key = ":".join(parts)
    if len(key) <= 255:
        return key
    return key[:200] + "#" + hashlib.sha256(key.encode()).hexdigest()[:40]


def payload(action: str, reply: Reply, *, event: str, facts: AlertFacts | None = None,
            ref: MessageRef | None = None, **extra: Any) -> dict[str, Any]:
    """A row's payload: the platform-neutral Reply plus what to do with it."""
    data: dict[str, Any] = {"action": action, "reply": reply.to_dict(), "event": event}
    if ref is not None:
        data["ref"] = ref.to_dict()
    if facts is not None:
        data["facts"] = facts.to_dict()
    data.update(extra)
    return data


# Statements on the payment path are built once: constructing them per call cost more than running them.
_INSERT = {
    "postgresql": postgresql.insert(OUTBOX).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(OUTBOX).on_conflict_do_nothing(),
}
_MERCHANT_AND_SUBSCRIPTIONS = (
    select(MERCHANTS.c.name, MERCHANTS.c.locale, MERCHANTS.c.timezone, SUBSCRIPTIONS.c.platform,
           SUBSCRIPTIONS.c.address)
    .select_from(MERCHANTS.outerjoin(SUBSCRIPTIONS, SUBSCRIPTIONS.c.merchant_id == MERCHANTS.c.id))
    .where(MERCHANTS.c.id == bindparam("merchant_id"))
    .order_by(SUBSCRIPTIONS.c.id)
)
_DISABLED = select(TARGETS.c.platform, TARGETS.c.address, TARGETS.c.disabled_at, TARGETS.c.last_inbound_at).where(
    TARGETS.c.disabled_at.is_not(None), TARGETS.c.address.in_(bindparam("addresses", expanding=True))
)
_TARGET_FACTS = select(TARGETS.c.platform, TARGETS.c.address, TARGETS.c.disabled_at, TARGETS.c.last_inbound_at,
                       TARGETS.c.language).where(TARGETS.c.address.in_(bindparam("addresses", expanding=True)))


async def insert_rows(conn: DbConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows, skipping any whose dedupe key exists (an event seen twice writes once)."""
    if not rows:
        return
    statement = _INSERT["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    # executemany: SQLAlchemy batches it into multi-row INSERTs within the driver's parameter limits.
    await conn.execute(statement, list(rows))


def new_row(
    *, target: Target, kind: str, body: dict[str, Any], key: str, now: datetime,
    merchant_id: str | None, link_id: str | None,
) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id, "link_id": link_id, "platform": target.platform,
        "address": target.address, "kind": kind, "payload": body, "dedupe_key": key,
        "status": OutboxStatus.PENDING.value, "attempts": 0, "next_attempt_at": now, "lease_until": None,
        "leased_by": None, "last_error": None, "created_at": now, "sent_at": None,
        # message_ref is left out: a Python None in a JSON column would be stored as JSON 'null'.
    }


async def disabled_targets(conn: DbConnection, targets: Iterable[Target]) -> set[Target]:
    """Targets marked unreachable that have not written to us since (a new message re-enables them)."""
    wanted = set(targets)
    if not wanted:
        return set()
    rows = (await conn.execute(_DISABLED, {"addresses": sorted({t.address for t in wanted})})).all()
    return {
        Target(r.platform, r.address)
        for r in rows
        if Target(r.platform, r.address) in wanted
        and (r.last_inbound_at is None or r.last_inbound_at < r.disabled_at)
    }


async def target_facts(conn: DbConnection, targets: Iterable[Target]) -> tuple[set[Target], dict[Target, str]]:
    """disabled_targets(), and the language each known chat reads (chat_target.language), in one query."""
    wanted = set(targets)
    if not wanted:
        return set(), {}
    rows = (await conn.execute(_TARGET_FACTS, {"addresses": sorted({t.address for t in wanted})})).all()
    skip: set[Target] = set()
    languages: dict[Target, str] = {}
    for r in rows:
        target = Target(r.platform, r.address)
        if target not in wanted:
            continue
        if r.disabled_at is not None and (r.last_inbound_at is None or r.last_inbound_at < r.disabled_at):
            skip.add(target)
        if r.language:
            languages[target] = r.language
    return skip, languages


def reader_language(target: Target, languages: Mapping[Target, str], shop_language: str, *,
                    customer: bool) -> str:
    """Who reads a row: the chat's own language (the last person who wrote from it), else for a customer
    the language of their phone number's country, else the shop's."""
    known = languages.get(target)
    if known:
        return known
    if customer:
        return i18n.language_for_phone(target.address) or shop_language
    return shop_language


# ---------------------------------------------------------------- writing rows with the link change


async def _shop_fields(conn: DbConnection, merchant_id: str) -> dict[str, Any]:
    """AlertFacts' shop fields (its name, locale and clock) for a message about one of its links."""
    shop = (await conn.execute(select(MERCHANTS.c.name, MERCHANTS.c.locale, MERCHANTS.c.timezone)
                               .where(MERCHANTS.c.id == merchant_id))).first()
    if shop is None:
        return {"locale": "en", "merchant_name": "", "timezone": None}
    return {"locale": shop.locale, "merchant_name": shop.name, "timezone": shop.timezone}


class Outbox:
    """The LinkService hook that writes outbox rows, and the bell that wakes dispatchers in this process."""

    def __init__(
        self, *, link_url: Callable[[str], str], customer_platform: str | None = None,
        address_rules: Mapping[str, AddressRules] | None = None, customer_channels: Sequence[str] = (),
        fallback_channels: Collection[str] = (),
    ) -> None:
        self.link_url = link_url
        # The platform that sends receipts and links to customers (its plug-in turns a link's contact
        # into an address); None: customers hear nothing from us in chat.
        self.customer_platform = customer_platform
        # More platforms that reach customers as well, each at its own contact (email: the link's email).
        self.customer_channels = tuple(customer_channels)
        # Of those, the ones used by default only when the customer platform gives no address (SMS when
        # WhatsApp is off); asked for by name (`via sms`, notify ["sms"]) they are used anyway.
        self.fallback_channels = frozenset(fallback_channels)
        self.address_rules: Mapping[str, AddressRules] = address_rules or {}
        self._wakers: list[Callable[[], None]] = []

    def add_waker(self, waker: Callable[[], None]) -> None:
        self._wakers.append(waker)

    def remove_waker(self, waker: Callable[[], None]) -> None:
        if waker in self._wakers:
            self._wakers.remove(waker)

    def wake(self) -> None:
        for waker in list(self._wakers):
            waker()

    async def __call__(self, conn: DbConnection, event: LinkEvent) -> None:
        rows = await self.rows_for(conn, event)
        if rows:
            await insert_rows(conn, rows)
            # The rows are not committed yet; the dispatcher re-checks for a moment after a wake.
            self.wake()

    def can_resend(self, link: PaymentLink) -> bool:
        """Whether the link can be sent to its customer (a customer channel and a contact)."""
        return bool(self.customer_targets(link))

    async def resend(self, db: Database, link: PaymentLink, now: datetime) -> bool:
        """Send the payment link to its customer again (the dashboard's Resend); False: no address."""
        targets = self.customer_targets(link)
        if not targets:
            return False
        async with db.read() as conn:
            found = (await conn.execute(_MERCHANT_AND_SUBSCRIPTIONS, {"merchant_id": link.merchant_id})).all()
        merchant = found[0] if found else None
        facts = AlertFacts(
            event=LinkEventKind.CREATED.value, link_id=link.id, amount_minor=link.amount_minor,
            currency=link.currency, description=link.description, at=now,
            locale=merchant.locale if merchant else "en", merchant_name=merchant.name if merchant else "",
            reference=link.reference, payer_name=None, url=self.link_url(link.id),
            timezone=merchant.timezone if merchant else None,
        )
        link_info = {"id": link.id, "url": facts.url, "amount_text": facts.amount_text,
                     "description": link.description, "merchant_name": facts.merchant_name}
        async with db.read() as conn:
            _skip, languages = await target_facts(conn, targets)
        rows = []
        for target in targets:
            language = reader_language(target, languages, facts.shop_language, customer=True)
            rows.append(new_row(target=target, kind=kind_of(facts.event, Role.CUSTOMER_LINK),
                                body=payload(ACTION_SEND, customer_link_reply(facts, language), event=facts.event,
                                             facts=facts, link=link_info, language=language),
                                key=dedupe_key("link.resent", link.id, now.isoformat(), target.platform,
                                               target.address),
                                now=now, merchant_id=link.merchant_id, link_id=link.id))
        async with db.write() as conn:
            await insert_rows(conn, rows)
        self.wake()
        return True

    def customer_targets(self, link: Any, notify: Collection[str] | None = None) -> list[Target]:
        """Where the link's customer can be reached: the chat platform by phone, email by address, SMS by
        phone when the chat platform cannot reach them. `notify` names the channels (None: the default)."""
        found: list[Target] = []
        platforms = ([self.customer_platform] if self.customer_platform else []) + list(self.customer_channels)
        for platform in platforms:
            rules = self.address_rules.get(platform)
            if rules is None or (notify is not None and platform not in notify):
                continue
            by_email = getattr(rules, "customer_contact", "phone") == "email"
            address = rules.customer_address(link.customer_email if by_email else link.customer_phone)
            if address:
                found.append(Target(platform, address))
        if notify is None and any(t.platform == self.customer_platform for t in found):
            found = [t for t in found if t.platform not in self.fallback_channels]
        return found

    async def refund_rows(self, conn: DbConnection, link: PaymentLink, payment: Any, refund: Any) -> None:
        """A RefundService hook: the customer hears that their money is on its way back (email, SMS;
        WhatsApp would need an approved template outside its 24 h window, so it is left to the seller)."""
        customers = [t for t in self.customer_targets(link) if t.platform != self.customer_platform]
        if not customers:
            return
        at = refund.completed_at or refund.created_at
        facts = AlertFacts(
            event=REFUND_EVENT, link_id=link.id, amount_minor=refund.amount_minor, currency=refund.currency,
            description=link.description, at=at, reference=link.reference, payer_name=payment.payer_name, url=None,
            livemode=bool(payment.livemode), **await _shop_fields(conn, link.merchant_id),
        )
        await self._tell_customers(
            conn, link, customers, facts, kind_of(REFUND_EVENT, Role.REFUND), customer_refund_reply,
            lambda t: dedupe_key(REFUND_EVENT, refund.id, Role.REFUND.value, t.platform, t.address))

    async def rows_for(self, conn: DbConnection, event: LinkEvent) -> list[dict[str, Any]]:
        link = event.link
        if event.kind is LinkEventKind.REFUNDED:
            return []  # core/refunds.py writes the refund's own alert and edit in this transaction
        if event.kind in (LinkEventKind.PAYMENT_RECEIVED, LinkEventKind.SOLD_OUT):
            from core.sales_alerts import sales_rows  # links that sell many times

            return await sales_rows(self, conn, event)
        if event.kind is LinkEventKind.CREATED:
            customers = self.customer_targets(link, event.notify) if event.notify_customer else []
        else:
            customers = self.customer_targets(link)
        if event.kind is LinkEventKind.CREATED and not customers:
            return []  # most links: nothing to send, and no query on the link-creation path
        found = (await conn.execute(_MERCHANT_AND_SUBSCRIPTIONS, {"merchant_id": link.merchant_id})).all()
        merchant = found[0] if found else None
        subscriptions = [Target(r.platform, r.address) for r in found if r.platform is not None]
        facts = AlertFacts(
            event=event.kind.value, link_id=link.id, amount_minor=link.amount_minor, currency=link.currency,
            description=link.description, at=event.at, locale=merchant.locale if merchant else "en",
            merchant_name=merchant.name if merchant else "", reference=link.reference,
            payer_name=event.payment.payer_name if event.payment else None, url=self.link_url(link.id),
            livemode=bool(event.payment.livemode if event.payment else link.livemode),
            timezone=merchant.timezone if merchant else None,
        )
        # Each row is written in its reader's language: (target, role, text in a language -> payload).
        planned: list[tuple[Target, Role, Callable[[str], dict[str, Any]]]] = []
        if event.kind is LinkEventKind.CREATED:
            link_info = {"id": link.id, "url": facts.url, "amount_text": facts.amount_text,
                         "description": link.description, "merchant_name": facts.merchant_name}
            for customer in customers:
                planned.append((customer, Role.CUSTOMER_LINK, lambda language: payload(
                    ACTION_SEND, customer_link_reply(facts, language), event=facts.event, facts=facts, link=link_info,
                    language=language)))
        else:
            planned.extend(self._seller_targets(event, facts, subscriptions))
            if event.kind is LinkEventKind.PAID:
                for customer in customers:
                    planned.append((customer, Role.RECEIPT, lambda language: payload(
                        ACTION_SEND, receipt_reply(facts, language), event=facts.event, facts=facts,
                        language=language)))
        if not planned:
            return []
        skip, languages = await target_facts(conn, (t for t, _, _ in planned))
        customer_roles = (Role.CUSTOMER_LINK, Role.RECEIPT)
        return [
            new_row(target=target, kind=kind_of(facts.event, role),
                    body=make(reader_language(target, languages, facts.shop_language, customer=role in customer_roles)),
                    key=dedupe_key(facts.event, link.id, role.value, target.platform, target.address),
                    now=event.at, merchant_id=link.merchant_id, link_id=link.id)
            for target, role, make in planned
            if target not in skip
        ]

    async def reminder_rows(self, conn: DbConnection, link: PaymentLink, at: datetime) -> list[dict[str, Any]]:
        """One reminder per channel the customer has, written in the caller's transaction; [] when none."""
        customers = self.customer_targets(link)
        if not customers:
            return []
        facts = AlertFacts(
            event=REMINDER_EVENT, link_id=link.id, amount_minor=link.amount_minor, currency=link.currency,
            description=link.description, at=at, reference=link.reference, url=self.link_url(link.id),
            **await _shop_fields(conn, link.merchant_id),
        )
        return await self._tell_customers(
            conn, link, customers, facts, REMINDER_KIND, customer_reminder_reply,
            lambda t: dedupe_key(REMINDER_EVENT, link.id, at.isoformat(), t.platform, t.address))

    async def _tell_customers(self, conn: DbConnection, link: PaymentLink, customers: Sequence[Target],
                              facts: AlertFacts, kind: str, reply: Callable[[AlertFacts, str], Reply],
                              key: Callable[[Target], str]) -> list[dict[str, Any]]:
        """One message per customer channel (refund notices, reminders), each in its reader's language,
        written in the caller's transaction."""
        skip, languages = await target_facts(conn, customers)
        rows = []
        for target in customers:
            if target in skip:
                continue
            language = reader_language(target, languages, facts.shop_language, customer=True)
            rows.append(new_row(
                target=target, kind=kind,
                body=payload(ACTION_SEND, reply(facts, language), event=facts.event, facts=facts, language=language),
                key=key(target), now=facts.at, merchant_id=link.merchant_id, link_id=link.id))
        await insert_rows(conn, rows)
        if rows:
            self.wake()
        return rows

    def _seller_targets(
        self, event: LinkEvent, facts: AlertFacts, subscriptions: Sequence[Target]
    ) -> list[tuple[Target, Role, Callable[[str], dict[str, Any]]]]:
        link = event.link
        planned: list[tuple[Target, Role, Callable[[str], dict[str, Any]]]] = []
        answered: set[Target] = set()

        def alert(language: str) -> dict[str, Any]:
            return payload(ACTION_SEND, alert_reply(facts, language), event=facts.event, facts=facts,
                           language=language)

        if link.origin_platform and link.origin_address:
            origin = Target(link.origin_platform, link.origin_address)
            if link.origin_message:
                ref = MessageRef.from_dict(link.origin_message)
                planned.append((Target(ref.platform, ref.address), Role.EDIT, lambda language: payload(
                    ACTION_EDIT, edited_link_reply(facts, language), event=facts.event, facts=facts, ref=ref,
                    language=language)))
            # A cancel is usually typed in that very chat, which already got an answer: the edit is enough.
            if not (event.kind is LinkEventKind.CANCELLED and link.origin_message):
                planned.append((origin, Role.ALERT, alert))
            answered.add(origin)
        if event.kind in SUBSCRIBER_EVENTS:
            for target in subscriptions:
                if target not in answered:
                    answered.add(target)
                    planned.append((target, Role.ALERT, alert))
        return planned


# ---------------------------------------------------------------- outcomes


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"
    DISABLED = "disabled"  # dead, and the target is unreachable: stop its other rows, tell the seller
    MOVED = "moved"  # the chat has a new address: move everything there and retry at once


@dataclass(frozen=True, slots=True)
class Outcome:
    row: OutboxMessage
    result: Result
    attempts: int
    at: datetime
    next_attempt_at: datetime | None = None
    error: str | None = None
    ref: MessageRef | None = None
    new_address: str | None = None
    # The error says another channel may reach this customer (WhatsApp outside its window: SMS).
    other_channel: bool = False


def error_text(error: BaseException) -> str:
    """What last_error keeps: classified errors carry an adapter-written message (never a secret);
    anything else only its type name, since an SDK's message may quote a URL with a token in it."""
    if isinstance(error, SendError):
        message = str(error).strip()
        return f"{type(error).__name__}: {message}"[:500] if message else type(error).__name__
    if isinstance(error, TimeoutError):
        return "Transient: timed out"
    return f"unexpected {type(error).__name__}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=24)
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 600.0


@dataclass(frozen=True, slots=True)
class RetryPolicies:
    """The retry policy per kind of message: the first prefix of `by_kind` that a row's kind starts with
    wins (merchant webhooks, "webhook.", retry for days), else `default` (chat alerts: [outbox] max_age)."""

    default: RetryPolicy = field(default_factory=RetryPolicy)
    by_kind: tuple[tuple[str, RetryPolicy], ...] = ()

    def for_kind(self, kind: str) -> RetryPolicy:
        for prefix, policy in self.by_kind:
            if kind.startswith(prefix):
                return policy
        return self.default


def decide(
    row: OutboxMessage, error: BaseException | None, *, now: datetime, policy: RetryPolicy,
    ref: MessageRef | None = None, rand: Random | None = None,
) -> Outcome:
    """The outcome of one attempt to send `row` (`error` None: it was delivered)."""
    attempts = row.attempts + 1
    if error is None:
        return Outcome(row, Result.SENT, attempts, now, ref=ref)
    text = error_text(error)
    # A requeued row gets its age budget afresh from the requeue; created_at stays the row's birth.
    deadline = (row.requeued_at or row.created_at) + policy.max_age
    if isinstance(error, Permanent):
        # A failed edit says nothing about the chat (the message may be gone or too old to edit).
        if row.payload.get("action") == ACTION_EDIT or isinstance(error, Dropped):
            return Outcome(row, Result.DEAD, attempts, now, error=text)
        return Outcome(row, Result.DISABLED, attempts, now, error=text,
                       other_channel=bool(getattr(error, "other_channel", False)))
    if isinstance(error, AddressMoved):
        if attempts >= policy.max_attempts or now >= deadline:
            return Outcome(row, Result.DEAD, attempts, now, error=text)
        return Outcome(row, Result.MOVED, attempts, now, next_attempt_at=now, error=text,
                       new_address=error.new_address)
    if isinstance(error, RetryLater):
        # Honoured exactly; a rate limit is no fault of the message, so only max_age ends it.
        retry_at = now + timedelta(seconds=max(0.0, error.after_s))
        if retry_at > deadline:
            return Outcome(row, Result.DEAD, attempts, now, error=text)
        return Outcome(row, Result.RETRY, attempts, now, next_attempt_at=retry_at, error=text)
    if attempts >= policy.max_attempts or now >= deadline:
        return Outcome(row, Result.DEAD, attempts, now, error=text)
    kwargs = {"rand": rand} if rand is not None else {}
    delay = backoff_delay(attempts, base_s=policy.backoff_base_s, cap_s=policy.backoff_cap_s, **kwargs)
    return Outcome(row, Result.RETRY, attempts, now, next_attempt_at=now + timedelta(seconds=delay), error=text)


# ---------------------------------------------------------------- the store dispatchers use


def _row(mapping: Any) -> OutboxMessage:
    # model_construct: no validation for rows that come from our own schema (much faster on hot paths).
    return OutboxMessage.model_construct(**mapping)


@dataclass
class CompletionReport:
    """What `complete` did beyond marking rows (the dispatcher adjusts its local state from it)."""

    disabled: list[Target] = field(default_factory=list)
    moved: list[tuple[Target, Target]] = field(default_factory=list)
    notices: int = 0


# Platforms whose rows for one target and link go out strictly in order (merchant webhooks): a row waits
# while an older one for the same endpoint and link is still pending (being retried, or leased).
ORDERED_PLATFORMS = ("webhook",)
_OLDER = OUTBOX.alias("older")
_EARLIER_PENDING = (
    select(_OLDER.c.id)
    .where(_OLDER.c.platform == OUTBOX.c.platform, _OLDER.c.address == OUTBOX.c.address,
           _OLDER.c.link_id == OUTBOX.c.link_id, _OLDER.c.status == OutboxStatus.PENDING.value,
           _OLDER.c.id < OUTBOX.c.id)
    .correlate(OUTBOX)
    .exists()
)


class OutboxStore:
    def __init__(
        self, db: Database, *, clock: Clock = utcnow, address_rules: Mapping[str, AddressRules] | None = None,
        fallbacks: Mapping[str, str] | None = None,
    ) -> None:
        # Per platform: where members are reachable directly (for notices about undeliverable targets).
        self.address_rules: Mapping[str, AddressRules] = address_rules or {}
        # Customer platform -> the channel that takes over a customer's message it cannot deliver
        # ({"whatsapp": "sms"}: outside the 24 h window with no template, the link goes by SMS).
        self.fallbacks: Mapping[str, str] = fallbacks or {}
        self.db = db
        self.clock = clock

    # ------------------------------------------------------------ claiming

    def _lockable(self, query: Select[Any]) -> Select[Any]:
        if self.db.is_sqlite:
            return query  # BEGIN IMMEDIATE already holds the only write lock
        return query.with_for_update(skip_locked=True)

    async def _claim(self, query: Select[Any], worker: str, lease: timedelta, now: datetime) -> list[OutboxMessage]:
        ids = self._lockable(query).scalar_subquery()
        statement = (
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(ids))
            .values(lease_until=now + lease, leased_by=worker)
            .returning(*OUTBOX.c)
        )
        async with self.db.write() as conn:
            rows = (await conn.execute(statement)).all()
        claimed = [_row(r._mapping) for r in rows]
        claimed.sort(key=lambda r: (r.next_attempt_at, r.id or 0))
        return claimed

    @staticmethod
    def _claimable(now: datetime) -> Any:
        return and_(
            OUTBOX.c.status == OutboxStatus.PENDING.value,
            or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until < now),
        )

    async def claim(
        self, *, worker: str, platforms: Collection[str], limit: int, lease: timedelta
    ) -> list[OutboxMessage]:
        """Lease up to `limit` due rows of these platforms to `worker`, oldest due first."""
        if not platforms or limit <= 0:
            return []
        now = self.clock()
        query = (
            select(OUTBOX.c.id)
            .where(self._claimable(now), OUTBOX.c.next_attempt_at <= now, OUTBOX.c.platform.in_(list(platforms)),
                   or_(OUTBOX.c.platform.not_in(list(ORDERED_PLATFORMS)), ~_EARLIER_PENDING))
            .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
            .limit(limit)
        )
        return await self._claim(query, worker, lease, now)

    async def claim_target(
        self, *, worker: str, target: Target, kind: str, limit: int, lease: timedelta
    ) -> list[OutboxMessage]:
        """Lease the pending rows of one kind for one target, due or not (the backlog a digest merges)."""
        now = self.clock()
        query = (
            select(OUTBOX.c.id)
            .where(self._claimable(now), OUTBOX.c.platform == target.platform,
                   OUTBOX.c.address == target.address, OUTBOX.c.kind == kind)
            .order_by(OUTBOX.c.id)
            .limit(limit)
        )
        return await self._claim(query, worker, lease, now)

    async def release(self, *, worker: str, ids: Collection[int], at: datetime) -> None:
        """Give leased rows back unsent, due again at `at` (pacing said "not yet"); no attempt is counted."""
        if not ids:
            return
        async with self.db.write() as conn:
            await conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(list(ids)), OUTBOX.c.leased_by == worker,
                       OUTBOX.c.status == OutboxStatus.PENDING.value)
                .values(lease_until=None, leased_by=None, next_attempt_at=at)
            )

    # ------------------------------------------------------------ outcomes

    async def complete(
        self, *, worker: str, outcomes: Sequence[Outcome], notice_platforms: Collection[str] = ()
    ) -> CompletionReport:
        """Record many outcomes in one transaction (a group commit: one write per batch, not per row).

        Every update is guarded by the lease: a row that another worker took over after our lease
        lapsed is left as that worker decides.
        """
        report = CompletionReport()
        if not outcomes:
            return report
        mine = and_(OUTBOX.c.id == bindparam("b_id"), OUTBOX.c.leased_by == worker,
                    OUTBOX.c.status == OutboxStatus.PENDING.value)
        by_result: dict[Result, list[Outcome]] = {}
        for outcome in outcomes:
            by_result.setdefault(outcome.result, []).append(outcome)
        async with self.db.write() as conn:
            if sent := by_result.get(Result.SENT):
                await conn.execute(
                    update(OUTBOX).where(mine).values(
                        status=OutboxStatus.SENT.value, attempts=bindparam("b_attempts"),
                        sent_at=bindparam("b_at", type_=OUTBOX.c.sent_at.type),
                        message_ref=bindparam("b_ref", type_=OUTBOX.c.message_ref.type),
                        external_id=bindparam("b_external"), lease_until=None, leased_by=None, last_error=None,
                    ),
                    [{"b_id": o.row.id, "b_attempts": o.attempts, "b_at": o.at,
                      "b_ref": o.ref.to_dict() if o.ref else None,
                      "b_external": o.ref.message_id[:100] if o.ref else None} for o in sent],
                )
                for outcome in sent:
                    # Email has no delivery report: handed to the mail server is "sent" (SMS and WhatsApp
                    # report "delivered" later, through POST /twilio/status).
                    if outcome.row.platform == "email" and outcome.row.kind.endswith(Role.CUSTOMER_LINK.value):
                        await self.followup(conn, outcome.row, outcome.at, delivered=False)
            if retry := by_result.get(Result.RETRY):
                await conn.execute(
                    update(OUTBOX).where(mine).values(
                        attempts=bindparam("b_attempts"),
                        next_attempt_at=bindparam("b_next", type_=OUTBOX.c.next_attempt_at.type),
                        last_error=bindparam("b_error"), lease_until=None, leased_by=None,
                    ),
                    [{"b_id": o.row.id, "b_attempts": o.attempts, "b_next": o.next_attempt_at,
                      "b_error": o.error} for o in retry],
                )
            dead = by_result.get(Result.DEAD, []) + by_result.get(Result.DISABLED, [])
            if dead:
                await conn.execute(
                    update(OUTBOX).where(mine).values(
                        status=OutboxStatus.DEAD.value, attempts=bindparam("b_attempts"),
                        last_error=bindparam("b_error"), lease_until=None, leased_by=None,
                    ),
                    [{"b_id": o.row.id, "b_attempts": o.attempts, "b_error": o.error} for o in dead],
                )
            for outcome in list(by_result.get(Result.DISABLED, [])):
                if await self._fall_back(conn, outcome):
                    by_result[Result.DISABLED].remove(outcome)  # another channel takes it: nothing disabled
            for outcome in by_result.get(Result.DISABLED, []):
                target = Target(outcome.row.platform, outcome.row.address)
                if target in report.disabled:
                    continue  # one disabling and one notice per target, however many rows failed
                report.disabled.append(target)
                await self._disable(conn, target, outcome)
                # A notice that cannot be delivered is not itself reported (no chains of notices).
                if outcome.row.kind not in (NOTICE_KIND, FOLLOWUP_KIND) and await self._notify_seller(
                        conn, outcome, notice_platforms):
                    report.notices += 1
            for outcome in by_result.get(Result.MOVED, []):
                old = Target(outcome.row.platform, outcome.row.address)
                new = Target(old.platform, outcome.new_address or old.address)
                if new != old and (old, new) not in report.moved:
                    await self.move_address(conn, old, new)
                    report.moved.append((old, new))
                await conn.execute(
                    update(OUTBOX).where(OUTBOX.c.id == outcome.row.id, OUTBOX.c.leased_by == worker,
                                         OUTBOX.c.status == OutboxStatus.PENDING.value)
                    .values(attempts=outcome.attempts, next_attempt_at=outcome.next_attempt_at or outcome.at,
                            last_error=outcome.error, lease_until=None, leased_by=None)
                )
        for outcome in outcomes:
            if outcome.result is not Result.SENT:
                log.info("outbox %s row=%s platform=%s kind=%s attempts=%d error=%s", outcome.result.value,
                         outcome.row.id, outcome.row.platform, outcome.row.kind, outcome.attempts, outcome.error)
        return report

    async def _fall_back(self, conn: DbConnection, outcome: Outcome) -> bool:
        """A customer's message the customer platform cannot deliver (outside WhatsApp's window, no
        template) goes by the fallback channel instead (SMS); True when a row was written for it."""
        row = outcome.row
        fallback = self.fallbacks.get(row.platform)
        if not (outcome.other_channel and fallback and is_customer_kind(row.kind) and row.payload.get("facts")):
            return False
        return await self.write_fallback(conn, row, fallback, outcome.at)

    async def write_fallback(self, conn: DbConnection, row: OutboxMessage, fallback: str, at: datetime) -> bool:
        rules = self.address_rules.get(fallback)
        contact = row.address.partition(":")[2] if ":" in row.address else row.address
        address = rules.customer_address(contact) if rules is not None else None
        if not address:
            return False
        target = Target(fallback, address)
        if target in await disabled_targets(conn, [target]):
            return False
        await insert_rows(conn, [new_row(
            target=target, kind=row.kind, body=dict(row.payload), key=dedupe_key("fallback", str(row.id), fallback),
            now=at, merchant_id=row.merchant_id, link_id=row.link_id)])
        log.info("outbox row=%s goes by %s instead of %s", row.id, fallback, row.platform)
        return True

    async def followup(self, conn: DbConnection, row: OutboxMessage, at: datetime, *, delivered: bool) -> bool:
        """Tell the chat where the link was made that its customer's message arrived (once per row)."""
        facts_data = row.payload.get("facts")
        if not row.link_id or not facts_data:
            return False
        origin = (await conn.execute(select(LINKS.c.origin_platform, LINKS.c.origin_address)
                                     .where(LINKS.c.id == row.link_id))).first()
        if origin is None or not origin.origin_platform or not origin.origin_address:
            return False
        rules = self.address_rules.get(row.platform)
        contact = rules.describe_contact(row.address) if rules is not None else f"{row.address} on {row.platform}"
        facts = AlertFacts.from_dict(facts_data)
        seller = Target(origin.origin_platform, origin.origin_address)
        _skip, languages = await target_facts(conn, [seller])
        language = reader_language(seller, languages, facts.shop_language, customer=False)
        reply = delivery_followup(facts, contact, delivered=delivered, language=language)
        await insert_rows(conn, [new_row(
            target=seller, kind=FOLLOWUP_KIND,
            body=payload(ACTION_SEND, reply, event=FOLLOWUP_KIND, language=language),
            key=dedupe_key("followup", str(row.id)), now=at, merchant_id=row.merchant_id, link_id=row.link_id)])
        return True

    async def notify_undelivered(self, conn: DbConnection, row: OutboxMessage, at: datetime, reason: str) -> bool:
        """A message reported undelivered after it was sent (a Twilio status callback): tell the seller."""
        outcome = Outcome(row, Result.DEAD, row.attempts, at, error=reason)
        return await self._notify_seller(conn, outcome, ())

    async def _disable(self, conn: DbConnection, target: Target, outcome: Outcome) -> None:
        reason = (outcome.error or "unreachable")[:500]
        await insert_ignore(conn, TARGETS, {"platform": target.platform, "address": target.address})
        await conn.execute(
            update(TARGETS)
            .where(TARGETS.c.platform == target.platform, TARGETS.c.address == target.address)
            .values(disabled_at=outcome.at, disabled_reason=reason)
        )
        # Stop at once: the target's other waiting messages would only fail the same way.
        await conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.platform == target.platform, OUTBOX.c.address == target.address,
                   OUTBOX.c.status == OutboxStatus.PENDING.value, OUTBOX.c.id != outcome.row.id)
            .values(status=OutboxStatus.DEAD.value, last_error=f"target disabled: {reason}"[:1000],
                    lease_until=None, leased_by=None)
        )
        log.warning("outbox target disabled platform=%s row=%s reason=%s", target.platform, outcome.row.id, reason)

    async def seller_chats(self, conn: DbConnection, merchant_id: str, link_id: str | None) -> list[Target]:
        """Every chat where a merchant's people can be reached: the link's chat, subscriptions, members."""
        found: list[Target] = []
        if link_id:
            origin = (
                await conn.execute(
                    select(LINKS.c.origin_platform, LINKS.c.origin_address).where(LINKS.c.id == link_id)
                )
            ).first()
            if origin and origin.origin_platform and origin.origin_address:
                found.append(Target(origin.origin_platform, origin.origin_address))
        subs = await conn.execute(
            select(SUBSCRIPTIONS.c.platform, SUBSCRIPTIONS.c.address)
            .where(SUBSCRIPTIONS.c.merchant_id == merchant_id).order_by(SUBSCRIPTIONS.c.id)
        )
        found.extend(Target(s.platform, s.address) for s in subs)
        members = await conn.execute(
            select(MEMBERS.c.platform, MEMBERS.c.platform_user_id)
            .where(MEMBERS.c.merchant_id == merchant_id).order_by(MEMBERS.c.role, MEMBERS.c.id)  # owners first
        )
        for member in members:
            rules = self.address_rules.get(member.platform)
            address = rules.member_address(member.platform_user_id) if rules is not None else None
            if address:
                found.append(Target(member.platform, address))
        unique: list[Target] = []
        for target in found:
            if target not in unique:
                unique.append(target)
        return unique

    async def _notify_seller(
        self, conn: DbConnection, outcome: Outcome, notice_platforms: Collection[str]
    ) -> bool:
        """Tell the seller through another of their chats that a target is unreachable."""
        row = outcome.row
        if not row.merchant_id:
            return False
        failing = Target(row.platform, row.address)
        chats = [t for t in await self.seller_chats(conn, row.merchant_id, row.link_id) if t != failing]
        blocked = await disabled_targets(conn, chats)
        usable = [t for t in chats if t not in blocked]
        # Prefer a chat this worker can actually send to; any reachable one is better than none.
        usable.sort(key=lambda t: t.platform not in notice_platforms)
        if not usable:
            log.warning("outbox no other chat to tell merchant=%s about row=%s", row.merchant_id, row.id)
            return False
        destination = usable[0]
        reason = (outcome.error or "unreachable").split(": ", 1)[-1]
        facts_data = row.payload.get("facts")
        if is_customer_kind(row.kind) and facts_data:
            rules = self.address_rules.get(row.platform)
            contact = rules.describe_contact(row.address) if rules is not None else f"{row.address} on {row.platform}"
            facts = AlertFacts.from_dict(facts_data)
            _skip, languages = await target_facts(conn, [destination])
            language = reader_language(destination, languages, facts.shop_language, customer=False)
            reply = customer_undeliverable_notice(facts, contact, reason,
                                                  receipt=row.kind.endswith((Role.RECEIPT.value, Role.REFUND.value)),
                                                  language=language)
        else:
            _skip, languages = await target_facts(conn, [destination])
            language = languages.get(destination, "en")
            reply = target_disabled_notice(row.platform, row.address, reason, language)
        await insert_rows(conn, [new_row(
            target=destination, kind=NOTICE_KIND, body=payload(ACTION_SEND, reply, event=NOTICE_KIND,
                                                               language=language),
            key=dedupe_key("notice", str(row.id), destination.platform, destination.address),
            now=outcome.at, merchant_id=row.merchant_id, link_id=row.link_id,
        )])
        return True

    async def move_address(self, conn: DbConnection, old: Target, new: Target) -> None:
        """A chat moved (Telegram group -> supergroup): everything that names it follows it."""
        existing = (
            await conn.execute(
                select(TARGETS.c.id).where(TARGETS.c.platform == new.platform, TARGETS.c.address == new.address)
            )
        ).first()
        where_old = and_(TARGETS.c.platform == old.platform, TARGETS.c.address == old.address)
        if existing:
            await conn.execute(delete(TARGETS).where(where_old))
        else:
            await conn.execute(update(TARGETS).where(where_old).values(address=new.address))
        subs = (
            await conn.execute(
                select(SUBSCRIPTIONS.c.id, SUBSCRIPTIONS.c.merchant_id)
                .where(SUBSCRIPTIONS.c.platform == old.platform, SUBSCRIPTIONS.c.address == old.address)
            )
        ).all()
        for sub in subs:
            # Already subscribed at the new address: the insert is skipped and the old row goes.
            await insert_ignore(conn, SUBSCRIPTIONS, {
                "merchant_id": sub.merchant_id, "platform": new.platform, "address": new.address,
                "created_at": self.clock(),
            })
            await conn.execute(delete(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.id == sub.id))
        links = (
            await conn.execute(
                select(LINKS.c.id, LINKS.c.origin_message)
                .where(LINKS.c.origin_platform == old.platform, LINKS.c.origin_address == old.address)
            )
        ).all()
        for link in links:
            message = dict(link.origin_message) if link.origin_message else None
            if message is not None and message.get("address") == old.address:
                message["address"] = new.address
            await conn.execute(
                update(LINKS).where(LINKS.c.id == link.id).values(origin_address=new.address, origin_message=message)
            )
        waiting = (
            await conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.payload)
                .where(OUTBOX.c.platform == old.platform, OUTBOX.c.address == old.address,
                       OUTBOX.c.status == OutboxStatus.PENDING.value)
            )
        ).all()
        for pending in waiting:
            body = dict(pending.payload or {})
            if isinstance(body.get("ref"), dict) and body["ref"].get("address") == old.address:
                body["ref"] = {**body["ref"], "address": new.address}
            await conn.execute(
                update(OUTBOX).where(OUTBOX.c.id == pending.id).values(address=new.address, payload=body)
            )
        log.info("outbox chat moved platform=%s", old.platform)

    async def link_is_open(self, link_id: str | None) -> bool:
        """Reminders stop with the link: is it still active and unexpired?"""
        if not link_id:
            return False
        async with self.db.read() as conn:
            row = (await conn.execute(select(LINKS.c.status, LINKS.c.expires_at).where(LINKS.c.id == link_id))).first()
        return row is not None and row.status == "active" and row.expires_at > self.clock()

    # ------------------------------------------------------------ housekeeping and the operator

    async def mark_unsendable(self, *, platforms: Collection[str], max_age: timedelta) -> int:
        """Rows for platforms with no sender here: say so in last_error, and dead once too old."""
        now = self.clock()
        unsendable = and_(OUTBOX.c.status == OutboxStatus.PENDING.value, OUTBOX.c.platform.not_in(list(platforms)))
        async with self.db.write() as conn:
            result = await conn.execute(
                update(OUTBOX)
                .where(unsendable, func.coalesce(OUTBOX.c.requeued_at, OUTBOX.c.created_at) <= now - max_age)
                .values(status=OutboxStatus.DEAD.value, lease_until=None, leased_by=None,
                        last_error=func.coalesce(OUTBOX.c.last_error, "no sender configured for this platform"))
            )
            await conn.execute(
                update(OUTBOX)
                .where(unsendable, OUTBOX.c.last_error.is_(None))
                .values(last_error="no sender configured for this platform (is it enabled in the settings?)")
            )
        return int(result.rowcount or 0)

    async def list_messages(
        self, *, statuses: Collection[str] = ("pending", "dead"), limit: int = 100
    ) -> list[OutboxMessage]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(OUTBOX).where(OUTBOX.c.status.in_(list(statuses))).order_by(OUTBOX.c.id).limit(limit)
                )
            ).all()
        return [_row(r._mapping) for r in rows]

    async def counts(self) -> dict[str, int]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status))).all()
        return {str(status): int(count) for status, count in rows}

    async def get(self, row_id: int) -> OutboxMessage | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(OUTBOX).where(OUTBOX.c.id == row_id))).first()
        return _row(row._mapping) if row else None

    async def requeue(self, *, ids: Collection[int] = (), dead: bool = False) -> int:
        """Pending or dead rows become due now with a fresh attempt budget and age (counted from
        requeued_at; created_at is kept); their targets are enabled again (the operator says: try once
        more). Sent rows are never resent."""
        now = self.clock()
        conditions = []
        if ids:
            conditions.append(and_(OUTBOX.c.id.in_(list(ids)),
                                   OUTBOX.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.DEAD.value])))
        if dead:
            conditions.append(OUTBOX.c.status == OutboxStatus.DEAD.value)
        if not conditions:
            return 0
        where = or_(*conditions)
        async with self.db.write() as conn:
            targets = (await conn.execute(select(OUTBOX.c.platform, OUTBOX.c.address).where(where).distinct())).all()
            result = await conn.execute(
                update(OUTBOX).where(where).values(
                    status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=now, requeued_at=now,
                    lease_until=None, leased_by=None, last_error=None,
                )
            )
            for target in targets:
                await conn.execute(
                    update(TARGETS)
                    .where(TARGETS.c.platform == target.platform, TARGETS.c.address == target.address)
                    .values(disabled_at=None, disabled_reason=None)
                )
        return int(result.rowcount or 0)
