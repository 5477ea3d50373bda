"""Amounts and currencies as sellers type them: "25", "S$25", "1.250,00 €", "Rp150.000,-", "25k".

The number is read the way the shop's locale writes it, the currency from a code, symbol or word before
or after it; the result goes through core.money.to_minor, never floats. `grouping_alternative` says when
a separator could also mean the other thing ("1.000" in SGD), so the conversation can ask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.numbers import format_decimal, get_currency_symbol, get_decimal_symbol

from core import markup
from core.commands.values import CommandError, Example, ParseContext, ascii_digits, has_number_forms, norm
from core.i18n import N_
from core.locales import babel_locale, territory_currency
from core.money import DOLLAR_PREFIXES, Money, MoneyError, _symbol, currency_codes, exponent, is_currency, to_minor

# ---------------------------------------------------------------- currencies: codes, symbols, words

# Lower-case codes are only read as currencies when they cannot be an English word ("25 cup cakes" is
# not 25 Cuban pesos); upper case always is.
COMMON_CODES = frozenset(
    "USD SGD EUR GBP JPY IDR MYR THB VND PHP INR AUD CAD HKD NZD CNY KRW TWD CHF SEK NOK DKK AED SAR ZAR "
    "BRL MXN PLN CZK HUF ILS KWD BHD QAR OMR NGN KES EGP PKR LKR BDT NPR KHR LAK MMK BND".split()
)

# Symbols people type that CLDR does not give in the locales scanned below, and the spec's "generous" set.
_CURATED: dict[str, frozenset[str]] = {
    "¥": frozenset({"JPY", "CNY"}), "円": frozenset({"JPY"}), "元": frozenset({"CNY"}),
    "RMB": frozenset({"CNY"}), "€": frozenset({"EUR"}), "£": frozenset({"GBP"}), "₹": frozenset({"INR"}),
    "₩": frozenset({"KRW"}), "₪": frozenset({"ILS"}), "₺": frozenset({"TRY"}), "₽": frozenset({"RUB"}),
    "₴": frozenset({"UAH"}), "₦": frozenset({"NGN"}), "₭": frozenset({"LAK"}), "៛": frozenset({"KHR"}),
    "₮": frozenset({"MNT"}), "₸": frozenset({"KZT"}), "₲": frozenset({"PYG"}), "₡": frozenset({"CRC"}),
    "₵": frozenset({"GHS"}), "₾": frozenset({"GEL"}), "₼": frozenset({"AZN"}), "৳": frozenset({"BDT"}),
    "Tk": frozenset({"BDT"}), "฿": frozenset({"THB"}), "₫": frozenset({"VND"}), "đ": frozenset({"VND"}),
    "₱": frozenset({"PHP"}), "RM": frozenset({"MYR"}), "Rp": frozenset({"IDR"}), "S$": frozenset({"SGD"}),
    "SG$": frozenset({"SGD"}), "US$": frozenset({"USD"}), "A$": frozenset({"AUD"}), "AU$": frozenset({"AUD"}),
    "C$": frozenset({"CAD"}), "CA$": frozenset({"CAD"}), "HK$": frozenset({"HKD"}), "NT$": frozenset({"TWD"}),
    "NZ$": frozenset({"NZD"}), "MX$": frozenset({"MXN"}), "R$": frozenset({"BRL"}), "zł": frozenset({"PLN"}),
    "Kč": frozenset({"CZK"}), "kr": frozenset({"SEK", "NOK", "DKK", "ISK"}),
    "Rs": frozenset({"INR", "PKR", "LKR", "NPR"}),
}

# Words after a number: "25 dollars", "50 euros". ("pounds" is left out: "2 pounds of flour".)
_WORDS: dict[str, str] = {
    "dollar": "$", "dollars": "$", "bucks": "$", "euro": "€", "euros": "€", "yen": "¥", "baht": "฿",
    "ringgit": "RM", "rupiah": "Rp", "dong": "₫", "yuan": "元", "rmb": "元", "rupee": "Rs", "rupees": "Rs",
    "peso": "₱", "pesos": "₱",
}

# Locales whose CLDR symbols are read back (every locale the product formats in must be here, so that
# what format_money writes, the parser reads).
SYMBOL_LOCALES = (
    "en", "en_US", "en_SG", "en_GB", "en_AU", "en_IN", "en_MY", "en_PH", "en_CA", "en_NZ", "en_HK",
    "de_DE", "id_ID", "vi_VN", "ja_JP", "ms_MY", "th_TH", "fil_PH", "zh_Hans_CN", "zh_Hans_SG",
    "zh_Hant_TW", "zh_Hant_HK", "ko_KR", "fr_FR", "es_ES", "es_MX", "pt_BR", "nl_NL", "it_IT", "hi_IN",
)


@cache
def _symbol_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for locale in SYMBOL_LOCALES:
        for code in currency_codes():
            for symbol in {get_currency_symbol(code, locale), _symbol(code, locale)}:
                symbol = norm(symbol).strip()
                if symbol.upper() == code or not symbol or (len(symbol) == 1 and symbol.isascii()):
                    continue
                table.setdefault(symbol, set()).add(code)
    for symbol, codes in _CURATED.items():
        table.setdefault(norm(symbol), set()).update(codes)
    table.setdefault("$", set()).update(DOLLAR_PREFIXES, {"USD"})
    for symbol in [s for s in table if any(ch.isspace() for ch in s)]:
        table.setdefault("".join(symbol.split()), set()).update(table[symbol])  # "F CFA" is typed "FCFA" too
    return {symbol: frozenset(codes) for symbol, codes in table.items()}


@cache
def _spaced_symbols() -> re.Pattern[str] | None:
    """Symbols written with a space inside ("F CFA"), to be joined into one word before splitting."""
    spaced = [s for s in _symbol_table() if any(ch.isspace() for ch in s)]
    if not spaced:
        return None
    return re.compile("|".join(r"\s+".join(map(re.escape, s.split())) for s in spaced))


# fr_FR and others group thousands with a (narrow) no-break space: "1 234,56 €" is one number.
_SPACE_GROUP = re.compile(r"(?<=\d)[\u00a0\u202f\u2009](?=\d{3}(?!\d))")


def split_words(text: str) -> list[str]:
    text = _SPACE_GROUP.sub("", text)
    pattern = _spaced_symbols()
    if pattern is not None:
        text = pattern.sub(lambda m: "".join(m.group(0).split()), text)
    return text.split()


@cache
def _folded_symbols() -> dict[str, frozenset[str]]:
    folded: dict[str, set[str]] = {}
    for symbol, codes in _symbol_table().items():
        folded.setdefault("".join(symbol.split()).casefold(), set()).update(codes)
    return {s: frozenset(c) for s, c in folded.items()}


def symbol_currencies(symbol: str) -> frozenset[str]:
    """The currencies a symbol may mean ("S$" -> {SGD}, "$" -> {USD, SGD, AUD, …}); empty if unknown."""
    symbol = norm(symbol).strip()
    if not symbol:
        return frozenset()
    return _symbol_table().get(symbol) or _folded_symbols().get(symbol.casefold(), frozenset())


@dataclass(frozen=True, slots=True)
class _Marker:
    currencies: frozenset[str]
    typed: str


def _marker(token: str, ctx: ParseContext, *, attached: bool = False, separate_after: bool = False) -> _Marker | None:
    """A currency code, symbol or (after a number) word, or None."""
    raw = norm(token).strip().rstrip(".").strip()
    if not raw:
        return None
    if len(raw) == 3 and raw.isascii() and raw.isalpha():
        code = raw.upper()
        if is_currency(code):
            # Attached ("25cup") is unambiguous; a separate lower-case word may be English ("25 cup cakes").
            if attached or raw.isupper() or code in COMMON_CODES or code == ctx.default_currency:
                return _Marker(frozenset({code}), token)
            return None
    found = _symbol_table().get(raw)
    if found is None and not (separate_after and raw.isalpha() and raw.islower()):
        found = _folded_symbols().get(raw.casefold())
    if found:
        return _Marker(found, token)
    if separate_after and raw.casefold() in _WORDS:
        return _Marker(symbol_currencies(_WORDS[raw.casefold()]), token)
    return None


def rank_currencies(codes: Iterable[str], ctx: ParseContext) -> list[str]:
    """Likely currencies first: USD, the locale's own currency, common ones, then alphabetical."""
    home = territory_currency(ctx.locale)
    order = {"USD": 0, home: 1} if home else {"USD": 0}
    return sorted(codes, key=lambda c: (order.get(c, 2 if c in COMMON_CODES else 3), c))


def _resolve(marker: _Marker, ctx: ParseContext, example: Example) -> str:
    codes = marker.currencies
    if len(codes) == 1:
        return next(iter(codes))
    if ctx.default_currency in codes:
        return ctx.default_currency
    ranked = rank_currencies(codes, ctx)
    shown = ", ".join(ranked[:6]) + (", …" if len(ranked) > 6 else "")
    raise CommandError(
        N_("“%(typed)s” could mean %(codes)s. Which one? Write its currency code."),
        example.with_currency(ranked[0]),
        field="currency", choices=ranked, values={"typed": markup.escape(marker.typed), "codes": shown},
    )



# ---------------------------------------------------------------- numbers

_NUMBER = re.compile(
    r"^(?P<sign>[-−+]?)(?P<pre>[^\d\s]*?)(?P<sign2>[-−]?)(?P<num>\d(?:[\d.,'’]*\d)?[.,]?)(?P<post>[^\s]*)$"
)
# "Rp150.000,-" (Indonesia), "500/-" (India), "25.–" (Switzerland): a written "no cents" mark.
_NO_CENTS = re.compile(r"^(?:[.,/]\s*[-–—]+)")


@dataclass(frozen=True, slots=True)
class NumberToken:
    digits: str  # "1.250,00"
    negative: bool
    prefix: str
    suffix: str
    thousands: bool  # "50k"


def number_token(token: str) -> NumberToken | None:
    text = norm(token).strip()
    match = _NUMBER.match(text)
    if not match:
        return None
    num, post = match.group("num"), match.group("post").rstrip(":;")  # "/charge 25: cake"
    if num[-1] in ".,":
        if post and _NO_CENTS.match(num[-1] + post):
            post = _NO_CENTS.sub("", num[-1] + post)
        num = num[:-1]
    elif post and _NO_CENTS.match(post):
        post = _NO_CENTS.sub("", post)
    thousands = False
    if post[:1] in ("k", "K") and not symbol_currencies(post) and (len(post) == 1 or symbol_currencies(post[1:])
                                                                   or is_currency(post[1:].upper())):
        thousands, post = True, post[1:]
    negative = bool(match.group("sign") in ("-", "−") or match.group("sign2"))
    return NumberToken(num, negative, match.group("pre"), post, thousands)


@cache
def _home_decimal_mark(currency: str) -> str | None:
    """The decimal mark of every place that uses `currency` today, when they all agree ("," for IDR)."""
    likely = get_global("likely_subtags")
    marks: set[str] = set()
    for territory, history in get_global("territory_currencies").items():
        if not any(code == currency and end is None and tender for code, _start, end, tender in history):
            continue
        tag = likely.get(f"und_{territory}") or ("en_Latn_US" if territory == "US" else None)
        if tag is None:
            continue
        try:
            marks.add(get_decimal_symbol(Locale.parse(tag)))
        except (UnknownLocaleError, ValueError):
            continue
    return marks.pop() if len(marks) == 1 else None


def _unreadable() -> CommandError:
    return CommandError(N_("That amount is not a number I can read."), field="amount")


def parse_decimal(digits: str, locale: str, currency: str | None = None) -> Decimal:
    """A number as written in `locale`: "1,250.00" (en), "1.250,00" and "150.000" (de, id, vi).

    Only a lone separator followed by exactly three digits is ambiguous ("1.500"). It groups thousands
    when it is not the locale's decimal mark, when the currency has no decimals (JPY, VND), or when the
    currency's home writes it as a group mark ("Rp150.000" typed in en_SG); otherwise it is the decimal
    mark, so "25.555 USD" is reported as too many decimals rather than read as 25,555.
    """
    digits = ascii_digits(digits).replace("'", "").replace("’", "")
    if not re.fullmatch(r"[0-9][0-9.,]*", digits) or not digits[-1].isdigit():
        raise _unreadable()
    decimal_mark = get_decimal_symbol(babel_locale(locale))
    seps = [ch for ch in digits if ch in ".,"]
    whole, frac = digits, ""
    if len(set(seps)) == 2:
        mark = seps[-1]
        if seps.count(mark) != 1:
            raise _unreadable()
        whole, frac = digits.rsplit(mark, 1)
    elif len(seps) == 1:
        sep = seps[0]
        after = digits.rsplit(sep, 1)[1]
        places = exponent(currency) if currency is not None else None
        grouping = len(after) == 3 and (
            sep != decimal_mark
            or places == 0
            or (places is not None and places < 3 and _home_decimal_mark(currency or "") not in (None, sep))
        )
        if not grouping:
            whole, frac = digits.rsplit(sep, 1)
    groups = re.split(r"[.,]", whole)
    # Grouping: a leading group of 1-3 digits, then groups of 3 (or 2, the Indian lakh style).
    if len(groups) > 1 and (
        not 1 <= len(groups[0]) <= 3 or len(groups[-1]) != 3 or any(len(g) not in (2, 3) for g in groups[1:])
    ):
        raise _unreadable()
    try:
        return Decimal(f"{''.join(groups)}.{frac}" if frac else "".join(groups))
    except InvalidOperation:
        raise _unreadable() from None


def grouping_alternative(digits: str, locale: str, currency: str) -> Decimal | None:
    """The thousands reading of a lone separator that parse_decimal read as decimals, when both fit.

    "1.000" in an SGD shop is S$1.00 by the locale, but SGD has two decimals, so three after the mark
    looks like grouping too: S$1,000.00. Currencies with no decimals (always grouping) or three (KWD:
    "1.500" is its natural form) are not in doubt, nor is "25.555 USD" (no valid decimal reading).
    """
    digits = ascii_digits(digits).replace("'", "").replace("’", "")
    seps = [ch for ch in digits if ch in ".,"]
    places = exponent(currency)
    if len(seps) != 1 or places in (0, 3) or not re.fullmatch(r"[0-9]{1,3}[.,][0-9]{3}", digits):
        return None
    try:
        read = parse_decimal(digits, locale, currency)
    except CommandError:
        return None
    whole, after = digits.split(seps[0])
    thousands = Decimal(whole + after)
    if read == thousands or read.scaleb(places) != read.scaleb(places).to_integral_value():
        return None
    return thousands


def format_amount_text(value: Decimal, currency: str, locale: str) -> str:
    """A number the way the seller would type it back ("25.56", "150.000,00")."""
    exp = exponent(currency)
    pattern = "#,##0" + ("." + "0" * exp if exp else "")
    return format_decimal(value, format=pattern, locale=babel_locale(locale), decimal_quantization=True)


@dataclass(frozen=True, slots=True)
class Amount:
    value: Decimal
    currency: str
    consumed: int  # words of the message it took
    digits: str = ""  # the number as written ("1.000")
    marked: bool = False  # a currency code, symbol or word was given
    thousands: bool = False  # written with "k" ("25k")

    @property
    def has_decimals(self) -> bool:
        """Cents were written ("12.50"), as prices are and counts are not."""
        # Finite by construction (read from digits): typeshed's exponent also allows NaN/Infinity's letters.
        return self.value.as_tuple().exponent < 0  # type: ignore[operator]


def _is_code_like(word: str) -> bool:
    return len(word) == 3 and word.isascii() and word.isalpha()


def read_amount(tokens: list[str], ctx: ParseContext, example: Example) -> Amount | None:
    """The amount phrase at the start: `25`, `25.50 usd`, `USD 25`, `S$25`, `Rp 150.000`, `1.250,00 €`."""
    if not tokens:
        return None
    number = number_token(tokens[0])
    markers: list[_Marker] = []
    consumed = 1
    if number is None:
        second = number_token(tokens[1]) if len(tokens) > 1 else None
        if second is None:
            return None
        lead = _marker(tokens[0], ctx)
        if lead is None:
            word = norm(tokens[0])
            if _is_code_like(word) and word.isupper():
                example.amount_tokens, example.rest_tokens = tokens[:2], tokens[2:]
                _unknown_currency(word, ctx, example.build(amount=[tokens[1], ctx.default_currency]))
            return None
        markers.append(lead)
        number, consumed = second, 2
    example.amount_tokens, example.rest_tokens = tokens[:consumed], tokens[consumed:]
    example.number_text = number.digits
    for attached in (number.prefix, number.suffix):
        if not attached:
            continue
        marker = _marker(attached, ctx, attached=True)
        if marker is None:
            word = norm(attached).strip(".")
            if _is_code_like(word) and word.isupper():
                _unknown_currency(word, ctx, example.build(amount=[number.digits, ctx.default_currency]))
            typed = " ".join(tokens[:consumed])
            if has_number_forms(typed):
                raise CommandError(N_("I couldn't read “%(typed)s” as an amount: write it with plain digits (0-9)."),
                                   example.build(amount=["25"]), field="amount",
                                   values={"typed": markup.escape(typed)})
            raise CommandError(
                N_("I couldn't read “%(typed)s” as an amount."),
                example.build(amount=[number.digits]), field="amount", values={"typed": markup.escape(typed)},
            )
        markers.append(marker)
    if consumed == 1 and not markers and len(tokens) > 1:
        after = _marker(tokens[1], ctx, separate_after=True)
        if after is not None:
            markers.append(after)
            consumed = 2
            example.amount_tokens, example.rest_tokens = tokens[:2], tokens[2:]
    currencies = [_resolve(m, ctx, example) for m in markers]
    if len(set(currencies)) > 1:
        raise CommandError(
            N_("“%(typed)s” names two currencies (%(first)s and %(second)s)."),
            example.with_currency(currencies[0]), field="currency",
            values={"typed": markup.escape(" ".join(tokens[:consumed])), "first": currencies[0],
                    "second": currencies[-1]},
        )
    currency = currencies[0] if currencies else ctx.default_currency
    value = parse_decimal(number.digits, ctx.locale, currency)
    if number.thousands:
        value *= 1000
    if number.negative:
        value = -value
    return Amount(value, currency, consumed, number.digits, bool(markers), number.thousands)


def _unknown_currency(word: str, ctx: ParseContext, example: str) -> None:
    raise CommandError(
        N_("“%(typed)s” is not a currency I know. Use an ISO code such as %(code)s."),
        example, field="currency", values={"typed": markup.escape(word), "code": ctx.default_currency},
    )


def amount_money(amount: Amount, ctx: ParseContext, example: Example) -> Money:
    value, currency = amount.value, amount.currency
    if value < 0:
        raise CommandError(
            N_("An amount can't be negative."), example.with_number(format_amount_text(-value, currency, ctx.locale)),
            field="amount",
        )
    if value == 0:
        raise CommandError(N_("The amount must be more than zero."), example.with_number("25"), field="amount")
    if value > ctx.max_amount:
        limit = format_amount_text(ctx.max_amount, currency, ctx.locale)
        raise CommandError(
            N_("That is more than the limit of %(limit)s %(currency)s per link."), example.with_number(limit),
            field="amount", values={"limit": limit, "currency": currency},
        )
    try:
        return Money(to_minor(value, currency), currency)
    except MoneyError:
        places = exponent(currency)
        step = Decimal(1).scaleb(-places)
        fixed = max(value.quantize(step, rounding=ROUND_HALF_UP), step)
        values = {"currency": currency, "typed": markup.escape(example.number_text), "places": places}
        raise CommandError(
            N_("%(currency)s has no decimals, so I can't charge %(typed)s.") if places == 0 else
            N_("%(currency)s has %(places)s decimals, so I can't charge %(typed)s."),
            example.with_number(format_amount_text(fixed, currency, ctx.locale)), field="amount", values=values,
        ) from None


def parse_money(text: str, ctx: ParseContext) -> Money:
    """Just an amount with an optional currency ("S$25", "1.250,00 €"); raises CommandError."""
    tokens = split_words(text)
    example = Example("/charge", tokens, [])
    amount = read_amount(tokens, ctx, example)
    if amount is None or amount.consumed != len(tokens):
        raise CommandError(N_("I couldn't read “%(typed)s” as an amount."), "/charge 25 cake", field="amount",
                           values={"typed": markup.escape(text.strip())})
    return amount_money(amount, ctx, example)
