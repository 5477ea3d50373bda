"""Settings: embedded defaults < TOML file (--config / PAYLINKS_CONFIG) < PAYLINKS_<SECTION>__<KEY> env vars.

Every key is declared here with its type; config.example.toml documents each one. Unknown keys and wrong
types stop start-up with the key's full name.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from core.durations import format_duration, parse_duration
from core.money import is_currency


class ConfigError(ValueError):
    """A bad configuration; the message names the key."""


class Secret(str):
    """A string that never shows itself in a repr (so settings can be logged)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


NO_SECRET = Secret("")


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str = "http://127.0.0.1:8080"
    log_level: str = "info"
    # Proxies (CIDRs) whose X-Forwarded-For is believed when finding a client's address for the limits.
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass
class DatabaseSettings:
    url: str = "sqlite+aiosqlite:///./paylinks.db"
    # How long a writer waits (without blocking the server) for another process's write lock: then 503.
    busy_timeout: timedelta = timedelta(seconds=5)


@dataclass
class LinksSettings:
    default_currency: str = "USD"
    default_locale: str = "en_US"
    default_expiry: timedelta = timedelta(days=7)
    # In major units of the link's currency ("1000000" means 1,000,000.00 USD or 1,000,000 JPY).
    max_amount: Decimal = Decimal("10000000")
    sweep_interval: timedelta = timedelta(minutes=1)


@dataclass
class SandboxSettings:
    # Empty: a random secret per process, fine while one `paylinks serve` both signs and verifies.
    webhook_secret: Secret = NO_SECRET


@dataclass
class PaymentsSettings:
    provider: str = "sandbox"
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)


@dataclass
class OutboxSettings:
    concurrency: int = 8
    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(seconds=60)
    poll_interval: timedelta = timedelta(seconds=1)
    telegram_per_chat: str = "1/s"
    telegram_per_group: str = "20/min"
    telegram_overall: str = "30/s"
    slack_per_channel: str = "1/s"
    whatsapp_per_sender: str = "80/s"


@dataclass
class LimitsSettings:
    # Rates as in [outbox]; checked by adapters/web/ratelimit.py (per process).
    public_per_ip: str = "60/min"
    bad_auth_per_ip: str = "10/min"
    api_per_key: str = "100/s"
    invites_per_shop: int = 10


@dataclass
class TelegramSettings:
    enabled: bool = False
    token: Secret = NO_SECRET
    mode: str = "webhook"
    webhook_secret: Secret = NO_SECRET
    api_base_url: str = "https://api.telegram.org"
    send_qr: bool = False


@dataclass
class SlackSettings:
    enabled: bool = False
    bot_token: Secret = NO_SECRET
    signing_secret: Secret = NO_SECRET
    client_id: str = ""
    client_secret: Secret = NO_SECRET
    api_base_url: str = "https://slack.com/api/"


@dataclass
class WhatsAppSettings:
    enabled: bool = False
    account_sid: str = ""
    auth_token: Secret = NO_SECRET
    from_number: str = ""
    api_base_url: str = "https://api.twilio.com"
    # name -> {content_sid = "HX…", variables = {...}}; used outside the 24-hour window.
    templates: dict[str, Any] = field(default_factory=dict)


@dataclass
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    links: LinksSettings = field(default_factory=LinksSettings)
    payments: PaymentsSettings = field(default_factory=PaymentsSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    whatsapp: WhatsAppSettings = field(default_factory=WhatsAppSettings)


ENV_PREFIX = "PAYLINKS_"


def load_settings(path: str | Path | None = None, env: typing.Mapping[str, str] | None = None) -> Settings:
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
    settings = _build(Settings, data, "")
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            _apply_env(settings, name[len(ENV_PREFIX):].lower().split("__"), value, name)
    _check(settings)
    return settings


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown key: {prefix}{key}")
    kwargs = {key: _coerce(hints[key], value, f"{prefix}{key}") for key, value in data.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str, *, from_env: bool = False) -> Any:
    if dataclasses.is_dataclass(hint):
        if from_env:
            raise ConfigError(f"{key}: is a table; set its keys instead")
        return _build(hint, value, f"{key}.")
    if hint is bool:
        if from_env and isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if from_env and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is timedelta:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a duration such as \"7d\", got {value!r}")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    if hint is Decimal:
        # A number or a decimal string ("10000000", "2500.50"); parsed from its text, never via float maths.
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__}")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f"{key}: {value!r} is not a number") from None
    if hint in (str, Secret):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__}")
        return Secret(value) if hint is Secret else value
    origin = typing.get_origin(hint)
    if origin is list:
        # TOML: a list of strings; environment: comma-separated ("10.0.0.0/8, 192.168.1.5").
        if from_env and isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return list(value)
    if origin is dict or hint is dict:
        if from_env:
            raise ConfigError(f"{key}: is a table; set it in the config file")
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint!r}")


def _apply_env(settings: Settings, path: list[str], raw: str, name: str) -> None:
    target: Any = settings
    for part in path[:-1]:
        if not dataclasses.is_dataclass(target) or part not in {f.name for f in dataclasses.fields(target)}:
            raise ConfigError(f"unknown setting in environment: {name}")
        target = getattr(target, part)
    key = path[-1]
    if not dataclasses.is_dataclass(target) or key not in {f.name for f in dataclasses.fields(target)}:
        raise ConfigError(f"unknown setting in environment: {name}")
    hint = _hints(type(target))[key]
    setattr(target, key, _coerce(hint, raw, ".".join(path), from_env=True))


def _check(settings: Settings) -> None:
    links = settings.links
    if not is_currency(links.default_currency):
        raise ConfigError(f"links.default_currency: {links.default_currency!r} is not an ISO 4217 code")
    links.default_currency = links.default_currency.upper()
    if not links.max_amount.is_finite() or links.max_amount <= 0:
        raise ConfigError("links.max_amount: must be greater than zero")
    if settings.payments.provider not in ("sandbox",):
        raise ConfigError(f"payments.provider: unknown provider {settings.payments.provider!r} (known: sandbox)")
    if settings.telegram.mode not in ("webhook", "polling"):
        raise ConfigError("telegram.mode: expected \"webhook\" or \"polling\"")
    if settings.whatsapp.enabled:
        from adapters.whatsapp import check_settings

        try:
            check_settings(settings.whatsapp)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if settings.slack.enabled:
        from adapters.slack import check_settings as check_slack

        try:
            check_slack(settings.slack)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    from bots.dispatcher import check_outbox_settings

    try:
        check_outbox_settings(settings.outbox)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    from core.ratelimit import check_limits_settings

    try:
        check_limits_settings(settings.limits, settings.server.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    settings.server.public_base_url = settings.server.public_base_url.rstrip("/")


def describe(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with secrets masked, for `paylinks config` and start-up logs."""

    def walk(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj):
            return {f.name: walk(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, Secret):
            return "***" if obj else ""
        if isinstance(obj, timedelta):
            return format_duration(obj)
        if isinstance(obj, Decimal):
            return str(obj)
        return obj

    return walk(settings)
