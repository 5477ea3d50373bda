"""Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

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


async def test_api_keys_made_before_key_management_stay_live_keys_that_work(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from core.db import sqlite_url
    from core.merchants import MerchantService, hash_secret

    db = Database(sqlite_url(tmp_path / "old.db"))
    secret = "pl_live_" + "k" * 43
    try:
        assert db.sync_engine is not None
        with db.sync_engine.connect() as sync_conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = sync_conn
            command.upgrade(config, "0003_merge")
            sync_conn.execute(text("INSERT INTO merchant (id, name, default_currency, locale, created_at) "
                                   "VALUES ('mer_old', 'Old Shop', 'SGD', 'en_SG', '2026-01-01 00:00:00')"))
            sync_conn.execute(text("INSERT INTO api_key (id, merchant_id, secret_hash, hint, created_at) "
                                   "VALUES ('key_old', 'mer_old', :digest, 'kkkk', '2026-01-01 00:00:00')"),
                              {"digest": hash_secret(secret)})
            sync_conn.commit()
        await db.migrate()
        merchants = MerchantService(db, default_currency="USD", default_locale="en_US")
        owner = await merchants.authenticate(secret)
        assert owner is not None and (owner.key_id, owner.merchant_id) == ("key_old", "mer_old")
        [key] = await merchants.list_api_keys("mer_old")
        assert (key.prefix, key.hint, key.last_used_at, key.revoked_at) == ("pl_live_", "kkkk", None, None)
    finally:
        await db.dispose()
