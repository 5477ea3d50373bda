"""Stripe's currency rules: zero-decimal, three-decimal with a 0 last digit, ISK, unsupported codes."""

from __future__ import annotations

import pytest

from adapters.payments.stripe import currencies
from adapters.payments.stripe.currencies import StripeCurrencyError, check_chargeable, stripe_unit_amount
from core import money


@pytest.mark.parametrize(("amount_minor", "currency", "unit"), [
    (1000, "USD", 1000), (1000, "usd", 1000), (2550, "SGD", 2550), (2500, "THB", 2500),
    (500, "JPY", 500), (50000, "KRW", 50000), (140000, "VND", 140000), (1500, "CLP", 1500),
    (5120, "KWD", 5120), (1000, "BHD", 1000), (2500, "UGX", 2500),
    (5, "ISK", 500),  # ISO: 0 decimals; Stripe: two decimals, divisible by 100
    (10045, "HUF", 10045), (9999, "TWD", 9999),  # two decimals for charges (payouts differ)
    (300, "MGA", 3),  # ISO 2 decimals, Stripe zero-decimal: whole ariary only
])
def test_unit_amount(amount_minor: int, currency: str, unit: int) -> None:
    assert stripe_unit_amount(amount_minor, currency) == unit
    assert currencies.from_stripe_amount(unit, currency) == amount_minor


def test_every_zero_decimal_currency_passes_whole_units() -> None:
    for code in currencies.ZERO_DECIMAL:
        exp = money.exponent(code)
        assert stripe_unit_amount(7 * 10**exp, code) == 7, code


def test_jpy_is_zero_decimal() -> None:
    assert currencies.stripe_decimals("JPY") == 0
    assert stripe_unit_amount(1, "JPY") == 1  # ¥1, not ¥0.01


@pytest.mark.parametrize("currency", sorted(currencies.THREE_DECIMAL))
def test_three_decimal_last_digit_must_be_zero(currency: str) -> None:
    assert stripe_unit_amount(5120, currency) == 5120
    with pytest.raises(StripeCurrencyError) as info:
        check_chargeable(5124, currency)
    assert info.value.field == "amount"
    assert "5.124" in str(info.value) and "5.120" in str(info.value) and "5.130" in str(info.value)


def test_kwd_example_from_stripe_docs() -> None:
    assert not currencies.is_chargeable(5124, "KWD")
    assert currencies.is_chargeable(5130, "KWD")


def test_fractional_mga_is_refused() -> None:
    with pytest.raises(StripeCurrencyError, match="fractions"):
        check_chargeable(350, "MGA")


@pytest.mark.parametrize("currency", ["IRR", "KPW", "SYP", "CUP", "VES"])
def test_iso_currency_stripe_cannot_charge_is_refused(currency: str) -> None:
    assert money.is_currency(currency)
    with pytest.raises(StripeCurrencyError, match=f"Stripe cannot charge in {currency}") as info:
        check_chargeable(1000, currency)
    assert info.value.field == "currency"


def test_not_a_currency_is_refused() -> None:
    with pytest.raises(StripeCurrencyError, match="ISO 4217"):
        check_chargeable(1000, "ABC")


@pytest.mark.parametrize("amount", [0, -5, True])
def test_non_positive_amounts_are_refused(amount: int) -> None:
    with pytest.raises(StripeCurrencyError):
        check_chargeable(amount, "USD")


def test_eight_digit_limit() -> None:
    assert stripe_unit_amount(99_999_999, "USD") == 99_999_999
    with pytest.raises(StripeCurrencyError, match="more than"):
        check_chargeable(100_000_000, "USD")
    assert stripe_unit_amount(100_000_000, "IDR") == 100_000_000  # Rp 1,000,000


def test_every_supported_currency_is_iso() -> None:
    assert all(money.is_currency(code) for code in currencies.SUPPORTED)
    assert currencies.ZERO_DECIMAL | currencies.THREE_DECIMAL <= currencies.SUPPORTED


def test_from_stripe_amount_refuses_inexact() -> None:
    with pytest.raises(StripeCurrencyError):
        currencies.from_stripe_amount(550, "ISK")
