"""The Telegram plug-in: the `[telegram]` section, the sender, the bot's routes and lifespan, pacing.

Light on purpose (no PTB import): settings are loaded by every command, the bot only by `serve`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, SecretStr

from adapters.plugin import ChatPlatform, PluginContext, WebParts
from core.pacing import PlatformLimits, rate_setting
from core.settings import NO_SECRET, PluginSection

if TYPE_CHECKING:  # annotations only: `paylinks --help` and the settings load this module
    from aiohttp import web

    from core.ports import ChatSender


class TelegramSettings(PluginSection):
    token: SecretStr = NO_SECRET
    mode: str = "webhook"
    webhook_secret: SecretStr = NO_SECRET
    api_base_url: str = "https://api.telegram.org"
    send_qr: bool = False


def is_group(address: str) -> bool:
    # Telegram chat ids of groups and supergroups are negative; private chats are positive.
    return address.strip().startswith("-")


class TelegramPlugin(ChatPlatform[TelegramSettings]):
    name = "telegram"
    title = "Telegram"
    settings_model = TelegramSettings
    outbox_keys: ClassVar[dict[str, str]] = {
        "telegram_per_chat": "1/s",
        "telegram_per_group": "20/min",
        "telegram_overall": "30/s",
    }

    def check(self, section: TelegramSettings, settings: BaseModel) -> None:
        # The mode is checked even while Telegram is off: a typo should not wait for the day it is enabled.
        if section.mode not in ("webhook", "polling"):
            raise ValueError("telegram.mode: expected \"webhook\" or \"polling\"")

    def pacing(self, outbox: Mapping[str, str]) -> PlatformLimits:
        return PlatformLimits(
            per_target=rate_setting("outbox.telegram_per_chat", outbox["telegram_per_chat"]),
            group=rate_setting("outbox.telegram_per_group", outbox["telegram_per_group"]),
            overall=rate_setting("outbox.telegram_overall", outbox["telegram_overall"]),
            is_group=is_group,
        )

    def member_address(self, user_id: str) -> str | None:
        return user_id  # a private chat's id is the user's id

    def build_sender(self, section: TelegramSettings | None, ctx: PluginContext) -> ChatSender:
        # Here (not in web) so `paylinks worker` delivers Telegram outbox rows too.
        from adapters.telegram.config import check_options
        from adapters.telegram.sender import TelegramSender

        assert section is not None
        check_options(section)  # e.g. webhook mode without a secret: refuse to start (a ValueError)
        return TelegramSender(section)

    def web(self, section: TelegramSettings | None, ctx: PluginContext, sender: ChatSender) -> WebParts:
        """POST /telegram/webhook or long polling, inline mode, the command menu. PTB's Application is
        built inside the running loop (bot.start())."""
        from adapters.telegram.bot import TELEGRAM_BOT, TelegramBot
        from adapters.telegram.inline import CoreInlineCharges

        assert section is not None
        bot = TelegramBot(section, conversation=ctx.handle, links=ctx.links,
                          inline=CoreInlineCharges(ctx.conversation, clock=ctx.clock))

        async def telegram_ctx(app: web.Application) -> AsyncIterator[None]:
            await bot.start()  # getMe, setMyCommands and polling retry in the background until Telegram answers
            try:
                yield
            finally:
                await bot.stop()  # updates in flight finish before the sender's HTTP client goes
                await sender.close()

        return WebParts(routes=bot.routes(), lifespans=[telegram_ctx], values={TELEGRAM_BOT: bot})


PLUGIN = TelegramPlugin()
