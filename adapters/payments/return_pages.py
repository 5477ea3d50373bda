"""Where a provider's hosted checkout sends the customer back (`/p/{link_id}/return/<provider>`): the
parts every provider's return page shares. Each provider decides what the redirect proves.

The page answers on the provider account the checkout was opened on (the deployment's or the shop's
own, recorded with the checkout), so a redirect is verified and a session retrieved with that account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web

from core.i18n import tr
from core.links import LinkService
from core.models import PaymentLink
from core.ports import AccountProvider, ProviderResolver

LINK_ID = re.compile(r"[a-z2-7]{16,64}")  # core.ids.link_id, as adapters/web/pages.py
REFRESH_S = 5  # a "processing" page looks again this often (a meta refresh: no JavaScript needed)


class ReturnPages:
    """GET /p/{link_id}/return/<name>; subclasses implement `back_from_checkout`."""

    name: str

    def __init__(self, providers: ProviderResolver, links: LinkService) -> None:
        from adapters.web.pages import make_templates

        self.providers = providers
        self.links = links
        self.message_template = make_templates().get_template("message.html")

    def routes(self) -> list[web.RouteDef]:
        return [web.get(f"/p/{{link_id}}/return/{self.name}", self.back_from_checkout)]

    async def back_from_checkout(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def provider_for(self, link: PaymentLink, provider_ref: str | None = None) -> AccountProvider | None:
        """This provider's instance for the account the link's checkout was opened on; None: no such
        checkout here (the caller shows the pay page). With a ref, that very checkout of this link."""
        if provider_ref is not None:
            checkout = await self.links.checkout_by_ref(self.name, provider_ref)
            if checkout is not None and checkout.link_id != link.id:
                return None
        else:
            checkout = await self.links.latest_checkout(link.id, self.name)
        if checkout is not None:
            provider = await self.providers.for_account(self.name, checkout.account)
            return AccountProvider(provider, checkout.account) if provider is not None else None
        # No checkout recorded here: the shop's current account, if it is of this provider.
        chosen = await self.providers.for_merchant(link.merchant_id)
        return chosen if chosen.provider.name == self.name else None

    @staticmethod
    def link_id_of(request: web.Request) -> str:
        link_id = request.match_info["link_id"].lower()
        if not LINK_ID.fullmatch(link_id):
            raise web.HTTPNotFound()
        return link_id

    async def message(self, request: web.Request, link: PaymentLink, badge: str, heading: str, explanation: str,
                      *, test_mode: bool, status: int = 200, refresh: bool = False, back_url: str = "",
                      values: Mapping[str, object] | None = None) -> web.Response:
        """A page of the customer's way back, in the shop's branding (name, colour, logo, support) and in the
        customer's language as the pay pages choose it (?lang, its cookie, Accept-Language, the shop's
        locale). `badge`, `heading` and `explanation` are catalog msgids (`values` fill the explanation's)."""
        from adapters.web.branding import link_branding
        from adapters.web.pages import page_i18n, request_language

        brand = await link_branding(self.links.db, link.id)
        shop_locale = brand.get("merchant_locale")
        language = request_language(request, shop_locale)
        t = tr(language)
        html = self.message_template.render(
            **brand, **page_i18n(language, shop_locale, switcher=False),
            title=t.gettext(heading), sandbox=False, test_mode=test_mode, tone="warn", badge=t.gettext(badge),
            heading=t.gettext(heading), explanation=t.gettext(explanation, **(values or {})), back_url=back_url,
            back_label=t.gettext("Back to the payment"), refresh=REFRESH_S if refresh else 0)
        return web.Response(text=html, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})
