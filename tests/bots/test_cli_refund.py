"""`paylinks link refund ID [AMOUNT] [--yes]` (issue 13 point 4), as a separate process on the database the
served app uses (SQLite and PostgreSQL); the sandbox's refund webhook goes back to the app over HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bots.config import Settings
from core.models import AuditEvent, LinkStatus, PaymentLink, RefundStatus
from core.sql import table
from tests.adapters.web.pages_support import WEBHOOK_SECRET, make_link, signed, webhook_body
from tests.conftest import LiveApp, make_settings, start_live_app

BIN = Path(sys.executable).parent / "paylinks"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveApp]:
    app, client = await start_live_app(settings, run_jobs=False)
    yield app
    await client.close()


def cli_env(live: LiveApp) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env.update({"PAYLINKS_DATABASE__URL": live.services.settings.database.url,
                "PAYLINKS_SERVER__PUBLIC_BASE_URL": live.base_url,
                "PAYLINKS_PAYMENTS__SANDBOX__WEBHOOK_SECRET": WEBHOOK_SECRET})
    return env


async def run(live: LiveApp, *args: str, stdin: int | None = None, feed: bytes | None = None) -> tuple[int, str, str]:
    # Asynchronous, so the served app (same event loop) can take the refund webhook the command sends.
    process = await asyncio.create_subprocess_exec(
        str(BIN), *args, env=cli_env(live), stdin=stdin if stdin is not None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(feed if stdin is None else None), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def paid_link(live: LiveApp) -> PaymentLink:
    link = await make_link(live.services)
    body = webhook_body(link, 1)
    response = await live.client.post("/webhooks/sandbox", data=body, headers=signed(body))
    assert (await response.json())["outcome"] == "paid"
    return link


async def test_refund_with_yes_prints_the_refund_and_the_webhook_confirms_it(live: LiveApp) -> None:
    link = await paid_link(live)
    code, out, err = await run(live, "link", "refund", link.id, "10.00", "--yes", feed=b"")
    assert code == 0, err
    refund_id, status, amount, currency = out.split()
    assert (status, amount, currency) == ("pending", "10.00", "SGD")
    refund = await live.services.refunds.get(refund_id)
    assert refund is not None and refund.status == RefundStatus.SUCCEEDED  # the sandbox's webhook came back
    assert refund.requested_by == "cli"
    # In the shop's audit log (/dashboard/audit), as the operator on the CLI.
    async with live.services.db.read() as conn:
        [audit] = (await conn.execute(select(table(AuditEvent)).where(
            table(AuditEvent).c.action == "link.refunded"))).all()
    assert (audit.merchant_id, audit.platform, audit.actor, audit.detail["link_id"], audit.detail["refund_id"],
            audit.detail["amount"]) == (link.merchant_id, "cli", "operator (CLI)", link.id, refund_id, "10.00")
    code, out, _ = await run(live, "link", "refund", link.id, "--yes", feed=b"")
    assert code == 0 and out.split()[2] == "15.00"
    stored = await live.services.links.get(link.id)
    assert stored is not None and stored.status == LinkStatus.REFUNDED
    code, _, err = await run(live, "link", "refund", link.id, "--yes", feed=b"")
    assert code == 2 and "nothing to refund" in err and "Traceback" not in err


async def test_without_a_terminal_yes_is_required(live: LiveApp) -> None:
    link = await paid_link(live)
    code, _, err = await run(live, "link", "refund", link.id, feed=b"y\n")
    assert code == 2 and "--yes is required when standard input is not a terminal" in err
    assert (await live.services.refunds.refundable(link.id))[0].refundable_minor == 2500


async def test_on_a_terminal_it_asks_and_no_refunds_nothing(live: LiveApp) -> None:
    link = await paid_link(live)
    leader, follower = os.openpty()
    try:
        os.write(leader, b"n\n")
        code, out, err = await run(live, "link", "refund", link.id, stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert code == 1 and "nothing refunded" in err
    assert "Refund S$25.00 to Ann Tan for Chocolate cake? This cannot be undone. [y/N]" in out
    assert (await live.services.refunds.refundable(link.id))[0].refundable_minor == 2500
