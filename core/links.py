"""Payment links: creation, lookup, the guarded state machine and payment recording.

Every status change runs through `_transition` (a guarded UPDATE on the allowed source statuses) inside
one transaction, together with whatever the registered hooks write (the outbox rows), so a link is
never paid without its alerts, nor alerted without being paid.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, cast

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from core import ids, invoices, limits, reusable
from core.clock import Clock, utcnow
from core.db import Database, DatabaseBusy, DbConnection
from core.deliveries import write_with_delivery
from core.line_items import Totals
from core.models import (
    LINK_TRANSITIONS,
    CheckoutAttempt,
    LinkStatus,
    Payment,
    PaymentLink,
    PaymentStatus,
    ProviderEvent,
    construct,
)
from core.money import Money
from core.ports import (
    CheckingProvider,
    ClosingProvider,
    MessageRef,
    PaymentEvent,
    ProviderResolver,
    ReconcilingProvider,
)
from core.sql import insert_ignore, insert_row, table
from core.text import BIDI_CONTROLS_TEXT, has_bidi_controls, has_controls

log = logging.getLogger("paylinks.links")

LINKS = table(PaymentLink)
PAYMENTS = table(Payment)
EVENTS = table(ProviderEvent)
CHECKOUTS = table(CheckoutAttempt)
RECONCILE_AFTER = timedelta(minutes=10)
RECONCILE_MAX_WAIT = timedelta(hours=6)
# Recording an overdue link's expiry while reading it waits this long (s) at most for the write lock.
EXPIRE_ON_READ_WAIT_S = 0.05


class LinkError(Exception):
    """A user-caused problem with a link request; `code`, `message` and `field` go to the caller."""

    def __init__(self, code: str, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status


@dataclass(frozen=True, slots=True)
class Customer:
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class LinkDraft:
    merchant_id: str
    money: Money
    description: str
    reference: str | None = None
    customer: Customer = Customer()
    expires_at: datetime | None = None
    # Relative expiry ("2h"), measured from the same instant as created_at. Neither: links.default_expiry.
    expires_in: timedelta | None = None
    meta: dict[str, str] = field(default_factory=dict)
    origin_platform: str | None = None
    origin_address: str | None = None
    created_by_member_id: int | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    # A preset public id (Telegram inline mode shows the link's URL before the link is created); must come
    # from ids.link_id(). None: a fresh one.
    link_id: str | None = None
    # False: the customer is not sent the link now (a CSV import without --send).
    notify_customer: bool = True
    # Only these customer channels ("email", "sms", "whatsapp"); None: every one the customer has.
    notify: frozenset[str] | None = None
    # Line items (core/line_items.py): the link is numbered and its items stored with it (core/invoices.py);
    # `money` must be their total.
    line_items: Totals | None = None
    # Sells many times (limits, quantity, customer-chosen amount, split): core/reusable.py. None: single-use.
    terms: reusable.Terms | None = None


class LinkEventKind(StrEnum):
    CREATED = "link.created"
    PAID = "link.paid"
    EXPIRED = "link.expired"
    CANCELLED = "link.cancelled"
    REFUNDED = "link.refunded"
    # Reusable links (core/reusable.py): each payment that counted, and the limit reached (once).
    PAYMENT_RECEIVED = "link.payment_received"
    SOLD_OUT = "link.sold_out"


@dataclass(frozen=True, slots=True)
class LinkEvent:
    kind: LinkEventKind
    link: PaymentLink
    at: datetime
    payment: Payment | None = None
    # On link.created: whether the customer is sent the link (LinkDraft.notify_customer), and by which
    # channels (LinkDraft.notify; None: all).
    notify_customer: bool = True
    notify: frozenset[str] | None = None


# Runs inside the transaction that changes the link (the outbox writes its rows here).
TransitionHook = Callable[[DbConnection, LinkEvent], Awaitable[None]]
# Runs inside the transaction that records a payment which cannot count (paid twice, or after the link
# closed): the refunds work writes the seller's "paid twice" alert here.
PaymentHook = Callable[[DbConnection, PaymentLink, Payment], Awaitable[None]]
# Runs after that transaction committed (the automatic refund of a double payment).
AfterPayment = Callable[[Payment], Awaitable[None]]
# Handles verified provider events other than payments (refunds, failures, disputes): core/refunds.py.
EventSink = Callable[["PaymentEvent"], Awaitable["PaymentOutcome"]]


class PaymentOutcome(StrEnum):
    PAID = "paid"  # the link moved to paid with this payment
    DUPLICATE = "duplicate"  # this event (or provider payment) was already recorded
    REFUND_NEEDED = "refund_needed"  # money taken for a link that was no longer payable
    MISMATCH = "mismatch"  # amount or currency differ from the link: never counts as paid
    UNKNOWN_LINK = "unknown_link"
    IGNORED = "ignored"  # an event kind we do not act on
    RECORDED = "recorded"  # a refund, failure or dispute event, handled by the event sink


_TO_EVENT = {
    LinkStatus.PAID: LinkEventKind.PAID,
    LinkStatus.EXPIRED: LinkEventKind.EXPIRED,
    LinkStatus.CANCELLED: LinkEventKind.CANCELLED,
    LinkStatus.REFUNDED: LinkEventKind.REFUNDED,
    LinkStatus.SOLD_OUT: LinkEventKind.SOLD_OUT,
}


def _takes_real_money(provider: object) -> bool:
    # A provider that does not say is taken for pretend money: a live link must be a deliberate choice.
    return not getattr(provider, "test_mode", True)


def _row_to_link(row: Any) -> PaymentLink:
    # No validation (the row came from our own schema): ~2 µs instead of ~60 µs (core.models.construct),
    # which matters on the pay page and API hot paths. A plain mapping of the link's columns works too.
    values = dict(row) if isinstance(row, dict) else dict(row._mapping)
    values["status"] = LinkStatus(values["status"])
    return construct(PaymentLink, values)


def _row_to_payment(row: Any) -> Payment:
    # As _row_to_link: our own rows need no validation (the receipt page reads them on every view).
    values = dict(row._mapping)
    values["status"] = PaymentStatus(values["status"])
    return construct(Payment, values)


# Hot-path statements are built once; SQLAlchemy then reuses their compiled form.
_GET_LINK = select(LINKS).where(LINKS.c.id == bindparam("id"))
_GET_MERCHANT_LINK = _GET_LINK.where(LINKS.c.merchant_id == bindparam("merchant_id"))
_PAYMENTS_OF_LINK = select(PAYMENTS).where(PAYMENTS.c.link_id == bindparam("link_id")).order_by(PAYMENTS.c.created_at)
_BY_IDEMPOTENCY_KEY = select(LINKS).where(LINKS.c.merchant_id == bindparam("merchant_id"),
                                          LINKS.c.idempotency_key == bindparam("key"))


class HasStatus(Protocol):
    """What status_of reads: a PaymentLink, or a narrower row with the same two fields (the pay page's)."""

    @property
    def status(self) -> str: ...

    @property
    def expires_at(self) -> datetime: ...


class _AlreadyRecorded(Exception):
    """Raised inside the payment transaction to roll it back: this event was recorded before."""


_CHECKING: dict[type, bool] = {}


def _is_checking(kind: type) -> bool:
    """isinstance(provider, CheckingProvider), once per provider class: a runtime Protocol check walks
    the protocol's members every time, and link creation asks it on every request."""
    found = _CHECKING.get(kind)
    if found is None:
        found = _CHECKING[kind] = callable(getattr(kind, "check_money", None))
    return found


class LinkService:
    def __init__(
        self,
        db: Database,
        *,
        public_base_url: str,
        default_expiry: timedelta,
        max_amount: Decimal,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.public_base_url = public_base_url.rstrip("/")
        self.default_expiry = default_expiry
        self.max_amount = max_amount
        self.clock = clock
        self.hooks: list[TransitionHook] = []
        # Which provider account serves each shop (bots/services.py): its rules refuse links it cannot
        # charge, its mode is the link's livemode, and checkouts close and reconcile on their own account.
        # None: pretend money, no provider rules, nothing to close (core tests).
        self.providers: ProviderResolver | None = None
        # Fixed mode for new links, over the provider's (core tests, and tests rehearsing a shop that goes
        # live); None: each shop's provider decides, pretend money without a resolver.
        self.livemode: bool | None = None
        self.payment_hooks: list[PaymentHook] = []
        self.after_payment: list[AfterPayment] = []
        # Refund, failure and dispute events go here (core.refunds.RefundService.handle_event).
        self.event_sink: EventSink | None = None
        # A checkout not paid after this long is asked about at its provider ([payments] reconcile_after).
        self.reconcile_after = RECONCILE_AFTER
        # Units held for open checkouts of reusable links ([links] reservation_timeout: bots/services.py).
        self.reservations = reusable.Reservations(db, clock=clock)

    # ------------------------------------------------------------ reading

    def url(self, link_id: str) -> str:
        return f"{self.public_base_url}/p/{link_id}"

    def status_of(self, link: HasStatus, now: datetime | None = None) -> LinkStatus:
        """The status as the customer must see it: an overdue active link is expired already."""
        status = LinkStatus(link.status)
        if status is LinkStatus.ACTIVE and link.expires_at <= (now or self.clock()):
            return LinkStatus.EXPIRED
        return status

    async def get(self, link_id: str, merchant_id: str | None = None) -> PaymentLink | None:
        async with self.db.read() as conn:
            if merchant_id is None:
                row = (await conn.execute(_GET_LINK, {"id": link_id})).first()
            else:
                row = (await conn.execute(_GET_MERCHANT_LINK, {"id": link_id, "merchant_id": merchant_id})).first()
        if row is None:
            return None
        link = _row_to_link(row)
        if link.status == LinkStatus.ACTIVE and self.status_of(link) is LinkStatus.EXPIRED:
            try:
                return await self._expire_one(link.id, busy_timeout=EXPIRE_ON_READ_WAIT_S) or link
            except DatabaseBusy:
                # A read must not wait out another process's write lock: status_of shows it expired
                # already, and the sweeper records it later.
                return link
        return link

    async def find(self, merchant_id: str, id_or_reference: str) -> PaymentLink | None:
        """A merchant's link by id, or by reference (newest first when several share it)."""
        key = id_or_reference.strip().lstrip("#")
        link = await self.get(key.lower(), merchant_id)
        if link is not None:
            return link
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(LINKS.c.id)
                    .where(LINKS.c.merchant_id == merchant_id, LINKS.c.reference == key)
                    .order_by(LINKS.c.created_at.desc())
                    .limit(1)
                )
            ).first()
        return await self.get(row.id, merchant_id) if row else None

    async def list_links(
        self,
        merchant_id: str,
        *,
        status: LinkStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        livemode: bool | None = None,
    ) -> tuple[list[PaymentLink], str | None]:
        """Newest first. `cursor` is the id of the last link of the previous page; `livemode` None: both."""
        await self.expire_due(merchant_id=merchant_id)
        query = select(LINKS).where(LINKS.c.merchant_id == merchant_id)
        if status is not None:
            query = query.where(LINKS.c.status == status.value)
        if since is not None:
            query = query.where(LINKS.c.created_at >= since)
        if until is not None:
            query = query.where(LINKS.c.created_at < until)
        if livemode is not None:
            query = query.where(LINKS.c.livemode == livemode)
        async with self.db.read() as conn:
            if cursor:
                anchor = (
                    await conn.execute(
                        select(LINKS.c.created_at, LINKS.c.id).where(
                            LINKS.c.id == cursor, LINKS.c.merchant_id == merchant_id
                        )
                    )
                ).first()
                if anchor is None:
                    raise LinkError("invalid_cursor", "cursor does not name a link of yours", field="cursor")
                query = query.where(
                    or_(
                        LINKS.c.created_at < anchor.created_at,
                        and_(LINKS.c.created_at == anchor.created_at, LINKS.c.id < anchor.id),
                    )
                )
            query = query.order_by(LINKS.c.created_at.desc(), LINKS.c.id.desc()).limit(limit + 1)
            rows = (await conn.execute(query)).all()
        links = [_row_to_link(r) for r in rows[:limit]]
        next_cursor = links[-1].id if len(rows) > limit and links else None
        return links, next_cursor

    # ------------------------------------------------------------ creating

    async def create(self, draft: LinkDraft) -> tuple[PaymentLink, bool]:
        """Create a link; with an idempotency key, the same request returns the first link (created=False)."""
        if draft.idempotency_key:
            # A replay answers with the first result even if, say, its expiry has passed since.
            existing = await self._by_idempotency_key(draft.merchant_id, draft.idempotency_key)
            if existing is not None:
                return self._replay(existing, draft), False
        money = draft.money
        now = self.clock()
        description, customer, expires_at, livemode = await self._checked(draft, now)
        terms = self._checked_terms(draft)
        values: dict[str, Any] = {
            "id": draft.link_id or ids.link_id(),
            "merchant_id": draft.merchant_id,
            "amount_minor": money.amount_minor,
            "currency": money.currency,
            "description": description,
            "reference": draft.reference or None,
            "customer_name": customer.name,
            "customer_email": customer.email,
            "customer_phone": customer.phone,
            "status": LinkStatus.ACTIVE,
            "created_at": now,
            "expires_at": expires_at,
            "paid_at": None,
            "cancelled_at": None,
            "meta": dict(draft.meta),
            "origin_platform": draft.origin_platform,
            "origin_address": draft.origin_address,
            "origin_message": None,
            "created_by_member_id": draft.created_by_member_id,
            "checkout_attempts": 0,
            "idempotency_key": draft.idempotency_key,
            "request_hash": draft.request_hash,
            "livemode": livemode,
            "reminded_at": None,
            "auto_reminded_at": None,
            **reusable.columns(terms),
        }
        link = construct(PaymentLink, values)  # the keys in field order: construct's fast path
        if draft.line_items is not None and draft.line_items.total_minor != money.amount_minor:
            raise LinkError("invalid_amount", "amount must equal the line items' total", field="amount")
        try:
            # From a chat message: its delivery row commits with the link, or AlreadyHandled undoes both.
            async with write_with_delivery(self.db) as conn:
                await insert_row(conn, LINKS, values)
                if draft.line_items is not None:
                    await invoices.record(conn, link, draft.line_items, now)
                if self.hooks:
                    event = LinkEvent(LinkEventKind.CREATED, link, now, notify_customer=draft.notify_customer,
                                      notify=draft.notify)
                    for hook in self.hooks:
                        await hook(conn, event)
        except IntegrityError:
            # Two requests with one idempotency key raced; the other one won.
            if draft.idempotency_key:
                existing = await self._by_idempotency_key(draft.merchant_id, draft.idempotency_key)
                if existing is not None:
                    return self._replay(existing, draft), False
            raise
        log.info("link created link=%s merchant=%s", link.id, draft.merchant_id)
        return link, True

    async def livemode_for(self, merchant_id: str) -> bool:
        """Whether the shop's new links take real money (its provider account's mode)."""
        if self.livemode is not None:
            return self.livemode
        if self.providers is None:
            return False
        return _takes_real_money((await self.providers.for_merchant(merchant_id)).provider)

    async def check_draft(self, draft: LinkDraft) -> None:
        """Everything create() checks, without making the link (a dry run); LinkError when it would fail."""
        await self._checked(draft, self.clock())
        self._checked_terms(draft)

    @staticmethod
    def _checked_terms(draft: LinkDraft) -> reusable.Terms | None:
        if draft.terms is None:
            return None
        try:
            return reusable.check_terms(draft.terms, draft.money.amount_minor)
        except reusable.TermsError as exc:
            raise LinkError(exc.code, exc.message, field=exc.field) from None

    async def _checked(self, draft: LinkDraft, now: datetime) -> tuple[str, Customer, datetime, bool]:
        """The draft's checked description, customer and expiry, and the mode its shop's provider is in."""
        money = draft.money
        if money.amount_minor <= 0:
            raise LinkError("invalid_amount", "amount must be greater than zero", field="amount")
        if money.amount_minor > limits.AMOUNT_MINOR_MAX or money.decimal() > self.max_amount:
            raise LinkError(
                "amount_too_large",
                f"amount must be at most {self.max_amount} {money.currency}",
                field="amount",
            )
        livemode = False
        problem = None
        if self.providers is not None:
            provider = (await self.providers.for_merchant(draft.merchant_id)).provider
            livemode = _takes_real_money(provider)
            if _is_checking(type(provider)):
                problem = cast(CheckingProvider, provider).check_money(money)
        if self.livemode is not None:
            livemode = self.livemode
        if problem is not None:
            raise LinkError("not_chargeable", problem[1], field=problem[0])
        texts = {"description": draft.description, "reference": draft.reference, "customer.name": draft.customer.name,
                 "customer.email": draft.customer.email, "customer.phone": draft.customer.phone}
        for name, value in texts.items():
            if value and has_controls(value):
                raise LinkError("invalid_text", f"{name} contains control characters", field=name)
            if value and has_bidi_controls(value):
                raise LinkError("invalid_text", f"{name} contains {BIDI_CONTROLS_TEXT}, which could make the "
                                "text around it read differently; remove them", field=name)
        for key, value in draft.meta.items():
            if has_controls(key) or has_controls(value):
                raise LinkError("invalid_text", "metadata contains control characters", field="metadata")
        description = draft.description.strip()
        if not description:
            raise LinkError("missing_description", "description is required", field="description")
        if len(description) > limits.DESCRIPTION_MAX:
            raise LinkError("invalid_description", f"description is longer than {limits.DESCRIPTION_MAX} characters",
                            field="description")
        customer = self._checked_customer(draft.customer)
        if draft.reference and len(draft.reference) > limits.REFERENCE_MAX:
            raise LinkError("too_long", f"reference is longer than {limits.REFERENCE_MAX} characters",
                            field="reference")
        if len(draft.meta) > limits.METADATA_KEYS_MAX:
            raise LinkError("too_many_keys", f"metadata has more than {limits.METADATA_KEYS_MAX} keys",
                            field="metadata")
        for key, value in draft.meta.items():
            if not key or len(key) > limits.METADATA_KEY_MAX or len(value) > limits.METADATA_VALUE_MAX:
                raise LinkError("invalid_metadata", f"metadata keys must be 1 to {limits.METADATA_KEY_MAX} "
                                f"characters and values at most {limits.METADATA_VALUE_MAX}", field="metadata")
        expires_at = draft.expires_at or now + (draft.expires_in or self.default_expiry)
        if expires_at <= now:
            raise LinkError("invalid_expiry", "expiry must be in the future", field="expires_at")
        if expires_at - now > limits.MAX_EXPIRY:
            raise LinkError("invalid_expiry", f"expiry must be within {limits.MAX_EXPIRY.days} days",
                            field="expires_at")
        return description, customer, expires_at, livemode

    @staticmethod
    def _checked_customer(customer: Customer) -> Customer:
        if customer.name and len(customer.name) > limits.CUSTOMER_NAME_MAX:
            raise LinkError("too_long", f"customer.name is longer than {limits.CUSTOMER_NAME_MAX} characters",
                            field="customer.name")
        if customer.phone and len(customer.phone) > limits.PHONE_MAX:
            raise LinkError("too_long", f"customer.phone is longer than {limits.PHONE_MAX} characters",
                            field="customer.phone")
        if not customer.email:
            return customer
        try:
            email = limits.normalise_email(customer.email)
        except ValueError as exc:
            raise LinkError("invalid_email", f"customer.email: {exc}", field="customer.email") from None
        return Customer(customer.name, email, customer.phone)

    def _replay(self, existing: PaymentLink, draft: LinkDraft) -> PaymentLink:
        if existing.request_hash != draft.request_hash:
            raise LinkError(
                "idempotency_conflict",
                "this Idempotency-Key was already used with a different request",
                field="Idempotency-Key",
                status=409,
            )
        return existing

    async def _by_idempotency_key(self, merchant_id: str, key: str) -> PaymentLink | None:
        async with self.db.read() as conn:
            row = (await conn.execute(_BY_IDEMPOTENCY_KEY, {"merchant_id": merchant_id, "key": key})).first()
        return _row_to_link(row) if row else None

    async def attach_message(self, link_id: str, ref: MessageRef) -> None:
        """Remember the chat message that shows this link, so alerts can edit it."""
        async with self.db.write() as conn:
            await conn.execute(
                update(LINKS)
                .where(LINKS.c.id == link_id)
                .values(
                    origin_message=ref.to_dict(),
                    origin_platform=ref.platform,
                    origin_address=ref.address,
                )
            )

    async def next_checkout_attempt(self, link_id: str) -> int:
        async with self.db.write() as conn:
            await conn.execute(
                update(LINKS)
                .where(LINKS.c.id == link_id)
                .values(checkout_attempts=LINKS.c.checkout_attempts + 1)
            )
            attempts = (
                await conn.execute(select(LINKS.c.checkout_attempts).where(LINKS.c.id == link_id))
            ).scalar_one()
        return int(attempts)

    # ------------------------------------------------------------ transitions

    async def transition(
        self, conn: DbConnection, link_id: str, to: LinkStatus, now: datetime,
        payment: Payment | None = None, **values: Any,
    ) -> PaymentLink | None:
        """The guarded move, for another service's transaction (core/refunds.py: paid -> refunded)."""
        return await self._transition(conn, link_id, to, now, payment, **values)

    async def _transition(
        self, conn: DbConnection, link_id: str, to: LinkStatus, now: datetime,
        payment: Payment | None = None, **values: Any,
    ) -> PaymentLink | None:
        """Guarded move to `to`; None when the link is not in a status that allows it."""
        sources = [s.value for s, targets in LINK_TRANSITIONS.items() if to in targets]
        result = await conn.execute(
            update(LINKS)
            .where(LINKS.c.id == link_id, LINKS.c.status.in_(sources))
            .values(status=to.value, **values)
        )
        if result.rowcount != 1:
            return None
        row = (await conn.execute(select(LINKS).where(LINKS.c.id == link_id))).one()
        link = _row_to_link(row)
        event = LinkEvent(_TO_EVENT[to], link, now, payment)
        for hook in self.hooks:
            await hook(conn, event)
        log.info("link %s link=%s merchant=%s", to.value, link.id, link.merchant_id)
        return link

    async def cancel(self, link_id: str, merchant_id: str) -> PaymentLink:
        link = await self.get(link_id, merchant_id)
        if link is None:
            raise LinkError("not_found", "no such link", field="id", status=404)
        now = self.clock()
        async with self.db.write() as conn:
            done = await self._transition(conn, link.id, LinkStatus.CANCELLED, now, cancelled_at=now)
        if done is None:
            current = await self.get(link_id, merchant_id) or link
            raise LinkError(
                "not_active",
                f"only an active link can be cancelled; this one is {current.status}",
                field="id",
                status=409,
            )
        await self.close_checkouts(done.id)
        return done

    async def _expire_one(self, link_id: str, *, busy_timeout: float | None = None) -> PaymentLink | None:
        now = self.clock()
        async with self.db.write(busy_timeout=busy_timeout) as conn:
            row = (await conn.execute(select(LINKS.c.expires_at).where(LINKS.c.id == link_id))).first()
            if row is None or row.expires_at > now:
                return None
            expired = await self._transition(conn, link_id, LinkStatus.EXPIRED, now)
        if expired is not None:
            await self.close_checkouts(link_id)
        return expired

    async def expire_due(self, *, merchant_id: str | None = None, batch: int = 200) -> int:
        """Move overdue active links to expired (the sweeper, and before listings)."""
        now = self.clock()
        query = select(LINKS.c.id).where(
            LINKS.c.status == LinkStatus.ACTIVE.value, LINKS.c.expires_at <= now
        )
        if merchant_id is not None:
            query = query.where(LINKS.c.merchant_id == merchant_id)
        async with self.db.read() as conn:
            due = [r.id for r in (await conn.execute(query.limit(batch))).all()]
        count = 0
        for link_id in due:
            if await self._expire_one(link_id) is not None:
                count += 1
        return count

    async def release_reservations(self) -> int:
        """Let timed-out reservations of reusable links go (the sweeper) and close their checkouts, so no
        provider checkout outlives its reservation; returns how many were released."""
        released = await self.reservations.release_due()
        for held in released:
            if self.providers is None or held.provider is None or held.checkout_ref is None:
                continue
            provider = await self.providers.for_account(held.provider, held.account)
            if isinstance(provider, ClosingProvider):
                try:
                    await provider.close_checkout(held.checkout_ref)
                except Exception as exc:  # its own expiry ends it; a late payment counts only if there is room
                    log.warning("checkout not closed link=%s checkout=%s error=%s", held.link_id, held.checkout_ref,
                                exc)
        return len(released)

    # ------------------------------------------------------------ provider checkouts

    async def record_checkout(self, link_id: str, attempt: int, provider: str, provider_ref: str, *,
                              account: str | None = None) -> None:
        """Remember the checkout a press of Pay opened (the same ref twice is one row: idempotent replays),
        and on which account (a shop's own: its merchant id; None: the deployment's)."""
        async with self.db.write() as conn:
            now = self.clock()
            await insert_ignore(conn, CHECKOUTS, {"link_id": link_id, "attempt": attempt, "provider": provider,
                                                  "provider_ref": provider_ref, "created_at": now,
                                                  "closed_at": None, "next_check_at": now + self.reconcile_after,
                                                  "checks": 0, "account": account})

    async def checkout_by_ref(self, provider: str, provider_ref: str) -> CheckoutAttempt | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(CHECKOUTS).where(CHECKOUTS.c.provider == provider,
                                                              CHECKOUTS.c.provider_ref == provider_ref))).first()
        return CheckoutAttempt(**row._mapping) if row is not None else None

    async def latest_checkout(self, link_id: str, provider: str) -> CheckoutAttempt | None:
        """The link's most recent checkout at this provider (a return page finds its account from it)."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(CHECKOUTS).where(CHECKOUTS.c.link_id == link_id,
                                                              CHECKOUTS.c.provider == provider)
                                      .order_by(CHECKOUTS.c.attempt.desc()).limit(1))).first()
        return CheckoutAttempt(**row._mapping) if row is not None else None

    async def open_checkouts(self, link_id: str) -> list[CheckoutAttempt]:
        async with self.db.read() as conn:
            rows = (await conn.execute(
                select(CHECKOUTS).where(CHECKOUTS.c.link_id == link_id, CHECKOUTS.c.closed_at.is_(None))
                .order_by(CHECKOUTS.c.attempt)
            )).all()
        return [CheckoutAttempt(**r._mapping) for r in rows]

    async def close_checkouts(self, link_id: str) -> int:
        """Close the link's open provider checkouts (after it was cancelled or expired); returns how many.

        Runs after the link's transaction committed: a provider call never holds the write lock, and a
        provider that is down cannot undo a cancel. A checkout left open that is paid anyway is recorded
        as refund-needed (record_payment: the link is no longer payable).
        """
        if self.providers is None:
            return 0
        closed = 0
        for checkout in await self.open_checkouts(link_id):
            # Closed on the account it was opened on (a shop may have changed accounts since).
            provider = await self.providers.for_account(checkout.provider, checkout.account)
            if not isinstance(provider, ClosingProvider):
                continue
            try:
                await provider.close_checkout(checkout.provider_ref)
            except Exception as exc:  # logged and left open: the provider's own expiry still ends it
                log.warning("checkout not closed link=%s provider=%s checkout=%s error=%s",
                            link_id, checkout.provider, checkout.provider_ref, exc)
                continue
            async with self.db.write() as conn:
                await conn.execute(update(CHECKOUTS).where(CHECKOUTS.c.id == checkout.id)
                                   .values(closed_at=self.clock()))
            closed += 1
        return closed

    async def reconcile(self, *, batch: int = 50) -> int:
        """Ask the providers about checkouts of active links that are due; record what was paid.

        Due first `reconcile_after` after Pay, then with doubling waits (capped) while the link is active
        and not expired. Each checkout is asked about on the account it was opened on (the deployment's or
        the shop's own). A payment found here is recorded exactly as its webhook would be (same
        record_payment, same alerts), so the webhook that comes later is a duplicate. Returns how many
        payments were recorded.
        """
        if self.providers is None:
            return 0
        now = self.clock()
        query = (select(CHECKOUTS.c.id.label("checkout_id"), CHECKOUTS.c.provider_ref.label("checkout_ref"),
                        CHECKOUTS.c.checks.label("checkout_checks"), CHECKOUTS.c.provider.label("checkout_provider"),
                        CHECKOUTS.c.account.label("checkout_account"), *LINKS.c)
                 .join_from(CHECKOUTS, LINKS, LINKS.c.id == CHECKOUTS.c.link_id)
                 .where(CHECKOUTS.c.closed_at.is_(None), CHECKOUTS.c.next_check_at <= now,
                        LINKS.c.status == LinkStatus.ACTIVE.value, LINKS.c.expires_at > now)
                 .order_by(CHECKOUTS.c.next_check_at).limit(batch))
        async with self.db.read() as conn:
            due = (await conn.execute(query)).all()
        recorded = 0
        for row in due:
            values = row._mapping
            checkout_id, checks, ref = values["checkout_id"], values["checkout_checks"], values["checkout_ref"]
            name, account = values["checkout_provider"], values["checkout_account"]
            provider = await self.providers.for_account(name, account)
            if not isinstance(provider, ReconcilingProvider):
                # Nothing can ask about it (the sandbox, an account gone): never due again, so these rows
                # cannot crowd out the ones that can be reconciled.
                async with self.db.write() as conn:
                    await conn.execute(update(CHECKOUTS).where(CHECKOUTS.c.id == checkout_id)
                                       .values(next_check_at=None))
                continue
            wait = min(self.reconcile_after * 2 ** min(checks + 1, 16), RECONCILE_MAX_WAIT)
            async with self.db.write() as conn:
                await conn.execute(update(CHECKOUTS).where(CHECKOUTS.c.id == checkout_id)
                                   .values(checks=checks + 1, next_check_at=now + wait))
            link = _row_to_link({c.name: values[c] for c in LINKS.c})
            if link.reusable:
                # The checkout was opened for its reservation's amount (quantity × unit, a chosen amount, a
                # share, after any promo code), not the link's unit amount: the provider is asked about that.
                held = await self.reservations.for_checkout(name, ref)
                if held is not None:
                    link = link.model_copy(update={"amount_minor": held.amount_minor})
            try:
                event = await provider.reconcile_event(ref, link)
            except Exception as exc:  # the next round asks again
                log.warning("reconcile failed provider=%s checkout=%s error=%s", name, ref, exc)
                continue
            if event is None:
                continue
            outcome, payment = await self.record_payment(replace(event, account=account))
            log.info("reconciled provider=%s checkout=%s outcome=%s", name, ref, outcome.value)
            if payment is not None:
                recorded += 1
        return recorded

    # ------------------------------------------------------------ payments

    async def record_payment(self, event: PaymentEvent) -> tuple[PaymentOutcome, Payment | None]:
        """Record a verified provider event in ONE transaction: inbox row, payment, link transition, hooks."""
        if event.kind == "payment.failed" and (event.checkout_ref or event.provider_ref):
            # A reusable link's units held for this checkout are free again (Stripe names the session).
            await self.reservations.release_checkout(event.provider, event.checkout_ref or event.provider_ref)
        if event.kind != "payment.succeeded":
            if self.event_sink is not None:
                return await self.event_sink(event), None
            return PaymentOutcome.IGNORED, None
        now = self.clock()
        try:
            async with self.db.write() as conn:
                outcome, payment = await self._record(conn, event, now)
        except _AlreadyRecorded:
            return PaymentOutcome.DUPLICATE, None
        if payment is not None:
            log.info(
                "payment %s payment=%s link=%s provider=%s",
                outcome.value, payment.id, payment.link_id, event.provider,
            )
            if payment.status == PaymentStatus.REFUND_NEEDED:
                for after in self.after_payment:
                    try:
                        await after(payment)
                    except Exception:  # recorded and alerted already; the seller can /refund it
                        log.exception("after-payment step failed payment=%s", payment.id)
        return outcome, payment

    async def _record(
        self, conn: DbConnection, event: PaymentEvent, now: datetime
    ) -> tuple[PaymentOutcome, Payment | None]:
        inbox_row = {"provider": event.provider, "event_id": event.event_id, "received_at": now}
        if not await insert_ignore(conn, EVENTS, inbox_row):
            raise _AlreadyRecorded
        row = (await conn.execute(select(LINKS).where(LINKS.c.id == event.link_id))).first()
        if row is None:
            log.warning("payment for unknown link=%s provider_ref=%s", event.link_id, event.provider_ref)
            return PaymentOutcome.UNKNOWN_LINK, None
        link = _row_to_link(row)
        livemode = bool(link.livemode) if event.livemode is None else event.livemode
        # A reusable link is paid per checkout: the amount its reservation holds (core/reusable.py).
        reservation = await reusable.find_for_payment(conn, link, event) if link.reusable else None
        expected = reservation.amount_minor if reservation is not None else link.amount_minor
        # Test money never pays a live link, nor real money a test link: it is refunded instead.
        matches = ((event.amount_minor, event.currency.upper(), livemode)
                   == (expected, link.currency, bool(link.livemode)))
        payment = Payment(
            id=ids.prefixed("pay"),
            link_id=link.id,
            provider=event.provider,
            provider_ref=event.provider_ref,
            amount_minor=event.amount_minor,
            currency=event.currency.upper(),
            status=PaymentStatus.SUCCEEDED if matches else PaymentStatus.REFUND_NEEDED,
            payer_name=event.payer_name,
            created_at=now,
            livemode=livemode,
            account=event.account,
            amount_refunded_minor=0,
            payment_ref=event.payment_ref,
            channel=event.channel,
        )
        if not await insert_ignore(conn, PAYMENTS, payment.model_dump()):
            # The same provider payment came again under another event id: already counted.
            raise _AlreadyRecorded
        if not matches:
            log.warning("payment amount/currency mismatch payment=%s link=%s", payment.id, link.id)
            for payment_hook in self.payment_hooks:
                await payment_hook(conn, link, payment)
            return PaymentOutcome.MISMATCH, payment
        payable = self.status_of(link, now) is LinkStatus.ACTIVE
        if link.reusable:
            if payable and await self._count_reusable(conn, link, reservation, payment, now):
                return PaymentOutcome.PAID, payment
        elif payable and await self._transition(
            conn, link.id, LinkStatus.PAID, now, payment=payment, paid_at=now
        ):
            return PaymentOutcome.PAID, payment
        # Paid twice, or paid after it stopped being payable: the customer gets their money back.
        payment.status = PaymentStatus.REFUND_NEEDED
        await conn.execute(
            update(PAYMENTS)
            .where(PAYMENTS.c.id == payment.id)
            .values(status=PaymentStatus.REFUND_NEEDED.value)
        )
        for payment_hook in self.payment_hooks:
            await payment_hook(conn, link, payment)
        return PaymentOutcome.REFUND_NEEDED, payment

    async def _count_reusable(self, conn: DbConnection, link: PaymentLink, reservation: Any,
                              payment: Payment, now: datetime) -> bool:
        """One more payment of a reusable link: counted, alerted, and the link closed at its limit."""
        counted, current = await reusable.count_payment(conn, link, reservation, payment)
        if not counted:
            return False
        event = LinkEvent(LinkEventKind.PAYMENT_RECEIVED, current, now, payment)
        for hook in self.hooks:
            await hook(conn, event)
        closing = reusable.closing_status(current)
        if closing is not None:
            values = {"paid_at": now} if closing is LinkStatus.PAID else {}
            await self._transition(conn, link.id, closing, now, payment=payment, **values)
        return True

    async def note_payment_ref(self, provider: str, provider_ref: str, payment_ref: str,
                               channel: str | None) -> None:
        """Fill in the provider's payment id (and channel) a refund needs, when the first event lacked it."""
        async with self.db.write() as conn:
            await conn.execute(update(PAYMENTS).where(
                PAYMENTS.c.provider == provider, PAYMENTS.c.provider_ref == provider_ref,
                PAYMENTS.c.payment_ref.is_(None)).values(payment_ref=payment_ref, channel=channel))

    async def payments_for(self, link_id: str) -> list[Payment]:
        async with self.db.read() as conn:
            rows = (await conn.execute(_PAYMENTS_OF_LINK, {"link_id": link_id})).all()
        return [_row_to_payment(r) for r in rows]

    async def payment_by_ref(self, provider: str, provider_ref: str) -> Payment | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(PAYMENTS).where(
                        PAYMENTS.c.provider == provider, PAYMENTS.c.provider_ref == provider_ref
                    )
                )
            ).first()
        return Payment(**row._mapping) if row else None
