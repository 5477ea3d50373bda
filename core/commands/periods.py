"""Periods for /report: today, yesterday, week, month, last week, last month, 2026-11, 2026-11-26; and the
money it covers: "live" or "test" (either end of the words) for only that kind."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from babel.dates import format_skeleton

from core import markup
from core.commands.values import CommandError, ParseContext, Period, Report, ascii_digits
from core.i18n import N_, reader_locale


def _month_label(year: int, month: int, ctx: ParseContext) -> str:
    """"December 2026" in the seller's language ("Desember 2026", "2026年12月")."""
    return format_skeleton("yMMMM", datetime(year, month, 1), locale=reader_locale(ctx.language, ctx.locale))


_MODES = {"live": True, "real": True, "test": False}


def parse_report(rest: str, ctx: ParseContext) -> Report:
    """"/report week test": the period, then (or first) "live"/"test" to see one kind of money only."""
    words = ascii_digits(rest).casefold().split()
    livemode = None
    for index in (-1, 0):
        if words and words[index] in _MODES:
            livemode = _MODES[words.pop(index)]
            break
    return Report(parse_period(" ".join(words), ctx), livemode)


def parse_period(rest: str, ctx: ParseContext) -> Period:
    """today, yesterday, week, month, last week, last month, YYYY-MM, YYYY-MM-DD — in the shop's time zone."""
    word = " ".join(ascii_digits(rest).casefold().split())
    local_now = ctx.now.astimezone(ctx.timezone)
    today = local_now.date()

    def at(day: date) -> datetime:
        return datetime.combine(day, time(), ctx.timezone).astimezone(UTC)

    if word in ("", "today", "day"):
        return Period("today", at(today), at(today + timedelta(days=1)))
    if word == "yesterday":
        return Period("yesterday", at(today - timedelta(days=1)), at(today))
    monday = today - timedelta(days=today.weekday())
    if word in ("week", "this week"):
        return Period("this week", at(monday), at(monday + timedelta(days=7)))
    if word == "last week":
        return Period("last week", at(monday - timedelta(days=7)), at(monday))
    first = today.replace(day=1)
    if word in ("month", "this month"):
        return Period(_month_label(first.year, first.month, ctx), at(first), at(_next_month(first)))
    if word == "last month":
        prev = (first - timedelta(days=1)).replace(day=1)
        return Period(_month_label(prev.year, prev.month, ctx), at(prev), at(first))
    m = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})", word)
    if m and 1 <= int(m.group(2)) <= 12 and 1970 <= int(m.group(1)) < 9999:
        start = date(int(m.group(1)), int(m.group(2)), 1)
        return Period(_month_label(start.year, start.month, ctx), at(start), at(_next_month(start)))
    if re.fullmatch(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}", word):
        try:
            day = date(*(int(p) for p in word.split("-")))
        except ValueError:
            day = None
        if day is not None and 1970 <= day.year < 9999:
            return Period(day.isoformat(), at(day), at(day + timedelta(days=1)))
    this_month = f"{today.year}-{today.month:02d}"
    raise CommandError(
        N_("I can report on today, yesterday, week, month, last week, last month or a month like %(month)s "
           "(add `live` or `test` for one kind of money), not “%(typed)s”."),
        f"/report {this_month}", field="period", values={"month": this_month, "typed": markup.escape(rest.strip())},
    )


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)
