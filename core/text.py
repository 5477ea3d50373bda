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
