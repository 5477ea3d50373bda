"""GET and POST /u/{token}: a customer stops a shop's emails (RFC 8058 one-click, or the page's button).

The token is the only credential (unguessable, one per shop and address, from the email itself), so the
one-click POST a mail client sends without any page works; the page's own form posts to the same URL.
"""

from __future__ import annotations

import html
import re

from aiohttp import web

from core.contacts import Contacts
from core.merchants import MerchantService

_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>{title}</title></head>
<body style="font-family:Helvetica,Arial,sans-serif;max-width:480px;margin:48px auto;padding:0 16px">
<h1 style="font-size:20px">{title}</h1><p>{text}</p>{form}</body></html>"""


class UnsubscribePages:
    def __init__(self, contacts: Contacts, merchants: MerchantService) -> None:
        self.contacts = contacts
        self.merchants = merchants

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/u/{token}", self.show), web.post("/u/{token}", self.unsubscribe)]

    async def _shop(self, token: str) -> tuple[str, bool] | None:
        contact = await self.contacts.by_token(token) if _TOKEN.fullmatch(token) else None
        if contact is None:
            return None
        merchant = await self.merchants.get(contact.merchant_id)
        return (merchant.name if merchant else "this shop"), contact.opted_out_at is not None

    @staticmethod
    def _page(title: str, text: str, form: str = "", status: int = 200) -> web.Response:
        return web.Response(text=_PAGE.format(title=html.escape(title), text=text, form=form), status=status,
                            content_type="text/html", headers={"Cache-Control": "no-store"})

    async def show(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await self._shop(token)
        if found is None:
            return self._page("Link not found", "This unsubscribe link is not valid.", status=404)
        shop, done = found
        if done:
            return self._page("Unsubscribed", f"You no longer get emails from {html.escape(shop)}.")
        form = (f'<form method="post" action="/u/{html.escape(token)}"><button type="submit" '
                'style="padding:10px 20px">Unsubscribe</button></form>')
        return self._page("Unsubscribe", f"Stop emails from {html.escape(shop)} sent through paylinks?", form)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        found = await self._shop(token)
        if found is None:
            return self._page("Link not found", "This unsubscribe link is not valid.", status=404)
        await self.contacts.opt_out(token)
        return self._page("Unsubscribed", f"You no longer get emails from {html.escape(found[0])}.")
