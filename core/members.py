"""Who is talking: members of merchants on each chat platform, invites, onboarding and alert subscriptions.

Identity rules
- A person is (platform, platform user id). One Member row ties them to one merchant with a role
  (owner or staff). A person who is not known yet is onboarded: a new merchant named after their profile
  (currency and locale from the `[links]` defaults) with them as owner.
- A workspace (Slack team; `IncomingMessage.workspace`) is one shop. It is recorded as a Member row with
  platform_user_id "workspace:<team id>" (role owner), pointing at the workspace's merchant. Everyone
  writing from that workspace acts for that merchant: the first person creates it and is its owner, the
  others get their own Member row as staff automatically. If a person's row points elsewhere (the
  workspace was moved with /join), it follows the workspace.
- /invite (owners only) makes a one-time code valid for `invite_ttl`; /join <code> on any platform makes
  that person (or, from a workspace, the whole workspace — owners only) staff of the inviting merchant.
  This is also how one seller connects Telegram, Slack and WhatsApp to one shop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from babel.dates import format_timedelta
from sqlalchemy import delete, func, select, update

from core import i18n, ids, markup
from core.clock import Clock, utcnow
from core.db import Database, DbConnection
from core.deliveries import write_with_delivery
from core.i18n import N_
from core.merchants import MerchantService, normalize_locale
from core.models import AlertSubscription, Invite, Member, MemberRole, Merchant
from core.ports import IncomingMessage
from core.sql import insert_ignore, table
from core.text import without_bidi_controls

log = logging.getLogger("paylinks.members")

MEMBERS = table(Member)
MERCHANTS = table(Merchant)
INVITES = table(Invite)
ALERTS = table(AlertSubscription)

WORKSPACE_PREFIX = "workspace:"
DEFAULT_MAX_OPEN_INVITES = 10


def workspace_user_id(workspace: str) -> str:
    return f"{WORKSPACE_PREFIX}{workspace}"


class MemberError(i18n.TranslatableError):
    """A user-caused problem (bad invite, not allowed); `message` is markup, safe to show."""

    def __init__(self, message: str, example: str | None = None, *, values: Mapping[str, object] | None = None
                 ) -> None:
        super().__init__(message, values)
        self.example = example

    def text(self) -> str:
        """In the language being spoken (core.i18n.current); `message` is the catalog msgid."""
        t = i18n.current()
        said = self.translated(t)
        if not self.example:
            return said
        return t.gettext("%(problem)s\nFor example: %(example)s", problem=said,
                         example=f"`{markup.escape(self.example)}`")


@dataclass(frozen=True, slots=True)
class Identity:
    merchant: Merchant
    member: Member
    created: bool = False  # the merchant was made for this person just now

    @property
    def is_owner(self) -> bool:
        return MemberRole(self.member.role) is MemberRole.OWNER


@dataclass(frozen=True, slots=True)
class JoinResult:
    identity: Identity
    previous: Merchant | None  # the shop this person (or workspace) belonged to before
    workspace: bool = False


class _Lost(Exception):
    """A concurrent first message created the same rows first; roll back and read theirs."""


def _aware(moment: datetime) -> datetime:
    # SQLite hands back what was stored; the columns are UTC (core.models), so a naive value is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _rough_wait(delta: timedelta, language: str = "en") -> str:
    """"45 minutes", "5 hours", in the reader's language (CLDR units)."""
    minutes = max(1, int(delta.total_seconds() // 60))
    return format_timedelta(timedelta(minutes=minutes), threshold=2, locale=i18n.tr(language).locale)


def _member(row: Any) -> Member:
    return Member(**row._mapping)


class MemberService:
    def __init__(
        self, db: Database, merchants: MerchantService, *, invite_ttl: timedelta = timedelta(hours=24),
        max_open_invites: int = DEFAULT_MAX_OPEN_INVITES, clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.merchants = merchants
        self.invite_ttl = invite_ttl
        # Outstanding (unused, unexpired) invite codes a shop may have at once: `[limits] invites_per_shop`.
        self.max_open_invites = max_open_invites
        self.clock = clock

    # ------------------------------------------------------------ lookups

    async def _row(self, conn: DbConnection, platform: str, user_id: str) -> Member | None:
        row = (
            await conn.execute(
                select(MEMBERS).where(MEMBERS.c.platform == platform, MEMBERS.c.platform_user_id == user_id)
            )
        ).first()
        return _member(row) if row else None

    async def _merchant(self, conn: DbConnection, merchant_id: str) -> Merchant | None:
        row = (await conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == merchant_id))).first()
        return Merchant(**row._mapping) if row else None

    async def identify(self, message: IncomingMessage) -> Identity | None:
        """The member and merchant behind a message; None for someone paylinks does not know yet."""
        async with self.db.read() as conn:
            person = await self._row(conn, message.platform, message.user_id)
            shop_row = (
                await self._row(conn, message.platform, workspace_user_id(message.workspace))
                if message.workspace else None
            )
            if message.workspace and shop_row is None:
                return None
            if not message.workspace:
                if person is None:
                    return None
                merchant = await self._merchant(conn, person.merchant_id)
                return Identity(merchant, person) if merchant else None
        assert shop_row is not None
        if person is not None and person.merchant_id == shop_row.merchant_id:
            async with self.db.read() as conn:
                merchant = await self._merchant(conn, person.merchant_id)
            return Identity(merchant, person) if merchant else None
        # A newcomer to the workspace, or a person whose workspace moved: they follow the workspace.
        async with self.db.write() as conn:
            await self._put_member(conn, shop_row.merchant_id, message, MemberRole.STAFF)
            person = await self._row(conn, message.platform, message.user_id)
            merchant = await self._merchant(conn, shop_row.merchant_id)
        assert person is not None
        return Identity(merchant, person) if merchant else None

    async def onboard(self, message: IncomingMessage) -> Identity:
        """The person's identity, creating their merchant (and workspace) when they are new."""
        known = await self.identify(message)
        if known is not None:
            return known
        now = self.clock()
        # A profile name is not refused for direction controls (the person did not type it for us), but
        # they never reach the shop's name, which pages and chats show beside other text.
        name = (without_bidi_controls(message.display_name or message.user_id).strip()[:200]
                or i18n.current().gettext("My shop"))
        merchant = Merchant(
            id=ids.prefixed("mer"),
            name=name,
            default_currency=self.merchants.default_currency,
            locale=normalize_locale(self.merchants.default_locale),
            created_at=now,
        )
        try:
            async with write_with_delivery(self.db) as conn:  # a first message: its delivery row commits with the shop
                person = await self._row(conn, message.platform, message.user_id)
                if person is not None and message.workspace:
                    # Known person, new workspace: the workspace joins that person's shop.
                    await self._insert_workspace(conn, person.merchant_id, message.platform, message.workspace)
                    return await self._identity_in(conn, person)
                await conn.execute(MERCHANTS.insert().values(**merchant.model_dump()))
                if not await insert_ignore(conn, MEMBERS, self._member_values(merchant.id, message, MemberRole.OWNER)):
                    raise _Lost
                if message.workspace:
                    await self._insert_workspace(conn, merchant.id, message.platform, message.workspace)
                person = await self._row(conn, message.platform, message.user_id)
        except _Lost:
            known = await self.identify(message)
            if known is None:  # pragma: no cover — the winner's rows are committed before we read
                raise RuntimeError("onboarding lost a race and found nothing") from None
            return known
        assert person is not None
        log.info("merchant onboarded merchant=%s platform=%s member=%s", merchant.id, message.platform, person.id)
        return Identity(merchant, person, created=True)

    async def _identity_in(self, conn: DbConnection, person: Member) -> Identity:
        merchant = await self._merchant(conn, person.merchant_id)
        assert merchant is not None
        return Identity(merchant, person)

    async def _insert_workspace(self, conn: DbConnection, merchant_id: str, platform: str, workspace: str) -> None:
        values = {
            "merchant_id": merchant_id, "platform": platform, "platform_user_id": workspace_user_id(workspace),
            "display_name": "(workspace)", "role": MemberRole.OWNER.value, "created_at": self.clock(),
        }
        if not await insert_ignore(conn, MEMBERS, values):
            raise _Lost

    def _member_values(self, merchant_id: str, message: IncomingMessage, role: MemberRole) -> dict[str, Any]:
        return {
            "merchant_id": merchant_id,
            "platform": message.platform,
            "platform_user_id": message.user_id,
            "display_name": (message.display_name or "")[:200],
            "role": role.value,
            "created_at": self.clock(),
        }

    async def _put_member(
        self, conn: DbConnection, merchant_id: str, message: IncomingMessage, role: MemberRole
    ) -> None:
        """Insert the person's row, or move it to `merchant_id` with `role`."""
        if not await insert_ignore(conn, MEMBERS, self._member_values(merchant_id, message, role)):
            await conn.execute(
                update(MEMBERS)
                .where(MEMBERS.c.platform == message.platform, MEMBERS.c.platform_user_id == message.user_id)
                .values(merchant_id=merchant_id, role=role.value)
            )

    async def ensure_member(
        self, merchant_id: str, message: IncomingMessage, *, role: MemberRole | None = None
    ) -> Identity:
        """Make this person a member of `merchant_id` (the console's --merchant). Without a role: owner of a
        merchant that has no owner yet, staff otherwise."""
        async with self.db.write() as conn:
            merchant = await self._merchant(conn, merchant_id)
            if merchant is None:
                raise MemberError(N_("There is no merchant with id %(id)s."),
                                  values={"id": f"`{markup.escape(merchant_id)}`"})
            person = await self._row(conn, message.platform, message.user_id)
            if person is not None and person.merchant_id == merchant_id and role is None:
                return Identity(merchant, person)
            if role is None:
                owner = (
                    await conn.execute(
                        select(MEMBERS.c.id).where(
                            MEMBERS.c.merchant_id == merchant_id, MEMBERS.c.role == MemberRole.OWNER.value
                        ).limit(1)
                    )
                ).first()
                role = MemberRole.STAFF if owner else MemberRole.OWNER
            await self._put_member(conn, merchant_id, message, role)
            person = await self._row(conn, message.platform, message.user_id)
        assert person is not None
        return Identity(merchant, person)

    async def members_of(self, merchant_id: str) -> list[Member]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(select(MEMBERS).where(MEMBERS.c.merchant_id == merchant_id).order_by(MEMBERS.c.id))
            ).all()
        return [_member(r) for r in rows]

    # ------------------------------------------------------------ invites

    async def create_invite(self, identity: Identity) -> Invite:
        if not identity.is_owner:
            raise MemberError(N_("Only the owner of %(shop)s can invite people. Ask them to send /invite."),
                              values={"shop": f"**{markup.escape(identity.merchant.name)}**"})
        now = self.clock()
        for _attempt in range(5):
            invite = Invite(
                code=ids.invite_code(),
                merchant_id=identity.merchant.id,
                created_by_member_id=identity.member.id,
                created_at=now,
                expires_at=now + self.invite_ttl,
            )
            async with write_with_delivery(self.db) as conn:  # a redelivered /invite makes no second code
                await self._check_open_invites(conn, identity.merchant, now)
                if await insert_ignore(conn, INVITES, invite.model_dump()):
                    log.info("invite created merchant=%s member=%s", identity.merchant.id, identity.member.id)
                    return invite
        raise RuntimeError("could not find a free invite code")  # pragma: no cover — 40 random bits, 5 tries

    async def _check_open_invites(self, conn: DbConnection, merchant: Merchant, now: datetime) -> None:
        """Refuse a new code while the shop has `max_open_invites` unused, unexpired ones (so a leaked owner
        account or a script cannot mint codes without end). Counted in the write transaction, after
        locking the merchant's row on PostgreSQL, so two /invite at once cannot both pass."""
        await conn.execute(select(MERCHANTS.c.id).where(MERCHANTS.c.id == merchant.id).with_for_update())
        row = (
            await conn.execute(
                select(func.count(), func.min(INVITES.c.expires_at)).where(
                    INVITES.c.merchant_id == merchant.id, INVITES.c.used_at.is_(None), INVITES.c.expires_at > now
                )
            )
        ).one()
        open_count, first_expiry = int(row[0]), row[1]
        if open_count < self.max_open_invites:
            return
        t = i18n.current()
        wait = (_rough_wait(_aware(first_expiry) - now, t.language) if first_expiry is not None
                else t.gettext("a while"))
        raise MemberError(t.ngettext(
            "%(shop)s already has %(count)s invite code nobody has used yet, the most a shop can have at once. "
            "Send it, or wait until it is used or expires (in %(wait)s); then /invite makes a new one.",
            "%(shop)s already has %(count)s invite codes nobody has used yet, the most a shop can have at once. "
            "Send one of those, or wait until one is used or expires (the next one expires in %(wait)s); "
            "then /invite makes a new one.",
            open_count, shop=f"**{markup.escape(merchant.name)}**", wait=wait))

    async def join(self, message: IncomingMessage, code: str) -> JoinResult:
        """Use an invite: the person (or their workspace) becomes staff of the inviting merchant."""
        code = code.strip().upper()
        now = self.clock()
        async with self.db.write() as conn:
            row = (await conn.execute(select(INVITES).where(INVITES.c.code == code))).first()
            if row is None:
                raise MemberError(
                    N_("%(code)s is not an invite code I know. Check it, or ask for a new one "
                       "(the owner sends /invite)."), "/join ABCD2345", values={"code": f"`{markup.escape(code)}`"})
            invite = Invite(**row._mapping)
            target = await self._merchant(conn, invite.merchant_id)
            assert target is not None
            person = await self._row(conn, message.platform, message.user_id)
            shop_row = (
                await self._row(conn, message.platform, workspace_user_id(message.workspace))
                if message.workspace else None
            )
            current = shop_row or person  # from a workspace, the workspace's shop decides
            if current is not None and current.merchant_id == target.id:
                raise MemberError(N_("This workspace is already part of %(shop)s.") if shop_row
                                  else N_("You are already part of %(shop)s."),
                                  values={"shop": f"**{markup.escape(target.name)}**"})
            if invite.used_at is not None:
                raise MemberError(N_("That invite code was already used. Ask the owner for a new one with /invite."))
            if invite.expires_at <= now:
                raise MemberError(N_("That invite code has expired. Ask the owner for a new one with /invite."))
            previous: Merchant | None = None
            if message.workspace:
                if shop_row is not None:
                    is_owner = (
                        person is not None and person.merchant_id == shop_row.merchant_id
                        and MemberRole(person.role) is MemberRole.OWNER
                    )
                    if not is_owner:
                        raise MemberError(N_("Only the owner of this workspace's shop can move it to another shop."))
                    previous = await self._merchant(conn, shop_row.merchant_id)
                    await conn.execute(
                        update(MEMBERS).where(MEMBERS.c.id == shop_row.id).values(merchant_id=target.id)
                    )
                else:
                    await self._insert_workspace(conn, target.id, message.platform, message.workspace)
            elif person is not None:
                previous = await self._merchant(conn, person.merchant_id)
            await self._put_member(conn, target.id, message, MemberRole.STAFF)
            person = await self._row(conn, message.platform, message.user_id)
            assert person is not None
            used = await conn.execute(
                update(INVITES)
                .where(INVITES.c.code == code, INVITES.c.used_at.is_(None))
                .values(used_at=now, used_by_member_id=person.id)
            )
            if used.rowcount != 1:  # pragma: no cover — BEGIN IMMEDIATE / row lock make this a lost race only
                raise MemberError(N_("That invite code was already used. Ask the owner for a new one with /invite."))
        log.info("invite used merchant=%s member=%s workspace=%s", target.id, person.id, bool(message.workspace))
        return JoinResult(Identity(target, person), previous, workspace=bool(message.workspace))

    # ------------------------------------------------------------ alert subscriptions

    async def set_alerts(self, merchant_id: str, platform: str, address: str, on: bool) -> bool:
        """Subscribe (or unsubscribe) a chat to the merchant's paid alerts; True when something changed."""
        async with self.db.write() as conn:
            if on:
                return await insert_ignore(conn, ALERTS, {
                    "merchant_id": merchant_id, "platform": platform, "address": address,
                    "created_at": self.clock(),
                })
            result = await conn.execute(
                delete(ALERTS).where(
                    ALERTS.c.merchant_id == merchant_id, ALERTS.c.platform == platform, ALERTS.c.address == address
                )
            )
            return bool(result.rowcount)

    async def alerts_on(self, merchant_id: str, platform: str, address: str) -> bool:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(ALERTS.c.id).where(
                        ALERTS.c.merchant_id == merchant_id, ALERTS.c.platform == platform,
                        ALERTS.c.address == address,
                    )
                )
            ).first()
        return row is not None
