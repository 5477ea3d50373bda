"""Benchmark: `paylinks link import` of 10,000 CSV rows on SQLite (issue 17.5 asks for under 30 s here).

    .venv/bin/python -m bench.import_csv [--rows 10000] [--send]

Makes a fresh SQLite database and a merchant in a temporary folder, writes the CSV (every column, a
customer email on every row), imports it through core.imports.Importer exactly as the command does,
then imports it again (idempotent: nothing is made twice) and prints both timings.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bots.config import load_settings
from bots.services import open_services
from core.db import sqlite_url
from core.imports import Importer


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("amount,currency,description,reference,customer_name,customer_email,customer_phone,expires_in\n")
        for n in range(rows):
            handle.write(f"{100 + n % 900}.00,SGD,Tuition {n},INV-{n:06d},Student {n},s{n}@example.com,,30d\n")


async def bench(rows: int, send: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(env={"PAYLINKS_DATABASE__URL": sqlite_url(Path(folder) / "bench.db")})
        path = Path(folder) / "links.csv"
        write_csv(path, rows)
        async with open_services(settings) as services:
            merchant = await services.merchants.create("Academy", currency="SGD", locale="en_SG")
            importer = Importer(services.links)
            started = time.perf_counter()
            first = await importer.run(path, merchant.id, send=send)
            took = time.perf_counter() - started
            print(f"first import:  {first.created} links in {took:.1f} s ({first.created / took:.0f}/s)")
            started = time.perf_counter()
            again = await importer.run(path, merchant.id, send=send)
            print(f"second import: {again.created} made, {again.already} already there, "
                  f"{time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--send", action="store_true", help="also queue each customer's email in the outbox")
    args = parser.parse_args()
    asyncio.run(bench(args.rows, args.send))


if __name__ == "__main__":
    main()
