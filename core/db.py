"""The database: SQLite (default, one machine) or PostgreSQL, with short Core transactions.

Callers write `async with db.read() as conn` / `async with db.write() as conn` and `await conn.execute(…)`
on both back ends:

- PostgreSQL uses SQLAlchemy's async engine on asyncpg: real non-blocking I/O.
- SQLite runs sync SQLAlchemy Core inline on the event loop. A primary-key read costs tens of
  microseconds there, while every aiosqlite call is a round trip through a helper thread (measured here:
  ~1,000 reads/s and ~500 link inserts/s through aiosqlite, ~37,000 and ~7,800 inline). Writers in this
  process queue on an asyncio lock before BEGIN IMMEDIATE, so a write never blocks the loop waiting for
  another transaction of ours; WAL readers never wait; only another process's write (a CLI or a worker)
  can make BEGIN IMMEDIATE wait, for at most busy_timeout, and those transactions are short.
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


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # On SQLite every writer of this process queues here before BEGIN IMMEDIATE (also libraries that
        # write through `engine`, such as slack_sdk's stores); unused on PostgreSQL.
        self.write_lock = asyncio.Lock()
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

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the lock up front; plain reads run in autocommit (WAL: they never wait).
            if conn.get_execution_options().get("paylinks_write", False):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[DbConnection]:
        """A transaction that may write; commits on success, rolls back on any exception."""
        if self.sync_engine is not None:
            async with self.write_lock:
                with self.sync_engine.connect() as sync_conn:
                    sync_conn = sync_conn.execution_options(paylinks_write=True)
                    with sync_conn.begin():
                        yield InlineConnection(sync_conn)
            return
        async with self.engine.connect() as conn, conn.begin():
            yield conn

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
            async with self.write_lock:
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
            self.sync_engine.dispose()
        await self.engine.dispose()


def sqlite_url(path: str | Path) -> str:
    return f"sqlite+aiosqlite:///{path}"
