"""The database: SQLite (default, one machine) or PostgreSQL, with short Core transactions.

Callers write `async with db.read() as conn` / `async with db.write() as conn` and `await conn.execute(…)`
on both back ends:

- PostgreSQL uses SQLAlchemy's async engine on asyncpg: real non-blocking I/O.
- SQLite runs sync SQLAlchemy Core inline on the event loop. A primary-key read costs tens of
  microseconds there, while every aiosqlite call is a round trip through a helper thread (measured here:
  ~1,000 reads/s and ~500 link inserts/s through aiosqlite, ~37,000 and ~7,800 inline). WAL readers
  never wait. Writers in this process queue on an asyncio lock and share one writer connection, so a
  write never blocks the loop waiting for another transaction of ours.

  Another process (`paylinks worker`, a CLI, `sqlite3 … 'BEGIN EXCLUSIVE'`) may hold SQLite's write lock
  for as long as it likes, so nothing on the loop may wait for it inside SQLite: the writer connection has
  SQLite's busy_timeout 0 and `BEGIN IMMEDIATE` is retried with short asyncio sleeps until the writer's
  deadline (`database.busy_timeout`), then DatabaseBusy; writers queued behind it keep their own deadline.
  Readers never need the write lock in WAL mode; their connections keep a short busy_timeout only for the
  rare brief locks a WAL reader can meet (another connection recovering or closing the WAL).

  Group commit: the first writer opens a transaction and schedules its COMMIT for the next loop turn;
  writers that come in meanwhile (requests handled in the same turn, or queued on the lock) join it,
  each inside its own SAVEPOINT, so a failing writer rolls back only its own work. Every writer returns
  only after that COMMIT, so callers see exactly the durability of a transaction of their own; a failed
  COMMIT fails every writer of the batch. Under load this spreads the fixed cost of BEGIN and COMMIT
  (the WAL write) over all the writers of a turn.

Both back ends: a full connection pool fails at once (DatabasePoolFull, never a wait on the loop), and a
write opened inside a write of the same task fails at once (NestedWriteError) instead of deadlocking.
PostgreSQL sessions get lock_timeout = busy_timeout, so a writer blocked by another transaction's lock
gets DatabaseBusy too.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import CursorResult, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger("paylinks.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

T = TypeVar("T")
# What execute() answers on both back ends: rows of any width, plus rowcount / inserted_primary_key.
Rows = CursorResult[*tuple[Any, ...]]

DEFAULT_BUSY_TIMEOUT = timedelta(seconds=5)
# SQLite readers: WAL readers never wait for the write lock; this only bounds the brief locks they can meet
# (another connection's WAL recovery, or the last connection checkpointing on close). It blocks the loop.
READER_BUSY_TIMEOUT_MS = 50
# How long BEGIN IMMEDIATE sleeps between tries while another process holds the write lock (doubling).
_FIRST_RETRY_S = 0.001
_MAX_RETRY_S = 0.02
# PostgreSQL: how long a request may wait (asynchronously) for a pooled connection before failing.
PG_POOL_TIMEOUT_S = 1.0
# SQLite: the writer connection does not checkpoint the WAL inside COMMIT (SQLite's default every 1,000
# pages, copying ~4 MB and syncing the file on the event loop: the slowest writes' tail latency). A
# thread of its own checkpoints this often while there are commits, PASSIVE (never waits for anyone).
CHECKPOINT_EVERY_S = 1.0
_PG_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired
# deadlock_detected: PostgreSQL has rolled the victim's transaction back, so nothing is half-written and the
# same request may simply be made again, like after a lock timeout (100 buyers on one link met it in CI).
_PG_DEADLOCK = "40P01"


class DatabaseBusy(Exception):
    """The database could not take this work in time; nothing of it was written. Retry in a moment.

    Raised when another process held SQLite's write lock (or a PostgreSQL lock) past `database.busy_timeout`,
    or when every pooled connection is in use. The API answers 503 `database_busy` with Retry-After.
    """

    retry_after_s: int = 1

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DatabasePoolFull(DatabaseBusy):
    """Every connection of the pool is in use (a connection held across a slow await, or overload)."""


class NestedWriteError(RuntimeError):
    """db.write() (or exclusive()) inside a write of the same task: it would wait for itself forever.
    Pass the open connection down instead."""


# (database, task) while that task is inside Database.write()/exclusive(); child tasks inherit the value
# but are other tasks, so they may wait for the outer write to end.
_writing: ContextVar[tuple[Database, asyncio.Task[Any] | None] | None] = ContextVar("paylinks_writing", default=None)


def _is_sqlite_busy(exc: BaseException) -> bool:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(orig, sqlite3.OperationalError) and (
        getattr(orig, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or "database is locked" in str(orig)
    )


def _is_pg_lock_timeout(exc: BaseException) -> bool:
    """A lock this transaction needed was not had (timed out, or a deadlock PostgreSQL broke)."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in (_PG_LOCK_NOT_AVAILABLE,
                                                                                 _PG_DEADLOCK)


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class DbConnection(Protocol):
    """What services may do with a connection from Database.read()/write(), on either back end."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Any, parameters: Any = None) -> Rows: ...

    async def scalar(self, statement: Any, parameters: Any = None) -> Any: ...

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T: ...


class InlineConnection:
    """AsyncConnection's calling convention over a sync SQLite connection (see the module docstring)."""

    def __init__(self, sync_connection: Connection, driver: sqlite3.Connection | None = None) -> None:
        self.sync_connection = sync_connection
        self._driver = driver

    @property
    def driver(self) -> sqlite3.Connection:
        """The pysqlite connection under it, for statements run without SQLAlchemy's execute path (core.sql)."""
        if self._driver is None:
            self._driver = _driver(self.sync_connection)
        return self._driver

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Rows:
        return self.sync_connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.scalar(statement, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.sync_connection, *args)


def _driver(conn: Connection) -> sqlite3.Connection:
    """The pysqlite connection under a checked-out SQLAlchemy one (typed Optional by SQLAlchemy for the
    moment after an invalidation; a connection we hold is never in that state)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return cast(sqlite3.Connection, raw)  # SQLAlchemy types every driver's connection as Any


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1] if ":///" in url else ""


class _Batch:
    """One shared SQLite write transaction; `done` resolves when it is committed (or fails)."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.committer: asyncio.Task[None] | None = None  # kept referenced until it has run
        # A batch whose writers all failed has nobody awaiting `done`; don't warn about that.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        # One future per writer waiting for the COMMIT, settled with `done`: a cancelled writer cancels only
        # its own (as asyncio.shield(done) would, without shield's extra future and extra loop turn).
        self._waiters: list[asyncio.Future[None]] = []

    def wait(self) -> asyncio.Future[None]:
        if self.done.done():
            return self.done
        waiter = self.done.get_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def settle(self, exc: BaseException | None = None) -> None:
        if self.done.done():
            return
        if exc is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(exc)
        for waiter in self._waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
        self._waiters.clear()


class _SqliteWrite:
    """Database.write() on SQLite: one writer's SAVEPOINT in the open batch (see the module docstring).

    A class rather than an @asynccontextmanager generator: every link creation opens one, and the generator
    protocol (anext/athrow through contextlib) cost ~3 µs of it."""

    __slots__ = ("_batch", "_db", "_outer", "_raw", "_timeout")

    def __init__(self, db: Database, timeout: float) -> None:
        self._db = db
        self._timeout = timeout

    async def __aenter__(self) -> DbConnection:
        db = self._db
        task = db._refuse_nested()
        batch, writer = await db._join_batch(asyncio.get_running_loop().time() + self._timeout)
        raw = _driver(writer)
        try:
            raw.execute("SAVEPOINT paylinks_writer")
        except BaseException:
            db._write_lock.release()  # the committer and every later writer need it
            raise
        self._batch, self._raw = batch, raw
        self._outer = _writing.set((db, task))
        return InlineConnection(writer, raw)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any) -> None:
        db, batch, raw = self._db, self._batch, self._raw
        _writing.reset(self._outer)
        if exc is not None:
            db._undo_savepoint(raw, batch)
            db._write_lock.release()
            if isinstance(exc, Exception):
                # Let the rest of the batch commit before the error surfaces: a writer that lost a
                # unique-key race then reads the winner's row, as it would after a transaction of its own.
                await asyncio.wait([batch.done])
                if _is_sqlite_busy(exc):  # rollback-journal mode: a statement met another's lock
                    raise DatabaseBusy("another process held the database's lock") from exc
            return  # the block's exception goes on
        try:
            raw.execute("RELEASE paylinks_writer")
        except Exception:
            # SQLite ended the transaction under us (I/O error, full disk): the batch is lost, and the
            # lock must still be freed, or the committer and every later writer would wait on it.
            db._undo_savepoint(raw, batch)
            db._write_lock.release()
            raise
        db._write_lock.release()
        await batch.wait()


class Database:
    def __init__(
        self, url: str, *, pool_size: int = 10, busy_timeout: timedelta | float = DEFAULT_BUSY_TIMEOUT
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # How long a writer may wait for the database's write lock (or a PostgreSQL lock), in seconds.
        self.busy_timeout_s = _seconds(busy_timeout)
        self.pool_size = pool_size
        # SQLite: every writer of this process queues here (see the module docstring); use exclusive()
        # to write through another connection. Unused on PostgreSQL.
        self._write_lock = asyncio.Lock()
        self._batch: _Batch | None = None
        self._writer: Connection | None = None
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._checkpointing: asyncio.Task[None] | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._disposing = False
        self.sync_engine: Engine | None = None
        busy_ms = max(0, round(self.busy_timeout_s * 1000))
        if self.is_sqlite:
            # The async engine exists for libraries that insist on one (slack_sdk's stores); paylinks'
            # own queries go through the inline sync engine. The aiosqlite engine waits in its own thread,
            # so it may use SQLite's busy handler for the whole busy_timeout.
            self.engine: AsyncEngine = create_async_engine(url)
            # pool_timeout 0: a checkout runs on the loop, so a full pool must fail, not wait.
            self.sync_engine = create_engine(
                f"sqlite:///{_sqlite_path(url)}", pool_size=pool_size, max_overflow=pool_size, pool_timeout=0,
                # The driver's own busy wait (5 s by default) would apply to the PRAGMAs of a new connection.
                connect_args={"timeout": READER_BUSY_TIMEOUT_MS / 1000},
            )
            self._configure_sqlite(self.sync_engine, busy_ms=READER_BUSY_TIMEOUT_MS)
            self._configure_sqlite(self.engine.sync_engine, busy_ms=busy_ms)
        else:
            self.engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                pool_timeout=PG_POOL_TIMEOUT_S,
                # 0 would mean "wait forever" to PostgreSQL; a zero busy_timeout is 1 ms there.
                connect_args={"server_settings": {"lock_timeout": str(max(1, busy_ms))}},
            )

    @staticmethod
    def _configure_sqlite(engine: Engine, *, busy_ms: int) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours to emit (see below).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            mode = cursor.fetchone()  # (the aiosqlite adapter's execute() returns no cursor)
            if mode and str(mode[0]).lower() not in ("wal", "memory"):
                # Rollback-journal mode: another process's write lock blocks our readers too.
                log.warning("SQLite is in %s journal mode, not WAL: readers will wait for writers", mode[0])
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    def _refuse_nested(self) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        writing = _writing.get()
        if writing is not None and writing[0] is self and writing[1] is task:
            raise NestedWriteError(
                "db.write() inside another db.write() of the same task would wait for itself; "
                "pass the open connection down instead"
            )
        return task

    def write(self, *, busy_timeout: float | None = None) -> AbstractAsyncContextManager[DbConnection]:
        """A transaction that may write; committed when the block ends, rolled back on any exception.

        Waits (asynchronously) at most `busy_timeout` seconds (default: the database's) for the write lock,
        then raises DatabaseBusy with nothing written. (PostgreSQL: lock_timeout is the database's.)
        """
        if self.sync_engine is None:
            return self._pg_write()
        return _SqliteWrite(self, self.busy_timeout_s if busy_timeout is None else busy_timeout)

    @asynccontextmanager
    async def _pg_write(self) -> AsyncIterator[AsyncConnection]:
        task = self._refuse_nested()
        outer = _writing.set((self, task))
        try:
            async with self._pg_connect() as conn, conn.begin():
                yield conn
        except DBAPIError as exc:
            if _is_pg_lock_timeout(exc):
                raise DatabaseBusy("another transaction held a lock this write needed") from exc
            raise
        finally:
            _writing.reset(outer)

    async def _acquire_write_lock(self, deadline: float | None) -> None:
        """Our own writers' queue; bounded by the writer's deadline (the lock is FIFO)."""
        if not self._write_lock.locked() or deadline is None:
            await self._write_lock.acquire()  # the usual case: free, taken without a timer
            return
        try:
            async with asyncio.timeout_at(deadline):
                await self._write_lock.acquire()
        except TimeoutError:
            raise DatabaseBusy("the database's write lock stayed taken (queued behind a waiting writer)") from None

    async def _join_batch(self, deadline: float) -> tuple[_Batch, Connection]:
        await self._acquire_write_lock(deadline)
        try:
            if self._writer is None:
                assert self.sync_engine is not None
                self._writer = self._checkout()
                # Never wait inside SQLite on the loop: _begin retries with asyncio sleeps instead.
                _driver(self._writer).execute("PRAGMA busy_timeout=0")
                _driver(self._writer).execute("PRAGMA wal_autocheckpoint=0")  # see CHECKPOINT_EVERY_S
            if self._batch is None:
                await self._begin(_driver(self._writer), deadline)
                self._batch = _Batch()
                # Commit one loop turn later: writers handled in this turn, and any already queued on
                # the lock (it is FIFO), join this batch first.
                self._batch.committer = asyncio.get_running_loop().create_task(self._commit_later(self._batch))
            return self._batch, self._writer
        except BaseException:
            self._write_lock.release()
            raise

    @staticmethod
    async def _begin(raw: sqlite3.Connection, deadline: float) -> None:
        """BEGIN IMMEDIATE (our own, on a driver connection in autocommit mode; SQLAlchemy's autobegin on it
        is bookkeeping only), retried while another process holds the write lock, until the deadline."""
        loop = asyncio.get_running_loop()
        pause = _FIRST_RETRY_S
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_sqlite_busy(exc):
                    raise
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise DatabaseBusy("another process held the database's write lock") from None
                await asyncio.sleep(min(pause, remaining))
                pause = min(pause * 2, _MAX_RETRY_S)

    async def _commit_later(self, batch: _Batch) -> None:
        async with self._write_lock:
            if self._batch is batch:
                self._commit()

    def _undo_savepoint(self, raw: sqlite3.Connection, batch: _Batch) -> None:
        try:
            raw.execute("ROLLBACK TO paylinks_writer")
            raw.execute("RELEASE paylinks_writer")
        except Exception as exc:  # SQLite already rolled back the whole transaction (I/O error, full disk)
            log.error("write batch lost: %s", type(exc).__name__)
        if not raw.in_transaction and self._batch is batch:
            self._batch = None
            batch.settle(RuntimeError("the database rolled back this write batch"))

    def _commit(self) -> None:
        """Commit the open batch; the caller holds the write lock."""
        batch, self._batch = self._batch, None
        if batch is None or self._writer is None:
            return
        raw = _driver(self._writer)
        try:
            raw.execute("COMMIT")
        except Exception as exc:
            if raw.in_transaction:
                with contextlib.suppress(Exception):  # the batch's waiters must hear of it either way
                    raw.execute("ROLLBACK")
            if _is_sqlite_busy(exc):  # rollback-journal mode: COMMIT waits for readers; we don't
                batch.settle(DatabaseBusy("readers held the database while committing"))
            else:
                batch.settle(exc)
        else:
            batch.settle()
            self._schedule_checkpoint()

    def _schedule_checkpoint(self) -> None:
        if self._checkpoint_timer is None and self._checkpointing is None and not self._disposing:
            loop = asyncio.get_running_loop()
            self._checkpoint_timer = loop.call_later(CHECKPOINT_EVERY_S, self._start_checkpoint)

    def _start_checkpoint(self) -> None:
        self._checkpoint_timer = None
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._checkpoint))
        self._checkpointing = task
        task.add_done_callback(self._checkpoint_done)

    def _checkpoint_done(self, task: asyncio.Task[None]) -> None:
        self._checkpointing = None
        if not task.cancelled() and task.exception() is not None:
            log.debug("WAL checkpoint failed: %s", task.exception())

    def _checkpoint(self) -> None:
        """In a thread, on a connection of its own (pysqlite releases the GIL while SQLite works)."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(_sqlite_path(self.url), timeout=0, check_same_thread=False,
                                                 isolation_level=None)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def _stop_checkpoints(self) -> None:
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """SQLite: hold the write lock with no batch open, to write through another connection.

        Waits at most busy_timeout for our own writers (DatabaseBusy after that)."""
        async with self._exclusive(asyncio.get_running_loop().time() + self.busy_timeout_s):
            yield

    @asynccontextmanager
    async def _exclusive(self, deadline: float | None) -> AsyncIterator[None]:
        if self.sync_engine is None:
            yield
            return
        task = self._refuse_nested()
        await self._acquire_write_lock(deadline)
        outer = _writing.set((self, task))
        try:
            self._commit()
            yield
        finally:
            _writing.reset(outer)
            self._write_lock.release()

    def _checkout(self) -> Connection:
        assert self.sync_engine is not None
        try:
            return self.sync_engine.connect()
        except PoolTimeout:
            raise self._pool_full() from None

    def _pool_full(self) -> DatabasePoolFull:
        log.error("database connection pool full: all %d connections in use", 2 * self.pool_size)
        return DatabasePoolFull(f"all {2 * self.pool_size} database connections are in use")

    @asynccontextmanager
    async def _pg_connect(self) -> AsyncIterator[AsyncConnection]:
        conn = self.engine.connect()
        try:
            await conn.start()
        except PoolTimeout:
            raise self._pool_full() from None
        try:
            yield conn
        finally:
            await conn.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[DbConnection]:
        if self.sync_engine is not None:
            with self._checkout() as sync_conn:
                try:
                    yield InlineConnection(sync_conn)
                except DBAPIError as exc:
                    if _is_sqlite_busy(exc):  # not in WAL mode, or a brief lock outlasted the reader's wait
                        raise DatabaseBusy("another process held the database's lock") from exc
                    raise
            return
        try:
            async with self._pg_connect() as conn:
                yield conn
        except DBAPIError as exc:
            if _is_pg_lock_timeout(exc):
                raise DatabaseBusy("another transaction held a lock this read needed") from exc
            raise

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

        def upgrade(sync_conn: Connection) -> None:
            if _at_heads(sync_conn):
                return  # nothing to do: skip loading Alembic (most of a CLI command's start-up on SQLite)
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "heads")

        if self.sync_engine is not None:
            async with self._exclusive(None):
                with self._checkout() as sync_conn:
                    # At start-up, before serving: waiting here for another process's write is fine.
                    raw = _driver(sync_conn)
                    raw.execute(f"PRAGMA busy_timeout={round(self.busy_timeout_s * 1000)}")
                    try:
                        upgrade(sync_conn)
                        sync_conn.commit()
                    finally:
                        raw.execute(f"PRAGMA busy_timeout={READER_BUSY_TIMEOUT_MS}")
            return
        async_conn: AsyncConnection
        async with self._pg_connect() as async_conn:
            await async_conn.run_sync(upgrade)
            await async_conn.commit()

    async def dispose(self) -> None:
        if self.sync_engine is not None:
            self._disposing = True  # the last commit below schedules no checkpoint (closing checkpoints)
            await self._stop_checkpoints()
            deadline = asyncio.get_running_loop().time() + self.busy_timeout_s
            try:
                async with self._exclusive(deadline):  # commits the open batch first
                    self._close_writer()
            except DatabaseBusy:
                # A writer of ours never finished (shutdown must still end): its batch is lost.
                log.error("database closed with a write still in progress; that write is lost")
                self._close_writer()
            self.sync_engine.dispose()
            self._disposing = False  # a Database used again after dispose() checkpoints again
        await self.engine.dispose()

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


_ASSIGNMENT = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*(.+)$", re.MULTILINE)


@functools.cache
def migration_heads() -> frozenset[str]:
    """The revisions no migration builds on, read from the scripts' `revision` / `down_revision` lines
    (as Alembic's own heads, without importing Alembic and every script)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for name, value in _ASSIGNMENT.findall(script.read_text(encoding="utf-8")):
            found = ast.literal_eval(value.strip())
            if name == "revision":
                revisions.add(found)
            elif isinstance(found, str):
                parents.add(found)
            elif found is not None:
                parents.update(found)
    return frozenset(revisions - parents)


def _at_heads(sync_conn: Connection) -> bool:
    """Whether the database already records exactly the scripts' heads (then upgrading is a no-op)."""
    if not sync_conn.dialect.has_table(sync_conn, "alembic_version"):
        return False
    current = {row[0] for row in sync_conn.execute(text("SELECT version_num FROM alembic_version"))}
    return bool(current) and current == migration_heads()


def sqlite_url(path: str | Path) -> str:
    return f"sqlite+aiosqlite:///{path}"
