"""Translations and the one clock: which language a person reads, its gettext catalog, and how a moment is
written for them (in the shop's time zone, with the zone's short name).

Catalogs are gettext .po files under core/translations/<code>/LC_MESSAGES/paylinks.po, kept with
`pybabel extract/update/compile` (babel.cfg; see docs/TRANSLATIONS.md). The install compiles them to .mo
(the Makefile); a catalog whose .mo is missing or older than its .po is compiled in memory when first used,
so a fresh clone or an edited .po never shows stale or missing text.

Every user-visible string goes through a `Tr` (`tr.gettext("Pay %(amount)s", amount=...)`,
`tr.ngettext(...)`), or `{{ _("...") }}` / `{% trans %}` in templates: named placeholders, whole
sentences, plurals by CLDR rules. `N_()` marks a string for extraction where it is defined and translated
where it is shown.
"""

from __future__ import annotations

import gettext as _gettext
import io
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from core.locales import babel_locale, territory_of, timezone_for

DOMAIN = "paylinks"
CATALOG_DIR = Path(__file__).parent / "translations"
DEFAULT = "en"
# The catalogs (gettext codes). Chinese by script: Simplified (mainland, Singapore, Malaysia) and
# Traditional (Taiwan, Hong Kong, Macau); one Portuguese, Brazil's.
LANGUAGES: tuple[str, ...] = ("en", "id", "th", "vi", "ms", "fil", "zh_Hans", "zh_Hant", "ja", "ko", "es", "pt_BR")
# What the language switcher says for each: the language's own name for itself.
AUTONYMS: dict[str, str] = {
    "en": "English", "id": "Bahasa Indonesia", "th": "ไทย", "vi": "Tiếng Việt", "ms": "Bahasa Melayu",
    "fil": "Filipino", "zh_Hans": "简体中文", "zh_Hant": "繁體中文", "ja": "日本語", "ko": "한국어",
    "es": "Español", "pt_BR": "Português (Brasil)",
}
_BY_FOLDED = {code.casefold(): code for code in LANGUAGES}
_TRADITIONAL_REGIONS = frozenset({"TW", "HK", "MO"})
# Old or other codes for the same catalog.
_ALIASES = {"tl": "fil", "in": "id", "zsm": "ms", "pt": "pt_BR", "zh": "zh_Hans"}
# The language most people write in where a phone number is from (WhatsApp, when nothing else is known).
_TERRITORY_LANGUAGE = {
    "TH": "th", "VN": "vi", "ID": "id", "MY": "ms", "BN": "ms", "PH": "fil", "CN": "zh_Hans", "SG": "en",
    "TW": "zh_Hant", "HK": "zh_Hant", "MO": "zh_Hant", "JP": "ja", "KR": "ko", "BR": "pt_BR", "PT": "pt_BR",
    "AO": "pt_BR", "MZ": "pt_BR", "ES": "es", "MX": "es", "AR": "es", "CO": "es", "CL": "es", "PE": "es",
    "VE": "es", "EC": "es", "GT": "es", "CU": "es", "BO": "es", "DO": "es", "HN": "es", "PY": "es", "SV": "es",
    "NI": "es", "CR": "es", "PA": "es", "UY": "es", "PR": "es",
}


# Bounded memo of the two pure functions every pay page view asks (Accept-Language and the shop's locale
# take a handful of values; parsing them again was ~10% of a page view).
_NEGOTIATED = 1024


@lru_cache(maxsize=_NEGOTIATED)
def match_language(tag: str | None) -> str | None:
    """The catalog for a language tag ("th-TH", "zh_TW", "pt", "zh-Hans-SG", "tl"), or None."""
    if not tag:
        return None
    parts = [p for p in re.split(r"[-_]", tag.strip()) if p]
    if not parts or not parts[0].isalpha():
        return None
    language = parts[0].casefold()
    if language == "zh":
        script = next((p.title() for p in parts[1:] if len(p) == 4), None)
        region = next((p.upper() for p in parts[1:] if len(p) == 2), None)
        if script == "Hant" or (script is None and region in _TRADITIONAL_REGIONS):
            return "zh_Hant"
        return "zh_Hans"
    if language in _ALIASES:
        return _ALIASES[language]
    if language == "pt":
        return "pt_BR"
    return _BY_FOLDED.get(language)


def first_language(*choices: str | None) -> str:
    """The catalog of the first choice that names one (a person's /language, their platform's, their shop's
    locale…), else English."""
    for choice in choices:
        found = match_language(choice)
        if found is not None:
            return found
    return DEFAULT


def language_of_locale(locale: str | None) -> str:
    """The catalog a shop's locale reads in ("id_ID" -> "id", "en_SG" -> "en", "zh_TW" -> "zh_Hant")."""
    return match_language(locale) or DEFAULT


def language_for_territory(territory: str | None) -> str | None:
    return _TERRITORY_LANGUAGE.get((territory or "").upper())


_QUALITY = re.compile(r"^\s*([A-Za-z0-9_*-]+)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


def accept_language(header: str | None) -> list[str]:
    """An Accept-Language header's tags, best first (ties keep their order; q=0 means "not this")."""
    found: list[tuple[float, int, str]] = []
    for index, item in enumerate((header or "").split(",")[:32]):
        matched = _QUALITY.match(item)
        if matched is None:
            continue
        try:
            quality = float(matched.group(2)) if matched.group(2) is not None else 1.0
        except ValueError:
            continue
        if quality > 0:
            found.append((-quality, index, matched.group(1)))
    return [tag for _q, _i, tag in sorted(found)]


@lru_cache(maxsize=_NEGOTIATED)
def negotiate(header: str | None, fallback_locale: str | None) -> str:
    """The customer's language: the best of Accept-Language we have a catalog for, else the shop's."""
    for tag in accept_language(header):
        found = match_language(tag)
        if found is not None:
            return found
    return language_of_locale(fallback_locale)


def html_lang(language: str) -> str:
    """BCP 47 for <html lang>: "zh_Hans" -> "zh-Hans", "pt_BR" -> "pt-BR"."""
    return language.replace("_", "-")


# ---------------------------------------------------------------- catalogs


def catalog_path(language: str, suffix: str = "po") -> Path:
    return CATALOG_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.{suffix}"


@cache
def _catalog(language: str) -> _gettext.NullTranslations:
    po = catalog_path(language)
    mo = catalog_path(language, "mo")
    if not po.exists():
        return _gettext.NullTranslations()
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as file:
            return _gettext.GNUTranslations(file)
    # No compiled catalog (a fresh clone before `make`), or the .po changed since: compile it in memory.
    with po.open("rb") as file:
        parsed = read_po(file, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, parsed, use_fuzzy=False)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


@dataclass(frozen=True, slots=True)
class Tr:
    """One reader's language: gettext with named %(placeholders)s, plurals by the catalog's CLDR rule."""

    language: str

    # %-formatted when given values (then a literal percent sign is written "%%"); templates always are.
    def gettext(self, message: str, /, **values: object) -> str:
        text = _catalog(self.language).gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, count: int, /, **values: object) -> str:
        text = _catalog(self.language).ngettext(singular, plural, count)
        return text % {"count": count, **values}

    def pgettext(self, context: str, message: str, /, **values: object) -> str:
        text = _catalog(self.language).pgettext(context, message)
        return text % values if values else text

    @property
    def html_lang(self) -> str:
        return html_lang(self.language)

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.language)


class TranslatableError(Exception):
    """An error whose `message` is a catalog msgid with named %(placeholders)s filled from `values`: the
    English `message` has them filled in; `translated(t)` is the reader's language."""

    def __init__(self, message: str, values: Mapping[str, object] | None = None) -> None:
        self.template = message
        self.values = dict(values or {})
        self.message = message % self.values if self.values else message
        super().__init__(self.message)

    def translated(self, t: Tr) -> str:
        return t.gettext(self.template, **self.values)


@cache
def tr(language: str | None) -> Tr:
    """The Tr of a catalog code (anything else reads English)."""
    return Tr(match_language(language) or DEFAULT)


_SPEAKING: ContextVar[Tr | None] = ContextVar("paylinks_language", default=None)


def current() -> Tr:
    """The language of the person being answered right now (set by `speaking`); English outside one."""
    return _SPEAKING.get() or tr(DEFAULT)


@contextmanager
def speaking(language: str | None) -> Iterator[Tr]:
    """Answer in `language` inside this block: texts built deep in the grammar or the members service
    (CommandError.text(), MemberError.text()) read it through current(), per asyncio task."""
    token = _SPEAKING.set(tr(language))
    try:
        yield _SPEAKING.get() or tr(DEFAULT)
    finally:
        _SPEAKING.reset(token)


def language_for_phone(number: str | None) -> str | None:
    """The language most people write in where a phone number is from ("+66…" -> "th"), if we have it."""
    if not number:
        return None
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number.rpartition(":")[2], None)  # a chat address: "<platform>:+66…"
    except phonenumbers.NumberParseException:
        return None
    return language_for_territory(phonenumbers.region_code_for_number(parsed))


def N_(message: str) -> str:
    """Mark a string for the catalogs where it is defined; it is translated where it is shown."""
    return message


def plain_callables(language: str) -> tuple[Callable[[str], str], Callable[[str, str, int], str]]:
    """The catalog's own gettext and ngettext (no formatting), for Jinja2's install_gettext_callables."""
    translations = _catalog(tr(language).language)
    return translations.gettext, translations.ngettext


def languages_missing() -> list[str]:
    """Catalogs named in LANGUAGES with no .po file (tests; `paylinks` start-up never needs it)."""
    return [code for code in LANGUAGES if not catalog_path(code).exists()]


# ---------------------------------------------------------------- the one clock


def shop_zone(timezone: str | None, locale: str) -> tzinfo:
    """The shop's time zone: its setting, else its locale territory's main zone (core.locales)."""
    if timezone:
        try:
            return ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return timezone_for(locale)


# tzdata writes many Asian zones as a bare offset ("+08"); people there say these.
_DAY = timedelta(days=1)
_ABBREVIATIONS = {
    "Asia/Singapore": "SGT", "Asia/Kuala_Lumpur": "MYT", "Asia/Kuching": "MYT", "Asia/Bangkok": "ICT",
    "Asia/Ho_Chi_Minh": "ICT", "Asia/Saigon": "ICT", "Asia/Phnom_Penh": "ICT", "Asia/Vientiane": "ICT",
    "Asia/Manila": "PHT", "Asia/Brunei": "BNT", "Asia/Yangon": "MMT", "Asia/Dubai": "GST",
    "America/Sao_Paulo": "BRT",
}


def zone_name(zone: tzinfo, moment: datetime) -> str:
    """The zone's short name at that moment: "SGT", "WIB", "JST", "EST"; "UTC+8" where there is none."""
    key = getattr(zone, "key", None)
    if key in _ABBREVIATIONS:
        return _ABBREVIATIONS[key]
    local = moment.astimezone(zone)
    name = local.tzname() or ""
    if name.isalpha():
        return "UTC" if name in {"UTC", "GMT", "Z"} and local.utcoffset() == UTC.utcoffset(None) else name
    offset = local.utcoffset()
    if offset is None or not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


@lru_cache(maxsize=256)
def reader_locale(language: str, shop_locale: str) -> Locale:
    """Dates in the reader's language with the shop's territory's habits where CLDR has them (en + SG ->
    en_SG: "1 Dec 2026"), else the language's own."""
    language = match_language(language) or DEFAULT
    territory = territory_of(shop_locale)
    if territory:
        try:
            return Locale.parse(f"{language}_{territory}")
        except (UnknownLocaleError, ValueError):
            pass
    try:
        return Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        return babel_locale(shop_locale)


@dataclass(frozen=True, slots=True)
class Clock:
    """How moments are written for one reader of one shop: in the shop's zone, with its short name."""

    zone: tzinfo
    locale: Locale

    @classmethod
    def of(cls, *, language: str, shop_locale: str, timezone: str | None) -> Clock:
        return cls(shop_zone(timezone, shop_locale), reader_locale(language, shop_locale))

    def time(self, moment: datetime) -> str:
        """"14:05 SGT" / "2:05 PM EST"."""
        local = moment.astimezone(self.zone)
        return f"{format_time(local, 'short', locale=self.locale)} {zone_name(self.zone, moment)}"

    def date(self, moment: datetime) -> str:
        """"1 Dec 2026" in the shop's zone (the day there, not in UTC)."""
        return format_date(moment.astimezone(self.zone).date(), "medium", locale=self.locale)

    def when(self, moment: datetime) -> str:
        """"1 Dec 2026, 14:05 SGT"."""
        local = moment.astimezone(self.zone)
        day = format_skeleton("yMMMd", local, locale=self.locale)
        return f"{day}, {self.time(moment)}"

    def deadline(self, moment: datetime, now: datetime) -> str:
        """A pay-by: its time when it is within a day, else its date."""
        return self.when(moment) if moment - now <= _DAY else self.date(moment)




def clock_for(language: str, shop_locale: str, timezone: str | None) -> Clock:
    return Clock.of(language=language, shop_locale=shop_locale, timezone=timezone)
