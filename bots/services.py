"""Everything the programs share, built from settings: the database and the core services.

Building is pure (no I/O); `open_services` migrates or checks the schema and disposes of it all at the
end. Platform SDK objects are not built here but inside the running loop by their adapters.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from adapters.console import ConsoleSender
from adapters.payments.sandbox import SandboxProvider
from bots.config import ConfigError, Secret, Settings
from core.clock import Clock, utcnow
from core.conversation import Conversation
from core.db import Database
from core.links import LinkService
from core.members import MemberService
from core.merchants import MerchantService
from core.outbox import Outbox
from core.ports import ChatSender, PaymentProvider

log = logging.getLogger("paylinks")


@dataclass
class Services:
    settings: Settings
    db: Database
    links: LinkService
    merchants: MerchantService
    provider: PaymentProvider
    clock: Clock = utcnow
    # Chat senders by platform ("console", "telegram", …), filled by the adapters that are enabled.
    senders: dict[str, ChatSender] = field(default_factory=dict)
    # The outbox hook (writes alert rows in the link's transaction; wakes this process's dispatcher).
    outbox: Outbox | None = None
    # The chat core every platform hands its messages to; always set by build_services.
    conversation: Conversation = None  # type: ignore[assignment]


def build_services(settings: Settings, *, clock: Clock = utcnow) -> Services:
    db = Database(settings.database.url, busy_timeout=settings.database.busy_timeout)
    links = LinkService(
        db,
        public_base_url=settings.server.public_base_url,
        default_expiry=settings.links.default_expiry,
        max_amount=settings.links.max_amount,
        clock=clock,
    )
    merchants = MerchantService(
        db,
        default_currency=settings.links.default_currency,
        default_locale=settings.links.default_locale,
        clock=clock,
    )
    sandbox = settings.payments.sandbox
    if not sandbox.webhook_secret:
        # One process both signs and verifies sandbox webhooks, so a per-process secret is enough.
        sandbox.webhook_secret = Secret(secrets.token_urlsafe(32))
    provider = SandboxProvider(
        public_base_url=settings.server.public_base_url,
        webhook_secret=str(sandbox.webhook_secret),
        clock=clock,
    )
    services = Services(settings=settings, db=db, links=links, merchants=merchants, provider=provider, clock=clock)
    members = MemberService(db, merchants, max_open_invites=settings.limits.invites_per_shop, clock=clock)
    services.conversation = Conversation(links=links, merchants=merchants, members=members, clock=clock)
    services.senders["console"] = ConsoleSender(db, clock=clock)  # the terminal chat (`paylinks chat`)
    services.outbox = Outbox(link_url=links.url, customer_platform="whatsapp" if settings.whatsapp.enabled else None)
    links.hooks.append(services.outbox)
    if settings.whatsapp.enabled:
        # Here rather than in app.py so `paylinks worker` delivers WhatsApp outbox rows too.
        from adapters.whatsapp import sender_from_settings

        services.senders["whatsapp"] = sender_from_settings(
            settings.whatsapp, db=db, links=links, merchants=merchants, clock=clock
        )
    if settings.slack.enabled:
        # Here too so `paylinks worker` delivers Slack outbox rows; bots/app.py adds the Bolt app around it.
        from adapters.slack import build_sender, options_from_settings

        services.senders["slack"] = build_sender(
            options_from_settings(settings.slack, public_base_url=settings.server.public_base_url), db
        )
    if settings.telegram.enabled:
        # Here so `paylinks worker` delivers Telegram outbox rows too; bots/app.py adds the bot around it.
        from adapters.telegram.config import TelegramConfigError, check_options
        from adapters.telegram.sender import TelegramSender

        try:
            check_options(settings.telegram)  # e.g. webhook mode without a secret: refuse to start
        except TelegramConfigError as exc:
            raise ConfigError(str(exc)) from None
        services.senders["telegram"] = TelegramSender(settings.telegram)
    return services


async def prepare_database(services: Services, *, migrate: bool | None = None) -> None:
    """SQLite is migrated automatically (one machine, one file); PostgreSQL by `paylinks migrate`."""
    if migrate is None:
        migrate = services.db.is_sqlite
    if migrate:
        await services.db.migrate()


@asynccontextmanager
async def open_services(
    settings: Settings, *, migrate: bool | None = None, clock: Clock = utcnow
) -> AsyncIterator[Services]:
    services = build_services(settings, clock=clock)
    try:
        await prepare_database(services, migrate=migrate)
        yield services
    finally:
        # Senders build their HTTP clients lazily inside the loop (the worker's case); close them here.
        for sender in services.senders.values():
            await sender.close()
        await services.db.dispose()
