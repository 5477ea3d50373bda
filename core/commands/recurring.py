"""Recurring charges and invoices in chat: `/charge 150 tuition every month …`, `/series`, `/invoice`.

`every week | every 2 weeks | every month | every year` (also `weekly`, `monthly`, `yearly`), then
optionally `for 6 months` (after `every …` a count of periods, not an expiry) and `until 2027-06` (the
month's last day) or `until 2027-06-30`. The phrase is taken out wherever it is; the rest is an ordinary
/charge. `/invoice` reads its first line as options (`to …`, `ref …`) and each further line as an item
(`2 x cake 25`, `delivery 5`), `tax 9%` or `discount 10%` / `discount 5`.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from decimal import Decimal, InvalidOperation

from core import markup
from core.commands.charge import parse_charge
from core.commands.contacts import read_customer
from core.commands.values import (
    Charge,
    Choice,
    CommandError,
    Example,
    InvoiceCommand,
    InvoiceLine,
    ParseContext,
    Recurrence,
    SeriesCharge,
    SeriesCommand,
)
from core.i18n import N_
from core.links import Customer

_UNITS = {"week": "week", "weeks": "week", "month": "month", "months": "month", "year": "year", "years": "year",
          "fortnight": "fortnight", "fortnights": "fortnight"}
_ADVERBS = {"weekly": ("week", 1), "monthly": ("month", 1), "yearly": ("year", 1), "annually": ("year", 1),
            "fortnightly": ("week", 2), "biweekly": ("week", 2)}
_EXAMPLE = "/charge 150 tuition every month to +65 9123 4567"


def _until(word: str) -> date | None:
    match = re.fullmatch(r"(\d{4})-(\d{1,2})(?:-(\d{1,2}))?", word)
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    try:
        if match.group(3):
            return date(year, month, int(match.group(3)))
        return date(year, month, calendar.monthrange(year, month)[1])
    except ValueError:
        return None


def split_recurrence(rest: str) -> tuple[str, Recurrence | None]:
    """(the words without the schedule phrase, the schedule) — (rest, None) when there is none."""
    tokens = rest.split()
    words = [t.casefold().rstrip(".,;") for t in tokens]
    every: tuple[str, int] | None = None
    count: int | None = None
    until: date | None = None
    keep: list[str] = []
    i = 0
    while i < len(tokens):
        word = words[i]
        if word == "every" and i + 1 < len(tokens):
            interval, j = 1, i + 1
            if words[j].isdigit() and j + 1 < len(tokens):
                interval, j = int(words[j]), j + 1
            unit = _UNITS.get(words[j])
            if unit is None:
                raise CommandError(N_("Every what? I know week, month and year, not “%(typed)s”."),
                                   _EXAMPLE, field="schedule", values={"typed": markup.escape(tokens[j])})
            every = ("week", 2 * interval) if unit == "fortnight" else (unit, interval)
            i = j + 1
            continue
        if word in _ADVERBS:
            every = _ADVERBS[word]
            i += 1
            continue
        if every is not None and word == "for" and i + 2 < len(tokens) and words[i + 1].isdigit() \
                and words[i + 2] in _UNITS:
            # After `every …`, `for 6 months` counts periods: 6 monthly links (every 2 months: 3).
            span, unit = int(words[i + 1]), _UNITS[words[i + 2]]
            if unit == every[0]:
                count = max(1, -(-span // every[1]))
            else:
                per_year = {"week": 52, "fortnight": 26, "month": 12, "year": 1}
                count = max(1, span * per_year[every[0]] // (per_year[unit] * every[1]))
            i += 3
            continue
        if word == "until" and i + 1 < len(tokens) and (found := _until(words[i + 1])) is not None:
            until = found
            i += 2
            continue
        keep.append(tokens[i])
        i += 1
    if every is None:
        if count is not None or until is not None:
            raise CommandError(N_("Say how often first: `every month`, `every 2 weeks`…"), _EXAMPLE,
                               field="schedule")
        return rest, None
    if not 1 <= every[1] <= 52:
        raise CommandError(N_("Every 1 to 52 weeks, months or years."), _EXAMPLE, field="schedule")
    if count is not None and not 1 <= count <= 1000:
        raise CommandError(N_("A series has 1 to 1000 periods."), "/charge 150 tuition every month for 6 months",
                           field="schedule")
    return " ".join(keep), Recurrence(every[0], every[1], count, until)


def parse_charge_or_series(rest: str, ctx: ParseContext) -> Charge | Choice | SeriesCharge:
    """/charge: one link, or a series when the words say how often."""
    words, recurrence = split_recurrence(rest)
    if recurrence is None:
        return parse_charge(rest, ctx)
    found = parse_charge(words, ctx)
    if not isinstance(found, Charge):
        raise CommandError(N_("For a recurring charge, write the amount so it can mean only one thing "
                              "(e.g. `150.00`)."), _EXAMPLE, field="amount")
    if found.expires_at is not None:
        raise CommandError(N_("Each link of a series uses the default expiry; leave out `exp …`."), _EXAMPLE,
                           field="expiry")
    return SeriesCharge(found, recurrence)


def parse_series(rest: str, ctx: ParseContext) -> SeriesCommand:
    words = rest.split()
    if not words:
        return SeriesCommand()
    if words[0].casefold() in ("stop", "cancel", "end") and len(words) == 2:
        return SeriesCommand(stop=words[1].strip("`#<>()[]\"'.,;"))
    raise CommandError(N_("I can list your series, or stop one."), "/series stop ser_abc123", field="series")


# ---------------------------------------------------------------- /invoice

_QTY_X = re.compile(r"^(\d+(?:[.,]\d{1,3})?)\s*[x×*]$", re.IGNORECASE)
_QTY_GLUED = re.compile(r"^(\d+(?:[.,]\d{1,3})?)[x×*](\S+)$", re.IGNORECASE)
_PERCENT = re.compile(r"^(\d{1,3}(?:[.,]\d{1,4})?)\s*%$")
_INVOICE_EXAMPLE = "/invoice to alice@example.com ref INV-77\n2 x cake 25\ndelivery 5\ntax 9%"


def _number(text: str) -> Decimal | None:
    text = text.replace(",", ".") if text.count(",") == 1 and "." not in text else text.replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _item(line: str) -> InvoiceLine:
    tokens = line.split()
    quantity = Decimal(1)
    if len(tokens) >= 2 and (m := _QTY_X.match(tokens[0])):  # "2 x cake 25", "2x cake 25"
        quantity, tokens = Decimal(m.group(1).replace(",", ".")), tokens[1:]
    elif len(tokens) >= 3 and tokens[1].casefold() in ("x", "×", "*") and tokens[0].replace(".", "").isdigit():
        quantity, tokens = Decimal(tokens[0]), tokens[2:]
    elif tokens and (m := _QTY_GLUED.match(tokens[0])):
        quantity, tokens = Decimal(m.group(1).replace(",", ".")), [m.group(2), *tokens[1:]]
    if len(tokens) < 2:
        raise CommandError(N_("I couldn't read “%(typed)s” as an item: write the name, then the price."),
                           _INVOICE_EXAMPLE, field="line_items", values={"typed": markup.escape(line[:60])})
    price = _number(tokens[-1].lstrip("$€£¥"))
    if price is None or price < 0:
        raise CommandError(N_("“%(typed)s” needs a price at the end, like `cake 25`."),
                           _INVOICE_EXAMPLE, field="line_items", values={"typed": markup.escape(line[:60])})
    name = " ".join(tokens[:-1]).strip(" -:")
    if quantity <= 0:
        raise CommandError(N_("A quantity is more than zero."), _INVOICE_EXAMPLE, field="line_items")
    return InvoiceLine(name, quantity, price)


def parse_invoice(rest: str, ctx: ParseContext) -> InvoiceCommand:
    lines = [line.strip() for line in rest.splitlines()]
    head, body = (lines[0], lines[1:]) if lines else ("", [])
    tokens = head.split()
    example = Example("/invoice", [], tokens)
    customer = Customer()
    reference: str | None = None
    items: list[InvoiceLine] = []
    tax: Decimal | None = None
    discount_pct: Decimal | None = None
    discount_amt: Decimal | None = None
    i = 0
    leftover: list[str] = []
    while i < len(tokens):
        word = tokens[i].casefold()
        if word == "to" and i + 1 < len(tokens):
            customer, used = read_customer(tokens, i, ctx, example, customer)
            if used:
                i += used
                continue
        if word in ("ref", "reference", "ref:") and i + 1 < len(tokens):
            reference = tokens[i + 1].lstrip("#")[:100]
            i += 2
            continue
        leftover.append(tokens[i])
        i += 1
    if leftover:
        body = [" ".join(leftover), *body]  # "/invoice 2 x cake 25" on one line is an item too
    for line in body:
        if not line:
            continue
        first, _, after = line.partition(" ")
        key = first.casefold().rstrip(":")
        if key in ("tax", "gst", "vat") and (m := _PERCENT.match(after.replace(" ", ""))):
            tax = Decimal(m.group(1).replace(",", "."))
            if tax > 100:
                raise CommandError(N_("Tax is a percent up to 100."), _INVOICE_EXAMPLE, field="tax")
            continue
        if key in ("discount", "less", "off"):
            text = after.replace(" ", "")
            if (m := _PERCENT.match(text)) is not None:
                discount_pct = Decimal(m.group(1).replace(",", "."))
                continue
            value = _number(text)
            if value is not None and value > 0:
                discount_amt = value
                continue
            raise CommandError(N_("Write the discount as `discount 10%` or `discount 5`."), _INVOICE_EXAMPLE,
                               field="discount")
        items.append(_item(line))
    if not items:
        raise CommandError(N_("Put each item on its own line after the first, like `2 x cake 25`."),
                           _INVOICE_EXAMPLE, field="line_items")
    if len(items) > 100:
        raise CommandError(N_("An invoice has at most 100 items."), _INVOICE_EXAMPLE, field="line_items")
    return InvoiceCommand(ctx.default_currency, tuple(items), customer, reference, tax, discount_pct, discount_amt)
