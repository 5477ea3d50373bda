"""The aiohttp app factory: `create_app(settings)` builds everything, resources live in cleanup_ctx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.web.health import Health
from bots.config import Settings
from bots.jobs import background_jobs
from bots.services import Services, build_services, prepare_database
from core.clock import Clock, utcnow

log = logging.getLogger("paylinks.app")

SERVICES = web.AppKey("services", Services)


def create_app(
    settings: Settings, *, run_jobs: bool = True, migrate: bool | None = None, clock: Clock = utcnow
) -> web.Application:
    services = build_services(settings, clock=clock)
    app = web.Application(client_max_size=256 * 1024)
    app[SERVICES] = services

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        await prepare_database(services, migrate=migrate)
        yield
        await services.db.dispose()

    async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
        async with background_jobs(services):
            yield

    app.cleanup_ctx.append(database_ctx)
    if run_jobs:
        app.cleanup_ctx.append(jobs_ctx)

    app.router.add_routes(Health(services.db).routes())
    _mount_api(app, services)
    _mount_pages(app, services)
    return app


def _mount_api(app: web.Application, services: Services) -> None:
    """REST API under /api/v1 (adapters/web/api.py)."""


def _mount_pages(app: web.Application, services: Services) -> None:
    """Pay pages, QR codes, the sandbox checkout and payment webhooks (adapters/web/pages.py …)."""
