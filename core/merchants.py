"""Merchants (shops) and their API keys.

API keys start `pl_test_` when the shop takes pretend payments (the sandbox provider; later Stripe test
keys or PortOne's sandbox) and `pl_live_` otherwise, so a key's kind shows at a glance. A key is found by
the SHA-256 of its secret on every API request (no cache), so `revoke_api_key` takes effect on the next
request in every process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime

from babel import Locale, UnknownLocaleError
from sqlalchemy import bindparam, or_, select, update

from core import ids
from core.clock import Clock, utcnow
from core.db import Database
from core.models import ApiKey, Merchant
from core.money import MoneyError, normalize_currency
from core.sql import table
from core.text import BIDI_CONTROLS_TEXT, has_bidi_controls

log = logging.getLogger("paylinks.merchants")

MERCHANTS = table(Merchant)
API_KEYS = table(ApiKey)

_GET_MERCHANT = select(MERCHANTS).where(MERCHANTS.c.id == bindparam("id"))
TEST_KEY_PREFIX = "pl_test_"
LIVE_KEY_PREFIX = "pl_live_"
# A live key's owner, by the hash of its secret: one indexed lookup, run on every API request (its
# columns are KeyOwner's fields, in order; adapters/web/api_keys.py runs it raw on SQLite).
KEY_OWNER_QUERY = (
    select(API_KEYS.c.id.label("key_id"), API_KEYS.c.merchant_id, MERCHANTS.c.default_currency,
           API_KEYS.c.secret_hash)
    .join_from(API_KEYS, MERCHANTS, MERCHANTS.c.id == API_KEYS.c.merchant_id)
    .where(API_KEYS.c.secret_hash == bindparam("digest"), API_KEYS.c.revoked_at.is_(None))
)


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """Who an API secret belongs to."""

    key_id: str
    merchant_id: str
    default_currency: str
    secret_hash: str


class MerchantError(ValueError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def normalize_locale(locale: str) -> str:
    try:
        return str(Locale.parse(locale.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        raise MerchantError(f"{locale!r} is not a known locale (try en_SG or id_ID)", field="locale") from None


def normalize_timezone(name: str) -> str:
    """An IANA time zone name ("asia/singapore" -> "Asia/Singapore"), or MerchantError."""
    from zoneinfo import available_timezones

    wanted = name.strip().replace(" ", "_")
    for zone in available_timezones():
        if zone.casefold() == wanted.casefold():
            return zone
    raise MerchantError(f"{name!r} is not a time zone name (try Asia/Singapore or Asia/Jakarta)", field="timezone")


def hash_secret(secret: str) -> str:
    # API secrets are 256-bit random strings, so a plain SHA-256 is enough (no password stretching).
    return hashlib.sha256(secret.encode()).hexdigest()


class MerchantService:
    def __init__(
        self, db: Database, *, default_currency: str, default_locale: str, clock: Clock = utcnow
    ) -> None:
        self.db = db
        self.default_currency = default_currency
        self.default_locale = default_locale
        self.clock = clock

    async def create(self, name: str, *, currency: str | None = None, locale: str | None = None) -> Merchant:
        name = name.strip()
        if not name:
            raise MerchantError("a merchant needs a name", field="name")
        if has_bidi_controls(name):
            raise MerchantError(f"the name contains {BIDI_CONTROLS_TEXT}, which could make the text around it "
                                "read differently; remove them", field="name")
        try:
            code = normalize_currency(currency or self.default_currency)
        except MoneyError as exc:
            raise MerchantError(str(exc), field="currency") from None
        merchant = Merchant(
            id=ids.prefixed("mer"),
            name=name[:200],
            default_currency=code,
            locale=normalize_locale(locale or self.default_locale),
            created_at=self.clock(),
        )
        async with self.db.write() as conn:
            await conn.execute(MERCHANTS.insert().values(**merchant.model_dump()))
        log.info("merchant created merchant=%s", merchant.id)
        return merchant

    async def get(self, merchant_id: str) -> Merchant | None:
        async with self.db.read() as conn:
            row = (await conn.execute(_GET_MERCHANT, {"id": merchant_id})).first()
        return Merchant.model_construct(**row._mapping) if row else None

    async def list_merchants(self) -> list[Merchant]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(MERCHANTS).order_by(MERCHANTS.c.created_at))).all()
        return [Merchant(**r._mapping) for r in rows]

    async def update(self, merchant_id: str, *, currency: str | None = None, locale: str | None = None,
                     name: str | None = None, timezone: str | None = None) -> None:
        values: dict[str, str] = {}
        if name is not None:
            name = name.strip()
            if not name:
                raise MerchantError("a shop needs a name", field="name")
            if has_bidi_controls(name) or any(ord(ch) < 32 for ch in name):
                raise MerchantError(f"the name contains control characters or {BIDI_CONTROLS_TEXT}; remove them",
                                    field="name")
            values["name"] = name[:200]
        if timezone is not None:
            values["timezone"] = normalize_timezone(timezone)
        if currency is not None:
            try:
                values["default_currency"] = normalize_currency(currency)
            except MoneyError as exc:
                raise MerchantError(str(exc), field="currency") from None
        if locale is not None:
            values["locale"] = normalize_locale(locale)
        if values:
            async with self.db.write() as conn:
                await conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant_id).values(**values))

    async def create_api_key(self, merchant_id: str, *, test: bool) -> tuple[ApiKey, str]:
        """A new key (`pl_test_…` when `test`, else `pl_live_…`); the secret is returned once and only
        its hash is stored."""
        if await self.get(merchant_id) is None:
            raise MerchantError(f"no merchant with id {merchant_id}", field="merchant")
        prefix = TEST_KEY_PREFIX if test else LIVE_KEY_PREFIX
        secret = ids.api_secret(prefix)
        key = ApiKey(
            id=ids.prefixed("key"),
            merchant_id=merchant_id,
            secret_hash=hash_secret(secret),
            hint=secret[-4:],
            prefix=prefix,
            created_at=self.clock(),
        )
        async with self.db.write() as conn:
            await conn.execute(API_KEYS.insert().values(**key.model_dump()))
        log.info("api key created key=%s merchant=%s prefix=%s", key.id, merchant_id, prefix)
        return key, secret

    async def list_api_keys(self, merchant_id: str) -> list[ApiKey]:
        """Every key of the merchant, revoked ones included, oldest first."""
        if await self.get(merchant_id) is None:
            raise MerchantError(f"no merchant with id {merchant_id}", field="merchant")
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(API_KEYS).where(API_KEYS.c.merchant_id == merchant_id)
                    .order_by(API_KEYS.c.created_at, API_KEYS.c.id)
                )
            ).all()
        return [ApiKey.model_construct(**r._mapping) for r in rows]

    async def revoke_api_key(self, key_id: str) -> tuple[ApiKey, bool]:
        """Revoke a key by id; (the key, whether this call revoked it — False: it was revoked already)."""
        now = self.clock()
        async with self.db.write() as conn:
            result = await conn.execute(
                update(API_KEYS).where(API_KEYS.c.id == key_id, API_KEYS.c.revoked_at.is_(None)).values(revoked_at=now)
            )
            row = (await conn.execute(select(API_KEYS).where(API_KEYS.c.id == key_id))).first()
        if row is None:
            raise MerchantError(f"no API key with id {key_id}", field="key")
        revoked = bool(result.rowcount)
        if revoked:
            log.info("api key revoked key=%s merchant=%s", key_id, row.merchant_id)
        return ApiKey.model_construct(**row._mapping), revoked

    async def authenticate(self, secret: str) -> KeyOwner | None:
        """The key and merchant of a live (not revoked) API secret, or None."""
        digest = hash_secret(secret)
        async with self.db.read() as conn:
            row = (await conn.execute(KEY_OWNER_QUERY, {"digest": digest})).first()
        if row is None:
            return None
        owner = KeyOwner(*row)
        return owner if hmac.compare_digest(owner.secret_hash, digest) else None

    async def record_key_use(self, key_id: str, when: datetime | None = None) -> None:
        """Set the key's last_used_at (never backwards: processes may report out of order)."""
        when = when or self.clock()
        async with self.db.write() as conn:
            await conn.execute(
                update(API_KEYS)
                .where(API_KEYS.c.id == key_id, or_(API_KEYS.c.last_used_at.is_(None), API_KEYS.c.last_used_at < when))
                .values(last_used_at=when)
            )
