"""Helpers for the pay page, checkout and webhook tests: a tiny HTML tree, links, signed webhooks."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from aiohttp import ClientResponse
from sqlalchemy import update

from adapters.payments import signing
from adapters.payments.sandbox import SIGNATURE_HEADER
from bots.services import Services
from core.links import LinkDraft
from core.models import PaymentLink
from core.money import Money
from core.ports import PaymentEvent
from core.sql import table

WEBHOOK_SECRET = "whsec_test_secret"  # tests/conftest.make_settings
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# ---------------------------------------------------------------- HTML


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        parts: list[str] = []
        for child in self.children:
            parts.append(child if isinstance(child, str) else child.text())
        return " ".join(" ".join(parts).split())

    def walk(self) -> list[Node]:
        found: list[Node] = [self]
        for child in self.children:
            if isinstance(child, Node):
                found.extend(child.walk())
        return found


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


class Page:
    """A parsed HTML page with the questions the tests ask of it (roughly what a screen reader sees)."""

    def __init__(self, html: str) -> None:
        builder = _TreeBuilder()
        builder.feed(html)
        self.html = html
        self.nodes = builder.root.walk()

    def all(self, tag: str) -> list[Node]:
        return [n for n in self.nodes if n.tag == tag]

    def one(self, tag: str) -> Node:
        found = self.all(tag)
        assert len(found) == 1, f"expected one <{tag}>, found {len(found)}"
        return found[0]

    def by_id(self, element_id: str) -> Node:
        found = [n for n in self.nodes if n.attrs.get("id") == element_id]
        assert len(found) == 1, f"expected one element with id={element_id!r}, found {len(found)}"
        return found[0]

    @property
    def lang(self) -> str:
        return self.one("html").attrs.get("lang", "")

    @property
    def title(self) -> str:
        return self.one("title").text()

    @property
    def h1(self) -> str:
        return self.one("h1").text()

    def meta(self, key: str) -> str:
        """<meta property=key> or <meta name=key> content."""
        found = [n.attrs.get("content", "") for n in self.all("meta")
                 if n.attrs.get("property") == key or n.attrs.get("name") == key]
        assert len(found) == 1, f"expected one meta {key!r}, found {found}"
        return found[0]

    def button_names(self) -> list[str]:
        """Accessible names of the buttons: aria-label, else the text content."""
        names = [n.attrs.get("aria-label") or n.text() for n in self.all("button")]
        names += [n.attrs.get("aria-label") or n.attrs.get("value", "")
                  for n in self.all("input") if n.attrs.get("type") in ("submit", "button")]
        return names

    def labelled(self, label_text: str) -> Node:
        """The form control whose <label for=…> text is label_text."""
        labels = [n for n in self.all("label") if n.text() == label_text]
        assert len(labels) == 1, f"expected one label {label_text!r}, found {len(labels)}"
        return self.by_id(labels[0].attrs["for"])

    def unlabelled_controls(self) -> list[Node]:
        label_for = {n.attrs.get("for") for n in self.all("label")}
        controls = [n for n in self.nodes if n.tag in ("input", "select", "textarea")
                    and n.attrs.get("type") not in ("hidden", "submit", "button")]
        return [c for c in controls if c.attrs.get("id") not in label_for and not c.attrs.get("aria-label")]

    def forms(self) -> list[Node]:
        return self.all("form")

    def text(self) -> str:
        return self.one("body").text()


async def page_of(response: ClientResponse) -> Page:
    assert response.content_type == "text/html"
    return Page(await response.text())


# ---------------------------------------------------------------- data


async def make_link(
    services: Services,
    *,
    minor: int = 2500,
    currency: str = "SGD",
    description: str = "Chocolate cake",
    merchant_name: str = "Cake Shop",
    locale: str = "en_SG",
    reference: str | None = None,
    merchant_id: str | None = None,
    expires_at: datetime | None = None,
) -> PaymentLink:
    if merchant_id is None:
        merchant_id = (await services.merchants.create(merchant_name, currency=currency, locale=locale)).id
    link, _ = await services.links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(minor, currency), description=description, reference=reference,
        expires_at=expires_at,
    ))
    return link


async def make_overdue(services: Services, link_id: str, at: datetime) -> None:
    """Move the expiry into the past without running the sweeper (the stored status stays active)."""
    async with services.db.write() as conn:
        await conn.execute(update(table(PaymentLink)).where(table(PaymentLink).c.id == link_id)
                           .values(expires_at=at))


def payment_event(link: PaymentLink, n: int, *, minor: int | None = None) -> PaymentEvent:
    return PaymentEvent(provider="sandbox", event_id=f"evt_{n}", kind="payment.succeeded", link_id=link.id,
                        provider_ref=f"ch_{n}", amount_minor=link.amount_minor if minor is None else minor,
                        currency=link.currency)


def webhook_body(link: PaymentLink, n: int, *, minor: int | None = None, currency: str | None = None,
                 kind: str = "payment.succeeded", **extra: Any) -> bytes:
    return json.dumps({
        "id": f"evt_{n}",
        "type": kind,
        "created": int(time.time()),
        "data": {
            "charge_id": f"ch_{n}",
            "checkout": f"cs_{n}",
            "link_id": link.id,
            "amount_minor": link.amount_minor if minor is None else minor,
            "currency": currency or link.currency,
            "payer_name": "Ann Tan",
            **extra,
        },
    }, separators=(",", ":")).encode()


def signed(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {SIGNATURE_HEADER: signing.sign_header(secret, ts, body), "Content-Type": "application/json"}
