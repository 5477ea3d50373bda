"""Customers' contacts per shop: the unsubscribe token every email carries, and the opt-out it records."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from core.clock import Clock, utcnow
from core.db import Database
from core.models import CustomerContact
from core.sql import insert_ignore, table

CONTACTS = table(CustomerContact)


@dataclass(frozen=True, slots=True)
class Contact:
    token: str
    merchant_id: str
    channel: str
    address: str
    opted_out_at: datetime | None


class Contacts:
    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def token_for(self, merchant_id: str, channel: str, address: str) -> Contact:
        """The contact's row (made on first use), with its unsubscribe token and opt-out."""
        where = (CONTACTS.c.merchant_id == merchant_id, CONTACTS.c.channel == channel, CONTACTS.c.address == address)
        async with self.db.read() as conn:
            row = (await conn.execute(select(CONTACTS).where(*where))).first()
        if row is None:
            async with self.db.write() as conn:
                await insert_ignore(conn, CONTACTS, {
                    "token": secrets.token_urlsafe(24), "merchant_id": merchant_id, "channel": channel,
                    "address": address, "created_at": self.clock(), "opted_out_at": None})
                row = (await conn.execute(select(CONTACTS).where(*where))).one()
        return Contact(row.token, row.merchant_id, row.channel, row.address, row.opted_out_at)

    async def by_token(self, token: str) -> Contact | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(CONTACTS).where(CONTACTS.c.token == token))).first()
        return Contact(row.token, row.merchant_id, row.channel, row.address, row.opted_out_at) if row else None

    async def opt_out(self, token: str) -> Contact | None:
        async with self.db.write() as conn:
            await conn.execute(update(CONTACTS).where(CONTACTS.c.token == token, CONTACTS.c.opted_out_at.is_(None))
                               .values(opted_out_at=self.clock()))
        return await self.by_token(token)

    async def opted_out(self, merchant_id: str, channel: str, address: str) -> bool:
        async with self.db.read() as conn:
            row = (await conn.execute(select(CONTACTS.c.opted_out_at).where(
                CONTACTS.c.merchant_id == merchant_id, CONTACTS.c.channel == channel,
                CONTACTS.c.address == address))).first()
        return row is not None and row.opted_out_at is not None
