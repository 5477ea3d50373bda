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

from core.money import format_money
from core.outbox_texts import TEST_MARK, AlertFacts, clock_time
from core.ports import Reply

MAX_LINES = 15


def span_words(earliest: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - earliest).total_seconds())
    if seconds <= 60:
        return "in the last minute"
    if seconds < 3600:
        return f"in the last {math.ceil(seconds / 60)} minutes"
    unit, size = ("hour", 3600) if seconds < 86400 else ("day", 86400)
    count = math.ceil(seconds / size)
    return f"in the last {unit}" if count == 1 else f"in the last {count} {unit}s"


def totals_text(facts: Sequence[AlertFacts], locale: str) -> str:
    totals: dict[str, int] = {}
    for item in facts:
        totals[item.currency] = totals.get(item.currency, 0) + item.amount_minor
    return " + ".join(format_money(minor, code, locale) for code, minor in sorted(totals.items()))


def digest_reply(facts: Sequence[AlertFacts], now: datetime, *, max_lines: int = MAX_LINES) -> Reply:
    """One message for several paid alerts to the same chat (at least one fact is required)."""
    if not facts:
        raise ValueError("a digest needs at least one payment")
    ordered = sorted(facts, key=lambda f: (f.at, f.link_id))
    locale = ordered[-1].locale
    count = len(ordered)
    noun = "payment" if count == 1 else "payments"
    live = [f for f in ordered if f.livemode]
    test = [f for f in ordered if not f.livemode]
    span = span_words(ordered[0].at, now)
    if not live:
        head = f"✅ **{count} {noun}** ({TEST_MARK}) {span}, **{totals_text(test, locale)}** in all:"
    elif not test:
        head = f"✅ **{count} {noun}** {span}, **{totals_text(live, locale)}** in all:"
    else:
        head = (f"✅ **{count} {noun}** {span}, **{totals_text(live, locale)}** in all "
                f"(+ {totals_text(test, locale)} in 🧪 test mode, not counted):")
    shown = ordered[-max_lines:]
    lines = [head]
    if count > len(shown):
        lines.append(f"… {count - len(shown)} earlier")
    for item in shown:
        who = f" · {item.payer_name}" if item.payer_name else ""
        ref = f" · ref {item.reference}" if item.reference else ""
        mark = "🧪 " if live and not item.livemode else ""
        lines.append(f"• {mark}{item.amount_text} — {item.description}{who} · {clock_time(item.at)}{ref}")
    return Reply(text="\n".join(lines))
