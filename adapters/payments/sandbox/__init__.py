"""The sandbox provider: a pretend card processor served by paylinks itself under /sandbox/.

- provider.py — SandboxProvider (the PaymentProvider port): checkout sessions, signed webhooks
- checkout.py — the hosted checkout page that "charges" a test card and posts the webhook
- plugin.py   — the plug-in (adapters/registry.py): `[payments.sandbox]`, the provider, its pages
"""

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
