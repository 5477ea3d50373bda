"""Shops' own payment provider accounts: stored with their secrets encrypted (core/secrets.py).

A shop without a row pays through the deployment's `[payments] provider`. The secrets are a JSON object
(name -> value) encrypted as one value; `version` grows with every change so that a process holding a
client built from older secrets (adapters/payments/accounts.py) builds a new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, PoolProxiedConnection, bindparam, select, update

from core.clock import Clock, utcnow
from core.db import Database
from core.models import ProviderAccount
from core.secrets import SecretBox
from core.sql import insert_row, table

ACCOUNTS = table(ProviderAccount)
_HINT_LENGTH = 4
_HINT_MIN_LENGTH = 12


@dataclass(frozen=True)
class ShopAccount:
    """A shop's own account, decrypted. `repr` never shows the secrets."""

    merchant_id: str
    provider: str
    version: int
    environment: str | None = None
    country_code: str | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def hints(self) -> dict[str, str]:
        """The last four characters of each secret (all that is ever shown of one); nothing of a secret
        too short for four characters to be a small part of it."""
        return {name: "…" + (value[-_HINT_LENGTH:] if len(value) >= _HINT_MIN_LENGTH else "")
                for name, value in sorted(self.secrets.items())}


@dataclass(frozen=True, slots=True)
class AccountVersion:
    provider: str
    version: int


_VERSION_QUERY = select(ACCOUNTS.c.provider, ACCOUNTS.c.version).where(ACCOUNTS.c.merchant_id == bindparam("m"))


class ProviderAccounts:
    def __init__(self, db: Database, box: SecretBox, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.box = box
        self.clock = clock
        # SQLite: version_of runs compiled on one long-lived raw connection of the engine (as the API key
        # lookup does, adapters/web/api_keys.py): every link creation asks it, and SQLAlchemy's execute
        # path and a pool checkout cost ~15x the read itself. Autocommit + WAL: each SELECT sees every
        # commit before it, from any process, so a `merchant set-provider` elsewhere still applies at once.
        self._raw: PoolProxiedConnection | None = None
        self._version_sql = ""

    async def version_of(self, merchant_id: str) -> AccountVersion | None:
        """Which provider and secrets version a shop has (one primary-key read, nothing decrypted)."""
        if self.db.is_sqlite:
            if self._raw is None:
                async with self.db.read() as conn:
                    await conn.run_sync(self._open)
            assert self._raw is not None
            try:
                rows = self._raw.driver_connection.execute(self._version_sql, (merchant_id,)).fetchall()  # type: ignore[union-attr]  # None only once closed
            except Exception:
                self.close()  # a broken connection is not reused; the next call opens a fresh one
                raise
            return AccountVersion(str(rows[0][0]), int(rows[0][1])) if rows else None
        async with self.db.read() as conn:
            row = (await conn.execute(_VERSION_QUERY, {"m": merchant_id})).first()
        return AccountVersion(row.provider, row.version) if row is not None else None

    def _open(self, sync_conn: Connection) -> None:
        if self._raw is None:
            self._version_sql = str(_VERSION_QUERY.compile(dialect=sync_conn.dialect))
            # A connection of the same engine, so it has the same PRAGMAs (WAL, busy_timeout, autocommit).
            self._raw = sync_conn.engine.raw_connection()

    def close(self) -> None:
        """Give the raw connection back (before the database is disposed)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()

    async def get(self, merchant_id: str) -> ShopAccount | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(ACCOUNTS).where(ACCOUNTS.c.merchant_id == merchant_id))).first()
        if row is None:
            return None
        plaintext = self.box.decrypt(row.secrets) or "{}"
        secrets = {str(k): str(v) for k, v in json.loads(plaintext).items()}
        return ShopAccount(merchant_id=row.merchant_id, provider=row.provider, version=row.version,
                           environment=row.environment, country_code=row.country_code, secrets=secrets)

    async def set(self, merchant_id: str, provider: str, *, secrets: dict[str, str],
                  environment: str | None = None, country_code: str | None = None) -> ShopAccount:
        """Store (or replace) the shop's account; the secrets are encrypted before the write."""
        # No secrets (a provider without per-shop keys): nothing to encrypt, so no key is needed.
        encrypted = self.box.encrypt(json.dumps(secrets, sort_keys=True)) if secrets else ""
        values = {"provider": provider, "environment": environment, "country_code": country_code,
                  "secrets": encrypted, "updated_at": self.clock()}
        async with self.db.write() as conn:
            current = (await conn.execute(select(ACCOUNTS.c.version)
                                          .where(ACCOUNTS.c.merchant_id == merchant_id))).first()
            if current is None:
                version = 1
                await insert_row(conn, ACCOUNTS, {"merchant_id": merchant_id, "version": version, **values})
            else:
                version = current.version + 1
                await conn.execute(update(ACCOUNTS).where(ACCOUNTS.c.merchant_id == merchant_id)
                                   .values(version=version, **values))
        return ShopAccount(merchant_id=merchant_id, provider=provider, version=version, environment=environment,
                           country_code=country_code, secrets=dict(secrets))

    async def rotate(self) -> int:
        """Re-encrypt every account's secrets under the current key; returns how many rows changed.

        The version stays: the secrets themselves did not change, so cached clients remain right.
        """
        async with self.db.read() as conn:
            rows = (await conn.execute(select(ACCOUNTS.c.merchant_id, ACCOUNTS.c.secrets))).all()
        changed = 0
        for row in rows:
            rotated = self.box.rotate(row.secrets)
            if rotated is None:
                continue
            async with self.db.write() as conn:
                await conn.execute(update(ACCOUNTS).where(ACCOUNTS.c.merchant_id == row.merchant_id,
                                                          ACCOUNTS.c.secrets == row.secrets)
                                   .values(secrets=rotated))
            changed += 1
        return changed
