"""Text that came from outside: what may be stored of it."""

from __future__ import annotations

import re

# C0 controls and DEL, except tab and newline, which people do type. NUL in particular cannot be stored
# in PostgreSQL text at all.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def has_controls(text: str) -> bool:
    return _CONTROLS.search(text) is not None


def without_controls(text: str) -> str:
    return _CONTROLS.sub("", text)


# Bidi embedding/override controls (U+202A–U+202E) and isolates (U+2066–U+2069): inside someone's text
# they could reorder what we write around it (an override turning "00.52$" into "$25.00").
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_ISOLATES = re.compile("[\u2066-\u2069]")
FSI, PDI = "\u2068", "\u2069"


def has_bidi_controls(text: str) -> bool:
    return _BIDI_CONTROLS.search(text) is not None


def isolate(text: str) -> str:
    """User text to echo in a chat: wrapped in FSI…PDI when it holds bidi controls, so they stay inside it.

    A PDI ends every embedding and override opened after its FSI (Unicode UAX #9), so whatever the text
    holds cannot flip the amount or words next to it. Isolates inside are dropped first (a stray PDI
    would close ours early); text without controls is returned as it is.
    """
    if not has_bidi_controls(text):
        return text
    return f"{FSI}{_ISOLATES.sub('', text)}{PDI}"
