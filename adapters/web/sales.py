"""The API's side of links that sell many times: CreateLink's reusable fields -> core.reusable.Terms, and
the link JSON's counts. Kept apart from api.py so the create handler only gains a call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.web.api_models import CreateLink
from core.models import PaymentLink, values_of
from core.money import Money, MoneyError
from core.reusable import CUSTOMER_CHOOSES, FIXED, Terms, shares

DEFAULT_QUANTITY_MAX = 10


class TermsProblem(Exception):
    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _minor(text: str, currency: str, field: str) -> int:
    try:
        money = Money.parse(text, currency)
    except MoneyError as exc:
        raise TermsProblem("invalid_amount", f"{field}: {exc}", field) from None
    if money.amount_minor <= 0:
        raise TermsProblem("invalid_amount", f"{field} must be greater than zero", field)
    return money.amount_minor


def min_minor(body: CreateLink, currency: str) -> int:
    if not body.min_amount:
        raise TermsProblem("missing_field", "a customer-chosen amount needs min_amount, e.g. \"5.00\"", "min_amount")
    return _minor(body.min_amount, currency, "min_amount")


def wants_terms(body: CreateLink) -> bool:
    return any(getattr(body, name) is not None for name in (
        "reusable", "max_payments", "stock", "max_total", "quantity", "amount_mode", "min_amount", "max_amount",
        "suggested_amounts", "split"))


def customer_chooses(body: CreateLink) -> bool:
    return body.amount_mode == CUSTOMER_CHOOSES


def terms_of(body: CreateLink, currency: str) -> Terms | None:
    """The link's selling terms from the body; None: an ordinary single-use link."""
    if not wants_terms(body):
        return None
    if body.reusable is False:
        # Limits, quantity, customer-chosen amounts and splits are what a reusable link is.
        if any(getattr(body, name) is not None for name in ("max_payments", "stock", "max_total", "quantity", "split",
                                                             "min_amount", "max_amount", "suggested_amounts")) \
                or customer_chooses(body):
            raise TermsProblem("invalid_limit", "limits, quantity, customer-chosen amounts and split need "
                               "reusable: true (or leave reusable out)", "reusable")
        return None
    quantity_min = quantity_max = None
    if body.quantity is not None and body.quantity.adjustable:
        quantity_min = body.quantity.min
        quantity_max = body.quantity.max or max(quantity_min, min(DEFAULT_QUANTITY_MAX, body.stock or 10**9))
    suggested = tuple(_minor(a, currency, "suggested_amounts") for a in body.suggested_amounts or ())
    return Terms(
        reusable=True, max_payments=body.max_payments, stock=body.stock,
        max_total_minor=_minor(body.max_total, currency, "max_total") if body.max_total else None,
        quantity_min=quantity_min, quantity_max=quantity_max, amount_mode=body.amount_mode or FIXED,
        min_amount_minor=_minor(body.min_amount, currency, "min_amount") if body.min_amount else None,
        max_amount_minor=_minor(body.max_amount, currency, "max_amount") if body.max_amount else None,
        suggested_amounts=suggested, split_ways=body.split.ways if body.split is not None else None)


def _amount(minor: int | None, currency: str) -> str | None:
    return None if minor is None else Money(minor, currency).amount_str()


def sales_json(link: PaymentLink | Mapping[str, Any]) -> dict[str, Any]:
    """The link JSON's reusable fields (the same keys on every link; a single-use one has no limits).
    Also takes the link's field values (core.models.values_of), which link_json passes."""
    row = link if isinstance(link, Mapping) else values_of(link)
    currency = row["currency"]
    suggested = list(row["suggested_amounts"] or [])
    split = None
    ways = row["split_ways"]
    if ways:
        split = {"ways": ways, "paid": row["units_sold"],
                 "shares": [Money(s, currency).amount_str() for s in shares(row["amount_minor"], ways)]}
    quantity = None
    if row["quantity_max"] is not None:
        quantity = {"adjustable": True, "min": row["quantity_min"] or 1, "max": row["quantity_max"]}
    max_total, min_amount, max_amount = row["max_total_minor"], row["min_amount_minor"], row["max_amount_minor"]
    collected = row["amount_collected_minor"] or 0
    return {
        "reusable": bool(row["reusable"]), "max_payments": row["max_payments"], "stock": row["stock"],
        "max_total": _amount(max_total, currency), "max_total_minor": max_total,
        "quantity": quantity, "amount_mode": row["amount_mode"] or FIXED,
        "min_amount": _amount(min_amount, currency), "min_amount_minor": min_amount,
        "max_amount": _amount(max_amount, currency), "max_amount_minor": max_amount,
        "suggested_amounts": [Money(a, currency).amount_str() for a in suggested],
        "suggested_amounts_minor": suggested, "split": split,
        "payments_count": row["payments_count"] or 0, "units_sold": row["units_sold"] or 0,
        "amount_collected": Money(collected, currency).amount_str(),
        "amount_collected_minor": collected,
    }
