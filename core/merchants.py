"""Merchants (shops) and their API keys."""

from __future__ import annotations

import hashlib
import hmac
import logging

from babel import Locale, UnknownLocaleError
from sqlalchemy import bindparam, select, update

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
_AUTHENTICATE = select(API_KEYS.c.merchant_id, API_KEYS.c.secret_hash).where(
    API_KEYS.c.secret_hash == bindparam("digest"), API_KEYS.c.revoked_at.is_(None)
)


class MerchantError(ValueError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def normalize_locale(locale: str) -> str:
    try:
        return str(Locale.parse(locale.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        raise MerchantError(f"{locale!r} is not a known locale (try en_SG or id_ID)", field="locale") from None


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

    async def list(self) -> list[Merchant]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(MERCHANTS).order_by(MERCHANTS.c.created_at))).all()
        return [Merchant(**r._mapping) for r in rows]

    async def update(self, merchant_id: str, *, currency: str | None = None, locale: str | None = None) -> None:
        values: dict[str, str] = {}
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

    async def create_api_key(self, merchant_id: str) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and only its hash is stored."""
        if await self.get(merchant_id) is None:
            raise MerchantError(f"no merchant with id {merchant_id}", field="merchant")
        secret = ids.api_secret()
        key = ApiKey(
            id=ids.prefixed("key"),
            merchant_id=merchant_id,
            secret_hash=hash_secret(secret),
            hint=secret[-4:],
            created_at=self.clock(),
        )
        async with self.db.write() as conn:
            await conn.execute(API_KEYS.insert().values(**key.model_dump()))
        log.info("api key created key=%s merchant=%s", key.id, merchant_id)
        return key, secret

    async def authenticate(self, secret: str) -> str | None:
        """The merchant id for a live API secret, or None."""
        digest = hash_secret(secret)
        async with self.db.read() as conn:
            row = (await conn.execute(_AUTHENTICATE, {"digest": digest})).first()
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            return None
        return str(row.merchant_id)
