"""Four worker processes on one PostgreSQL outbox deliver 5,000 alerts, each exactly once.

Claims use `FOR UPDATE SKIP LOCKED` under a lease, so workers racing for the same rows never both get
one. The rows are written in one transaction while all four workers are already polling, so they
compete from the first moment. Runs only on PostgreSQL (the postgres_url fixture skips when
PAYLINKS_TEST_DATABASE_URL is unset); SQLite has one dispatcher by design.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from core.db import Database
from core.models import OutboxMessage
from core.outbox import ACTION_SEND, DIGEST_KIND, Target, insert_rows, new_row, payload
from core.outbox_texts import AlertFacts, alert_reply
from core.sql import table
from tests.fakes.chat_platform import PLATFORM, FakeChatPlatform

ROOT = Path(__file__).resolve().parents[2]
OUTBOX = table(OutboxMessage)
ALERTS = 5000
WORKERS = 4


def alert_rows(count: int) -> list[dict[str, object]]:
    """What the outbox hook writes for `count` paid links, each made in its own chat."""
    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        facts = AlertFacts(event="link.paid", link_id=f"link{n}", amount_minor=100 + n, currency="SGD",
                           description=f"cake {n}", at=now, locale="en_SG")
        body = payload(ACTION_SEND, alert_reply(facts), event=facts.event, facts=facts)
        rows.append(new_row(target=Target(PLATFORM, f"chat-{n}"), kind=DIGEST_KIND, body=body,
                            key=f"concurrency:{n}", now=now, merchant_id=None, link_id=None))
    return rows


async def counts(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        found = (await conn.execute(select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status))).all()
    return {str(status): int(n) for status, n in found}


@pytest.fixture
async def fake() -> AsyncIterator[FakeChatPlatform]:
    async with FakeChatPlatform(delay_s=0.002) as platform:
        yield platform


async def test_four_workers_deliver_5000_alerts_each_exactly_once(
    postgres_url: str, fake: FakeChatPlatform
) -> None:
    db = Database(postgres_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env.update({"PAYLINKS_DATABASE__URL": postgres_url, "PAYLINKS_OUTBOX__CONCURRENCY": "8",
                "PAYLINKS_OUTBOX__POLL_INTERVAL": "1s", "PYTHONPATH": str(ROOT)})
    workers: list[asyncio.subprocess.Process] = []
    logs: list[bytearray] = []
    ready: list[asyncio.Event] = []

    async def drain(worker: asyncio.subprocess.Process, log: bytearray, running: asyncio.Event) -> None:
        # Read everything the worker logs (a full pipe would stall it); note when it starts polling.
        assert worker.stderr is not None
        async for line in worker.stderr:
            log.extend(line)
            if b"worker running" in line:
                running.set()

    readers = []
    try:
        async with db.write() as conn:
            await conn.execute(delete(OUTBOX))  # rows other tests of this session left behind
        for _ in range(WORKERS):
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.fakes.chat_platform", "worker", "--url", fake.url,
                cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
            workers.append(worker)
            logs.append(bytearray())
            ready.append(asyncio.Event())
            readers.append(asyncio.create_task(drain(worker, logs[-1], ready[-1])))
        async with asyncio.timeout(30):  # every worker is polling before the rows appear
            for running in ready:
                await running.wait()
        async with db.write() as conn:
            await insert_rows(conn, alert_rows(ALERTS))
        for _ in range(250):  # up to 50 s
            if (await counts(db)).get("sent", 0) >= ALERTS:
                break
            if any(w.returncode is not None for w in workers):
                pytest.fail("a worker exited while delivering:\n" + "\n".join(bytes(b).decode()[-2000:] for b in logs))
            await asyncio.sleep(0.2)
        final = await counts(db)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            await worker.wait()
        await asyncio.gather(*readers, return_exceptions=True)
        await db.dispose()
    per_chat = fake.counts()
    assert final == {"sent": ALERTS}
    assert len(per_chat) == ALERTS and set(per_chat.values()) == {1}, "some alert was delivered twice"
    assert len(fake.deliveries) == ALERTS
    # Meaningful only if the workers really competed for the rows.
    busy = collections.Counter(d.worker for d in fake.deliveries)
    assert len(busy) >= 2, f"only {busy} delivered anything"
    print(f"deliveries per worker: {sorted(busy.values())}")  # shown with -s
