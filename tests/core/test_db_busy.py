"""The database never makes the event loop wait (issue 11.1): another process's write lock, a full
connection pool, a write inside a write. The lock is a real second process's BEGIN EXCLUSIVE."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import PG_POOL_TIMEOUT_S, Database, DatabaseBusy, DatabasePoolFull, NestedWriteError
from tests.sqlite_lock import db_path, write_lock_held

BUSY_TIMEOUT_S = 0.5


class LoopWatch:
    """Ticks every 5 ms on the loop and records the longest gap: a blocked loop shows as a long gap."""

    def __init__(self) -> None:
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.longest_gap = max(self.longest_gap, now - last)
            last = now

    async def __aenter__(self) -> LoopWatch:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _items_db(url: str, **kwargs: float) -> Database:
    database = Database(url, **kwargs)  # type: ignore[arg-type]
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS t_busy (name TEXT PRIMARY KEY)"))
        await conn.execute(text("DELETE FROM t_busy"))
    return database


@pytest.fixture
async def sqlite_db(sqlite_database_url: str) -> AsyncIterator[Database]:
    database = await _items_db(sqlite_database_url, busy_timeout=BUSY_TIMEOUT_S)
    yield database
    await database.dispose()


@pytest.fixture
async def any_db(database_url: str) -> AsyncIterator[Database]:
    database = await _items_db(database_url, busy_timeout=BUSY_TIMEOUT_S)
    yield database
    async with database.write() as conn:
        await conn.execute(text("DROP TABLE t_busy"))
    await database.dispose()


async def insert(db: Database, name: str) -> str:
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t_busy (name) VALUES (:n)"), {"n": name})
    return name


async def names(db: Database) -> list[str]:
    async with db.read() as conn:
        return [r.name for r in (await conn.execute(text("SELECT name FROM t_busy ORDER BY name"))).all()]


# ---------------------------------------------------------------- another process holds SQLite's write lock


async def test_reads_answer_at_once_while_another_process_holds_the_write_lock(
    sqlite_db: Database, sqlite_database_url: str
) -> None:
    await insert(sqlite_db, "before")
    with write_lock_held(db_path(sqlite_database_url)) as lock:
        slowest = 0.0
        for _ in range(50):
            started = time.perf_counter()
            assert await names(sqlite_db) == ["before"]
            assert await sqlite_db.ping()
            slowest = max(slowest, time.perf_counter() - started)
        assert lock.held
    assert slowest < 0.1, f"a read took {slowest * 1000:.0f} ms under the lock"


async def test_a_writer_waits_without_blocking_the_loop_then_gets_database_busy(
    sqlite_db: Database, sqlite_database_url: str
) -> None:
    with write_lock_held(db_path(sqlite_database_url)) as lock:
        async with LoopWatch() as watch:
            started = time.perf_counter()
            with pytest.raises(DatabaseBusy) as refused:
                await insert(sqlite_db, "refused")
            waited = time.perf_counter() - started
        assert lock.held
    assert BUSY_TIMEOUT_S * 0.9 <= waited < BUSY_TIMEOUT_S + 1.0, waited
    assert watch.longest_gap < 0.1, f"the loop stood still for {watch.longest_gap * 1000:.0f} ms"
    assert refused.value.retry_after_s >= 1
    assert await names(sqlite_db) == []  # nothing half-written
    assert await insert(sqlite_db, "after") == "after"  # and the next write, lock released, goes through
    assert await names(sqlite_db) == ["after"]


async def test_queued_writers_each_keep_their_own_deadline(sqlite_db: Database, sqlite_database_url: str) -> None:
    with write_lock_held(db_path(sqlite_database_url)):
        started = time.perf_counter()
        results = await asyncio.gather(*(insert(sqlite_db, f"w{i}") for i in range(6)), return_exceptions=True)
        waited = time.perf_counter() - started
    assert all(isinstance(r, DatabaseBusy) for r in results), results
    # Six writers queued behind each other still give up together, not one busy_timeout after another.
    assert waited < 2 * BUSY_TIMEOUT_S + 0.5, waited
    assert await names(sqlite_db) == []


async def test_a_waiting_writer_goes_through_when_the_lock_is_released(
    sqlite_database_url: str,
) -> None:
    db = await _items_db(sqlite_database_url, busy_timeout=5.0)
    try:
        with write_lock_held(db_path(sqlite_database_url)) as lock:
            writers = [asyncio.create_task(insert(db, f"w{i}")) for i in range(3)]
            await asyncio.sleep(0.3)
            assert not any(w.done() for w in writers)  # waiting, asynchronously
            started = time.perf_counter()
            await asyncio.to_thread(lock.release)
            assert await asyncio.wait_for(asyncio.gather(*writers), 5) == ["w0", "w1", "w2"]
        assert time.perf_counter() - started < 1.0
        assert await names(db) == ["w0", "w1", "w2"]
    finally:
        await db.dispose()


async def test_a_read_path_expiry_does_not_wait_for_the_lock(sqlite_database_url: str) -> None:
    """LinkService.get() records an overdue link's expiry; under the lock it shows it expired at once."""
    from datetime import timedelta
    from decimal import Decimal

    from core.links import LinkDraft, LinkService
    from core.merchants import MerchantService
    from core.models import LinkStatus
    from core.money import Money
    from tests.clock import FakeClock

    clock = FakeClock()
    db = Database(sqlite_database_url, busy_timeout=5.0)
    try:
        links = LinkService(db, public_base_url="https://pay.example", default_expiry=timedelta(hours=1),
                            max_amount=Decimal("10000"), clock=clock)
        merchant = await MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock).create(
            "Cake Shop", currency="SGD", locale="en_SG")
        link, _ = await links.create(LinkDraft(merchant_id=merchant.id, money=Money.parse("25", "SGD"),
                                            description="cake"))
        clock.advance(hours=2)
        with write_lock_held(db_path(sqlite_database_url)):
            started = time.perf_counter()
            seen = await links.get(link.id)
            assert time.perf_counter() - started < 0.5
        assert seen is not None and links.status_of(seen) is LinkStatus.EXPIRED
        # Lock released: the next read records it.
        recorded = await links.get(link.id)
        assert recorded is not None and recorded.status == LinkStatus.EXPIRED
    finally:
        await db.dispose()


# ---------------------------------------------------------------- a write inside a write; a full pool


async def test_a_write_inside_a_write_fails_at_once(any_db: Database) -> None:
    async with any_db.write() as conn:
        await conn.execute(text("INSERT INTO t_busy (name) VALUES ('outer')"))
        with pytest.raises(NestedWriteError, match="pass the open connection"):
            async with asyncio.timeout(2):
                await insert(any_db, "inner")
    assert await names(any_db) == ["outer"]  # the outer write is unharmed


async def test_a_task_started_inside_a_write_may_write_after_it(any_db: Database) -> None:
    async with any_db.write() as conn:
        await conn.execute(text("INSERT INTO t_busy (name) VALUES ('outer')"))
        child = asyncio.create_task(insert(any_db, "child"))  # another task: it waits, it is not refused
        await asyncio.sleep(0.01)
    assert await asyncio.wait_for(child, 5) == "child"
    assert await names(any_db) == ["child", "outer"]


async def test_exclusive_inside_a_write_fails_at_once(sqlite_db: Database) -> None:
    async with sqlite_db.write():
        with pytest.raises(NestedWriteError):
            async with asyncio.timeout(2), sqlite_db.exclusive():
                pass
    async with sqlite_db.exclusive():
        with pytest.raises(NestedWriteError):
            async with asyncio.timeout(2):
                await insert(sqlite_db, "inside exclusive")


async def test_a_full_pool_fails_fast_with_a_clear_error(database_url: str) -> None:
    db = Database(database_url, pool_size=1, busy_timeout=BUSY_TIMEOUT_S)  # 1 + 1 overflow connections
    try:
        async with db.read(), db.read():  # both held across awaits
            async with LoopWatch() as watch:
                started = time.perf_counter()
                with pytest.raises(DatabasePoolFull, match="all 2 database connections are in use"):
                    async with db.read():
                        pass
                waited = time.perf_counter() - started
        assert waited < PG_POOL_TIMEOUT_S + 0.5, waited
        assert watch.longest_gap < 0.1, f"the loop stood still for {watch.longest_gap * 1000:.0f} ms"
        assert await db.ping()  # connections given back: all is well again
    finally:
        await db.dispose()


# ---------------------------------------------------------------- PostgreSQL: a lock held by another transaction


async def test_a_postgres_writer_blocked_by_another_transaction_gets_database_busy(postgres_url: str) -> None:
    db = await _items_db(postgres_url, busy_timeout=BUSY_TIMEOUT_S)
    other = Database(postgres_url)
    try:
        await insert(db, "before")
        async with other.write() as conn:
            await conn.execute(text("LOCK TABLE t_busy IN EXCLUSIVE MODE"))  # reads go on, writes wait
            async with LoopWatch() as watch:
                started = time.perf_counter()
                with pytest.raises(DatabaseBusy):
                    await insert(db, "refused")
                waited = time.perf_counter() - started
            assert await names(db) == ["before"]
        assert BUSY_TIMEOUT_S * 0.9 <= waited < BUSY_TIMEOUT_S + 1.0, waited
        assert watch.longest_gap < 0.1
        assert await insert(db, "after") == "after"
        assert await names(db) == ["after", "before"]
    finally:
        async with db.write() as conn:
            await conn.execute(text("DROP TABLE t_busy"))
        await other.dispose()
        await db.dispose()


async def test_a_postgres_deadlock_victim_gets_database_busy_and_nothing_is_written(postgres_url: str) -> None:
    """Two writers lock two rows in opposite orders: PostgreSQL breaks the deadlock by rolling one back; that
    one is DatabaseBusy (a 503 to try again), the other commits. The lock wait allowed is longer than
    PostgreSQL's deadlock_timeout (1 s), so it is the deadlock, not a lock timeout, that ends the wait."""
    db = await _items_db(postgres_url, busy_timeout=5.0)
    try:
        await insert(db, "a")
        await insert(db, "b")
        both_hold_one = asyncio.Barrier(2)

        async def writer(first: str, second: str) -> None:
            async with db.write() as conn:
                await conn.execute(text("UPDATE t_busy SET name = name WHERE name = :n"), {"n": first})
                await both_hold_one.wait()
                await conn.execute(text("UPDATE t_busy SET name = name WHERE name = :n"), {"n": second})
                await conn.execute(text("INSERT INTO t_busy (name) VALUES (:n)"), {"n": f"{first}-done"})

        outcomes = await asyncio.gather(writer("a", "b"), writer("b", "a"), return_exceptions=True)
        assert sorted(type(o).__name__ for o in outcomes) == ["DatabaseBusy", "NoneType"], outcomes
        assert len(await names(db)) == 3  # a, b and the one winner's row
    finally:
        async with db.write() as conn:
            await conn.execute(text("DROP TABLE t_busy"))
        await db.dispose()


def test_sqlite_is_in_wal_mode(sqlite_database_url: str) -> None:
    """WAL is what lets readers go on while another process writes (rollback journals block them)."""
    import sqlite3

    path: Path = db_path(sqlite_database_url)

    async def open_once() -> None:
        db = Database(sqlite_database_url)
        assert await db.ping()
        await db.dispose()

    asyncio.run(open_once())
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
