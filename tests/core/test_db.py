"""Database.write() semantics on both back ends, and SQLite's group commit in particular."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from core.db import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async for database in _with_items(database_url):
        yield database


@pytest.fixture
async def sqlite_db(sqlite_database_url: str) -> AsyncIterator[Database]:
    """SQLite only: its writers queue and share one batch (PostgreSQL writers run side by side)."""
    async for database in _with_items(sqlite_database_url):
        yield database


async def _with_items(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    async with database.write() as conn:
        # No id column: "INTEGER PRIMARY KEY" autoincrements on SQLite but not on PostgreSQL.
        await conn.execute(text("CREATE TABLE IF NOT EXISTS t_items (name TEXT PRIMARY KEY)"))
    yield database
    async with database.write() as conn:
        await conn.execute(text("DROP TABLE t_items"))
    await database.dispose()


async def names(db: Database) -> list[str]:
    async with db.read() as conn:
        return [r.name for r in (await conn.execute(text("SELECT name FROM t_items ORDER BY name"))).all()]


async def insert(db: Database, name: str, *, fail: bool = False, pause: asyncio.Event | None = None) -> str:
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t_items (name) VALUES (:n)"), {"n": name})
        if pause is not None:
            await pause.wait()
        if fail:
            raise ValueError(f"{name} failed")
    return name


async def test_concurrent_writers_commit_independently(db: Database) -> None:
    results = await asyncio.gather(
        *(insert(db, f"w{i}", fail=(i % 3 == 1)) for i in range(9)), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, ValueError)]
    assert len(failed) == 3
    assert await names(db) == ["w0", "w2", "w3", "w5", "w6", "w8"]


async def test_a_statement_error_undoes_only_its_writer(db: Database) -> None:
    await insert(db, "dup")
    results = await asyncio.gather(insert(db, "a"), insert(db, "dup"), insert(db, "b"), return_exceptions=True)
    assert results[0] == "a" and results[2] == "b" and isinstance(results[1], Exception)
    assert await names(db) == ["a", "b", "dup"]


async def test_the_loser_of_a_unique_race_can_read_the_winner(db: Database) -> None:
    async def insert_or_read(name: str) -> str:
        try:
            return await insert(db, name)
        except IntegrityError:
            return "saw winner" if name in await names(db) else "saw nothing"

    results = await asyncio.gather(*(insert_or_read("same") for _ in range(4)))
    assert sorted(results) == ["same", "saw winner", "saw winner", "saw winner"]


async def test_writers_return_only_after_their_data_is_visible(db: Database) -> None:
    async def write_then_read(name: str) -> bool:
        await insert(db, name)
        return name in await names(db)  # another connection sees it: it was committed

    assert all(await asyncio.gather(*(write_then_read(f"v{i}") for i in range(20))))


async def test_a_cancelled_waiter_does_not_strand_the_batch(sqlite_db: Database) -> None:
    db = sqlite_db
    gate = asyncio.Event()
    first = asyncio.create_task(insert(db, "first", pause=gate))
    await asyncio.sleep(0.01)
    queued = asyncio.create_task(insert(db, "queued"))
    await asyncio.sleep(0.01)
    queued.cancel()
    gate.set()
    assert await asyncio.wait_for(first, 5) == "first"
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert await names(db) == ["first"]
    assert await asyncio.wait_for(insert(db, "after"), 5) == "after"


async def test_a_transaction_ended_under_a_writer_frees_the_lock(sqlite_db: Database) -> None:
    """If SQLite ends the batch's transaction inside a writer (here: a stray COMMIT; in life an I/O error),
    that writer fails, and the next writer and closing the database do not wait forever for the lock."""
    db = sqlite_db
    with pytest.raises(sqlite3.OperationalError, match="savepoint"):
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t_items (name) VALUES ('lost')"))
            await conn.execute(text("COMMIT"))
    assert await asyncio.wait_for(insert(db, "after"), 5) == "after"
    assert "after" in await names(db)


async def test_failed_commit_fails_every_writer_of_the_batch(tmp_path: Path) -> None:
    """SQLite checks deferred foreign keys at COMMIT: one bad row makes the whole COMMIT fail."""
    path = tmp_path / "deferred.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        raw.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER "
                    "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    db = Database(f"sqlite+aiosqlite:///{path}")

    async def write(sql: str) -> None:
        async with db.write() as conn:
            await conn.execute(text(sql))

    try:
        # Started in one loop turn, the three writers share one batch (its COMMIT comes a turn later).
        results = await asyncio.gather(
            write("INSERT INTO parent (id) VALUES (1)"),
            write("INSERT INTO parent (id) VALUES (2)"),
            write("INSERT INTO child (id, parent_id) VALUES (1, 99)"),
            return_exceptions=True,
        )
        assert all(isinstance(r, Exception) for r in results), results
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM parent"))).scalar() == 0
        await write("INSERT INTO parent (id) VALUES (3)")  # the next batch works again
    finally:
        await db.dispose()


async def test_exclusive_commits_an_open_batch_first(sqlite_database_url: str) -> None:
    db = Database(sqlite_database_url)
    try:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE t_x (id INTEGER PRIMARY KEY)"))
        gate = asyncio.Event()

        async def writer() -> None:
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO t_x (id) VALUES (1)"))
                await gate.wait()

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.01)
        seen: list[int] = []

        async def other_connection() -> None:
            async with db.exclusive():
                # Another connection can write now: no batch holds SQLite's write lock.
                with sqlite3.connect(sqlite_database_url.split(":///", 1)[1], timeout=0.1) as raw:
                    raw.execute("INSERT INTO t_x (id) VALUES (2)")
                    seen.extend(r[0] for r in raw.execute("SELECT id FROM t_x ORDER BY id"))

        exclusive = asyncio.create_task(other_connection())
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.wait_for(asyncio.gather(task, exclusive), 5)
        assert seen == [1, 2]
    finally:
        await db.dispose()
