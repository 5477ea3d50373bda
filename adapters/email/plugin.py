"""The email plug-in: the `[email]` section, the SMTP sender, GET/POST /u/{token} (unsubscribe), pacing
(`[outbox] email_per_sender`), and the address rule (customers by the email on their link)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, SecretStr

from adapters.plugin import ChatPlatform, PluginContext, WebParts, section_of
from core.limits import normalise_email
from core.pacing import PlatformLimits, rate_setting
from core.settings import NO_SECRET, PluginSection, reveal

if TYPE_CHECKING:  # annotations only: `paylinks --help` and the settings load this module
    from core.ports import ChatSender

MAIL_DIR_NAME = "paylinks-mail"


class EmailSettings(PluginSection):
    # On by default: without a host, mail is kept as .eml files in paylinks-mail/ beside the database.
    enabled: bool = True
    host: str = ""
    port: int = 587
    username: str = ""
    password: SecretStr = NO_SECRET
    security: Literal["starttls", "tls", "none"] = "starttls"
    from_address: str = "paylinks@localhost"
    reply_to: str = ""


class EmailPlugin(ChatPlatform[EmailSettings]):
    name = "email"
    title = "email"
    settings_model = EmailSettings
    outbox_keys: ClassVar[dict[str, str]] = {"email_per_sender": "5/s"}
    # Which contact on a link this platform reaches customers at (the outbox reads it).
    customer_contact: ClassVar[str] = "email"
    via_aliases: ClassVar[tuple[str, ...]] = ("mail",)  # "/charge 25 cake to ana@example.com via email"

    def enabled(self, settings: BaseModel) -> bool:
        # Without a host, mail is kept in files beside the SQLite database; with another database there
        # is no such place, so email is off until [email] host is set.
        section = self.section(settings)
        if section is None or not section.enabled:
            return False
        return bool(section.host) or str(section_of(settings, "database").url).startswith("sqlite")

    def check(self, section: EmailSettings, settings: BaseModel) -> None:
        if not section.enabled:
            return
        for key in ("from_address", "reply_to"):
            value = getattr(section, key)
            if value or key == "from_address":
                try:
                    normalise_email(value) if "@localhost" not in value else None
                except ValueError as exc:
                    raise ValueError(f"email.{key}: {exc}") from None
        if section.host and not 0 < section.port < 65536:
            raise ValueError(f"email.port: {section.port} is not a port number")

    def pacing(self, outbox: Mapping[str, str]) -> PlatformLimits:
        # SMTP relays limit messages per sending account: one bucket for the whole platform.
        return PlatformLimits(overall=rate_setting("outbox.email_per_sender", outbox["email_per_sender"]))

    def customer_address(self, contact: str | None) -> str | None:
        if not contact:
            return None
        try:
            return normalise_email(contact)
        except ValueError:
            return None

    def describe_contact(self, address: str) -> str:
        return f"{address} by email"

    def build_sender(self, section: EmailSettings | None, ctx: PluginContext) -> ChatSender:
        from adapters.email.compose import Sender
        from adapters.email.sender import EmailSender
        from core.contacts import Contacts
        from core.db import _sqlite_path

        assert section is not None
        database = Path(_sqlite_path(ctx.db.url) or "paylinks.db").resolve()
        return EmailSender(
            ctx.db, contacts=Contacts(ctx.db, clock=ctx.clock), public_base_url=ctx.public_base_url,
            sender=Sender(section.from_address, section.reply_to), host=section.host, port=section.port,
            username=section.username, password=reveal(section.password), security=section.security,
            outbox_dir=database.parent / MAIL_DIR_NAME,
        )

    def web(self, section: EmailSettings | None, ctx: PluginContext, sender: ChatSender) -> WebParts:
        from adapters.email.unsubscribe import UnsubscribePages
        from core.contacts import Contacts

        return WebParts(routes=UnsubscribePages(Contacts(ctx.db, clock=ctx.clock), ctx.merchants).routes())


PLUGIN = EmailPlugin()
