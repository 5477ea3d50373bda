"""The links state machine and payment recording, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.db import Database
from core.links import LinkDraft, LinkError, LinkEvent, LinkService, PaymentOutcome
from core.merchants import MerchantService
from core.models import LinkStatus, PaymentStatus
from core.money import Money
from core.ports import PaymentEvent
from tests.clock import FakeClock


@pytest.fixture
async def merchant_id(db: Database, clock: FakeClock) -> str:
    service = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    return (await service.create("Cake Shop")).id


def draft(merchant_id: str, minor: int = 2500, **kw: object) -> LinkDraft:
    return LinkDraft(merchant_id=merchant_id, money=Money(minor, "SGD"), description="cake", **kw)  # type: ignore[arg-type]


def paid_event(link_id: str, n: int, minor: int = 2500, currency: str = "SGD") -> PaymentEvent:
    return PaymentEvent(provider="sandbox", event_id=f"evt_{n}", kind="payment.succeeded", link_id=link_id,
                        provider_ref=f"ch_{n}", amount_minor=minor, currency=currency)


async def test_create_and_read_back(links: LinkService, merchant_id: str, clock: FakeClock) -> None:
    link, created = await links.create(draft(merchant_id, reference="INV-1"))
    assert created and len(link.id) >= 26
    again = await links.get(link.id, merchant_id)
    assert again is not None
    assert (again.amount_minor, again.currency, again.status) == (2500, "SGD", LinkStatus.ACTIVE)
    assert again.expires_at == clock.now + timedelta(days=7)
    assert links.url(link.id) == f"https://pay.example/p/{link.id}"
    assert (await links.find(merchant_id, "#INV-1")).id == link.id  # type: ignore[union-attr]
    assert await links.get(link.id, "mer_other") is None


async def test_limits_are_enforced(links: LinkService, merchant_id: str) -> None:
    with pytest.raises(LinkError) as info:
        await links.create(draft(merchant_id, minor=1_000_001))
    assert (info.value.code, info.value.field) == ("amount_too_large", "amount")
    with pytest.raises(LinkError):
        await links.create(draft(merchant_id, minor=0))


@pytest.mark.parametrize("field", ["description", "reference"])
async def test_control_characters_are_refused_by_name(links: LinkService, merchant_id: str, field: str) -> None:
    values = {"description": "cake", "reference": None, field: "bad\x00text"}
    with pytest.raises(LinkError) as info:
        await links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"), **values))  # type: ignore[arg-type]
    assert (info.value.code, info.value.field) == ("invalid_text", field)


async def test_idempotency_key_replays_or_conflicts(links: LinkService, merchant_id: str) -> None:
    first, created = await links.create(draft(merchant_id, idempotency_key="k1", request_hash="h1"))
    second, created_again = await links.create(draft(merchant_id, idempotency_key="k1", request_hash="h1"))
    assert created and not created_again and first.id == second.id
    with pytest.raises(LinkError) as info:
        await links.create(draft(merchant_id, idempotency_key="k1", request_hash="h2"))
    assert info.value.status == 409


async def test_list_is_newest_first_with_cursor(links: LinkService, merchant_id: str, clock: FakeClock) -> None:
    made = []
    for _ in range(5):
        made.append((await links.create(draft(merchant_id)))[0].id)
        clock.now += timedelta(seconds=1)
    page, cursor = await links.list_links(merchant_id, limit=2)
    assert [link.id for link in page] == made[::-1][:2]
    rest, end = await links.list_links(merchant_id, limit=10, cursor=cursor)
    assert [link.id for link in rest] == made[::-1][2:] and end is None


async def test_expiry_on_access_and_by_sweeper(links: LinkService, merchant_id: str, clock: FakeClock) -> None:
    events: list[LinkEvent] = []

    async def hook(conn: object, event: LinkEvent) -> None:
        events.append(event)

    links.hooks.append(hook)
    a, _ = await links.create(draft(merchant_id, expires_at=clock.now + timedelta(hours=1)))
    b, _ = await links.create(draft(merchant_id, expires_at=clock.now + timedelta(hours=1)))
    clock.now += timedelta(hours=2)
    assert (await links.get(a.id)).status == LinkStatus.EXPIRED  # type: ignore[union-attr]
    assert await links.expire_due() == 1
    assert (await links.get(b.id)).status == LinkStatus.EXPIRED  # type: ignore[union-attr]
    assert [e.kind.value for e in events] == ["link.created", "link.created", "link.expired", "link.expired"]


async def test_cancel_only_active(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id))
    assert (await links.cancel(link.id, merchant_id)).status == LinkStatus.CANCELLED
    with pytest.raises(LinkError) as info:
        await links.cancel(link.id, merchant_id)
    assert info.value.code == "not_active"


async def test_payment_moves_link_to_paid_once(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id))
    outcome, payment = await links.record_payment(paid_event(link.id, 1))
    assert outcome is PaymentOutcome.PAID and payment is not None
    assert (await links.get(link.id)).status == LinkStatus.PAID  # type: ignore[union-attr]
    # Redelivery of the same event, and the same charge under a new event id: nothing new.
    assert (await links.record_payment(paid_event(link.id, 1)))[0] is PaymentOutcome.DUPLICATE
    same_charge = PaymentEvent("sandbox", "evt_other", "payment.succeeded", link.id, "ch_1", 2500, "SGD")
    assert (await links.record_payment(same_charge))[0] is PaymentOutcome.DUPLICATE
    assert len(await links.payments_for(link.id)) == 1


async def test_amount_mismatch_never_pays(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id))
    assert (await links.record_payment(paid_event(link.id, 1, minor=1)))[0] is PaymentOutcome.MISMATCH
    assert (await links.record_payment(paid_event(link.id, 2, currency="USD")))[0] is PaymentOutcome.MISMATCH
    assert (await links.get(link.id)).status == LinkStatus.ACTIVE  # type: ignore[union-attr]


async def test_two_payments_at_once_make_one_sale_and_one_refund(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id))
    results = await asyncio.gather(*(links.record_payment(paid_event(link.id, n)) for n in range(2)))
    outcomes = sorted(r[0].value for r in results)
    assert outcomes == ["paid", "refund_needed"]
    statuses = sorted(p.status for p in await links.payments_for(link.id))
    assert statuses == [PaymentStatus.REFUND_NEEDED, PaymentStatus.SUCCEEDED]


async def test_failed_hook_rolls_back_the_link(links: LinkService, merchant_id: str) -> None:
    async def broken(conn: object, event: LinkEvent) -> None:
        raise RuntimeError("outbox down")

    links.hooks.append(broken)
    with pytest.raises(RuntimeError):
        await links.create(draft(merchant_id))
    assert (await links.list_links(merchant_id))[0] == []


async def test_failed_hook_rolls_back_the_payment(links: LinkService, merchant_id: str) -> None:
    async def broken(conn: object, event: LinkEvent) -> None:
        if event.kind.value == "link.paid":
            raise RuntimeError("outbox down")

    links.hooks.append(broken)
    link, _ = await links.create(draft(merchant_id))
    with pytest.raises(RuntimeError):
        await links.record_payment(paid_event(link.id, 1))
    assert (await links.get(link.id)).status == LinkStatus.ACTIVE  # type: ignore[union-attr]
    assert await links.payments_for(link.id) == []
    links.hooks.clear()
    assert (await links.record_payment(paid_event(link.id, 1)))[0] is PaymentOutcome.PAID
