"""Where a provider's hosted checkout sends the customer back (`/p/{link_id}/return/<provider>`): the
parts every provider's return page shares. Each provider decides what the redirect proves."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web

from core.links import LinkService

LINK_ID = re.compile(r"[a-z2-7]{16,64}")  # core.ids.link_id, as adapters/web/pages.py
REFRESH_S = 5  # a "processing" page looks again this often (a meta refresh: no JavaScript needed)


class ClosableProvider(Protocol):
    test_mode: bool

    async def close(self) -> None: ...


class ReturnPages:
    """GET /p/{link_id}/return/<name>; subclasses implement `back_from_checkout`."""

    name: str

    def __init__(self, provider: ClosableProvider, links: LinkService) -> None:
        from adapters.web.pages import make_templates

        self.provider = provider
        self.links = links
        self.message_template = make_templates().get_template("message.html")

    def routes(self) -> list[web.RouteDef]:
        return [web.get(f"/p/{{link_id}}/return/{self.name}", self.back_from_checkout)]

    async def lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.provider.close()

    async def back_from_checkout(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    @staticmethod
    def link_id_of(request: web.Request) -> str:
        link_id = request.match_info["link_id"].lower()
        if not LINK_ID.fullmatch(link_id):
            raise web.HTTPNotFound()
        return link_id

    def message(self, badge: str, heading: str, explanation: str, *, status: int = 200, refresh: bool = False,
                back_url: str = "") -> web.Response:
        html = self.message_template.render(
            lang="en", title=heading, sandbox=False, test_mode=self.provider.test_mode, tone="warn", badge=badge,
            heading=heading,
            explanation=explanation, back_url=back_url, back_label="Back to the payment",
            refresh=REFRESH_S if refresh else 0)
        return web.Response(text=html, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})
