"""Reusable links: limits, reservations under concurrency, split shares, promo codes (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from core import promos
from core.db import Database, DatabaseBusy
from core.links import LinkDraft, LinkError, LinkEvent, LinkEventKind, LinkService, PaymentOutcome
from core.merchants import MerchantService
from core.models import LinkStatus, PaymentStatus, ReservationStatus
from core.money import Money
from core.ports import PaymentEvent
from core.reusable import Reservation, ReserveRefused, Terms, shares
from tests.clock import FakeClock


@pytest.fixture
async def merchant_id(db: Database, clock: FakeClock) -> str:
    service = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    return (await service.create("Concert Hall")).id


def draft(merchant_id: str, minor: int = 2500, **terms: object) -> LinkDraft:
    return LinkDraft(merchant_id=merchant_id, money=Money(minor, "SGD"), description="concert ticket",
                     terms=Terms(**terms))  # type: ignore[arg-type]


def paid(rsv: Reservation, n: int, minor: int | None = None) -> PaymentEvent:
    return PaymentEvent(provider="sandbox", event_id=f"evt_{n}", kind="payment.succeeded", link_id=rsv.link_id,
                        provider_ref=f"ch_{n}", amount_minor=rsv.amount_minor if minor is None else minor,
                        currency="SGD", checkout_ref=f"cs_{rsv.id}")


async def reserve(links: LinkService, link_id: str, **kw: object) -> Reservation:
    rsv = await links.reservations.reserve(link_id, **kw)  # type: ignore[arg-type]
    await links.reservations.attach_checkout(rsv.id, "sandbox", f"cs_{rsv.id}", None)
    return rsv


async def all_at_once(count: int, press: Callable[[], Awaitable[Reservation]]) -> list[object]:
    """`count` buyers at once; one the database was too busy for (PostgreSQL's pool full while the others
    wait on the link's row lock, as on a loaded machine) presses again, as the pay page tells them to."""
    results: list[object] = list(await asyncio.gather(*(press() for _ in range(count)), return_exceptions=True))
    while busy := [n for n, r in enumerate(results) if isinstance(r, DatabaseBusy)]:
        again = await asyncio.gather(*(press() for _ in busy), return_exceptions=True)
        for n, result in zip(busy, again, strict=True):
            results[n] = result
    return results


async def test_hundred_buyers_at_once_on_stock_ten_buy_exactly_ten(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id, stock=10))
    results = await all_at_once(100, lambda: reserve(links, link.id))
    held = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, ReserveRefused)]
    assert len(held) == 10 and len(refused) == 90
    assert {r.code for r in refused} == {"all_reserved"}
    outcomes = await asyncio.gather(*(links.record_payment(paid(r, n)) for n, r in enumerate(held)))
    assert [o for o, _ in outcomes].count(PaymentOutcome.PAID) == 10
    after = await links.get(link.id)
    assert after is not None
    assert (after.status, after.units_sold, after.payments_count, after.amount_collected_minor) == \
        (LinkStatus.SOLD_OUT, 10, 10, 25000)
    assert (after.units_reserved, after.payments_reserved, after.amount_reserved_minor) == (0, 0, 0)
    with pytest.raises(ReserveRefused) as info:
        await reserve(links, link.id)
    assert info.value.code == "sold_out"
    # Each payment is its own record.
    payments = await links.payments_for(link.id)
    assert len({p.id for p in payments}) == 10 and all(p.status == PaymentStatus.SUCCEEDED for p in payments)


async def test_reservation_times_out_and_its_units_come_back(links: LinkService, merchant_id: str,
                                                             clock: FakeClock) -> None:
    link, _ = await links.create(draft(merchant_id, stock=2, quantity_max=2))
    first = await reserve(links, link.id, quantity=2)
    assert first.expires_at == clock() + timedelta(minutes=30)
    with pytest.raises(ReserveRefused):
        await reserve(links, link.id)
    clock.advance(minutes=31)
    second = await reserve(links, link.id)  # the timed-out hold was let go first
    statuses = {r.id: r.status for r in await links.reservations.for_link(link.id)}
    assert statuses == {first.id: ReservationStatus.RELEASED, second.id: ReservationStatus.HELD}
    # The late payment of the released checkout still counts while there is room (1 unit left: no, 2 asked).
    outcome, payment = await links.record_payment(paid(first, 1))
    assert outcome is PaymentOutcome.REFUND_NEEDED and payment is not None
    assert (await links.record_payment(paid(second, 2)))[0] is PaymentOutcome.PAID
    after = await links.get(link.id)
    assert after is not None and after.units_sold == 1 and after.status == LinkStatus.ACTIVE


async def test_failed_checkout_releases(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id, stock=1))
    rsv = await reserve(links, link.id)
    assert await links.reservations.release_checkout("sandbox", f"cs_{rsv.id}")
    assert not await links.reservations.release_checkout("sandbox", f"cs_{rsv.id}")
    again = await reserve(links, link.id)
    assert again.units == 1


async def test_max_payments_and_max_total(links: LinkService, merchant_id: str) -> None:
    seats, _ = await links.create(draft(merchant_id, 3000, max_payments=2))
    for n in range(2):
        assert (await links.record_payment(paid(await reserve(links, seats.id), n)))[0] is PaymentOutcome.PAID
    assert (await links.get(seats.id)).status == LinkStatus.SOLD_OUT  # type: ignore[union-attr]
    fund, _ = await links.create(draft(merchant_id, 100, amount_mode="customer_chooses", min_amount_minor=100,
                                       max_total_minor=5000))
    rsv = await reserve(links, fund.id, amount_minor=4950)
    with pytest.raises(ReserveRefused) as info:
        await reserve(links, fund.id, amount_minor=100)
    assert info.value.code == "all_reserved"
    assert (await links.record_payment(paid(rsv, 10)))[0] is PaymentOutcome.PAID
    after = await links.get(fund.id)
    assert after is not None and after.amount_collected_minor == 4950 and after.status == LinkStatus.SOLD_OUT


async def test_customer_amount_bounds(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id, 500, amount_mode="customer_chooses", min_amount_minor=500,
                                       max_amount_minor=10000, suggested_amounts=(1000, 2000)))
    for amount, message in ((None, "Enter the amount"), (499, "smallest amount is 5.00 SGD"),
                            (10001, "largest amount is 100.00 SGD")):
        with pytest.raises(ReserveRefused) as info:
            await reserve(links, link.id, amount_minor=amount)
        assert message in info.value.message and info.value.field == "amount"
    assert (await reserve(links, link.id, amount_minor=2000)).amount_minor == 2000


async def test_quantity_bounds_and_total(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id, 2500, stock=50, quantity_min=1, quantity_max=10))
    assert (await reserve(links, link.id, quantity=3)).amount_minor == 7500
    with pytest.raises(ReserveRefused) as info:
        await reserve(links, link.id, quantity=11)
    assert info.value.code == "invalid_quantity" and "1 to 10" in info.value.message


async def test_bad_terms_are_refused_by_field(links: LinkService, merchant_id: str) -> None:
    cases = [({"stock": 0}, "stock"), ({"quantity_max": 2, "quantity_min": 3}, "quantity.max"),
             ({"split_ways": 1}, "split.ways"), ({"amount_mode": "customer_chooses"}, "min_amount"),
             ({"suggested_amounts": (100,)}, "amount_mode"),
             ({"amount_mode": "customer_chooses", "min_amount_minor": 100,
               "suggested_amounts": (100, 200, 300, 400, 500)}, "suggested_amounts")]
    for terms, field in cases:
        with pytest.raises(LinkError) as info:
            await links.create(draft(merchant_id, **terms))
        assert info.value.field == field, terms


def test_shares_sum_exactly_with_the_remainder_first() -> None:
    assert shares(10000, 3) == [3334, 3333, 3333]
    assert shares(12000, 4) == [3000] * 4
    assert sum(shares(10001, 7)) == 10001


async def test_split_bill_collects_exact_shares_and_is_paid(links: LinkService, merchant_id: str) -> None:
    events: list[LinkEventKind] = []

    async def hook(_conn: object, event: LinkEvent) -> None:
        events.append(event.kind)

    links.hooks.append(hook)
    link, _ = await links.create(draft(merchant_id, 10000, split_ways=3))
    assert (link.stock, link.quantity_max) == (3, 3)
    first = await reserve(links, link.id)
    assert first.amount_minor == 3334
    two = await reserve(links, link.id, quantity=2)  # a share paid for two people at once
    assert two.amount_minor == 6666
    assert (await links.record_payment(paid(first, 1)))[0] is PaymentOutcome.PAID
    assert (await links.get(link.id)).status == LinkStatus.ACTIVE  # type: ignore[union-attr]
    assert (await links.record_payment(paid(two, 2)))[0] is PaymentOutcome.PAID
    after = await links.get(link.id)
    assert after is not None and after.status == LinkStatus.PAID and after.amount_collected_minor == 10000
    assert events.count(LinkEventKind.PAYMENT_RECEIVED) == 2 and events.count(LinkEventKind.PAID) == 1


async def test_split_remainder_stays_exact_after_a_release(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id, 10000, split_ways=3))
    first = await reserve(links, link.id)
    second = await reserve(links, link.id)
    assert await links.reservations.release(first.id)
    third = await reserve(links, link.id, quantity=2)
    assert second.amount_minor + third.amount_minor == 10000


async def test_wrong_amount_never_counts(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id, stock=5))
    rsv = await reserve(links, link.id)
    assert (await links.record_payment(paid(rsv, 1, minor=1)))[0] is PaymentOutcome.MISMATCH
    assert (await links.get(link.id)).units_sold == 0  # type: ignore[union-attr]


async def test_fifty_at_once_on_a_promo_with_five_redemptions(links: LinkService, merchant_id: str,
                                                              db: Database, clock: FakeClock) -> None:
    service = promos.PromoService(db, clock=clock)
    await service.create(merchant_id, promos.PromoDraft("save10", percent_off_bp=1000, max_redemptions=5))
    link, _ = await links.create(draft(merchant_id, 2500))
    results = await all_at_once(50, lambda: reserve(links, link.id, promo_code="SAVE10"))
    held = [r for r in results if isinstance(r, Reservation)]
    assert len(held) == 5 and all(r.amount_minor == 2250 and r.discount_minor == 250 for r in held)
    assert {r.code for r in results if isinstance(r, promos.PromoError)} == {"promo_used_up"}
    # One checkout fails: its redemption comes back, and one more buyer gets it.
    assert await links.reservations.release(held[0].id)
    late = await reserve(links, link.id, promo_code="save10")
    for n, rsv in enumerate([*held[1:], late]):
        assert (await links.record_payment(paid(rsv, n)))[0] is PaymentOutcome.PAID
    promo = await service.get(merchant_id, "SAVE10")
    assert promo is not None and (promo.times_redeemed, promo.redemptions_held) == (5, 0)
    payments = await links.payments_for(link.id)
    assert [p.amount_minor for p in payments] == [2250] * 5
    with pytest.raises(promos.PromoError):
        await reserve(links, link.id, promo_code="SAVE10")


async def test_promo_amount_off_expiry_and_links(links: LinkService, merchant_id: str, db: Database,
                                                 clock: FakeClock) -> None:
    service = promos.PromoService(db, clock=clock)
    link, _ = await links.create(draft(merchant_id, 2500))
    other, _ = await links.create(draft(merchant_id, 2500))
    await service.create(merchant_id, promos.PromoDraft("WELCOME", amount_off_minor=500, currency="SGD",
                                                        expires_at=clock() + timedelta(days=1),
                                                        link_ids=(link.id,)))
    assert (await reserve(links, link.id, promo_code="welcome")).amount_minor == 2000
    with pytest.raises(promos.PromoError) as info:
        await reserve(links, other.id, promo_code="WELCOME")
    assert info.value.code == "unknown_promo"
    clock.advance(days=2)
    with pytest.raises(promos.PromoError) as info:
        await reserve(links, link.id, promo_code="WELCOME")
    assert info.value.code == "promo_expired"
    with pytest.raises(promos.PromoError) as info2:
        await service.create(merchant_id, promos.PromoDraft("WELCOME", percent_off_bp=100))
    assert info2.value.code == "promo_exists"
    assert await service.delete(merchant_id, "welcome") and not await service.delete(merchant_id, "welcome")


async def test_a_failed_payment_event_releases_its_checkout(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(draft(merchant_id, stock=1))
    rsv = await reserve(links, link.id)
    failed = PaymentEvent(provider="sandbox", event_id="evt_f", kind="payment.failed", link_id=link.id,
                          provider_ref=f"cs_{rsv.id}", amount_minor=2500, currency="SGD")
    await links.record_payment(failed)
    after = await links.get(link.id)
    assert after is not None and after.units_reserved == 0
    assert (await reserve(links, link.id)).units == 1
