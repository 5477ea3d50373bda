"""SMS texts from an outbox row's facts, in one segment where they fit.

An SMS segment holds 160 GSM-7 septets (characters of the extension table, like € and [, take two), or
70 UCS-2 characters as soon as one character is outside GSM-7 (an emoji, a Korean description). Texts
put the amount and the link first, then add the shop and the description only while they still fit;
when even the shortest text is not GSM-7 (a shop named in Hangul) it is sent as UCS-2, in as many
segments as it needs.
"""

from __future__ import annotations

import unicodedata

from core.money import amount_str, format_money
from core.outbox_texts import AlertFacts

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_SEGMENT = 160
UCS2_SEGMENT = 70
# Typographic characters sellers type that have plain GSM-7 twins; swapping them keeps a text GSM-7.
_PLAIN = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "–": "-", "…": "...", "\u00a0": " ",
                        "·": "-"})


def septets(text: str) -> int | None:
    """GSM-7 length in septets; None when the text needs UCS-2."""
    count = 0
    for ch in text:
        if ch in GSM7_BASIC:
            count += 1
        elif ch in GSM7_EXTENSION:
            count += 2
        else:
            return None
    return count


def segments(text: str) -> int:
    """How many SMS segments the text takes (concatenated segments lose a few characters to the header)."""
    length = septets(text)
    if length is not None:
        return 1 if length <= GSM7_SEGMENT else -(-length // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= UCS2_SEGMENT else -(-units // 67)


def plain(text: str) -> str:
    """Typographic quotes and dashes as their GSM-7 twins, accents kept where GSM-7 has them."""
    text = text.translate(_PLAIN)
    if septets(text) is not None:
        return text
    # é, ü … are GSM-7; other accented Latin letters lose only their accent (ā -> a) rather than
    # turning the whole text into UCS-2 (less than half the room).
    out = []
    for ch in text:
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch)[0]
        out.append(base if base in GSM7_BASIC else ch)
    return "".join(out)


def _amount(facts: AlertFacts) -> str:
    text = plain(facts.amount_text)
    if septets(text) is not None:
        return text
    # A currency sign outside GSM-7 (₩, ₹, ₫): the English form, or the number and the ISO code.
    english = plain(format_money(facts.amount_minor, facts.currency, "en"))
    if septets(english) is not None:
        return english
    return f"{amount_str(facts.amount_minor, facts.currency)} {facts.currency}"


def candidates(kind: str, facts: AlertFacts, amount_text: str | None = None) -> list[str]:
    """Texts for this row, richest first; the last is the shortest that still says what it must."""
    amount = amount_text or _amount(facts)
    shop = plain(facts.merchant_name) or "a shop"
    what = plain(" ".join(facts.description.split()))
    url = facts.url or ""
    test = "" if facts.livemode else " (test, no real money)"
    ref = f" ref {plain(facts.reference)}" if facts.reference else ""
    if kind.endswith(".receipt"):
        return [f"Paid {amount} to {shop}{test}: {what}{ref}. Thank you!", f"Paid {amount} to {shop}{test}{ref}.",
                f"Paid {amount}{test}{ref}."]
    if kind.endswith(".refund"):
        return [f"Refunded {amount} by {shop}{test}: {what}{ref}.", f"Refunded {amount} by {shop}{test}{ref}.",
                f"Refunded {amount}{test}{ref}."]
    if kind.endswith(".reminder"):
        return [f"Reminder: pay {amount} {url} to {shop}{test} for {what}", f"Reminder: pay {amount} {url} "
                f"to {shop}{test}", f"Reminder: pay {amount} {url}{test}"]
    return [f"Pay {amount} {url} to {shop}{test} for {what}", f"Pay {amount} {url} to {shop}{test}",
            f"Pay {amount} {url}{test}"]


def sms_text(kind: str, facts: AlertFacts) -> str:
    """The first candidate that fits one segment; else the shortest (sent in several, or as UCS-2)."""
    texts = [" ".join(t.split()) for t in candidates(kind, facts)]
    for text in texts:
        if segments(text) == 1:
            return text
    gsm = [t for t in texts if septets(t) is not None]
    return gsm[-1] if gsm else texts[-1]
