"""The CSV export streams: 100,000 links on SQLite cost one batch of memory, not the whole file."""

from __future__ import annotations

import sqlite3
import tracemalloc
from datetime import UTC, datetime, timedelta

from adapters.web.export import csv_chunks
from core.db import Database
from core.link_search import LinkFilter, LinkSearch
from core.links import LinkService

ROWS = 100_000


def _fill(path: str) -> None:
    """100,000 links straight into the file (the fastest way to get them there; the export reads them
    through SQLAlchemy like any other)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO merchant (id, name, default_currency, locale, created_at) "
                     "VALUES ('mer_big', 'Big Shop', 'SGD', 'en_SG', '2026-01-01 00:00:00.000000')")
        conn.executemany(
            "INSERT INTO payment_link (id, merchant_id, amount_minor, currency, description, status, created_at, "
            "expires_at, meta, checkout_attempts, livemode) VALUES (?, 'mer_big', ?, 'SGD', ?, 'active', ?, ?, "
            "'{}', 0, 0)",
            ((f"link{n:012d}aaaa", 100 + n, f"=item {n}, with a comma",
              (start + timedelta(seconds=n)).strftime("%Y-%m-%d %H:%M:%S.%f"),
              (start + timedelta(days=400)).strftime("%Y-%m-%d %H:%M:%S.%f")) for n in range(ROWS)),
        )


async def test_export_of_100000_links_streams_in_constant_memory(sqlite_database_url: str) -> None:
    _fill(sqlite_database_url.split("///", 1)[1])
    db = Database(sqlite_database_url)
    links = LinkService(db, public_base_url="http://127.0.0.1", default_expiry=timedelta(days=7),
                        max_amount=10**6, clock=lambda: datetime(2026, 6, 1, tzinfo=UTC))
    total_bytes = lines = 0
    tracemalloc.start()
    try:
        async for chunk in csv_chunks(LinkSearch(db), "mer_big", LinkFilter(), links.status_of):
            total_bytes += len(chunk)
            lines += chunk.count(b"\r\n")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await db.dispose()
    assert lines == ROWS + 1  # the header and one row per link without payments
    assert total_bytes > 10_000_000
    # The file is over 10 MB; a streamed export holds one batch of rows and one chunk at a time.
    assert peak < 4_000_000, f"peak {peak} bytes"
