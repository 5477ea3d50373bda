"""Settings on pydantic-settings: embedded defaults < TOML file (--config / PAYLINKS_CONFIG) <
PAYLINKS_<SECTION>__<KEY> env vars (nested with "__": PAYLINKS_PAYMENTS__SANDBOX__WEBHOOK_SECRET).

The file is assembled from the core sections below and the registry's plug-ins (adapters/registry.py):
each chat platform brings its `[section]` and its `[outbox]` rate keys, each payment provider its
`[payments.<name>]`. config.example.toml documents every key. Unknown keys and wrong types stop start-up
with the key's full name.

Adding a core section: a `Section` model here plus one field on `CoreSettings` (and its keys in
config.example.toml; tests/bots/test_config.py checks both ways).
"""

from __future__ import annotations

import functools
import os
import tomllib
import typing
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapters import registry
from core import limits
from core.durations import format_duration, parse_duration
from core.money import is_currency
from core.settings import NO_SECRET, Duration, RateText, Section

__all__ = ["NO_SECRET", "ConfigError", "Secret", "Settings", "describe", "load_settings"]


class ConfigError(ValueError):
    """A bad configuration; the message names the key."""


# Secrets are pydantic SecretStr: masked in reprs and logs; `core.settings.reveal` reads one.
Secret = SecretStr

ENV_PREFIX = "PAYLINKS_"


# ---------------------------------------------------------------- core sections


def _amount(value: Any) -> Decimal:
    # A number or a decimal string ("10000000", "2500.50"); parsed from its text, never via float maths.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError("must be greater than zero")
    return amount


def _optional_duration(value: Any) -> timedelta | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as \"24h\" (or \"\" for none), got {value!r}")
    return parse_duration(value)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    # Empty: http://{host}:{port} (loopback when host listens on every interface).
    public_base_url: str = ""
    log_level: str = "info"
    # Proxies (CIDRs) whose X-Forwarded-For is believed when finding a client's address for the limits.
    trusted_proxies: list[str] = Field(default_factory=list)


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///./paylinks.db"
    # How long a writer waits (without blocking the server) for another process's write lock: then 503.
    busy_timeout: Duration = timedelta(seconds=5)


class LinksSettings(Section):
    default_currency: str = "USD"
    default_locale: str = "en_US"
    default_expiry: Duration = timedelta(days=7)
    # In major units of the link's currency ("1000000" means 1,000,000.00 USD or 1,000,000 JPY).
    max_amount: Annotated[Decimal, BeforeValidator(_amount)] = limits.DEFAULT_MAX_AMOUNT
    sweep_interval: Duration = timedelta(minutes=1)
    # One reminder this long before a link expires, to customers with a contact who have not paid;
    # empty: none.
    remind_before_expiry: Annotated[timedelta | None, BeforeValidator(_optional_duration)] = timedelta(hours=24)
    # A reusable link's units are held this long for a checkout (Stripe's shortest session), then released.
    reservation_timeout: Duration = timedelta(minutes=30)

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"{value!r} is not an ISO 4217 code")
        return value.upper()


class LimitsSettings(Section):
    # Rates as in [outbox]; checked by adapters/web/ratelimit.py (per process).
    public_per_ip: RateText = "60/min"
    bad_auth_per_ip: RateText = "10/min"
    api_per_key: RateText = "100/s"
    invites_per_shop: int = 10


class SecuritySettings(Section):
    # Fernet key encrypting secrets at rest (core/secrets.py). Empty: paylinks.key beside the SQLite
    # database (created on first use); PostgreSQL deployments must set it.
    secret_key: SecretStr = NO_SECRET
    # Keys used before a rotation: still read, and `paylinks rotate-secrets` re-encrypts under secret_key.
    previous_secret_keys: list[SecretStr] = Field(default_factory=list)


class PaymentsBase(Section):
    """`[payments]`; each provider plug-in adds its `[payments.<name>]` table."""

    provider: str = "sandbox"
    reconcile_after: Duration = timedelta(minutes=10)
    auto_refund_duplicates: bool = True


class OutboxBase(Section):
    """`[outbox]`; each chat platform plug-in adds its rate keys (e.g. telegram_per_chat)."""

    concurrency: int = 8
    max_attempts: int = 12
    max_age: Duration = timedelta(hours=24)
    lease: Duration = timedelta(seconds=60)
    poll_interval: Duration = timedelta(seconds=1)


class WebhooksSettings(Section):
    """`[webhooks]`: merchants' own endpoints (core/webhooks.py, adapters/webhooks/)."""

    # Allow endpoint URLs on loopback, link-local and private addresses (a shop's own network): SSRF risk.
    allow_private: bool = False
    # How long one event is retried (with backoff, at most an hour apart) before it is dead.
    max_age: Duration = timedelta(days=3)
    # An endpoint whose every attempt failed for this long is disabled, and its shop's owner told.
    disable_after: Duration = timedelta(days=5)
    # One attempt waits this long for the endpoint's answer.
    timeout: Duration = timedelta(seconds=10)
    # 32 bytes of URL-safe base64 sealing the signing secrets at rest. Empty: a key file
    # paylinks-secret.key beside the SQLite database (made on first use); required with PostgreSQL.
    secret_key: SecretStr = NO_SECRET


class CoreSettings(BaseSettings):
    """The sections core owns; `Settings` adds the plug-ins' ones."""

    model_config = SettingsConfigDict(extra="forbid", strict=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    links: LinksSettings = Field(default_factory=LinksSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: the environment over the TOML file (passed in as init kwargs by load_settings).
        return (_EnvSource(settings_cls), init_settings)


# The assembled class has these plus one field per plug-in section; typed loosely where plug-ins add keys.
if typing.TYPE_CHECKING:
    class Settings(CoreSettings):
        payments: Any
        outbox: Any

        def __getattr__(self, name: str) -> Any: ...
else:
    Settings = CoreSettings  # replaced by the assembled class below; annotations only


@functools.cache
def _assemble(platforms: tuple[Any, ...], providers: tuple[Any, ...]) -> type[CoreSettings]:
    """The Settings class for these plug-ins (cached: the registry rarely changes, tests may add one)."""
    provider_fields: dict[str, Any] = {
        p.name: (p.settings_model, Field(default_factory=p.settings_model)) for p in providers
    }
    payments: type[Section] = create_model("PaymentsSettings", __base__=PaymentsBase, **provider_fields)
    outbox_fields: dict[str, Any] = {}
    for platform in platforms:
        for key, default in platform.outbox_keys.items():
            outbox_fields[key] = (RateText, default)
    outbox: type[Section] = create_model("OutboxSettings", __base__=OutboxBase, **outbox_fields)
    sections: dict[str, Any] = {
        "payments": (payments, Field(default_factory=payments)),
        "outbox": (outbox, Field(default_factory=outbox)),
    }
    for platform in platforms:
        if platform.settings_model is not None:
            sections[platform.name] = (platform.settings_model, Field(default_factory=platform.settings_model))
    assembled: type[CoreSettings] = create_model("Settings", __base__=CoreSettings, **sections)
    return assembled


def settings_class() -> type[CoreSettings]:
    return _assemble(tuple(registry.CHAT_PLATFORMS), tuple(registry.PAYMENT_PROVIDERS))


# ---------------------------------------------------------------- the environment

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("paylinks_settings_env", default=None)
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class _EnvSource(PydanticBaseSettingsSource):
    """PAYLINKS_<SECTION>__<KEY> variables as nested values, converted from text by the key's type (the
    models are strict, so "true" and "8091" must become a bool and an int here). Unknown names are
    refused, naming the variable."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ does the work

    def __call__(self) -> dict[str, Any]:
        env = _ENVIRON.get()
        env = os.environ if env is None else env
        data: dict[str, Any] = {}
        for name, raw in env.items():
            if not name.startswith(ENV_PREFIX) or "__" not in name:
                continue  # PAYLINKS_CONFIG and friends
            path = name[len(ENV_PREFIX):].lower().split("__")
            annotation = _annotation_at(self.settings_cls, path, name)
            target = data
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = _from_text(annotation, raw, ".".join(path))
        return data


def _annotation_at(model: type[BaseModel], path: list[str], name: str) -> Any:
    annotation: Any = model
    for part in path:
        fields = annotation.model_fields if isinstance(annotation, type) and issubclass(annotation, BaseModel) else {}
        if part not in fields:
            raise ConfigError(f"unknown setting in environment: {name}")
        annotation = fields[part].annotation
    return annotation


def _from_text(annotation: Any, raw: str, key: str) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        raise ConfigError(f"{key}: is a table; set its keys instead")
    origin = typing.get_origin(annotation)
    if annotation is dict or origin is dict:
        raise ConfigError(f"{key}: is a table; set it in the config file")
    if annotation is bool:
        word = raw.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        return raw  # refused by validation, naming the key
    if annotation is int:
        text = raw.strip()
        return int(text) if text.lstrip("-").isdigit() else raw
    if annotation is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    if annotation is list or origin is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


# ---------------------------------------------------------------- loading


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    path = path or env.get("PAYLINKS_CONFIG") or None
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    token = _ENVIRON.set(env)
    try:
        settings = settings_class()(**data)
    except ValidationError as exc:
        raise ConfigError(_message(exc)) from None
    finally:
        _ENVIRON.reset(token)
    _check(settings)
    return typing.cast(Settings, settings)


def _message(exc: ValidationError) -> str:
    """The first error as "<full.key>: what was wrong"."""
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"]) or "config"
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"unknown key: {key}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{key}: expected an integer, got {value!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{key}: expected true or false, got {value!r}"
    if kind in ("string_type", "string_sub_type"):
        return f"{key}: expected a string, got {type(value).__name__}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key}: expected a table"
    if kind in ("list_type",):
        return f"{key}: expected a list, got {type(value).__name__}"
    if kind == "value_error":
        return f"{key}: {error['ctx']['error']}"
    return f"{key}: {error['msg']}"


def _check(loaded: CoreSettings) -> None:
    """Checks across keys and plug-ins, after every value has its type."""
    settings: Any = loaded  # the plug-ins' sections are fields of the assembled class
    server = settings.server
    if not server.public_base_url:
        host = "127.0.0.1" if server.host in ("", "0.0.0.0", "::") else server.host
        host = f"[{host}]" if ":" in host else host
        server.public_base_url = f"http://{host}:{server.port}"
    server.public_base_url = server.public_base_url.rstrip("/")
    providers = registry.payment_providers()
    payments: Any = settings.payments
    if payments.provider not in providers:
        raise ConfigError(f"payments.provider: unknown provider {payments.provider!r} "
                          f"(known: {', '.join(sorted(providers))})")
    try:
        provider = providers[payments.provider]
        provider.check(provider.section(settings), settings)
        for platform in registry.CHAT_PLATFORMS:
            section = platform.section(settings)
            if section is not None:
                platform.check(section, settings)
        from bots.dispatcher import check_outbox_settings
        from core.ratelimit import check_limits_settings

        check_outbox_settings(settings.outbox)
        check_limits_settings(settings.limits, settings.server.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def describe(settings: BaseModel) -> dict[str, Any]:
    """Settings as plain data with secrets masked (for tests and tools that show settings)."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            return {name: walk(getattr(obj, name)) for name in type(obj).model_fields}
        if isinstance(obj, SecretStr):
            return "***" if obj.get_secret_value() else ""
        if isinstance(obj, timedelta):
            return format_duration(obj)
        if isinstance(obj, Decimal):
            return str(obj)
        return obj

    result: dict[str, Any] = walk(settings)
    return result
