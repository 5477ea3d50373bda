"""The outbox dispatcher: claim due rows, pace them, send them through the platforms' ChatSenders.

One loop per process (inside `paylinks serve`, or alone as `paylinks worker`):

1. Claim a batch of due rows under a lease (core.outbox.OutboxStore.claim).
2. Plan: group them by target into jobs — a job is one message: a single row, or several paid alerts
   for one chat merged into a digest — and reserve each job's slot in the token buckets (core.pacing).
   A job whose slot is further away than the hold horizon goes back to the table, due at that slot,
   so no row is held under a lease for long.
3. Start jobs when their slot comes, at most `concurrency` at once; classify the result (core.outbox.
   decide) and record outcomes in one transaction per batch. A job keeps its place among the
   `concurrency` until its outcome is committed, so at most that many messages are ever "sent but not
   yet recorded" — the most a crash can duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters import registry
from bots.config import OutboxBase as OutboxSettings
from bots.config import WebhooksSettings
from core.backoff import Random
from core.clock import Clock, utcnow
from core.db import DatabaseBusy
from core.digest import digest_reply
from core.models import OutboxMessage
from core.outbox import (
    ACTION_EDIT,
    DIGEST_KIND,
    REMINDER_KIND,
    CompletionReport,
    Outbox,
    OutboxStore,
    Outcome,
    RetryPolicies,
    RetryPolicy,
    Target,
    decide,
)
from core.outbox_texts import AlertFacts
from core.pacing import MonotonicClock, Pacer, PlatformLimits
from core.ports import ChatSender, Dropped, MessageRef, Reply, RetryLater, Transient
from core.webhooks import ACTION_WEBHOOK, RowDeliverer
from core.webhooks import KIND_PREFIX as WEBHOOK_KIND_PREFIX

if TYPE_CHECKING:
    from bots.services import Services

log = logging.getLogger("paylinks.dispatcher")


# Tries to record a batch's outcomes before leaving its rows to their lease.
RECORD_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    concurrency: int = 8
    lease: timedelta = timedelta(seconds=60)
    poll_interval_s: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Kinds with a policy of their own, by kind prefix (merchant webhooks retry for days).
    retry_by_kind: tuple[tuple[str, RetryPolicy], ...] = ()
    # Most rows one digest merges (the text lists the newest; the count and totals cover all).
    digest_limit: int = 500
    # How often rows for platforms without a sender are looked at (last_error, dead after max_age).
    housekeeping_s: float = 5.0

    def policy_for(self, kind: str) -> RetryPolicy:
        return RetryPolicies(self.retry, self.retry_by_kind).for_kind(kind)

    @property
    def claim_batch(self) -> int:
        return max(2 * self.concurrency, 16)

    @property
    def hold_horizon_s(self) -> float:
        # Rows wait locally for their pacing slot only well within their lease.
        return min(5.0, self.lease.total_seconds() / 4)

    @property
    def send_timeout_s(self) -> float:
        return max(1.0, min(30.0, self.lease.total_seconds() / 3))


def config_from_settings(outbox: OutboxSettings, webhooks: WebhooksSettings | None = None) -> DispatcherConfig:
    by_kind: tuple[tuple[str, RetryPolicy], ...] = ()
    if webhooks is not None:
        by_kind = ((WEBHOOK_KIND_PREFIX, webhook_retry_policy(webhooks)),)
    return DispatcherConfig(
        concurrency=max(1, outbox.concurrency),
        lease=outbox.lease,
        poll_interval_s=max(0.01, outbox.poll_interval.total_seconds()),
        retry=RetryPolicy(max_attempts=max(1, outbox.max_attempts), max_age=outbox.max_age),
        retry_by_kind=by_kind,
    )


def webhook_retry_policy(webhooks: WebhooksSettings) -> RetryPolicy:
    """Merchant webhooks: backoff capped at an hour, until [webhooks] max_age (3 days) has passed."""
    return RetryPolicy(max_attempts=1_000_000, max_age=webhooks.max_age, backoff_base_s=5.0, backoff_cap_s=3600.0)


def pacing_limits(outbox: OutboxSettings) -> dict[str, PlatformLimits]:
    """Parse the [outbox] rates of every chat platform plug-in (RateError names the bad setting)."""
    return registry.pacing_limits(outbox)


def check_outbox_settings(outbox: OutboxSettings) -> None:
    """Start-up check of [outbox]; the ValueError names the setting."""
    pacing_limits(outbox)  # RateError (a ValueError) names the rate setting
    for name in ("concurrency", "max_attempts"):
        if getattr(outbox, name) < 1:
            raise ValueError(f"outbox.{name}: must be at least 1, got {getattr(outbox, name)}")
    for name in ("lease", "poll_interval", "max_age"):
        if getattr(outbox, name).total_seconds() <= 0:
            raise ValueError(f"outbox.{name}: must be longer than zero")


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


_sequence = itertools.count()


@dataclass(eq=False)
class Job:
    target: Target
    rows: list[OutboxMessage]
    at: float  # monotonic moment the pacer allows it to start
    digest: bool = False  # paid alerts for one chat: may merge with its other waiting ones
    seq: int = field(default_factory=lambda: next(_sequence))
    started: bool = False

    def __lt__(self, other: Job) -> bool:
        return (self.at, self.seq) < (other.at, other.seq)


class Dispatcher:
    def __init__(
        self,
        store: OutboxStore,
        senders: Mapping[str, ChatSender],
        *,
        pacer: Pacer,
        config: DispatcherConfig = DispatcherConfig(),
        clock: Clock = utcnow,
        monotonic: MonotonicClock = time.monotonic,
        rand: Random = random.random,
        worker_id: str | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.store = store
        # Read live: adapters register their senders while the app starts.
        self.senders = senders
        self.pacer = pacer
        # The same limits applied to actual start times (see _start_due). A platform-wide limit lets a
        # start that came a millisecond late be followed by an on-time one (two tokens), or every bit of
        # timer lateness would add up and the rate would sink well below the allowed one; a chat's own
        # limit stays strict.
        self.gate = Pacer(pacer.limits, clock=pacer.clock, platform_burst=2, target_margin=pacer.target_margin)
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self.rand = rand
        self.worker_id = worker_id or new_worker_id()
        self.outbox = outbox
        self._queue: list[Job] = []  # jobs waiting for their slot (a heap by start time)
        self._open_digests: dict[Target, Job] = {}  # waiting paid-alert jobs that more alerts can join
        self._running: set[asyncio.Task[None]] = set()
        self._slots = 0  # jobs started and not yet recorded
        self._done: list[tuple[Job, list[Outcome]]] = []
        self._wake = asyncio.Event()
        self._done_event = asyncio.Event()
        self._kicked = False
        self._kicked_at = -math.inf
        self._recheck_at = math.inf
        self._last_poll = -math.inf
        self._last_claim_full = False
        self._last_housekeeping = -math.inf
        self.sent_messages = 0  # counters for logs and benchmarks
        self.sent_rows = 0

    # ------------------------------------------------------------ waking

    def kick(self) -> None:
        """New rows were written in this process (maybe not committed yet): look now and again shortly."""
        self._kicked = True
        self._kicked_at = self.monotonic()
        self._wake.set()

    # ------------------------------------------------------------ claiming and planning

    async def poll(self) -> int:
        """Claim due rows and plan them into jobs; returns the number of rows claimed."""
        self._last_poll = self.monotonic()
        rows = await self.store.claim(
            worker=self.worker_id, platforms=list(self.senders), limit=self.config.claim_batch,
            lease=self.config.lease,
        )
        self._last_claim_full = len(rows) >= self.config.claim_batch
        if rows:
            await self._plan(rows)
        return len(rows)

    async def _plan(self, rows: list[OutboxMessage]) -> None:
        now = self.monotonic()
        wall = self.clock()
        give_back: dict[float, list[int]] = {}
        groups: dict[Target, list[OutboxMessage]] = {}
        for row in rows:
            groups.setdefault(Target(row.platform, row.address), []).append(row)
        for target, target_rows in groups.items():
            alerts = [r for r in target_rows if r.kind == DIGEST_KIND]
            others = [r for r in target_rows if r.kind != DIGEST_KIND]
            batches: list[tuple[list[OutboxMessage], bool]] = []
            if alerts:
                waiting = self._open_digests.get(target)
                if waiting is not None and not waiting.started:
                    waiting.rows.extend(alerts)  # joins the alert already waiting for this chat's slot
                    waiting.digest = True
                else:
                    batches.append((alerts, True))
            batches.extend(([r], False) for r in others)
            for batch, is_alert in batches:
                ready = self.pacer.ready_at(target.platform, target.address, now)
                if ready - now > self.config.hold_horizon_s:
                    give_back.setdefault(ready - now, []).extend(_stored_ids(batch))
                    continue
                at = self.pacer.reserve(target.platform, target.address, now)
                # A paid alert that has to wait for its chat's slot may gather later alerts meanwhile.
                job = Job(target, batch, at, digest=is_alert and (len(batch) > 1 or at > now))
                heapq.heappush(self._queue, job)
                if is_alert:
                    self._open_digests[target] = job
        for delay, ids in give_back.items():
            await self.store.release(worker=self.worker_id, ids=ids, at=wall + timedelta(seconds=delay))

    # ------------------------------------------------------------ sending

    def _start_due(self) -> int:
        started = 0
        now = self.monotonic()
        while self._queue and self._queue[0].at <= now and self._slots < self.config.concurrency:
            job = heapq.heappop(self._queue)
            if self._open_digests.get(job.target) is job:
                del self._open_digests[job.target]
            job.started = True
            self._slots += 1
            task = asyncio.create_task(self._run_job(job), name=f"outbox-send-{job.seq}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            started += 1
        return started

    async def _run_job(self, job: Job) -> None:
        outcomes: list[Outcome] | None = []
        try:
            outcomes = await self._send_job(job)
        except Exception:  # a bug here must not lose the slot or the rows: they retry after the lease
            log.exception("outbox job failed unexpectedly target_platform=%s", job.target.platform)
        if outcomes is None:
            # The gate said "not yet": back in the queue for its moment, its slot free meanwhile.
            job.started = False
            heapq.heappush(self._queue, job)
            self._slots -= 1
            self._wake.set()
            return
        self._done.append((job, outcomes))
        self._done_event.set()

    async def _send_job(self, job: Job) -> list[Outcome] | None:
        if job.digest:
            known = {r.id for r in job.rows}
            room = self.config.digest_limit - len(job.rows)
            if room > 0:
                more = await self.store.claim_target(
                    worker=self.worker_id, target=job.target, kind=DIGEST_KIND, limit=room,
                    lease=self.config.lease,
                )
                job.rows.extend(r for r in more if r.id not in known)
        sender = self.senders.get(job.target.platform)
        ref: MessageRef | None = None
        error: BaseException | None = None
        try:
            if sender is None:
                raise Transient(f"no sender configured for {job.target.platform}")
            ready = self._through_gate(job.target)
            if ready is not None:
                job.at = ready
                return None
            async with asyncio.timeout(self.config.send_timeout_s):
                ref = await self._deliver(sender, job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # classified by decide(); unexpected ones count as transient
            error = exc
        now = self.clock()
        if isinstance(error, RetryLater):
            self.pacer.block(job.target.platform, job.target.address, error.after_s)
            self.gate.block(job.target.platform, job.target.address, error.after_s)
        if error is None:
            self.sent_messages += 1
            self.sent_rows += len(job.rows)
        return [decide(row, error, now=now, policy=self.config.policy_for(row.kind), ref=ref, rand=self.rand)
                for row in job.rows]

    def _through_gate(self, target: Target) -> float | None:
        """None when the send may leave now (and it is counted); else the moment it may.

        The plan said "now", but a busy loop (or the digest's extra claim waiting for the database)
        can make a send go out late, right before the next one planned a slot later: the gate checks
        the moments sends actually leave against the same limits.
        """
        now = self.monotonic()
        ready = self.gate.ready_at(target.platform, target.address, now)
        if ready > now + 1e-3:
            return ready
        self.gate.reserve(target.platform, target.address, now)
        return None

    async def _deliver(self, sender: ChatSender, job: Job) -> MessageRef:
        address = job.target.address
        if len(job.rows) > 1:
            facts = [AlertFacts.from_dict(r.payload["facts"]) for r in job.rows]
            # In the language the alerts themselves were written in (core/outbox.py: the chat's).
            language = job.rows[-1].payload.get("language")
            return await sender.send(address, digest_reply(facts, self.clock(),
                                                           language=str(language) if language else None))
        row = job.rows[0]
        body = row.payload
        if row.kind == REMINDER_KIND and not await self.store.link_is_open(row.link_id):
            raise Dropped("the link was paid, cancelled or expired before its reminder went out")
        if isinstance(sender, RowDeliverer) and body.get("action") != ACTION_EDIT:
            return await sender.deliver(row)  # webhooks and email need the whole row, not only a Reply
        if body.get("action") == ACTION_WEBHOOK:
            raise Transient(f"the {job.target.platform} sender cannot deliver webhooks")
        reply = Reply.from_dict(body["reply"])
        if body.get("action") == ACTION_EDIT:
            ref = MessageRef.from_dict(body["ref"])
            await sender.edit(ref, reply)
            return ref
        return await sender.send(address, reply)

    # ------------------------------------------------------------ recording outcomes

    async def flush(self) -> int:
        """Record every finished job's outcomes in one transaction; frees their slots."""
        if not self._done:
            return 0
        batch, self._done = self._done, []
        outcomes = [o for _, job_outcomes in batch for o in job_outcomes]
        report = CompletionReport()
        try:
            # Plain retries of one write (the rows stay leased meanwhile; CancelledError is never retried).
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(RECORD_ATTEMPTS), wait=wait_exponential(multiplier=0.1, max=2.0),
                retry=retry_if_exception_type(Exception), reraise=True,
                before_sleep=lambda state: log.warning(
                    "outbox could not record %d outcomes (try %d): %s", len(outcomes), state.attempt_number,
                    type(state.outcome.exception()).__name__ if state.outcome else "?"),
            ):
                with attempt:
                    report = await self.store.complete(
                        worker=self.worker_id, outcomes=outcomes, notice_platforms=list(self.senders)
                    )
        except Exception as exc:
            # Never recorded: the rows are retried once their lease lapses (a send may then repeat).
            log.warning("outbox gave up recording %d outcomes after %d tries: %s", len(outcomes), RECORD_ATTEMPTS,
                        type(exc).__name__)
        self._slots -= len(batch)
        for target in report.disabled:
            self._drop_waiting(target)
        return len(outcomes)

    def _drop_waiting(self, target: Target) -> None:
        """The target was disabled: its waiting jobs' rows are dead already, so never send them."""
        kept = [j for j in self._queue if j.target != target]
        if len(kept) != len(self._queue):
            self._queue = kept
            heapq.heapify(self._queue)
        self._open_digests.pop(target, None)

    # ------------------------------------------------------------ one round, and the loop

    async def run_once(self) -> int:
        """Claim, plan, send what is due now and record it (tests drive the dispatcher with this)."""
        await self.poll()
        handled = 0
        while True:
            self._start_due()
            if not self._running:
                break
            await asyncio.wait(set(self._running))
            handled += await self.flush()
        handled += await self.flush()
        return handled

    def _can_claim(self) -> bool:
        # With enough work in hand, claiming more would only hold leases longer.
        return len(self._queue) < self.config.concurrency and self._slots < self.config.concurrency

    def _should_poll(self, now: float) -> bool:
        if not self._can_claim():
            return False
        if self._kicked or now >= self._recheck_at or self._last_claim_full:
            return True
        return now - self._last_poll >= self.config.poll_interval_s

    async def run(self) -> None:
        """Until cancelled. Never raises for a failed round: it logs and tries again after a pause."""
        if self.outbox is not None:
            self.outbox.add_waker(self.kick)
        flusher = asyncio.create_task(self._flush_loop(), name="outbox-flush")
        log.info("outbox dispatcher running worker=%s concurrency=%d", self.worker_id, self.config.concurrency)
        try:
            while True:
                try:
                    await self._round()
                except asyncio.CancelledError:
                    raise
                except DatabaseBusy as busy:  # another process held the database; nothing to fix here
                    log.warning("outbox dispatcher round skipped: database busy (%s); retrying", busy.reason)
                    await asyncio.sleep(self.config.poll_interval_s)
                except Exception:
                    log.exception("outbox dispatcher round failed; retrying")
                    await asyncio.sleep(self.config.poll_interval_s)
        finally:
            if self.outbox is not None:
                self.outbox.remove_waker(self.kick)
            await self._shutdown(flusher)

    async def _round(self) -> None:
        now = self.monotonic()
        if now - self._last_housekeeping >= self.config.housekeeping_s:
            self._last_housekeeping = now
            await self.store.mark_unsendable(platforms=list(self.senders), max_age=self.config.retry.max_age)
        if self._should_poll(now):
            kicked, self._kicked = self._kicked, False
            self._recheck_at = math.inf
            self._wake.clear()
            found = await self.poll()
            if found == 0 and kicked and self.monotonic() - self._kicked_at < 0.3:
                # Woken by a transaction that had not committed yet: look again very soon.
                self._recheck_at = self.monotonic() + 0.02
        self._start_due()
        await self._sleep(self._idle_timeout())

    def _idle_timeout(self) -> float:
        now = self.monotonic()
        if self._slots >= self.config.concurrency:
            return self.config.poll_interval_s  # a finished job wakes the loop
        candidates = [self._recheck_at - now]
        if self._can_claim():
            candidates.append(self._last_poll + self.config.poll_interval_s - now)
            if self._last_claim_full or self._kicked:
                candidates.append(0.0)
        if self._queue:
            candidates.append(self._queue[0].at - now)
        return max(0.0, min(candidates))

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        # asyncio.timeout, not wait_for: on Python 3.11 a cancel that lands while wait_for's own timeout
        # is firing comes out as TimeoutError, and suppressing that swallowed shutdown (the loop ran on).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _flush_loop(self) -> None:
        while True:
            await self._done_event.wait()
            self._done_event.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox flush failed")
            self._wake.set()

    async def _shutdown(self, flusher: asyncio.Task[None]) -> None:
        """Let sends in flight finish (briefly), record them, and hand waiting rows back."""
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await flusher
        try:
            if self._running:
                await asyncio.wait(set(self._running), timeout=5)
            for task in list(self._running):
                task.cancel()
            await self.flush()
            waiting = _stored_ids(r for job in self._queue for r in job.rows)
            self._queue.clear()
            self._open_digests.clear()
            if waiting:
                await self.store.release(worker=self.worker_id, ids=waiting, at=self.clock())
        except Exception:  # shutting down: whatever is left is retried when its lease lapses
            log.warning("outbox dispatcher shutdown could not record everything; leases will lapse")
        log.info("outbox dispatcher stopped worker=%s", self.worker_id)


def _stored_ids(rows: Iterable[OutboxMessage]) -> list[int]:
    """The ids of rows read back from the database (only a row not yet INSERTed has id None)."""
    return [r.id for r in rows if r.id is not None]


def build_dispatcher(services: Services, **overrides: Any) -> Dispatcher:
    """The dispatcher for a Services container (bots.services), configured from its settings."""
    settings = services.settings
    kwargs: dict[str, Any] = {
        "pacer": Pacer(pacing_limits(settings.outbox)),
        "config": config_from_settings(settings.outbox, settings.webhooks),
        "clock": services.clock,
        "outbox": getattr(services, "outbox", None),
    }
    kwargs.update(overrides)
    store = OutboxStore(services.db, clock=services.clock, address_rules=registry.address_rules(),
                        fallbacks=registry.fallbacks(settings))
    return Dispatcher(store, services.senders, **kwargs)


async def run_dispatcher(services: Services, on_ready: Callable[[Dispatcher], None] | None = None) -> None:
    dispatcher = build_dispatcher(services)
    if on_ready is not None:
        on_ready(dispatcher)
    await dispatcher.run()
