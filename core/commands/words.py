"""The connecting words of /charge in the seller's language: what "for", "to", "expires", "in", "days" are
in Indonesian, Malay, Vietnamese, Filipino, Spanish and Portuguese (the command words stay English:
`/charge`, `ref`, `exp`). English words are always read too: sellers mix them.

Thai, Chinese, Japanese and Korean are written without spaces between words: there the grammar reads the
amount, the currency, `ref`, `exp` and contacts, and everything else is the description; `spaced()`
separates an amount typed against its words ("250บาท", "2500円ケーキ") first.
"""

from __future__ import annotations

import re
from functools import cache

# "for" before a description: dropped ("/charge 25 untuk kue ulang tahun" is 25 for "kue ulang tahun").
_FOR: dict[str, frozenset[str]] = {
    "id": frozenset({"untuk", "buat"}), "ms": frozenset({"untuk", "bagi"}), "vi": frozenset({"cho", "tiền"}),
    "fil": frozenset({"para", "pambayad"}), "es": frozenset({"para", "por"}),
    "pt_BR": frozenset({"para", "por", "pra"}),
}
# "to" before a customer's phone, email or @handle (anything else after it stays description).
_TO: dict[str, frozenset[str]] = {
    "id": frozenset({"ke", "kepada"}), "ms": frozenset({"ke", "kepada"}), "vi": frozenset({"gửi", "tới", "đến", "cho"}),
    "fil": frozenset({"kay", "sa", "para"}), "es": frozenset({"a", "para"}), "pt_BR": frozenset({"para", "pra", "a"}),
}
# Expiry keywords, like "exp" / "expires" / "valid".
_EXPIRY: dict[str, frozenset[str]] = {
    "id": frozenset({"kadaluarsa", "kedaluwarsa", "kadaluwarsa", "berlaku", "habis"}),
    "ms": frozenset({"luput", "tamat", "sah", "berlaku", "kadaluarsa"}),
    "vi": frozenset({"hạn", "hết-hạn"}),
    "fil": frozenset({"mag-expire", "expire", "hanggang", "valid"}),
    "es": frozenset({"vence", "caduca", "expira", "válido", "valido", "vencimiento"}),
    "pt_BR": frozenset({"expira", "vence", "válido", "valido", "validade", "vencimento"}),
}
# Words between the keyword and the duration ("kadaluarsa dalam 3 hari", "vence en 3 días").
_FILLERS: dict[str, frozenset[str]] = {
    "id": frozenset({"dalam", "sampai", "hingga", "pada"}), "ms": frozenset({"dalam", "sehingga", "pada"}),
    "vi": frozenset({"trong", "sau", "đến"}), "fil": frozenset({"sa", "ng", "loob"}),
    "es": frozenset({"en", "dentro", "de", "el", "hasta"}), "pt_BR": frozenset({"em", "dentro", "de", "até"}),
}
_UNITS: dict[str, dict[str, str]] = {
    "id": {"menit": "minutes", "jam": "hours", "hari": "days", "minggu": "weeks", "pekan": "weeks"},
    "ms": {"minit": "minutes", "jam": "hours", "hari": "days", "minggu": "weeks"},
    "vi": {"phút": "minutes", "giờ": "hours", "tiếng": "hours", "ngày": "days", "tuần": "weeks"},
    "fil": {"minuto": "minutes", "oras": "hours", "araw": "days", "linggo": "weeks"},
    "es": {"minuto": "minutes", "minutos": "minutes", "hora": "hours", "horas": "hours", "día": "days",
           "días": "days", "dia": "days", "dias": "days", "semana": "weeks", "semanas": "weeks"},
    "pt_BR": {"minuto": "minutes", "minutos": "minutes", "hora": "hours", "horas": "hours", "dia": "days",
              "dias": "days", "semana": "weeks", "semanas": "weeks"},
}
_TOMORROW: dict[str, frozenset[str]] = {
    "id": frozenset({"besok"}), "ms": frozenset({"esok"}), "vi": frozenset({"mai"}), "fil": frozenset({"bukas"}),
    "es": frozenset({"mañana"}), "pt_BR": frozenset({"amanhã"}),
}
_TODAY: dict[str, frozenset[str]] = {
    "es": frozenset({"hoy"}), "pt_BR": frozenset({"hoje"}), "fil": frozenset({"ngayon"}),
}
_REFERENCE: dict[str, frozenset[str]] = {
    "id": frozenset({"referensi"}), "ms": frozenset({"rujukan"}), "es": frozenset({"referencia"}),
    "pt_BR": frozenset({"referência", "referencia"}),
}
# Two-word phrases read as one word (joined with "-"): "hết hạn" (expires), "hari ini" (today).
_PHRASES: dict[str, dict[tuple[str, str], str]] = {
    "vi": {("hết", "hạn"): "hết-hạn", ("ngày", "mai"): "mai"},
    "id": {("hari", "ini"): "today"}, "ms": {("hari", "ini"): "today"},
    "fil": {("mag", "expire"): "mag-expire", ("para", "sa"): "para"},
}

UNSPACED = frozenset({"th", "zh_Hans", "zh_Hant", "ja", "ko"})


def for_words(language: str) -> frozenset[str]:
    return frozenset({"for"}) | _FOR.get(language, frozenset())


def to_words(language: str) -> frozenset[str]:
    return frozenset({"to"}) | _TO.get(language, frozenset())


def expiry_words(language: str) -> frozenset[str]:
    return _EXPIRY.get(language, frozenset())


def fillers(language: str) -> frozenset[str]:
    return _FILLERS.get(language, frozenset())


def units(language: str) -> dict[str, str]:
    return _UNITS.get(language, {})


def day_word(word: str, language: str) -> str:
    """"besok" -> "tomorrow", "hoy" -> "today"; anything else as it is."""
    if word in _TOMORROW.get(language, ()):
        return "tomorrow"
    if word in _TODAY.get(language, ()):
        return "today"
    return word


def reference_words(language: str) -> frozenset[str]:
    return _REFERENCE.get(language, frozenset())


def joined_phrases(tokens: list[str], language: str) -> list[str]:
    """Two-word connecting phrases as one token ("hết hạn" -> "hết-hạn"), so the grammar sees one word."""
    phrases = _PHRASES.get(language)
    if not phrases:
        return tokens
    out: list[str] = []
    i = 0
    while i < len(tokens):
        pair = (tokens[i].casefold(), tokens[i + 1].casefold()) if i + 1 < len(tokens) else None
        if pair is not None and pair in phrases:
            out.append(phrases[pair])
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


# Currency words written against the number where words have no spaces ("250บาท", "3000원", "50块").
_SCRIPT_CURRENCIES = {"บาท": "THB", "원": "KRW", "块": "CNY", "塊": "TWD", "圓": "TWD", "円": "JPY", "元": "CNY",
                      "฿": "THB", "₩": "KRW", "¥": "JPY", "￥": "JPY"}


@cache
def _amount_against_words() -> re.Pattern[str]:
    currencies = "|".join(sorted((re.escape(c) for c in _SCRIPT_CURRENCIES), key=len, reverse=True))
    return re.compile(rf"(?<![\w.,])([0-9０-９][0-9０-９.,，]*)\s*({currencies})?")


def spaced(text: str, language: str) -> str:
    """For th/zh/ja/ko: "2500円ケーキ" -> "2500 JPY ケーキ", "250บาท เค้ก" -> "250 THB เค้ก"; the first amount
    only (later numbers are the description's). Other languages: unchanged."""
    if language not in UNSPACED:
        return text
    found = _amount_against_words().search(text)
    if found is None:
        return text
    number, currency = found.group(1), found.group(2)
    after = text[found.end():]
    if not currency and (not after or after[0].isspace() or after[0].isascii()):
        return text  # "25 cake", "25.50": already apart
    code = _SCRIPT_CURRENCIES.get(currency or "", "")
    if language == "zh_Hant" and currency == "元":
        code = "TWD"  # 新台幣 is written 元 in Taiwan
    elif language == "zh_Hans" and currency in ("¥", "￥"):
        code = "CNY"
    middle = f" {code} " if code else " "
    return f"{text[:found.start()]}{number}{middle}{after}".rstrip()
