"""Small SQL helpers shared by the core services (portable between SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite

from core.db import DbConnection


async def insert_ignore(conn: DbConnection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was inserted.

    A plain INSERT that hits a unique constraint aborts a PostgreSQL transaction; this does not.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    result = await conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)


def table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]
