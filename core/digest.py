"""Many paid alerts for one chat, merged into one message when that chat has a backlog.

"**12 payments** in the last minute, **S$300.00** in all:" followed by one line per payment (the
newest last, up to a limit), with totals per currency since one shop can sell in several. Test money
(sandbox, Stripe test keys, PortOne sandbox) is never added to live totals: it has its own total and
its lines are marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from core import i18n
from core.money import format_money
from core.outbox_texts import TEST_MARK, AlertFacts, clock_time
from core.ports import Reply

MAX_LINES = 15


def span_words(earliest: datetime, now: datetime, language: str = "en") -> str:
    t = i18n.tr(language)
    seconds = max(0.0, (now - earliest).total_seconds())
    if seconds <= 60:
        return t.gettext("in the last minute")
    if seconds < 3600:
        return t.ngettext("in the last %(count)s minute", "in the last %(count)s minutes", math.ceil(seconds / 60))
    if seconds < 86400:
        count = math.ceil(seconds / 3600)
        return (t.gettext("in the last hour") if count == 1
                else t.ngettext("in the last %(count)s hour", "in the last %(count)s hours", count))
    count = math.ceil(seconds / 86400)
    return (t.gettext("in the last day") if count == 1
            else t.ngettext("in the last %(count)s day", "in the last %(count)s days", count))


def totals_text(facts: Sequence[AlertFacts], locale: str) -> str:
    totals: dict[str, int] = {}
    for item in facts:
        totals[item.currency] = totals.get(item.currency, 0) + item.amount_minor
    return " + ".join(format_money(minor, code, locale) for code, minor in sorted(totals.items()))


def digest_reply(facts: Sequence[AlertFacts], now: datetime, *, max_lines: int = MAX_LINES,
                 language: str | None = None) -> Reply:
    """One message for several paid alerts to the same chat (at least one fact is required), in the
    chat's language (default: the shop's)."""
    if not facts:
        raise ValueError("a digest needs at least one payment")
    ordered = sorted(facts, key=lambda f: (f.at, f.link_id))
    locale = ordered[-1].locale
    t = i18n.tr(language or ordered[-1].shop_language)
    count = len(ordered)
    live = [f for f in ordered if f.livemode]
    test = [f for f in ordered if not f.livemode]
    span = span_words(ordered[0].at, now, t.language)
    if not live:
        head = t.ngettext("✅ **%(count)s payment** (%(mark)s) %(span)s, **%(total)s** in all:",
                          "✅ **%(count)s payments** (%(mark)s) %(span)s, **%(total)s** in all:", count,
                          mark=t.gettext(TEST_MARK), span=span, total=totals_text(test, locale))
    elif not test:
        head = t.ngettext("✅ **%(count)s payment** %(span)s, **%(total)s** in all:",
                          "✅ **%(count)s payments** %(span)s, **%(total)s** in all:", count,
                          span=span, total=totals_text(live, locale))
    else:
        head = t.ngettext("✅ **%(count)s payment** %(span)s, **%(total)s** in all (+ %(test)s in 🧪 test mode, "
                          "not counted):",
                          "✅ **%(count)s payments** %(span)s, **%(total)s** in all (+ %(test)s in 🧪 test mode, "
                          "not counted):", count, span=span, total=totals_text(live, locale),
                          test=totals_text(test, locale))
    shown = ordered[-max_lines:]
    lines = [head]
    if count > len(shown):
        lines.append(t.gettext("… %(count)s earlier", count=count - len(shown)))
    for item in shown:
        who = f" · {item.payer_name}" if item.payer_name else ""
        ref = " · " + t.gettext("ref %(reference)s", reference=item.reference) if item.reference else ""
        mark = "🧪 " if live and not item.livemode else ""
        lines.append(f"• {mark}{item.amount_text} — {item.description}{who} · {clock_time(item, t.language)}{ref}")
    return Reply(text="\n".join(lines))
