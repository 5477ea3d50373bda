"""Outside /api/: a write refused because the database stayed busy (core.db.DatabaseBusy) gets a calm 503
page with Retry-After instead of a 500. /api/ answers its own JSON 503 (adapters/web/api.py)."""

from __future__ import annotations

import logging

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from adapters.web.pages import page_i18n, request_language
from core.db import DatabaseBusy
from core.i18n import tr

log = logging.getLogger("paylinks.web")


def database_busy_pages(templates: jinja2.Environment) -> Middleware:
    page = templates.get_template("message.html")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except DatabaseBusy as exc:
            if request.path.startswith("/api/"):
                raise
            log.warning("request refused: database busy (%s) method=%s", exc.reason, request.method)
            language = request_language(request, None)
            t = tr(language)
            html = page.render(
                **page_i18n(language, switcher=False), title=t.gettext("We are busy for a moment"), sandbox=False,
                tone="warn",
                badge=t.gettext("One moment"), heading=t.gettext("We are busy for a moment"),
                explanation=t.gettext("Nothing was charged or changed. Please try again in a few seconds."),
                back_url=request.path if request.method == "GET" else None, back_label=t.gettext("Try again"),
            )
            return web.Response(text=html, status=503, content_type="text/html",
                                headers={"Retry-After": str(exc.retry_after_s), "Cache-Control": "no-store"})

    return middleware
