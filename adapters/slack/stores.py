"""slack_sdk's async SQLAlchemy installation and OAuth-state stores, on the paylinks database.

The tables come from migration 0002_slack (see core/models.py), never from the stores' create_tables().

SQLite needs one precaution. paylinks runs its own SQLite writes inline on the event loop behind an
asyncio lock (core/db.py), while these stores go through the aiosqlite engine, where plain statements
autocommit one by one (no BEGIN is emitted for them). Were a store to hold SQLite's write lock across an
await, one of our inline writers running BEGIN IMMEDIATE meanwhile would block the loop in busy_timeout
while the store could not finish: a stall ending in "database is locked". So the stores never open a
write transaction on SQLite, and their writes queue on the database's writer lock, which also keeps their
select-then-insert/delete steps from interleaving. PostgreSQL uses real transactions and needs neither.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import select, update

from core.db import Database
from core.models import SLACK_BOTS, SLACK_INSTALLATIONS, SLACK_TOKEN_COLUMNS
from core.secrets import SecretBox

# OAuth state lifetime: how long a person may take between "Add to Slack" and approving.
STATE_EXPIRATION_S = 600

_holding: ContextVar[bool] = ContextVar("paylinks_slack_store_lock", default=False)


class _WriteGate:
    """Database.exclusive() on SQLite (re-entrant within one task): the stores write through aiosqlite,
    so they must not hold SQLite's write lock while our inline writers would block the loop on it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if not self._db.is_sqlite or _holding.get():
            yield
            return
        async with self._db.exclusive():
            token = _holding.set(True)
            try:
                yield
            finally:
                _holding.reset(token)


def _with_tokens(obj: Any, change: Any) -> Any:
    """A copy of a slack_sdk Installation or Bot with its token fields passed through `change`."""
    copied = copy.copy(obj)
    for name in SLACK_TOKEN_COLUMNS:
        if hasattr(copied, name):
            setattr(copied, name, change(getattr(copied, name)))
    return copied


class InstallationStore(AsyncSQLAlchemyInstallationStore):
    """Bot tokens per workspace (slack_installations, slack_bots), encrypted at rest (core/secrets.py).

    Tokens are encrypted on the way in and decrypted on the way out; a row written in plaintext before
    encryption reads as it is, and is encrypted when saved again or by `paylinks rotate-secrets`.
    """

    def __init__(self, db: Database, *, client_id: str, box: SecretBox) -> None:
        super().__init__(client_id=client_id, engine=db.engine)
        self._gate = _WriteGate(db)
        self._box = box

    async def async_save(self, installation: Installation) -> None:
        async with self._gate.hold():
            await super().async_save(_with_tokens(installation, self._box.encrypt_if_plain))

    async def async_save_bot(self, bot: Bot) -> None:
        # Also reached from async_save with tokens already encrypted: encrypt_if_plain leaves those be.
        async with self._gate.hold():
            await super().async_save_bot(_with_tokens(bot, self._box.encrypt_if_plain))

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        bot = await super().async_find_bot(enterprise_id=enterprise_id, team_id=team_id,
                                           is_enterprise_install=is_enterprise_install)
        return _with_tokens(bot, self._box.decrypt) if bot is not None else None

    async def async_find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                      user_id: str | None = None,
                                      is_enterprise_install: bool | None = False) -> Installation | None:
        found = await super().async_find_installation(enterprise_id=enterprise_id, team_id=team_id,
                                                      user_id=user_id, is_enterprise_install=is_enterprise_install)
        return _with_tokens(found, self._box.decrypt) if found is not None else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        async with self._gate.hold():
            await super().async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        async with self._gate.hold():
            await super().async_delete_installation(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id)

    async def bot_token(self, team_id: str) -> str | None:
        bot = await self.async_find_bot(enterprise_id=None, team_id=team_id)
        return bot.bot_token if bot is not None else None


class OAuthStateStore(AsyncSQLAlchemyOAuthStateStore):
    """One-time `state` values of the install flow (slack_oauth_states)."""

    def __init__(self, db: Database, *, expiration_seconds: int = STATE_EXPIRATION_S) -> None:
        super().__init__(expiration_seconds=expiration_seconds, engine=db.engine)
        self._gate = _WriteGate(db)

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        async with self._gate.hold():
            return await super().async_issue(*args, **kwargs)

    async def async_consume(self, state: str) -> bool:
        async with self._gate.hold():
            return await super().async_consume(state)


async def rotate_tokens(db: Database, box: SecretBox) -> int:
    """Re-encrypt every stored token under the current key (legacy plaintext gets encrypted); returns
    how many rows changed."""
    changed = 0
    for store_table in (SLACK_INSTALLATIONS, SLACK_BOTS):
        columns = [store_table.c[name] for name in SLACK_TOKEN_COLUMNS if name in store_table.c]
        async with db.read() as conn:
            rows = (await conn.execute(select(store_table.c.id, *columns))).all()
        for row in rows:
            values = {}
            for column in columns:
                rotated = box.rotate(getattr(row, column.name))
                if rotated is not None:
                    values[column.name] = rotated
            if values:
                async with db.write() as conn:
                    await conn.execute(update(store_table).where(store_table.c.id == row.id).values(**values))
                changed += 1
    return changed
