"""Text that came from outside: what may be stored of it."""

from __future__ import annotations

import re
import unicodedata

# C0 controls and DEL, except tab and newline, which people do type. NUL in particular cannot be stored
# in PostgreSQL text at all.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def has_controls(text: str) -> bool:
    return _CONTROLS.search(text) is not None


def without_controls(text: str) -> str:
    return _CONTROLS.sub("", text)


# Bidirectional embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069): invisible, and
# able to reorder the text around them ("pay cake\u202e001$" reads as "pay cake$100"). Not the plain
# marks U+200E/U+200F, which only nudge neutral characters and are typed in right-to-left writing.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_ISOLATES = re.compile("[\u2066-\u2069]")
FSI, PDI = "\u2068", "\u2069"
BIDI_CONTROLS_TEXT = "invisible direction controls (U+202A to U+202E, U+2066 to U+2069)"


def has_bidi_controls(text: str) -> bool:
    return _BIDI_CONTROLS.search(text) is not None


def without_bidi_controls(text: str) -> str:
    return _BIDI_CONTROLS.sub("", text)


# Bidi classes that can move the text around them: right-to-left letters, Arabic numbers, the controls.
_DIRECTIONAL = frozenset({"R", "AL", "AN", "LRE", "LRO", "RLE", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})


def isolate(text: str) -> str:
    """Someone's text to show in plain text (a chat reply, a page's <title>, where <bdi> cannot go): wrapped
    in FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE when it could reorder what stands around it
    (right-to-left letters, direction controls); other text comes back as it is.

    A PDI ends every embedding and override opened after its FSI (Unicode UAX #9), so whatever the text
    holds cannot flip the amount or words next to it. Isolates inside are dropped first (a stray PDI
    would close ours early).
    """
    if text.isascii() or not any(unicodedata.bidirectional(char) in _DIRECTIONAL for char in text):
        return text
    return f"{FSI}{_ISOLATES.sub('', text)}{PDI}"
