"""The aiohttp app factory: `create_app(settings)` builds everything, resources live in cleanup_ctx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters import registry
from adapters.plugin import WebParts
from adapters.web.health import Health
from adapters.web.ratelimit import rate_limits
from bots.config import Settings
from bots.jobs import background_jobs
from bots.services import Services, build_services, prepare_database
from core.clock import Clock, utcnow

if TYPE_CHECKING:
    from adapters.web.pages import PayPages

log = logging.getLogger("paylinks.app")

SERVICES = web.AppKey("services", Services)
# The pay pages (their view counts are written after answering; tests wait for them here).
PAGES: web.AppKey[PayPages] = web.AppKey("pages")


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
    # Outermost, so it sees every final answer (401s included) and refuses before any other work.
    app.middlewares.append(rate_limits(settings.limits, trusted_proxies=settings.server.trusted_proxies,
                                       public_base_url=settings.server.public_base_url).middleware)
    app.router.add_routes(Health(services.db).routes())
    _mount_api(app, services)
    _mount_pages(app, services)
    for platform in services.platforms:
        _mount(app, platform.web(platform.section(settings), services, services.senders[platform.name]))
    # Last, so it is torn down first: the dispatcher and sweeper stop before any platform closes its
    # sender (an alert in flight at shutdown finishes instead of failing as "closed").
    if run_jobs:
        app.cleanup_ctx.append(jobs_ctx)
    return app


def _mount(app: web.Application, parts: WebParts) -> None:
    for key, value in parts.values.items():
        app[key] = value
    app.cleanup_ctx.extend(parts.lifespans)
    # A route two plug-ins share (POST /twilio/status, for WhatsApp and SMS) is mounted once.
    mounted = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    app.router.add_routes([r for r in parts.routes
                           if not (isinstance(r, web.RouteDef) and (r.method, r.path) in mounted)])


def _mount_api(app: web.Application, services: Services) -> None:
    """REST API under /api/v1 (adapters/web/api.py)."""
    from adapters.web.api import LinksApi, api_errors

    # The middleware only acts on /api/ paths: JSON errors there, pass-through everywhere else.
    app.middlewares.append(api_errors)
    api = LinksApi(services.links, services.merchants, refunds=services.refunds)
    app.cleanup_ctx.append(api.lifespan)  # after database_ctx, so it ends before the engine is disposed
    app.router.add_routes(api.routes())
    from adapters.web.webhooks_api import WebhooksApi

    app.router.add_routes(WebhooksApi(services.webhooks, api._merchant).routes())
    from adapters.web.series_api import SeriesApi

    app.router.add_routes(SeriesApi(api, services.series).routes())

    from adapters.web.promos_api import PromosApi
    from core.promos import PromoService

    app.router.add_routes(PromosApi(PromoService(services.db, clock=services.clock), services.links,
                                    api._merchant).routes())


def _mount_pages(app: web.Application, services: Services) -> None:
    """Pay pages, QR codes, payment webhooks and the provider's own pages (adapters/web/pages.py …)."""
    from adapters.web.busy import database_busy_pages
    from adapters.web.pages import PayPages, StaticFiles, make_templates
    from adapters.web.security import security_headers

    public_base_url = services.settings.server.public_base_url
    # CSP, X-Frame-Options, Referrer-Policy, nosniff on every response (a handler may set its own).
    # The provider's hosted checkout pages are where Pay's 303 goes: CSP form-action must allow them.
    # Every provider a shop may pay through: the deployment's and those shops may have their own account of.
    checkout_origins: list[str] = list(getattr(services.provider, "checkout_origins", ()))
    for plugin in registry.payment_providers().values():
        checkout_origins.extend(plugin.checkout_origins(plugin.section(services.settings)))
    checkout_origins = list(dict.fromkeys(checkout_origins))
    app.middlewares.append(security_headers(public_base_url, checkout_origins))
    templates = make_templates()
    app.middlewares.append(database_busy_pages(templates))  # a calm 503 page when a write stays refused
    app.router.add_routes(StaticFiles().routes())
    pages = PayPages(db=services.db, links=services.links, providers=services.providers,
                     checkout_origins=checkout_origins, templates=templates, refunds=services.refunds)
    app[PAGES] = pages
    app.cleanup_ctx.append(pages.lifespan)  # after database_ctx, so it ends before the engine is disposed
    app.router.add_routes(pages.routes())
    from adapters.web.invoice_pages import InvoicePages, InvoicePdfs
    app.router.add_routes(InvoicePages(InvoicePdfs(services.db, services.links)).routes())
    _mount_dashboard(app, services, templates)

    async def providers_ctx(_app: web.Application) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await services.providers.close()  # every provider client, the deployment's and shops' own

    app.cleanup_ctx.append(providers_ctx)
    for plugin in registry.payment_providers().values():
        section = plugin.section(services.settings)
        # The deployment-wide instance: the default provider, or one shops may pick without secrets of
        # their own (the sandbox's hosted checkout); a provider with per-shop keys and no deployment
        # keys has none, only the shops' accounts below.
        shared = services.providers.shared(plugin.name)
        if shared is not None:
            app.router.add_routes(plugin.webhook_routes(shared, services.links))
            _mount(app, plugin.web(section, services, shared, webhook_url=public_base_url + plugin.webhook_path()))
        # Return pages and POST /webhooks/<name>/{merchant_id}, for every account of this provider.
        _mount(app, plugin.account_web(section, services))


def _mount_dashboard(app: web.Application, services: Services, templates: Any) -> None:
    """The seller's dashboard under /dashboard and the landing page at / (adapters/web/dashboard/)."""
    from adapters.web.dashboard.views import Dashboard
    from core.audit import AuditLog
    from core.members import MemberService

    outbox = services.outbox
    members = MemberService(services.db, services.merchants,
                            max_open_invites=services.settings.limits.invites_per_shop, clock=services.clock)
    dashboard = Dashboard(
        links=services.links, merchants=services.merchants, members=members,
        signins=services.conversation.signins, audit=AuditLog(services.db, clock=services.clock),
        templates=templates, secure_cookie=services.public_base_url.startswith("https://"),
        resend=(lambda link: outbox.resend(services.db, link, services.clock())) if outbox else None,
        can_resend=outbox.can_resend if outbox else None, refunds=services.refunds, providers=services.providers,
        accounts=services.accounts, public_base_url=services.public_base_url,
    )
    from adapters.web.dashboard.reach import ReachPages

    # CSV import and merchant webhooks; first, so /dashboard/links/import is not read as a link's id.
    app.router.add_routes(ReachPages(dashboard, services.webhooks).routes())
    app.router.add_routes(dashboard.routes())
