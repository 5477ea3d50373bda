"""The Slack plug-in: the `[slack]` section, the sender, the Bolt app's routes and lifespan, pacing.

Light on purpose (slack-bolt is imported when Slack is enabled and used, not by every command).
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


class SlackSettings(PluginSection):
    bot_token: SecretStr = NO_SECRET
    signing_secret: SecretStr = NO_SECRET
    client_id: str = ""
    client_secret: SecretStr = NO_SECRET
    api_base_url: str = "https://slack.com/api/"


def channel_of(address: str) -> str:
    # Slack addresses are TEAM:CHANNEL, or TEAM:CHANNEL:TS for a thread; Slack's 1/s is per channel.
    return ":".join(address.split(":")[:2])


class SlackPlugin(ChatPlatform[SlackSettings]):
    name = "slack"
    title = "Slack"
    settings_model = SlackSettings
    outbox_keys: ClassVar[dict[str, str]] = {"slack_per_channel": "1/s"}

    def check(self, section: SlackSettings, settings: BaseModel) -> None:
        if section.enabled:
            from adapters.slack.bot import check_settings

            check_settings(section)

    def pacing(self, outbox: Mapping[str, str]) -> PlatformLimits:
        return PlatformLimits(per_target=rate_setting("outbox.slack_per_channel", outbox["slack_per_channel"]),
                              limit_key=channel_of)

    def member_address(self, user_id: str) -> str | None:
        # chat.postMessage takes a user id as the channel: the app's direct messages with that person.
        return user_id

    def build_sender(self, section: SlackSettings | None, ctx: PluginContext) -> ChatSender:
        from adapters.slack.bot import build_sender, options_from_settings

        assert section is not None
        return build_sender(options_from_settings(section, public_base_url=ctx.public_base_url), ctx.db, ctx.secrets)

    async def rotate_secrets(self, ctx: PluginContext) -> int:
        """Bot tokens of OAuth installs, re-encrypted (and legacy plaintext ones encrypted)."""
        from adapters.slack.stores import rotate_tokens

        return await rotate_tokens(ctx.db, ctx.secrets)

    def web(self, section: SlackSettings | None, ctx: PluginContext, sender: ChatSender) -> WebParts:
        """POST /slack/events, GET /slack/install, /slack/oauth_redirect. The Bolt AsyncApp is built inside
        the running loop."""
        from adapters.slack.bot import SLACK_ADAPTER, SlackAdapter, options_from_settings
        from adapters.slack.sender import SlackSender

        assert section is not None and isinstance(sender, SlackSender)
        slack = SlackAdapter(
            options_from_settings(section, public_base_url=ctx.public_base_url),
            db=ctx.db, links=ctx.links, merchants=ctx.merchants, handle=ctx.handle, sender=sender,
            box=ctx.secrets, clock=ctx.clock,
        )

        async def slack_ctx(app: web.Application) -> AsyncIterator[None]:
            await sender.start()
            try:
                await slack.start()  # single-workspace mode: auth.test; a rejected token stops start-up
                yield
            finally:
                await slack.close()  # answers in flight finish before the HTTP session goes
                await sender.close()

        return WebParts(routes=slack.routes(), lifespans=[slack_ctx], values={SLACK_ADAPTER: slack})


PLUGIN = SlackPlugin()
