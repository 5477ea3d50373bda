"""Stripe's currency rules (docs.stripe.com/currencies), which are not simply ISO 4217 exponents.

Our amounts are ISO minor units (core.money). Stripe wants `unit_amount` in *its* smallest unit:
- zero-decimal currencies (JPY, KRW, VND, …): whole units; ISO agrees for all of them except UGX,
  whose ISO exponent is 0 as well, so the number passes unchanged;
- three-decimal currencies (BHD, JOD, KWD, OMR, TND): thousandths, and Stripe's card partners require
  the last digit to be 0 (5.124 KWD cannot be charged; 5.120 can);
- ISK: zero-decimal since 14 April 2023, but for backwards compatibility still passed with two
  decimals, so the value is krónur × 100 (always divisible by 100). ISO gives ISK 0 decimals, so our
  minor unit is a whole króna and is multiplied by 100;
- HUF and TWD: two-decimal for charges (Stripe treats them as zero-decimal only for payouts), so a
  charge passes unchanged; UGX likewise has its payout-only quirk, charges are whole shillings;
- every other supported currency: two decimals, as ISO.
A currency Stripe does not list as a presentment currency cannot be charged at all.
"""

from __future__ import annotations

from core import money

ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                          "VUV", "XAF", "XOF", "XPF"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Zero-decimal in practice, two decimals in the API: Stripe's value is whole units × 100.
ZERO_DECIMAL_SENT_AS_TWO = frozenset({"ISK"})
# Charged with two decimals; zero-decimal only for payouts (no effect on Checkout).
PAYOUT_ZERO_DECIMAL = frozenset({"HUF", "TWD"})

# Stripe's supported presentment currencies (docs.stripe.com/currencies, card payments), less those ISO
# has withdrawn (ANG, BGN, STD), which core.money no longer accepts either.
SUPPORTED = frozenset({
    "USD", "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY",
    "COP", "CRC", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD",
    "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
    "RWF", "SAR", "SBD", "SCR", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SZL", "THB", "TJS", "TND",
    "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "UYU", "UZS", "VND", "VUV", "WST", "XAF", "XCD",
    "XOF", "XPF", "YER", "ZAR", "ZMW",
})
# "The amount value supports up to eight digits" (e.g. 99999999 for a USD charge of 999,999.99).
MAX_UNIT_AMOUNT = 99_999_999
# Rupiah amounts are large (Rp 1,000,000 is 100000000 sen): Stripe allows IDR twelve digits, and refusing
# a link Stripe would take is worse than Stripe refusing one at Pay, so this errs on the side of allowing.
MAX_UNIT_AMOUNT_BY_CURRENCY = {"IDR": 999_999_999_999}


class StripeCurrencyError(ValueError):
    """An amount/currency Stripe cannot charge; the message is safe to show to the seller."""

    def __init__(self, message: str, *, field: str = "currency") -> None:
        super().__init__(message)
        self.field = field


def stripe_decimals(currency: str) -> int:
    """How many decimals Stripe's API amounts have for this currency (ISK: 2, though charged whole)."""
    code = _supported(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def stripe_unit_amount(amount_minor: int, currency: str) -> int:
    """Our ISO minor units -> Stripe's `unit_amount`, after check_chargeable."""
    check_chargeable(amount_minor, currency)
    return _convert(amount_minor, currency.upper())


def from_stripe_amount(stripe_amount: int, currency: str) -> int:
    """Stripe's amount (as in a session's amount_total) -> our ISO minor units, exactly or not at all."""
    if not isinstance(stripe_amount, int) or isinstance(stripe_amount, bool):
        raise StripeCurrencyError("Stripe amount must be an integer", field="amount")
    code = _supported(currency)
    factor = _factor(code)
    if factor >= 0:
        scale = 10**factor
        if stripe_amount % scale:
            raise StripeCurrencyError(f"{stripe_amount} is not a whole {code} minor unit amount", field="amount")
        return stripe_amount // scale
    return stripe_amount * 10**-factor


def check_chargeable(amount_minor: int, currency: str) -> None:
    """Raise StripeCurrencyError unless Stripe Checkout can charge exactly this amount in this currency."""
    code = _supported(currency)
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise StripeCurrencyError("the amount must be a positive whole number of minor units", field="amount")
    unit = _convert(amount_minor, code)
    if code in THREE_DECIMAL and unit % 10:
        asked = money.Money(amount_minor, code).amount_str()
        below = money.Money(amount_minor - amount_minor % 10, code).amount_str()
        above = money.Money(amount_minor - amount_minor % 10 + 10, code).amount_str()
        raise StripeCurrencyError(
            f"Stripe charges {code} only in multiples of 0.010 (the last of the three decimals must be 0): "
            f"{code} {asked} cannot be charged, {below} or {above} can", field="amount")
    limit = MAX_UNIT_AMOUNT_BY_CURRENCY.get(code, MAX_UNIT_AMOUNT)
    if unit > limit:
        raise StripeCurrencyError(f"Stripe cannot charge more than {limit} in {code}'s smallest unit "
                                  "in one payment", field="amount")


def is_chargeable(amount_minor: int, currency: str) -> bool:
    try:
        check_chargeable(amount_minor, currency)
    except StripeCurrencyError:
        return False
    return True


def _supported(currency: str) -> str:
    code = (currency or "").strip().upper()
    if not money.is_currency(code):
        raise StripeCurrencyError(f"{currency!r} is not an ISO 4217 currency code")
    if code not in SUPPORTED:
        raise StripeCurrencyError(f"Stripe cannot charge in {code}; pick another currency or provider")
    return code


def _factor(code: str) -> int:
    """Power of ten from Stripe's unit down to our ISO minor unit (negative: Stripe's unit is larger)."""
    if code in ZERO_DECIMAL_SENT_AS_TWO:
        return 2 - money.exponent(code)
    return stripe_decimals(code) - money.exponent(code)


def _convert(amount_minor: int, code: str) -> int:
    factor = _factor(code)
    if factor >= 0:
        return amount_minor * 10**factor
    scale = 10**-factor
    if amount_minor % scale:
        # Our minor unit is finer than Stripe's (no such currency today, but the tables may drift).
        raise StripeCurrencyError(f"Stripe cannot charge fractions of a {code} unit", field="amount")
    return amount_minor // scale
