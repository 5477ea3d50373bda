"""The outbox (issue 4): rows written in the link's transaction, claims under leases, outcomes.

Storage tests run on SQLite and PostgreSQL; `decide`, backoff and digests are pure and run once.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from adapters.registry import address_rules
from core.backoff import backoff_delay
from core.db import Database
from core.digest import digest_reply, span_words
from core.links import Customer, LinkDraft, LinkEvent, LinkEventKind, LinkService
from core.merchants import MerchantService
from core.models import AlertSubscription, ChatTarget, Member, OutboxMessage, PaymentLink
from core.money import Money
from core.outbox import (
    NOTICE_KIND,
    Outbox,
    OutboxStore,
    Result,
    RetryPolicy,
    Target,
    decide,
    error_text,
)
from core.outbox_texts import AlertFacts, alert_reply, edited_link_reply, receipt_reply
from core.ports import AddressMoved, MessageRef, Permanent, RetryLater, Transient
from core.sql import table
from tests.clock import T0, FakeClock

OUTBOX = table(OutboxMessage)
SUBS = table(AlertSubscription)
TARGETS = table(ChatTarget)
MEMBERS = table(Member)
LINKS = table(PaymentLink)


# ---------------------------------------------------------------- pure parts


def test_backoff_grows_exponentially_with_equal_jitter_and_a_cap() -> None:
    low = [backoff_delay(n, base_s=2, cap_s=600, rand=lambda: 0.0) for n in range(1, 12)]
    high = [backoff_delay(n, base_s=2, cap_s=600, rand=lambda: 0.999999) for n in range(1, 12)]
    assert low[:5] == [1, 2, 4, 8, 16]  # never less than half the step: no instant retry
    assert high[:3] == pytest.approx([2, 4, 8], rel=1e-5)
    assert max(high) <= 600 and low[-1] == 300
    assert backoff_delay(10_000, rand=lambda: 0.5) <= 600  # huge attempt counts stay finite


def _row(**kw: Any) -> OutboxMessage:
    values: dict[str, Any] = {
        "id": 1, "platform": "telegram", "address": "42", "kind": "link.paid.alert", "attempts": 0,
        "payload": {"action": "send", "reply": {"text": "hi"}}, "dedupe_key": "k", "created_at": T0,
        "next_attempt_at": T0, "status": "pending", "merchant_id": "mer_1", "link_id": None,
    }
    values.update(kw)
    return OutboxMessage.model_construct(**values)


POLICY = RetryPolicy(max_attempts=5, max_age=timedelta(hours=1))


def test_retry_after_is_honoured_exactly() -> None:
    now = T0 + timedelta(minutes=1)
    outcome = decide(_row(), RetryLater(7.5), now=now, policy=POLICY)
    assert outcome.result is Result.RETRY
    assert outcome.next_attempt_at == now + timedelta(seconds=7.5)
    assert outcome.attempts == 1 and outcome.error == "RetryLater: rate limited"


def test_rate_limits_do_not_use_up_attempts_but_max_age_still_ends_them() -> None:
    many = _row(attempts=40)
    assert decide(many, RetryLater(1), now=T0, policy=POLICY).result is Result.RETRY
    late = T0 + timedelta(minutes=59, seconds=50)
    assert decide(many, RetryLater(30), now=late, policy=POLICY).result is Result.DEAD


def test_transient_errors_back_off_with_jitter_then_die() -> None:
    first = decide(_row(), Transient("502 from the platform"), now=T0, policy=POLICY, rand=lambda: 0.0)
    assert first.result is Result.RETRY and first.next_attempt_at == T0 + timedelta(seconds=1)
    third = decide(_row(attempts=2), Transient("x"), now=T0, policy=POLICY, rand=lambda: 0.0)
    assert third.next_attempt_at == T0 + timedelta(seconds=4)
    assert decide(_row(attempts=4), Transient("x"), now=T0, policy=POLICY).result is Result.DEAD
    old = T0 + timedelta(hours=1)
    assert decide(_row(), Transient("x"), now=old, policy=POLICY).result is Result.DEAD


def test_permanent_errors_stop_at_once_and_disable_the_target_but_not_for_an_edit() -> None:
    outcome = decide(_row(), Permanent("Forbidden: bot was blocked by the user"), now=T0, policy=POLICY)
    assert outcome.result is Result.DISABLED and outcome.attempts == 1
    assert outcome.error == "Permanent: Forbidden: bot was blocked by the user"
    edit = _row(payload={"action": "edit", "reply": {"text": "x"}, "ref": {}})
    assert decide(edit, Permanent("message to edit not found"), now=T0, policy=POLICY).result is Result.DEAD


def test_a_moved_chat_is_retried_at_once_at_its_new_address() -> None:
    outcome = decide(_row(), AddressMoved("-100999"), now=T0, policy=POLICY)
    assert outcome.result is Result.MOVED
    assert outcome.new_address == "-100999" and outcome.next_attempt_at == T0


def test_unexpected_errors_are_retried_and_keep_no_message_that_could_hold_a_secret() -> None:
    outcome = decide(_row(), ValueError("https://api.example/bot123:SECRET/sendMessage"), now=T0, policy=POLICY)
    assert outcome.result is Result.RETRY
    assert outcome.error == "unexpected ValueError"
    assert error_text(TimeoutError()) == "Transient: timed out"


def test_sent_keeps_the_platform_message_ref() -> None:
    ref = MessageRef("telegram", "42", "901")
    outcome = decide(_row(attempts=2), None, now=T0, policy=POLICY, ref=ref)
    assert (outcome.result, outcome.attempts, outcome.ref) == (Result.SENT, 3, ref)


def _facts(minor: int, currency: str = "SGD", minutes_ago: float = 0, **kw: Any) -> AlertFacts:
    return AlertFacts(event="link.paid", link_id=f"l{minor}", amount_minor=minor, currency=currency,
                      description="cake", at=T0 - timedelta(minutes=minutes_ago), locale="en_SG", **kw)


def test_digest_counts_totals_per_currency_and_lists_the_payments() -> None:
    facts = [_facts(2500, minutes_ago=0.5 - n / 100, payer_name="Alice" if n == 0 else None) for n in range(12)]
    reply = digest_reply(facts, T0)
    head, *lines = reply.text.split("\n")
    assert head == "✅ **12 payments** in the last minute, **S$300.00** in all:"
    assert len(lines) == 12 and lines[0] == "• S$25.00 — cake · Alice · 7:59\u202fpm SGT"
    mixed = digest_reply([_facts(2500), _facts(15000000, "IDR")], T0)
    # One total per currency, each in the merchant's locale (en_SG writes rupiah as IDR).
    assert "**IDR 150,000.00 + S$25.00** in all:" in mixed.text


def test_test_money_is_marked_in_every_text_and_never_added_to_live_totals() -> None:
    test = _facts(2500, livemode=False)
    assert alert_reply(test).text.startswith("✅ Paid (🧪 Test mode): **S$25.00** — cake")
    assert alert_reply(_facts(2500)).text.startswith("✅ Paid: **S$25.00** — cake")
    assert "✅ Paid (🧪 Test mode) at" in edited_link_reply(test).text
    assert "🧪 Test mode: no real money was charged." in receipt_reply(test).text
    assert "🧪" not in receipt_reply(_facts(2500)).text
    assert AlertFacts.from_dict(test.to_dict()).livemode is False
    assert AlertFacts.from_dict({k: v for k, v in test.to_dict().items() if k != "livemode"}).livemode is True

    mixed = digest_reply([_facts(2500, minutes_ago=0.2), _facts(9900, minutes_ago=0.1, livemode=False)], T0)
    head, *lines = mixed.text.split("\n")
    assert head == ("✅ **2 payments** in the last minute, **S$25.00** in all "
                    "(+ S$99.00 in 🧪 test mode, not counted):")
    assert lines == ["• S$25.00 — cake · 7:59\u202fpm SGT", "• 🧪 S$99.00 — cake · 7:59\u202fpm SGT"]
    only_test = digest_reply([_facts(2500, livemode=False), _facts(100, livemode=False)], T0)
    assert only_test.text.startswith("✅ **2 payments** (🧪 Test mode) in the last minute, **S$26.00** in all:")


def test_a_long_digest_shows_the_newest_and_says_how_many_earlier() -> None:
    facts = [_facts(100 * n, minutes_ago=30 - n) for n in range(1, 31)]
    reply = digest_reply(facts, T0, max_lines=5)
    lines = reply.text.split("\n")
    assert lines[0].startswith("✅ **30 payments** in the last 29 minutes, **S$465.00** in all")
    assert lines[1] == "… 25 earlier" and len(lines) == 7
    assert lines[-1].startswith("• S$30.00")


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(5, "in the last minute"), (60, "in the last minute"), (61, "in the last 2 minutes"),
     (3600, "in the last hour"), (7200, "in the last 2 hours"), (86400 * 3, "in the last 3 days")],
)
def test_digest_span_words(seconds: int, words: str) -> None:
    assert span_words(T0 - timedelta(seconds=seconds), T0) == words


# ---------------------------------------------------------------- with a database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox() -> Outbox:
    # The shipped platforms' address rules (the outbox itself knows none).
    return Outbox(link_url=lambda link_id: f"https://pay.example/p/{link_id}", customer_platform="whatsapp",
                  address_rules=address_rules())


@pytest.fixture
def links(db: Database, clock: FakeClock, outbox: Outbox) -> LinkService:
    service = LinkService(db, public_base_url="https://pay.example", default_expiry=timedelta(days=7),
                          max_amount=Decimal("10000"), clock=clock)
    service.hooks.append(outbox)
    return service


@pytest.fixture
async def merchant_id(db: Database, clock: FakeClock) -> str:
    service = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    return (await service.create("Cake Shop")).id


@pytest.fixture
def store(db: Database, clock: FakeClock) -> OutboxStore:
    return OutboxStore(db, clock=clock, address_rules=address_rules())


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.read() as conn:
        result = (await conn.execute(select(OUTBOX).order_by(OUTBOX.c.id))).all()
    return [OutboxMessage.model_construct(**r._mapping) for r in result]


async def subscribe(db: Database, merchant_id: str, platform: str, address: str) -> None:
    async with db.write() as conn:
        await conn.execute(SUBS.insert().values(merchant_id=merchant_id, platform=platform, address=address,
                                                created_at=T0))


async def paid_link(links: LinkService, merchant_id: str, n: int = 1, *, message: bool = True,
                    origin: str = "42", phone: str | None = None, payer: str | None = "Alice") -> str:
    from core.ports import PaymentEvent

    link, _ = await links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(2500, "SGD"), description="2 birthday cakes", reference="INV-7",
        origin_platform="telegram", origin_address=origin, customer=Customer(phone=phone),
    ))
    if message:
        await links.attach_message(link.id, MessageRef("telegram", origin, f"m{n}"))
    await links.record_payment(PaymentEvent("sandbox", f"evt_{n}", "payment.succeeded", link.id, f"ch_{n}",
                                            2500, "SGD", payer_name=payer))
    return link.id


async def test_paying_writes_edit_answer_subscriptions_and_receipt_in_one_go(
    db: Database, links: LinkService, merchant_id: str
) -> None:
    await subscribe(db, merchant_id, "slack", "C-ALERTS")
    await subscribe(db, merchant_id, "telegram", "42")  # the origin chat is also subscribed: answered once
    links.livemode = True  # real money: the texts carry no test mark
    link_id = await paid_link(links, merchant_id, phone="+6591234567")
    found = await rows(db)
    kinds = [(r.kind, r.platform, r.address) for r in found]
    assert kinds == [
        ("link.created.customer_link", "whatsapp", "whatsapp:+6591234567"),
        ("link.paid.edit", "telegram", "42"),
        ("link.paid.alert", "telegram", "42"),
        ("link.paid.alert", "slack", "C-ALERTS"),
        ("link.paid.receipt", "whatsapp", "whatsapp:+6591234567"),
    ]
    customer, edit, alert, _, receipt = found
    assert all(r.link_id == link_id and r.merchant_id == merchant_id and r.status == "pending" for r in found)
    assert edit.payload["action"] == "edit"
    assert edit.payload["ref"] == {"platform": "telegram", "address": "42", "message_id": "m1", "extra": {}}
    assert edit.payload["reply"]["buttons"] == []  # the Pay button goes
    assert alert.payload["action"] == "send"
    assert alert.payload["reply"]["text"] == (
        "✅ Paid: **S$25.00** — 2 birthday cakes\nby Alice · at 8:00\u202fpm SGT · ref INV-7")
    assert alert.payload["facts"]["amount_minor"] == 2500 and alert.payload["facts"]["locale"] == "en_SG"
    assert "Payment received" in receipt.payload["reply"]["text"] and "Cake Shop" in receipt.payload["reply"]["text"]
    link_info = customer.payload["link"]
    assert link_info == {"id": link_id, "url": f"https://pay.example/p/{link_id}", "amount_text": "S$25.00",
                         "description": "2 birthday cakes", "merchant_name": "Cake Shop"}
    assert customer.payload["reply"]["buttons"] == [{"label": "Pay S$25.00", "url": link_info["url"]}]


async def test_without_whatsapp_customers_get_nothing_and_without_a_message_nothing_is_edited(
    db: Database, links: LinkService, outbox: Outbox, merchant_id: str
) -> None:
    outbox.customer_platform = None
    await paid_link(links, merchant_id, message=False, phone="+6591234567", payer=None)
    found = await rows(db)
    assert [(r.kind, r.address) for r in found] == [("link.paid.alert", "42")]
    # A test-mode link (the sandbox): the alert says so beside its headline.
    assert found[0].payload["reply"]["text"] == (
        "✅ Paid (🧪 Test mode): **S$25.00** — 2 birthday cakes\nat 8:00\u202fpm SGT · ref INV-7")
    assert found[0].payload["facts"]["livemode"] is False


async def test_a_redelivered_event_writes_nothing_twice(
    db: Database, links: LinkService, outbox: Outbox, merchant_id: str
) -> None:
    await paid_link(links, merchant_id)
    before = await rows(db)
    link = await links.get(before[0].link_id or "")
    assert link is not None
    # The same event again (a hook run twice): the dedupe keys make it a no-op.
    async with db.write() as conn:
        await outbox(conn, LinkEvent(kind=LinkEventKind.PAID, link=link, at=T0))
    assert len(await rows(db)) == len(before)


async def test_rows_roll_back_with_the_link_change(
    db: Database, links: LinkService, merchant_id: str
) -> None:
    async def broken(conn: Any, event: LinkEvent) -> None:
        raise RuntimeError("something later in the transaction failed")

    link, _ = await links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"), description="cake",
                                           origin_platform="telegram", origin_address="42"))
    links.hooks.append(broken)
    with pytest.raises(RuntimeError):
        await links.cancel(link.id, merchant_id)
    assert await rows(db) == []
    assert (await links.get(link.id)).status == "active"  # type: ignore[union-attr]


async def test_expiry_edits_and_answers_cancel_only_edits(
    db: Database, links: LinkService, clock: FakeClock, merchant_id: str
) -> None:
    first, _ = await links.create(LinkDraft(merchant_id=merchant_id, money=Money(500, "SGD"), description="tea",
                                            origin_platform="telegram", origin_address="42"))
    await links.attach_message(first.id, MessageRef("telegram", "42", "m1"))
    second, _ = await links.create(LinkDraft(merchant_id=merchant_id, money=Money(700, "SGD"), description="pie",
                                             origin_platform="telegram", origin_address="42"))
    await links.attach_message(second.id, MessageRef("telegram", "42", "m2"))
    await links.cancel(second.id, merchant_id)
    clock.advance(days=8)
    await links.expire_due()
    found = [(r.kind, r.link_id) for r in await rows(db)]
    assert found == [
        ("link.cancelled.edit", second.id),
        ("link.expired.edit", first.id),
        ("link.expired.alert", first.id),
    ]


async def test_disabled_targets_are_skipped_until_they_write_to_us_again(
    db: Database, links: LinkService, clock: FakeClock, merchant_id: str
) -> None:
    async with db.write() as conn:
        await conn.execute(TARGETS.insert().values(platform="telegram", address="42", disabled_at=T0,
                                                   disabled_reason="blocked"))
    await paid_link(links, merchant_id, 1)
    assert [r.kind for r in await rows(db)] == []
    async with db.write() as conn:
        await conn.execute(update(TARGETS).values(last_inbound_at=T0 + timedelta(minutes=1)))
    await paid_link(links, merchant_id, 2)
    assert [r.kind for r in await rows(db)] == ["link.paid.edit", "link.paid.alert"]


async def test_claims_lease_rows_to_one_worker_until_the_lease_lapses(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    await paid_link(links, merchant_id, 1)
    await paid_link(links, merchant_id, 2)
    lease = timedelta(seconds=30)
    mine = await store.claim(worker="a", platforms=["telegram"], limit=3, lease=lease)
    assert len(mine) == 3 and all(r.leased_by == "a" for r in mine)
    rest = await store.claim(worker="b", platforms=["telegram"], limit=10, lease=lease * 4)
    assert len(rest) == 1
    assert await store.claim(worker="b", platforms=["telegram"], limit=10, lease=lease) == []
    assert await store.claim(worker="c", platforms=["slack"], limit=10, lease=lease) == []
    clock.advance(seconds=31)  # worker "a" died: its rows come back
    taken_over = await store.claim(worker="b", platforms=["telegram"], limit=10, lease=lease)
    assert sorted(r.id for r in taken_over) == sorted(r.id for r in mine)
    # "a" wakes up and reports: its outcome no longer counts, "b" owns the rows now.
    stale = [decide(r, None, now=clock(), policy=POLICY, ref=MessageRef("telegram", "42", "x")) for r in mine]
    await store.complete(worker="a", outcomes=stale)
    assert {r.status for r in await rows(db)} == {"pending"}
    done = [decide(r, None, now=clock(), policy=POLICY, ref=MessageRef("telegram", "42", "9")) for r in taken_over]
    await store.complete(worker="b", outcomes=done)
    sent = [r for r in await rows(db) if r.status == "sent"]
    assert len(sent) == 3 and all(r.message_ref and r.sent_at and r.leased_by is None for r in sent)
    assert all(r.attempts == 1 for r in sent)


async def test_retries_keep_attempts_next_time_and_error(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    await paid_link(links, merchant_id, message=False)
    [row] = await store.claim(worker="a", platforms=["telegram"], limit=5, lease=timedelta(seconds=30))
    await store.complete(worker="a", outcomes=[decide(row, RetryLater(12), now=clock(), policy=POLICY)])
    [stored] = await rows(db)
    assert stored.attempts == 1 and stored.next_attempt_at == T0 + timedelta(seconds=12)
    assert stored.last_error == "RetryLater: rate limited" and stored.leased_by is None
    assert await store.claim(worker="a", platforms=["telegram"], limit=5, lease=timedelta(seconds=30)) == []
    clock.advance(seconds=12)
    assert len(await store.claim(worker="a", platforms=["telegram"], limit=5, lease=timedelta(seconds=30))) == 1


async def test_a_permanent_error_disables_the_chat_stops_its_rows_and_tells_the_seller_elsewhere(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    await subscribe(db, merchant_id, "slack", "C-TEAM")
    await paid_link(links, merchant_id, 1, message=False)
    await paid_link(links, merchant_id, 2, message=False)
    claimed = await store.claim(worker="a", platforms=["telegram"], limit=1, lease=timedelta(seconds=30))
    assert claimed[0].address == "42"
    report = await store.complete(
        worker="a", outcomes=[decide(claimed[0], Permanent("Forbidden: bot was blocked by the user"),
                                     now=clock(), policy=POLICY)],
        notice_platforms=["slack"],
    )
    assert report.disabled == [Target("telegram", "42")] and report.notices == 1
    by_address = {(r.platform, r.address, r.kind): r for r in await rows(db)}
    assert {r.status for k, r in by_address.items() if k[1] == "42"} == {"dead"}  # both alerts stopped
    notice = by_address[("slack", "C-TEAM", NOTICE_KIND)]
    assert notice.status == "pending"
    assert "can no longer send messages to the telegram chat `42`" in notice.payload["reply"]["text"]
    assert "bot was blocked by the user" in notice.payload["reply"]["text"]
    async with db.read() as conn:
        target = (await conn.execute(select(TARGETS))).one()
    assert target.disabled_at == T0 and target.disabled_reason == "Permanent: Forbidden: bot was blocked by the user"
    # Later alerts skip the disabled chat (and still reach the subscribed one).
    await paid_link(links, merchant_id, 3, message=False)
    newest = [r for r in await rows(db) if r.link_id == (await rows(db))[-1].link_id]
    assert [(r.platform, r.address) for r in newest] == [("slack", "C-TEAM")]


async def test_an_undeliverable_customer_link_goes_back_to_the_seller_with_the_link(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    link, _ = await links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"), description="cake",
                                           origin_platform="telegram", origin_address="42",
                                           customer=Customer(phone="+6591234567")))
    [row] = await store.claim(worker="a", platforms=["whatsapp"], limit=5, lease=timedelta(seconds=30))
    failure = Permanent("63016 outside the 24-hour window and no template configured")
    await store.complete(worker="a", outcomes=[decide(row, failure, now=clock(), policy=POLICY)],
                         notice_platforms=["telegram"])
    notice = [r for r in await rows(db) if r.kind == NOTICE_KIND]
    assert [(r.platform, r.address) for r in notice] == [("telegram", "42")]
    text = notice[0].payload["reply"]["text"]
    assert "could not send the payment link for **S$25.00** (cake) to +6591234567 on WhatsApp" in text
    assert f"Send it to them yourself: https://pay.example/p/{link.id}" in text


async def test_with_no_other_chat_nobody_is_told_and_members_are_reached_directly(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    await paid_link(links, merchant_id, 1, message=False)
    [row] = await store.claim(worker="a", platforms=["telegram"], limit=5, lease=timedelta(seconds=30))
    report = await store.complete(worker="a", outcomes=[decide(row, Permanent("chat not found"), now=clock(),
                                                               policy=POLICY)])
    assert report.notices == 0
    async with db.write() as conn:
        await conn.execute(update(TARGETS).values(disabled_at=None))
        await conn.execute(MEMBERS.insert().values(merchant_id=merchant_id, platform="whatsapp",
                                                   platform_user_id="+6590000000", role="owner", created_at=T0))
    await paid_link(links, merchant_id, 2, message=False)
    [row] = await store.claim(worker="a", platforms=["telegram"], limit=5, lease=timedelta(seconds=30))
    report = await store.complete(worker="a", outcomes=[decide(row, Permanent("chat not found"), now=clock(),
                                                               policy=POLICY)])
    assert report.notices == 1
    assert [(r.platform, r.address) for r in await rows(db) if r.kind == NOTICE_KIND] == [
        ("whatsapp", "whatsapp:+6590000000")]


async def test_a_moved_chat_takes_its_subscription_links_and_waiting_rows_along(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    await subscribe(db, merchant_id, "telegram", "-100")
    link_id = await paid_link(links, merchant_id, origin="-100")
    claimed = await store.claim(worker="a", platforms=["telegram"], limit=1, lease=timedelta(seconds=30))
    report = await store.complete(
        worker="a", outcomes=[decide(claimed[0], AddressMoved("-1009999"), now=clock(), policy=POLICY)]
    )
    assert report.moved == [(Target("telegram", "-100"), Target("telegram", "-1009999"))]
    found = await rows(db)
    assert {r.address for r in found} == {"-1009999"} and {r.status for r in found} == {"pending"}
    edit = next(r for r in found if r.kind == "link.paid.edit")
    assert edit.payload["ref"]["address"] == "-1009999" and edit.leased_by is None
    async with db.read() as conn:
        subs = (await conn.execute(select(SUBS.c.address))).scalars().all()
        link = (await conn.execute(select(LINKS).where(LINKS.c.id == link_id))).one()
    assert subs == ["-1009999"]
    assert link.origin_address == "-1009999" and link.origin_message["address"] == "-1009999"


async def test_requeue_by_id_and_all_dead_rows_enables_their_targets_again(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    await paid_link(links, merchant_id, 1, message=False, origin="1")
    await paid_link(links, merchant_id, 2, message=False, origin="2")
    await paid_link(links, merchant_id, 3, message=False, origin="3")
    claimed = await store.claim(worker="a", platforms=["telegram"], limit=5, lease=timedelta(seconds=30))
    first, second, third = claimed
    await store.complete(worker="a", outcomes=[
        decide(first, Permanent("blocked"), now=clock(), policy=POLICY),
        decide(second, Transient("x"), now=clock(), policy=RetryPolicy(max_attempts=1)),
        decide(third, None, now=clock(), policy=POLICY, ref=MessageRef("telegram", "3", "1")),
    ])
    listed = await store.list_messages()
    assert [(r.id, r.status) for r in listed] == [(first.id, "dead"), (second.id, "dead")]
    born = first.created_at
    clock.advance(hours=2)
    assert await store.requeue(ids=[first.id or 0, third.id or 0]) == 1  # a sent row is never sent again
    again = {r.id: r for r in await rows(db)}
    assert again[first.id].status == "pending" and again[first.id].attempts == 0
    assert again[first.id].next_attempt_at == clock() and again[first.id].last_error is None
    assert again[first.id].created_at == born and again[first.id].requeued_at == clock()  # its birth is kept
    async with db.read() as conn:
        assert (await conn.execute(select(TARGETS.c.disabled_at))).scalar_one() is None
    assert await store.requeue(dead=True) == 1
    assert (await store.counts()) == {"pending": 2, "sent": 1}


async def test_rows_for_a_platform_without_a_sender_say_so_and_die_of_age(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    await paid_link(links, merchant_id, message=False)
    assert await store.mark_unsendable(platforms=["console"], max_age=timedelta(hours=1)) == 0
    [row] = await rows(db)
    assert row.status == "pending" and row.last_error is not None and "no sender configured" in row.last_error
    clock.advance(hours=1)
    assert await store.mark_unsendable(platforms=["console"], max_age=timedelta(hours=1)) == 1
    assert (await rows(db))[0].status == "dead"


async def test_a_requeued_row_keeps_created_at_and_gets_its_age_budget_afresh(
    db: Database, links: LinkService, store: OutboxStore, clock: FakeClock, merchant_id: str
) -> None:
    await paid_link(links, merchant_id, message=False)
    [row] = await store.claim(worker="a", platforms=["telegram"], limit=5, lease=timedelta(seconds=30))
    born = row.created_at
    clock.advance(hours=2)  # older than max_age: the next failure is its last
    await store.complete(worker="a", outcomes=[decide(row, Transient("x"), now=clock(), policy=POLICY)])
    assert (await rows(db))[0].status == "dead"
    clock.advance(hours=3)
    assert await store.requeue(dead=True) == 1
    [again] = await store.claim(worker="a", platforms=["telegram"], limit=5, lease=timedelta(seconds=30))
    assert again.created_at == born and again.requeued_at == clock()
    # Counted from the requeue, a failure is retried again rather than dead at once.
    retried = decide(again, Transient("x"), now=clock(), policy=POLICY)
    assert retried.result is Result.RETRY
    assert decide(again, Transient("x"), now=clock() + POLICY.max_age, policy=POLICY).result is Result.DEAD
    # A platform without a sender: the age that kills the row is counted from the requeue too.
    await store.complete(worker="a", outcomes=[retried])
    assert await store.mark_unsendable(platforms=["console"], max_age=timedelta(hours=1)) == 0
    clock.advance(hours=1)
    assert await store.mark_unsendable(platforms=["console"], max_age=timedelta(hours=1)) == 1
