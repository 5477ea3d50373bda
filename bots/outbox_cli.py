"""`paylinks outbox`: what is waiting or dead in the outbox, and requeueing it.

    paylinks outbox                 pending and dead rows, one per line (tab-separated, for scripts too)
    paylinks outbox --all           sent rows as well
    paylinks outbox retry 12 15     requeue rows 12 and 15 (due now, fresh attempts; their chats enabled)
    paylinks outbox retry --dead    requeue every dead row
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from adapters import registry
from bots.config import Settings

COLUMNS = ("id", "status", "platform", "address", "kind", "attempts", "next_attempt_at", "last_error")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def _clean(text: str | None) -> str:
    return " ".join((text or "-").split())


async def cmd_outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services
    from core.outbox import OutboxStore

    statuses = ("pending", "dead", "sent") if args.all else ("pending", "dead")
    async with open_services(settings) as services:
        store = OutboxStore(services.db, clock=services.clock, address_rules=registry.address_rules())
        rows = await store.list_messages(statuses=statuses, limit=args.limit)
        counts = await store.counts()
    print("\t".join(COLUMNS))
    for row in rows:
        print("\t".join([
            str(row.id), str(row.status), row.platform, row.address, row.kind, str(row.attempts),
            _when(row.next_attempt_at), _clean(row.last_error),
        ]))
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("pending", "dead", "sent"))
    print(f"outbox: {summary}", file=sys.stderr)
    return 0


async def cmd_outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    from bots.cli import UsageError
    from bots.services import open_services
    from core.outbox import OutboxStore

    if not args.ids and not args.dead:
        raise UsageError("say which rows: paylinks outbox retry ID [ID…]  or  paylinks outbox retry --dead")
    async with open_services(settings) as services:
        store = OutboxStore(services.db, clock=services.clock, address_rules=registry.address_rules())
        for row_id in args.ids:
            row = await store.get(row_id)
            if row is None:
                raise UsageError(f"no outbox row {row_id} (see `paylinks outbox`)")
            if row.status == "sent":
                raise UsageError(f"outbox row {row_id} was sent already; it is not sent twice")
        count = await store.requeue(ids=args.ids, dead=args.dead)
    print(f"requeued {count} row{'s' if count != 1 else ''}")
    return 0


def register(sub: Any) -> None:
    outbox = sub.add_parser("outbox", help="list pending and dead outbox messages; requeue them")
    outbox.add_argument("--all", action="store_true", help="include sent rows")
    outbox.add_argument("--limit", type=int, default=200, help="rows to show (default 200)")
    outbox.set_defaults(func=cmd_outbox_list)
    actions = outbox.add_subparsers(dest="action", metavar="ACTION")
    retry = actions.add_parser("retry", help="requeue rows by id, or every dead row")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID")
    retry.add_argument("--dead", action="store_true", help="requeue every dead row")
    retry.set_defaults(func=cmd_outbox_retry)
