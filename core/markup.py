"""The tiny markup of Reply.text, and its conversion for each platform.

Reply.text may contain exactly three things besides plain text:

- ``**bold**``
- ```code``` (a single backtick on each side; inside it `**` is literal)
- backslash escapes ``\\*``, ``\\``` and ``\\\\`` for a literal star, backtick or backslash

URLs are written plainly (every platform links them itself). Unpaired markers stay literal, so any
string is valid markup; text that came from a user (a description, a reference) goes through `escape()`
first so it can never open a bold or code span. Each converter escapes what its platform needs:
Telegram HTML (&, <, >), Slack mrkdwn (&, <, > — which also stops `<!channel>` pings), WhatsApp (no
escape syntax exists; markers are only added around our own spans).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.text import isolate

_ESCAPABLE = "*`\\"


@dataclass(frozen=True, slots=True)
class Run:
    """A stretch of text with one style."""

    text: str
    bold: bool = False
    code: bool = False


def escape(text: str) -> str:
    """Make arbitrary text literal inside markup: `to_plain(escape(s)) == s` for every s."""
    return "".join(f"\\{ch}" if ch in _ESCAPABLE else ch for ch in text)


def user(text: str) -> str:
    """Someone's text (a description, a shop name) to echo in a reply: escaped and bidi-isolated."""
    return escape(isolate(text))


def _tokens(text: str) -> list[tuple[str, str]]:
    """("lit", char) for literal characters, ("bold", "**") and ("tick", "`") for markers."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            out.append(("lit", text[i + 1]))
            i += 2
        elif ch == "*" and text.startswith("**", i):
            out.append(("bold", "**"))
            i += 2
        elif ch == "`":
            out.append(("tick", "`"))
            i += 1
        else:
            out.append(("lit", ch))
            i += 1
    return out


def parse(text: str) -> list[Run]:
    """Markup to styled runs. Code spans are found first; bold pairs are matched outside them."""
    tokens = _tokens(text)
    # 1. code spans: a tick pairs with the next tick; a lone last tick is literal.
    pieces: list[tuple[str, str]] = []  # ("text"|"code"|"bold", content)
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "tick":
            end = next((j for j in range(i + 1, len(tokens)) if tokens[j][0] == "tick"), None)
            if end is not None:
                pieces.append(("code", "".join(v for _, v in tokens[i + 1:end])))
                i = end + 1
                continue
            pieces.append(("text", value))
        elif kind == "bold":
            pieces.append(("bold", value))
        else:
            pieces.append(("text", value))
        i += 1
    # 2. bold markers pair up in order; an odd last one is literal.
    markers = [n for n, (kind, _) in enumerate(pieces) if kind == "bold"]
    literal_marker = markers[-1] if len(markers) % 2 else None
    runs: list[Run] = []
    bold = False
    for n, (kind, value) in enumerate(pieces):
        if kind == "bold" and n != literal_marker:
            bold = not bold
            continue
        code = kind == "code"
        if runs and runs[-1].bold == bold and runs[-1].code == code and not code:
            runs[-1] = Run(runs[-1].text + value, bold, code)
        else:
            runs.append(Run(value, bold, code))
    return [r for r in runs if r.text]


def to_plain(text: str) -> str:
    return "".join(run.text for run in parse(text))


def grouped(runs: list[Run]) -> list[tuple[bool, list[Run]]]:
    groups: list[tuple[bool, list[Run]]] = []
    for run in runs:
        if groups and groups[-1][0] == run.bold:
            groups[-1][1].append(run)
        else:
            groups.append((run.bold, [run]))
    return groups


def wrap_bold(inner: str, marker_open: str, marker_close: str) -> str:
    # Markdown-like bold (Slack, WhatsApp) only works when the markers touch non-space characters.
    stripped = inner.strip()
    if not stripped:
        return inner
    lead = inner[: len(inner) - len(inner.lstrip())]
    trail = inner[len(inner.rstrip()):]
    return f"{lead}{marker_open}{stripped}{marker_close}{trail}"
