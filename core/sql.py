"""Small SQL helpers shared by the core services (portable between SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from core.db import DbConnection, InlineConnection
from core.models import UTCDateTime

_Processor = Callable[[Any], Any] | None


# (column name, its bind processor or None, what the processor makes of None) per column, in the statement's order.
_Binding = tuple[str, _Processor, Any]


@cache
def _compiled_insert(table: Table, dialect: Dialect) -> tuple[str, tuple[_Binding, ...]]:
    statement = table.insert().values({c.name: bindparam(c.name) for c in table.columns})
    compiled = statement.compile(dialect=dialect)
    bindings = []
    for name in compiled.positiontup or ():
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        # SQLAlchemy's processors map None to a constant (NULL, or JSON's 'null'): computed once, not per row.
        bindings.append((name, _fast_processor(table.c[name].type, dialect, process),
                         process(None) if process is not None else None))
    return str(compiled), tuple(bindings)


def _fast_processor(kind: Any, dialect: Dialect, process: _Processor) -> _Processor:
    """The column's bind processor, or a quicker one that gives the same value for the common cases (checked
    against SQLAlchemy's own here) and hands every other value to it. Per link row, the processors' layers
    (TypeDecorator over DATETIME's formatting, json.dumps of {}) cost more than SQLite's insert of it."""
    if process is None:
        return None
    if isinstance(kind, UTCDateTime) and dialect.name == "sqlite":

        def utc_text(value: Any) -> Any:
            # An aware UTC datetime as SQLite's DATETIME stores it ("2026-12-01 18:00:00.000000"); the ISO
            # form with a space is that, plus "+00:00".
            if type(value) is datetime and value.tzinfo is UTC:
                return value.isoformat(" ", "microseconds")[:-6]
            return process(value)

        samples = [datetime(2026, 12, 1, 18, 0, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC),
                   datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
                   datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)]
        return utc_text if all(utc_text(v) == process(v) for v in samples) else process
    if isinstance(kind, JSON) and process({}) == "{}":

        def json_text(value: Any) -> Any:
            return "{}" if type(value) is dict and not value else process(value)

        return json_text
    return process


async def insert_row(conn: DbConnection, table: Table, values: Mapping[str, Any]) -> None:
    """INSERT one row with a value for every column, on the hottest write paths.

    On SQLite the statement is compiled once and run on the driver connection, with each column's own
    SQLAlchemy bind processor (so values are stored exactly as Core would store them): SQLAlchemy's
    per-statement execute machinery costs more than SQLite's insert itself. PostgreSQL uses Core.
    """
    if isinstance(conn, InlineConnection):
        sql, bindings = _compiled_insert(table, conn.dialect)
        params = [value if process is None else none if value is None else process(value)
                  for name, process, none in bindings for value in (values[name],)]
        try:
            conn.driver.execute(sql, params)
        except sqlite3.Error as exc:
            # The same exception types callers get from Core (IntegrityError for a duplicate key…).
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
        return
    await conn.execute(table.insert(), dict(values))


_compiled_selects: dict[tuple[int, str], tuple[Any, str, tuple[str, ...], tuple[_Processor, ...]]] = {}


def _compiled_select(statement: Any, dialect: Dialect) -> tuple[str, tuple[str, ...], tuple[_Processor, ...]]:
    key = (id(statement), dialect.name)
    found = _compiled_selects.get(key)
    if found is None or found[0] is not statement:
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        processors = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                           for column in statement.selected_columns)
        # The statement is kept with its SQL, so its id is never reused by another one while cached.
        found = _compiled_selects[key] = (statement, str(compiled), names, processors)
    return found[1], found[2], found[3]


async def select_all(conn: DbConnection, statement: Any, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Rows of a module-level SELECT with bindparams, on the hottest paths (as tuples, columns in order).

    On SQLite the statement is compiled once and run on the driver connection, each column through its
    own SQLAlchemy result processor (so values are what Core returns), like insert_row. PostgreSQL uses
    Core. Only for statements built once (the cache is keyed by the statement object).
    """
    if isinstance(conn, InlineConnection):
        sql, names, processors = _compiled_select(statement, conn.dialect)
        params = [values[n] for n in names]
        try:
            rows = conn.driver.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
        if any(p is not None for p in processors):
            return [tuple(v if p is None else p(v) for v, p in zip(row, processors, strict=True)) for row in rows]
        return [tuple(row) for row in rows]
    return [tuple(row) for row in (await conn.execute(statement, dict(values))).all()]


async def insert_ignore(conn: DbConnection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was inserted.

    A plain INSERT that hits a unique constraint aborts a PostgreSQL transaction; this does not.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    result = await conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)


def table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]  # set by SQLAlchemy on table=True; SQLModel types none
