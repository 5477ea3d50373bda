"""The links export: CSV of a shop's links with their payments, streamed (constant memory).

One row per payment, and one for a link without payments. RFC 4180 (CRLF, quotes doubled), UTF-8 with a
BOM so spreadsheets read it as UTF-8, and any cell starting with = + - @ (or a tab or carriage return)
prefixed with ' so a spreadsheet never runs it as a formula. Later issues append columns; none is renamed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web

from adapters.web.api import amount_str, iso_utc
from adapters.web.api_models import EXPORT_COLUMNS
from adapters.web.invoice_json import invoice_fields
from core.invoices import InvoiceInfo, Invoices
from core.line_items import plain
from core.link_search import API_ORIGIN, LinkFilter, LinkSearch

COLUMNS = EXPORT_COLUMNS
BOM = "\ufeff"
_FORMULA_STARTS = frozenset("=+-@\t\r")
FLUSH_BYTES = 64 * 1024
INVOICE_BATCH = 200


def neutralise(value: str) -> str:
    return "'" + value if value[:1] in _FORMULA_STARTS and value else value


def invoice_cells(link: Any, info: InvoiceInfo | None) -> list[str]:
    """The invoice columns: number, items, subtotal, discount, tax, total (a one-amount link: its amount)."""
    cur = link.currency
    fields = invoice_fields(link, info)
    items = ""
    if info is not None and info.totals is not None:
        items = "; ".join(
            f"{plain(line.item.quantity)} x {line.item.name} @ {plain(line.item.unit_amount)}"
            + (f" (tax {plain(line.item.tax_rate)}%)" if line.item.tax_rate else "")
            for line in info.totals.lines)
    return [fields["invoice_number"] or "", items, amount_str(fields["subtotal_minor"], cur),
            amount_str(fields["discount_minor"], cur), amount_str(fields["tax_minor"], cur),
            amount_str(fields["total_minor"], cur)]


def rows_of(link: Any, payments: list[Any], status: str) -> Iterable[list[str]]:
    base = [
        link.id, iso_utc(link.created_at) or "", status, "true" if link.livemode else "false",
        link.origin_platform or API_ORIGIN, link.description, link.reference or "", link.customer_name or "",
        link.customer_email or "", link.customer_phone or "", link.currency,
        amount_str(link.amount_minor, link.currency),
    ]
    expires = iso_utc(link.expires_at) or ""
    if not payments:
        yield [*base, "", "", "", "", "", "", "", expires]
        return
    for payment in payments:
        # What the provider confirmed as given back (core/refunds.py); pending refunds are not counted yet.
        refunded = amount_str(payment.amount_refunded_minor, payment.currency)
        yield [*base, payment.id, payment.status, iso_utc(payment.created_at) or "",
               amount_str(payment.amount_minor, payment.currency), refunded, payment.provider,
               payment.provider_ref, expires]


async def csv_chunks(search: LinkSearch, merchant_id: str, where: LinkFilter,
                     status_of: Any) -> AsyncIterator[bytes]:
    """The file in pieces of about FLUSH_BYTES; `status_of(link)` gives the status customers see."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    buffer.write(BOM)
    writer.writerow(COLUMNS)
    invoices = Invoices(search.db)
    batch: list[tuple[Any, list[Any]]] = []

    async def write_batch() -> None:
        # The invoice columns are read per batch of links (one query), not per link.
        found = await invoices.many([link.id for link, _ in batch])
        for link, payments in batch:
            extra = invoice_cells(link, found.get(link.id))
            for row in rows_of(link, payments, str(status_of(link).value)):
                writer.writerow([neutralise(cell) for cell in (*row, *extra)])
        batch.clear()

    async for link, payments in search.export(merchant_id, where):
        batch.append((link, payments))
        if len(batch) < INVOICE_BATCH:
            continue
        await write_batch()
        if buffer.tell() >= FLUSH_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    await write_batch()
    yield buffer.getvalue().encode()


async def stream_csv(request: web.Request, chunks: AsyncIterator[bytes], filename: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{filename}"',
    })
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
