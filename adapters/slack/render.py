"""Pure rendering of core values as Slack Block Kit payloads (no I/O, no SDK objects).

Everything a user typed (descriptions, names) is escaped (&, <, >) before it reaches Slack mrkdwn, so a
description such as "<!channel>" can never ping a channel or forge a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core import i18n
from core.i18n import N_
from core.markup import grouped, parse, to_plain, wrap_bold
from core.models import LinkStatus
from core.ports import Button, Reply
from core.reports import STATUS_MARK, STATUS_WORD

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
SECTION_TEXT_MAX = 3000
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3000
ACTIONS_MAX = 25
BLOCKS_MAX = 50
HOME_BLOCKS_MAX = 100
FALLBACK_TEXT_MAX = 3000



def escape(text: str) -> str:
    """Slack's three control characters (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """The core's markup (**bold**, `code`, escapes, plain URLs) as Slack mrkdwn, control characters escaped."""
    out: list[str] = []
    for bold, runs in grouped(parse(text)):
        # Slack has no escape for a backtick inside code; a look-alike keeps the span intact.
        inner = "".join(f"`{escape(r.text).replace('`', 'ˋ')}`" if r.code else escape(r.text) for r in runs)
        out.append(wrap_bold(inner, "*", "*") if bold else inner)
    return "".join(out)


def plain(text: str) -> str:
    """Notification fallback text: markup removed, control characters escaped, bounded."""
    return _truncate(escape(to_plain(text)), FALLBACK_TEXT_MAX)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chunks(text: str, limit: int) -> list[str]:
    """Split at line breaks where possible so no section exceeds Slack's limit."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current or not chunks:
        chunks.append(current)
    return chunks


def button(label: str, url: str, *, action_id: str, primary: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": _truncate(label, BUTTON_TEXT_MAX), "emoji": True},
        "url": url[:BUTTON_URL_MAX],
        "action_id": action_id,
    }
    if primary:
        element["style"] = "primary"
    return element


ANSWER_ACTION_PREFIX = "paylinks_answer_"
BUTTON_VALUE_MAX = 2000


def answer_button(label: str, value: str, *, action_id: str) -> dict[str, Any]:
    """A button whose click comes back as a block action carrying `value` (Reply Button.action)."""
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": _truncate(label, BUTTON_TEXT_MAX), "emoji": True},
        "value": value[:BUTTON_VALUE_MAX],
        "action_id": action_id,
    }


def _buttons_block(buttons: Sequence[Button]) -> dict[str, Any] | None:
    usable = [b for b in buttons if (b.action or (b.url and len(b.url) <= BUTTON_URL_MAX))][:ACTIONS_MAX]
    if not usable:
        return None
    elements = [
        answer_button(b.label, b.action, action_id=f"{ANSWER_ACTION_PREFIX}{i}") if b.action
        else button(b.label, b.url, action_id=f"open_url_{i}", primary="/p/" in urlsplit(b.url).path)
        for i, b in enumerate(usable)
    ]
    return {"type": "actions", "block_id": "paylinks_buttons", "elements": elements}


def reply_blocks(reply: Reply) -> list[dict[str, Any]]:
    """A Reply as blocks: its text in sections, its buttons (the "Pay" one highlighted) underneath."""
    text = mrkdwn(reply.text)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in _chunks(text, SECTION_TEXT_MAX)
    ]
    actions = _buttons_block(reply.buttons)
    if actions is not None:
        blocks.append(actions)
    if len(blocks) > BLOCKS_MAX:
        blocks = [*blocks[: BLOCKS_MAX - 1], blocks[-1]]
    return blocks


def message_payload(reply: Reply) -> dict[str, Any]:
    """Arguments for chat.postMessage / chat.update / response_url: blocks plus the notification text."""
    return {"text": plain(reply.text) or "paylinks", "blocks": reply_blocks(reply)}


def not_in_channel_reply(reply: Reply, language: str | None = None) -> Reply:
    """What the seller sees (only them) when the bot may not post the link message in this channel."""
    note = i18n.tr(language).gettext(
        "I can't post in this channel yet, so only you can see this link. "
        "To share links here, invite me with `/invite @paylinks` and run the command again — "
        "or copy the link below.")
    return Reply(text=f"{note}\n\n{reply.text}", buttons=reply.buttons, link_id=reply.link_id)


# ---------------------------------------------------------------- App Home and unfurls


@dataclass(frozen=True, slots=True)
class LinkSummary:
    """One link as the Home tab and unfurls show it; amounts already formatted in the merchant's locale."""

    link_id: str
    url: str
    amount: str
    description: str
    status: str
    expires: str = ""  # e.g. "expires 3 Dec 2026, 14:00 UTC" (active links only)
    reference: str | None = None
    language: str = "en"  # what unfurl() writes in (the shop's: everyone in the channel reads it)


@dataclass(frozen=True, slots=True)
class HomeData:
    merchant_name: str | None  # None: this person has no shop yet
    recent: Sequence[LinkSummary] = ()
    totals_today: Sequence[str] = ()  # formatted per currency, e.g. ("S$300.00", "Rp 150.000,00")
    paid_count_today: int = 0
    day_label: str = N_("Today")  # a catalog msgid
    extra_note: str | None = None
    language: str = "en"  # the viewer's (core.i18n catalog): home_view is rendered in it


def _status_mark(status: str) -> str:
    """"🕓 Open": in the language being spoken (i18n.current(); English outside one, as unfurls are)."""
    try:
        found = LinkStatus(status)
    except ValueError:
        return status
    return f"{STATUS_MARK[found]} {i18n.current().gettext(STATUS_WORD[found])}"


def _link_line(link: LinkSummary) -> str:
    t = i18n.current()
    ref = " · " + t.gettext("ref %(reference)s", reference=f"`{escape(link.reference)}`") if link.reference else ""
    expiry = f" · {escape(link.expires)}" if link.status == "active" and link.expires else ""
    opener = escape(t.gettext("open")).replace("|", "¦")
    return (
        f"*{escape(link.amount)}* — {escape(_truncate(link.description, 200))}\n"
        f"{_status_mark(link.status)}{expiry}{ref} · <{link.url}|{opener}>"
    )


def home_view(data: HomeData) -> dict[str, Any]:
    """The Home tab (views.publish `view`), in the language being spoken (i18n.speaking(data.language))."""
    t = i18n.current()
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "paylinks", "emoji": True}},
    ]
    if data.merchant_name is None:
        blocks.append({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": mrkdwn(t.gettext(
                    "Make a payment link from any channel: `/charge 25 birthday cake`.\n"
                    "Your workspace's shop is created with your first command; everyone here shares it.\n"
                    "`/paylinks help` lists everything I can do.")),
            },
        })
        return {"type": "home", "blocks": blocks}
    totals = ", ".join(escape(x) for x in data.totals_today) if data.totals_today else escape(t.gettext("nothing yet"))
    label = escape(t.gettext(data.day_label))
    blocks.append({
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": f"*{escape(data.merchant_name)}*\n" + t.ngettext(
                "%(label)s %(totals)s (%(count)s paid link)", "%(label)s %(totals)s (%(count)s paid links)",
                data.paid_count_today, label=f"*{label}:*", totals=totals),
        },
    })
    blocks.append({"type": "divider"})
    recent = escape(t.gettext("Your recent links"))
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{recent}*"}})
    if not data.recent:
        blocks.append({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": mrkdwn(t.gettext(
                "No links yet. Try `/charge 25 birthday cake` in a channel."))}],
        })
    for link in data.recent:
        if len(blocks) >= HOME_BLOCKS_MAX - 2:
            break
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _link_line(link)}})
    if data.extra_note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(data.extra_note)}]})
    return {"type": "home", "blocks": blocks}


def unfurl(link: LinkSummary) -> dict[str, Any]:
    """The attachment-style unfurl for one pay-page URL (chat.unfurl `unfurls[url]`), in `link.language`."""
    with i18n.speaking(link.language):
        return _unfurl(link)


def _unfurl(link: LinkSummary) -> dict[str, Any]:
    lines = [f"*{escape(link.amount)}* — {escape(_truncate(link.description, 300))}", _status_mark(link.status)]
    if link.status == "active" and link.expires:
        lines[-1] += f" · {escape(link.expires)}"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
    if link.status == "active":
        blocks.append({
            "type": "actions",
            "block_id": "paylinks_unfurl",
            "elements": [button(i18n.current().gettext("Pay %(amount)s", amount=link.amount), link.url,
                                action_id="open_url_0", primary=True)],
        })
    return {"blocks": blocks}

