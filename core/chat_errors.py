"""The core services' refusals as a person in chat reads them, in their language (i18n.current()).

The services' own `message` is English for developers (the REST API shows it as it is, with its field
names: "percent_off must be…"); the chat says the same in its own terms from the catalogs, chosen by the
error's `code` and `field`. An error whose message is already a catalog msgid (i18n.TranslatableError)
is translated as it is. Anything not known here reads as one general sentence, never the English text.

`page=True` words the same refusal for a web page (the seller's dashboard forms, the CSV import's rows):
no chat commands or /help in it, and no chat markup (the page's template escapes the text).
"""

from __future__ import annotations

from core import i18n, limits, markup, promos
from core.i18n import N_
from core.line_items import MAX_ITEMS, QUANTITY_MAX, LineItemError
from core.links import LinkError
from core.merchants import MerchantError
from core.money import MoneyError, exponent
from core.promos import PromoError
from core.series import SeriesError

GENERAL = N_("That can't be done as written. Check it and try again, or see /help.")
GENERAL_PAGE = N_("That can't be done as written. Check it and try again.")
CURRENCY = N_("That is not a currency I know. Use its three-letter code, e.g. SGD.")

_LINK = {
    "not_active": N_("That link is not open any more."),
    "invalid_text": N_("That text holds control characters or invisible direction controls, which I can't keep."),
    "invalid_description": N_("That description is too long."),
    "missing_description": N_("Say what the payment is for, e.g. `/charge 25 cake`."),
    "too_long": N_("Something in that is too long."),
    "not_refundable": N_("There is nothing left to refund on that payment."),
    "invalid_amount": N_("The amount must be more than zero."),
    "invalid_email": N_("That email address doesn't look right."),
    "not_found": N_("I couldn't find that link."),
    # /sell, /donate and /split terms (core/reusable.py), checked as the link is made.
    "invalid_limit": N_("A limit must be at least 1."),
    "invalid_quantity": N_("Check the quantities: the most one customer may buy can't be below the least, or "
                           "above the stock."),
    "invalid_split": N_("That amount can't be split that many ways."),
    "invalid_phone": N_("Give an international number, e.g. +65 9123 4567."),
    "invalid_currency": CURRENCY,
}
# Where the chat's words name a chat command, a page says it its own way.
_PAGE_LINK = {
    "missing_description": N_("Say what the payment is for, e.g. Chocolate cake."),
}
_TOO_LONG = {"description": N_("That description is too long."), "reference": N_("That reference is too long."),
             "customer.name": N_("That name is too long.")}

_PROMO = {
    "invalid_percent": N_("A percentage off is more than 0 and at most 100."),
    "invalid_code": N_("A promo code is 2 to 40 letters, digits, - or _, e.g. SAVE10."),
    "invalid_discount": N_("Give a percentage or an amount off, more than zero."),
    "invalid_limit": N_("uses must be 1 to 1000000."),
    "invalid_expiry": N_("Expiry must be in the future."),
}


def link_error_text(error: LinkError, *, page: bool = False) -> str:
    """A LinkError (also a series' link check, the API's checks of a new link) for the chat, or for a page
    (`page`), in the reader's language."""
    t = i18n.current()
    message, field = str(error.message), error.field or ""
    if error.code == "amount_too_large":
        return t.gettext(N_("That is more than is left to refund.") if "refund" in message
                         else N_("That amount is more than one link may ask for."))
    if error.code == "not_chargeable":
        # The provider's own rule, with its numbers ("… 5.120 or 5.130 can"), in its words, as refunds' reasons.
        reason = message.rstrip(".")
        return t.gettext("Your payment provider can't take that amount in that currency: %(reason)s.",
                         reason=reason if page else markup.escape(reason))
    if error.code == "invalid_expiry":
        if "future" in message or "longer than zero" in message:
            return t.gettext("Expiry must be in the future.")
        if field == "expires_in" and "at most" not in message:
            return t.gettext("Write how long the link stays open like 30m, 2h, 3d or 1w.")
        return t.gettext("That expiry is too far away.")
    if error.code == "too_long" and field in _TOO_LONG:
        return t.gettext(_TOO_LONG[field])
    if error.code in ("too_many_keys", "invalid_metadata"):
        return t.gettext("Metadata holds at most %(keys)s entries; each key is 1 to %(key)s characters and each "
                         "value at most %(value)s.", keys=limits.METADATA_KEYS_MAX, key=limits.METADATA_KEY_MAX,
                         value=limits.METADATA_VALUE_MAX)
    if page and error.code in _PAGE_LINK:
        return t.gettext(_PAGE_LINK[error.code])
    return t.gettext(_LINK.get(error.code, GENERAL_PAGE if page else GENERAL))


def example_amount(currency: str | None) -> str:
    """25 written with the currency's decimals ("25.00", "25" for JPY), for an example beside a refusal."""
    try:
        places = exponent(currency or "")
    except MoneyError:
        places = 2
    return "25." + "0" * places if places else "25"


def money_error_text(error: MoneyError, example: str | None = None) -> str:
    """An amount or currency that could not be read (chat or page: no markup), with an example amount."""
    t = i18n.current()
    shown = example or example_amount(error.currency)
    if error.code == "unknown_currency":
        return t.gettext(CURRENCY)
    if error.code == "too_many_decimals" and error.places == 0:
        return t.gettext("%(currency)s amounts have no decimals: write it like %(example)s.",
                         currency=error.currency, example=shown)
    if error.code == "too_many_decimals" and error.places:
        return t.ngettext("%(currency)s amounts have at most %(count)s decimal: write it like %(example)s.",
                          "%(currency)s amounts have at most %(count)s decimals: write it like %(example)s.",
                          error.places, currency=error.currency, example=shown)
    return t.gettext("Write the amount as a number, like %(example)s.", example=shown)


def promo_error_text(error: PromoError) -> str:
    t = i18n.current()
    if error.code == "too_many_promos":
        return t.gettext("A shop may have at most %(most)s promo codes; end one first with %(command)s.",
                         most=promos.MAX_PROMOS, command="`/promo off CODE`")
    if error.code in _PROMO:
        return t.gettext(_PROMO[error.code])
    if error.code in ("unknown_promo", "promo_expired", "promo_used_up", "promo_not_applicable"):
        return error.translated(t)  # the customer's refusals are catalog msgids already
    return t.gettext(GENERAL)


def series_error_text(error: SeriesError) -> str:
    t = i18n.current()
    if error.code != "invalid_schedule":
        return link_error_text(LinkError(error.code, error.message, field=error.field))
    by_field = {"schedule.interval": N_("Every 1 to 52 weeks, months or years."),
                "schedule.count": N_("A series has 1 to 1000 periods."),
                "schedule.until": N_("That end date is before the first link of the series.")}
    return t.gettext(by_field.get(error.field or "", GENERAL))


def item_error_text(error: LineItemError | MoneyError) -> str:
    """/invoice: what is wrong with its items, tax or discount."""
    t = i18n.current()
    field = getattr(error, "field", None) or ""
    if isinstance(error, MoneyError):
        return t.gettext("Check the amounts: write them like 25.00, with no more decimals than the currency has.")
    if field.endswith(".name"):
        return t.gettext("Each item needs a name (what is sold), and not a very long one.")
    if field.endswith(".quantity"):
        return t.gettext("A quantity is more than 0 and at most %(most)s.", most=QUANTITY_MAX)
    if field.endswith(".unit_amount"):
        return t.gettext("An item's price is too large.")
    if field.endswith(".tax_rate"):
        return t.gettext("Tax is a percentage from 0 to 100, e.g. `tax 9%`.")
    if field.startswith("discount"):
        return t.gettext("A discount is more than zero and no more than the items' subtotal.")
    if field == "line_items":
        return t.gettext("An invoice has 1 to %(most)s items.", most=MAX_ITEMS)
    return t.gettext(GENERAL)


def merchant_error_text(error: MerchantError, *, page: bool = False) -> str:
    t = i18n.current()
    if error.field == "name":
        return t.gettext("A shop's name can't be empty or hold control characters or invisible direction "
                         "controls.")
    if error.field == "currency":
        return t.gettext(CURRENCY)
    if error.field == "locale":
        return t.gettext("That is not a locale I know. Choose one such as en_SG or id_ID.")
    if error.field == "timezone":
        return t.gettext("Give an IANA time zone, e.g. Asia/Singapore.")
    return t.gettext(GENERAL_PAGE if page else GENERAL)


def error_text(error: Exception, *, page: bool = False) -> str:
    """Any of the services' refusals above, for the chat (or a page)."""
    if isinstance(error, PromoError):
        return promo_error_text(error)
    if isinstance(error, i18n.TranslatableError):
        return error.translated(i18n.current())
    if isinstance(error, SeriesError):
        return series_error_text(error)
    if isinstance(error, LinkError):
        return link_error_text(error, page=page)
    if isinstance(error, MoneyError) and page:
        return money_error_text(error)
    if isinstance(error, LineItemError | MoneyError):
        return item_error_text(error)
    if isinstance(error, MerchantError):
        return merchant_error_text(error, page=page)
    return i18n.current().gettext(GENERAL_PAGE if page else GENERAL)
