"""Who a /charge is for: `to +65 9123 4567`, `to alice@example.com`, `to @alice`.

Phone numbers through phonenumbers (the shop's territory fills in a missing country code), email
addresses through core.limits.normalise_email (email-validator).
"""

from __future__ import annotations

import re

from core import markup
from core.commands.values import CommandError, Example, ParseContext
from core.i18n import N_
from core.limits import normalise_email
from core.links import Customer
from core.locales import territory_of

_HANDLE = re.compile(r"^@[A-Za-z0-9_][A-Za-z0-9_.]{1,63}$")
_PHONE_PART = re.compile(r"^[+(]?[0-9()\-./]+$")


def read_customer(tokens: list[str], i: int, ctx: ParseContext, example: Example,
                  customer: Customer) -> tuple[Customer, int]:
    """The customer after `to` at tokens[i]: (updated customer, words used); 0 words: not a customer."""
    target = tokens[i + 1].rstrip(".,;")
    if "@" in target[1:] and not target.startswith("@"):
        try:
            email = normalise_email(target)
        except ValueError:
            raise CommandError(
                N_("“%(typed)s” is not an email address I can send to."),
                example.build(rest=[*tokens[:i], "to", "alice@example.com", *tokens[i + 2:]]), field="customer",
                values={"typed": markup.escape(target)},
            ) from None
        return Customer(customer.name, email, customer.phone), 2
    if _HANDLE.match(target):
        return Customer(target, customer.email, customer.phone), 2
    parts: list[str] = []
    for token in tokens[i + 1:]:
        if not _PHONE_PART.match(token.rstrip(".,;")):
            break
        parts.append(token.rstrip(".,;"))
    number = "".join(parts)
    if not parts or not (number.startswith("+") or sum(ch.isdigit() for ch in number) >= 6):
        return customer, 0  # "trip to 3 cities": part of the description
    import phonenumbers  # here: its metadata costs ~60 ms, which commands that never parse a phone skip

    region = territory_of(ctx.locale) or "US"
    # The longest run of number-like words that is a valid number ("to +65 9123 4567 2 cakes").
    for count in range(len(parts), 0, -1):
        try:
            parsed = phonenumbers.parse("".join(parts[:count]), region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            phone = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            return Customer(customer.name, customer.email, phone), 1 + count
    code = phonenumbers.country_code_for_region(region)
    hinted = not (number.startswith("+") or not code)
    raise CommandError(
        N_("“%(typed)s” doesn't look like a phone number (add the country code, like +%(code)s).") if hinted
        else N_("“%(typed)s” doesn't look like a phone number."),
        example.build(rest=[*tokens[:i], "to", *_sample_phone(region).split(), *tokens[i + 1 + len(parts):]]),
        field="customer", values={"typed": markup.escape(" ".join(parts)), "code": code},
    )


def _sample_phone(region: str) -> str:
    import phonenumbers

    sample = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if sample is None:
        return "+65 9123 4567"
    return phonenumbers.format_number(sample, phonenumbers.PhoneNumberFormat.INTERNATIONAL)

