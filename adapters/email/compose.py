"""Email messages from an outbox row's facts: multipart (plain text and HTML with the shop's colour, the
link as a button and its QR code inline), with RFC 8058 one-click List-Unsubscribe headers."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from core import i18n
from core.outbox_texts import AlertFacts

if TYPE_CHECKING:
    from jinja2 import Environment

DEFAULT_BRAND = "#4f46e5"
TEMPLATES = Path(__file__).parent / "templates"


@cache
def _environment() -> Environment:
    # Jinja2 loads with the first email: every command builds the email sender, few send anything.
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      extensions=["jinja2.ext.i18n"])
    gettext, ngettext = i18n.plain_callables("en")
    env.install_gettext_callables(gettext=gettext, ngettext=ngettext,  # type: ignore[attr-defined]  # jinja2.ext.i18n
                                  newstyle=True)
    return env


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


def wording(kind: str, facts: AlertFacts, language: str | None = None) -> Wording:
    """Subject, headline and footer in the reader's language; times on the shop's clock with its zone."""
    t = i18n.tr(language or facts.shop_language)
    shop = facts.merchant_name or t.gettext("A shop")
    values = {"amount": facts.amount_text, "shop": shop, "description": facts.description}
    if kind.endswith(".receipt"):
        return Wording(t.gettext("Receipt: %(amount)s to %(shop)s", **values),
                       t.gettext("✅ Payment received, thank you!"),
                       t.gettext("Paid %(when)s.", when=facts.clock(t.language).when(facts.at)), with_link=False)
    if kind.endswith(".refund"):
        return Wording(t.gettext("Refund: %(amount)s from %(shop)s", **values),
                       t.gettext("↩️ %(shop)s refunded your payment.", **values),
                       t.gettext("It can take a few days to show on your statement."), with_link=False)
    if kind.endswith(".reminder"):
        return Wording(t.gettext("Reminder: %(amount)s for %(description)s", **values),
                       t.gettext("A reminder from %(shop)s: this payment is still open.", **values), "",
                       with_link=True)
    return Wording(t.gettext("%(shop)s asks you to pay %(amount)s", **values),
                   t.gettext("%(shop)s asks you to pay", **values), "", with_link=True)


def compose(
    *, kind: str, facts: AlertFacts, to: str, sender: Sender, brand_color: str | None, unsubscribe_url: str,
    qr_png: bytes | None, language: str | None = None,
) -> EmailMessage:
    t = i18n.tr(language or facts.shop_language)
    words = wording(kind, facts, t.language)
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
        lines.append(t.gettext("ref %(reference)s", reference=facts.reference))
    if url:
        lines += ["", t.gettext("Pay here: %(url)s", url=url)]
    if words.footer:
        lines += ["", words.footer]
    lines += ["", t.gettext("Unsubscribe from %(shop)s's emails: %(url)s", shop=shop, url=unsubscribe_url)]
    message.set_content("\n".join(lines) + "\n")
    from adapters.jinja_i18n import jinja_callables  # with Jinja2, which this module loads on first use

    qr_cid = make_msgid(domain="qr.paylinks")[1:-1] if url and qr_png else None
    html = _environment().get_template("message.html").render(
        subject=words.subject, shop=shop, brand_color=brand_color or DEFAULT_BRAND, headline=words.headline,
        amount=facts.amount_text, description=facts.description, reference=facts.reference, url=url,
        qr_cid=qr_cid, footer=words.footer, unsubscribe_url=unsubscribe_url, lang=t.html_lang,
        **jinja_callables(t.language),
    )
    message.add_alternative(html, subtype="html")
    if qr_cid and qr_png:
        html_part = message.get_body(preferencelist=("html",))
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(qr_png, maintype="image", subtype="png", cid=f"<{qr_cid}>", filename="pay-qr.png")
    return message
