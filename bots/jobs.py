"""Background jobs: the sweeper (expired links, old inbound deliveries) and the outbox dispatcher. Run by
`serve` and by `worker`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from bots.dispatcher import run_dispatcher
from bots.services import Services
from core.db import DatabaseBusy

log = logging.getLogger("paylinks.jobs")

# How long shutdown waits for the jobs once cancelled (the dispatcher's own wait for sends is 5 s).
SHUTDOWN_GRACE_S = 20.0


async def _every(interval_s: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except DatabaseBusy as busy:  # another process held the database; the next round tries again
            log.warning("job %s skipped: database busy (%s); retrying in %.0fs", name, busy.reason, interval_s)
        except Exception:  # a failing round must not end the job; the next round tries again
            log.exception("job %s failed; retrying in %.0fs", name, interval_s)
        await asyncio.sleep(interval_s)


async def sweep_expired(services: Services) -> int:
    count = await services.links.expire_due()
    if count:
        log.info("sweeper expired %d links", count)
    released = await services.links.release_reservations()
    if released:
        log.info("sweeper released %d timed-out reservations", released)
    return count


async def sweep_deliveries(services: Services) -> int:
    """Forget handled chat deliveries older than core.deliveries.RETENTION (no platform redelivers that late)."""
    count = await services.conversation.deliveries.sweep()
    if count:
        log.info("sweeper forgot %d old inbound deliveries", count)
    return count


async def sweep_checkouts(services: Services) -> int:
    """Missed webhooks: ask the provider about checkouts still unpaid after [payments] reconcile_after (each
    on the account it was opened on: the deployment's or the shop's own)."""
    count = await services.links.reconcile()
    if count:
        log.info("sweeper reconciled %d payments", count)
    return count


async def sweep_reminders(services: Services) -> int:
    """[links] remind_before_expiry: one reminder to customers of open links about to expire."""
    return await services.reminders.remind_due() if services.reminders is not None else 0


async def sweep_refunds(services: Services) -> int:
    """Refunds the provider could not be asked about: ask again (same idempotency key)."""
    count = await services.refunds.retry_unsent()
    if count:
        log.info("sweeper asked again for %d refunds", count)
    return count


async def sweep_series(services: Services) -> int:
    """Recurring charges: the link of every due period, once (also each period missed while down)."""
    count = await services.series.run_due() if services.series is not None else 0
    if count:
        log.info("sweeper made %d links of recurring series", count)
    return count


async def sweep(services: Services) -> None:
    await sweep_series(services)
    await sweep_expired(services)
    await sweep_reminders(services)
    await sweep_deliveries(services)
    await sweep_checkouts(services)
    await sweep_refunds(services)


@asynccontextmanager
async def background_jobs(services: Services) -> AsyncIterator[list[asyncio.Task[None]]]:
    interval = services.settings.links.sweep_interval.total_seconds()
    tasks = [asyncio.create_task(_every(interval, "sweeper", lambda: sweep(services)), name="sweeper")]
    # The outbox dispatcher: delivers alerts through services.senders (see bots/dispatcher.py).
    tasks.append(asyncio.create_task(run_dispatcher(services), name="outbox"))
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        # Shutdown must end even if a job is stuck (the dispatcher itself needs a few seconds to record
        # sends in flight): what is still running after the grace period is named and left behind.
        _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        for task in stuck:
            log.error("background job %s did not stop within %.0fs; leaving it", task.get_name(), SHUTDOWN_GRACE_S)
