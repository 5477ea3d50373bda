"""Search and filter parameters of the links list and the CSV export (`q`, `status`, `currency`, `from`,
`to`, `origin`), read the same way by the dashboard and the API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.link_search import API_ORIGIN, LinkFilter
from core.models import LinkStatus

_ORIGIN = re.compile(r"[a-z][a-z0-9_-]{0,19}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")


class FilterError(ValueError):
    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _day(text: str, name: str, zone: ZoneInfo) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise FilterError("invalid_date", f"{name} must be a date such as 2026-12-01", name) from None
    return datetime.combine(day, time(0), zone)


def parse_filter(query: Mapping[str, str], zone: ZoneInfo) -> LinkFilter:
    """`from`/`to` are whole days in `zone` (the shop's time zone), `to` included."""
    status_text = query.get("status", "").strip().lower()
    status = None
    if status_text and status_text != "all":
        try:
            status = LinkStatus(status_text)
        except ValueError:
            raise FilterError("invalid_status", "status must be active, paid, expired or cancelled",
                              "status") from None
    currency = query.get("currency", "").strip().upper() or None
    if currency is not None and not _CURRENCY.fullmatch(currency):
        raise FilterError("invalid_currency", "currency must be a three-letter ISO 4217 code", "currency")
    origin = query.get("origin", "").strip().lower() or None
    if origin is not None and origin != API_ORIGIN and not _ORIGIN.fullmatch(origin):
        raise FilterError("invalid_origin", "origin must be a chat platform's name or \"api\"", "origin")
    since = _day(query.get("from", "").strip(), "from", zone)
    until = _day(query.get("to", "").strip(), "to", zone)
    if until is not None:
        until += timedelta(days=1)
    return LinkFilter(query=query.get("q", "").strip()[:200], status=status, currency=currency, since=since,
                      until=until, origin=origin)
