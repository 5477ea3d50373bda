"""GET and POST /u/{token}: a customer stops a shop's emails (RFC 8058 one-click, or the page's button).

The token is the only credential (unguessable, one per shop and address, from the email itself), so the
one-click POST a mail client sends without any page works; the page's own form posts to the same URL.
"""

from __future__ import annotations

import html
import re

from aiohttp import web

from core.contacts import Contacts
from core.i18n import Tr, negotiate, tr
from core.merchants import MerchantService

_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")
_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>{title}</title></head>
<body style="font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,'Noto Sans',\
'Noto Sans Thai','PingFang SC','Hiragino Sans','Malgun Gothic',sans-serif;max-width:480px;margin:48px auto;\
padding:0 16px">
<h1 style="font-size:20px">{title}</h1><p>{text}</p>{form}</body></html>"""


class UnsubscribePages:
    def __init__(self, contacts: Contacts, merchants: MerchantService) -> None:
        self.contacts = contacts
        self.merchants = merchants

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/u/{token}", self.show), web.post("/u/{token}", self.unsubscribe)]

    async def _shop(self, token: str) -> tuple[str | None, bool, str | None] | None:
        contact = await self.contacts.by_token(token) if _TOKEN.fullmatch(token) else None
        if contact is None:
            return None
        merchant = await self.merchants.get(contact.merchant_id)
        return (merchant.name if merchant else None), contact.opted_out_at is not None, \
            (merchant.locale if merchant else None)

    @staticmethod
    def _page(t: Tr, title: str, text: str, form: str = "", status: int = 200) -> web.Response:
        return web.Response(text=_PAGE.format(lang=t.html_lang, title=html.escape(title), text=text, form=form),
                            status=status, content_type="text/html", headers={"Cache-Control": "no-store"})

    @staticmethod
    def _reader(request: web.Request, locale: str | None) -> Tr:
        # The customer's browser language, else the shop's (core.i18n), as on the pay pages.
        return tr(negotiate(request.headers.get("Accept-Language"), locale))

    def _gone(self, request: web.Request) -> web.Response:
        t = self._reader(request, None)
        return self._page(t, t.gettext("Link not found"), t.gettext("This unsubscribe link is not valid."), status=404)

    @staticmethod
    def _done(t: Tr, shop: str | None) -> str:
        return (t.gettext("You no longer get emails from %(shop)s.", shop=html.escape(shop)) if shop
                else t.gettext("You no longer get emails from this shop."))

    async def show(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await self._shop(token)
        if found is None:
            return self._gone(request)
        shop, done, locale = found
        t = self._reader(request, locale)
        if done:
            return self._page(t, t.gettext("Unsubscribed"), self._done(t, shop))
        form = (f'<form method="post" action="/u/{html.escape(token)}"><button type="submit" '
                f'style="padding:10px 20px">{html.escape(t.gettext("Unsubscribe"))}</button></form>')
        question = (t.gettext("Stop emails from %(shop)s sent through paylinks?", shop=html.escape(shop)) if shop
                    else t.gettext("Stop emails from this shop sent through paylinks?"))
        return self._page(t, t.gettext("Unsubscribe"), question, form)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await self._shop(token)
        if found is None:
            return self._gone(request)
        await self.contacts.opt_out(token)
        t = self._reader(request, found[2])
        return self._page(t, t.gettext("Unsubscribed"), self._done(t, found[0]))
