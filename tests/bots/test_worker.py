"""The outbox dispatcher (issue 4): pacing, digests, error handling, concurrency, and where it runs.

Most tests drive one round at a time (`Dispatcher.run_once`) on hand-moved clocks — the wall clock the
rows use and the monotonic one pacing uses — with in-memory senders that record what they are given.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.registry import pacing_limits
from bots.dispatcher import Dispatcher, DispatcherConfig
from core.db import Database
from core.links import LinkDraft, LinkService
from core.merchants import MerchantService
from core.models import AlertSubscription, OutboxMessage
from core.money import Money
from core.outbox import NOTICE_KIND, Outbox, OutboxStore, RetryPolicy
from core.pacing import Pacer
from core.ports import AddressMoved, MessageRef, PaymentEvent, Permanent, Reply, RetryLater, Transient
from core.sql import table
from tests.conftest import LiveApp

OUTBOX = table(OutboxMessage)
SUBS = table(AlertSubscription)
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Clocks:
    """The wall clock (rows, leases) and the monotonic clock (pacing), moved together by hand."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


class RecordingSender:
    """A ChatSender that records, can fail on cue, and can be slow (to watch concurrency)."""

    def __init__(self, platform: str, clocks: Clocks | None = None, delay_s: float = 0.0) -> None:
        self.platform = platform
        self.clocks = clocks
        self.delay_s = delay_s
        self.messages: list[tuple[str, str, str, float]] = []  # (action, address, text, monotonic time)
        self.errors: dict[str, list[Exception]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrived = asyncio.Event()

    def fail(self, address: str, *errors: Exception) -> None:
        self.errors.setdefault(address, []).extend(errors)

    async def close(self) -> None:
        """Nothing to release."""

    async def _record(self, action: str, address: str, reply: Reply) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            queued = self.errors.get(address)
            if queued:
                raise queued.pop(0)
            self.messages.append((action, address, reply.text, self.clocks.mono if self.clocks else 0.0))
            self.arrived.set()
        finally:
            self.in_flight -= 1

    async def send(self, address: str, reply: Reply) -> MessageRef:
        await self._record("send", address, reply)
        return MessageRef(self.platform, address, f"m{len(self.messages)}")

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        await self._record("edit", ref.address, reply)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def texts(self, address: str | None = None) -> list[str]:
        return [m[2] for m in self.messages if address is None or m[1] == address]


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox(link_url=lambda link_id: f"https://pay.example/p/{link_id}")


@pytest.fixture
def links(db: Database, clocks: Clocks, outbox: Outbox) -> LinkService:
    service = LinkService(db, public_base_url="https://pay.example", default_expiry=timedelta(days=7),
                          max_amount=Decimal("10000"), clock=clocks.now)
    service.hooks.append(outbox)
    return service


@pytest.fixture
async def merchant_id(db: Database, clocks: Clocks) -> str:
    service = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clocks.now)
    return (await service.create("Cake Shop")).id


@pytest.fixture
def senders(clocks: Clocks) -> dict[str, RecordingSender]:
    return {"telegram": RecordingSender("telegram", clocks), "slack": RecordingSender("slack", clocks)}


def make_dispatcher(db: Database, senders: dict[str, Any], clocks: Clocks, **config: Any) -> Dispatcher:
    return Dispatcher(
        OutboxStore(db, clock=clocks.now), senders,
        # Exact limits (no safety margin per chat) keep the arithmetic below readable.
        pacer=Pacer(pacing_limits(), clock=clocks.monotonic, target_margin=0),
        config=DispatcherConfig(**config), clock=clocks.now, monotonic=clocks.monotonic, rand=lambda: 0.0,
        worker_id="test-worker",
    )


_events = iter(range(1, 1_000_000))


async def pay(links: LinkService, merchant_id: str, *, chat: str = "42", minor: int = 2500,
              message: bool = False, payer: str | None = None) -> str:
    n = next(_events)
    link, _ = await links.create(LinkDraft(merchant_id=merchant_id, money=Money(minor, "SGD"),
                                           description=f"order {n}", origin_platform="telegram",
                                           origin_address=chat))
    if message:
        await links.attach_message(link.id, MessageRef("telegram", chat, f"link-{n}"))
    await links.record_payment(PaymentEvent("sandbox", f"evt_{n}", "payment.succeeded", link.id, f"ch_{n}",
                                            minor, "SGD", payer_name=payer))
    return link.id


async def outbox_rows(db: Database) -> list[OutboxMessage]:
    async with db.read() as conn:
        found = (await conn.execute(select(OUTBOX).order_by(OUTBOX.c.id))).all()
    return [OutboxMessage.model_construct(**r._mapping) for r in found]


# ---------------------------------------------------------------- one round at a time


async def test_a_paid_alert_is_sent_and_marked_with_the_platform_message_id(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    await pay(links, merchant_id, message=True, payer="Alice")
    dispatcher = make_dispatcher(db, senders, clocks)
    # The answer first (the phone buzzes); the edit of the link message waits for the chat's next slot.
    assert await dispatcher.run_once() == 1
    clocks.advance(1)
    assert await dispatcher.run_once() == 1
    telegram = senders["telegram"]
    assert [(m[0], m[1]) for m in telegram.messages] == [("send", "42"), ("edit", "42")]
    assert telegram.messages[0][2].startswith("✅ Paid (🧪 Test mode): **S$25.00** — order")  # the sandbox
    assert "by Alice" in telegram.messages[0][2]
    edit, alert = await outbox_rows(db)
    assert (edit.status, alert.status) == ("sent", "sent")
    assert alert.message_ref == {"platform": "telegram", "address": "42", "message_id": "m1", "extra": {}}
    assert edit.message_ref is not None and edit.message_ref["message_id"].startswith("link-")


async def test_recording_outcomes_is_retried_and_a_batch_never_recorded_is_left_to_its_lease(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await pay(links, merchant_id, chat="1")
    dispatcher = make_dispatcher(db, senders, clocks)
    complete = dispatcher.store.complete
    failures = iter([True, True, False])  # the database refuses twice, then takes the outcomes

    async def flaky(**kwargs: Any) -> Any:
        if next(failures, False):
            raise OSError("database went away")
        return await complete(**kwargs)

    monkeypatch.setattr(dispatcher.store, "complete", flaky)
    assert await dispatcher.run_once() == 1
    assert [row.status for row in await outbox_rows(db)] == ["sent"]

    async def down(**kwargs: Any) -> Any:
        raise OSError("database went away")

    await pay(links, merchant_id, chat="3")
    clocks.advance(5)
    monkeypatch.setattr(dispatcher.store, "complete", down)
    assert await dispatcher.run_once() == 1  # sent, but its outcome could not be written: no exception
    first, second = await outbox_rows(db)
    assert first.status == "sent" and second.status != "sent" and second.lease_until is not None


async def test_retry_after_is_honoured_exactly_and_holds_that_chat_back(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    await pay(links, merchant_id)
    senders["telegram"].fail("42", RetryLater(30))
    dispatcher = make_dispatcher(db, senders, clocks)
    await dispatcher.run_once()
    [row] = await outbox_rows(db)
    assert row.next_attempt_at == T0 + timedelta(seconds=30) and row.attempts == 1
    clocks.advance(29.9)
    await dispatcher.run_once()
    assert senders["telegram"].messages == []
    clocks.advance(0.1)
    await dispatcher.run_once()
    assert len(senders["telegram"].messages) == 1
    assert [r.status for r in await outbox_rows(db)] == ["sent"]


async def test_a_backlog_of_paid_alerts_for_one_chat_becomes_one_digest(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    for n in range(12):
        await pay(links, merchant_id, payer="Bob" if n == 0 else None)
        clocks.advance(2)  # the payments came in over the last 24 seconds
    dispatcher = make_dispatcher(db, senders, clocks)
    assert await dispatcher.run_once() == 12
    [text] = senders["telegram"].texts()
    lines = text.split("\n")
    assert lines[0] == "✅ **12 payments** (🧪 Test mode) in the last minute, **S$300.00** in all:"
    assert len(lines) == 13 and "· Bob ·" in lines[1]
    rows = await outbox_rows(db)
    assert {r.status for r in rows} == {"sent"} and len({str(r.message_ref) for r in rows}) == 1


async def test_alerts_arriving_while_a_chat_waits_for_its_slot_join_one_digest(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    dispatcher = make_dispatcher(db, senders, clocks)
    await pay(links, merchant_id, minor=1000)
    await dispatcher.run_once()
    assert senders["telegram"].texts()[0].startswith("✅ Paid (🧪 Test mode): **S$10.00**")
    for minor in (200, 300, 400):
        clocks.advance(0.2)
        await pay(links, merchant_id, minor=minor)
        await dispatcher.run_once()  # the chat's next slot is at +1 s: the alerts wait, together
    assert len(senders["telegram"].messages) == 1
    clocks.advance(0.4)
    await dispatcher.run_once()
    texts = senders["telegram"].texts()
    assert len(texts) == 2
    assert texts[1].startswith("✅ **3 payments** (🧪 Test mode) in the last minute, **S$9.00** in all:")


async def test_sends_to_a_group_are_paced_and_far_slots_go_back_to_the_table(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    for _ in range(3):
        await pay(links, merchant_id, chat="-100", message=True)
    dispatcher = make_dispatcher(db, senders, clocks)
    await dispatcher.run_once()
    telegram = senders["telegram"]
    assert [m[0] for m in telegram.messages] == ["send"]  # the 3 alerts as one digest, first
    # Groups get one message every 3 s: the first edit waits here, the others (6 s away, beyond the
    # hold horizon) went back to the table due at their slot, unleased.
    waiting = [r for r in await outbox_rows(db) if r.status == "pending"]
    released = [r for r in waiting if r.leased_by is None]
    assert len(waiting) == 3 and len(released) == 2
    assert {r.next_attempt_at for r in released} == {T0 + timedelta(seconds=6)}
    for _ in range(4):
        clocks.advance(3)
        await dispatcher.run_once()
    assert [m[0] for m in telegram.messages] == ["send", "edit", "edit", "edit"]
    times = [m[3] for m in telegram.messages]
    assert all(b - a >= 3 for a, b in itertools.pairwise(times))
    assert {r.status for r in await outbox_rows(db)} == {"sent"}


async def test_sends_that_fall_due_together_after_a_stall_still_leave_one_slot_apart(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    for _ in range(3):
        await pay(links, merchant_id, message=True)
    dispatcher = make_dispatcher(db, senders, clocks)
    await dispatcher.run_once()  # the digest of the 3 alerts; the 3 edits are planned at +1, +2, +3 s
    clocks.advance(10)  # the process stalled: every planned moment has passed
    await dispatcher.run_once()
    telegram = senders["telegram"]
    assert [m[0] for m in telegram.messages] == ["send", "edit"]  # not all three edits at once
    clocks.advance(1)
    await dispatcher.run_once()
    clocks.advance(1)
    await dispatcher.run_once()
    assert [m[0] for m in telegram.messages] == ["send", "edit", "edit", "edit"]
    times = [m[3] for m in telegram.messages]
    assert all(b - a >= 1 for a, b in itertools.pairwise(times))


async def test_a_blocked_chat_is_disabled_and_the_seller_hears_of_it_in_another_chat(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    async with db.write() as conn:
        await conn.execute(SUBS.insert().values(merchant_id=merchant_id, platform="slack", address="C1",
                                                created_at=T0))
    await pay(links, merchant_id)
    senders["telegram"].fail("42", Permanent("Forbidden: bot was blocked by the user"))
    dispatcher = make_dispatcher(db, senders, clocks)
    await dispatcher.run_once()
    clocks.advance(1)  # the notice goes to the Slack channel that was just sent to: its next slot
    await dispatcher.run_once()
    assert senders["telegram"].messages == []
    slack = senders["slack"].texts("C1")
    assert len(slack) == 2 and slack[0].startswith("✅ Paid")
    assert "can no longer send messages to the telegram chat `42`" in slack[1]
    rows = await outbox_rows(db)
    assert [(r.address, r.kind, r.status) for r in rows] == [
        ("42", "link.paid.alert", "dead"), ("C1", "link.paid.alert", "sent"), ("C1", NOTICE_KIND, "sent")]
    # The next payment does not even try the blocked chat.
    await pay(links, merchant_id)
    clocks.advance(2)
    await dispatcher.run_once()
    assert senders["telegram"].messages == [] and len(senders["slack"].texts("C1")) == 3


async def test_a_group_that_moved_is_followed_to_its_new_id(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    await pay(links, merchant_id, chat="-100")
    senders["telegram"].fail("-100", AddressMoved("-1009"))
    dispatcher = make_dispatcher(db, senders, clocks)
    await dispatcher.run_once()
    clocks.advance(3)
    await dispatcher.run_once()
    assert [m[1] for m in senders["telegram"].messages] == ["-1009"]
    [row] = await outbox_rows(db)
    assert (row.address, row.status, row.attempts) == ("-1009", "sent", 2)


async def test_transient_errors_back_off_then_the_row_is_dead(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    await pay(links, merchant_id)
    senders["telegram"].fail("42", *[Transient("502 from the platform")] * 3)
    dispatcher = make_dispatcher(db, senders, clocks, retry=RetryPolicy(max_attempts=3))
    await dispatcher.run_once()
    [row] = await outbox_rows(db)
    assert row.next_attempt_at == T0 + timedelta(seconds=1)  # first step 2 s, jitter 0 -> half of it
    clocks.advance(1)
    await dispatcher.run_once()
    [row] = await outbox_rows(db)
    assert row.next_attempt_at == clocks.now() + timedelta(seconds=2) and row.attempts == 2
    clocks.advance(2)
    await dispatcher.run_once()
    [row] = await outbox_rows(db)
    assert (row.status, row.attempts, row.last_error) == ("dead", 3, "Transient: 502 from the platform")


async def test_a_sender_bug_counts_as_transient_and_keeps_no_message(
    db: Database, links: LinkService, merchant_id: str, senders: dict[str, RecordingSender], clocks: Clocks
) -> None:
    await pay(links, merchant_id)
    senders["telegram"].fail("42", KeyError("token=123:SECRET"))
    dispatcher = make_dispatcher(db, senders, clocks)
    await dispatcher.run_once()
    [row] = await outbox_rows(db)
    assert (row.status, row.last_error) == ("pending", "unexpected KeyError")


# ---------------------------------------------------------------- the loop in real time


async def test_at_most_concurrency_sends_are_in_flight(sqlite_database_url: str) -> None:
    db = Database(sqlite_database_url)
    try:
        outbox = Outbox(link_url=lambda link_id: link_id)
        links = LinkService(db, public_base_url="https://pay.example", default_expiry=timedelta(days=7),
                            max_amount=Decimal("10000"))
        links.hooks.append(outbox)
        merchant = await MerchantService(db, default_currency="SGD", default_locale="en_SG").create("Shop")
        sender = RecordingSender("console", delay_s=0.02)
        dispatcher = Dispatcher(OutboxStore(db), {"console": sender}, pacer=Pacer({}),
                                config=DispatcherConfig(concurrency=3), outbox=outbox)
        task = asyncio.create_task(dispatcher.run())
        for n in range(30):
            link, _ = await links.create(LinkDraft(merchant_id=merchant.id, money=Money(100, "SGD"),
                                                   description="x", origin_platform="console",
                                                   origin_address=f"chat-{n}"))
            await links.record_payment(PaymentEvent("sandbox", f"e{n}", "payment.succeeded", link.id, f"c{n}",
                                                    100, "SGD"))
        await sender.wait_for(30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert sender.max_in_flight == 3
        assert {r.status for r in await outbox_rows(db)} == {"sent"}
    finally:
        await db.dispose()


async def test_serve_runs_the_dispatcher_and_rows_without_a_sender_never_stop_it(sqlite_live: LiveApp) -> None:
    services = sqlite_live.services
    sender = RecordingSender("fakechat")
    services.senders["fakechat"] = sender
    merchant = await services.merchants.create("Shop", currency="SGD", locale="en_SG")
    made = []
    for platform in ("nowhere", "fakechat"):
        link, _ = await services.links.create(LinkDraft(merchant_id=merchant.id, money=Money(990, "SGD"),
                                                        description="tart", origin_platform=platform,
                                                        origin_address="room-1"))
        made.append(link)
        await services.links.record_payment(PaymentEvent("sandbox", f"e-{platform}", "payment.succeeded",
                                                         link.id, f"c-{platform}", 990, "SGD"))
    await sender.wait_for(1)
    sent_at = sender.messages[0][2].rsplit("\nat ", 1)[-1]  # the shop's clock: "12:56 am SGT"
    assert sent_at.endswith(" SGT")
    assert sender.messages[0][1:3] == ("room-1", "✅ Paid (🧪 Test mode): **S$9.90** — tart\nat " + sent_at)
    async with asyncio.timeout(10):
        while True:
            rows = {r.platform: r for r in await outbox_rows(services.db)}
            if rows["fakechat"].status == "sent" and rows["nowhere"].last_error:
                break
            await asyncio.sleep(0.05)
    assert rows["nowhere"].status == "pending"
    assert "no sender configured" in (rows["nowhere"].last_error or "")


# ---------------------------------------------------------------- the operator's commands


BIN = Path(sys.executable).parent / "paylinks"


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=60)


async def test_paylinks_outbox_lists_pending_and_dead_rows_and_requeues_them(
    sqlite_database_url: str, clocks: Clocks
) -> None:
    db = Database(sqlite_database_url)
    try:
        links = LinkService(db, public_base_url="https://pay.example", default_expiry=timedelta(days=7),
                            max_amount=Decimal("10000"), clock=clocks.now)
        links.hooks.append(Outbox(link_url=lambda link_id: link_id))
        merchant = await MerchantService(db, default_currency="SGD", default_locale="en_SG",
                                         clock=clocks.now).create("Shop")
        await pay(links, merchant.id, chat="1")
        await pay(links, merchant.id, chat="2")
        await pay(links, merchant.id, chat="3")
        sender = RecordingSender("telegram", clocks)
        sender.fail("1", Permanent("chat not found"))
        sender.fail("2", Transient("boom"))
        dispatcher = make_dispatcher(db, {"telegram": sender}, clocks, retry=RetryPolicy(max_attempts=1))
        for _ in range(3):  # three chats, 1/30 s apart (Telegram's overall limit)
            await dispatcher.run_once()
            clocks.advance(0.04)
    finally:
        await db.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env["PAYLINKS_DATABASE__URL"] = sqlite_database_url
    listed = run_cli(env, "outbox")
    assert listed.returncode == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    assert header.split("\t") == ["id", "status", "platform", "address", "kind", "attempts", "next_attempt_at",
                                  "last_error"]
    fields = [line.split("\t") for line in lines]
    assert [(f[1], f[3], f[7]) for f in fields] == [
        ("dead", "1", "Permanent: chat not found"), ("dead", "2", "Transient: boom")]
    assert "0 pending, 2 dead, 1 sent" in listed.stderr
    again = run_cli(env, "outbox", "retry", fields[0][0])
    assert (again.returncode, again.stdout.strip()) == (0, "requeued 1 row")
    sent_id = str(int(fields[1][0]) + 1)
    refused = run_cli(env, "outbox", "retry", sent_id)
    assert refused.returncode == 2 and "was sent already" in refused.stderr
    everything = run_cli(env, "outbox", "retry", "--dead")
    assert everything.stdout.strip() == "requeued 1 row"
    after = [line.split("\t")[1] for line in run_cli(env, "outbox").stdout.splitlines()[1:]]
    assert after == ["pending", "pending"]



async def test_a_dispatcher_woken_and_cancelled_at_once_stops(db: Database, clocks: Clocks) -> None:
    """Shutdown often lands just as new outbox rows wake the dispatcher (a link cancelled, a payment
    recorded). On Python 3.11, asyncio.wait_for returned the wake-up and dropped the cancel, so the
    dispatcher ran on and `paylinks serve` never exited."""
    dispatcher = make_dispatcher(db, {}, clocks)
    pause = asyncio.create_task(dispatcher._sleep(30))
    await asyncio.sleep(0)  # the pause is waiting now
    dispatcher.kick()
    pause.cancel()
    done, _ = await asyncio.wait([pause], timeout=5)
    assert pause in done and pause.cancelled()
