"""Locales in one place: the Babel locale of a shop, its territory, its home currency and its time zone.

Amount reading (core.commands), money display (core.money) and reports (core.reports) all ask here, so a
shop's "en_SG" means the same thing everywhere.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.numbers import get_territory_currencies


def babel_locale(locale: str) -> Locale:
    """The Babel Locale for a shop's locale ("en_SG", "en-SG"); English when it is not a locale."""
    try:
        return Locale.parse((locale or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def babel_locale_name(locale: str) -> str:
    """The canonical name of babel_locale(locale) ("en_SG"), for caches keyed by string."""
    return str(babel_locale(locale))


@cache
def territory_of(locale: str) -> str | None:
    loc = babel_locale(locale)
    if loc.territory:
        return loc.territory
    likely = get_global("likely_subtags").get(loc.language)
    if likely:
        parts = str(likely).split("_")
        return next((p for p in parts[1:] if len(p) == 2 and p.isupper()), None)
    return None


def territory_currency(locale: str) -> str | None:
    """The currency people pay with where the locale is spoken ("en_SG" -> SGD)."""
    territory = territory_of(locale)
    if not territory:
        return None
    found = get_territory_currencies(territory, tender=True)
    return found[0] if found else None


# Territories with several time zones: the one most sellers there live in (CLDR lists them unordered).
_MAIN_ZONE: dict[str, str] = {
    "US": "America/New_York", "ID": "Asia/Jakarta", "AU": "Australia/Sydney", "CA": "America/Toronto",
    "BR": "America/Sao_Paulo", "MX": "America/Mexico_City", "RU": "Europe/Moscow", "MY": "Asia/Kuala_Lumpur",
    "CN": "Asia/Shanghai", "KZ": "Asia/Almaty", "MN": "Asia/Ulaanbaatar", "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago", "ES": "Europe/Madrid", "PT": "Europe/Lisbon", "NZ": "Pacific/Auckland",
    "DE": "Europe/Berlin", "EC": "America/Guayaquil", "UA": "Europe/Kyiv", "PH": "Asia/Manila",
    "GB": "Europe/London", "IN": "Asia/Kolkata", "VN": "Asia/Ho_Chi_Minh", "TH": "Asia/Bangkok",
}


@cache
def timezone_for(locale: str) -> tzinfo:
    """The shop's time zone, from its locale's territory ("en_SG" -> Asia/Singapore); UTC when unclear."""
    territory = territory_of(locale)
    if not territory:
        return UTC
    zones = get_global("territory_zones").get(territory, [])
    name = _MAIN_ZONE.get(territory) or (zones[0] if len(zones) == 1 else None)
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC
