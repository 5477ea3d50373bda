"""The plug-in interfaces: what a chat platform or a payment provider package exports to be plugged in.

Each outside system is one package exporting one object (`PLUGIN`), listed once in adapters/registry.py.
The object declares its settings section (a pydantic model), builds its port implementation (a
`ChatSender` or a `PaymentProvider`), and hands over its aiohttp routes and lifespans (`cleanup_ctx`) in
a `WebParts`; bots/ mounts them. Chat platforms also carry their address rules (core/ports.AddressRules)
and their pacing keys under `[outbox]`.

Building is pure: SDK clients are made inside the running loop, in the lifespans or on first use, so the
same sender serves `paylinks serve` and `paylinks worker`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel

from core.settings import PluginSection, Section

if TYPE_CHECKING:
    # Annotations only: the plug-in modules import this one, and `paylinks --help` imports them all, so
    # aiohttp, SQLAlchemy and the core services load only where a command builds something.
    from aiohttp import web

    from core.clock import Clock
    from core.conversation import Conversation
    from core.db import Database
    from core.links import LinkService
    from core.merchants import MerchantService
    from core.pacing import PlatformLimits
    from core.ports import ChatSender, IncomingMessage, PaymentProvider, ProviderResolver, Reply
    from core.provider_accounts import ShopAccount
    from core.secrets import SecretBox

Lifespan = Callable[["web.Application"], AsyncIterator[None]]
Handler = Callable[["IncomingMessage"], Awaitable[list["Reply"]]]

SectionT = TypeVar("SectionT", bound=Section)
ChatSectionT = TypeVar("ChatSectionT", bound=PluginSection)


class PluginContext(Protocol):
    """What plug-ins may use from the running program (bots.services.Services has all of it)."""

    @property
    def db(self) -> Database: ...

    @property
    def links(self) -> LinkService: ...

    @property
    def merchants(self) -> MerchantService: ...

    @property
    def conversation(self) -> Conversation: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def public_base_url(self) -> str: ...

    @property
    def settings(self) -> BaseModel:
        """The whole assembled Settings (a plug-in that shares another's section, as SMS shares
        [whatsapp]'s Twilio account, reads it here)."""
        ...

    @property
    def secrets(self) -> SecretBox:
        """Encrypts what a plug-in stores (tokens) under `[security] secret_key`."""
        ...

    @property
    def providers(self) -> ProviderResolver:
        """Which provider account serves a shop (the deployment's, or the shop's own)."""
        ...

    async def handle(self, message: IncomingMessage) -> list[Reply]:
        """The chat core's answer to a message (looked up per message, so tests may stand in for it)."""
        ...


@dataclass
class WebParts:
    """What a plug-in adds to the aiohttp app: routes, lifespans (appended to cleanup_ctx in this
    order) and app values (e.g. the mounted bot, which tests reach through its AppKey)."""

    routes: list[web.RouteDef] = field(default_factory=list)
    lifespans: list[Lifespan] = field(default_factory=list)
    values: dict[web.AppKey[Any], Any] = field(default_factory=dict)


def section_of(settings: BaseModel, name: str) -> Any:
    """A plug-in's section of the assembled Settings (their fields are added at load time)."""
    return getattr(settings, name)


class ChatPlatform(Generic[ChatSectionT]):
    """A chat platform plug-in. Subclasses set `name` (the platform, its `[section]` and the senders'
    `platform`) and `settings_model`, and override what they have."""

    name: ClassVar[str]
    settings_model: ClassVar[type[PluginSection] | None] = None  # None: no section, always enabled
    # Keys this platform adds to the shared [outbox] section, with their default rates.
    outbox_keys: ClassVar[Mapping[str, str]] = {}
    # How sellers' notices name the platform ("WhatsApp").
    title: ClassVar[str] = ""
    # Receipts and links go to customers through this platform when it is enabled.
    reaches_customers: ClassVar[bool] = False

    def section(self, settings: BaseModel) -> ChatSectionT | None:
        if self.settings_model is None:
            return None
        return cast(ChatSectionT, section_of(settings, self.name))

    def enabled(self, settings: BaseModel) -> bool:
        section = self.section(settings)
        return section is None or section.enabled

    def check(self, section: ChatSectionT, settings: BaseModel) -> None:
        """Start-up check of the section when loading settings; raise ValueError naming the key."""

    def pacing(self, outbox: Mapping[str, str]) -> PlatformLimits | None:
        """How sends to this platform are paced, from the [outbox] rates (key -> text); None: unpaced."""
        return None

    # ---- address rules (core.ports.AddressRules)

    def member_address(self, user_id: str) -> str | None:
        return None

    def customer_address(self, contact: str | None) -> str | None:
        return None

    def describe_contact(self, address: str) -> str:
        return f"{address} on {self.title or self.name}"

    # ---- building

    def build_sender(self, section: ChatSectionT | None, ctx: PluginContext) -> ChatSender:
        raise NotImplementedError

    def web(self, section: ChatSectionT | None, ctx: PluginContext, sender: ChatSender) -> WebParts:
        """Routes and lifespans in `paylinks serve`; the lifespans close the sender at shutdown."""
        return WebParts()

    async def rotate_secrets(self, ctx: PluginContext) -> int:
        """`paylinks rotate-secrets`: re-encrypt what this platform stores; returns how many rows changed."""
        return 0


class PaymentProviderPlugin(Generic[SectionT]):
    """A payment provider plug-in; its section is `[payments.<name>]`, chosen by `[payments] provider`."""

    name: ClassVar[str]
    settings_model: ClassVar[type[Section]]
    # The secrets a shop's own account needs (`paylinks merchant set-provider` reads them from stdin);
    # empty: no per-shop accounts, a shop choosing this provider uses the deployment's instance.
    account_secrets: ClassVar[tuple[str, ...]] = ()
    # Settings of a shop's account other than secrets ("environment", "country_code"), and their defaults.
    account_options: ClassVar[tuple[str, ...]] = ()
    account_defaults: ClassVar[Mapping[str, str]] = {}

    def section(self, settings: BaseModel) -> SectionT:
        return cast(SectionT, section_of(section_of(settings, "payments"), self.name))

    def check(self, section: SectionT, settings: BaseModel) -> None:
        """Start-up check when this provider is selected; raise ValueError naming the key."""

    def build(self, section: SectionT, ctx: PluginContext) -> PaymentProvider:
        raise NotImplementedError

    def webhook_path(self) -> str:
        return f"/webhooks/{self.name}"

    def webhook_routes(self, provider: PaymentProvider, links: LinkService) -> list[web.RouteDef]:
        """POST /webhooks/<name>: verified by the provider, recorded by LinkService.record_payment."""
        from adapters.web.webhooks import PaymentWebhooks

        return PaymentWebhooks(provider, links, path=self.webhook_path()).routes()

    def web(self, section: SectionT, ctx: PluginContext, provider: PaymentProvider, *,
            webhook_url: str) -> WebParts:
        """Pages the provider serves itself (a hosted checkout); `webhook_url` is where its webhooks go."""
        return WebParts()

    # ---- shops' own accounts (adapters/payments/accounts.py)

    def check_account(self, section: SectionT, account: ShopAccount) -> None:
        """The shape of a shop's account (key prefixes, environment); raise ValueError naming the field."""

    def build_account(self, section: SectionT, ctx: PluginContext, account: ShopAccount) -> PaymentProvider:
        """The provider instance acting for one shop's own account."""
        raise NotImplementedError

    async def verify_account(self, provider: PaymentProvider) -> None:
        """Prove the account's credentials work with one call to the provider (raises ProviderError)."""

    def checkout_origins(self, section: SectionT) -> tuple[str, ...]:
        """Where a shop's own account of this provider sends customers to pay (CSP form-action)."""
        return ()

    def shop_webhook_path(self, merchant_id: str = "{merchant_id}") -> str:
        return f"/webhooks/{self.name}/{merchant_id}"

    def account_web(self, section: SectionT, ctx: PluginContext) -> WebParts:
        """Routes serving every account of this provider, the deployment's and shops' own: the return
        page and POST /webhooks/<name>/{merchant_id}; mounted whether or not it is the default."""
        return WebParts()
