"""The aiohttp app factory: `create_app(settings)` builds everything, resources live in cleanup_ctx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.web.health import Health
from adapters.web.ratelimit import rate_limits
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

    # Outermost, so it sees every final answer (401s included) and refuses before any other work.
    app.middlewares.append(rate_limits(settings.limits, trusted_proxies=settings.server.trusted_proxies,
                                       public_base_url=settings.server.public_base_url).middleware)
    app.router.add_routes(Health(services.db).routes())
    _mount_api(app, services)
    _mount_pages(app, services)
    _mount_slack(app, services)
    _mount_telegram(app, services)
    _mount_whatsapp(app, services)
    return app


def _mount_whatsapp(app: web.Application, services: Services) -> None:
    """WhatsApp through Twilio (adapters/whatsapp.py): POST /whatsapp/webhook. Answers go out through the
    "whatsapp" sender (the outbox's too), whose Twilio client lives in this loop and is closed at shutdown."""
    from adapters.whatsapp import WHATSAPP_WEBHOOK, WhatsAppSender, WhatsAppWebhook

    sender = services.senders.get("whatsapp")
    if not services.settings.whatsapp.enabled or not isinstance(sender, WhatsAppSender):
        return
    webhook = WhatsAppWebhook(
        public_base_url=services.settings.server.public_base_url,
        auth_token=str(services.settings.whatsapp.auth_token),
        db=services.db,
        sender=sender,
        handle=services.conversation.handle,
        attach_message=services.links.attach_message,
        clock=services.clock,
    )

    async def whatsapp_ctx(app: web.Application) -> AsyncIterator[None]:
        await sender.start()
        yield
        await webhook.close()  # answers in flight finish before their sender goes
        await sender.close()

    app[WHATSAPP_WEBHOOK] = webhook
    app.cleanup_ctx.append(whatsapp_ctx)
    app.router.add_routes(webhook.routes())


def _mount_api(app: web.Application, services: Services) -> None:
    """REST API under /api/v1 (adapters/web/api.py)."""
    from adapters.web.api import LinksApi, api_errors

    # The middleware only acts on /api/ paths: JSON errors there, pass-through everywhere else.
    app.middlewares.append(api_errors)
    api = LinksApi(services.links, services.merchants)
    app.cleanup_ctx.append(api.lifespan)  # after database_ctx, so it ends before the engine is disposed
    app.router.add_routes(api.routes())


def _mount_pages(app: web.Application, services: Services) -> None:
    """Pay pages, QR codes, the sandbox checkout and payment webhooks (adapters/web/pages.py …)."""
    from adapters.payments.sandbox import SandboxProvider
    from adapters.web.busy import database_busy_pages
    from adapters.web.pages import PayPages, StaticFiles, make_templates
    from adapters.web.sandbox_checkout import SandboxCheckout
    from adapters.web.security import security_headers
    from adapters.web.webhooks import PaymentWebhooks

    public_base_url = services.settings.server.public_base_url
    # CSP, X-Frame-Options, Referrer-Policy, nosniff on every response (a handler may set its own).
    app.middlewares.append(security_headers(public_base_url))
    templates = make_templates()
    app.middlewares.append(database_busy_pages(templates))  # a calm 503 page when a write stays refused
    app.router.add_routes(StaticFiles().routes())
    pages = PayPages(db=services.db, links=services.links, provider=services.provider, templates=templates)
    app.cleanup_ctx.append(pages.lifespan)  # after database_ctx, so it ends before the engine is disposed
    app.router.add_routes(pages.routes())
    webhooks = PaymentWebhooks(services.provider, services.links)
    app.router.add_routes(webhooks.routes())
    if isinstance(services.provider, SandboxProvider):
        # The sandbox "gateway" posts its webhooks to us over real HTTP, like an outside provider.
        checkout = SandboxCheckout(services.provider, webhook_url=public_base_url + webhooks.path,
                                   templates=templates)
        app.cleanup_ctx.append(checkout.lifespan)
        app.router.add_routes(checkout.routes())


def _mount_telegram(app: web.Application, services: Services) -> None:
    """Telegram on python-telegram-bot (adapters/telegram/): POST /telegram/webhook or long polling, inline
    mode, the command menu. PTB's Application is built inside the running loop (bot.start()); the
    "telegram" sender comes from build_services and is closed here at shutdown."""
    from adapters.telegram.bot import TELEGRAM_BOT, TelegramBot
    from adapters.telegram.inline import CoreInlineCharges
    from adapters.telegram.sender import TelegramSender
    from core.ports import IncomingMessage, Reply

    sender = services.senders.get("telegram")
    if not services.settings.telegram.enabled or not isinstance(sender, TelegramSender):
        return

    async def handle(message: IncomingMessage) -> list[Reply]:
        # Looked up per message, so a test can stand in for the conversation core.
        replies: list[Reply] = await services.conversation.handle(message)
        return replies

    bot = TelegramBot(services.settings.telegram, conversation=handle, links=services.links,
                      inline=CoreInlineCharges(services.conversation, clock=services.clock))

    async def telegram_ctx(app: web.Application) -> AsyncIterator[None]:
        await bot.start()  # getMe, setMyCommands and polling retry in the background until Telegram answers
        try:
            yield
        finally:
            await bot.stop()  # updates in flight finish before the sender's HTTP client goes
            await sender.close()

    app[TELEGRAM_BOT] = bot
    app.cleanup_ctx.append(telegram_ctx)
    app.router.add_routes(bot.routes())


def _mount_slack(app: web.Application, services: Services) -> None:
    """Slack on slack-bolt (adapters/slack/): POST /slack/events, GET /slack/install, /slack/oauth_redirect.
    The Bolt AsyncApp is built inside the running loop; the "slack" sender comes from build_services."""
    from adapters.slack import SLACK_ADAPTER, SlackAdapter, SlackSender, options_from_settings
    from core.ports import IncomingMessage, Reply

    sender = services.senders.get("slack")
    if not services.settings.slack.enabled or not isinstance(sender, SlackSender):
        return

    async def handle(message: IncomingMessage) -> list[Reply]:
        # Looked up per message, so a test can stand in for the conversation core.
        replies: list[Reply] = await services.conversation.handle(message)
        return replies

    slack = SlackAdapter(
        options_from_settings(services.settings.slack, public_base_url=services.settings.server.public_base_url),
        db=services.db, links=services.links, merchants=services.merchants, handle=handle, sender=sender,
        clock=services.clock,
    )

    async def slack_ctx(app: web.Application) -> AsyncIterator[None]:
        await sender.start()
        try:
            await slack.start()  # single-workspace mode: auth.test; a rejected token stops start-up
            yield
        finally:
            await slack.close()  # answers in flight finish before the HTTP session goes
            await sender.close()

    app[SLACK_ADAPTER] = slack
    app.cleanup_ctx.append(slack_ctx)
    app.router.add_routes(slack.routes())
