"""Which payment provider account serves a shop: the deployment's `[payments] provider`, or the shop's own.

`ProviderDirectory` is the one place that answers it (core.ports.ProviderResolver): link creation (the
provider's money rules and livemode), Pay, return pages, closing and reconciling checkouts, and the
per-shop webhooks. A shop's own account is built by its plug-in (`build_account`) from the decrypted
row and cached keyed by merchant + secrets version, so a `paylinks merchant set-provider` run by another
process is picked up at the next use (each resolution reads the row's version: one primary-key read).

Accounts are named by the merchant id ("account"); None is the deployment's account. A provider whose
plug-in has no per-shop secrets (the sandbox) is served by one deployment-wide instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from adapters.payments.common import ProviderAuthError, ProviderError
from adapters.plugin import PaymentProviderPlugin, PluginContext
from core.ports import AccountProvider, PaymentProvider
from core.provider_accounts import ProviderAccounts, ShopAccount

log = logging.getLogger("paylinks.payments.accounts")


class AccountError(Exception):
    """A shop's account cannot be used (bad shape, refused credentials); the message never has a secret.

    `kind` ("refused", "unavailable", "unknown"; "" for a plug-in's own check of the keys' shape) and `values`
    let a page say it in its reader's language (adapters/web/dashboard/providers.py); the message is the CLI's."""

    def __init__(self, message: str, *, kind: str = "", values: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.values = dict(values or {})


class ProviderDirectory:
    def __init__(self, *, plugins: Mapping[str, PaymentProviderPlugin[Any]], settings: BaseModel,
                 ctx: PluginContext, default: PaymentProvider, accounts: ProviderAccounts) -> None:
        self.plugins = dict(plugins)
        self.settings = settings
        self.ctx = ctx
        self.default = default
        self.accounts = accounts
        self._shared: dict[str, PaymentProvider] = {default.name: default}
        self._own: dict[tuple[str, int], PaymentProvider] = {}
        self._retired: list[PaymentProvider] = []
        self._lock = asyncio.Lock()

    # ---------------------------------------------------------------- resolving

    def shared(self, provider: str) -> PaymentProvider | None:
        """The deployment-wide instance of a provider: the default, or one needing no per-shop secrets."""
        found = self._shared.get(provider)
        if found is None:
            plugin = self.plugins.get(provider)
            if plugin is None or plugin.account_secrets:
                return None  # e.g. Stripe without deployment keys: only shops' own accounts
            found = self._shared[provider] = plugin.build(plugin.section(self.settings), self.ctx)
        return found

    def has_accounts(self, provider: str) -> bool:
        plugin = self.plugins.get(provider)
        return plugin is not None and bool(plugin.account_secrets)

    async def for_merchant(self, merchant_id: str) -> AccountProvider:
        current = await self.accounts.version_of(merchant_id)
        if current is None:
            return AccountProvider(self.default, None)
        if not self.has_accounts(current.provider):
            shared = self.shared(current.provider)
            return AccountProvider(shared if shared is not None else self.default, None)
        return AccountProvider(await self._own_account(merchant_id, current.version), merchant_id)

    async def for_account(self, provider: str, account: str | None) -> PaymentProvider | None:
        if account is None:
            return self.shared(provider)
        return await self.own(account, provider)

    async def own(self, merchant_id: str, provider: str) -> PaymentProvider | None:
        """The shop's own account of this provider; None when it has none (the webhooks fail closed)."""
        if not self.has_accounts(provider):
            return None
        current = await self.accounts.version_of(merchant_id)
        if current is None or current.provider != provider:
            return None
        return await self._own_account(merchant_id, current.version)

    async def _own_account(self, merchant_id: str, version: int) -> PaymentProvider:
        found = self._own.get((merchant_id, version))
        if found is not None:
            return found
        async with self._lock:
            found = self._own.get((merchant_id, version))
            if found is not None:
                return found
            account = await self.accounts.get(merchant_id)
            if account is None:
                raise AccountError(f"merchant {merchant_id} has no provider account any more")
            provider = self.build(account)
            # Instances of older secrets may still serve a request in flight: closed at shutdown, not now.
            for key in [k for k in self._own if k[0] == merchant_id]:
                self._retired.append(self._own.pop(key))
            self._own[(merchant_id, account.version)] = provider
            return provider

    def build(self, account: ShopAccount) -> PaymentProvider:
        plugin = self.plugins[account.provider]
        return plugin.build_account(plugin.section(self.settings), self.ctx, account)

    # ---------------------------------------------------------------- checking new credentials

    async def verify(self, account: ShopAccount) -> None:
        """The account's shape, then one authenticated call to the provider; AccountError when refused."""
        plugin = self.plugins.get(account.provider)
        if plugin is None:
            known = ", ".join(sorted(self.plugins))
            raise AccountError(f"unknown provider {account.provider!r} (known: {known})", kind="unknown",
                               values={"provider": repr(account.provider), "known": known})
        if not plugin.account_secrets:
            return
        section = plugin.section(self.settings)
        try:
            plugin.check_account(section, account)
        except ValueError as exc:
            raise AccountError(str(exc)) from None
        provider = plugin.build_account(section, self.ctx, account)
        try:
            await plugin.verify_account(provider)
        except ProviderAuthError as exc:
            request = exc.request_id or "-"
            raise AccountError(f"{account.provider} refused these credentials (request id {request}); "
                               "nothing was saved", kind="refused",
                               values={"provider": account.provider, "request": request}) from None
        except ProviderError as exc:
            raise AccountError(f"{account.provider} could not check these credentials now ({exc}); nothing was "
                               "saved, try again", kind="unavailable",
                               values={"provider": account.provider, "reason": str(exc)}) from None
        finally:
            await _close(provider)

    # ---------------------------------------------------------------- shutdown

    async def close(self) -> None:
        instances = [*self._own.values(), *self._retired, *self._shared.values()]
        self._own.clear()
        self._retired.clear()
        self.accounts.close()
        for provider in instances:
            await _close(provider)


async def _close(provider: PaymentProvider) -> None:
    close = getattr(provider, "close", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # shutting down: a client that fails to close must not stop the others
        log.warning("provider client did not close cleanly provider=%s", provider.name)
