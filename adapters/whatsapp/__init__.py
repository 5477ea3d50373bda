"""WhatsApp through Twilio.

- plugin.py  — the plug-in (adapters/registry.py): settings section, sender, webhook route, pacing
- address.py — phone number -> "whatsapp:+…" address, for members and customers
- channel.py — the inbound webhook, the outbound sender and the 24-hour window rule

The channel's names load on first use, so loading settings (which imports plugin.py) does not load twilio.
"""

from __future__ import annotations

import importlib
from typing import Any

from adapters.whatsapp.address import whatsapp_address

__all__ = ["whatsapp_address"]


def __getattr__(name: str) -> Any:
    # `from adapters.whatsapp import WhatsAppWebhook` and the like keep working (the module was one file).
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("adapters.whatsapp.channel"), name)
