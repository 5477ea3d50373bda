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
from core.i18n import N_, Tr
from core.models import Merchant
from core.provider_accounts import ProviderAccounts, ShopAccount
from core.signin import Session

if TYPE_CHECKING:
    from adapters.web.dashboard.views import Dashboard

# How the page names the plug-ins' secrets and options: msgids, translated where the page is made.
SECRET_LABELS = {"secret_key": N_("Secret key"), "webhook_secret": N_("Webhook signing secret"),
                 "client_key": N_("Client key")}
# "Give the …" of a secret left empty: whole sentences, one per secret.
SECRET_MISSING = {"secret_key": N_("Give the secret key."), "webhook_secret": N_("Give the webhook signing secret."),
                  "client_key": N_("Give the client key.")}
SECRET_HINTS = {
    ("stripe", "secret_key"): N_("From the Stripe dashboard: sk_live_… (or sk_test_… to rehearse)"),
    ("stripe", "webhook_secret"): N_("whsec_…, of the webhook endpoint registered for this shop"),
    ("portone", "client_key"): N_("The PortOne key from PortOne's admin console"),
    ("portone", "secret_key"): N_("The PortOne secret key"),
}
ENVIRONMENTS = ("sandbox", "live")
ENVIRONMENT_LABELS = {"sandbox": N_("sandbox"), "live": N_("live")}


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
        t = self.dashboard.tr(request, merchant)
        forms = []
        # The provider in use first, then the others by name.
        for name, plugin in sorted(self.directory.plugins.items(), key=lambda item: (item[0] != current, item[0])):
            same = account is not None and account.provider == name
            forms.append({
                "name": name, "title": _title(name),
                "secrets": [{"name": s, "id": f"{name}-{s}", "label": _label(t, s),
                             "hint": t.gettext(SECRET_HINTS[(name, s)]) if (name, s) in SECRET_HINTS else "",
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
            "dashboard/providers.html", request, session, merchant, status=status, title=N_("Payment provider"),
            current=current, current_title=_title(current), own=own, default=default,
            environment_label=_environment(t, account.environment) if account else "",
            country=account.country_code if account else None,
            hints=[(_label(t, secret), hint) for secret, hint in hints.items()], forms=forms, notice=notice,
            chosen=chosen, errors=errors or {}, tested=tested,
            environments=[(e, _environment(t, e)) for e in ENVIRONMENTS],
            webhook_url=next((f["webhook_url"] for f in forms if f["name"] == current), "") if own else "")

    # ------------------------------------------------------------ save or test

    async def save(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        form = await request.post()
        values = {k: str(v).strip()[:500] for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}
        intent = values.get("intent", "save")
        stored = await self.accounts.get(merchant.id)
        t = self.dashboard.tr(request, merchant)
        if intent == "test-stored":
            return await self._test_stored(request, session, merchant, stored)
        name = values.get("provider", "")
        plugin = self.directory.plugins.get(name)
        if plugin is None:
            return await self._page(request, session, merchant, status=422, errors={"form": t.gettext(
                "Choose one of the providers shown (%(providers)s).",
                providers=", ".join(sorted(self.directory.plugins)))})
        secrets: dict[str, str] = {}
        errors: dict[str, str] = {}
        for secret in plugin.account_secrets:
            typed = values.get(secret, "")
            if typed:
                secrets[secret] = typed
            elif stored is not None and stored.provider == name and stored.secrets.get(secret):
                secrets[secret] = stored.secrets[secret]  # blank: keep the stored one (write-only field)
            else:
                errors[f"{name}-{secret}"] = (t.gettext(SECRET_MISSING[secret]) if secret in SECRET_MISSING
                                              else t.gettext("Give the %(secret)s.", secret=secret.replace("_", " ")))
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
                                    errors={f"{name}-form": _refusal(t, error, saving=True)})
        if intent == "test":
            return await self._page(request, session, merchant, chosen=name, values=values,
                                    tested=_accepted(t, name, plugin.account_secrets))
        await self.accounts.set(merchant.id, name, secrets=secrets, environment=account.environment,
                                country_code=account.country_code)
        changed = sorted(s for s in secrets if stored is None or stored.provider != name
                         or stored.secrets.get(s) != secrets[s])
        dashboard = self.dashboard
        await dashboard.audit.record(
            merchant.id, "provider.changed", await dashboard.acting(request, session, merchant),
            provider=name, previous=stored.provider if stored is not None else f"{self.directory.default.name} "
            "(deployment)", environment=account.environment or "", country=account.country_code or "",
            secrets_changed=", ".join(changed) or "none")
        raise web.HTTPSeeOther("/dashboard/providers?done=saved")

    async def _test_stored(self, request: web.Request, session: Session, merchant: Merchant,
                           stored: ShopAccount | None) -> web.Response:
        t = self.dashboard.tr(request, merchant)
        if stored is None or not self.directory.has_accounts(stored.provider):
            name = stored.provider if stored is not None else self.directory.default.name
            return await self._page(request, session, merchant, tested=t.gettext(
                "This shop uses the deployment's %(provider)s account: it has no keys of its own to test.",
                provider=name))
        try:
            await self.directory.verify(stored)
        except AccountError as error:
            return await self._page(request, session, merchant, status=422,
                                    errors={"stored": _refusal(t, error, saving=False)})
        plugin = self.directory.plugins[stored.provider]
        return await self._page(request, session, merchant,
                                tested=_accepted(t, stored.provider, plugin.account_secrets))


def _title(name: str) -> str:
    return {"portone": "PortOne"}.get(name, name.title())


def _label(t: Tr, secret: str) -> str:
    return t.gettext(SECRET_LABELS[secret]) if secret in SECRET_LABELS else secret.replace("_", " ")


def _environment(t: Tr, environment: str | None) -> str:
    if not environment:
        return ""
    return t.gettext(ENVIRONMENT_LABELS[environment]) if environment in ENVIRONMENT_LABELS else environment


def _accepted(t: Tr, name: str, secrets: tuple[str, ...]) -> str:
    if not secrets:
        return t.gettext("%(provider)s needs no keys of its own: nothing to test.", provider=name)
    return t.gettext("Connected: %(provider)s accepted these credentials.", provider=name)


# The provider's answer as the page says it: saving a form, or testing the stored keys (nothing to save).
_REFUSALS = {
    ("refused", True): N_("%(provider)s refused these credentials (request id %(request)s); nothing was saved."),
    ("refused", False): N_("%(provider)s refused these credentials (request id %(request)s)."),
    ("unavailable", True): N_("%(provider)s could not check these credentials now (%(reason)s); nothing was "
                              "saved, try again."),
    ("unavailable", False): N_("%(provider)s could not check these credentials now (%(reason)s); try again."),
    ("unknown", True): N_("Unknown provider %(provider)s (known: %(known)s)."),
    ("unknown", False): N_("Unknown provider %(provider)s (known: %(known)s)."),
}


# The plug-ins' own checks of the keys' shape (their check_account, written for the CLI: field names and
# flags) as the page says them, with its field labels. A text not here is shown as the plug-in wrote it.
_SHAPES = {
    "secret_key: expected a Stripe secret key (sk_live_… or sk_test_…)":
        N_("Secret key: expected a Stripe secret key (sk_live_… or sk_test_…)."),
    "webhook_secret: expected the signing secret (whsec_…) of the webhook endpoint registered for this shop":
        N_("Webhook signing secret: expected the signing secret (whsec_…) of the webhook endpoint registered "
           "for this shop."),
    "client_key: required (the PortOne key from PortOne's admin console)":
        N_("Client key: required (the PortOne key from PortOne's admin console)."),
    "secret_key: required (the PortOne secret key)": N_("Secret key: required (the PortOne secret key)."),
    '--environment: "sandbox" or "live"': N_('Environment: "sandbox" or "live".'),
    "--country: a two-letter country code, e.g. TH": N_("Country: a two-letter country code, e.g. TH."),
}


def _refusal(t: Tr, error: AccountError, *, saving: bool) -> str:
    """An AccountError in the page's language: the provider's answer, or a plug-in's check of the keys'
    shape ("expected a Stripe secret key")."""
    message = _REFUSALS.get((error.kind, saving))
    if message is not None:
        return t.gettext(message, **error.values)
    text = str(error).strip()
    if text in _SHAPES:
        return t.gettext(_SHAPES[text])
    return text + ("" if text.endswith(".") else ".")  # as the plug-in says it


__all__ = ["ProviderPages"]
