"""How chats show a link that sells many times: "🎟 12 of 50 sold · S$300.00" (link message, /links,
/status, and the edited message as payments come in)."""

from __future__ import annotations

from core.models import PaymentLink
from core.money import format_money
from core.reusable import CUSTOMER_CHOOSES


def counts_text(link: PaymentLink, locale: str) -> str:
    collected = format_money(link.amount_collected_minor or 0, link.currency, locale)
    if link.split_ways:
        return f"🧾 {link.units_sold} of {link.split_ways} paid · {collected}"
    if link.amount_mode == CUSTOMER_CHOOSES:
        return f"💝 {link.payments_count} gave · {collected}"
    if link.stock is not None:
        return f"🎟 {link.units_sold} of {link.stock} sold · {collected}"
    if link.max_payments is not None:
        return f"🎟 {link.payments_count} of {link.max_payments} sold · {collected}"
    return f"🎟 {link.units_sold} sold · {collected}"


def kind_text(link: PaymentLink, locale: str) -> str:
    """The line under a new reusable link's amount: what kind of link it is."""
    if link.split_ways:
        return f"Split {link.split_ways} ways: each pays a share"
    if link.amount_mode == CUSTOMER_CHOOSES:
        low = format_money(link.min_amount_minor or 0, link.currency, locale)
        return f"Donors choose the amount (from {low})"
    if link.stock is not None:
        return f"Sells until {link.stock} are sold; buyers choose how many"
    if link.max_payments is not None:
        return f"Takes up to {link.max_payments} payments"
    return "Takes any number of payments"
