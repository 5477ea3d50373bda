"""One Telegram update delivered to two real `paylinks serve` processes on one database makes one link
(issue 11 point 2): the dedupe lives in the database, not in any process's memory.

Both processes talk to the fake Bot API server on 127.0.0.1 in this test's loop; the update is posted to
both at once, as when Telegram redelivers to a load balancer that picks the other server.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from adapters.telegram.bot import SECRET_HEADER, WEBHOOK_PATH
from core.db import Database
from core.deliveries import DELIVERIES
from core.models import PaymentLink
from core.sql import table
from tests.conftest import free_port
from tests.fakes.telegram import FakeTelegram

PAYLINKS = Path(sys.executable).parent / "paylinks"
TOKEN = "424242:PROCESS-token-do-not-log"
SECRET = "process-webhook-secret"
LINKS = table(PaymentLink)


class Serve:
    """`paylinks serve` with Telegram in webhook mode, its output in a file."""

    def __init__(self, database_url: str, fake: FakeTelegram, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.env = {
            **os.environ,
            "PAYLINKS_DATABASE__URL": database_url,
            "PAYLINKS_SERVER__PORT": str(self.port),
            "PAYLINKS_SERVER__PUBLIC_BASE_URL": self.base,
            "PAYLINKS_PAYMENTS__SANDBOX__WEBHOOK_SECRET": "whsec_process_test",
            "PAYLINKS_TELEGRAM__ENABLED": "true",
            "PAYLINKS_TELEGRAM__TOKEN": TOKEN,
            "PAYLINKS_TELEGRAM__WEBHOOK_SECRET": SECRET,
            "PAYLINKS_TELEGRAM__API_BASE_URL": fake.url,
        }
        self.env.pop("PAYLINKS_CONFIG", None)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(PAYLINKS), "serve", env=self.env, cwd=self.log_path.parent, stdout=out, stderr=out
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def post(self, session: aiohttp.ClientSession, body: Any) -> int:
        kwargs: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"data": body}
        async with session.post(self.base + WEBHOOK_PATH, headers={SECRET_HEADER: SECRET}, **kwargs) as response:
            await response.read()
            return response.status

    async def ready(self, session: aiohttp.ClientSession, within: float = 30.0) -> None:
        """Until the bot is up: 503 while it starts, 400 for a body that is not an update once it runs."""
        async with asyncio.timeout(within):
            while True:
                assert self.proc is not None and self.proc.returncode is None, self.log()[-3000:]
                try:
                    if await self.post(session, b"not an update") == 400:
                        return
                except aiohttp.ClientConnectionError:
                    pass  # not listening yet
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 15)


async def count(database_url: str, tbl: Any) -> int:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(tbl))).scalar_one())
    finally:
        await db.dispose()


async def test_one_update_posted_to_two_serve_processes_makes_one_link(database_url: str, tmp_path: Path) -> None:
    async with FakeTelegram(TOKEN, username="paylinks_process_bot") as fake, aiohttp.ClientSession() as session:
        servers = [Serve(database_url, fake, tmp_path / f"serve-{n}.log") for n in (1, 2)]
        try:
            await asyncio.gather(*(server.start() for server in servers))
            await asyncio.gather(*(server.ready(session) for server in servers))
            update = fake.message_update("/charge 25 cake")  # from a new seller: onboarding races as well
            assert await asyncio.gather(*(server.post(session, update) for server in servers)) == [200, 200]

            def cards() -> list[Any]:
                return [c for c in fake.calls_to("sendMessage") if "/p/" in c.params["text"]]

            await fake.wait_for(cards, within=20)
            # The other process handled the update too and found its delivery recorded: it answered nothing.
            async with asyncio.timeout(20):
                while not any("redelivered message" in server.log() for server in servers):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        finally:
            await asyncio.gather(*(server.stop() for server in servers))
        assert len(cards()) == 1
    assert await count(database_url, LINKS) == 1
    assert await count(database_url, DELIVERIES) == 1
    assert all(TOKEN.split(":")[1] not in server.log() for server in servers)
