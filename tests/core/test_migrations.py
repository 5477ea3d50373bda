"""Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from core.db import MIGRATIONS_DIR, Database
from core.models import metadata


def test_one_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    db = Database(database_url)  # the fixture's database was built by Database.migrate()

    def diff(sync_conn: Connection) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    try:
        async with db.read() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()
