"""The email sender: one outbox row -> one message, over SMTP with aiosmtplib, or into .eml files.

Delivered as a whole row (core.webhooks.RowDeliverer), because an email needs the facts (the shop, its
colour, the QR code), not only the chat Reply. A 5xx from the SMTP server (a hard bounce: 550 no such
mailbox) is Permanent: the outbox marks the address unreachable and tells the seller; a 4xx or a
connection failure is Transient and retried. A customer who unsubscribed is never sent to again
(Dropped). Without `[email] host`, messages are written to `paylinks-mail/` beside the database.
"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from adapters.email.compose import Sender, compose
from core.contacts import Contacts
from core.db import Database
from core.models import Merchant, OutboxMessage
from core.outbox_texts import AlertFacts
from core.ports import Dropped, MessageRef, Permanent, Reply, Transient
from core.sql import table

log = logging.getLogger("paylinks.email")

PLATFORM = "email"
MERCHANTS = table(Merchant)


class EmailSender:
    platform = PLATFORM

    def __init__(
        self, db: Database, *, contacts: Contacts, public_base_url: str, sender: Sender, host: str = "",
        port: int = 587, username: str = "", password: str = "", security: str = "starttls",
        outbox_dir: Path | None = None, timeout_s: float = 20.0,
    ) -> None:
        self.db = db
        self.contacts = contacts
        self.public_base_url = public_base_url.rstrip("/")
        self.sender = sender
        self.host, self.port, self.username, self.password = host, port, username, password
        self.security = security
        self.outbox_dir = outbox_dir
        self.timeout_s = timeout_s

    async def send(self, address: str, reply: Reply) -> MessageRef:
        raise Dropped("email is sent from outbox rows with their facts, not from a chat reply")

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        raise Dropped("a sent email cannot be edited")

    async def close(self) -> None:
        return None

    async def deliver(self, row: OutboxMessage) -> MessageRef:
        facts_data = row.payload.get("facts")
        if not facts_data or not row.merchant_id:
            raise Dropped("nothing to say in an email")
        facts = AlertFacts.from_dict(facts_data)
        contact = await self.contacts.token_for(row.merchant_id, PLATFORM, row.address)
        if contact.opted_out_at is not None:
            raise Dropped("the customer unsubscribed from this shop's emails")
        async with self.db.read() as conn:
            merchant = (await conn.execute(select(MERCHANTS.c.brand_color)
                                           .where(MERCHANTS.c.id == row.merchant_id))).first()
        from adapters.qr import render_qr  # here, like aiosmtplib: commands build this sender, few send

        qr = await render_qr(facts.url, "png", 6) if facts.url else None
        message = compose(kind=row.kind, facts=facts, to=row.address, sender=self.sender,
                          brand_color=merchant.brand_color if merchant else None,
                          unsubscribe_url=f"{self.public_base_url}/u/{contact.token}", qr_png=qr,
                          language=str(row.payload.get("language") or "") or None)
        message_id = str(message["Message-ID"])
        if self.host:
            await self._smtp(message)
        else:
            path = await asyncio.to_thread(self._write_file, message, row)
            log.info("email kept as a file (no [email] host) path=%s", path)
        return MessageRef(PLATFORM, row.address, message_id)

    async def _smtp(self, message: EmailMessage) -> None:
        import aiosmtplib

        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, username=self.username or None,
                password=self.password or None, use_tls=self.security == "tls",
                start_tls=True if self.security == "starttls" else False, timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            worst = max(exc.recipients, key=lambda r: r.code)
            raise _classified(worst.code, worst.message) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _classified(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise Transient(f"SMTP server unreachable ({type(exc).__name__})") from None

    def _write_file(self, message: EmailMessage, row: OutboxMessage) -> Path:
        assert self.outbox_dir is not None
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        path = self.outbox_dir / f"{row.created_at:%Y%m%d-%H%M%S}-{row.id}-{row.kind}.eml"
        path.write_bytes(bytes(message))
        return path


def _classified(code: int, text: str) -> Exception:
    # The server's words, short: "550 5.1.1 no such user". Never a password (SMTP never echoes one).
    said = f"{code} {text}".strip()[:200]
    if 500 <= code < 600:
        return Permanent(f"the address bounced ({said})")
    return Transient(f"the mail server said {said}")
