"""The chat command grammar: text in, a command value (or a CommandError value) out.

Pure: no I/O, no clock of its own (the ParseContext carries "now", the merchant's locale, currency and
time zone). Generous in what it reads — slash optional, `/charge@SomeBot`, any case, amounts written the
way people in the merchant's locale write them, currency codes and symbols before or after — and exact in
what it produces: amounts go through core.money.to_minor, never floats.

Every user mistake is a CommandError that says what was wrong and carries a corrected example built from
what the seller typed. `parse()` returns it as a value; the helpers raise it. Nothing else escapes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_skeleton
from babel.numbers import format_decimal, get_currency_symbol, get_decimal_symbol, get_territory_currencies

from core import markup
from core.links import Customer, LinkDraft
from core.models import LinkStatus
from core.money import DOLLAR_PREFIXES, Money, MoneyError, _symbol, currency_codes, exponent, is_currency, to_minor

# ---------------------------------------------------------------- errors


class CommandError(Exception):
    """A user mistake: `message` (markup, user parts escaped) says what was wrong, `example` fixes it."""

    def __init__(self, message: str, example: str | None = None, *, field: str | None = None,
                 choices: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.example = example
        self.field = field
        self.choices = tuple(choices)

    def text(self) -> str:
        """The chat answer, in Reply markup."""
        if not self.example:
            return self.message
        return f"{self.message}\nFor example: `{markup.escape(self.example)}`"

    def __repr__(self) -> str:
        return f"CommandError({self.message!r}, example={self.example!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CommandError) and (self.message, self.example) == (other.message, other.example)

    def __hash__(self) -> int:
        return hash((self.message, self.example))


# ---------------------------------------------------------------- context and command values


@dataclass(frozen=True, slots=True)
class ParseContext:
    locale: str = "en_US"
    default_currency: str = "USD"
    max_amount: Decimal = Decimal("10000000")
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    timezone: tzinfo = UTC
    max_expiry: timedelta = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None  # a command name: help about that command
    unknown: str | None = None  # the word the user typed that is not a command


@dataclass(frozen=True, slots=True)
class Charge:
    money: Money
    description: str
    reference: str | None = None
    customer: Customer = field(default_factory=Customer)
    expires_at: datetime | None = None  # None: the default expiry

    def draft(
        self, *, merchant_id: str, member_id: int | None, platform: str, address: str,
        link_id: str | None = None, idempotency_key: str | None = None,
    ) -> LinkDraft:
        """The link this charge asks for, made in the chat at `platform`/`address`."""
        return LinkDraft(
            merchant_id=merchant_id,
            money=self.money,
            description=self.description,
            reference=self.reference,
            customer=self.customer,
            expires_at=self.expires_at,
            origin_platform=platform,
            origin_address=address,
            created_by_member_id=member_id,
            idempotency_key=idempotency_key,
            link_id=link_id,
        )


@dataclass(frozen=True, slots=True)
class Links:
    status: LinkStatus | None = None  # None: all
    label: str = "all"


@dataclass(frozen=True, slots=True)
class Status:
    key: str  # link id, id prefix or reference


@dataclass(frozen=True, slots=True)
class Cancel:
    key: str


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC


@dataclass(frozen=True, slots=True)
class Report:
    period: Period


@dataclass(frozen=True, slots=True)
class SetCurrency:
    code: str | None  # None: show the current one


@dataclass(frozen=True, slots=True)
class Invite:
    pass


@dataclass(frozen=True, slots=True)
class Join:
    code: str


@dataclass(frozen=True, slots=True)
class Alerts:
    on: bool | None  # None: show whether they are on


Command = Start | Help | Charge | Links | Status | Cancel | Report | SetCurrency | Invite | Join | Alerts

# canonical name -> one-line usage (the help text is built from this table)
USAGE: dict[str, str] = {
    "charge": "/charge 25 birthday cake",
    "links": "/links [active|paid|expired|all]",
    "status": "/status INV-1042",
    "cancel": "/cancel INV-1042",
    "report": "/report [today|week|month|2026-11]",
    "currency": "/currency SGD",
    "invite": "/invite",
    "join": "/join ABCD2345",
    "alerts": "/alerts on|off",
    "start": "/start",
    "help": "/help",
}

_ALIASES: dict[str, str] = {name: name for name in USAGE} | {
    "bill": "charge", "list": "links", "alert": "alerts", "sales": "report",
}


@dataclass(frozen=True, slots=True)
class CommandWord:
    name: str | None  # canonical command; "unknown" for an unknown /word; None when not a command at all
    typed: str  # the word as written, e.g. "/Charge@PayBot"
    rest: str
    slash: bool


_WORD = re.compile(r"^\s*(/?)([^\s@/]*)(@\S*)?(?:\s+|$)(.*)$", re.DOTALL)


def split_command(text: str) -> CommandWord:
    """The command word of a message. The slash is optional; `@BotName` after it is dropped."""
    text = (text or "").strip()
    match = _WORD.match(text)
    if not match:
        slash = text.startswith("/")
        return CommandWord("unknown" if slash else None, text.split()[0] if slash else "", text, slash)
    if not match.group(1) and not match.group(2):
        return CommandWord(None, "", text, False)
    slash, word, rest = bool(match.group(1)), match.group(2), match.group(4).strip()
    typed = text[: len(text) - len(match.group(4))].strip() if match.group(4) else text
    name = _ALIASES.get(word.casefold())
    if name is None:
        return CommandWord("unknown" if slash else None, typed, rest if slash else text, slash)
    return CommandWord(name, typed, rest, slash)


def parse(text: str, ctx: ParseContext) -> Command | CommandError:
    """Any text -> a command, or the CommandError to show. Never raises."""
    try:
        return _parse(split_command(text), ctx)
    except CommandError as error:
        return error


def _parse(word: CommandWord, ctx: ParseContext) -> Command:
    name, rest = word.name, word.rest
    if name in (None, "unknown"):
        return Help(unknown=word.typed or None)
    if name == "start":
        return Start()
    if name == "help":
        topic = _ALIASES.get(rest.strip().lstrip("/").casefold()) if rest.strip() else None
        return Help(topic=topic)
    if name == "charge":
        return parse_charge(rest, ctx)
    if name == "links":
        return _parse_links(rest)
    if name in ("status", "cancel"):
        key = _link_key(rest)
        if not key:
            raise CommandError(
                "Which link? Give its id or reference.", f"/{name} INV-1042", field="id"
            )
        return Status(key) if name == "status" else Cancel(key)
    if name == "report":
        return Report(parse_period(rest, ctx))
    if name == "currency":
        return SetCurrency(_parse_currency_code(rest, ctx))
    if name == "invite":
        return Invite()
    if name == "join":
        code = re.sub(r"[\s-]", "", rest).upper()
        if not code:
            raise CommandError("Give the invite code you were sent.", "/join ABCD2345", field="code")
        return Join(code)
    if name == "alerts":
        return Alerts(_parse_on_off(rest))
    raise AssertionError(f"unhandled command {name}")  # pragma: no cover — every alias is handled above


# ---------------------------------------------------------------- small commands

_LINK_FILTERS: dict[str, LinkStatus | None] = {
    "": None, "all": None,
    "active": LinkStatus.ACTIVE, "open": LinkStatus.ACTIVE, "unpaid": LinkStatus.ACTIVE,
    "pending": LinkStatus.ACTIVE,
    "paid": LinkStatus.PAID,
    "expired": LinkStatus.EXPIRED,
    "cancelled": LinkStatus.CANCELLED, "canceled": LinkStatus.CANCELLED,
}


def _parse_links(rest: str) -> Links:
    word = rest.strip().casefold()
    if word not in _LINK_FILTERS:
        raise CommandError(
            f"I can list active, paid, expired, cancelled or all links, not “{markup.escape(rest.strip())}”.",
            "/links paid", field="status",
        )
    status = _LINK_FILTERS[word]
    return Links(status, status.value if status else "all")


_URL_ID = re.compile(r"/p/([a-z0-9]+)", re.IGNORECASE)


def _link_key(rest: str) -> str:
    key = rest.strip().split()[0] if rest.strip() else ""
    if (match := _URL_ID.search(key)) is not None:
        return match.group(1).lower()
    return key.strip("#<>()[]\"'.,;").strip()


def _parse_on_off(rest: str) -> bool | None:
    word = rest.strip().casefold()
    if not word:
        return None
    if word in ("on", "yes", "enable", "start", "1", "true"):
        return True
    if word in ("off", "no", "disable", "stop", "0", "false"):
        return False
    raise CommandError(f"Alerts can be on or off, not “{markup.escape(rest.strip())}”.", "/alerts on",
                       field="alerts")


def _parse_currency_code(rest: str, ctx: ParseContext) -> str | None:
    word = rest.strip()
    if not word:
        return None
    code = word.upper()
    if is_currency(code):
        return code
    found = symbol_currencies(word)
    if len(found) == 1:
        return next(iter(found))
    example = "/currency SGD" if ctx.default_currency != "SGD" else "/currency USD"
    if found:
        raise CommandError(
            f"“{markup.escape(word)}” is used by several currencies ({', '.join(_rank(found, ctx)[:5])}); "
            "give the three-letter code.", example, field="currency", choices=_rank(found, ctx),
        )
    raise CommandError(f"“{markup.escape(word)}” is not an ISO 4217 currency code.", example, field="currency")


# ---------------------------------------------------------------- periods for /report


def _month_label(year: int, month: int, ctx: ParseContext) -> str:
    return format_skeleton("yMMMM", datetime(year, month, 1), locale=babel_locale(ctx.locale))


def parse_period(rest: str, ctx: ParseContext) -> Period:
    """today, yesterday, week, month, last week, last month, YYYY-MM, YYYY-MM-DD — in the shop's time zone."""
    word = " ".join(rest.casefold().split())
    local_now = ctx.now.astimezone(ctx.timezone)
    today = local_now.date()

    def at(day: date) -> datetime:
        return datetime.combine(day, time(), ctx.timezone).astimezone(UTC)

    if word in ("", "today", "day"):
        return Period("today", at(today), at(today + timedelta(days=1)))
    if word == "yesterday":
        return Period("yesterday", at(today - timedelta(days=1)), at(today))
    monday = today - timedelta(days=today.weekday())
    if word in ("week", "this week"):
        return Period("this week", at(monday), at(monday + timedelta(days=7)))
    if word == "last week":
        return Period("last week", at(monday - timedelta(days=7)), at(monday))
    first = today.replace(day=1)
    if word in ("month", "this month"):
        return Period(_month_label(first.year, first.month, ctx), at(first), at(_next_month(first)))
    if word == "last month":
        prev = (first - timedelta(days=1)).replace(day=1)
        return Period(_month_label(prev.year, prev.month, ctx), at(prev), at(first))
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", word)
    if m and 1 <= int(m.group(2)) <= 12 and 1970 <= int(m.group(1)) < 9999:
        start = date(int(m.group(1)), int(m.group(2)), 1)
        return Period(_month_label(start.year, start.month, ctx), at(start), at(_next_month(start)))
    if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", word):
        try:
            day = date(*(int(p) for p in word.split("-")))
        except ValueError:
            day = None
        if day is not None and 1970 <= day.year < 9999:
            return Period(day.isoformat(), at(day), at(day + timedelta(days=1)))
    this_month = f"{today.year}-{today.month:02d}"
    raise CommandError(
        f"I can report on today, yesterday, week, month, last week, last month or a month like {this_month}, "
        f"not “{markup.escape(rest.strip())}”.", f"/report {this_month}", field="period",
    )


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


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


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


@cache
def _symbol_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for locale in SYMBOL_LOCALES:
        for code in currency_codes():
            for symbol in {get_currency_symbol(code, locale), _symbol(code, locale)}:
                symbol = _norm(symbol).strip()
                if symbol.upper() == code or not symbol or (len(symbol) == 1 and symbol.isascii()):
                    continue
                table.setdefault(symbol, set()).add(code)
    for symbol, codes in _CURATED.items():
        table.setdefault(_norm(symbol), set()).update(codes)
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


def _words(text: str) -> list[str]:
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
    symbol = _norm(symbol).strip()
    if not symbol:
        return frozenset()
    return _symbol_table().get(symbol) or _folded_symbols().get(symbol.casefold(), frozenset())


@dataclass(frozen=True, slots=True)
class _Marker:
    currencies: frozenset[str]
    typed: str


def _marker(token: str, ctx: ParseContext, *, attached: bool = False, separate_after: bool = False) -> _Marker | None:
    """A currency code, symbol or (after a number) word, or None."""
    raw = _norm(token).strip().rstrip(".").strip()
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


def _rank(codes: Iterable[str], ctx: ParseContext) -> list[str]:
    """Likely currencies first: USD, the locale's own currency, common ones, then alphabetical."""
    home = _territory_currency(ctx.locale)
    order = {"USD": 0, home: 1} if home else {"USD": 0}
    return sorted(codes, key=lambda c: (order.get(c, 2 if c in COMMON_CODES else 3), c))


def _resolve(marker: _Marker, ctx: ParseContext, example: _Example) -> str:
    codes = marker.currencies
    if len(codes) == 1:
        return next(iter(codes))
    if ctx.default_currency in codes:
        return ctx.default_currency
    ranked = _rank(codes, ctx)
    shown = ", ".join(ranked[:6]) + (", …" if len(ranked) > 6 else "")
    raise CommandError(
        f"“{markup.escape(marker.typed)}” could mean {shown}. Which one? Write its currency code.",
        example.with_currency(ranked[0]),
        field="currency", choices=ranked,
    )


# ---------------------------------------------------------------- locales


def babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse((locale or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


@cache
def territory_of(locale: str) -> str | None:
    loc = babel_locale(locale)
    if loc.territory:
        return loc.territory
    likely = get_global("likely_subtags").get(loc.language)
    if likely:
        parts = str(likely).split("_")
        return next((p for p in parts[1:] if len(p) == 2 and p.isupper()), None)
    return None


def _territory_currency(locale: str) -> str | None:
    territory = territory_of(locale)
    if not territory:
        return None
    found = get_territory_currencies(territory, tender=True)
    return found[0] if found else None


# ---------------------------------------------------------------- numbers

_NUMBER = re.compile(
    r"^(?P<sign>[-−+]?)(?P<pre>[^\d\s]*?)(?P<sign2>[-−]?)(?P<num>\d(?:[\d.,'’]*\d)?[.,]?)(?P<post>[^\s]*)$"
)
# "Rp150.000,-" (Indonesia), "500/-" (India), "25.–" (Switzerland): a written "no cents" mark.
_NO_CENTS = re.compile(r"^(?:[.,/]\s*[-–—]+)")


@dataclass(frozen=True, slots=True)
class _NumberToken:
    digits: str  # "1.250,00"
    negative: bool
    prefix: str
    suffix: str
    thousands: bool  # "50k"


def _number_token(token: str) -> _NumberToken | None:
    text = _norm(token).strip()
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
    return _NumberToken(num, negative, match.group("pre"), post, thousands)


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
    return CommandError("That amount is not a number I can read.", field="amount")


def parse_decimal(digits: str, locale: str, currency: str | None = None) -> Decimal:
    """A number as written in `locale`: "1,250.00" (en), "1.250,00" and "150.000" (de, id, vi).

    Only a lone separator followed by exactly three digits is ambiguous ("1.500"). It groups thousands
    when it is not the locale's decimal mark, when the currency has no decimals (JPY, VND), or when the
    currency's home writes it as a group mark ("Rp150.000" typed in en_SG); otherwise it is the decimal
    mark, so "25.555 USD" is reported as too many decimals rather than read as 25,555.
    """
    digits = "".join(str(unicodedata.decimal(ch)) if ch.isdigit() else ch for ch in digits)
    digits = digits.replace("'", "").replace("’", "")
    if not digits or not digits[0].isdigit() or not digits[-1].isdigit():
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


def format_amount_text(value: Decimal, currency: str, locale: str) -> str:
    """A number the way the seller would type it back ("25.56", "150.000,00")."""
    exp = exponent(currency)
    pattern = "#,##0" + ("." + "0" * exp if exp else "")
    return format_decimal(value, format=pattern, locale=babel_locale(locale), decimal_quantization=True)


# ---------------------------------------------------------------- /charge




@dataclass
class _Example:
    """The seller's own words, to rebuild a corrected command from."""

    command: str
    amount_tokens: list[str]
    rest_tokens: list[str]
    number_text: str = ""

    def build(self, amount: Sequence[str] | None = None, rest: Sequence[str] | None = None) -> str:
        parts = [self.command, *(self.amount_tokens if amount is None else amount),
                 *(self.rest_tokens if rest is None else rest)]
        return " ".join(p for p in parts if p)

    def with_number(self, number: str) -> str:
        """The amount as typed, with only the number changed ("S$25.555" -> "S$25.56")."""
        if self.number_text:
            replaced = []
            for token in self.amount_tokens:
                fixed = re.sub(r"[-−]", "", token)
                for written in (self.number_text + "k", self.number_text + "K", self.number_text):
                    if written in fixed:
                        fixed = fixed.replace(written, number, 1)
                        break
                replaced.append(fixed)
            if any(number in token for token in replaced):
                return self.build(amount=replaced)
        return self.build(amount=[number])

    def with_currency(self, code: str) -> str:
        return self.build(amount=[code, self.number_text or "25"])


@dataclass(frozen=True, slots=True)
class _Amount:
    value: Decimal
    currency: str
    consumed: int


def _is_code_like(word: str) -> bool:
    return len(word) == 3 and word.isascii() and word.isalpha()


def _read_amount(tokens: list[str], ctx: ParseContext, example: _Example) -> _Amount | None:
    """The amount phrase at the start: `25`, `25.50 usd`, `USD 25`, `S$25`, `Rp 150.000`, `1.250,00 €`."""
    if not tokens:
        return None
    number = _number_token(tokens[0])
    markers: list[_Marker] = []
    consumed = 1
    if number is None:
        second = _number_token(tokens[1]) if len(tokens) > 1 else None
        if second is None:
            return None
        lead = _marker(tokens[0], ctx)
        if lead is None:
            word = _norm(tokens[0])
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
            word = _norm(attached).strip(".")
            if _is_code_like(word) and word.isupper():
                _unknown_currency(word, ctx, example.build(amount=[number.digits, ctx.default_currency]))
            raise CommandError(
                f"I couldn't read “{markup.escape(' '.join(tokens[:consumed]))}” as an amount.",
                example.build(amount=[number.digits]), field="amount",
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
            f"“{markup.escape(' '.join(tokens[:consumed]))}” names two currencies ({' and '.join(currencies)}).",
            example.with_currency(currencies[0]), field="currency",
        )
    currency = currencies[0] if currencies else ctx.default_currency
    value = parse_decimal(number.digits, ctx.locale, currency)
    if number.thousands:
        value *= 1000
    if number.negative:
        value = -value
    return _Amount(value, currency, consumed)


def _unknown_currency(word: str, ctx: ParseContext, example: str) -> None:
    raise CommandError(
        f"“{markup.escape(word)}” is not a currency I know. Use an ISO code such as {ctx.default_currency}.",
        example, field="currency",
    )


def _money(amount: _Amount, ctx: ParseContext, example: _Example) -> Money:
    value, currency = amount.value, amount.currency
    if value < 0:
        raise CommandError(
            "An amount can't be negative.", example.with_number(format_amount_text(-value, currency, ctx.locale)),
            field="amount",
        )
    if value == 0:
        raise CommandError("The amount must be more than zero.", example.with_number("25"), field="amount")
    if value > ctx.max_amount:
        limit = format_amount_text(ctx.max_amount, currency, ctx.locale)
        raise CommandError(
            f"That is more than the limit of {limit} {currency} per link.", example.with_number(limit),
            field="amount",
        )
    try:
        return Money(to_minor(value, currency), currency)
    except MoneyError as exc:
        step = Decimal(1).scaleb(-exponent(currency))
        fixed = max(value.quantize(step, rounding=ROUND_HALF_UP), step)
        raise CommandError(
            f"{exc}, so I can't charge {markup.escape(example.number_text)}.",
            example.with_number(format_amount_text(fixed, currency, ctx.locale)), field="amount",
        ) from None


def parse_money(text: str, ctx: ParseContext) -> Money:
    """Just an amount with an optional currency ("S$25", "1.250,00 €"); raises CommandError."""
    tokens = _words(text)
    example = _Example("/charge", tokens, [])
    amount = _read_amount(tokens, ctx, example)
    if amount is None or amount.consumed != len(tokens):
        raise CommandError(f"I couldn't read “{markup.escape(text.strip())}” as an amount.",
                           "/charge 25 cake", field="amount")
    return _money(amount, ctx, example)


_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
_HANDLE = re.compile(r"^@[A-Za-z0-9_][A-Za-z0-9_.]{1,63}$")
_PHONE_PART = re.compile(r"^[+(]?[\d()\-./]+$")
_REFERENCE = re.compile(r"^\w[\w\-./:]{0,99}$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2}))?$")
_DURATION_ATTACHED = re.compile(r"^(\d{1,4})([a-z]+)$")
_EXPIRY_WORDS = frozenset({"exp", "expires", "expire", "expiry", "expiring", "valid", "validity"})
_EXPIRY_FILLERS = frozenset({"in", "for", "on", "until", "till", "by", "at"})
_UNITS: dict[str, str] = {
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "wk": "weeks", "wks": "weeks", "week": "weeks", "weeks": "weeks",
}
_REF_WORDS = frozenset({"ref", "ref.", "ref:", "ref#", "reference", "reference:"})
_LEADING_NOISE = frozenset({"-", "–", "—", ":", "|", "·"})


def parse_charge(rest: str, ctx: ParseContext, *, command: str = "/charge") -> Charge:
    tokens = _words(rest)
    example = _Example(command, [], tokens)
    if not tokens:
        raise CommandError("Tell me the amount and what it is for.", f"{command} 25 birthday cake", field="amount")
    amount = _read_amount(tokens, ctx, example)
    if amount is None:
        # Maybe the amount came later ("/charge cake 25"): show it moved to the front.
        for i, token in enumerate(tokens[1:], start=1):
            if _number_token(token) is not None:
                moved = [token, *tokens[:i], *tokens[i + 1:]]
                raise CommandError("Start with the amount, then what it is for.",
                                   example.build(amount=[], rest=moved), field="amount")
        raise CommandError("I need an amount first.", example.build(amount=["25"]), field="amount")
    money = _money(amount, ctx, example)
    options = _read_options(example.rest_tokens, ctx, example)
    words = list(options.description)
    while words and words[0] in _LEADING_NOISE:
        words.pop(0)
    if words and words[0].casefold() == "for":
        words.pop(0)
    description = " ".join(words)
    if not description:
        raise CommandError("What is it for? Add a description after the amount.",
                           example.build(rest=[*example.rest_tokens, "birthday", "cake"]), field="description")
    if len(description) > 500:
        raise CommandError(
            f"The description is {len(description)} characters long; the most is 500.",
            example.build(rest=description[:60].split()), field="description",
        )
    return Charge(money, description, options.reference, options.customer, options.expires_at)


@dataclass
class _Options:
    description: list[str] = field(default_factory=list)
    reference: str | None = None
    customer: Customer = field(default_factory=Customer)
    expires_at: datetime | None = None


def _read_options(tokens: list[str], ctx: ParseContext, example: _Example) -> _Options:
    """Pull `to …`, `ref …`/`#…` and expiry phrases out; what is left is the description."""
    out = _Options()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        word = token.casefold()
        used = 0
        if word == "to" and i + 1 < len(tokens):
            used = _read_customer(tokens, i, ctx, example, out)
        elif word in _REF_WORDS or re.match(r"^ref[:#=]", word):
            used = _read_reference(tokens, i, example, out)
        elif token.startswith("#") and _REFERENCE.match(token[1:].rstrip(".,;")):
            out.reference, used = token[1:].rstrip(".,;"), 1
        elif word.rstrip(":") in _EXPIRY_WORDS or re.match(r"^(exp|expires|valid)[:=]", word):
            used = _read_expiry(tokens, i, ctx, example, out)
        if used:
            i += used
        else:
            out.description.append(token)
            i += 1
    return out


def _read_customer(tokens: list[str], i: int, ctx: ParseContext, example: _Example, out: _Options) -> int:
    target = tokens[i + 1].rstrip(".,;")
    if _EMAIL.match(target):
        local, domain = target.rsplit("@", 1)
        out.customer = Customer(out.customer.name, f"{local}@{domain.lower()}", out.customer.phone)
        return 2
    if _HANDLE.match(target):
        out.customer = Customer(target, out.customer.email, out.customer.phone)
        return 2
    parts: list[str] = []
    for token in tokens[i + 1:]:
        if not _PHONE_PART.match(token.rstrip(".,;")):
            break
        parts.append(token.rstrip(".,;"))
    number = "".join(parts)
    if not parts or not (number.startswith("+") or sum(ch.isdigit() for ch in number) >= 6):
        return 0  # "trip to 3 cities": part of the description
    region = territory_of(ctx.locale) or "US"
    # The longest run of number-like words that is a valid number ("to +65 9123 4567 2 cakes").
    for count in range(len(parts), 0, -1):
        try:
            parsed = phonenumbers.parse("".join(parts[:count]), region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            phone = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            out.customer = Customer(out.customer.name, out.customer.email, phone)
            return 1 + count
    code = phonenumbers.country_code_for_region(region)
    hint = "" if number.startswith("+") or not code else f" (add the country code, like +{code})"
    raise CommandError(
        f"“{markup.escape(' '.join(parts))}” doesn't look like a phone number{hint}.",
        example.build(rest=[*tokens[:i], "to", *_sample_phone(region).split(), *tokens[i + 1 + len(parts):]]),
        field="customer",
    )


def _sample_phone(region: str) -> str:
    sample = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if sample is None:
        return "+65 9123 4567"
    return phonenumbers.format_number(sample, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _read_reference(tokens: list[str], i: int, example: _Example, out: _Options) -> int:
    token = tokens[i]
    inline = re.split(r"[:#=]", token, maxsplit=1)[1] if re.match(r"^ref[:#=]", token, re.IGNORECASE) else ""
    if inline:
        value, used = inline, 1
    elif i + 1 < len(tokens):
        value, used = tokens[i + 1], 2
    else:
        raise CommandError("Which reference? Put it after “ref”.",
                           example.build(rest=[*tokens[:i], "ref", "INV-1042"]), field="reference")
    value = value.lstrip("#").rstrip(".,;")
    if not _REFERENCE.match(value):
        raise CommandError(
            f"A reference is up to 100 letters, digits and - . / : — not “{markup.escape(value[:40])}”.",
            example.build(rest=[*tokens[:i], "ref", "INV-1042", *tokens[i + used:]]), field="reference",
        )
    out.reference = value
    return used


def _read_expiry(tokens: list[str], i: int, ctx: ParseContext, example: _Example, out: _Options) -> int:
    keyword = tokens[i]
    lenient = keyword.casefold().startswith("valid")  # "valid ID required" is a description
    inline = re.split(r"[:=]", keyword, maxsplit=1)[1] if re.search(r"[:=].", keyword) else ""
    after = tokens[i + 1: i + 4]
    skip = 0
    if not inline and after and after[0].casefold() in _EXPIRY_FILLERS:
        after, skip = after[1:], 1
    words = [inline, *after] if inline else after
    found = _expiry_value(words, ctx)
    if found is None:
        if lenient:
            return 0
        bad = _bad_expiry_length(tokens, i)
        raise CommandError(
            "I can read expiry like “exp 2h”, “expires in 3 days”, “valid 30m” or “exp 2026-12-31”.",
            example.build(rest=[*tokens[:i], "exp", "3d", *tokens[i + 1 + bad:]]), field="expires_at",
        )
    expires_at, used = found
    total = 1 + skip + (used - 1 if inline else used)
    others = [*tokens[:i], *tokens[i + total:]]
    if expires_at <= ctx.now:
        raise CommandError("That expiry is already past; a link must expire in the future.",
                           example.build(rest=[*others, "exp", "3d"]), field="expires_at")
    if expires_at > ctx.now + ctx.max_expiry:
        days = ctx.max_expiry.days
        raise CommandError(f"A link can be valid for at most {days} days.",
                           example.build(rest=[*others, "exp", f"{days}d"]), field="expires_at")
    out.expires_at = expires_at
    return total


def _bad_expiry_length(tokens: list[str], i: int) -> int:
    """How many words after an unreadable expiry keyword look like its (bad) value ("in 3 fortnights")."""
    n = 0
    rest = tokens[i + 1: i + 4]
    while n < len(rest) and rest[n].casefold() in _EXPIRY_FILLERS:
        n += 1
    if n < len(rest) and any(ch.isdigit() for ch in rest[n]):
        n += 1
        if rest[n - 1].isdigit() and n < len(rest) and rest[n].isalpha():
            n += 1  # the unit word that was not understood
    return n


def _expiry_value(words: list[str], ctx: ParseContext) -> tuple[datetime, int] | None:
    """(moment, words used) for "3d", "3 days", "a week", "2026-12-31", "2026-12-31 18:00", "tomorrow"."""
    if not words:
        return None
    first = words[0].casefold().rstrip(".,;")
    today = ctx.now.astimezone(ctx.timezone).date()
    far = ctx.now + ctx.max_expiry + timedelta(days=1)
    if first in ("today", "tonight"):
        return _at(today, time(23, 59, 59), ctx) or far, 1
    if first == "tomorrow":
        return _at(today + timedelta(days=1), time(23, 59, 59), ctx) or far, 1
    if (m := _DURATION_ATTACHED.match(first)) and m.group(2) in _UNITS:
        return ctx.now + timedelta(**{_UNITS[m.group(2)]: int(m.group(1))}), 1
    if (first.isdigit() and len(first) <= 4) or first in ("a", "an", "one"):
        count = int(first) if first.isdigit() else 1
        if len(words) > 1 and (unit := words[1].casefold().rstrip(".,;")) in _UNITS:
            return ctx.now + timedelta(**{_UNITS[unit]: count}), 2
        return None
    if (m := _ISO_DATE.match(words[0].rstrip(".,;"))) is not None:
        try:
            day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
        if m.group(4) is not None:
            clock = _clock(m.group(4), m.group(5))
            return (None if clock is None else (_at(day, clock, ctx) or far, 1))
        if len(words) > 1 and (t := re.fullmatch(r"(\d{1,2}):(\d{2})", words[1].rstrip(".,;"))):
            clock = _clock(t.group(1), t.group(2))
            return (None if clock is None else (_at(day, clock, ctx) or far, 2))
        return _at(day, time(23, 59, 59), ctx) or far, 1
    return None


def _clock(hour: str, minute: str) -> time | None:
    h, m = int(hour), int(minute)
    return time(h, m) if h <= 23 and m <= 59 else None


def _at(day: date, clock: time, ctx: ParseContext) -> datetime | None:
    """A local wall-clock moment in UTC; None when it is beyond what datetime can hold."""
    try:
        return datetime.combine(day, clock, ctx.timezone).astimezone(UTC)
    except (OverflowError, ValueError):
        return None
