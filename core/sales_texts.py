"""How chats show a link that sells many times: "🎟 12 of 50 sold · S$300.00" (link message, /links,
/status, and the edited message as payments come in), in the reader's language (core.i18n.current)."""

from __future__ import annotations

from core import i18n
from core.models import PaymentLink
from core.money import format_money
from core.reusable import CUSTOMER_CHOOSES


def counts_text(link: PaymentLink, locale: str) -> str:
    t = i18n.current()
    collected = format_money(link.amount_collected_minor or 0, link.currency, locale)
    if link.split_ways:
        return t.gettext("🧾 %(paid)s of %(ways)s paid · %(collected)s", paid=link.units_sold, ways=link.split_ways,
                         collected=collected)
    if link.amount_mode == CUSTOMER_CHOOSES:
        return t.ngettext("💝 %(count)s gave · %(collected)s", "💝 %(count)s gave · %(collected)s",
                          link.payments_count, collected=collected)
    if link.stock is not None:
        return t.gettext("🎟 %(sold)s of %(stock)s sold · %(collected)s", sold=link.units_sold, stock=link.stock,
                         collected=collected)
    if link.max_payments is not None:
        return t.gettext("🎟 %(sold)s of %(stock)s sold · %(collected)s", sold=link.payments_count,
                         stock=link.max_payments, collected=collected)
    return t.gettext("🎟 %(sold)s sold · %(collected)s", sold=link.units_sold, collected=collected)


def amount_text(link: PaymentLink, locale: str) -> str:
    """The link's amount as chats show it: a donation's stored amount is its smallest one ("from S$5.00")."""
    amount = format_money(link.amount_minor, link.currency, locale)
    return i18n.current().gettext("from %(amount)s", amount=amount) if link.amount_mode == CUSTOMER_CHOOSES else amount


def pay_label(link: PaymentLink, locale: str) -> str:
    """The Pay button's label, the same on the new link's message and on /status."""
    t = i18n.current()
    if link.amount_mode == CUSTOMER_CHOOSES:
        return t.gettext("Give")
    if link.split_ways:
        return t.gettext("Pay a share")
    return t.gettext("Pay %(amount)s", amount=format_money(link.amount_minor, link.currency, locale))


def kind_text(link: PaymentLink, locale: str) -> str:
    """The line under a new reusable link's amount: what kind of link it is."""
    t = i18n.current()
    if link.split_ways:
        return t.gettext("Split %(ways)s ways: each pays a share", ways=link.split_ways)
    if link.amount_mode == CUSTOMER_CHOOSES:
        low = format_money(link.min_amount_minor or 0, link.currency, locale)
        return t.gettext("Donors choose the amount (from %(low)s)", low=low)
    if link.stock is not None:
        return t.gettext("Sells until %(stock)s are sold; buyers choose how many", stock=link.stock)
    if link.max_payments is not None:
        return t.ngettext("Takes up to %(count)s payment", "Takes up to %(count)s payments", link.max_payments)
    return t.gettext("Takes any number of payments")
