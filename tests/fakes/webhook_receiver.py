"""A merchant's webhook receiver on 127.0.0.1 that answers as a script says: fail, hang, or accept."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    status: int  # what the receiver answered (0: it hung until the client gave up)

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class WebhookReceiver:
    """`script` is consumed one entry per request: an HTTP status, or "hang" (never answer in time);
    when empty, `default` answers. `gate`, when set, holds every request until it is set."""

    def __init__(self, script: list[int | str] | None = None, default: int = 200) -> None:
        self.script = list(script or [])
        self.default = default
        self.received: list[Received] = []
        self.gate: asyncio.Event | None = None
        self.url = ""
        self._changed = asyncio.Condition()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        step = self.script.pop(0) if self.script else self.default
        record = Received(dict(request.headers), body, 0 if step == "hang" else int(step))
        async with self._changed:
            self.received.append(record)
            self._changed.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        if step == "hang":
            await asyncio.sleep(30)
        return web.Response(status=int(step), text="ok")

    async def wait_for(self, count: int, within_s: float = 5.0) -> list[Received]:
        return await self.wait_until(lambda received: len(received) >= count, within_s)

    async def wait_until(self, done: Callable[[list[Received]], bool], within_s: float = 5.0) -> list[Received]:
        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: done(self.received))

        await asyncio.wait_for(reached(), within_s)
        return self.received


@asynccontextmanager
async def webhook_receiver(script: list[int | str] | None = None, default: int = 200,
                           host: str = "127.0.0.1") -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(script, default)
    app = web.Application()
    app.router.add_post("/hooks", receiver._handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://{host}:{port}/hooks"
    try:
        yield receiver
    finally:
        if receiver.gate is not None:
            receiver.gate.set()
        await runner.cleanup()
