"""core/limits.py: the business limits, and LinkService enforcing them for every caller (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core import limits
from core.db import Database
from core.links import Customer, LinkDraft, LinkError, LinkService
from core.merchants import MerchantService
from core.money import Money
from tests.clock import FakeClock


@pytest.fixture
async def merchant_id(db: Database, clock: FakeClock) -> str:
    service = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    return (await service.create("Cake Shop")).id


def _draft(merchant_id: str, **kw: object) -> LinkDraft:
    values: dict[str, object] = {"merchant_id": merchant_id, "money": Money(2500, "SGD"), "description": "cake"}
    values.update(kw)
    return LinkDraft(**values)  # type: ignore[arg-type]


def test_normalise_email_checks_syntax_and_lowers_the_domain() -> None:
    assert limits.normalise_email("Ana@Example.COM") == "Ana@example.com"
    for bad in ("not-an-email", "a@b", "two@@example.com", "a\ud800@example.com", "x" * 400 + "@example.com"):
        with pytest.raises(ValueError, match=r"\S"):
            limits.normalise_email(bad)


def test_max_amount_minor_follows_the_currency_exponent() -> None:
    assert limits.max_amount_minor(Decimal("10000"), "SGD") == 1_000_000
    assert limits.max_amount_minor(Decimal("10000"), "JPY") == 10_000
    assert limits.max_amount_minor(Decimal("1e30"), "KWD") == limits.AMOUNT_MINOR_MAX


async def test_expiry_beyond_the_maximum_is_refused_by_the_service(
    links: LinkService, merchant_id: str, clock: FakeClock
) -> None:
    ok, _ = await links.create(_draft(merchant_id, expires_in=limits.MAX_EXPIRY))
    assert ok.expires_at == clock.now + limits.MAX_EXPIRY
    for kw in ({"expires_in": limits.MAX_EXPIRY + timedelta(seconds=1)},
               {"expires_at": clock.now + limits.MAX_EXPIRY + timedelta(minutes=1)}):
        with pytest.raises(LinkError) as info:
            await links.create(_draft(merchant_id, **kw))
        assert (info.value.code, info.value.field) == ("invalid_expiry", "expires_at")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"description": "x" * (limits.DESCRIPTION_MAX + 1)}, "description"),
        ({"reference": "r" * (limits.REFERENCE_MAX + 1)}, "reference"),
        ({"customer": Customer(email="not-an-email")}, "customer.email"),
        ({"customer": Customer(name="n" * (limits.CUSTOMER_NAME_MAX + 1))}, "customer.name"),
        ({"meta": {f"k{i}": "v" for i in range(limits.METADATA_KEYS_MAX + 1)}}, "metadata"),
        ({"meta": {"k": "v" * (limits.METADATA_VALUE_MAX + 1)}}, "metadata"),
    ],
)
async def test_text_limits_are_refused_by_name(
    links: LinkService, merchant_id: str, changes: dict[str, object], field: str
) -> None:
    with pytest.raises(LinkError) as info:
        await links.create(_draft(merchant_id, **changes))
    assert info.value.field == field and info.value.status == 400


async def test_limits_at_the_edge_are_accepted_and_email_is_normalised(links: LinkService, merchant_id: str) -> None:
    link, _ = await links.create(_draft(
        merchant_id, description="d" * limits.DESCRIPTION_MAX, reference="r" * limits.REFERENCE_MAX,
        customer=Customer(email="Ana@EXAMPLE.com"),
    ))
    assert link.customer_email == "Ana@example.com"
    assert len(link.description) == limits.DESCRIPTION_MAX
