"""The Reply markup (platform-neutral) and escaping of user text; each platform's conversion is tested
beside its adapter (test_telegram_render, test_slack_parse_render, whatsapp/test_whatsapp)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.markup import Run, escape, parse, to_plain


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("plain", [Run("plain")]),
        ("**S$25.00** — cake", [Run("S$25.00", bold=True), Run(" — cake")]),
        ("ref `INV-1`", [Run("ref "), Run("INV-1", code=True)]),
        ("**Ref `X`**", [Run("Ref ", bold=True), Run("X", bold=True, code=True)]),
        ("2 ** 3", [Run("2 ** 3")]),  # an unpaired marker is literal
        ("a `b", [Run("a `b")]),
        ("`**not bold**`", [Run("**not bold**", code=True)]),
        (r"\*\*x\*\*", [Run("**x**")]),
        (r"back\\slash", [Run("back\\slash")]),
        (r"keep \n as is", [Run(r"keep \n as is")]),
    ],
)
def test_parse(text: str, runs: list[Run]) -> None:
    assert parse(text) == runs


@given(st.text())
def test_escape_makes_any_text_literal(text: str) -> None:
    escaped = escape(text)
    assert to_plain(escaped) == text
    assert to_plain(f"**{escaped}**") == text
    assert to_plain(f"`{escaped}`") == text
