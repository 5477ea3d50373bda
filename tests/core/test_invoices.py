"""Invoice numbers (core/invoices.py): per shop, per year, gap-free and unique under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from core.db import Database
from core.invoices import Invoices, check_prefix
from core.line_items import LineItem, compute
from core.links import LinkDraft, LinkError, LinkService
from core.merchants import MerchantService
from core.models import Invoice, Merchant
from core.money import Money
from core.ports import PaymentEvent
from core.sql import table
from tests.clock import FakeClock


@pytest.fixture
async def merchants(db: Database, clock: FakeClock) -> MerchantService:
    return MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)


def items_draft(merchant_id: str, n: int = 1) -> LinkDraft:
    totals = compute([LineItem("cake", Decimal(2), Decimal(25), Decimal(9)), LineItem("delivery", Decimal(1),
                      Decimal(n))], "SGD")
    return LinkDraft(merchant_id=merchant_id, money=Money(totals.total_minor, "SGD"), description="order",
                     line_items=totals)


async def numbers(db: Database, merchant_id: str) -> list[str]:
    invoices = table(Invoice)
    async with db.read() as conn:
        rows = (await conn.execute(select(invoices.c.number).where(invoices.c.merchant_id == merchant_id)
                                   .order_by(invoices.c.year, invoices.c.seq))).all()
    return [r.number for r in rows]


async def test_items_are_stored_and_numbered(links: LinkService, merchants: MerchantService, db: Database) -> None:
    shop = (await merchants.create("Cake Shop")).id
    link, _ = await links.create(items_draft(shop))
    info = await Invoices(db).of(link.id)
    assert info is not None and info.number == "INV-2026-0001"
    assert info.totals is not None and [line.item.name for line in info.totals.lines] == ["cake", "delivery"]
    assert info.total_minor == link.amount_minor == 5000 + 450 + 100


async def test_a_draft_whose_amount_is_not_its_total_is_refused(links: LinkService, merchants: MerchantService,
                                                                db: Database) -> None:
    shop = (await merchants.create("Cake Shop")).id
    good = items_draft(shop)
    bad = LinkDraft(merchant_id=shop, money=Money(1, "SGD"), description="x", line_items=good.line_items)
    with pytest.raises(LinkError) as refused:
        await links.create(bad)
    assert refused.value.field == "amount"
    assert await numbers(db, shop) == []  # nothing written, no number used


async def test_prefix_year_and_shops_count_separately(links: LinkService, merchants: MerchantService, db: Database,
                                                      clock: FakeClock) -> None:
    one, two = (await merchants.create("One")).id, (await merchants.create("Two")).id
    invoices = Invoices(db)
    await invoices.configure(two, prefix="cs", address="1 Orchard Rd\nSingapore 238801")
    assert await invoices.settings(two) == ("CS", "1 Orchard Rd\nSingapore 238801")
    await links.create(items_draft(one))
    await links.create(items_draft(two))
    await links.create(items_draft(one))
    # The shop's own time zone decides the year: 16:30 UTC on 31 Dec is already 2027 in Singapore.
    async with db.write() as conn:
        await conn.execute(update(table(Merchant)).where(table(Merchant).c.id == one).values(timezone="Asia/Singapore"))
    clock.now = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)
    await links.create(items_draft(one))
    assert await numbers(db, one) == ["INV-2026-0001", "INV-2026-0002", "INV-2027-0001"]
    assert await numbers(db, two) == ["CS-2026-0001"]
    with pytest.raises(ValueError):
        check_prefix("no spaces")


async def test_a_paid_link_without_items_gets_a_number(links: LinkService, merchants: MerchantService,
                                                       db: Database) -> None:
    shop = (await merchants.create("Cake Shop")).id
    invoices = Invoices(db)
    links.hooks.append(invoices)
    plain, _ = await links.create(LinkDraft(merchant_id=shop, money=Money(2500, "SGD"), description="cake"))
    assert await invoices.of(plain.id) is None
    await links.create(items_draft(shop))
    await links.record_payment(PaymentEvent(provider="sandbox", event_id="evt_1", kind="payment.succeeded",
                                            link_id=plain.id, provider_ref="ch_1", amount_minor=2500, currency="SGD"))
    info = await invoices.of(plain.id)
    assert info is not None and info.number == "INV-2026-0002" and info.totals is None
    assert (info.subtotal_minor, info.tax_minor, info.total_minor) == (2500, 0, 2500)


async def test_fifty_concurrent_creations_have_no_gaps_and_no_duplicates(
    links: LinkService, merchants: MerchantService, db: Database
) -> None:
    # On PostgreSQL these are 50 transactions racing on the counter row (the pool runs them at once).
    shop = (await merchants.create("Busy Shop")).id
    made = await asyncio.gather(*(links.create(items_draft(shop, n)) for n in range(1, 51)))
    assert len({link.id for link, _ in made}) == 50
    got = await numbers(db, shop)
    assert sorted(got) == [f"INV-2026-{n:04d}" for n in range(1, 51)]
