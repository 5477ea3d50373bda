"""The /charge grammar: amount first, then what it is for, with optional customer, reference and expiry.

`parse_charge` gives a Charge when the seller's words mean one thing, and a Choice (the readings to ask
back about) when they could mean more: "1.000" in a two-decimal currency, "2 coffees 12.50" (the later
number looks like the price), "1 234,50 EUR" (grouped with spaces), and "25k" (confirmed before use).
Clear phrasings stay one step: "/charge 25 for 2 birthday cakes" is 25 for "2 birthday cakes".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from core import i18n, markup
from core.commands import words as connecting
from core.commands.amounts import (
    Amount,
    amount_money,
    grouping_alternative,
    number_token,
    read_amount,
    split_words,
)
from core.commands.contacts import read_customer
from core.commands.expiry import is_expiry_keyword, read_expiry
from core.commands.values import Charge, Choice, CommandError, Doubt, Example, ParseContext, has_number_forms
from core.i18n import N_
from core.limits import DESCRIPTION_MAX, REFERENCE_MAX
from core.links import Customer

_REFERENCE = re.compile(rf"^\w[\w\-./:]{{0,{REFERENCE_MAX - 1}}}$")
_REF_WORDS = frozenset({"ref", "ref.", "ref:", "ref#", "reference", "reference:"})
_LEADING_NOISE = frozenset({"-", "–", "—", ":", "|", "·"})
# "1 234,50": a group of 1-3 digits, then one of exactly three (cents optional) — a number typed with spaces.
_SPACED_HEAD = re.compile(r"^[0-9]{1,3}$")
_SPACED_TAIL = re.compile(r"^[0-9]{3}(?:[.,][0-9]{1,2})?$")


def parse_charge(rest: str, ctx: ParseContext, *, command: str = "/charge") -> Charge | Choice:
    tokens = connecting.joined_phrases(split_words(connecting.spaced(rest, ctx.language)), ctx.language)
    charge, amount = _parse_tokens(tokens, ctx, command)
    readings = _doubts(tokens, charge, amount, ctx, command)
    if readings is None:
        return charge
    reason, found = readings
    unique: list[Charge] = []
    for reading in found:
        if reading not in unique:
            unique.append(reading)
    return Choice(tuple(unique[:3]), reason, typed=" ".join(tokens[: amount.consumed]))


def _sample(ctx: ParseContext) -> str:
    """What an example /charge is for, in the seller's language ("kue ulang tahun", "เค้กวันเกิด")."""
    return i18n.tr(ctx.language).pgettext("example description", "birthday cake")


def _parse_tokens(tokens: list[str], ctx: ParseContext, command: str) -> tuple[Charge, Amount]:
    example = Example(command, [], tokens)
    if not tokens:
        raise CommandError(N_("Tell me the amount and what it is for."), f"{command} 25 {_sample(ctx)}",
                           field="amount")
    amount = read_amount(tokens, ctx, example)
    if amount is None:
        # Maybe the amount came later ("/charge cake 25"): show it moved to the front.
        for i, token in enumerate(tokens[1:], start=1):
            if number_token(token) is not None:
                moved = [token, *tokens[:i], *tokens[i + 1:]]
                raise CommandError(N_("Start with the amount, then what it is for."),
                                   example.build(amount=[], rest=moved), field="amount")
        if has_number_forms(tokens[0]):  # "² cake": a number, but not in digits we read
            raise CommandError(N_("I couldn't read “%(typed)s” as an amount: write it with plain digits (0-9)."),
                               example.build(amount=["25"], rest=tokens[1:]), field="amount",
                               values={"typed": markup.escape(tokens[0])})
        raise CommandError(N_("I need an amount first."), example.build(amount=["25"]), field="amount")
    money = amount_money(amount, ctx, example)
    options = _read_options(example.rest_tokens, ctx, example)
    words = list(options.description)
    while words and words[0] in _LEADING_NOISE:
        words.pop(0)
    if words and words[0].casefold() in connecting.for_words(ctx.language):
        words.pop(0)
    description = " ".join(words)
    if not description:
        raise CommandError(N_("What is it for? Add a description after the amount."),
                           example.build(rest=[*example.rest_tokens, *_sample(ctx).split()]), field="description")
    if len(description) > DESCRIPTION_MAX:
        raise CommandError(
            N_("The description is %(length)s characters long; the most is %(most)s."),
            example.build(rest=description[:60].split()), field="description",
            values={"length": len(description), "most": DESCRIPTION_MAX},
        )
    return Charge(money, description, options.reference, options.customer, options.expires_at,
                  frozenset(options.notify) if options.notify else None), amount


# ---------------------------------------------------------------- doubts: when to ask back


def _doubts(tokens: list[str], charge: Charge, amount: Amount, ctx: ParseContext,
            command: str) -> tuple[str, list[Charge]] | None:
    """(reason, readings) when the words could mean another amount; None when they are clear."""
    spaced = _spaced_reading(tokens, amount, ctx, command)
    if spaced is not None:
        return Doubt.SPACED, [spaced, *_later_price_readings(tokens, charge, amount, ctx, command), charge]
    later = _later_price_readings(tokens, charge, amount, ctx, command)
    if later:
        return Doubt.LATER_PRICE, [*later, charge]
    alternative = grouping_alternative(amount.digits, ctx.locale, amount.currency)
    if alternative is not None and not amount.thousands:
        other = _with_value(charge, amount, alternative, ctx)
        if other is not None:
            return Doubt.GROUPING, [charge, other]
    if amount.thousands:
        return Doubt.SHORTHAND, [charge]
    return None


def _with_value(charge: Charge, amount: Amount, value: Decimal, ctx: ParseContext) -> Charge | None:
    """The same charge with another amount, or None when that amount is not allowed."""
    try:
        money = amount_money(replace(amount, value=value), ctx, Example("/charge", [], []))
    except CommandError:
        return None
    return replace(charge, money=money)


def _clear_charge(words: list[str], ctx: ParseContext, command: str) -> Charge | None:
    """These words as a plain one-step /charge, or None when they are not one."""
    try:
        charge, _amount = _parse_tokens(words, ctx, command)
    except CommandError:
        return None
    return charge


def _spaced_reading(tokens: list[str], amount: Amount, ctx: ParseContext, command: str) -> Charge | None:
    """"1 234,50 EUR Kuchen": the amount typed with a space for grouping."""
    if amount.consumed != 1 or amount.marked or len(tokens) < 3:
        return None
    if not (_SPACED_HEAD.match(tokens[0]) and _SPACED_TAIL.match(tokens[1])):
        return None
    return _clear_charge([tokens[0] + tokens[1], *tokens[2:]], ctx, command)


def _later_price_readings(tokens: list[str], charge: Charge, amount: Amount, ctx: ParseContext,
                          command: str) -> list[Charge]:
    """"2 coffees 12.50": a later number with cents or a currency, when the first has neither."""
    if amount.marked or amount.has_decimals or amount.thousands or amount.consumed != 1:
        return []
    words = charge.description.split()
    for i, word in enumerate(words):
        if number_token(word) is None:
            continue
        scratch = Example(command, [], [])
        try:
            later = read_amount(words[i:], ctx, scratch)
        except CommandError:
            continue
        if later is None or not (later.marked or later.has_decimals):
            continue
        moved = [*words[i: i + later.consumed], tokens[0], *words[:i], *words[i + later.consumed:]]
        reading = _clear_charge(moved, ctx, command)
        if reading is None:
            continue
        return [replace(reading, reference=charge.reference, customer=charge.customer,
                        expires_at=charge.expires_at)]
    return []


# ---------------------------------------------------------------- options after the amount


@dataclass
class _Options:
    description: list[str] = field(default_factory=list)
    reference: str | None = None
    customer: Customer = field(default_factory=Customer)
    expires_at: datetime | None = None
    notify: set[str] = field(default_factory=set)


def _read_options(tokens: list[str], ctx: ParseContext, example: Example) -> _Options:
    """Pull `to …`, `ref …`/`#…` and expiry phrases out; what is left is the description."""
    out = _Options()
    to_words = connecting.to_words(ctx.language)
    ref_words = connecting.reference_words(ctx.language)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        word = token.casefold()
        used = 0
        if word in to_words and i + 1 < len(tokens):
            out.customer, used = read_customer(tokens, i, ctx, example, out.customer)
        if used:
            pass
        elif word == "via" and i + 1 < len(tokens) and tokens[i + 1].casefold().rstrip(".,;") in ctx.channels:
            # `via sms`: how the link goes to its customer ("delivery via courier" stays in the description).
            out.notify.add(ctx.channels[tokens[i + 1].casefold().rstrip(".,;")])
            used = 2
        elif word in _REF_WORDS or word in ref_words or re.match(r"^ref[:#=]", word):
            used = _read_reference(tokens, i, example, out)
        elif token.startswith("#") and _REFERENCE.match(token[1:].rstrip(".,;")):
            out.reference, used = token[1:].rstrip(".,;"), 1
        elif is_expiry_keyword(word, ctx.language):
            expires_at, used = read_expiry(tokens, i, ctx, example)
            if used:
                out.expires_at = expires_at
        if used:
            i += used
        else:
            out.description.append(token)
            i += 1
    return out


def _read_reference(tokens: list[str], i: int, example: Example, out: _Options) -> int:
    token = tokens[i]
    inline = re.split(r"[:#=]", token, maxsplit=1)[1] if re.match(r"^ref[:#=]", token, re.IGNORECASE) else ""
    if inline:
        value, used = inline, 1
    elif i + 1 < len(tokens):
        value, used = tokens[i + 1], 2
    else:
        raise CommandError(N_("Which reference? Put it after “ref”."),
                           example.build(rest=[*tokens[:i], "ref", "INV-1042"]), field="reference")
    value = value.lstrip("#").rstrip(".,;")
    if not _REFERENCE.match(value):
        raise CommandError(
            N_("A reference is up to %(most)s letters, digits and - . / : — not “%(typed)s”."),
            example.build(rest=[*tokens[:i], "ref", "INV-1042", *tokens[i + used:]]), field="reference",
            values={"most": REFERENCE_MAX, "typed": markup.escape(value[:40])},
        )
    out.reference = value
    return used
