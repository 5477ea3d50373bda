"""docs/ARCHITECTURE.md: dependencies point inward. `core/` imports the standard library, storage, validation
and locale data, and nothing of the web framework, the templating, a chat SDK, a payment SDK, `adapters/` or
`bots/` — not even inside a function (that is how Jinja2 once slipped into core/i18n.py)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Libraries core is built on: storage, validation, money and locale data, secrets. A new entry here is a
# design decision (ARCHITECTURE), not a way to make this test pass.
CORE_LIBRARIES = {"alembic", "babel", "cryptography", "email_validator", "iso4217", "phonenumbers", "pydantic",
                  "sqlalchemy", "sqlmodel"}


def imported_packages(source: str) -> set[str]:
    """Top-level names of every absolute import in the source, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value.split(".")[0])
    return names


def not_allowed_in_core(source: str) -> set[str]:
    return {name for name in imported_packages(source)
            if name not in sys.stdlib_module_names and name not in CORE_LIBRARIES and name != "core"}


def test_core_imports_no_framework_sdk_adapter_or_program() -> None:
    found = {str(path.relative_to(ROOT)): bad for path in sorted((ROOT / "core").rglob("*.py"))
             if (bad := not_allowed_in_core(path.read_text(encoding="utf-8")))}
    assert found == {}


def test_the_check_sees_imports_hidden_in_functions() -> None:
    source = ("import json\nfrom sqlalchemy import select\n"
              "def page():\n    from jinja2 import Environment\n    import aiohttp.web\n"
              "    importlib.import_module('stripe')\n    from adapters.web import pages\n"
              "    from . import money\n")
    assert not_allowed_in_core(source) == {"jinja2", "aiohttp", "stripe", "adapters"}
