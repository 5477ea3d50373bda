"""`paylinks link import FILE.csv --merchant ID [--send] [--dry-run]` (core/imports.py does the work).

A progress bar (rich) on a terminal, plain progress lines otherwise; a summary line at the end; per-row
errors in FILE.errors.csv. Exit status 0 when every row was made (or had been before), 1 when some
rows had errors, 2 when the file could not be imported at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bots.config import Settings

PLAIN_EVERY = 1000


def register(link_commands: Any) -> None:
    parser = link_commands.add_parser(
        "import", help="make links from a CSV file (amount, currency, description, reference, customer_name, "
        "customer_email, customer_phone, expires_in)")
    parser.add_argument("file", metavar="FILE.csv", type=Path)
    parser.add_argument("--merchant", required=True)
    parser.add_argument("--send", action="store_true", help="send each link to its customer (through the outbox)")
    parser.add_argument("--dry-run", action="store_true", help="check every row, make nothing")
    parser.set_defaults(func=cmd_link_import)


async def cmd_link_import(settings: Settings, args: argparse.Namespace) -> int:
    from bots.cli import UsageError
    from bots.services import open_services
    from core.imports import Importer, ImportFileError, count_rows, read_rows

    path: Path = args.file
    try:
        read_rows(path)  # the header is checked before anything is opened or made
        total = count_rows(path)
    except ImportFileError as exc:
        raise UsageError(str(exc)) from None
    async with open_services(settings) as services:
        importer = Importer(services.links)
        with _progress(total) as advance:
            try:
                report = await importer.run(path, args.merchant, send=args.send, dry_run=args.dry_run,
                                            progress=advance)
            except ImportFileError as exc:
                raise UsageError(str(exc)) from None
    print(report.summary(dry_run=args.dry_run, send=args.send))
    return 1 if report.errors else 0


class _progress:
    """rich's bar on a terminal; "imported N/TOTAL" lines every PLAIN_EVERY rows otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self._bar.start()
            self._task = self._bar.add_task("import", total=self.total)
        return self.advance

    def advance(self, rows: int) -> None:
        self.done += rows
        if self._bar is not None:
            self._bar.update(self._task, advance=rows)
        elif self.done // PLAIN_EVERY > (self.done - rows) // PLAIN_EVERY or self.done == self.total:
            print(f"imported {self.done}/{self.total} rows", flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
