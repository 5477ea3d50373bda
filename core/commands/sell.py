"""/sell, /donate, /split and /promo: links that sell many times, in one line.

Each takes its own words out first (`stock 50`, `max 20`; `min 5 suggest 10 20 50`; `4 ways`,
`between 4`, `for 4 people`) — only in the forms listed, so a description keeps every other word — and
reads the rest with the /charge grammar (amount first; `to …`, `ref …`, `exp …`). /charge itself is
untouched: `/charge 25 for 2 birthday cakes` is still 25 for "2 birthday cakes", and `for 4 people` is
the number of shares only after /split.
"""

from __future__ import annotations

import re
from decimal import Decimal

from core import markup
from core.commands.amounts import split_words
from core.commands.charge import _read_options, parse_charge
from core.commands.expiry import is_expiry_keyword, read_expiry
from core.commands.values import Charge, CommandError, Example, ParseContext, Promo, Sell
from core.i18n import N_
from core.links import Customer
from core.money import Money, MoneyError, exponent
from core.reusable import CUSTOMER_CHOOSES, MAX_QUANTITY, MAX_SPLIT_WAYS, MAX_SUGGESTED, Terms

_COUNT = re.compile(r"^[0-9]{1,7}$")
_PEOPLE = frozenset({"people", "persons", "pax", "friends", "of", "ways", "way"})


def _count(tokens: list[str], i: int) -> int | None:
    if i < len(tokens) and _COUNT.match(tokens[i].rstrip(".,;")):
        return int(tokens[i].rstrip(".,;"))
    return None


def _charge(words: list[str], ctx: ParseContext, command: str) -> Charge:
    found = parse_charge(" ".join(words), ctx, command=command)
    if isinstance(found, Charge):
        return found
    # The amount could be read two ways: say it plainly rather than guess on a link that sells many times.
    first = found.readings[0]
    raise CommandError(N_("I'm not sure of the amount; write it with its decimals, e.g. 25.00."),
                       f"{command} {first.money.amount_str()} {first.description}", field="amount")


# ---------------------------------------------------------------- /sell


def parse_sell(rest: str, ctx: ParseContext) -> Sell:
    tokens = split_words(rest)
    kept: list[str] = []
    stock = max_payments = None
    i = 0
    while i < len(tokens):
        word = tokens[i].casefold()
        number = _count(tokens, i + 1)
        if word in ("stock", "qty", "seats") and number is not None:
            stock, i = number, i + 2
        elif word in ("max", "limit") and number is not None:
            max_payments, i = number, i + 2
        else:
            kept.append(tokens[i])
            i += 1
    for value, name in ((stock, "stock"), (max_payments, "max")):
        if value is not None and not 1 <= value <= 1_000_000:
            raise CommandError(N_("%(name)s must be 1 to 1000000."), "/sell 25 concert ticket stock 50", field=name,
                               values={"name": name})
    charge = _charge(kept, ctx, "/sell")
    quantity_max = min(stock, MAX_QUANTITY) if stock is not None else None
    terms = Terms(stock=stock, max_payments=max_payments, quantity_min=1 if quantity_max else None,
                  quantity_max=quantity_max)
    return Sell("sell", charge, terms)


# ---------------------------------------------------------------- /donate


def _money(token: str, ctx: ParseContext, example: str, name: str) -> int:
    try:
        money = Money.parse(token.replace(",", ""), ctx.default_currency)
    except MoneyError:
        raise CommandError(N_("I couldn't read “%(typed)s” as an amount for %(name)s."), example, field=name,
                           values={"typed": markup.escape(token[:20]), "name": name}) from None
    if money.amount_minor <= 0:
        raise CommandError(N_("%(name)s must be more than zero."), example, field=name, values={"name": name})
    return money.amount_minor


def parse_donate(rest: str, ctx: ParseContext) -> Sell:
    tokens = split_words(rest)
    example = "/donate flood relief min 5 suggest 10 20 50"
    kept: list[str] = []
    low = high = None
    suggested: list[int] = []
    i = 0
    while i < len(tokens):
        word = tokens[i].casefold()
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if word in ("min", "minimum", "from") and nxt[:1].isdigit():
            low, i = _money(nxt, ctx, example, "min"), i + 2
        elif word in ("max", "maximum", "upto") and nxt[:1].isdigit():
            high, i = _money(nxt, ctx, example, "max"), i + 2
        elif word in ("suggest", "suggested", "suggestions") and nxt[:1].isdigit():
            i += 1
            while i < len(tokens) and tokens[i][:1].isdigit():
                suggested.append(_money(tokens[i], ctx, example, "suggest"))
                i += 1
        else:
            kept.append(tokens[i])
            i += 1
    if len(suggested) > MAX_SUGGESTED:
        raise CommandError(N_("I can suggest at most %(most)s amounts."), example, field="suggest",
                           values={"most": MAX_SUGGESTED})
    options = _read_options(kept, ctx, Example("/donate", [], kept))
    description = " ".join(options.description).strip()
    if not description:
        raise CommandError(N_("What is it for? Add a description."), "/donate school library fund",
                           field="description")
    if description[:1].isdigit():
        raise CommandError(N_("The donor chooses the amount: give a minimum with “min”, not an amount first."),
                           example, field="amount")
    low = low or 10 ** exponent(ctx.default_currency)  # one whole unit of the currency
    if high is not None and high < low:
        raise CommandError(N_("max must be at least min."), example, field="max")
    if any(a < low or (high is not None and a > high) for a in suggested):
        raise CommandError(N_("Each suggested amount must be at least the minimum (and at most the maximum)."),
                           example, field="suggest")
    charge = Charge(Money(low, ctx.default_currency), description, options.reference, Customer(),
                    options.expires_at)
    terms = Terms(amount_mode=CUSTOMER_CHOOSES, min_amount_minor=low, max_amount_minor=high,
                  suggested_amounts=tuple(suggested))
    return Sell("donate", charge, terms)


# ---------------------------------------------------------------- /split


def parse_split(rest: str, ctx: ParseContext) -> Sell:
    tokens = split_words(rest)
    example = "/split 120 dinner 4 ways"
    kept: list[str] = []
    ways = None
    i = 0
    while i < len(tokens):
        word = tokens[i].casefold()
        here, after = _count(tokens, i), _count(tokens, i + 1)
        if i > 0 and here is not None and i + 1 < len(tokens) and tokens[i + 1].casefold().rstrip(".,") in (
                "ways", "way", "people", "persons", "pax", "shares"):
            ways, i = here, i + 2  # "4 ways", "4 people"
        elif word in ("between", "among", "by") and after is not None:
            ways, i = after, i + 2
            if i < len(tokens) and tokens[i].casefold().rstrip(".,") in _PEOPLE:
                i += 1
        elif word == "for" and after is not None and i + 2 < len(tokens) \
                and tokens[i + 2].casefold().rstrip(".,") in _PEOPLE:
            ways, i = after, i + 3  # "for 4 people": after /split, the number of shares
        else:
            kept.append(tokens[i])
            i += 1
    if ways is None:
        raise CommandError(N_("Into how many shares? Add “4 ways”, “between 4” or “for 4 people”."), example,
                           field="ways")
    if not 2 <= ways <= MAX_SPLIT_WAYS:
        raise CommandError(N_("A bill splits 2 to %(most)s ways."), example, field="ways",
                           values={"most": MAX_SPLIT_WAYS})
    charge = _charge(kept, ctx, "/split")
    return Sell("split", charge, Terms(split_ways=ways))


# ---------------------------------------------------------------- /promo

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,39}$")
_PERCENT = re.compile(r"^([0-9]{1,3}(?:\.[0-9]{1,2})?)%$")


def parse_promo(rest: str, ctx: ParseContext) -> Promo:
    tokens = split_words(rest)
    if not tokens or tokens[0].casefold() in ("list", "all"):
        return Promo("list")
    if tokens[0].casefold() in ("off", "delete", "remove", "stop"):
        if len(tokens) < 2 or not _CODE.match(tokens[1]):
            raise CommandError(N_("Which code? Put it after “off”."), "/promo off SAVE10", field="code")
        return Promo("off", tokens[1].upper())
    code = tokens[0]
    if not _CODE.match(code):
        raise CommandError(N_("A code is 2 to 40 letters, digits, - or _, not “%(typed)s”."),
                           "/promo SAVE10 10%", field="code", values={"typed": markup.escape(code[:40])})
    if len(tokens) < 2:
        raise CommandError(N_("How much off? A percentage or an amount."), f"/promo {code.upper()} 10%",
                           field="discount")
    promo = Promo("create", code.upper())
    percent = _PERCENT.match(tokens[1])
    if percent:
        value = Decimal(percent.group(1))
        if not 0 < value <= 100:
            raise CommandError(N_("A percentage off is more than 0 and at most 100."), f"/promo {code.upper()} 10%",
                               field="discount")
        promo = Promo("create", code.upper(), percent_bp=int(value * 100))
    else:
        minor = _money(tokens[1], ctx, f"/promo {code.upper()} 5.00", "discount")
        promo = Promo("create", code.upper(), amount_off=Money(minor, ctx.default_currency))
    i = 2
    example = Example("/promo", [], tokens)
    values: dict[str, object] = {}
    while i < len(tokens):
        word = tokens[i].casefold()
        if word in ("uses", "max", "limit") and _count(tokens, i + 1) is not None:
            values["max_redemptions"], i = _count(tokens, i + 1), i + 2
            if not 1 <= int(values["max_redemptions"]) <= 1_000_000:  # type: ignore[call-overload]
                raise CommandError(N_("uses must be 1 to 1000000."), f"/promo {code.upper()} 10% uses 100",
                                   field="uses")
        elif is_expiry_keyword(word):
            expires_at, used = read_expiry(tokens, i, ctx, example)
            if not used:
                raise CommandError(N_("I can read expiry like “exp 30d”."), f"/promo {code.upper()} 10% exp 30d",
                                   field="expires_at")
            values["expires_at"], i = expires_at, i + used
        else:
            raise CommandError(N_("I don't know “%(typed)s” here: after the discount come “uses N” and “exp 30d”."),
                               f"/promo {code.upper()} {tokens[1]} uses 100 exp 30d", field="promo",
                               values={"typed": markup.escape(tokens[i][:40])})
    return Promo(promo.action, promo.code, promo.percent_bp, promo.amount_off,
                 values.get("max_redemptions"), values.get("expires_at"))  # type: ignore[arg-type]

