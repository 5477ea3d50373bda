"""The console plug-in object (adapters/console.py has the platform itself).

Apart so the registry, which `paylinks --help` and every settings load import, does not load the chat
core and SQLAlchemy with it; the sender's module is imported when a program builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.plugin import ChatPlatform, PluginContext
from core.settings import PluginSection

if TYPE_CHECKING:
    from core.ports import ChatSender

PLATFORM = "console"


class ConsolePlugin(ChatPlatform[PluginSection]):
    """The terminal chat (`paylinks chat`): always on, no settings, no routes, unpaced."""

    name = PLATFORM
    title = "the terminal chat"

    def build_sender(self, section: PluginSection | None, ctx: PluginContext) -> ChatSender:
        from adapters.console import ConsoleSender

        return ConsoleSender(ctx.db, clock=ctx.clock)


PLUGIN = ConsolePlugin()
