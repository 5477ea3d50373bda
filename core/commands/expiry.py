"""Expiry phrases after a /charge: "exp 2h", "expires in 3 days", "valid 30m", "exp 2026-12-31 18:00".

Durations run from the context's "now"; dates are wall-clock moments in the shop's time zone. Any digit
the seller types (full-width, Arabic-Indic) is read; anything else that is not a number ("²") is reported
with a corrected example, never passed to int().
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from core.commands import words as language_words
from core.commands.values import CommandError, Example, ParseContext, ascii_digits, norm
from core.i18n import N_

_ISO_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{1,2}):([0-9]{2}))?$")
_DURATION_ATTACHED = re.compile(r"^([0-9]{1,4})([a-z]+)$")
EXPIRY_WORDS = frozenset({"exp", "expires", "expire", "expiry", "expiring", "valid", "validity"})
_EXPIRY_FILLERS = frozenset({"in", "for", "on", "until", "till", "by", "at"})
_UNITS: dict[str, str] = {
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "wk": "weeks", "wks": "weeks", "week": "weeks", "weeks": "weeks",
}


def is_expiry_keyword(word: str, language: str = "en") -> bool:
    word = word.casefold()
    return (word.rstrip(":") in EXPIRY_WORDS or word.rstrip(":") in language_words.expiry_words(language)
            or re.match(r"^(exp|expires|valid)[:=]", word) is not None)


def read_expiry(tokens: list[str], i: int, ctx: ParseContext, example: Example) -> tuple[datetime | None, int]:
    """(moment, words used) for the expiry phrase at tokens[i]; (None, 0) when it is description after all."""
    keyword = tokens[i]
    # "valid ID required", "vence el contrato": a description when no expiry follows. Only "exp" and
    # "expires" are never anything else.
    lenient = keyword.casefold().startswith("valid") or keyword.casefold().rstrip(":") not in EXPIRY_WORDS
    fillers = _EXPIRY_FILLERS | language_words.fillers(ctx.language)
    inline = re.split(r"[:=]", keyword, maxsplit=1)[1] if re.search(r"[:=].", keyword) else ""
    after = tokens[i + 1: i + 4]
    skip = 0
    while not inline and after and after[0].casefold() in fillers and skip < 2:
        after, skip = after[1:], skip + 1
    values = [inline, *after] if inline else after
    found = _expiry_value(values, ctx)
    if found is None:
        if lenient:
            return None, 0
        bad = _bad_expiry_length(tokens, i)
        raise CommandError(
            N_("I can read expiry like “exp 2h”, “expires in 3 days”, “valid 30m” or “exp 2026-12-31”."),
            example.build(rest=[*tokens[:i], "exp", "3d", *tokens[i + 1 + bad:]]), field="expires_at",
        )
    expires_at, used = found
    total = 1 + skip + (used - 1 if inline else used)
    others = [*tokens[:i], *tokens[i + total:]]
    if expires_at <= ctx.now:
        raise CommandError(N_("That expiry is already past; a link must expire in the future."),
                           example.build(rest=[*others, "exp", "3d"]), field="expires_at")
    if expires_at > ctx.now + ctx.max_expiry:
        days = ctx.max_expiry.days
        raise CommandError(N_("A link can be valid for at most %(days)s days."),
                           example.build(rest=[*others, "exp", f"{days}d"]), field="expires_at", values={"days": days})
    return expires_at, total


def _bad_expiry_length(tokens: list[str], i: int) -> int:
    """How many words after an unreadable expiry keyword look like its (bad) value ("in 3 fortnights")."""
    n = 0
    rest = tokens[i + 1: i + 4]
    while n < len(rest) and rest[n].casefold() in _EXPIRY_FILLERS:
        n += 1
    if n < len(rest) and any(ch.isnumeric() for ch in rest[n]):
        n += 1
        if all(ch.isnumeric() or ch in ".,'" for ch in rest[n - 1]) and n < len(rest) and rest[n].isalpha():
            n += 1  # the unit word that was not understood
    return n


def _expiry_value(values: list[str], ctx: ParseContext) -> tuple[datetime, int] | None:
    """(moment, words used) for "3d", "3 days", "a week", "2026-12-31", "2026-12-31 18:00", "tomorrow"
    (and "3 hari", "besok", "3 días" in the seller's language)."""
    if not values:
        return None
    first = language_words.day_word(ascii_digits(norm(values[0])).casefold().rstrip(".,;"), ctx.language)
    units = {**_UNITS, **language_words.units(ctx.language)}
    today = ctx.now.astimezone(ctx.timezone).date()
    far = ctx.now + ctx.max_expiry + timedelta(days=1)
    if first in ("today", "tonight"):
        return _at(today, time(23, 59, 59), ctx) or far, 1
    if first == "tomorrow":
        return _at(today + timedelta(days=1), time(23, 59, 59), ctx) or far, 1
    if (m := _DURATION_ATTACHED.match(first)) and m.group(2) in units:
        return ctx.now + timedelta(**{units[m.group(2)]: int(m.group(1))}), 1
    if re.fullmatch(r"[0-9]{1,4}", first) or first in ("a", "an", "one"):
        count = int(first) if first.isascii() and first.isdigit() else 1
        if len(values) > 1 and (unit := values[1].casefold().rstrip(".,;")) in units:
            return ctx.now + timedelta(**{units[unit]: count}), 2
        return None
    if (m := _ISO_DATE.match(first.upper())) is not None:
        try:
            day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
        if m.group(4) is not None:
            clock = _clock(m.group(4), m.group(5))
            return (None if clock is None else (_at(day, clock, ctx) or far, 1))
        clock_word = ascii_digits(norm(values[1])).rstrip(".,;") if len(values) > 1 else ""
        if clock_word and (t := re.fullmatch(r"([0-9]{1,2}):([0-9]{2})", clock_word)):
            clock = _clock(t.group(1), t.group(2))
            return (None if clock is None else (_at(day, clock, ctx) or far, 2))
        return _at(day, time(23, 59, 59), ctx) or far, 1
    return None


def _clock(hour: str, minute: str) -> time | None:
    h, m = int(hour), int(minute)
    return time(h, m) if h <= 23 and m <= 59 else None


def _at(day: date, clock: time, ctx: ParseContext) -> datetime | None:
    """A local wall-clock moment in UTC; None when it is beyond what datetime can hold."""
    try:
        return datetime.combine(day, clock, ctx.timezone).astimezone(UTC)
    except (OverflowError, ValueError):
        return None
