"""The resolver of webhook deliveries: only addresses the SSRF rules allow (adapters/webhooks/sender.py)."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from core.webhooks import address_allowed


class BlockedAddress(OSError):
    """The host resolves only to addresses deliveries may not connect to."""


class GuardedResolver(AbstractResolver):
    """The default resolver, keeping only the addresses the SSRF rules allow (checked per connection,
    so a name cannot later be pointed inside the network)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if address_allowed(r["host"], allow_private=self.allow_private)]
        if not kept:
            raise BlockedAddress(f"{host} resolves only to loopback, link-local or private addresses")
        return kept

    async def close(self) -> None:
        await self._inner.close()
