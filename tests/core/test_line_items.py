"""Line item totals (core/line_items.py): the lines add up to the total in every ISO currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.line_items import Discount, LineItem, LineItemError, compute, parse_discount, parse_item
from core.money import currency_codes, exponent

CURRENCIES = currency_codes()

_items = st.lists(
    st.builds(
        LineItem,
        name=st.text(min_size=1, max_size=10),
        quantity=st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10_000), places=3),
        unit_amount=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(100_000), places=6),
        tax_rate=st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=4),
    ),
    min_size=1, max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(items=_items, currency=st.sampled_from(CURRENCIES), percent=st.none() | st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal(100), places=4), amount_off=st.none() | st.integers(1, 10_000))
def test_lines_add_up_to_the_total_in_every_currency(
    items: list[LineItem], currency: str, percent: Decimal | None, amount_off: int | None
) -> None:
    nets = [int((i.quantity * i.unit_amount * Decimal(10) ** exponent(currency))
                .quantize(Decimal(1), rounding="ROUND_HALF_EVEN")) for i in items]
    discount = None
    if percent is not None:
        discount = Discount(percent=percent)
    elif amount_off is not None and amount_off <= sum(nets):
        discount = Discount(amount_minor=amount_off)
    totals = compute(items, currency, discount)
    assert [line.net_minor for line in totals.lines] == nets  # each line rounded on its own
    assert totals.subtotal_minor == sum(nets)
    assert sum(line.discount_minor for line in totals.lines) == totals.discount_minor
    assert sum(line.tax_minor for line in totals.lines) == totals.tax_minor
    assert sum(line.total_minor for line in totals.lines) == totals.total_minor
    assert totals.total_minor == totals.subtotal_minor - totals.discount_minor + totals.tax_minor
    assert all(0 <= line.discount_minor <= line.net_minor for line in totals.lines)
    assert all(isinstance(line.tax_minor, int) for line in totals.lines)


@pytest.mark.parametrize("currency", ["CLF", "BHD", "JPY", "USD"])
def test_every_iso_exponent_is_covered(currency: str) -> None:
    # 4, 3, 0 and 2 decimals: Hypothesis draws from the same table, this pins that the table has them.
    assert currency in CURRENCIES


def test_round_half_to_even_per_line() -> None:
    # 0.125 SGD -> 0.12 (down to even), 0.135 -> 0.14 (up to even); JPY 2.5 -> 2, 3.5 -> 4.
    sgd = compute([LineItem("a", Decimal(1), Decimal("0.125")), LineItem("b", Decimal(1), Decimal("0.135"))], "SGD")
    assert [line.net_minor for line in sgd.lines] == [12, 14]
    jpy = compute([LineItem("a", Decimal("0.5"), Decimal(5)), LineItem("b", Decimal("0.5"), Decimal(7))], "JPY")
    assert [line.net_minor for line in jpy.lines] == [2, 4]


def test_tax_and_percent_discount_example() -> None:
    # 2 x cake 25 + delivery 5 = 55.00; 10 % off = 5.50 spread 5.00 / 0.50; 9 % tax on the cakes only.
    totals = compute([LineItem("cake", Decimal(2), Decimal(25), Decimal(9)), LineItem("delivery", Decimal(1),
                      Decimal(5))], "SGD", Discount(percent=Decimal(10)))
    assert (totals.subtotal_minor, totals.discount_minor) == (5500, 550)
    assert [line.discount_minor for line in totals.lines] == [500, 50]
    assert totals.lines[0].tax_minor == 405  # 9 % of 45.00
    assert totals.tax_minor == 405 and totals.total_minor == 5500 - 550 + 405


def test_bad_items_name_their_field() -> None:
    with pytest.raises(LineItemError) as bad:
        parse_item({"name": "cake", "quantity": 0, "unit_amount": "25"}, 2)
    assert bad.value.field == "line_items.2.quantity"
    with pytest.raises(LineItemError) as bad:
        parse_item({"name": "cake", "unit_amount": "25", "tax_rate": "101"}, 0)
    assert bad.value.field == "line_items.0.tax_rate"
    with pytest.raises(LineItemError) as bad:
        parse_discount({"amount": "1.005"}, "SGD")
    assert bad.value.field == "discount.amount"
    with pytest.raises(LineItemError) as bad:
        compute([LineItem("a", Decimal(1), Decimal(1))], "SGD", Discount(amount_minor=101))
    assert bad.value.field == "discount"
