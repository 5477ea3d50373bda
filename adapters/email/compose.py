"""Email messages from an outbox row's facts: multipart (plain text and HTML with the shop's colour, the
link as a button and its QR code inline), with RFC 8058 one-click List-Unsubscribe headers."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from core.outbox_texts import AlertFacts, clock_time

if TYPE_CHECKING:
    from jinja2 import Environment

DEFAULT_BRAND = "#4f46e5"
TEMPLATES = Path(__file__).parent / "templates"


@cache
def _environment() -> Environment:
    # Jinja2 loads with the first email: every command builds the email sender, few send anything.
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


@dataclass(frozen=True, slots=True)
class Sender:
    from_address: str
    reply_to: str = ""


@dataclass(frozen=True, slots=True)
class Wording:
    subject: str
    headline: str
    footer: str
    with_link: bool


def wording(kind: str, facts: AlertFacts) -> Wording:
    shop = facts.merchant_name or "A shop"
    if kind.endswith(".receipt"):
        return Wording(f"Receipt: {facts.amount_text} to {shop}", "✅ Payment received, thank you!",
                       f"Paid at {clock_time(facts.at)}.", with_link=False)
    if kind.endswith(".refund"):
        return Wording(f"Refund: {facts.amount_text} from {shop}", f"↩️ {shop} refunded your payment.",
                       "It can take a few days to show on your statement.", with_link=False)
    if kind.endswith(".reminder"):
        return Wording(f"Reminder: {facts.amount_text} for {facts.description}",
                       f"A reminder from {shop}: this payment is still open.", "", with_link=True)
    return Wording(f"{shop} asks you to pay {facts.amount_text}", f"{shop} asks you to pay", "", with_link=True)


def compose(
    *, kind: str, facts: AlertFacts, to: str, sender: Sender, brand_color: str | None, unsubscribe_url: str,
    qr_png: bytes | None,
) -> EmailMessage:
    words = wording(kind, facts)
    shop = facts.merchant_name or "paylinks"
    url = facts.url if words.with_link else None
    message = EmailMessage()
    message["Subject"] = words.subject
    message["From"] = formataddr((shop, sender.from_address))
    message["To"] = to
    if sender.reply_to:
        message["Reply-To"] = sender.reply_to
    message["Date"] = format_datetime(facts.at)
    message["Message-ID"] = make_msgid(domain=sender.from_address.rpartition("@")[2] or "paylinks.local")
    # RFC 8058: a mail client's "unsubscribe" button POSTs List-Unsubscribe=One-Click to this URL.
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    lines = [words.headline, "", f"{facts.amount_text} — {facts.description}"]
    if facts.reference:
        lines.append(f"ref {facts.reference}")
    if url:
        lines += ["", f"Pay here: {url}"]
    if words.footer:
        lines += ["", words.footer]
    lines += ["", f"Unsubscribe from {shop}'s emails: {unsubscribe_url}"]
    message.set_content("\n".join(lines) + "\n")
    qr_cid = make_msgid(domain="qr.paylinks")[1:-1] if url and qr_png else None
    html = _environment().get_template("message.html").render(
        subject=words.subject, shop=shop, brand_color=brand_color or DEFAULT_BRAND, headline=words.headline,
        amount=facts.amount_text, description=facts.description, reference=facts.reference, url=url,
        qr_cid=qr_cid, footer=words.footer, unsubscribe_url=unsubscribe_url,
    )
    message.add_alternative(html, subtype="html")
    if qr_cid and qr_png:
        html_part = message.get_body(preferencelist=("html",))
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(qr_png, maintype="image", subtype="png", cid=f"<{qr_cid}>", filename="pay-qr.png")
    return message
