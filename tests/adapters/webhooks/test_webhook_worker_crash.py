"""A `paylinks worker` SIGKILLed while it delivers a merchant webhook: the next worker delivers every
event at least once, in order per link, each verified with standardwebhooks' Webhook.verify."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from bots.config import Secret
from bots.services import open_services
from core.links import LinkDraft
from core.models import OutboxMessage
from core.money import Money
from core.ports import PaymentEvent
from core.secretbox import new_key
from core.sql import table
from tests.conftest import make_settings
from tests.fakes.webhook_receiver import webhook_receiver

ROOT = Path(__file__).resolve().parents[3]
OUTBOX = table(OutboxMessage)
LINKS = 3
ORDER = ["link.created", "link.paid", "payment.succeeded"]


def worker_env(database_url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env.update({
        "PAYLINKS_DATABASE__URL": database_url,
        "PAYLINKS_WEBHOOKS__ALLOW_PRIVATE": "true",
        "PAYLINKS_WEBHOOKS__SECRET_KEY": key,
        "PAYLINKS_WEBHOOKS__TIMEOUT": "5s",
        # A short lease, so the killed worker's delivery comes back quickly.
        "PAYLINKS_OUTBOX__LEASE": "1s",
        "PAYLINKS_OUTBOX__POLL_INTERVAL": "1s",
        "PYTHONPATH": str(ROOT),
    })
    return env


async def start_worker(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; from bots.cli import main; sys.exit(main())", "worker",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr)


async def test_a_sigkilled_worker_loses_no_webhook_and_keeps_each_links_order(
    database_url: str, tmp_path: Path
) -> None:
    key = new_key()
    settings = make_settings(database_url, webhooks__allow_private=True, webhooks__secret_key=Secret(key))
    log = tmp_path / "workers.log"
    async with webhook_receiver() as receiver, open_services(settings, migrate=False) as services:
        merchant = await services.merchants.create("Bakery", currency="SGD", locale="en_SG")
        _, secret = await services.webhooks.create(merchant.id, receiver.url, ORDER)
        made = []
        for n in range(LINKS):
            link, _ = await services.links.create(LinkDraft(merchant_id=merchant.id, money=Money(100 + n, "SGD"),
                                                            description=f"cake {n}"))
            await services.links.record_payment(PaymentEvent("sandbox", f"evt_{n}", "payment.succeeded", link.id,
                                                             f"ch_{n}", 100 + n, "SGD"))
            made.append(link.id)
        receiver.gate = asyncio.Event()  # hold the first delivery in flight
        env = worker_env(database_url, key)
        first = await start_worker(env, log)
        try:
            await receiver.wait_for(1, within_s=20)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        receiver.gate.set()
        receiver.gate = None
        second = await start_worker(env, log)
        try:
            await receiver.wait_until(
                lambda got: len({r.headers["webhook-id"] for r in got}) >= LINKS * len(ORDER), within_s=30)
        finally:
            second.send_signal(signal.SIGTERM)  # it records what it sent before it stops
            await second.wait()
        async with services.db.read() as conn:
            statuses = (await conn.execute(select(OUTBOX.c.status, func.count()).where(OUTBOX.c.platform == "webhook")
                                           .group_by(OUTBOX.c.status))).all()
        assert dict(statuses) == {"sent": LINKS * len(ORDER)}
    events = [Webhook(secret).verify(r.body, r.headers) for r in receiver.received]
    ids_by_type = {(e["data"]["id"], e["type"]) for e in events}
    assert ids_by_type == {(link_id, kind) for link_id in made for kind in ORDER}, log.read_text()[-2000:]
    for link_id in made:
        seen = [ORDER.index(e["type"]) for e in events if e["data"]["id"] == link_id]
        # At least once, never out of order: a repeat only of the latest event, never of an earlier one.
        assert seen == sorted(seen), (link_id, seen)
    # The delivery the killed worker had in flight was never recorded, so the second worker sent it again.
    assert [e["id"] for e in events].count(events[0]["id"]) == 2
