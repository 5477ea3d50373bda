"""What the grammar produces: the parse context, the command values and the CommandError value."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from core import i18n, markup, reusable
from core.i18n import Tr
from core.limits import MAX_EXPIRY
from core.links import Customer, LinkDraft
from core.models import LinkStatus
from core.money import Money

# ---------------------------------------------------------------- errors


class CommandError(i18n.TranslatableError):
    """A user mistake: `message` (markup, user parts escaped) says what was wrong, `example` fixes it.

    `message` is a catalog msgid with named %(placeholders)s filled from `values` (already escaped); it is
    translated when shown (`text()`, in the language being spoken: core.i18n.current). The English
    `message` attribute has the values filled in.
    """

    def __init__(self, message: str, example: str | None = None, *, field: str | None = None,
                 choices: Sequence[str] = (), values: Mapping[str, object] | None = None) -> None:
        super().__init__(message, values)
        self.example = example
        self.field = field
        self.choices = tuple(choices)

    def text(self, t: Tr | None = None) -> str:
        """The chat answer, in Reply markup, in the reader's language."""
        t = t or i18n.current()
        said = self.translated(t)
        if not self.example:
            return said
        return t.gettext("%(problem)s\nFor example: %(example)s", problem=said,
                         example=f"`{markup.escape(self.example)}`")

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
    max_expiry: timedelta = MAX_EXPIRY
    # `via <word>` -> the customer channel it names ({"sms": "sms", "text": "sms", "email": "email" …}),
    # from the plug-ins (adapters/registry.py via_words); empty: `via` is just a word of the description.
    channels: Mapping[str, str] = field(default_factory=dict)
    # The seller's language (a core.i18n catalog): its connecting words are read too ("untuk", "ke").
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class SetLanguage:
    """/language (None: say which) or /language th: a core.i18n catalog code."""

    language: str | None = None


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None  # a command name: help about that command
    unknown: str | None = None  # the word the user typed that is not a command
    suggestion: str | None = None  # the command the user probably meant ("/charge 25 cake" for "/chrage 25 cake")


@dataclass(frozen=True, slots=True)
class Greeting:
    """"hi", "thanks!": a short friendly answer, not the help."""

    thanks: bool = False


@dataclass(frozen=True, slots=True)
class Charge:
    money: Money
    description: str
    reference: str | None = None
    customer: Customer = field(default_factory=Customer)
    expires_at: datetime | None = None  # None: the default expiry
    # `via sms` / `via email` / `via whatsapp`: only these channels; None: every one the customer has.
    notify: frozenset[str] | None = None

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
            notify=self.notify,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a question stored until the seller answers it."""
        return {
            "amount_minor": self.money.amount_minor, "currency": self.money.currency,
            "description": self.description, "reference": self.reference,
            "customer": {"name": self.customer.name, "email": self.customer.email, "phone": self.customer.phone},
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "notify": sorted(self.notify) if self.notify is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Charge:
        customer = data.get("customer") or {}
        expires = data.get("expires_at")
        return cls(
            Money(int(data["amount_minor"]), str(data["currency"])), str(data["description"]),
            data.get("reference"), Customer(customer.get("name"), customer.get("email"), customer.get("phone")),
            datetime.fromisoformat(expires) if expires else None,
            frozenset(data["notify"]) if data.get("notify") is not None else None,
        )


class Doubt:
    """Why a /charge is asked back instead of made (values of Choice.reason)."""

    GROUPING = "grouping"  # "1.000" in SGD: one dollar or a thousand?
    LATER_PRICE = "later_price"  # "2 coffees 12.50": the later number looks like the price
    SPACED = "spaced"  # "1 234,50 EUR": a number grouped with spaces
    SHORTHAND = "shorthand"  # "25k"
    LARGE = "large"  # far above the shop's usual amounts


@dataclass(frozen=True, slots=True)
class Choice:
    """A /charge that can mean more than one thing: the seller picks a reading before any link is made."""

    readings: tuple[Charge, ...]
    reason: str  # a Doubt value
    typed: str = ""  # the amount as the seller wrote it ("25k")


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
class RefundAsk:
    key: str  # link id, id prefix, reference, or a payment id (pay_…) from a "paid twice" alert
    amount_text: str | None = None  # None: all that is refundable; read in the link's currency


@dataclass(frozen=True, slots=True)
class Remind:
    key: str


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    livemode: bool | None = None  # "live" / "test" after the period: only that money; None: both, apart


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
class Shop:
    """`/shop` (see the settings) or `/shop name|timezone|locale VALUE` (change one)."""

    setting: str | None = None
    value: str = ""


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A one-time sign-in link to the web dashboard, answered privately."""


@dataclass(frozen=True, slots=True)
class Alerts:
    on: bool | None  # None: show whether they are on


@dataclass(frozen=True, slots=True)
class Recurrence:
    """`every month`, `every 2 weeks`, `for 6 months` (a count after `every`), `until 2027-06`; written for
    the reader by core.chat_invoices.schedule_words."""

    every: str  # week | month | year
    interval: int = 1
    count: int | None = None
    until: date | None = None


@dataclass(frozen=True, slots=True)
class SeriesCharge:
    """/charge … every month: a recurring series instead of one link (core/series.py)."""

    charge: Charge
    recurrence: Recurrence


@dataclass(frozen=True, slots=True)
class SeriesCommand:
    """/series (list) or /series stop ID (asks first)."""

    stop: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    name: str
    quantity: Decimal
    unit_amount: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceCommand:
    """/invoice over several lines: `to …`, `ref …`, then items, `tax 9%`, `discount 10%`."""

    currency: str
    lines: tuple[InvoiceLine, ...]
    customer: Customer = field(default_factory=Customer)
    reference: str | None = None
    tax_rate: Decimal | None = None
    discount_percent: Decimal | None = None
    discount_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Sell:
    """A reusable link: /sell (limits), /donate (customer chooses), /split (shares)."""

    kind: str  # "sell" | "donate" | "split"
    charge: Charge
    terms: reusable.Terms

    def draft(self, *, merchant_id: str, member_id: int | None, platform: str, address: str) -> LinkDraft:
        base = self.charge.draft(merchant_id=merchant_id, member_id=member_id, platform=platform, address=address)
        return LinkDraft(**{**{name: getattr(base, name) for name in base.__slots__}, "terms": self.terms})


@dataclass(frozen=True, slots=True)
class Promo:
    action: str  # "list" | "create" | "off"
    code: str = ""
    percent_bp: int | None = None
    amount_off: Money | None = None
    max_redemptions: int | None = None
    expires_at: datetime | None = None


Command = (Start | Help | Greeting | Charge | Choice | Links | Status | Cancel | Remind | Report | SetCurrency
           | Invite | Join | Alerts | RefundAsk | Dashboard | Shop | SeriesCharge | SeriesCommand | InvoiceCommand
           | Sell | Promo | SetLanguage)


# ---------------------------------------------------------------- shared helpers


# Numeric characters that are not plain digits: superscripts and subscripts ("²", "₅"), circled and
# parenthesised numbers ("①", "⑴"), vulgar fractions ("½"), Roman numerals. NFKC would fold "2⁵" into
# "25" and "½" into "1⁄2": an amount the seller did not type. They are kept as they are, so the number
# patterns refuse them and the seller is asked to write plain digits.
def _is_number_form(ch: str) -> bool:
    return ch.isnumeric() and not ch.isdecimal() and any(c.isdigit() for c in unicodedata.normalize("NFKC", ch))


def has_number_forms(text: str) -> bool:
    return any(_is_number_form(ch) for ch in text)


def norm(text: str) -> str:
    """NFKC (full-width letters and digits, compatibility forms), except numeric characters that are not
    digits, which stay as typed (see _is_number_form)."""
    if text.isascii():
        return text
    if not any(_is_number_form(ch) for ch in text):
        return unicodedata.normalize("NFKC", text)
    parts: list[str] = []
    run: list[str] = []
    for ch in text:
        if _is_number_form(ch):
            parts.append(unicodedata.normalize("NFKC", "".join(run)))
            parts.append(ch)
            run = []
        else:
            run.append(ch)
    parts.append(unicodedata.normalize("NFKC", "".join(run)))
    return "".join(parts)


def ascii_digits(text: str) -> str:
    """Every decimal digit as 0-9 ("٣" -> "3", "１" -> "1"); other characters unchanged.

    Numeric characters that are not decimal digits (superscripts such as "²", which norm() keeps as
    typed) stay as they are and fail the ASCII patterns that follow, so they are reported, never read.
    """
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


@dataclass
class Example:
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
