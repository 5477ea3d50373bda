"""open_services: what `paylinks worker` and the CLI build and tear down."""

from __future__ import annotations

from bots.config import Settings
from bots.services import open_services
from core.ports import MessageRef, Reply


class ClosingSender:
    platform = "test"

    def __init__(self) -> None:
        self.closed = 0

    async def send(self, address: str, reply: Reply) -> MessageRef:
        return MessageRef(self.platform, address, "1")

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        return None

    async def close(self) -> None:
        self.closed += 1


async def test_senders_are_closed_when_services_close(sqlite_settings: Settings) -> None:
    sender = ClosingSender()
    async with open_services(sqlite_settings) as services:
        assert "console" in services.senders  # the terminal chat is always there
        services.senders["test"] = sender
        assert sender.closed == 0
    assert sender.closed == 1
