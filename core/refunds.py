"""Refunds: money given back through the provider port, and what the seller hears about it.

A refund is asked in two steps so that a provider call never holds the write lock and money is never
counted twice: first ONE transaction locks the payment row, re-counts what is still refundable (the
payment's amount minus every refund pending or succeeded) and inserts the refund as `pending`; then the
provider is asked, outside any transaction. Only the provider's "succeeded" (its answer, or its webhook)
moves the refunded amount onto the payment — in the same transaction as the refund's own move, the
payment's status (PAYMENT_TRANSITIONS), the link's `paid -> refunded` and the seller's alert rows.

Double payments (a payment recorded `refund_needed`) alert the seller in the payment's own transaction
and, with `[payments] auto_refund_duplicates`, are refunded here right after it commits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from core import i18n, ids
from core.audit import Actor, AuditLog
from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.i18n import Tr
from core.links import LinkError, LinkService, PaymentOutcome, _row_to_link
from core.models import (
    PAYMENT_TRANSITIONS,
    REFUND_TRANSITIONS,
    AlertSubscription,
    LinkEventRecord,
    LinkStatus,
    Merchant,
    Payment,
    PaymentLink,
    PaymentStatus,
    ProviderEvent,
    Refund,
    RefundStatus,
    construct,
)
from core.money import amount_str, format_money
from core.outbox import (
    ACTION_EDIT,
    ACTION_SEND,
    Target,
    dedupe_key,
    insert_rows,
    new_row,
    payload,
    reader_language,
    target_facts,
)
from core.ports import (
    MessageRef,
    PaymentEvent,
    PaymentProvider,
    ProviderResolver,
    RefundAnswer,
    RefundingProvider,
    RefundRefused,
    RefundState,
    RefundUnavailable,
    Reply,
)
from core.reports import STATUS_WORD
from core.sql import insert_ignore, table

log = logging.getLogger("paylinks.refunds")

LINKS = table(PaymentLink)
PAYMENTS = table(Payment)
REFUNDS = table(Refund)
EVENTS = table(ProviderEvent)
RECORDS = table(LinkEventRecord)
MERCHANTS = table(Merchant)
SUBSCRIPTIONS = table(AlertSubscription)

# Refunds that hold money: a pending one may still succeed, so it is never refundable twice.
_RESERVING = (RefundStatus.PENDING.value, RefundStatus.SUCCEEDED.value)
AUTO = "auto"
# A refund the provider could not be asked about is asked again after this, for at most GIVE_UP_AFTER.
RETRY_AFTER = timedelta(minutes=1)
GIVE_UP_AFTER = timedelta(hours=24)
EVENT_DOUBLE = "payment.refund_needed"
EVENT_REFUNDED = "refund.succeeded"
EVENT_REFUND_FAILED = "refund.failed"
EVENT_PAYMENT_FAILED = "payment.failed"
EVENT_DISPUTE = "dispute.created"


def payment_status_after(current: PaymentStatus, amount_minor: int, refunded_minor: int) -> PaymentStatus:
    """The payment's status once `refunded_minor` of its `amount_minor` went back (PAYMENT_TRANSITIONS)."""
    if refunded_minor <= 0:
        return current
    target = PaymentStatus.REFUNDED if refunded_minor >= amount_minor else PaymentStatus.PARTIALLY_REFUNDED
    if target not in PAYMENT_TRANSITIONS[current]:
        raise ValueError(f"a {current.value} payment cannot become {target.value}")
    return target


# Built once (the receipt page and every API link answer ask them): SQLAlchemy reuses their compiled form.
_REFUNDS_OF_LINKS = (select(REFUNDS).where(REFUNDS.c.link_id.in_(bindparam("link_ids", expanding=True)))
                     .order_by(REFUNDS.c.created_at, REFUNDS.c.id))
_PAYMENTS_OF_LINKS = (select(PAYMENTS).where(PAYMENTS.c.link_id.in_(bindparam("link_ids", expanding=True)))
                      .order_by(PAYMENTS.c.created_at, PAYMENTS.c.id))


def _row_to_refund(row: Any) -> Refund:
    values = dict(row._mapping)
    values["status"] = RefundStatus(values["status"])
    return construct(Refund, values)


def _row_to_payment(row: Any) -> Payment:
    values = dict(row._mapping)
    values["status"] = PaymentStatus(values["status"])
    return construct(Payment, values)


@dataclass(frozen=True, slots=True)
class RefundRequest:
    link_id: str
    merchant_id: str
    amount_minor: int | None = None  # None: all that is refundable
    payment_id: str | None = None  # required when the link has more than one refundable payment
    reason: str | None = None
    requested_by: str = "api"  # "api", "cli", "auto", "chat:<platform>:<user id>", "dashboard:<member id>"
    requested_by_name: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Refundable:
    """One payment and how much of it can still be refunded."""

    payment: Payment
    refundable_minor: int


# Runs inside the transaction that records a refund as succeeded, with the link and payment after it
# (bots/webhooks.py: the merchant webhook event payment.refunded).
RefundHook = Callable[[DbConnection, PaymentLink, Payment, Refund], Awaitable[None]]


class RefundService:
    def __init__(self, db: Database, links: LinkService, *, provider: PaymentProvider | None = None,
                 providers: ProviderResolver | None = None, auto_refund_duplicates: bool = True,
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.links = links
        # A refund goes back through the account the payment came in on (a shop's own, or the
        # deployment's); `provider` alone serves tests with one provider and no resolver.
        self.provider = provider
        self.providers = providers
        self.auto_refund_duplicates = auto_refund_duplicates
        self.clock = clock
        # Wakes this process's dispatcher after alert rows were written (bots/services.py sets it).
        self.wake: Any = None
        self.refund_hooks: list[RefundHook] = []

    def install(self) -> None:
        """Hook into LinkService: double-payment alerts and auto refunds, refund/failure/dispute events."""
        self.links.payment_hooks.append(self._double_payment_alert)
        self.links.after_payment.append(self._after_double_payment)
        self.links.event_sink = self.handle_event

    # ------------------------------------------------------------ reading

    @staticmethod
    async def of_link(conn: DbConnection, link_id: str) -> tuple[list[Payment], dict[str, list[Refund]]]:
        """The link's payments and their refunds (by payment id), oldest first, in the caller's transaction."""
        payments = [_row_to_payment(r) for r in (await conn.execute(
            select(PAYMENTS).where(PAYMENTS.c.link_id == link_id)
            .order_by(PAYMENTS.c.created_at, PAYMENTS.c.id))).all()]
        refunds: dict[str, list[Refund]] = {}
        for row in (await conn.execute(select(REFUNDS).where(REFUNDS.c.link_id == link_id)
                                       .order_by(REFUNDS.c.created_at, REFUNDS.c.id))).all():
            refund = _row_to_refund(row)
            refunds.setdefault(refund.payment_id, []).append(refund)
        return payments, refunds

    async def refunds_for(self, link_ids: Sequence[str]) -> dict[str, list[Refund]]:
        """Refunds by payment id, oldest first, for these links."""
        if not link_ids:
            return {}
        async with self.db.read() as conn:
            rows = (await conn.execute(_REFUNDS_OF_LINKS, {"link_ids": list(link_ids)})).all()
        found: dict[str, list[Refund]] = {}
        for row in rows:
            refund = _row_to_refund(row)
            found.setdefault(refund.payment_id, []).append(refund)
        return found

    async def payments_of(self, link_ids: Sequence[str]) -> dict[str, list[Payment]]:
        if not link_ids:
            return {}
        async with self.db.read() as conn:
            rows = (await conn.execute(_PAYMENTS_OF_LINKS, {"link_ids": list(link_ids)})).all()
        found: dict[str, list[Payment]] = {}
        for row in rows:
            payment = _row_to_payment(row)
            found.setdefault(payment.link_id, []).append(payment)
        return found

    async def get(self, refund_id: str) -> Refund | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(REFUNDS).where(REFUNDS.c.id == refund_id))).first()
        return _row_to_refund(row) if row else None

    async def payment(self, payment_id: str, merchant_id: str) -> Payment | None:
        async with self.db.read() as conn:
            row = (await conn.execute(
                select(PAYMENTS).join_from(PAYMENTS, LINKS, LINKS.c.id == PAYMENTS.c.link_id)
                .where(PAYMENTS.c.id == payment_id, LINKS.c.merchant_id == merchant_id)
            )).first()
        return _row_to_payment(row) if row else None

    async def refundable(self, link_id: str) -> list[Refundable]:
        """The link's payments with money still refundable, oldest first."""
        async with self.db.read() as conn:
            payments = [_row_to_payment(r) for r in (await conn.execute(
                select(PAYMENTS).where(PAYMENTS.c.link_id == link_id).order_by(PAYMENTS.c.created_at)
            )).all()]
            found = []
            for payment in payments:
                left = payment.amount_minor - await self._reserved(conn, payment.id)
                if left > 0:
                    found.append(Refundable(payment, left))
        return found

    @staticmethod
    async def _reserved(conn: DbConnection, payment_id: str) -> int:
        total = await conn.scalar(select(func.coalesce(func.sum(REFUNDS.c.amount_minor), 0)).where(
            REFUNDS.c.payment_id == payment_id, REFUNDS.c.status.in_(_RESERVING)))
        return int(total or 0)

    # ------------------------------------------------------------ asking for a refund

    async def request(self, ask: RefundRequest) -> tuple[Refund, bool]:
        """Reserve and ask the provider. Returns (refund, created); a replayed idempotency key is (first, False).

        Raises LinkError: 404 not_found, 409 not_refundable, 400 payment_required / amount (too large,
        not positive), 409 idempotency_conflict.
        """
        if ask.idempotency_key:
            existing = await self._by_key(ask.merchant_id, ask.idempotency_key)
            if existing is not None:
                return self._replay(existing, ask), False
        link = await self.links.get(ask.link_id, ask.merchant_id)
        if link is None:
            raise LinkError("not_found", "no such link", field="id", status=404)
        choices = await self.refundable(link.id)
        if ask.payment_id is not None:
            chosen = next((c for c in choices if c.payment.id == ask.payment_id), None)
            if chosen is None:
                known = await self.payment(ask.payment_id, ask.merchant_id)
                if known is None or known.link_id != link.id:
                    raise LinkError("invalid_payment", "payment_id does not name a payment of this link",
                                    field="payment_id")
                raise LinkError("not_refundable", "that payment has nothing left to refund", field="payment_id",
                                status=409)
        elif not choices:
            raise LinkError("not_refundable", f"this link has nothing to refund (it is {link.status})", field="id",
                            status=409)
        elif len(choices) > 1:
            raise LinkError("payment_required", "this link has more than one refundable payment; say which with "
                            "payment_id (" + ", ".join(c.payment.id for c in choices) + ")", field="payment_id")
        else:
            chosen = choices[0]
        payment = chosen.payment
        amount = chosen.refundable_minor if ask.amount_minor is None else ask.amount_minor
        self._check_amount(amount, chosen.refundable_minor, payment.currency)
        now = self.clock()
        refund_id = ids.prefixed("re")
        try:
            async with self.db.write() as conn:
                # Lock the payment (PostgreSQL; SQLite's write transaction is already exclusive), then count
                # again: ten requests at once see each other's reservations, never more than was paid.
                await conn.execute(select(PAYMENTS.c.id).where(PAYMENTS.c.id == payment.id).with_for_update())
                if ask.idempotency_key:
                    again = await self._by_key(ask.merchant_id, ask.idempotency_key, conn)
                    if again is not None:
                        return self._replay(again, ask), False
                left = payment.amount_minor - await self._reserved(conn, payment.id)
                if left <= 0:
                    raise LinkError("not_refundable", "this payment has nothing left to refund", field="id",
                                    status=409)
                if ask.amount_minor is None:
                    amount = left
                self._check_amount(amount, left, payment.currency)
                refund = Refund(
                    id=refund_id, payment_id=payment.id, link_id=link.id, merchant_id=ask.merchant_id,
                    amount_minor=amount, currency=payment.currency, status=RefundStatus.PENDING,
                    reason=(ask.reason or "").strip()[:500] or None, requested_by=ask.requested_by[:200],
                    requested_by_name=(ask.requested_by_name or None), provider=payment.provider,
                    provider_ref=None, failure_reason=None,
                    idempotency_key=ask.idempotency_key or f"paylinks:{refund_id}",
                    request_hash=ask.request_hash, created_at=now, updated_at=now, completed_at=None,
                )
                await conn.execute(REFUNDS.insert().values(**refund.model_dump()))
        except IntegrityError:
            # Two requests with one idempotency key raced; the other one won.
            if ask.idempotency_key:
                existing = await self._by_key(ask.merchant_id, ask.idempotency_key)
                if existing is not None:
                    return self._replay(existing, ask), False
            raise
        log.info("refund requested refund=%s payment=%s link=%s amount_minor=%s by=%s", refund.id, payment.id,
                 link.id, amount, ask.requested_by)
        return await self._ask_provider(refund, payment), True

    @staticmethod
    def _check_amount(amount: int, left: int, currency: str) -> None:
        if amount <= 0:
            raise LinkError("invalid_amount", "amount must be greater than zero", field="amount")
        if amount > left:
            raise LinkError("amount_too_large", f"amount must be at most {amount_str(left, currency)} {currency} "
                            "(what is left to refund)", field="amount")

    async def _by_key(self, merchant_id: str, key: str, conn: DbConnection | None = None) -> Refund | None:
        query = select(REFUNDS).where(REFUNDS.c.merchant_id == merchant_id, REFUNDS.c.idempotency_key == key)
        if conn is not None:
            row = (await conn.execute(query)).first()
        else:
            async with self.db.read() as reader:
                row = (await reader.execute(query)).first()
        return _row_to_refund(row) if row else None

    @staticmethod
    def _replay(existing: Refund, ask: RefundRequest) -> Refund:
        if existing.request_hash != ask.request_hash or existing.link_id != ask.link_id:
            raise LinkError("idempotency_conflict", "this Idempotency-Key was already used with a different request",
                            field="Idempotency-Key", status=409)
        return existing

    async def _ask_provider(self, refund: Refund, payment: Payment) -> Refund:
        provider = (await self.providers.for_account(payment.provider, payment.account) if self.providers is not None
                    else self.provider)
        if provider is None or provider.name != payment.provider or not isinstance(provider, RefundingProvider):
            return await self.settle(refund.id, RefundState.FAILED, reason=f"paylinks cannot refund through "
                                     f"{payment.provider} here; refund it from the provider's dashboard") or refund
        try:
            answer = await provider.refund(payment, refund.amount_minor, refund.id,
                                           reason=refund.reason)
        except RefundRefused as exc:
            return await self.settle(refund.id, RefundState.FAILED, reason=str(exc)[:500] or "refused") or refund
        except RefundUnavailable as exc:
            # Unknown whether it went through (a timeout): keep the money reserved and ask again with the same
            # idempotency key (retry_unsent), never a second refund.
            note = f"{payment.provider} could not be reached ({str(exc)[:200]}); asking again shortly"
            async with self.db.write() as conn:
                await conn.execute(update(REFUNDS).where(REFUNDS.c.id == refund.id, REFUNDS.c.status ==
                                                         RefundStatus.PENDING.value)
                                   .values(failure_reason=note[:500], updated_at=self.clock()))
            return await self.get(refund.id) or refund
        except Exception as exc:  # a bug in an adapter must not leave money reserved forever
            log.exception("refund call failed refund=%s", refund.id)
            return await self.settle(refund.id, RefundState.FAILED,
                                     reason=f"unexpected {type(exc).__name__}; nothing was refunded") or refund
        return await self.settle(refund.id, answer.state, provider_ref=answer.provider_ref,
                                 reason=answer.reason) or refund

    async def retry_unsent(self, *, now: datetime | None = None, batch: int = 50) -> int:
        """Ask again for pending refunds the provider never answered (the sweeper); give up after a day."""
        now = now or self.clock()
        async with self.db.read() as conn:
            rows = (await conn.execute(
                select(REFUNDS).where(REFUNDS.c.status == RefundStatus.PENDING.value, REFUNDS.c.provider_ref.is_(None),
                                      REFUNDS.c.updated_at <= now - RETRY_AFTER)
                .order_by(REFUNDS.c.updated_at).limit(batch))).all()
        asked = 0
        for row in rows:
            refund = _row_to_refund(row)
            if refund.created_at <= now - GIVE_UP_AFTER:
                await self.settle(refund.id, RefundState.FAILED, reason=f"{refund.provider} could not be reached "
                                  f"for {GIVE_UP_AFTER.days * 24} hours; nothing is known to have been refunded")
                continue
            async with self.db.write() as conn:
                claimed = await conn.execute(update(REFUNDS).where(
                    REFUNDS.c.id == refund.id, REFUNDS.c.updated_at == refund.updated_at).values(updated_at=now))
                found = (await conn.execute(select(PAYMENTS).where(PAYMENTS.c.id == refund.payment_id))).first()
            if claimed.rowcount != 1 or found is None:
                continue  # another process took it
            await self._ask_provider(refund, _row_to_payment(found))
            asked += 1
        return asked

    # ------------------------------------------------------------ the provider's answer

    async def settle(self, refund_id: str, state: RefundState, *, provider_ref: str | None = None,
                     reason: str | None = None) -> Refund | None:
        """Apply what the provider says about one refund, in ONE transaction; a repeat changes nothing."""
        now = self.clock()
        async with self.db.write() as conn:
            await self._settle(conn, refund_id, state, provider_ref=provider_ref, reason=reason, now=now)
        return await self.get(refund_id)

    async def _settle(self, conn: DbConnection, refund_id: str, state: RefundState, *, provider_ref: str | None,
                      reason: str | None, now: datetime) -> bool:
        row = (await conn.execute(select(REFUNDS).where(REFUNDS.c.id == refund_id))).first()
        if row is None:
            return False
        refund = _row_to_refund(row)
        if provider_ref and not refund.provider_ref:
            await conn.execute(update(REFUNDS).where(REFUNDS.c.id == refund_id)
                               .values(provider_ref=provider_ref[:200], updated_at=now))
        if state is RefundState.PENDING:
            return False
        to = RefundStatus(state.value)
        sources = [s.value for s, targets in REFUND_TRANSITIONS.items() if to in targets]
        moved = await conn.execute(
            update(REFUNDS).where(REFUNDS.c.id == refund_id, REFUNDS.c.status.in_(sources))
            .values(status=to.value, updated_at=now, completed_at=now,
                    failure_reason=(reason or None) if to is RefundStatus.FAILED else None))
        if moved.rowcount != 1:
            return False  # already final: a webhook after the API answer, or a redelivery
        payment = _row_to_payment((await conn.execute(
            select(PAYMENTS).where(PAYMENTS.c.id == refund.payment_id).with_for_update())).one())
        link_row = (await conn.execute(select(LINKS).where(LINKS.c.id == refund.link_id))).one()
        if to is RefundStatus.SUCCEEDED:
            refunded = payment.amount_refunded_minor + refund.amount_minor
            status = payment_status_after(PaymentStatus(payment.status), payment.amount_minor, refunded)
            await conn.execute(update(PAYMENTS).where(PAYMENTS.c.id == payment.id)
                               .values(amount_refunded_minor=refunded, status=status.value))
            totals = (await conn.execute(
                select(func.sum(PAYMENTS.c.amount_minor), func.sum(PAYMENTS.c.amount_refunded_minor))
                .where(PAYMENTS.c.link_id == refund.link_id))).one()
            if int(totals[1] or 0) >= int(totals[0] or 0) and link_row.status == LinkStatus.PAID.value:
                await self.links.transition(conn, refund.link_id, LinkStatus.REFUNDED, now, payment=payment)
        final = refund.model_copy(update={"status": to, "failure_reason": reason if to is RefundStatus.FAILED
                                          else None, "completed_at": now})
        await self._refund_alert(conn, link_row, payment, final, now)
        if to is RefundStatus.SUCCEEDED and self.refund_hooks:
            link_after = _row_to_link((await conn.execute(select(LINKS).where(LINKS.c.id == refund.link_id))).one())
            payment_after = payment.model_copy(update={"amount_refunded_minor": refunded, "status": status})
            for hook in self.refund_hooks:
                await hook(conn, link_after, payment_after, final)
        log.info("refund %s refund=%s payment=%s link=%s", to.value, refund.id, payment.id, refund.link_id)
        return True

    async def handle_event(self, event: PaymentEvent) -> PaymentOutcome:
        """A verified provider event that is not a payment: refund confirmations, failures, disputes."""
        now = self.clock()
        if event.kind in ("refund.succeeded", "refund.failed"):
            return await self._refund_event(event, now)
        if event.kind in (EVENT_PAYMENT_FAILED, EVENT_DISPUTE):
            return await self._problem_event(event, now)
        return PaymentOutcome.IGNORED

    async def _refund_event(self, event: PaymentEvent, now: datetime) -> PaymentOutcome:
        state = RefundState.SUCCEEDED if event.kind == "refund.succeeded" else RefundState.FAILED
        async with self.db.write() as conn:
            if not await insert_ignore(conn, EVENTS, {"provider": event.provider, "event_id": event.event_id,
                                                      "received_at": now}):
                return PaymentOutcome.DUPLICATE
            refund_id = await self._refund_of(conn, event)
            if refund_id is None:
                log.warning("refund event for no refund of ours provider=%s refund_ref=%s", event.provider,
                            event.refund_ref)
                return PaymentOutcome.IGNORED
            await self._settle(conn, refund_id, state, provider_ref=event.refund_ref, reason=event.reason, now=now)
        return PaymentOutcome.RECORDED

    @staticmethod
    async def _refund_of(conn: DbConnection, event: PaymentEvent) -> str | None:
        if event.refund_ref:
            found = await conn.scalar(select(REFUNDS.c.id).where(REFUNDS.c.provider == event.provider,
                                                                 REFUNDS.c.provider_ref == event.refund_ref))
            if found:
                return str(found)
        if event.refund_id:
            # Our id, echoed by the provider (its webhook may beat its own API answer here).
            found = await conn.scalar(select(REFUNDS.c.id).where(REFUNDS.c.provider == event.provider,
                                                                 REFUNDS.c.id == event.refund_id))
            if found:
                return str(found)
        return None

    async def _problem_event(self, event: PaymentEvent, now: datetime) -> PaymentOutcome:
        async with self.db.write() as conn:
            if not await insert_ignore(conn, EVENTS, {"provider": event.provider, "event_id": event.event_id,
                                                      "received_at": now}):
                return PaymentOutcome.DUPLICATE
            link_row = None
            payment = None
            if event.payment_ref:
                found = (await conn.execute(select(PAYMENTS).where(
                    PAYMENTS.c.provider == event.provider, PAYMENTS.c.payment_ref == event.payment_ref))).first()
                payment = _row_to_payment(found) if found else None
            if payment is None and event.provider_ref:
                found = (await conn.execute(select(PAYMENTS).where(
                    PAYMENTS.c.provider == event.provider, PAYMENTS.c.provider_ref == event.provider_ref))).first()
                payment = _row_to_payment(found) if found else None
            link_id = payment.link_id if payment is not None else event.link_id
            if link_id:
                link_row = (await conn.execute(select(LINKS).where(LINKS.c.id == link_id))).first()
            if link_row is None:
                log.warning("%s for no link of ours provider=%s ref=%s", event.kind, event.provider,
                            event.payment_ref or event.provider_ref)
                return PaymentOutcome.UNKNOWN_LINK
            if event.kind == EVENT_PAYMENT_FAILED and link_row.status != LinkStatus.ACTIVE.value:
                # A failed try that arrives after the link was paid or closed is old news: nothing to tell.
                return PaymentOutcome.IGNORED
            details: dict[str, Any] = {"provider": event.provider, "reason": event.reason,
                                       "amount": amount_str(event.amount_minor, event.currency) if event.currency
                                       else None, "amount_minor": event.amount_minor or None,
                                       "currency": event.currency or None,
                                       "payment_id": payment.id if payment else None}
            await insert_ignore(conn, RECORDS, {
                "link_id": link_row.id, "type": event.kind, "at": now, "count": 1, "details": details,
                "dedupe_key": f"{event.provider}:{event.event_id}"[:255]})
            await self._problem_alert(conn, link_row, event, now)
        return PaymentOutcome.RECORDED

    # ------------------------------------------------------------ double payments

    async def _double_payment_alert(self, conn: DbConnection, link: PaymentLink, payment: Payment) -> None:
        locale = await self._locale(conn, link.merchant_id)
        amount = f"**{format_money(payment.amount_minor, payment.currency, locale)}**"
        status = self.links.status_of(link)
        wrong = (payment.amount_minor, payment.currency) != (link.amount_minor, link.currency) or \
            payment.livemode != link.livemode

        def text(t: Tr) -> str:
            paid = (t.gettext("%(amount)s by %(payer)s", amount=amount, payer=payment.payer_name)
                    if payment.payer_name else amount)
            values = {"amount": paid, "description": link.description}
            if wrong:
                why = t.gettext("⚠️ Paid the wrong amount or in the wrong mode: %(amount)s — %(description)s", **values)
            elif status is LinkStatus.PAID:
                why = t.gettext("⚠️ Paid twice: %(amount)s — %(description)s", **values)
            else:
                why = t.gettext("⚠️ Paid after the link was %(status)s: %(amount)s — %(description)s",
                                status=t.gettext(STATUS_WORD[status]).casefold(), **values)
            action = (t.gettext("I am refunding the second payment.") if self.auto_refund_duplicates
                      else t.gettext("Send %(command)s to give it back.", command=f"`/refund {payment.id}`"))
            return f"{why}\n{action}"

        await self._alert(conn, link, EVENT_DOUBLE, payment.id, text, now=self.clock())

    async def _after_double_payment(self, payment: Payment) -> None:
        if not self.auto_refund_duplicates:
            return
        async with self.db.read() as conn:
            merchant_id = await conn.scalar(select(LINKS.c.merchant_id).where(LINKS.c.id == payment.link_id))
        refund, created = await self.request(RefundRequest(
            link_id=payment.link_id, merchant_id=str(merchant_id), payment_id=payment.id,
            reason="paid twice: automatic refund", requested_by=AUTO, requested_by_name="paylinks",
            idempotency_key=f"auto-refund:{payment.id}"))
        if created:
            await AuditLog(self.db, clock=self.clock).record(
                str(merchant_id), "link.refunded", Actor("paylinks (a double payment, refunded automatically)",
                                                         "system"),
                link_id=payment.link_id, refund_id=refund.id, amount=amount_str(refund.amount_minor, refund.currency),
                currency=refund.currency, status=str(refund.status))
        log.info("double payment refunded automatically payment=%s refund=%s status=%s", payment.id, refund.id,
                 refund.status)

    # ------------------------------------------------------------ alerts

    async def _locale(self, conn: DbConnection, merchant_id: str) -> str:
        return str(await conn.scalar(select(MERCHANTS.c.locale).where(MERCHANTS.c.id == merchant_id)) or "en")

    async def _refund_alert(self, conn: DbConnection, link: Any, payment: Payment, refund: Refund,
                            now: datetime) -> None:
        locale = await self._locale(conn, link.merchant_id)
        amount = f"**{format_money(refund.amount_minor, refund.currency, locale)}**"
        succeeded = refund.status is RefundStatus.SUCCEEDED

        def text(t: Tr) -> str:
            values = {"amount": amount, "payer": payment.payer_name, "description": link.description,
                      "provider": payment.provider}
            if succeeded:
                head = (t.gettext("↩️ Refunded %(amount)s to %(payer)s — %(description)s", **values)
                        if payment.payer_name else t.gettext("↩️ Refunded %(amount)s — %(description)s", **values))
                confirmed = t.gettext("%(provider)s confirmed it.", **values)
                return f"{head}\n{confirmed}"
            head = (t.gettext("❌ Refund of %(amount)s to %(payer)s failed — %(description)s", **values)
                    if payment.payer_name else t.gettext("❌ Refund of %(amount)s failed — %(description)s", **values))
            # The provider's reason is its own words, as it gave them.
            return f"{head}\n" + t.gettext("%(provider)s said: %(reason)s", provider=payment.provider,
                                             reason=refund.failure_reason or "-")

        # The link's own message changes only for the payment that paid it (recorded when paid_at was set).
        applied = link.paid_at is not None and payment.created_at == link.paid_at
        await self._alert(conn, link, EVENT_REFUNDED if succeeded else EVENT_REFUND_FAILED, refund.id, text,
                          now=now, edit=succeeded and applied)

    async def _problem_alert(self, conn: DbConnection, link: Any, event: PaymentEvent, now: datetime) -> None:
        locale = await self._locale(conn, link.merchant_id)
        amount = f"**{format_money(event.amount_minor or link.amount_minor, event.currency or link.currency, locale)}**"

        def text(t: Tr) -> str:
            values = {"amount": amount, "description": link.description, "provider": event.provider}
            reason = f" ({event.reason})" if event.reason else ""  # the provider's words, as it gave them
            if event.kind == EVENT_DISPUTE:
                return t.gettext("⚠️ Disputed: %(amount)s — %(description)s", **values) + reason + "\n" + t.gettext(
                    "The customer asked their bank for the money back. Answer the dispute in your %(provider)s "
                    "dashboard with proof of the sale before its deadline, or accept it.", **values)
            return t.gettext("⚠️ Payment failed: %(amount)s — %(description)s", **values) + reason + "\n" + t.gettext(
                "Nothing was charged; the link is still open, so the customer can try again (or send them a new one).")

        await self._alert(conn, link, event.kind, event.event_id, text, now=now)

    async def _alert(self, conn: DbConnection, link: Any, event: str, key: str, text: Callable[[Tr], str], *,
                     now: datetime, edit: bool = False) -> None:
        """The seller hears of it where the link was made and in every chat subscribed with /alerts on, each
        chat in its own language (core/outbox.py's target_facts)."""
        targets: list[Target] = []
        if link.origin_platform and link.origin_address:
            targets.append(Target(link.origin_platform, link.origin_address))
        subs = (await conn.execute(select(SUBSCRIPTIONS.c.platform, SUBSCRIPTIONS.c.address)
                                   .where(SUBSCRIPTIONS.c.merchant_id == link.merchant_id)
                                   .order_by(SUBSCRIPTIONS.c.id))).all()
        for sub in subs:
            if Target(sub.platform, sub.address) not in targets:
                targets.append(Target(sub.platform, sub.address))
        edit_target = None
        if edit and link.origin_message:
            ref = MessageRef.from_dict(link.origin_message)
            edit_target = Target(ref.platform, ref.address)
        skip, languages = await target_facts(conn, [*targets, *([edit_target] if edit_target else [])])
        shop_language = i18n.language_of_locale(await self._locale(conn, link.merchant_id))
        rows = []
        for t in targets:
            if t in skip:
                continue
            language = reader_language(t, languages, shop_language, customer=False)
            reply = Reply(text(i18n.tr(language)), link_id=link.id)
            rows.append(new_row(target=t, kind=f"{event}.alert",
                                body=payload(ACTION_SEND, reply, event=event, language=language),
                                key=dedupe_key(event, key, "alert", t.platform, t.address), now=now,
                                merchant_id=link.merchant_id, link_id=link.id))
        if edit_target is not None and link.origin_message:
            ref = MessageRef.from_dict(link.origin_message)
            language = reader_language(edit_target, languages, shop_language, customer=False)
            t_ = i18n.tr(language)
            first = text(t_).split("\n", 1)[0]
            was = t_.gettext("(was a payment link; see %(command)s)", command=f"/status {link.id[:8]}")
            rows.append(new_row(target=edit_target, kind=f"{event}.edit",
                                body=payload(ACTION_EDIT, Reply(f"{first}\n{was}", link_id=link.id), event=event,
                                             ref=ref, language=language),
                                key=dedupe_key(event, key, "edit", ref.platform, ref.address), now=now,
                                merchant_id=link.merchant_id, link_id=link.id))
        await insert_rows(conn, rows)
        if self.wake is not None:
            self.wake()

    # ------------------------------------------------------------ the pay page's first view

    async def record_view(self, link_id: str, *, at: datetime | None = None, count: int = 1) -> None:
        """`link.opened` is stored once (at the first view); later views add to its count. The pay pages
        gather views and pass how many there were since the last write, and when the first of them was."""
        now = at or self.clock()
        async with self.db.write(busy_timeout=0.2) as conn:
            if not await insert_ignore(conn, RECORDS, {"link_id": link_id, "type": "link.opened", "at": now,
                                                       "count": count, "details": {},
                                                       "dedupe_key": f"{link_id}:link.opened"}):
                await conn.execute(update(RECORDS).where(RECORDS.c.dedupe_key == f"{link_id}:link.opened")
                                   .values(count=RECORDS.c.count + count))


__all__ = ["RefundAnswer", "RefundRequest", "RefundService", "Refundable", "payment_status_after"]
