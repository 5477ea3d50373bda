"""Translations (issue 18, point 1): every catalog complete, no fuzzy entry, placeholders intact, the
sources' strings all in the catalogs, and no untranslated literal text left in templates or replies."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from core import i18n

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = ROOT / "core" / "translations"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _catalog(language: str) -> Catalog:
    with i18n.catalog_path(language).open("rb") as file:
        return read_po(file, locale=language)


def _template() -> Catalog:
    with (CATALOGS / "paylinks.pot").open("rb") as file:
        return read_po(file)


def _extracted() -> dict[str, tuple[str, ...]]:
    """What `pybabel extract -F babel.cfg -k N_` finds in the sources now: msgid -> all its forms."""
    method_map = [("core/**.py", "python"), ("adapters/**.py", "python"), ("bots/**.py", "python"),
                  ("adapters/**/templates/**.html", "jinja2")]
    options = {"adapters/**/templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true",
                                                   "trim_blocks": "true", "lstrip_blocks": "true"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "N_": None}
    found: dict[str, tuple[str, ...]] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options, keywords=keywords, comment_tags=()):
        forms = (message,) if isinstance(message, str) else tuple(m for m in message if m)
        if forms and forms[0]:
            found[forms[0]] = forms
    return found


def test_every_language_has_a_catalog() -> None:
    assert i18n.languages_missing() == []
    assert set(i18n.AUTONYMS) == set(i18n.LANGUAGES)


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_catalog_is_complete_not_fuzzy_and_keeps_every_placeholder(language: str) -> None:
    catalog = _catalog(language)
    template = {m.id if isinstance(m.id, str) else m.id[0] for m in _template() if m.id}
    messages = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}
    assert template <= set(messages), f"{language} misses {sorted(template - set(messages))[:5]}"
    for key, message in messages.items():
        assert not message.fuzzy, f"{language}: fuzzy {key!r}"
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        assert strings and all(strings), f"{language}: untranslated {key!r}"
        wanted = set(_PLACEHOLDER.findall(key if isinstance(message.id, str) else " ".join(message.id)))
        for text in strings:
            # Every placeholder kept, none invented ("%(count)s" may be left out of a plural form).
            have = set(_PLACEHOLDER.findall(text))
            assert have <= wanted, f"{language}: {key!r} invents {have - wanted}"
            assert wanted - {"count"} <= have, f"{language}: {key!r} drops {wanted - have}"
    # Babel's own checkers (python-format placeholders, plural forms count).
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()]
    assert problems == []


def test_pybabel_compile_reports_every_message_translated(tmp_path: Path) -> None:
    copy = tmp_path / "translations"
    shutil.copytree(CATALOGS, copy, ignore=shutil.ignore_patterns("*.mo"))
    done = subprocess.run([sys.executable, "-m", "babel.messages.frontend", "compile", "-d", str(copy),
                           "-D", "paylinks", "--statistics"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "messages" in line and "translated" in line]
    assert len(lines) == len(i18n.LANGUAGES)
    for line in lines:
        assert re.match(r"(\d+) of \1 messages \(100%\) translated", line), line


def test_the_catalogs_hold_every_string_the_sources_mark() -> None:
    """A string added to the code (gettext, N_, {% trans %}) without running pybabel update fails here."""
    template = {m.id if isinstance(m.id, str) else m.id[0] for m in _template() if m.id}
    missing = sorted(set(_extracted()) - template)
    assert missing == [], f"run pybabel extract/update (docs/TRANSLATIONS.md): {missing[:10]}"


def test_every_gettext_call_in_the_code_is_in_the_catalogs() -> None:
    """Read from the code itself: a gettext inside an f-string is invisible to pybabel extract."""
    template = {m.id if isinstance(m.id, str) else m.id[0] for m in _template() if m.id}
    missing = []
    for folder in ("core", "adapters", "bots"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or _call_name(node) not in _TRANSLATING or not node.args:
                    continue
                first = node.args[1] if _call_name(node) == "pgettext" and len(node.args) > 1 else node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value not in template:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {first.value!r}")
    assert missing == []


# ---------------------------------------------------------------- no literal text left untranslated

_TAG = re.compile(r"<[^>]*>")
_WORDS = re.compile(r"[^\W\d_]{2,}", re.UNICODE)
# Attributes a person reads: their literal values must be translated too.
_READ_ATTRIBUTES = re.compile(r"\b(?:alt|title|placeholder|aria-label|label)=\"([^\"{]*)\"")
# Literal words that are names, not text: the product, CSS, the QR's MIME type.
_NOT_TEXT = {"paylinks", "Paylinks", "sandbox-banner", "test-mode"}


def _template_dirs() -> list[Path]:
    return [ROOT / "adapters" / "web" / "templates", ROOT / "adapters" / "email" / "templates"]


_TRANS_BLOCK = re.compile(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", re.DOTALL)
_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)


def _literal_text(source: str, env: jinja2.Environment) -> list[str]:
    """The words a template writes as they are, outside {% trans %} and {{ _() }}."""
    env.parse(source)  # it must be a valid template (with the i18n extension's {% trans %})
    data = _JINJA.sub("\x00", _TRANS_BLOCK.sub("\x00", source))
    found = [value for value in _READ_ATTRIBUTES.findall(data) if _WORDS.search(value)]
    # Inside tags only attribute values people read count; style/class/href are not text.
    found.extend(word for word in _WORDS.findall(_TAG.sub(" ", data)) if word not in _NOT_TEXT)
    return found


def _templates() -> list[tuple[str, Path]]:
    return [(str(path.relative_to(folder)), path) for folder in _template_dirs()
            for path in sorted(folder.rglob("*.html"))]


@pytest.mark.parametrize(("name", "path"), _templates(), ids=[name for name, _ in _templates()])
def test_templates_have_no_untranslated_literal_text(name: str, path: Path) -> None:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    words = _literal_text(path.read_text(encoding="utf-8"), env)
    assert words == [], f"{name}: put these through the catalogs: {words[:12]}"


def test_the_literal_text_check_catches_a_forgotten_string() -> None:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    assert _literal_text('<p>{{ _("Pay") }}</p><img alt="QR code"><p class="x">Pay now</p>', env) == \
        ["QR code", "Pay", "now"]
    assert _literal_text('<p>{% trans %}Pay now{% endtrans %} · {{ amount }}</p>', env) == []


# The modules whose strings people read in chat, in emails or on pages.
REPLY_MODULES = [
    "core/conversation.py", "core/outbox_texts.py", "core/reports.py", "core/digest.py", "core/members.py",
    "core/commands/amounts.py", "core/commands/charge.py", "core/commands/contacts.py",
    "core/commands/expiry.py", "core/commands/periods.py", "core/commands/registry.py",
    "adapters/web/pages.py", "adapters/email/compose.py", "adapters/web/sell_pages.py", "core/sales_texts.py",
    "core/sales_alerts.py", "core/sales_chat.py", "core/chat_invoices.py",
    "core/commands/sell.py", "core/commands/recurring.py", "adapters/web/dashboard/views.py",
    "adapters/web/dashboard/providers.py", "adapters/web/dashboard/reach.py", "adapters/web/dashboard/session.py",
    "core/chat_errors.py",
    "adapters/telegram/inline.py", "adapters/slack/home.py", "adapters/slack/render.py",
    "adapters/payments/sandbox/checkout.py", "adapters/payments/return_pages.py",
    "adapters/payments/stripe/return_page.py", "adapters/web/branding.py", "adapters/telegram/bot.py",
]
_TRANSLATING = {"gettext", "ngettext", "pgettext", "N_", "_"}
# Calls whose string arguments are for operators (logs, exceptions no person sees) or are not text.
_NOT_SHOWN = {"debug", "info", "warning", "error", "exception", "critical", "RuntimeError", "TypeError",
              "ValueError", "Period",
              "AssertionError", "compile", "match", "fullmatch", "search", "sub", "split", "Field", "bindparam",
              "label", "record", "get", "frozenset", "set", "startswith", "endswith", "replace", "format_skeleton",
              "json_response"}  # JSON answers are for programs (Telegram's servers, API clients)
# A string is prose when it has two words of letters separated by a space. Command syntax ("/status
# INV-1042": the command words stay, issue 18 point 3) is not.
_PROSE = re.compile(r"[^\W\d_]{2,} [^\W\d_]{2,}", re.UNICODE)
# Keyword arguments that are stored or matched, not shown as they are.
_NOT_SHOWN_KEYWORDS = {"reason", "field", "code"}


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _untranslated(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in _TRANSLATING | _NOT_SHOWN:
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))  # docstrings
        if isinstance(node, ast.Compare):  # `x == "some words"` reads, it does not write
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.Dict):  # keys name things; the values are what is shown
            skip.update(id(k) for k in node.keys if k is not None)
        if isinstance(node, ast.keyword) and node.arg in _NOT_SHOWN_KEYWORDS:
            skip.update(id(n) for n in ast.walk(node.value))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        text = _TAG.sub(" ", re.sub(r"`[^`]*`", " ", node.value))  # `code` and <tags> are not prose
        if _PROSE.search(text) and not node.value.lstrip().startswith("/"):
            found.append((node.lineno, node.value))
    return found


@pytest.mark.parametrize("module", REPLY_MODULES)
def test_replies_have_no_untranslated_literal_text(module: str) -> None:
    assert _untranslated(ROOT / module) == []


def test_the_reply_check_catches_a_forgotten_string(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('def f(t):\n    """Doc string here."""\n    log.info("operators read this")\n'
                      '    ok = t.gettext("Paid in full")\n    return Reply("Paid in full, thanks")\n')
    assert _untranslated(sample) == [(5, "Paid in full, thanks")]
