"""The API's invoice fields of a link (numbers, line items, subtotal / discount / tax / total) and the
line items of a create request turned into totals (core/line_items.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.web.api_models import CreateLink
from core import limits
from core.invoices import InvoiceInfo
from core.line_items import LineItemError, Totals, compute, parse_discount, parse_item, plain
from core.models import PaymentLink
from core.money import amount_str


class ItemsError(ValueError):
    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def totals_from_body(body: CreateLink, currency: str, max_amount: Decimal) -> Totals | None:
    """None without line_items; ItemsError for items that do not fit (or an amount given with them)."""
    if body.line_items is None:
        if body.discount is not None:
            raise ItemsError("invalid_line_items", "discount goes with line_items only", "discount")
        return None
    if body.amount is not None or body.amount_minor is not None:
        field = "amount" if body.amount is not None else "amount_minor"
        raise ItemsError("invalid_amount", "give line_items or an amount, not both: the amount is the items' total",
                         field)
    try:
        items = [parse_item(item.model_dump(exclude_none=True), i) for i, item in enumerate(body.line_items)]
        discount = parse_discount(body.discount.model_dump(exclude_none=True) if body.discount else None, currency)
        totals = compute(items, currency, discount)
    except LineItemError as exc:
        raise ItemsError("invalid_line_items", str(exc), exc.field) from None
    if totals.total_minor <= 0:
        raise ItemsError("invalid_amount", "the items' total must be greater than zero", "line_items")
    most = limits.max_amount_minor(max_amount, currency)
    if totals.total_minor > most:
        raise ItemsError("amount_too_large", f"the items' total must be at most {amount_str(most, currency)} "
                         f"{currency}", "line_items")
    return totals


def invoice_fields(link: PaymentLink, info: InvoiceInfo | None) -> dict[str, Any]:
    """What link_json gains: every link has totals (a one-amount link: subtotal = total = amount)."""
    cur = link.currency
    if info is None:
        subtotal, discount, tax, total = link.amount_minor, 0, 0, link.amount_minor
    else:
        subtotal, discount, tax, total = info.subtotal_minor, info.discount_minor, info.tax_minor, info.total_minor
    lines = None
    if info is not None and info.totals is not None:
        lines = [{
            "name": line.item.name, "quantity": plain(line.item.quantity),
            "unit_amount": plain(line.item.unit_amount), "tax_rate": plain(line.item.tax_rate),
            "amount": amount_str(line.net_minor, cur), "amount_minor": line.net_minor,
            "discount": amount_str(line.discount_minor, cur), "discount_minor": line.discount_minor,
            "tax": amount_str(line.tax_minor, cur), "tax_minor": line.tax_minor,
            "total": amount_str(line.total_minor, cur), "total_minor": line.total_minor,
        } for line in info.totals.lines]
    return {
        "invoice_number": info.number if info else None,
        "line_items": lines,
        "subtotal": amount_str(subtotal, cur), "subtotal_minor": subtotal,
        "discount": amount_str(discount, cur), "discount_minor": discount,
        "tax": amount_str(tax, cur), "tax_minor": tax,
        "total": amount_str(total, cur), "total_minor": total,
    }
