"""Money is an integer count of minor units plus an ISO 4217 code; decimals exist only at the edges."""

from __future__ import annotations

import copy
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

import iso4217
from babel import Locale
from babel.numbers import NumberPattern, get_currency_symbol

from core.locales import babel_locale_name


class MoneyError(ValueError):
    """A user-caused money problem; the message is safe to show (English, for developers). `code` says
    which ("not_a_number", "too_many_decimals" with `currency` and `places`, "unknown_currency"), so a
    page or a chat can say it in its reader's words (core/chat_errors.py)."""

    def __init__(self, message: str, *, field: str = "amount", code: str = "not_a_number",
                 currency: str | None = None, places: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.currency = currency
        self.places = places


@cache
def _iso_table() -> dict[str, int]:
    # The iso4217 package tracks the ISO maintenance agency's list; CLDR (Babel) differs for some
    # currencies (it says IDR has 0 decimals), and money must follow ISO.
    table: dict[str, int] = {}
    for currency in iso4217.Currency:
        exponent = currency.exponent
        if isinstance(exponent, int):
            table[currency.code.upper()] = exponent
    return table


def is_currency(code: str) -> bool:
    return code.upper() in _iso_table()


def exponent(code: str) -> int:
    """Number of decimal places of an ISO 4217 currency (JPY 0, USD 2, KWD 3)."""
    try:
        return _iso_table()[code.upper()]
    except KeyError:
        raise MoneyError(f"{code!r} is not an ISO 4217 currency code", field="currency",
                         code="unknown_currency") from None


def currency_codes() -> list[str]:
    return sorted(_iso_table())


def normalize_currency(code: str) -> str:
    code = (code or "").strip().upper()
    exponent(code)
    return code


def amount_str(amount_minor: int, currency: str) -> str:
    """The API's decimal string of minor units: "25.00", "1200" for JPY, "1.500" for KWD."""
    exp = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError("amount_minor must be an int")
        exponent(self.currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a plain decimal string such as "25.00" (API form, '.' as separator)."""
        return cls(to_minor(text, currency), currency.upper())

    def decimal(self) -> Decimal:
        return Decimal(self.amount_minor).scaleb(-exponent(self.currency))

    def amount_str(self) -> str:
        """The API's decimal string: "25.00", "1200" for JPY, "1.500" for KWD."""
        return amount_str(self.amount_minor, self.currency)

    def format(self, locale: str = "en") -> str:
        return format_money(self.amount_minor, self.currency, locale)


def to_minor(text: str | int | Decimal, currency: str) -> int:
    """Exact conversion of a decimal amount to minor units; too many decimals is an error, never rounding."""
    exp = exponent(currency)
    if isinstance(text, bool):
        raise MoneyError("amount must be a decimal string such as \"25.00\"")
    try:
        value = Decimal(text) if not isinstance(text, Decimal) else text
    except (InvalidOperation, ValueError, TypeError):
        raise MoneyError(f"{text!r} is not a number; write it like \"25.00\"") from None
    if not value.is_finite():
        raise MoneyError("amount must be a finite number")
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        places = "no decimals" if exp == 0 else f"{exp} decimal{'s' if exp != 1 else ''}"
        raise MoneyError(f"{currency.upper()} has {places}", code="too_many_decimals", currency=currency.upper(),
                         places=exp)
    return int(scaled)


# CLDR gives the home currency of a locale the bare "$" (SGD in en_SG), which is ambiguous once a link
# travels; chats and pay pages use the prefixed form people write (S$25.00) for every dollar but USD.
DOLLAR_PREFIXES: dict[str, str] = {
    "SGD": "S$", "AUD": "A$", "CAD": "CA$", "HKD": "HK$", "NZD": "NZ$", "TWD": "NT$", "MXN": "MX$",
    "BND": "B$", "BSD": "B$", "BBD": "Bds$", "BZD": "BZ$", "FJD": "FJ$", "JMD": "J$", "LRD": "L$",
    "NAD": "N$", "SBD": "SI$", "TTD": "TT$", "XCD": "EC$", "GYD": "G$", "SRD": "Sr$", "KYD": "CI$",
    "CLP": "CLP$", "COP": "COL$", "ARS": "AR$", "UYU": "$U", "BMD": "BD$", "ZWL": "Z$",
}


@lru_cache(maxsize=256)
def _symbol(currency: str, locale: str) -> str:
    symbol = get_currency_symbol(currency, locale)
    if symbol == "$" and currency != "USD":
        symbol = DOLLAR_PREFIXES.get(currency, currency)
    return symbol


def _space_after_letters(text: str, symbol: str) -> str:
    # CLDR currencySpacing: a symbol that ends (or starts) with a letter is kept apart from the digits,
    # which is how "Rp 150.000,00" and "SGD 25.00" are written (Babel does not apply this rule).
    at = text.find(symbol)
    if at < 0:
        return text
    end = at + len(symbol)
    if end < len(text) and text[end].isdigit() and not unicodedata.category(symbol[-1]).startswith("S"):
        return f"{text[:end]} {text[end:]}"
    if at > 0 and text[at - 1].isdigit() and not unicodedata.category(symbol[0]).startswith("S"):
        return f"{text[:at]} {text[at:]}"
    return text


@lru_cache(maxsize=256)
def _pattern(locale: str, exp: int) -> tuple[Locale, NumberPattern]:
    loc = Locale.parse(locale)
    # The locale's pattern, but with exactly the ISO number of decimals (Rp 150.000,00, ¥1,200).
    pattern = copy.copy(loc.currency_formats["standard"])
    pattern.frac_prec = (exp, exp)
    return loc, pattern


@lru_cache(maxsize=4096)
def format_money(amount_minor: int, currency: str, locale: str = "en") -> str:
    """Localised display: S$25.00 (en_SG), Rp 150.000,00 (id_ID), ¥1,200 (ja_JP), 25,00 € (de_DE)."""
    currency = currency.upper()
    exp = exponent(currency)
    loc, pattern = _pattern(babel_locale_name(locale), exp)
    value = Decimal(amount_minor).scaleb(-exp)
    text = pattern.apply(value, loc, currency=currency, currency_digits=False)
    cldr_symbol = get_currency_symbol(currency, loc)
    symbol = _symbol(currency, str(loc))
    if symbol != cldr_symbol:
        text = text.replace(cldr_symbol, symbol, 1)
    return _space_after_letters(text, symbol)
