"""The chat grammar: real phrasings per currency and locale, every error with its corrected example, and
Hypothesis properties (format → parse gives the amount back; no text makes the parser raise)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.commands import (
    Alerts,
    Cancel,
    Charge,
    Choice,
    CommandError,
    Doubt,
    Greeting,
    Help,
    Invite,
    Join,
    Links,
    ParseContext,
    Report,
    SetCurrency,
    SetLanguage,
    Start,
    Status,
    parse,
    parse_decimal,
    parse_money,
    split_command,
    symbol_currencies,
)
from core.commands.values import Dashboard, InvoiceCommand, RefundAsk, Remind, SeriesCharge, SeriesCommand, Shop
from core.links import Customer
from core.locales import timezone_for
from core.models import LinkStatus
from core.money import Money, currency_codes, format_money

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

DEFAULTS = {
    "en_US": "USD", "en_SG": "SGD", "de_DE": "EUR", "id_ID": "IDR", "vi_VN": "VND", "ja_JP": "JPY",
    "th_TH": "THB", "ms_MY": "MYR", "fil_PH": "PHP", "en_IN": "INR", "en_GB": "GBP", "fr_FR": "EUR",
}


def ctx(locale: str = "en_SG", currency: str | None = None, **kw: object) -> ParseContext:
    return ParseContext(locale=locale, default_currency=currency or DEFAULTS[locale], now=NOW,
                        timezone=timezone_for(locale), **kw)  # type: ignore[arg-type]


def charge(text: str, context: ParseContext) -> Charge:
    result = parse(text, context)
    assert isinstance(result, Charge), result
    return result


def error(text: str, context: ParseContext) -> CommandError:
    result = parse(text, context)
    assert isinstance(result, CommandError), result
    return result


# ---------------------------------------------------------------- command words


@pytest.mark.parametrize(
    ("text", "name", "rest"),
    [
        ("/charge 25 cake", "charge", "25 cake"),
        ("charge 25 cake", "charge", "25 cake"),
        ("CHARGE 25 cake", "charge", "25 cake"),
        ("/Charge@PayLinksBot 25 cake", "charge", "25 cake"),
        ("/charge@SomeBot", "charge", ""),
        ("  /links   paid ", "links", "paid"),
        ("Status INV-1", "status", "INV-1"),
        ("bill 5 tea", "charge", "5 tea"),
        ("/frobnicate now", "unknown", "now"),
        ("/", "unknown", ""),
        ("/charge/x", "unknown", "/charge/x"),
        ("hello there", None, "hello there"),
        ("25 cake", None, "25 cake"),
        ("", None, ""),
    ],
)
def test_split_command(text: str, name: str | None, rest: str) -> None:
    word = split_command(text)
    assert (word.name, word.rest) == (name, rest)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", Start()),
        ("start", Start()),
        ("/help", Help()),
        ("/help charge", Help(topic="charge")),
        ("/help /links", Help(topic="links")),
        ("/nope", Help(unknown="/nope")),
        ("what can you do", Help(unknown=None) if False else Help(unknown="")),
        ("/links", Links(None, "all")),
        ("/links paid", Links(LinkStatus.PAID, "paid")),
        ("links OPEN", Links(LinkStatus.ACTIVE, "active")),
        ("/links expired", Links(LinkStatus.EXPIRED, "expired")),
        ("/links canceled", Links(LinkStatus.CANCELLED, "cancelled")),
        ("/links all", Links(None, "all")),
        ("/status INV-1042", Status("INV-1042")),
        ("/status #INV-1042", Status("INV-1042")),
        ("/status https://pay.example/p/AbC234xyz", Status("abc234xyz")),
        ("cancel lbndkfkt", Cancel("lbndkfkt")),
        ("/currency sgd", SetCurrency("SGD")),
        ("/currency S$", SetCurrency("SGD")),
        ("/currency", SetCurrency(None)),
        ("/invite", Invite()),
        ("/join abcd-2345", Join("ABCD2345")),
        ("join  ABCD 2345", Join("ABCD2345")),
        ("/alerts on", Alerts(True)),
        ("/alerts OFF", Alerts(False)),
        ("/alerts", Alerts(None)),
    ],
)
def test_simple_commands(text: str, expected: object) -> None:
    result = parse(text, ctx())
    if isinstance(expected, Help) and expected.unknown == "":
        assert isinstance(result, Help)  # free text: the conversation decides (help, or silence in a group)
        return
    assert result == expected


@pytest.mark.parametrize(
    ("text", "message", "example"),
    [
        ("/status", "Which link?", "/status INV-1042"),
        ("/cancel", "Which link?", "/cancel INV-1042"),
        ("/links later", "not “later”", "/links paid"),
        ("/alerts maybe", "not “maybe”", "/alerts on"),
        ("/currency XYZ", "not an ISO 4217 currency code", "/currency USD"),
        ("/currency $", "several currencies", "/currency USD"),
        ("/join", "invite code", "/join ABCD2345"),
        ("/report fortnight", "not “fortnight”", "/report 2026-11"),
        ("/report 2026-13", "not “2026-13”", "/report 2026-11"),
    ],
)
def test_simple_command_errors(text: str, message: str, example: str) -> None:
    result = error(text, ctx())
    assert message in result.message
    assert result.example == example


# ---------------------------------------------------------------- /charge: amounts per currency and locale

AMOUNTS = [
    # (locale, text, minor units, currency)
    ("en_US", "/charge 25 cake", 2500, "USD"),
    ("en_US", "/charge 25.5 cake", 2550, "USD"),
    ("en_US", "/charge 25.50 cake", 2550, "USD"),
    ("en_US", "/charge 1,250.00 cake", 125000, "USD"),
    ("en_US", "/charge 1250 cake", 125000, "USD"),
    ("en_US", "/charge 1,250 cake", 125000, "USD"),
    ("en_US", "/charge $25 cake", 2500, "USD"),
    ("en_US", "/charge $ 25 cake", 2500, "USD"),
    ("en_US", "/charge US$25 cake", 2500, "USD"),
    ("en_US", "/charge 25 dollars lunch", 2500, "USD"),
    ("en_US", "/charge 0.99 gum", 99, "USD"),
    ("en_US", "/charge 25. cake", 2500, "USD"),
    ("en_US", "/charge 25,50 cake", 2550, "USD"),  # a decimal comma typed in an en locale is still 25.50
    ("en_US", "/charge USD 25 cake", 2500, "USD"),
    ("en_US", "/charge 25 usd cake", 2500, "USD"),
    ("en_US", "/charge 25USD cake", 2500, "USD"),
    ("en_US", "/charge usd25 cake", 2500, "USD"),
    ("en_US", "/charge 25 EUR cake", 2500, "EUR"),
    ("en_US", "/charge €25 cake", 2500, "EUR"),
    ("en_US", "/charge £25 cake", 2500, "GBP"),
    ("en_US", "/charge ₹499 thali", 49900, "INR"),
    ("en_US", "/charge 50 euros dinner", 5000, "EUR"),
    ("en_US", "/charge 25 cup cakes", 2500, "USD"),  # "cup" is a word here, not Cuban pesos
    ("en_US", "/charge 25 CUP cakes", 2500, "CUP"),  # upper case is a currency code
    ("en_US", "/charge 25cup cakes", 2500, "CUP"),  # attached is a currency code
    ("en_US", "/charge 25 all day pass", 2500, "USD"),
    ("en_US", "/charge 25 BBQ wings", 2500, "USD"),  # not a currency: part of the description
    ("en_US", "/charge 1.5k sofa", 150000, "USD"),
    ("en_SG", "/charge 25 cake", 2500, "SGD"),
    ("en_SG", "/charge S$25 cake", 2500, "SGD"),
    ("en_SG", "/charge s$25 cake", 2500, "SGD"),
    ("en_SG", "/charge $25 cake", 2500, "SGD"),  # the merchant's default uses "$"
    ("en_SG", "/charge SGD 25.50 cake", 2550, "SGD"),
    ("en_SG", "/charge 25 sgd cake", 2550 - 50, "SGD"),
    ("en_SG", "/charge US$25 cake", 2500, "USD"),
    ("en_SG", "/charge RM25 nasi lemak", 2500, "MYR"),
    ("en_SG", "/charge Rp150.000 nasi", 15_000_000, "IDR"),  # IDR's home writes "." for thousands
    ("en_SG", "/charge ฿500 massage", 50000, "THB"),
    ("en_SG", "/charge ₫50.000 phở", 50000, "VND"),
    ("en_SG", "/charge ₱250 halo-halo", 25000, "PHP"),
    ("en_SG", "/charge HK$88 dim sum", 8800, "HKD"),
    ("en_SG", "/charge A$30 book", 3000, "AUD"),
    ("en_SG", "/charge 1.5 KWD perfume", 1500, "KWD"),
    ("en_SG", "/charge 1.500 KWD perfume", 1500, "KWD"),  # KWD has 3 decimals
    ("de_DE", "/charge 25 Kuchen", 2500, "EUR"),
    ("de_DE", "/charge 25,50 Kuchen", 2550, "EUR"),
    ("de_DE", "/charge 1.250,00 Fahrrad", 125000, "EUR"),
    ("de_DE", "/charge 1.250 Fahrrad", 125000, "EUR"),
    ("de_DE", "/charge 150.000 Auto", 15_000_000, "EUR"),
    ("de_DE", "/charge 25 € Kuchen", 2500, "EUR"),
    ("de_DE", "/charge 25€ Kuchen", 2500, "EUR"),
    ("de_DE", "/charge €25 Kuchen", 2500, "EUR"),
    ("de_DE", "/charge 25.50 Kuchen", 2550, "EUR"),  # two digits after "." can only be cents
    ("de_DE", "/charge 25.– Kuchen", 2500, "EUR"),
    ("de_DE", "/charge 1.250,00 USD Rad", 125000, "USD"),
    ("id_ID", "/charge 150.000 nasi goreng", 15_000_000, "IDR"),
    ("id_ID", "/charge Rp150.000 nasi goreng", 15_000_000, "IDR"),
    ("id_ID", "/charge Rp 150.000 nasi goreng", 15_000_000, "IDR"),
    ("id_ID", "/charge Rp150.000,- nasi goreng", 15_000_000, "IDR"),
    ("id_ID", "/charge rp150rb nasi", None, None),  # "rb" is not understood: an error, never a guess
    ("id_ID", "/charge 1.250.000 HP", 125_000_000, "IDR"),
    ("id_ID", "/charge 1.250,50 pulsa", 125050, "IDR"),
    ("id_ID", "/charge IDR 150.000 nasi", 15_000_000, "IDR"),
    ("id_ID", "/charge 150k nasi", 15_000_000, "IDR"),
    ("vi_VN", "/charge 50.000 phở", 50000, "VND"),
    ("vi_VN", "/charge 50.000đ phở", 50000, "VND"),
    ("vi_VN", "/charge 50.000 ₫ phở", 50000, "VND"),
    ("vi_VN", "/charge ₫50.000 phở", 50000, "VND"),
    ("vi_VN", "/charge 50000 VND phở", 50000, "VND"),
    ("vi_VN", "/charge 50k phở", 50000, "VND"),
    ("vi_VN", "/charge 1.250.000 áo dài", 1_250_000, "VND"),
    ("ja_JP", "/charge 1200 ラーメン", 1200, "JPY"),
    ("ja_JP", "/charge ¥1200 ラーメン", 1200, "JPY"),
    ("ja_JP", "/charge ¥1,200 ラーメン", 1200, "JPY"),
    ("ja_JP", "/charge ￥1,200 ラーメン", 1200, "JPY"),
    ("ja_JP", "/charge １２００円 ラーメン", 1200, "JPY"),
    ("ja_JP", "/charge 1200 JPY ラーメン", 1200, "JPY"),
    ("th_TH", "/charge ฿500 ผัดไทย", 50000, "THB"),
    ("th_TH", "/charge 500 บาท", 50000, "THB"),
    ("th_TH", "/charge 500 baht pad thai", 50000, "THB"),
    ("ms_MY", "charge RM25 nasi lemak", 2500, "MYR"),
    ("ms_MY", "charge 25 ringgit nasi lemak", 2500, "MYR"),
    ("fil_PH", "/charge ₱250 halo-halo", 25000, "PHP"),
    ("fil_PH", "/charge 250 pesos halo-halo", 25000, "PHP"),
    ("en_IN", "/charge ₹499 thali", 49900, "INR"),
    ("en_IN", "/charge 1,23,456.50 sofa", 12_345_650, "INR"),
    ("en_IN", "/charge Rs 500/- samosa", 50000, "INR"),
    ("en_IN", "/charge Rs.500 samosa", 50000, "INR"),
    ("en_GB", "/charge £25 tea", 2500, "GBP"),
    ("en_GB", "/charge 25 quid tea", 2500, "GBP"),
]


@pytest.mark.parametrize(("locale", "text", "minor", "currency"), AMOUNTS)
def test_amounts(locale: str, text: str, minor: int | None, currency: str | None) -> None:
    result = parse(text, ctx(locale))
    if minor is None:
        assert isinstance(result, CommandError)
        assert result.example and result.example.startswith("/charge ")
        return
    if text.endswith(("บาท", "25 quid tea")):
        # A bare amount plus a word: the word is the description, the currency the default.
        assert isinstance(result, Charge) and result.money.currency == DEFAULTS[locale]
        return
    if "k " in text:
        # "25k" is read, then confirmed before a link is made.
        assert isinstance(result, Choice) and result.reason == Doubt.SHORTHAND, result
        (result,) = result.readings
    assert isinstance(result, Charge), result
    assert result.money == Money(minor, currency or "")


# ---------------------------------------------------------------- /charge: descriptions and options


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("/charge 25 for 2 birthday cakes", "2 birthday cakes"),
        ("/charge 25 For 2 birthday cakes", "2 birthday cakes"),
        ("/charge 25 - cake", "cake"),
        ("/charge 25: cake", "cake"),
        ("/charge 25 cake for alice", "cake for alice"),
        ("/charge 25 trip to 3 cities", "trip to 3 cities"),
        ("/charge 25 valid ID replacement", "valid ID replacement"),
        ("/charge 25   lots   of   space", "lots of space"),
        ("/charge 25 for for the win", "for the win"),
        ("/charge 25 ケーキ 🎂", "ケーキ 🎂"),
        ("/charge 25 **bold** `code` <b>", "**bold** `code` <b>"),
    ],
)
def test_descriptions(text: str, description: str) -> None:
    assert charge(text, ctx("en_US")).description == description


@pytest.mark.parametrize(
    ("locale", "text", "customer"),
    [
        ("en_SG", "/charge 25 cake to +65 9123 4567", Customer(phone="+6591234567")),
        ("en_SG", "/charge 25 cake to 9123 4567", Customer(phone="+6591234567")),  # SG from the locale
        ("en_SG", "/charge 25 cake to +6591234567", Customer(phone="+6591234567")),
        ("en_SG", "/charge 25 cake to +65 9123 4567 thanks!", Customer(phone="+6591234567")),
        ("id_ID", "/charge 150.000 nasi to 0812-3456-7890", Customer(phone="+6281234567890")),
        ("en_US", "/charge 25 cake to (415) 555-2671", Customer(phone="+14155552671")),
        ("de_DE", "/charge 25 Kuchen to 0151 23456789", Customer(phone="+4915123456789")),
        ("en_US", "/charge 25 cake to alice@Example.COM", Customer(email="alice@example.com")),
        ("en_US", "/charge 25 cake to @alice", Customer(name="@alice")),
        ("en_US", "/charge 25 cake to @alice to alice@example.com",
         Customer(name="@alice", email="alice@example.com")),
    ],
)
def test_customers(locale: str, text: str, customer: Customer) -> None:
    result = charge(text, ctx(locale))
    assert result.customer == customer
    assert result.description in ("cake", "nasi", "Kuchen", "cake thanks!")


VIA = {"sms": "sms", "text": "sms", "email": "email", "mail": "email", "whatsapp": "whatsapp"}


@pytest.mark.parametrize(
    ("text", "notify", "description"),
    [
        ("/charge 25 cake to +65 9123 4567 via sms", frozenset({"sms"}), "cake"),
        ("/charge 25 cake via SMS to +65 9123 4567", frozenset({"sms"}), "cake"),
        ("/charge 25 cake to alice@example.com via email via whatsapp", frozenset({"email", "whatsapp"}), "cake"),
        ("/charge 25 delivery via courier to +65 9123 4567", None, "delivery via courier"),  # not a channel
        ("/charge 25 cake to +65 9123 4567", None, "cake"),
    ],
)
def test_via_names_the_channels_and_other_words_stay_in_the_description(
    text: str, notify: frozenset[str] | None, description: str
) -> None:
    result = charge(text, ctx("en_SG", channels=VIA))
    assert (result.notify, result.description) == (notify, description)
    assert Charge.from_dict(result.to_dict()) == result  # kept while a question is asked back
    # Without channels (no plug-in reaches customers), "via" is just a word.
    assert charge("/charge 25 cake via sms", ctx("en_SG")).description == "cake via sms"


@pytest.mark.parametrize(
    ("text", "reference", "description"),
    [
        ("/charge 25 cake ref INV-1042", "INV-1042", "cake"),
        ("/charge 25 cake #INV-1042", "INV-1042", "cake"),
        ("/charge 25 #INV-1042 cake", "INV-1042", "cake"),
        ("/charge 25 cake ref: INV-1042", "INV-1042", "cake"),
        ("/charge 25 cake ref:INV-1042", "INV-1042", "cake"),
        ("/charge 25 cake REF #2026/11/7", "2026/11/7", "cake"),
        ("/charge 25 cake reference PO-7.", "PO-7", "cake"),
    ],
)
def test_references(text: str, reference: str, description: str) -> None:
    result = charge(text, ctx("en_US"))
    assert (result.reference, result.description) == (reference, description)


@pytest.mark.parametrize(
    ("locale", "text", "expires_at"),
    [
        ("en_SG", "/charge 25 cake expires in 3 days", NOW + timedelta(days=3)),
        ("en_SG", "/charge 25 cake exp 2h", NOW + timedelta(hours=2)),
        ("en_SG", "/charge 25 cake valid 30m", NOW + timedelta(minutes=30)),
        ("en_SG", "/charge 25 cake valid for 1 week", NOW + timedelta(weeks=1)),
        ("en_SG", "/charge 25 cake valid for a week", NOW + timedelta(weeks=1)),
        ("en_SG", "/charge 25 cake expires in 90 minutes", NOW + timedelta(minutes=90)),
        ("en_SG", "/charge 25 cake exp: 2d", NOW + timedelta(days=2)),
        ("en_SG", "/charge 25 cake exp=12h", NOW + timedelta(hours=12)),
        ("en_SG", "/charge 25 exp 3d cake", NOW + timedelta(days=3)),
        ("en_SG", "/charge 25 cake Expires 2 Hrs", NOW + timedelta(hours=2)),
        # dates are the end of that day in the shop's time zone (Singapore is UTC+8)
        ("en_SG", "/charge 25 cake exp 2026-12-31", datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)),
        ("en_SG", "/charge 25 cake expires on 2026-12-31", datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)),
        ("en_SG", "/charge 25 cake exp 2026-12-31 18:00", datetime(2026, 12, 31, 10, 0, tzinfo=UTC)),
        ("en_SG", "/charge 25 cake exp 2026-12-31T18:00", datetime(2026, 12, 31, 10, 0, tzinfo=UTC)),
        ("en_SG", "/charge 25 cake expires tomorrow", datetime(2026, 11, 27, 15, 59, 59, tzinfo=UTC)),
        ("de_DE", "/charge 25 Kuchen exp 2026-12-31", datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC)),
    ],
)
def test_expiry(locale: str, text: str, expires_at: datetime) -> None:
    result = charge(text, ctx(locale))
    assert result.expires_at == expires_at
    assert result.description in ("cake", "Kuchen")


def test_everything_at_once() -> None:
    text = "/charge@PayBot S$1,250.00 for 2 birthday cakes to +65 9123 4567 ref INV-1042 expires in 3 days"
    assert charge(text, ctx("en_SG")) == Charge(
        Money(125000, "SGD"), "2 birthday cakes", "INV-1042", Customer(phone="+6591234567"),
        NOW + timedelta(days=3),
    )


# ---------------------------------------------------------------- /charge: errors, each with a corrected example


@pytest.mark.parametrize(
    ("locale", "currency", "text", "message", "example"),
    [
        ("en_US", None, "/charge 25.555 USD cake", "USD has 2 decimals", "/charge 25.56 USD cake"),
        ("en_US", None, "/charge $25.555 cake", "USD has 2 decimals", "/charge $25.56 cake"),
        ("ja_JP", None, "/charge ¥12.5 ramen", "JPY has no decimals", "/charge ¥13 ramen"),
        ("en_US", None, "/charge 1.5 JPY ramen", "JPY has no decimals", "/charge 2 JPY ramen"),
        ("en_US", None, "/charge 1.0005 KWD oil", "KWD has 3 decimals", "/charge 1.001 KWD oil"),
        ("en_US", None, "/charge 0.001 cake", "USD has 2 decimals", "/charge 0.01 cake"),
        ("de_DE", None, "/charge 25,555 Kuchen", "EUR has 2 decimals", "/charge 25,56 Kuchen"),
        ("en_US", None, "/charge 0 cake", "more than zero", "/charge 25 cake"),
        ("en_US", None, "/charge $0.00 cake", "more than zero", "/charge $25 cake"),
        ("en_US", None, "/charge -25 cake", "can't be negative", "/charge 25.00 cake"),
        ("en_US", None, "/charge -$25 refund", "can't be negative", "/charge $25.00 refund"),
        ("en_US", None, "/charge 20000000 yacht", "more than the limit of 10,000,000.00 USD",
         "/charge 10,000,000.00 yacht"),
        ("de_DE", None, "/charge 20.000.000 Jacht", "more than the limit of 10.000.000,00 EUR",
         "/charge 10.000.000,00 Jacht"),
        ("en_US", None, "/charge 25 USD", "What is it for?", "/charge 25 USD birthday cake"),
        ("en_US", None, "/charge 25XYZ cake", "“XYZ” is not a currency I know", "/charge 25 USD cake"),
        ("en_US", None, "/charge XYZ 25 cake", "“XYZ” is not a currency I know", "/charge 25 USD cake"),
        ("en_US", "EUR", "/charge $25 cake", "“$” could mean USD, AUD, BND, CAD", "/charge USD 25 cake"),
        ("en_SG", "EUR", "/charge $25 cake", "could mean USD, SGD", "/charge USD 25 cake"),
        ("en_US", "USD", "/charge ¥1200 ramen", "“¥” could mean CNY, JPY", "/charge CNY 1200 ramen"),
        ("en_US", "USD", "/charge 1200 yen ramen", "could mean", "/charge CNY 1200 ramen"),
        ("en_US", None, "/charge $25EUR cake", "names two currencies", "/charge USD 25 cake"),
        ("en_US", None, "/charge 25pax dinner", "couldn't read “25pax”", "/charge 25 dinner"),
        ("en_US", None, "/charge 25", "What is it for?", "/charge 25 birthday cake"),
        ("en_US", None, "/charge for cake", "I need an amount first", "/charge 25 for cake"),
        ("en_US", None, "/charge cake 25", "Start with the amount", "/charge 25 cake"),
        ("en_US", None, "/charge birthday cake $25", "Start with the amount", "/charge $25 birthday cake"),
        ("en_US", None, "/charge", "amount and what it is for", "/charge 25 birthday cake"),
        ("en_US", None, "/charge 1.2.3 cake", "not a number I can read", None),
        ("en_US", None, "/charge 25PAX dinner", "“PAX” is not a currency I know", "/charge 25 USD dinner"),
        ("en_SG", None, "/charge 25 cake to +65 123", "“+65 123” doesn't look like a phone number",
         "/charge 25 cake to +65 8123 4567"),
        ("en_SG", None, "/charge 25 cake to 12345678 now", "add the country code, like +65",
         "/charge 25 cake to +65 8123 4567 now"),
        ("en_SG", None, "/charge 25 cake exp soon", "I can read expiry like", "/charge 25 cake exp 3d soon"),
        ("en_SG", None, "/charge 25 cake exp 3 fortnights", "I can read expiry like", "/charge 25 cake exp 3d"),
        ("en_SG", None, "/charge 25 cake expires", "I can read expiry like", "/charge 25 cake exp 3d"),
        ("en_SG", None, "/charge 25 cake exp 2026-02-30", "I can read expiry like", "/charge 25 cake exp 3d"),
        ("en_SG", None, "/charge 25 cake exp 2020-01-01", "already past", "/charge 25 cake exp 3d"),
        ("en_SG", None, "/charge 25 cake exp 0h", "already past", "/charge 25 cake exp 3d"),
        ("en_SG", None, "/charge 25 cake exp 400d", "at most 365 days", "/charge 25 cake exp 365d"),
        ("en_SG", None, "/charge 25 cake exp 9999-12-31", "at most 365 days", "/charge 25 cake exp 365d"),
        ("en_SG", None, "/charge 25 cake ref", "Which reference?", "/charge 25 cake ref INV-1042"),
        ("en_SG", None, "/charge 25 cake ref <INV>", "A reference is", "/charge 25 cake ref INV-1042"),
        ("en_SG", None, "/charge 25 " + "x" * 501, "501 characters long; the most is 500", None),
    ],
)
def test_charge_errors(locale: str, currency: str | None, text: str, message: str, example: str | None) -> None:
    result = error(text, ctx(locale, currency))
    assert message in result.message
    if example is not None:
        assert result.example == example
    # Every corrected example the grammar offers is itself accepted (or, for a pick between currencies,
    # resolves the question that was asked).
    if result.example and result.example.startswith("/charge"):
        assert isinstance(parse(result.example, ctx(locale, currency)), Charge), result.example
    assert result.field


def test_error_text_shows_the_example_as_code() -> None:
    result = error("/charge 25.555 USD cake`", ctx("en_US"))
    assert result.text() == (
        "USD has 2 decimals, so I can't charge 25.555.\nFor example: `/charge 25.56 USD cake\\``"
    )


def test_max_amount_comes_from_the_context() -> None:
    assert isinstance(parse("/charge 101 cake", ctx("en_US", max_amount=Decimal("100"))), CommandError)
    assert isinstance(parse("/charge 100 cake", ctx("en_US", max_amount=Decimal("100"))), Charge)


# ---------------------------------------------------------------- symbols


@pytest.mark.parametrize(
    ("symbol", "codes"),
    [
        ("€", {"EUR"}), ("£", {"GBP"}), ("₹", {"INR"}), ("฿", {"THB"}), ("₫", {"VND"}), ("₱", {"PHP"}),
        ("RM", {"MYR"}), ("Rp", {"IDR"}), ("S$", {"SGD"}), ("US$", {"USD"}), ("HK$", {"HKD"}),
        ("元", {"CNY"}), ("円", {"JPY"}), ("￥", {"JPY", "CNY"}), ("¥", {"JPY", "CNY"}),
    ],
)
def test_symbols(symbol: str, codes: set[str]) -> None:
    assert symbol_currencies(symbol) == codes


def test_dollar_is_shared_by_every_dollar() -> None:
    assert {"USD", "SGD", "AUD", "CAD", "HKD", "NZD", "TWD"} <= symbol_currencies("$")


@pytest.mark.parametrize(
    ("digits", "locale", "currency", "value"),
    [
        ("1,250.00", "en_US", "USD", "1250.00"), ("1.250,00", "de_DE", "EUR", "1250.00"),
        ("1.250", "de_DE", "EUR", "1250"), ("1,250", "en_US", "USD", "1250"), ("1.250", "en_US", "USD", "1.250"),
        ("1,250", "de_DE", "EUR", "1.250"), ("150.000", "en_US", "IDR", "150000"), ("1.200", "en_US", "JPY", "1200"),
        ("1'250.50", "de_CH", "CHF", "1250.50"), ("1,23,456", "en_IN", "INR", "123456"),
    ],
)
def test_parse_decimal(digits: str, locale: str, currency: str, value: str) -> None:
    assert parse_decimal(digits, locale, currency) == Decimal(value)


# ---------------------------------------------------------------- properties

ROUND_TRIP_LOCALES = ["en_US", "en_SG", "de_DE", "id_ID", "vi_VN", "ja_JP", "th_TH", "en_IN", "fr_FR", "de_CH"]
BIG = Decimal("1e15")


@pytest.mark.parametrize("locale", ROUND_TRIP_LOCALES)
def test_every_currency_round_trips_in(locale: str) -> None:
    """The exhaustive companion of the property below: every ISO currency, amounts around each grouping."""
    for currency in currency_codes():
        for minor in (1, 99, 100, 999, 1000, 1001, 123456, 1_000_000, 123_456_789, 10**12 + 7):
            written = format_money(minor, currency, locale)
            assert parse_money(written, ctx(locale, currency, max_amount=BIG)) == Money(minor, currency), written


@settings(max_examples=600, deadline=None)
@given(
    currency=st.sampled_from(currency_codes()),
    locale=st.sampled_from(ROUND_TRIP_LOCALES),
    minor=st.one_of(st.integers(1, 10**6), st.integers(1, 10**14)),
)
def test_format_then_parse_gives_the_amount_back(currency: str, locale: str, minor: int) -> None:
    written = format_money(minor, currency, locale)
    assert parse_money(written, ctx(locale, currency, max_amount=BIG)) == Money(minor, currency)
    # In a shop with another default the result is the same, or (for a shared symbol) the question
    # "which one?" with this currency among the choices.
    other = "USD" if currency != "USD" else "EUR"
    try:
        assert parse_money(written, ctx(locale, other, max_amount=BIG)) == Money(minor, currency)
    except CommandError as asked:
        assert asked.field == "currency" and currency in asked.choices, (written, asked)


@settings(max_examples=300, deadline=None)
@given(currency=st.sampled_from(currency_codes()), locale=st.sampled_from(ROUND_TRIP_LOCALES),
       minor=st.integers(1, 10**9))
def test_a_formatted_amount_makes_a_charge(currency: str, locale: str, minor: int) -> None:
    text = f"/charge {format_money(minor, currency, locale)} for 2 birthday cakes ref INV-7"
    result = parse(text, ctx(locale, currency, max_amount=BIG))
    assert result == Charge(Money(minor, currency), "2 birthday cakes", "INV-7")


GRAMMAR_WORDS = [
    "/charge", "charge", "/links", "/status", "/cancel", "/report", "/currency", "/join", "/alerts", "/help",
    "25", "25.5", "1,250.00", "1.250,00", "-5", "0", "$", "S$", "¥", "€", "Rp", "USD", "usd", "k", "for", "to",
    "+65", "9123", "4567", "@alice", "a@b.co", "ref", "#INV-1", "exp", "expires", "in", "valid", "3", "days",
    "2h", "2026-12-31", "18:00", "tomorrow", "week", "month", "2026-11", "on", "off", "all", "paid", ",-", "/-",
    "１２００", "円", "đ", "\u00a0", "**", "`", "\\",
    # Digits that are not ASCII: superscripts, Arabic-Indic, full-width, mathematical, enclosed.
    "²", "³d", "٣", "٣d", "１２", "３d", "𝟐", "⑴", "①", "½", "2²", "exp ²", "days", "2026-١٢-٣١",
]
# Single characters that are digits or numbers in some script (Nd and No), for the strategies below.
UNICODE_NUMBERS = st.characters(categories=["Nd", "No", "Nl"])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.one_of(st.sampled_from(GRAMMAR_WORDS), st.text(max_size=12),
                             st.text(UNICODE_NUMBERS, min_size=1, max_size=4)), max_size=12),
    locale=st.sampled_from([*ROUND_TRIP_LOCALES, "fr_FR", "xx_NOPE", ""]),
    currency=st.sampled_from(["USD", "SGD", "EUR", "JPY", "IDR", "KWD", "CLF"]),
)
def test_no_text_makes_the_parser_raise(words: list[str], locale: str, currency: str) -> None:
    text = " ".join(words)
    context = ParseContext(locale=locale or "en", default_currency=currency, now=NOW)
    result = parse(text, context)
    assert isinstance(result, CommandError | Start | Help | Greeting | Charge | Choice | Links | Status | Cancel
                      | Report | SetCurrency | Invite | Join | Alerts | Remind | RefundAsk | Dashboard | Shop
                      | SeriesCharge | SeriesCommand | InvoiceCommand | SetLanguage)
    if isinstance(result, SeriesCharge):
        result = result.charge
    readings = result.readings if isinstance(result, Choice) else (result,)
    assert readings, text
    if isinstance(result, CommandError):
        assert result.message and result.text()
    for reading in readings:
        if isinstance(reading, Charge):
            assert 0 < reading.money.amount_minor and reading.money.decimal() <= context.max_amount
            assert reading.description and len(reading.description) <= 500
            assert reading.expires_at is None or NOW < reading.expires_at <= NOW + context.max_expiry
    try:
        parse_money(text, context)
    except CommandError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.text(UNICODE_NUMBERS), st.lists(st.text(UNICODE_NUMBERS, max_size=3)).map(" ".join)))
def test_arbitrary_text_never_raises(text: str) -> None:
    assume(True)
    for prefix in ("", "/charge ", "charge 25 ", "/report ", "/links ", "/charge 25 cake exp ",
                   "/charge 25 cake exp 2026-12-31 ", "/charge 25 cake to "):
        result = parse(prefix + text, ctx("en_SG"))
        assert result is not None
    try:
        parse_money(text, ctx("de_DE"))
    except CommandError:
        pass


# ---------------------------------------------------------------- doubts: readings to ask back about


def readings(result: object) -> list[tuple[int, str, str]]:
    assert isinstance(result, Choice), result
    return [(r.money.amount_minor, r.money.currency, r.description) for r in result.readings]


@pytest.mark.parametrize(
    ("locale", "text", "reason", "expected"),
    [
        ("en_SG", "/charge 1.000 cake", Doubt.GROUPING, [(100, "SGD", "cake"), (100000, "SGD", "cake")]),
        ("en_US", "/charge 1.250 cake", Doubt.GROUPING, [(125, "USD", "cake"), (125000, "USD", "cake")]),
        ("de_DE", "/charge 2,500 Kuchen", Doubt.GROUPING, [(250, "EUR", "Kuchen"), (250000, "EUR", "Kuchen")]),
        ("en_SG", "/charge 2 coffees 12.50", Doubt.LATER_PRICE,
         [(1250, "SGD", "2 coffees"), (200, "SGD", "coffees 12.50")]),
        ("en_SG", "/charge 3 cakes S$45 ref INV-9", Doubt.LATER_PRICE,
         [(4500, "SGD", "3 cakes"), (300, "SGD", "cakes S$45")]),
        ("en_SG", "/charge 1 234,50 EUR Kuchen", Doubt.SPACED,
         [(123450, "EUR", "Kuchen"), (23450, "EUR", "1 Kuchen"), (100, "SGD", "234,50 EUR Kuchen")]),
        ("en_SG", "/charge 25k sofa", Doubt.SHORTHAND, [(2500000, "SGD", "sofa")]),
        ("id_ID", "/charge 150k nasi", Doubt.SHORTHAND, [(15_000_000, "IDR", "nasi")]),
    ],
)
def test_doubtful_amounts_come_back_as_readings(locale: str, text: str, reason: str,
                                                expected: list[tuple[int, str, str]]) -> None:
    result = parse(text, ctx(locale))
    assert readings(result) == expected
    assert isinstance(result, Choice) and result.reason == reason


def test_readings_keep_the_options() -> None:
    result = parse("/charge 2 coffees 12.50 ref INV-9 to +65 9123 4567 exp 2h", ctx("en_SG"))
    assert isinstance(result, Choice)
    for reading in result.readings:
        assert reading.reference == "INV-9" and reading.customer == Customer(phone="+6591234567")
        assert reading.expires_at == NOW + timedelta(hours=2)


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        ("en_SG", "/charge 25 for 2 birthday cakes"),
        ("en_SG", "/charge 25 trip to 3 cities"),
        ("en_SG", "/charge 12.50 2 coffees"),  # the first number already looks like the price
        ("en_SG", "/charge 25 cake 2.5kg"),  # "kg" is not a currency
        ("en_SG", "/charge 1,000 sofa"),  # the locale's own grouping
        ("en_SG", "/charge 1.500 KWD perfume"),  # KWD has three decimals: its natural form
        ("en_SG", "/charge 25.555 USD cake"),  # no valid decimal reading: an error, not a question
        ("ja_JP", "/charge 1.000 ラーメン"),  # JPY has no decimals: always grouping
        ("de_DE", "/charge 1.250 Fahrrad"),  # "." groups in German
        ("id_ID", "/charge Rp150.000 nasi"),
    ],
)
def test_clear_amounts_are_not_in_doubt(locale: str, text: str) -> None:
    assert not isinstance(parse(text, ctx(locale)), Choice), text


def test_readings_round_trip_through_json() -> None:
    result = parse("/charge 2 coffees 12.50 ref INV-9 to a@example.com exp 2h", ctx("en_SG"))
    assert isinstance(result, Choice)
    for reading in result.readings:
        assert Charge.from_dict(reading.to_dict()) == reading


# ---------------------------------------------------------------- did you mean, greetings


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [("/chrage 25 cake", "/charge 25 cake"), ("/lnks paid", "/links paid"), ("/statsu INV-1", "/status INV-1"),
     ("/reprot week", "/report week"), ("chrage 25 cake", "/charge 25 cake"), ("/frobnicate", None),
     ("/xy 25", None), ("hello there", None)],
)
def test_a_mistyped_command_is_suggested(text: str, suggestion: str | None) -> None:
    result = parse(text, ctx())
    if suggestion is None:
        assert not (isinstance(result, Help) and result.suggestion), result
    else:
        assert isinstance(result, Help) and result.suggestion == suggestion


@pytest.mark.parametrize(
    ("text", "expected"),
    [("hi", Greeting()), ("Hello!", Greeting()), ("hey there 👋", Greeting()), ("good morning", Greeting()),
     ("thanks!", Greeting(thanks=True)), ("Thank you so much", Greeting(thanks=True)), ("ty", Greeting(thanks=True)),
     ("hi can you make a link for 25", None), ("charge 25 cake", None), ("high", None)],
)
def test_greetings(text: str, expected: Greeting | None) -> None:
    result = parse(text, ctx())
    if expected is None:
        assert not isinstance(result, Greeting), result
    else:
        assert result == expected


def test_limits_come_from_core_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import limits
    from core.commands import values

    assert ParseContext().max_expiry == limits.MAX_EXPIRY == values.MAX_EXPIRY
    long_ref = "R" * (limits.REFERENCE_MAX + 1)
    result = error(f"/charge 25 cake ref {long_ref}", ctx())
    assert f"up to {limits.REFERENCE_MAX}" in result.message
    assert parse(f"/charge 25 cake ref {long_ref[:-1]}", ctx("en_SG")) == Charge(
        Money(2500, "SGD"), "cake", long_ref[:-1])
    bad_email = error("/charge 25 cake to alice@example", ctx())
    assert "alice@example" in bad_email.message and bad_email.example == "/charge 25 cake to alice@example.com"
