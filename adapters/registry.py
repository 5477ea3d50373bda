"""The plug-ins paylinks ships: one line per chat platform and per payment provider.

Adding a platform or provider = its own package exporting `PLUGIN` (adapters/plugin.py) + one line
here. The programs (bots/) read these lists when they load settings and assemble the app, so a test
may add a plug-in for its duration (`monkeypatch.setattr(registry, "CHAT_PLATFORMS", [...])`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from adapters.console_plugin import PLUGIN as CONSOLE
from adapters.email.plugin import PLUGIN as EMAIL
from adapters.payments.portone.plugin import PLUGIN as PORTONE
from adapters.payments.sandbox.plugin import PLUGIN as SANDBOX
from adapters.payments.stripe.plugin import PLUGIN as STRIPE
from adapters.plugin import ChatPlatform, PaymentProviderPlugin
from adapters.slack.plugin import PLUGIN as SLACK
from adapters.sms.plugin import PLUGIN as SMS
from adapters.telegram.plugin import PLUGIN as TELEGRAM
from adapters.whatsapp.plugin import PLUGIN as WHATSAPP
from core.pacing import PlatformLimits
from core.ports import AddressRules

CHAT_PLATFORMS: list[ChatPlatform[Any]] = [
    CONSOLE,
    TELEGRAM,
    SLACK,
    WHATSAPP,
    EMAIL,
    SMS,
]

PAYMENT_PROVIDERS: list[PaymentProviderPlugin[Any]] = [
    SANDBOX,
    STRIPE,
    PORTONE,
]


def chat_platforms() -> list[ChatPlatform[Any]]:
    return list(CHAT_PLATFORMS)


def payment_providers() -> dict[str, PaymentProviderPlugin[Any]]:
    return {plugin.name: plugin for plugin in PAYMENT_PROVIDERS}


def enabled_platforms(settings: BaseModel) -> list[ChatPlatform[Any]]:
    return [plugin for plugin in CHAT_PLATFORMS if plugin.enabled(settings)]


def address_rules() -> dict[str, AddressRules]:
    """Every platform's address rules (members keep theirs even while their platform is off)."""
    return {plugin.name: plugin for plugin in CHAT_PLATFORMS}


def customer_platform(settings: BaseModel) -> str | None:
    """The enabled platform that reaches customers (receipts, links), if any."""
    return next((p.name for p in enabled_platforms(settings) if p.reaches_customers), None)


def customer_channels(settings: BaseModel) -> list[str]:
    """Enabled platforms besides customer_platform that reach customers at a contact on their link (email
    by its address, SMS by the phone)."""
    return [p.name for p in enabled_platforms(settings)
            if getattr(p, "customer_contact", None) and not p.reaches_customers]


def via_words() -> tuple[dict[str, str], dict[str, str]]:
    """`/charge … via <word>`: word -> customer channel, and channel -> its name ("SMS"), of every plug-in
    that reaches customers (enabled or not, so the chat can say a channel is not set up here)."""
    words: dict[str, str] = {}
    titles: dict[str, str] = {}
    for plugin in CHAT_PLATFORMS:
        if plugin.reaches_customers or getattr(plugin, "customer_contact", None):
            titles[plugin.name] = plugin.title or plugin.name
            for word in (plugin.name, *getattr(plugin, "via_aliases", ())):
                words[word.casefold()] = plugin.name
    return words, titles


def fallback_channels(settings: BaseModel) -> list[str]:
    """Of customer_channels, those used by default only when customer_platform cannot reach the customer."""
    return [p.name for p in enabled_platforms(settings) if getattr(p, "customer_fallback", False)]


def fallbacks(settings: BaseModel) -> dict[str, str]:
    """Customer platform -> the channel that takes over what it cannot deliver ({"whatsapp": "sms"})."""
    primary = customer_platform(settings)
    others = fallback_channels(settings)
    return {primary: others[0]} if primary and others else {}


def outbox_keys() -> dict[str, str]:
    """The keys the platforms add to [outbox], with their defaults."""
    keys: dict[str, str] = {}
    for plugin in CHAT_PLATFORMS:
        keys.update(plugin.outbox_keys)
    return keys


def pacing_limits(outbox: BaseModel | Mapping[str, str] | None = None) -> dict[str, PlatformLimits]:
    """Every platform's pacing from the [outbox] section (or overrides of the defaults, for tests)."""
    keys = outbox_keys()
    if isinstance(outbox, BaseModel):
        values = {key: str(getattr(outbox, key, default)) for key, default in keys.items()}
    else:
        values = {**keys, **(outbox or {})}
    limits: dict[str, PlatformLimits] = {}
    for plugin in CHAT_PLATFORMS:
        found = plugin.pacing(values)
        if found is not None:
            limits[plugin.name] = found
    return limits
