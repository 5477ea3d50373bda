"""GET /healthz: 200 when the database answers, 503 otherwise (for load balancers and Procfile hosts)."""

from __future__ import annotations

from aiohttp import web

from core.db import Database


class Health:
    def __init__(self, db: Database) -> None:
        self.db = db

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz)]

    async def healthz(self, request: web.Request) -> web.Response:
        if await self.db.ping():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unavailable", "database": "not answering"}, status=503)
