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
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore

from core.db import Database

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


class InstallationStore(AsyncSQLAlchemyInstallationStore):
    """Bot tokens per workspace (slack_installations, slack_bots)."""

    def __init__(self, db: Database, *, client_id: str) -> None:
        super().__init__(client_id=client_id, engine=db.engine)
        self._gate = _WriteGate(db)

    async def async_save(self, installation: Installation) -> None:
        async with self._gate.hold():
            await super().async_save(installation)

    async def async_save_bot(self, bot: Bot) -> None:
        async with self._gate.hold():
            await super().async_save_bot(bot)

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
