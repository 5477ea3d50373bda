"""Pure rendering: a platform-neutral Reply → the keyword arguments of Bot.send_message / edit_message_text.

Reply.text uses the tiny markup of core.markup (**bold**, `code`, plain URLs); Telegram gets it as HTML,
which only needs <, > and & escaped (MarkdownV2 needs 18 characters escaped, and payment descriptions
are full of them).
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode, urlsplit

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode

from adapters.qr import qr_code
from core import markup
from core.ports import Reply

# Telegram's limits: 4096 characters of message text, 1024 of photo caption (after entity parsing).
MAX_TEXT = 4096
MAX_CAPTION = 1024
SHARE_LABEL = "↗ Share link"
QR_SCALE = 8  # pixels per module, as the pay page's qr.png (one cache entry serves both)



def to_html(text: str) -> str:
    """**bold** → <b>, `code` → <code>, everything else escaped (see core.markup); for parse_mode="HTML"."""
    out: list[str] = []
    for bold, runs in markup.grouped(markup.parse(text)):
        inner = "".join(
            f"<code>{html.escape(r.text, quote=False)}</code>" if r.code else html.escape(r.text, quote=False)
            for r in runs
        )
        out.append(f"<b>{inner}</b>" if bold else inner)
    return "".join(out)


def _clip(text: str, limit: int) -> str:
    # Clipped before conversion so a tag is never cut in half; markup only makes the visible text shorter
    # (an unpaired marker left by the cut stays literal).
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pay_button(reply: Reply) -> tuple[str, str] | None:
    """(label, url) of the /charge answer's Pay button, when there is one."""
    for button in reply.buttons:
        if is_pay_url(button.url):  # by where it goes: its label is in the seller's language
            return button.label, button.url
    return None


def is_pay_url(url: str) -> bool:
    """A link's pay page (/p/{id}), the one URL a Pay button opens."""
    return bool(url) and "/p/" in urlsplit(url).path


def share_url(url: str, text: str = "") -> str:
    """Telegram's share dialog (pick a chat, send the link there)."""
    query = {"url": url}
    if text:
        query["text"] = text
    return "https://t.me/share/url?" + urlencode(query)


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """One row per button; a reply with a Pay button also gets a share button (to forward the link)."""
    if not reply.buttons:
        return None
    rows = [
        [InlineKeyboardButton(button.label, callback_data=button.action) if button.action
         else InlineKeyboardButton(button.label, url=button.url)]
        for button in reply.buttons
    ]
    pay = pay_button(reply)
    if pay is not None:
        label, url = pay
        rows.append([InlineKeyboardButton(SHARE_LABEL, url=share_url(url, label))])
    return InlineKeyboardMarkup(rows)


def render(reply: Reply) -> dict[str, Any]:
    """kwargs for Bot.send_message (add chat_id) and Bot.edit_message_text (add chat_id + message_id).

    Without buttons, reply_markup is None: an edit then removes the old keyboard (the paid link message
    loses its Pay button).
    """
    return {
        "text": to_html(_clip(reply.text, MAX_TEXT)),
        "parse_mode": ParseMode.HTML,
        "reply_markup": keyboard(reply),
        # The pay URL is in the text; a preview card of the pay page would only push the buttons down.
        "link_preview_options": LinkPreviewOptions(is_disabled=True),
    }


def render_plain(reply: Reply) -> dict[str, Any]:
    """The same message without markup or buttons: the fallback when Telegram refuses the rich one."""
    text = markup.to_plain(_clip(reply.text, MAX_TEXT))
    urls = [b.url for b in reply.buttons if b.url and b.url not in text]
    if urls:
        text = _clip("\n".join([text, *urls]), MAX_TEXT)
    return {"text": text, "link_preview_options": LinkPreviewOptions(is_disabled=True)}


def qr_photo(reply: Reply) -> tuple[bytes, str] | None:
    """(PNG, caption) for the QR of the reply's pay link, or None when it has none. Renders (once per
    URL, cached): call it from a worker thread on the event loop."""
    pay = pay_button(reply)
    if pay is None:
        return None
    caption = f"Scan to {pay[0][0].lower()}{pay[0][1:]}"
    return qr_code(pay[1], "png", QR_SCALE), _clip(caption, MAX_CAPTION)
