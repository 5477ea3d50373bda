"""Everything the programs share, built from settings: the database and the core services.

Building is pure (no I/O); `open_services` migrates or checks the schema and disposes of it all at the
end. Platform SDK objects are not built here but inside the running loop by their adapters.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters import registry
from adapters.payments.accounts import ProviderDirectory
from adapters.plugin import ChatPlatform
from bots import startup
from bots.config import ConfigError, Settings
from bots.webhooks import install_webhooks
from core.clock import Clock, utcnow
from core.db import Database
from core.invoices import Invoices
from core.links import LinkService
from core.members import MemberService
from core.merchants import MerchantService
from core.outbox import Outbox
from core.ports import ChatSender, IncomingMessage, PaymentProvider, Reply
from core.provider_accounts import ProviderAccounts
from core.refunds import RefundService
from core.reminders import Reminders
from core.secrets import SecretBox, key_file_for
from core.series import SeriesService, series_notice
from core.settings import reveal
from core.webhooks import WebhookEndpoints

if TYPE_CHECKING:
    from core.conversation import Conversation

log = logging.getLogger("paylinks")


@dataclass
class Services:
    settings: Settings
    db: Database
    links: LinkService
    merchants: MerchantService
    # The deployment's provider (`[payments] provider`), for shops without their own account.
    provider: PaymentProvider = None  # type: ignore[assignment]  # always set by build_services
    # Which account serves each shop: the deployment's provider or the shop's own (adapters/payments/accounts.py).
    providers: ProviderDirectory = None  # type: ignore[assignment]  # always set by build_services
    # Encrypts secrets at rest (core/secrets.py); its key is loaded on first use.
    secrets: SecretBox = None  # type: ignore[assignment]  # always set by build_services
    accounts: ProviderAccounts = None  # type: ignore[assignment]  # always set by build_services
    clock: Clock = utcnow
    # Chat senders by platform ("console", "telegram", …), one per enabled platform plug-in.
    senders: dict[str, ChatSender] = field(default_factory=dict)
    # The enabled chat platform plug-ins, in registry order (bots/app.py mounts their web parts).
    platforms: list[ChatPlatform[Any]] = field(default_factory=list)
    # The outbox hook (writes alert rows in the link's transaction; wakes this process's dispatcher).
    outbox: Outbox | None = None
    # Builds the chat core (the `conversation` property) on first use: commands that only open the database
    # skip importing it and its command parsers (bench/startup.py). Always set by build_services.
    conversation_factory: Callable[[], Conversation] | None = None
    _conversation: Conversation | None = None
    # Reminders to customers (core/reminders.py); always set by build_services.
    reminders: Reminders | None = None
    # Merchant webhook endpoints (bots/webhooks.py); always set by build_services.
    webhooks: WebhookEndpoints = None  # type: ignore[assignment]
    # Refunds through the provider, double-payment handling; always set by build_services.
    refunds: RefundService = None  # type: ignore[assignment]
    # Recurring charges (core/series.py); always set by build_services.
    series: SeriesService = None  # type: ignore[assignment]

    @property
    def conversation(self) -> Conversation:
        """The chat core every platform hands its messages to."""
        if self._conversation is None:
            assert self.conversation_factory is not None, "build_services sets the factory"
            self._conversation = self.conversation_factory()
        return self._conversation

    @conversation.setter
    def conversation(self, conversation: Conversation) -> None:
        self._conversation = conversation

    @property
    def public_base_url(self) -> str:
        return self.settings.server.public_base_url

    async def handle(self, message: IncomingMessage) -> list[Reply]:
        # Looked up per message, so a test can stand in for the conversation core.
        replies: list[Reply] = await self.conversation.handle(message)
        return replies


def build_services(settings: Settings, *, clock: Clock = utcnow) -> Services:
    db = Database(settings.database.url, busy_timeout=settings.database.busy_timeout)
    links = LinkService(
        db,
        public_base_url=settings.server.public_base_url,
        default_expiry=settings.links.default_expiry,
        max_amount=settings.links.max_amount,
        clock=clock,
    )
    links.reservations.timeout = settings.links.reservation_timeout
    merchants = MerchantService(
        db,
        default_currency=settings.links.default_currency,
        default_locale=settings.links.default_locale,
        clock=clock,
    )
    services = Services(settings=settings, db=db, links=links, merchants=merchants, clock=clock)
    members = MemberService(db, merchants, max_open_invites=settings.limits.invites_per_shop, clock=clock)
    security = settings.security
    services.secrets = SecretBox(secret_key=reveal(security.secret_key),
                                 previous_keys=[reveal(key) for key in security.previous_secret_keys],
                                 key_file=key_file_for(settings.database.url))
    services.accounts = ProviderAccounts(db, services.secrets, clock=clock)
    plugins = registry.payment_providers()
    provider_plugin = plugins[settings.payments.provider]
    services.provider = provider_plugin.build(provider_plugin.section(settings), services)
    services.providers = ProviderDirectory(plugins=plugins, settings=settings, ctx=services,
                                           default=services.provider, accounts=services.accounts)
    # Links get their provider's money rules and livemode, and close/reconcile checkouts, per shop.
    links.providers = services.providers
    links.reconcile_after = settings.payments.reconcile_after
    services.outbox = Outbox(link_url=links.url, customer_platform=registry.customer_platform(settings),
                             address_rules=registry.address_rules(),
                             customer_channels=registry.customer_channels(settings),
                             fallback_channels=registry.fallback_channels(settings))
    links.hooks.append(services.outbox)
    # A paid link gets an invoice number in its payment's transaction (core/invoices.py).
    links.hooks.append(Invoices(db))
    services.reminders = Reminders(db, links, services.outbox, before_expiry=settings.links.remind_before_expiry,
                                   clock=clock)
    rules = registry.address_rules()
    outbox = services.outbox
    services.refunds = RefundService(db, links, provider=services.provider, providers=services.providers,
                                     auto_refund_duplicates=settings.payments.auto_refund_duplicates, clock=clock)
    services.refunds.wake = services.outbox.wake
    services.refunds.install()
    services.refunds.refund_hooks.append(services.outbox.refund_rows)  # the customer's refund notice
    services.series = SeriesService(db, links, clock=clock)
    services.series.notify_seller = series_notice(links.url, services.outbox.wake)

    def conversation() -> Conversation:
        from core.conversation import Conversation

        chat = Conversation(links=links, merchants=merchants, members=members, clock=clock)
        chat.reminders = services.reminders
        chat.via_words, chat.channel_titles = registry.via_words()
        chat.customer_reach = lambda link, notify: [
            rules[t.platform].describe_contact(t.address) for t in outbox.customer_targets(link, notify)]
        chat.refunds = services.refunds
        chat.series = services.series
        chat.invoice_file = _invoice_file(services)
        return chat

    services.conversation_factory = conversation
    # Senders are built here rather than in app.py so `paylinks worker` delivers every platform's rows (after
    # the chat core's factory is complete: a platform's sender may take the chat core).
    for platform in registry.enabled_platforms(settings):
        try:
            services.senders[platform.name] = platform.build_sender(platform.section(settings), services)
        except ValueError as exc:  # e.g. Telegram webhook mode without a secret: refuse to start
            raise ConfigError(str(exc)) from None
        services.platforms.append(platform)
    services.webhooks = install_webhooks(services)
    startup.finished()
    return services


def _invoice_file(services: Services) -> Callable[[str], Awaitable[Path | None]]:
    """The console's /invoice answer: the invoice PDF written to a file, its path shown in the terminal."""
    async def write(link_id: str) -> Path | None:
        # Imported on the first /invoice: fpdf2 (with Pillow) and aiohttp are heavy for the commands that
        # only open the database (tests/bots/test_startup.py).
        from adapters.web.invoice_pages import InvoicePdfs

        body = await InvoicePdfs(services.db, services.links).pdf(link_id, "invoice")
        if body is None:
            return None
        path = Path(tempfile.gettempdir()) / "paylinks-invoices" / f"invoice-{link_id[:12]}.pdf"

        def save() -> None:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            path.write_bytes(body)

        await asyncio.to_thread(save)  # file I/O off the event loop
        return path

    return write


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
        await services.providers.close()
        await services.db.dispose()
