"""A generic fake chat platform on 127.0.0.1, and a small HTTP ChatSender for it.

The outbox's crash and concurrency tests and its benchmark need a platform that records every message
it receives, can be slow, can answer errors, and can enforce Telegram's published limits — without a
platform SDK in the way. The wire format is deliberately tiny:

    POST /send  {"address": …, "reply": Reply.to_dict()}           -> 200 {"message_id": "…"}
    POST /edit  {"ref": MessageRef.to_dict(), "reply": …}          -> 200 {}
    errors:     429 {"retry_after": s} · 5xx · 403 {"description"} · 409 {"new_address": …}

`HttpChatSender` maps those answers to RetryLater / Transient / Permanent / AddressMoved exactly as a real
adapter maps its SDK's errors. Run as a program, this module is a stand-alone outbox worker wired to a
fake platform, for tests that kill workers (`python -m tests.fakes.chat_platform worker --url …`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from core.ports import AddressMoved, MessageRef, Permanent, Reply, RetryLater, Transient

log = logging.getLogger("paylinks.fakechat")

PLATFORM = "fakechat"


@dataclass(frozen=True, slots=True)
class Delivery:
    action: str  # "send" or "edit"
    address: str
    text: str
    at: float  # time.monotonic() when the fake accepted it
    worker: str = ""
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class Window:
    """At most `count` accepted messages in any `period_s` window (the fake's view of a limit)."""

    count: int
    period_s: float


@dataclass
class TelegramLimits:
    """Telegram's published limits as the fake enforces them: per private chat, per group, overall.

    Windows are a little shorter than the nominal period (`tolerance`), as Telegram's own are "not
    exact": a sender pacing at exactly the allowed rate passes despite a few milliseconds of jitter,
    while one sending faster — or in bursts — gets 429s.
    """

    per_chat: Window = field(default_factory=lambda: Window(1, 1.0))
    per_group: Window = field(default_factory=lambda: Window(20, 60.0))
    overall: Window = field(default_factory=lambda: Window(30, 1.0))
    tolerance: float = 0.1


class _Limiter:
    def __init__(self, limits: TelegramLimits) -> None:
        self.limits = limits
        self._seen: dict[str | None, collections.deque[float]] = collections.defaultdict(collections.deque)

    def _window(self, key: str | None, window: Window, now: float) -> float:
        """0 when one more fits, else the seconds until it would."""
        span = window.period_s * (1 - self.limits.tolerance)
        times = self._seen[key]
        while times and times[0] <= now - window.period_s:
            times.popleft()
        recent = [t for t in times if t > now - span]
        if len(recent) < window.count:
            return 0.0
        return recent[-window.count] + span - now

    def check(self, address: str, now: float) -> float:
        chat = self.limits.per_group if address.startswith("-") else self.limits.per_chat
        return max(self._window(address, chat, now), self._window(None, self.limits.overall, now))

    def accept(self, address: str, now: float) -> None:
        self._seen[address].append(now)
        self._seen[None].append(now)


@dataclass
class Failure:
    status: int
    body: dict[str, Any]


class FakeChatPlatform:
    """The fake server. Use `async with FakeChatPlatform() as fake:`; `fake.url` is its base URL."""

    def __init__(self, *, delay_s: float = 0.0, limits: TelegramLimits | None = None) -> None:
        self.delay_s = delay_s
        self.limiter = _Limiter(limits) if limits else None
        self.deliveries: list[Delivery] = []
        self.rejected_429 = 0
        self._failures: dict[str, collections.deque[Failure]] = collections.defaultdict(collections.deque)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.delivered = asyncio.Event()

    # ---- scripting errors

    def fail(self, address: str, status: int, times: int = 1, **body: Any) -> None:
        """The next `times` messages to `address` get this answer instead of being delivered."""
        for _ in range(times):
            self._failures[address].append(Failure(status, body))

    # ---- what arrived

    def to(self, address: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.address == address]

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(d.address for d in self.deliveries)

    async def wait_for(self, count: int, within_s: float = 10.0) -> None:
        """Until at least `count` messages have been delivered (raises TimeoutError otherwise)."""
        async with asyncio.timeout(within_s):
            while len(self.deliveries) < count:
                self.delivered.clear()
                await self.delivered.wait()

    # ---- the server

    async def _handle(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        data = await request.json()
        address = str(data["ref"]["address"] if action == "edit" else data["address"])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        queued = self._failures.get(address)
        if queued:
            failure = queued.popleft()
            return web.json_response(failure.body, status=failure.status)
        now = time.monotonic()
        if self.limiter is not None:
            wait = self.limiter.check(address, now)
            if wait > 0:
                self.rejected_429 += 1
                return web.json_response({"retry_after": max(1, round(wait + 0.5))}, status=429)
            self.limiter.accept(address, now)
        message_id = str(data["ref"]["message_id"]) if action == "edit" else str(next(self._ids))
        self.deliveries.append(Delivery(action, address, str(data["reply"]["text"]), now,
                                        request.headers.get("X-Worker", ""), message_id))
        self.delivered.set()
        return web.json_response({"message_id": message_id} if action == "send" else {})

    async def _stats(self, request: web.Request) -> web.Response:
        """What arrived, for a test or benchmark in another process (times are time.monotonic(), which is
        one clock for every process on the machine)."""
        since = int(request.query.get("since", "0"))
        body: dict[str, Any] = {"count": len(self.deliveries), "rejected_429": self.rejected_429}
        if request.query.get("deliveries", "1") != "0":
            body["deliveries"] = [[d.action, d.address, d.text, d.at, d.worker] for d in self.deliveries[since:]]
        return web.json_response(body)

    async def start(self, port: int = 0) -> FakeChatPlatform:
        app = web.Application()
        app.router.add_post("/{action:send|edit}", self._handle)
        app.router.add_get("/_stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeChatPlatform:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class HttpChatSender:
    """A ChatSender for the fake platform (its session is made on first use, inside the running loop)."""

    def __init__(self, base_url: str, *, platform: str = PLATFORM, worker: str = "", timeout_s: float = 10) -> None:
        self.platform = platform
        self.base_url = base_url.rstrip("/")
        self.worker = worker
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.calls = 0

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=64),
                headers={"X-Worker": self.worker},
            )
        return self._session

    async def _post(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        try:
            async with self._client().post(f"{self.base_url}/{action}", json=body) as response:
                data: dict[str, Any] = await response.json(content_type=None) or {}
                status = response.status
                retry_header = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Transient(f"network error: {type(exc).__name__}") from None
        if status == 200:
            return data
        if status == 429:
            raise RetryLater(float(data.get("retry_after") or retry_header or 1), "429 too many requests")
        if status == 409 and data.get("new_address"):
            raise AddressMoved(str(data["new_address"]))
        if status >= 500:
            raise Transient(f"{status} from the platform")
        raise Permanent(str(data.get("description") or f"{status} from the platform"))

    async def send(self, address: str, reply: Reply) -> MessageRef:
        data = await self._post("send", {"address": address, "reply": reply.to_dict()})
        return MessageRef(self.platform, address, str(data["message_id"]))

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        await self._post("edit", {"ref": ref.to_dict(), "reply": reply.to_dict()})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# ---------------------------------------------------------------- a stand-alone worker for crash tests


async def run_worker(url: str, platform: str) -> int:
    """`paylinks worker` (the same background jobs) with a sender for the fake platform registered."""
    from bots.config import load_settings
    from bots.jobs import background_jobs
    from bots.services import open_services

    settings = load_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_services(settings) as services:
        sender = HttpChatSender(url, platform=platform, worker=f"pid-{os.getpid()}")
        services.senders[platform] = sender
        async with background_jobs(services):
            print("worker running", file=sys.stderr, flush=True)
            await stop.wait()
        await sender.close()
    return 0


async def run_server(port: int, *, telegram_limits: bool, delay_s: float) -> int:
    """The fake platform alone, so its clock is not held up by whatever else a test process is doing."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fake = FakeChatPlatform(delay_s=delay_s, limits=TelegramLimits() if telegram_limits else None)
    await fake.start(port)
    try:
        print(f"serving {fake.url}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await fake.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.chat_platform")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="an outbox worker that delivers to a fake platform")
    worker.add_argument("--url", required=True)
    worker.add_argument("--platform", default=PLATFORM)
    server = sub.add_parser("serve", help="the fake platform in a process of its own")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--telegram-limits", action="store_true", help="answer 429 beyond Telegram's limits")
    server.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.command == "serve":
        return asyncio.run(run_server(args.port, telegram_limits=args.telegram_limits, delay_s=args.delay_s))
    return asyncio.run(run_worker(args.url, args.platform))


if __name__ == "__main__":
    sys.exit(main())
