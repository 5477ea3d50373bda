"""API keys on the request path: which merchant a Bearer secret belongs to, looked up on every request.

Nothing is cached, so a key revoked with `paylinks apikey revoke` (by any process) is refused on the very
next request everywhere, and a merchant's new default currency applies at once. That is affordable
because the lookup is one indexed join (core.merchants.KEY_OWNER_QUERY): on SQLite it runs compiled, on
one long-lived raw connection, the way the pay page reads (adapters/web/pages.py, SqlitePageReader),
which costs ~6 µs where SQLAlchemy's execute path and a pool checkout cost ~75 µs (link creation's
whole request is ~240 µs). On PostgreSQL it is one query through MerchantService.authenticate.

A key's last_used_at is written at most once a minute per key and process, in the background, so the
request never waits for that write.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import Connection, PoolProxiedConnection

from core.merchants import KEY_OWNER_QUERY, KeyOwner, MerchantService, hash_secret

log = logging.getLogger("paylinks.api")

LAST_USED_EVERY_S = 60.0
MAX_TRACKED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class ApiMerchant:
    id: str
    default_currency: str
    key_id: str = ""


class SqliteKeyReader:
    """KEY_OWNER_QUERY, compiled once, on one connection of the engine's pool (autocommit, WAL: each
    SELECT sees every commit before it, from any process, and never waits for a writer)."""

    def __init__(self) -> None:
        self._connection: PoolProxiedConnection | None = None
        self._sql = ""

    @property
    def ready(self) -> bool:
        return self._connection is not None

    def open(self, sync_conn: Connection) -> None:
        if self._connection is None:
            self._sql = str(KEY_OWNER_QUERY.compile(dialect=sync_conn.dialect))
            self._connection = sync_conn.engine.raw_connection()

    def fetch(self, digest: str) -> KeyOwner | None:
        assert self._connection is not None
        try:
            rows = self._connection.driver_connection.execute(self._sql, (digest,)).fetchall()  # type: ignore[union-attr]  # None only once closed
        except Exception:
            self.close()  # a broken connection is not reused; the next request opens a fresh one
            raise
        return KeyOwner(*rows[0]) if rows else None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class ApiKeys:
    def __init__(
        self,
        merchants: MerchantService,
        *,
        last_used_every_s: float = LAST_USED_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.merchants = merchants
        self.last_used_every_s = last_used_every_s
        self.monotonic = monotonic
        self._sqlite = SqliteKeyReader()
        self._noted: dict[str, float] = {}  # key id -> when this process last recorded its use
        self._writes: set[asyncio.Task[None]] = set()

    async def merchant_for(self, secret: str) -> ApiMerchant | None:
        owner = await self._owner(secret)
        if owner is None:
            return None
        self._note_use(owner.key_id)
        return ApiMerchant(owner.merchant_id, owner.default_currency, owner.key_id)

    async def _owner(self, secret: str) -> KeyOwner | None:
        if not self._sqlite.ready:
            if not self.merchants.db.is_sqlite:
                return await self.merchants.authenticate(secret)
            async with self.merchants.db.read() as conn:
                await conn.run_sync(self._sqlite.open)
        digest = hash_secret(secret)
        owner = self._sqlite.fetch(digest)
        return owner if owner is not None and hmac.compare_digest(owner.secret_hash, digest) else None

    def _note_use(self, key_id: str) -> None:
        now = self.monotonic()
        last = self._noted.get(key_id)
        if last is not None and now - last < self.last_used_every_s:
            return
        if len(self._noted) >= MAX_TRACKED_KEYS:
            self._noted.pop(next(iter(self._noted)))  # oldest first
        self._noted.pop(key_id, None)
        self._noted[key_id] = now
        task = asyncio.get_running_loop().create_task(self._record_use(key_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _record_use(self, key_id: str) -> None:
        try:
            await self.merchants.record_key_use(key_id)
        except Exception as exc:  # last_used_at is a hint for the operator; the request already succeeded
            log.warning("api key last_used_at not recorded key=%s: %s", key_id, type(exc).__name__)

    async def flush(self) -> None:
        """Wait for the last_used_at writes in flight."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def close(self) -> None:
        """Finish the writes and give the connection back (before the database is disposed)."""
        await self.flush()
        self._sqlite.close()

    async def lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx, registered after the database's so it ends first."""
        try:
            yield
        finally:
            await self.close()
