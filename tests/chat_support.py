"""The `chat` fixture: drive the conversation core like a person in a chat (`await chat("/charge 25 cake")`).

Loaded by tests/conftest.py. Runs on both back ends (it uses the `settings` fixture), with a settable clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bots.config import Settings
from bots.services import Services, build_services
from core.conversation import Conversation
from core.markup import to_plain
from core.ports import IncomingMessage, Reply
from tests.clock import FakeClock


@dataclasses.dataclass
class ChatDriver:
    """One person in one chat. `as_user(...)` gives another person (or chat) on the same services."""

    services: Services
    clock: FakeClock
    user: str = "alice"
    platform: str = "console"
    address: str | None = None
    display_name: str | None = None
    workspace: str | None = None
    is_group: bool = False

    @property
    def conversation(self) -> Conversation:
        return self.services.conversation

    def message(self, text: str) -> IncomingMessage:
        return IncomingMessage(
            platform=self.platform,
            user_id=self.user,
            address=self.address or self.user,
            text=text,
            display_name=self.display_name if self.display_name is not None else self.user.title(),
            is_group=self.is_group,
            workspace=self.workspace,
        )

    async def __call__(self, text: str) -> list[Reply]:
        return await self.conversation.handle(self.message(text))

    async def text(self, text: str) -> str:
        """All replies as plain text, separated by blank lines."""
        return "\n\n".join(to_plain(reply.text) for reply in await self(text))

    def as_user(self, user: str, **changes: Any) -> ChatDriver:
        return dataclasses.replace(self, user=user, **changes)


@pytest.fixture
async def chat(settings: Settings) -> AsyncIterator[ChatDriver]:
    clock = FakeClock()
    services = build_services(settings, clock=clock)
    yield ChatDriver(services, clock)
    await services.db.dispose()
