"""Business limits on a payment link, in one place.

LinkService enforces them (so every way in — API, chat, CLI — gets the same rules); the API's request
models, the OpenAPI document, the chat grammar and the CLI read the same names for their messages and
schemas. The maximum amount is a setting (`links.max_amount`), so it arrives as a value; the helpers here
turn it into what each edge needs.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from email_validator import EmailNotValidError, validate_email

from core.money import exponent

DESCRIPTION_MAX = 500
REFERENCE_MAX = 100
CUSTOMER_NAME_MAX = 200
# The longest address that fits SMTP's 256-octet path (RFC 5321 + errata), as email-validator enforces.
EMAIL_MAX = 254
PHONE_MAX = 32
METADATA_KEYS_MAX = 20
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
MAX_EXPIRY = timedelta(days=365)
# The amount column is a BIGINT; links.max_amount is the business cap below it.
AMOUNT_MINOR_MAX = 2**63 - 1
DEFAULT_MAX_AMOUNT = Decimal("10000000")


def max_amount_minor(max_amount: Decimal, currency: str) -> int:
    """The largest amount_minor allowed in `currency` under the `links.max_amount` cap."""
    return min(int(max_amount.scaleb(exponent(currency))), AMOUNT_MINOR_MAX)


def normalise_email(text: str) -> str:
    """A customer's email address, checked for syntax only (no DNS), domain lower-cased.

    Raises ValueError with a message fit to show a person.
    """
    if len(text) > EMAIL_MAX:
        raise ValueError(f"an email address is at most {EMAIL_MAX} characters")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{text[:60]!r} is not an email address ({exc})") from None
    return str(checked.normalized)
