"""The database: SQLite (default, one machine) or PostgreSQL, with short Core transactions.

Callers write `async with db.read() as conn` / `async with db.write() as conn` and `await conn.execute(…)`
on both back ends:

- PostgreSQL uses SQLAlchemy's async engine on asyncpg: real non-blocking I/O.
- SQLite runs sync SQLAlchemy Core inline on the event loop. A primary-key read costs tens of
  microseconds there, while every aiosqlite call is a round trip through a helper thread (measured here:
  ~1,000 reads/s and ~500 link inserts/s through aiosqlite, ~37,000 and ~7,800 inline). WAL readers
  never wait. Writers in this process queue on an asyncio lock and share one writer connection, so a
  write never blocks the loop waiting for another transaction of ours; only another process's write (a
  CLI or a worker) can make BEGIN IMMEDIATE wait, for at most busy_timeout, and those are short.

  Group commit: the first writer opens a transaction and schedules its COMMIT for the next loop turn;
  writers that come in meanwhile (requests handled in the same turn, or queued on the lock) join it,
  each inside its own SAVEPOINT, so a failing writer rolls back only its own work. Every writer returns
  only after that COMMIT, so callers see exactly the durability of a transaction of their own; a failed
  COMMIT fails every writer of the batch. Under load this spreads the fixed cost of BEGIN and COMMIT
  (the WAL write) over all the writers of a turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Dialect, Engine, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger("paylinks.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

T = TypeVar("T")


class DbConnection(Protocol):
    """What services may do with a connection from Database.read()/write(), on either back end."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]: ...

    async def scalar(self, statement: Any, parameters: Any = None) -> Any: ...

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T: ...


class InlineConnection:
    """AsyncConnection's calling convention over a sync SQLite connection (see the module docstring)."""

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]:
        return self.sync_connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.scalar(statement, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.sync_connection, *args)


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1] if ":///" in url else ""


class _Batch:
    """One shared SQLite write transaction; `done` resolves when it is committed (or fails)."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.committer: asyncio.Task[None] | None = None  # kept referenced until it has run
        # A batch whose writers all failed has nobody awaiting `done`; don't warn about that.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # SQLite: every writer of this process queues here (see the module docstring); use exclusive()
        # to write through another connection. Unused on PostgreSQL.
        self._write_lock = asyncio.Lock()
        self._batch: _Batch | None = None
        self._writer: Connection | None = None
        self.sync_engine: Engine | None = None
        if self.is_sqlite:
            # The async engine exists for libraries that insist on one (slack_sdk's stores); paylinks'
            # own queries go through the inline sync engine.
            self.engine: AsyncEngine = create_async_engine(url)
            self.sync_engine = create_engine(
                f"sqlite:///{_sqlite_path(url)}", pool_size=pool_size, max_overflow=pool_size
            )
            self._configure_sqlite(self.sync_engine)
            self._configure_sqlite(self.engine.sync_engine)
        else:
            self.engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )

    @staticmethod
    def _configure_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours to emit (see below).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[DbConnection]:
        """A transaction that may write; committed when the block ends, rolled back on any exception."""
        if self.sync_engine is None:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        batch, writer = await self._join_batch()
        raw = writer.connection.driver_connection
        raw.execute("SAVEPOINT paylinks_writer")
        try:
            yield InlineConnection(writer)
        except BaseException as exc:
            self._undo_savepoint(raw, batch)
            self._write_lock.release()
            if isinstance(exc, Exception):
                # Let the rest of the batch commit before the error surfaces: a writer that lost a
                # unique-key race then reads the winner's row, as it would after a transaction of its own.
                await asyncio.wait([batch.done])
            raise
        raw.execute("RELEASE paylinks_writer")
        self._write_lock.release()
        await asyncio.shield(batch.done)

    async def _join_batch(self) -> tuple[_Batch, Connection]:
        await self._write_lock.acquire()
        try:
            if self._writer is None:
                assert self.sync_engine is not None
                self._writer = self.sync_engine.connect()
            if self._batch is None:
                # Our own BEGIN, on a driver connection in autocommit mode; SQLAlchemy's autobegin on it
                # is bookkeeping only (pysqlite emits nothing for it).
                self._writer.connection.driver_connection.execute("BEGIN IMMEDIATE")
                self._batch = _Batch()
                # Commit one loop turn later: writers handled in this turn, and any already queued on
                # the lock (it is FIFO), join this batch first.
                self._batch.committer = asyncio.get_running_loop().create_task(self._commit_later(self._batch))
            return self._batch, self._writer
        except BaseException:
            self._write_lock.release()
            raise

    async def _commit_later(self, batch: _Batch) -> None:
        async with self._write_lock:
            if self._batch is batch:
                self._commit()

    def _undo_savepoint(self, raw: Any, batch: _Batch) -> None:
        try:
            raw.execute("ROLLBACK TO paylinks_writer")
            raw.execute("RELEASE paylinks_writer")
        except Exception as exc:  # SQLite already rolled back the whole transaction (I/O error, full disk)
            log.error("write batch lost: %s", type(exc).__name__)
        if not raw.in_transaction and self._batch is batch:
            self._batch = None
            if not batch.done.done():
                batch.done.set_exception(RuntimeError("the database rolled back this write batch"))

    def _commit(self) -> None:
        """Commit the open batch; the caller holds the write lock."""
        batch, self._batch = self._batch, None
        if batch is None or self._writer is None:
            return
        raw = self._writer.connection.driver_connection
        try:
            raw.execute("COMMIT")
        except Exception as exc:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            batch.done.set_exception(exc)
        else:
            batch.done.set_result(None)

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """SQLite: hold the write lock with no batch open, to write through another connection."""
        if self.sync_engine is None:
            yield
            return
        await self._write_lock.acquire()
        try:
            self._commit()
            yield
        finally:
            self._write_lock.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[DbConnection]:
        if self.sync_engine is not None:
            with self.sync_engine.connect() as sync_conn:
                yield InlineConnection(sync_conn)
            return
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.read() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception as exc:  # any failure to answer is "not healthy"
            log.warning("database ping failed: %s", type(exc).__name__)
            return False

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (all heads)."""
        from alembic import command
        from alembic.config import Config

        def upgrade(sync_conn: Connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "heads")

        if self.sync_engine is not None:
            async with self.exclusive():
                with self.sync_engine.connect() as sync_conn:
                    upgrade(sync_conn)
                    sync_conn.commit()
            return
        async_conn: AsyncConnection
        async with self.engine.connect() as async_conn:
            await async_conn.run_sync(upgrade)
            await async_conn.commit()

    async def dispose(self) -> None:
        if self.sync_engine is not None:
            async with self.exclusive():
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            self.sync_engine.dispose()
        await self.engine.dispose()


def sqlite_url(path: str | Path) -> str:
    return f"sqlite+aiosqlite:///{path}"
