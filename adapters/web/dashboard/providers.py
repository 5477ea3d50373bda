"""The dashboard's payment provider page (owners only): what `paylinks merchant set-provider` does, on the web.

Secrets are write-only: the page shows the last four characters of each stored one (ShopAccount.hints) and
never puts a value into a form, not even after a refused save. A blank secret field keeps the stored value
of the same provider, so the environment can change without typing the keys again. New keys are checked
with the provider (ProviderDirectory.verify, the check the CLI uses) before anything is saved; "Test
connection" runs the same check without saving, on the typed keys or on the stored ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.payments.accounts import AccountError, ProviderDirectory
from adapters.web.dashboard.session import CSRF_FIELD
from core.models import Merchant
from core.provider_accounts import ProviderAccounts, ShopAccount
from core.signin import Session

if TYPE_CHECKING:
    from adapters.web.dashboard.views import Dashboard

# How the page names the plug-ins' secrets and options.
SECRET_LABELS = {"secret_key": "Secret key", "webhook_secret": "Webhook signing secret", "client_key": "Client key"}
SECRET_HINTS = {
    ("stripe", "secret_key"): "From the Stripe dashboard: sk_live_… (or sk_test_… to rehearse)",
    ("stripe", "webhook_secret"): "whsec_…, of the webhook endpoint registered for this shop",
    ("portone", "client_key"): "The PortOne key from PortOne's admin console",
    ("portone", "secret_key"): "The PortOne secret key",
}
ENVIRONMENTS = ("sandbox", "live")


class ProviderPages:
    """GET/POST /dashboard/providers; mounted by Dashboard.routes when the directory is given."""

    def __init__(self, dashboard: Dashboard, directory: ProviderDirectory, accounts: ProviderAccounts, *,
                 public_base_url: str) -> None:
        self.dashboard = dashboard
        self.directory = directory
        self.accounts = accounts
        self.public_base_url = public_base_url

    def routes(self, page: Callable[..., Callable[[web.Request], Awaitable[web.StreamResponse]]]
               ) -> list[web.RouteDef]:
        return [
            web.get("/dashboard/providers", page(self.show, owner=True)),
            web.post("/dashboard/providers", page(self.save, owner=True)),
        ]

    # ------------------------------------------------------------ the page

    async def show(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        return await self._page(request, session, merchant, notice=request.query.get("done", ""))

    async def _page(self, request: web.Request, session: Session, merchant: Merchant, *, status: int = 200,
                    notice: str = "", chosen: str = "", values: dict[str, str] | None = None,
                    errors: dict[str, str] | None = None, tested: str = "") -> web.Response:
        account = await self.accounts.get(merchant.id)
        default = self.directory.default.name
        current = account.provider if account is not None else default
        own = account is not None and self.directory.has_accounts(account.provider)
        hints = account.hints() if account is not None and own else {}
        values = values or {}
        forms = []
        # The provider in use first, then the others by name.
        for name, plugin in sorted(self.directory.plugins.items(), key=lambda item: (item[0] != current, item[0])):
            same = account is not None and account.provider == name
            forms.append({
                "name": name, "title": _title(name),
                "secrets": [{"name": s, "id": f"{name}-{s}", "label": SECRET_LABELS.get(s, s.replace("_", " ")),
                             "hint": SECRET_HINTS.get((name, s), ""),
                             "stored": hints.get(s, "") if same else ""} for s in plugin.account_secrets],
                "environment": (values.get("environment") if chosen == name else None)
                or (account.environment if same and account is not None else None)
                or plugin.account_defaults.get("environment", "sandbox"),
                "country": (values.get("country_code") if chosen == name else None)
                or (account.country_code if same and account is not None else None) or "",
                "options": plugin.account_options, "current": name == current,
                "webhook_url": self.public_base_url + plugin.shop_webhook_path(merchant.id)
                if plugin.account_secrets else "",
            })
        return self.dashboard.render(
            "dashboard/providers.html", request, session, merchant, status=status, title="Payment provider",
            current=current, current_title=_title(current), own=own, default=default,
            environment=account.environment if account else None,
            country=account.country_code if account else None, hints=hints, forms=forms, notice=notice,
            chosen=chosen, errors=errors or {}, tested=tested, environments=ENVIRONMENTS,
            webhook_url=next((f["webhook_url"] for f in forms if f["name"] == current), "") if own else "")

    # ------------------------------------------------------------ save or test

    async def save(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        form = await request.post()
        values = {k: str(v).strip()[:500] for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}
        intent = values.get("intent", "save")
        stored = await self.accounts.get(merchant.id)
        if intent == "test-stored":
            return await self._test_stored(request, session, merchant, stored)
        name = values.get("provider", "")
        plugin = self.directory.plugins.get(name)
        if plugin is None:
            return await self._page(request, session, merchant, status=422, errors={"form": (
                f"Choose one of the providers shown ({', '.join(sorted(self.directory.plugins))}).")})
        secrets: dict[str, str] = {}
        errors: dict[str, str] = {}
        for secret in plugin.account_secrets:
            typed = values.get(secret, "")
            if typed:
                secrets[secret] = typed
            elif stored is not None and stored.provider == name and stored.secrets.get(secret):
                secrets[secret] = stored.secrets[secret]  # blank: keep the stored one (write-only field)
            else:
                errors[f"{name}-{secret}"] = f"Give the {SECRET_LABELS.get(secret, secret).lower()}."
        options: dict[str, str | None] = {"environment": None, "country_code": None}
        if "environment" in plugin.account_options:
            options["environment"] = values.get("environment") or plugin.account_defaults.get("environment")
        if "country_code" in plugin.account_options:
            options["country_code"] = values.get("country_code", "").upper() or None
        if errors:
            return await self._page(request, session, merchant, status=422, chosen=name, values=values,
                                    errors=errors)
        account = ShopAccount(merchant_id=merchant.id, provider=name, version=0, secrets=secrets,
                              environment=options["environment"], country_code=options["country_code"])
        try:
            await self.directory.verify(account)  # the shape, then one authenticated call (as the CLI)
        except AccountError as error:
            return await self._page(request, session, merchant, status=422, chosen=name, values=values,
                                    errors={f"{name}-form": _sentence(str(error))})
        if intent == "test":
            return await self._page(request, session, merchant, chosen=name, values=values,
                                    tested=_accepted(name, plugin.account_secrets))
        await self.accounts.set(merchant.id, name, secrets=secrets, environment=account.environment,
                                country_code=account.country_code)
        changed = sorted(s for s in secrets if stored is None or stored.provider != name
                         or stored.secrets.get(s) != secrets[s])
        dashboard = self.dashboard
        await dashboard.audit.record(
            merchant.id, "provider.changed", dashboard.actor(request, session, await dashboard.who(session)),
            provider=name, previous=stored.provider if stored is not None else f"{self.directory.default.name} "
            "(deployment)", environment=account.environment or "", country=account.country_code or "",
            secrets_changed=", ".join(changed) or "none")
        raise web.HTTPSeeOther("/dashboard/providers?done=saved")

    async def _test_stored(self, request: web.Request, session: Session, merchant: Merchant,
                           stored: ShopAccount | None) -> web.Response:
        if stored is None or not self.directory.has_accounts(stored.provider):
            name = stored.provider if stored is not None else self.directory.default.name
            return await self._page(request, session, merchant, tested=(
                f"This shop uses the deployment's {name} account: it has no keys of its own to test."))
        try:
            await self.directory.verify(stored)
        except AccountError as error:
            message = _sentence(str(error)).replace("; nothing was saved", "").replace(" nothing was saved,", "")
            return await self._page(request, session, merchant, status=422, errors={"stored": message})
        plugin = self.directory.plugins[stored.provider]
        return await self._page(request, session, merchant, tested=_accepted(stored.provider, plugin.account_secrets))


def _title(name: str) -> str:
    return {"portone": "PortOne"}.get(name, name.title())


def _accepted(name: str, secrets: tuple[str, ...]) -> str:
    if not secrets:
        return f"{name} needs no keys of its own: nothing to test."
    return f"Connected: {name} accepted these credentials."


def _sentence(text: str) -> str:
    # The plug-ins name the CLI's flags (--country); the page's fields have labels.
    text = text.strip().replace("--country:", "Country:").replace("--environment:", "Environment:")
    return text + ("" if text.endswith(".") else ".")  # as the CLI says it (provider names in lower case)


__all__ = ["ProviderPages"]
