from decimal import Decimal

import pytest

from core.money import Money, MoneyError, exponent, format_money, to_minor


@pytest.mark.parametrize(("code", "digits"), [("JPY", 0), ("USD", 2), ("KWD", 3), ("IDR", 2), ("SGD", 2)])
def test_exponents_follow_iso_4217(code: str, digits: int) -> None:
    assert exponent(code) == digits


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "expected"),
    [
        (2500, "SGD", "en_SG", "S$25.00"),
        (15_000_000, "IDR", "id_ID", "Rp 150.000,00"),
        (2500, "USD", "en_US", "$25.00"),
        (2500, "USD", "en_SG", "US$25.00"),
        (1200, "JPY", "en_US", "¥1,200"),
        (1500, "KWD", "en_US", "KWD 1.500"),
        (2500, "EUR", "de_DE", "25,00\xa0€"),
        (2500, "MYR", "ms_MY", "RM 25.00"),
    ],
)
def test_formatting_per_locale(minor: int, currency: str, locale: str, expected: str) -> None:
    assert format_money(minor, currency, locale) == expected


def test_unknown_locale_falls_back_to_english() -> None:
    assert format_money(2500, "USD", "xx_NOPE") == "$25.00"


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("25", "USD", 2500), ("25.5", "USD", 2550), ("0.01", "USD", 1), ("1200", "JPY", 1200), ("1.5", "KWD", 1500)],
)
def test_to_minor_is_exact(text: str, currency: str, minor: int) -> None:
    assert to_minor(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [("25.555", "USD", "USD has 2 decimals"), ("1.5", "JPY", "JPY has no decimals"), ("abc", "USD", "not a number")],
)
def test_to_minor_rejects_what_it_cannot_represent(text: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        to_minor(text, currency)


def test_unknown_currency_names_the_field() -> None:
    with pytest.raises(MoneyError) as info:
        Money(100, "XYZ")
    assert info.value.field == "currency"


def test_amount_strings_round_trip() -> None:
    for money in (Money(2500, "USD"), Money(1200, "JPY"), Money(1500, "KWD"), Money(1, "IDR")):
        assert Money.parse(money.amount_str(), money.currency) == money
    assert Money(2500, "USD").decimal() == Decimal("25.00")


def test_money_refuses_floats() -> None:
    with pytest.raises(TypeError):
        Money(25.0, "USD")  # type: ignore[arg-type]
