"""A worker process killed with SIGKILL while delivering 1,000 paid alerts loses none of them.

The worker is a real process (`python -m tests.fakes.chat_platform worker`: the same background jobs as
`paylinks worker`, with a sender for the fake platform) on a temporary SQLite file. It is killed at
random moments mid-delivery and started again; once the outbox is drained every chat must have had its
alert, and duplicates — sends that reached the platform but whose outcome died with the process — can
never exceed kills × outbox.concurrency.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.links import LinkDraft, LinkService
from core.merchants import MerchantService
from core.models import OutboxMessage
from core.money import Money
from core.outbox import Outbox
from core.ports import PaymentEvent
from core.sql import table
from tests.fakes.chat_platform import PLATFORM, FakeChatPlatform

ROOT = Path(__file__).resolve().parents[2]
OUTBOX = table(OutboxMessage)
ALERTS = 1000
CONCURRENCY = 8
KILLS = 5


async def pay_many(db: Database, count: int) -> None:
    """`count` links made in `count` different chats, all paid: one alert row each."""
    links = LinkService(db, public_base_url="https://pay.example", default_expiry=timedelta(days=7),
                        max_amount=Decimal("10000"))
    links.hooks.append(Outbox(link_url=links.url))
    merchant = await MerchantService(db, default_currency="SGD", default_locale="en_SG").create("Bakery")
    for n in range(count):
        link, _ = await links.create(LinkDraft(merchant_id=merchant.id, money=Money(100 + n, "SGD"),
                                               description=f"cake {n}", origin_platform=PLATFORM,
                                               origin_address=f"chat-{n}"))
        await links.record_payment(PaymentEvent("sandbox", f"evt_{n}", "payment.succeeded", link.id, f"ch_{n}",
                                                100 + n, "SGD"))


async def sent_count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(
            select(func.count()).select_from(OUTBOX).where(OUTBOX.c.status == "sent"))).scalar_one())


def worker_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env.update({
        "PAYLINKS_DATABASE__URL": database_url,
        "PAYLINKS_OUTBOX__CONCURRENCY": str(CONCURRENCY),
        # Short leases so a killed worker's rows come back quickly.
        "PAYLINKS_OUTBOX__LEASE": "2s",
        "PAYLINKS_OUTBOX__POLL_INTERVAL": "1s",
        "PYTHONPATH": str(ROOT),
    })
    return env


async def start_worker(url: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fakes.chat_platform", "worker", "--url", url,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeChatPlatform]:
    # A few milliseconds per message, like a real API, so kills land while sends are in flight.
    async with FakeChatPlatform(delay_s=0.004) as platform:
        yield platform


async def test_sigkilled_workers_lose_no_alert_and_duplicate_at_most_kills_times_concurrency(
    sqlite_database_url: str, fake: FakeChatPlatform, tmp_path: Path
) -> None:
    db = Database(sqlite_database_url)
    rng = random.Random()
    seed = rng.randrange(1_000_000)
    rng.seed(seed)
    env = worker_env(sqlite_database_url)
    log = tmp_path / "workers.log"
    kills = 0
    kills_mid_delivery = 0
    try:
        await pay_many(db, ALERTS)
        assert await sent_count(db) == 0
        for _ in range(KILLS):
            before = len(fake.deliveries)
            if before >= ALERTS:
                break
            worker = await start_worker(fake.url, env, log)
            # Kill after a random number of further deliveries, at a random instant between two of them.
            try:
                await fake.wait_for(min(ALERTS, before + rng.randint(30, 150)), within_s=30)
            except TimeoutError:
                pytest.fail(f"the worker delivered nothing for 30 s; its log:\n{log.read_text()[-3000:]}")
            await asyncio.sleep(rng.uniform(0, 0.02))
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            kills += 1
            kills_mid_delivery += len(fake.counts()) < ALERTS
        worker = await start_worker(fake.url, env, log)
        try:
            for _ in range(225):  # up to 45 s for the last worker to drain the outbox
                if await sent_count(db) >= ALERTS:
                    break
                await asyncio.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            await worker.wait()
    finally:
        await db.dispose()
    counts = fake.counts()
    missing = [f"chat-{n}" for n in range(ALERTS) if counts[f"chat-{n}"] == 0]
    duplicates = len(fake.deliveries) - len(counts)
    context = f"seed={seed} kills={kills} deliveries={len(fake.deliveries)} duplicates={duplicates}"
    assert not missing, f"{len(missing)} chats never got their alert ({context})"
    assert len(counts) == ALERTS
    assert kills_mid_delivery >= 3, f"kills must land while alerts are still undelivered ({context})"
    assert duplicates <= kills * CONCURRENCY, context
    print(context)  # shown with -s: how many kills, and what they cost
