"""Line items: what an invoice lists, and how its subtotal, discount, tax and total are computed.

The rounding rule (one, everywhere): amounts are integer minor units of the link's currency (ISO 4217
exponent); each line's net amount (quantity x unit amount) is rounded half to even to a minor unit, then
a whole-invoice discount is spread over the lines in proportion to their net amounts (largest remainder,
so the shares add up to the discount exactly), then each line's tax is its rate applied to its discounted
net amount, rounded half to even to a minor unit. The subtotal, discount and tax are the sums of the
lines' parts, and total = subtotal - discount + tax: the lines always add up to the total, in any
currency, and no amount is ever a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from core.money import exponent

MAX_ITEMS = 100
NAME_MAX = 200
# Quantities and unit amounts are decimal strings; these bound them so no product overflows a BIGINT.
QUANTITY_MAX = Decimal(1_000_000)
QUANTITY_DECIMALS = 3
UNIT_DECIMALS = 6  # a unit price may be finer than the currency (0.125 per gram); lines are rounded
RATE_DECIMALS = 4
UNIT_AMOUNT_MAX = Decimal(10) ** 12


class LineItemError(ValueError):
    """A user-caused problem with the items; `field` names it (`line_items.0.quantity`)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class LineItem:
    name: str
    quantity: Decimal
    unit_amount: Decimal
    tax_rate: Decimal = Decimal(0)  # percent: Decimal("9") is 9 %


@dataclass(frozen=True, slots=True)
class Discount:
    amount_minor: int | None = None
    percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Line:
    item: LineItem
    net_minor: int  # quantity x unit amount, rounded
    discount_minor: int  # this line's share of the whole-invoice discount
    tax_minor: int

    @property
    def total_minor(self) -> int:
        return self.net_minor - self.discount_minor + self.tax_minor


@dataclass(frozen=True, slots=True)
class Totals:
    currency: str
    lines: tuple[Line, ...]
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    total_minor: int
    discount: Discount | None = None


def _round_minor(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _decimal(text: str | int | Decimal, field: str, *, places: int, what: str) -> Decimal:
    if isinstance(text, bool) or isinstance(text, float):
        raise LineItemError(f"{field} must be a decimal string such as \"2\" or \"9.5\"", field)
    try:
        value = Decimal(text) if not isinstance(text, Decimal) else text
    except (InvalidOperation, ValueError, TypeError):
        raise LineItemError(f"{field}: {str(text)[:30]!r} is not a number", field) from None
    if not value.is_finite():
        raise LineItemError(f"{field} must be a finite number", field)
    places_given = value.normalize().as_tuple().exponent
    if isinstance(places_given, int) and -places_given > places:
        raise LineItemError(f"{field} has more than {places} decimals ({what})", field)
    return value


def parse_item(raw: dict[str, Any], index: int) -> LineItem:
    """One item from the API's (or the chat's) fields; the caller has checked the shapes."""
    at = f"line_items.{index}"
    name = str(raw.get("name", "")).strip()
    if not name:
        raise LineItemError(f"{at}.name is required (what is sold)", f"{at}.name")
    if len(name) > NAME_MAX:
        raise LineItemError(f"{at}.name is longer than {NAME_MAX} characters", f"{at}.name")
    quantity = _decimal(raw.get("quantity", 1), f"{at}.quantity", places=QUANTITY_DECIMALS, what="e.g. 1.5")
    if quantity <= 0 or quantity > QUANTITY_MAX:
        raise LineItemError(f"{at}.quantity must be greater than 0 and at most {QUANTITY_MAX}", f"{at}.quantity")
    unit = _decimal(raw.get("unit_amount", ""), f"{at}.unit_amount", places=UNIT_DECIMALS, what="e.g. 25.00")
    if unit < 0 or unit > UNIT_AMOUNT_MAX:
        raise LineItemError(f"{at}.unit_amount must be from 0 to {UNIT_AMOUNT_MAX}", f"{at}.unit_amount")
    rate_raw = raw.get("tax_rate")
    rate = Decimal(0)
    if rate_raw is not None:
        rate = _decimal(rate_raw, f"{at}.tax_rate", places=RATE_DECIMALS, what="a percent such as \"9\"")
        if rate < 0 or rate > 100:
            raise LineItemError(f"{at}.tax_rate is a percent from 0 to 100, e.g. \"9\"", f"{at}.tax_rate")
    return LineItem(name, quantity, unit, rate)


def parse_discount(raw: dict[str, Any] | None, currency: str) -> Discount | None:
    if raw is None:
        return None
    amount, percent = raw.get("amount"), raw.get("percent")
    if (amount is None) == (percent is None):
        raise LineItemError("discount takes exactly one of amount (\"5.00\") and percent (\"10\")", "discount")
    if amount is not None:
        exp = exponent(currency)
        value = _decimal(amount, "discount.amount", places=exp, what=f"{currency} has {exp} decimals")
        if value <= 0:
            raise LineItemError("discount.amount must be greater than zero", "discount.amount")
        return Discount(amount_minor=int(value.scaleb(exp)))
    pct = _decimal(str(percent), "discount.percent", places=RATE_DECIMALS, what="e.g. \"10\"")
    if pct <= 0 or pct > 100:
        raise LineItemError("discount.percent is a percent greater than 0 and at most 100", "discount.percent")
    return Discount(percent=pct)


def _spread(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights`, in whole units that add up to it (largest remainder)."""
    whole = sum(weights)
    if whole == 0 or total == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    rest = total - sum(shares)
    # Ties go to the earlier line, so the split is deterministic.
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:rest]:
        shares[i] += 1
    return shares


def compute(items: list[LineItem], currency: str, discount: Discount | None = None) -> Totals:
    """The lines and totals in minor units of `currency` (the rule is in this module's docstring)."""
    if not items:
        raise LineItemError("line_items needs at least one item", "line_items")
    if len(items) > MAX_ITEMS:
        raise LineItemError(f"line_items has more than {MAX_ITEMS} items", "line_items")
    scale = Decimal(10) ** exponent(currency)
    nets = [_round_minor(item.quantity * item.unit_amount * scale) for item in items]
    subtotal = sum(nets)
    discount_minor = 0
    if discount is not None:
        if discount.amount_minor is not None:
            discount_minor = discount.amount_minor
        elif discount.percent is not None:
            discount_minor = _round_minor(Decimal(subtotal) * discount.percent / 100)
        if discount_minor > subtotal:
            raise LineItemError("the discount is larger than the items' subtotal", "discount")
    shares = _spread(discount_minor, nets)
    lines = tuple(
        Line(item, net, share, _round_minor(Decimal(net - share) * item.tax_rate / 100))
        for item, net, share in zip(items, nets, shares, strict=True)
    )
    tax = sum(line.tax_minor for line in lines)
    return Totals(currency, lines, subtotal, discount_minor, tax, subtotal - discount_minor + tax, discount)


def plain(value: Decimal) -> str:
    """A decimal as the API writes it: no exponent, no trailing zeros after the point ("2", "1.5")."""
    return format(value.normalize(), "f")


# ---------------------------------------------------------------- stored form (invoice.line_items JSON)


def to_stored(totals: Totals) -> dict[str, Any]:
    discount = totals.discount
    return {
        "items": [
            {"name": line.item.name, "quantity": plain(line.item.quantity),
             "unit_amount": plain(line.item.unit_amount), "tax_rate": plain(line.item.tax_rate),
             "net_minor": line.net_minor, "discount_minor": line.discount_minor, "tax_minor": line.tax_minor}
            for line in totals.lines
        ],
        "discount": None if discount is None else {
            "amount_minor": discount.amount_minor,
            "percent": None if discount.percent is None else plain(discount.percent),
        },
    }


def from_stored(data: dict[str, Any], currency: str) -> Totals:
    items = data.get("items") or []
    lines = tuple(
        Line(LineItem(i["name"], Decimal(i["quantity"]), Decimal(i["unit_amount"]), Decimal(i["tax_rate"])),
             int(i["net_minor"]), int(i["discount_minor"]), int(i["tax_minor"]))
        for i in items
    )
    raw = data.get("discount")
    discount = None if raw is None else Discount(
        raw.get("amount_minor"), None if raw.get("percent") is None else Decimal(raw["percent"]))
    subtotal = sum(line.net_minor for line in lines)
    disc = sum(line.discount_minor for line in lines)
    tax = sum(line.tax_minor for line in lines)
    return Totals(currency, lines, subtotal, disc, tax, subtotal - disc + tax, discount)
