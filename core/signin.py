"""Dashboard sign-in: one-time links made from a chat or the CLI, and server-side sessions.

A sign-in link carries a random token valid `SIGNIN_TTL` (10 minutes) and usable once; only its SHA-256
is stored. Using it opens a session: the browser's cookie holds a second random secret, the database the
SHA-256 of it with the shop, member, role and a CSRF token, so every process sees the same sessions and
a sign-out (or "sign out everywhere") takes effect at once. A session unused for `idle_timeout` ends.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from core.clock import Clock, utcnow
from core.db import Database
from core.i18n import N_
from core.models import DashboardSession, DashboardSignin, Member, MemberRole
from core.sql import table

log = logging.getLogger("paylinks.signin")

SIGNINS = table(DashboardSignin)
SESSIONS = table(DashboardSession)
MEMBERS = table(Member)

SIGNIN_TTL = timedelta(minutes=10)
IDLE_TIMEOUT = timedelta(hours=12)
# last_seen_at is written at most this often per session, not on every request.
TOUCH_EVERY = timedelta(minutes=1)
SIGNIN_PATH = "/dashboard/signin/"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SigninError(Exception):
    """A sign-in link that cannot be used; `message` says why, for the page (a catalog msgid, N_)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Session:
    merchant_id: str
    member_id: int | None
    role: MemberRole
    csrf_token: str
    id_hash: str

    @property
    def is_owner(self) -> bool:
        return self.role is MemberRole.OWNER


class SigninService:
    def __init__(self, db: Database, *, public_base_url: str, idle_timeout: timedelta = IDLE_TIMEOUT,
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.public_base_url = public_base_url
        self.idle_timeout = idle_timeout
        self.clock = clock

    async def create_link(self, merchant_id: str, member_id: int | None = None) -> str:
        """A one-time sign-in URL. With a member: their role; without (the operator's CLI): owner."""
        role = MemberRole.OWNER
        async with self.db.write() as conn:
            if member_id is not None:
                row = (await conn.execute(select(MEMBERS.c.merchant_id, MEMBERS.c.role)
                                          .where(MEMBERS.c.id == member_id))).first()
                if row is None or row.merchant_id != merchant_id:
                    raise SigninError(f"member {member_id} is not in merchant {merchant_id}")
                role = MemberRole(row.role)
            token = secrets.token_urlsafe(32)
            now = self.clock()
            await conn.execute(SIGNINS.insert().values(
                token_hash=_digest(token), merchant_id=merchant_id, member_id=member_id, role=role.value,
                created_at=now, expires_at=now + SIGNIN_TTL,
            ))
        log.info("dashboard sign-in link made merchant=%s member=%s", merchant_id, member_id)
        return f"{self.public_base_url}{SIGNIN_PATH}{token}"

    async def use_link(self, token: str, *, client_address: str | None) -> tuple[str, Session]:
        """Spend a sign-in token: (the new session's cookie secret, the session). Raises SigninError."""
        now = self.clock()
        async with self.db.write() as conn:
            row = (await conn.execute(select(SIGNINS).where(SIGNINS.c.token_hash == _digest(token)))).first()
            if row is None:
                raise SigninError(N_("This sign-in link is not valid. Send /dashboard in your chat for a new one."))
            if row.used_at is not None:
                raise SigninError(N_("This sign-in link was used already; each works once. "
                                     "Send /dashboard in your chat for a new one."))
            if row.expires_at <= now:
                raise SigninError(N_("This sign-in link has expired (they work for 10 minutes). "
                                     "Send /dashboard in your chat for a new one."))
            spent = await conn.execute(update(SIGNINS).where(SIGNINS.c.token_hash == row.token_hash,
                                                             SIGNINS.c.used_at.is_(None)).values(used_at=now))
            if spent.rowcount != 1:  # pragma: no cover — a lost race with another tab
                raise SigninError(N_("This sign-in link was used already. Send /dashboard for a new one."))
            secret = secrets.token_urlsafe(32)
            session = Session(row.merchant_id, row.member_id, MemberRole(row.role), secrets.token_urlsafe(32),
                              _digest(secret))
            await conn.execute(SESSIONS.insert().values(
                id_hash=session.id_hash, merchant_id=session.merchant_id, member_id=session.member_id,
                role=session.role.value, csrf_token=session.csrf_token, created_at=now, last_seen_at=now,
                client_address=(client_address or None) and client_address[:64],
            ))
        log.info("dashboard signed in merchant=%s member=%s", session.merchant_id, session.member_id)
        return secret, session

    async def session(self, secret: str) -> Session | None:
        """The live session of a cookie secret (its idle time refreshed), or None."""
        now = self.clock()
        digest = _digest(secret)
        async with self.db.read() as conn:
            row = (await conn.execute(select(SESSIONS).where(SESSIONS.c.id_hash == digest))).first()
        if row is None or not hmac.compare_digest(row.id_hash, digest):
            return None
        if row.last_seen_at <= now - self.idle_timeout:
            await self.end(secret)
            return None
        if row.member_id is not None:
            # A member removed from the shop (or moved to another) is signed out with it.
            async with self.db.read() as conn:
                member = (await conn.execute(select(MEMBERS.c.merchant_id, MEMBERS.c.role)
                                             .where(MEMBERS.c.id == row.member_id))).first()
            if member is None or member.merchant_id != row.merchant_id:
                await self.end(secret)
                return None
            role = MemberRole(member.role)
        else:
            role = MemberRole(row.role)
        if now - row.last_seen_at >= TOUCH_EVERY:
            async with self.db.write() as conn:
                await conn.execute(update(SESSIONS).where(SESSIONS.c.id_hash == digest).values(last_seen_at=now))
        return Session(row.merchant_id, row.member_id, role, row.csrf_token, row.id_hash)

    async def end(self, secret: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(SESSIONS).where(SESSIONS.c.id_hash == _digest(secret)))

    async def end_everywhere(self, session: Session) -> int:
        """Every session of this person (the member; or, for the operator's link, every memberless one)."""
        query = delete(SESSIONS).where(SESSIONS.c.merchant_id == session.merchant_id)
        query = query.where(SESSIONS.c.member_id == session.member_id if session.member_id is not None
                            else SESSIONS.c.member_id.is_(None))
        async with self.db.write() as conn:
            result = await conn.execute(query)
        return int(result.rowcount or 0)

    async def end_member(self, member_id: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(SESSIONS).where(SESSIONS.c.member_id == member_id))
