"""The Reply markup and its conversion for each platform, including escaping of user text."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.markup import Run, escape, parse, slack_escape, to_plain, to_slack_mrkdwn, to_telegram_html, to_whatsapp


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**S$25.00** — 2 cakes", "<b>S$25.00</b> — 2 cakes"),
        ("`<b>` & **<i>**", "<code>&lt;b&gt;</code> &amp; <b>&lt;i&gt;</b>"),
        ("**Ref `INV & 1`**", "<b>Ref <code>INV &amp; 1</code></b>"),
        ("https://pay.example/p/abc?x=1&y=2", "https://pay.example/p/abc?x=1&amp;y=2"),
    ],
)
def test_telegram_html(text: str, expected: str) -> None:
    assert to_telegram_html(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**S$25.00** — cake", "*S$25.00* — cake"),
        ("ping <!channel> & <@U123>", "ping &lt;!channel&gt; &amp; &lt;@U123&gt;"),
        ("** padded **", " *padded* "),
        ("`a`b`", "`a`b`"),
    ],
)
def test_slack_mrkdwn(text: str, expected: str) -> None:
    assert to_slack_mrkdwn(text) == expected


def test_slack_code_never_breaks_on_a_backtick() -> None:
    assert to_slack_mrkdwn("`" + escape("a`b") + "`") == "`aˋb`"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**S$25.00** — cake", "*S$25.00* — cake"),
        ("ref `INV-1`", "ref ```INV-1```"),
        ("<b>&", "<b>&"),  # WhatsApp shows text as written
    ],
)
def test_whatsapp(text: str, expected: str) -> None:
    assert to_whatsapp(text) == expected


@given(st.text())
def test_escape_makes_any_text_literal(text: str) -> None:
    escaped = escape(text)
    assert to_plain(escaped) == text
    assert to_plain(f"**{escaped}**") == text
    assert to_plain(f"`{escaped}`") == text


@given(st.text())
def test_any_text_is_valid_markup_and_telegram_html_is_safe(text: str) -> None:
    rendered = to_telegram_html(text)
    # Only our own tags survive; everything else is escaped, and the visible text is the plain text.
    assert set(re.findall(r"</?[a-z]+>", rendered)) <= {"<b>", "</b>", "<code>", "</code>"}
    assert html.unescape(re.sub(r"</?(?:b|code)>", "", rendered)) == to_plain(text)


@given(st.text())
def test_slack_output_has_no_raw_control_characters(text: str) -> None:
    rendered = to_slack_mrkdwn(escape(text))
    assert "<" not in rendered and ">" not in rendered
    assert rendered == slack_escape(text)
