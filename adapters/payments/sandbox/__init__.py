"""The sandbox provider: a pretend card processor served by paylinks itself under /sandbox/.

- provider.py — SandboxProvider (the PaymentProvider port): checkout sessions, signed webhooks
- checkout.py — the hosted checkout page that "charges" a test card and posts the webhook
- plugin.py   — the plug-in (adapters/registry.py): `[payments.sandbox]`, the provider, its pages
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.payments.sandbox.provider import (
        DECLINED_CARD,
        SESSION_LIFETIME_S,
        SIGNATURE_HEADER,
        SUCCESS_CARD,
        CardResult,
        CheckoutSession,
        SandboxProvider,
        classify_card,
    )

__all__ = [
    "DECLINED_CARD",
    "SESSION_LIFETIME_S",
    "SIGNATURE_HEADER",
    "SUCCESS_CARD",
    "CardResult",
    "CheckoutSession",
    "SandboxProvider",
    "classify_card",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the plug-in (plugin.py) is imported with the settings by every command, and
    # the provider brings aiohttp and the core models with it.
    if name in __all__:
        from adapters.payments.sandbox import provider

        return getattr(provider, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
