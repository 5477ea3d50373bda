"""Start-up (issue 19, point 6): commands import only what they use.

`paylinks --help` must not load the plug-ins' SDKs, SQLAlchemy or aiohttp, and a command that only opens
the database must not load any chat platform's or payment provider's SDK (nor aiohttp, Alembic when the
schema is current, Jinja2 or the SMTP client). The speed itself is measured by bench/startup.py; here the
design that gives it is checked, by the modules a fresh interpreter has loaded.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDKS = ("telegram", "slack_sdk", "slack_bolt", "twilio", "stripe", "aiosmtplib", "playwright", "PIL", "jwt", "fpdf")

PROBE = """
import contextlib, gc, io, json, sys
from bots.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
roots = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"code": code, "out": out.getvalue(), "modules": roots,
                  "chat_core": "core.conversation" in sys.modules, "gc": gc.get_threshold(),
                  "frozen": gc.get_freeze_count()}))
"""


def loaded(env: dict[str, str], *args: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return found


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    environ["PAYLINKS_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'startup.db'}"
    return environ


def test_help_loads_no_sdk_no_database_no_web(env: dict[str, str]) -> None:
    found = loaded(env, "--help")
    assert found["code"] == 0
    assert "merchant" in str(found["out"]) and "serve" in str(found["out"])
    modules = set(found["modules"])  # type: ignore[call-overload]
    for heavy in (*SDKS, "sqlalchemy", "sqlmodel", "aiohttp", "alembic", "jinja2"):
        assert heavy not in modules, f"`paylinks --help` imported {heavy}"


def test_a_database_command_loads_no_platform_sdk(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "bots.cli", "migrate"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=60)
    found = loaded(env, "merchant", "create", "--name", "Cake Shop", "--currency", "SGD")
    assert found["code"] == 0
    assert str(found["out"]).strip(), "the merchant's id is printed"
    modules = set(found["modules"])  # type: ignore[call-overload]
    assert "sqlalchemy" in modules  # the probe did open the database
    # Alembic is skipped when the schema is already current; the rest load only when something is sent.
    for heavy in (*SDKS, "aiohttp", "alembic", "jinja2", "phonenumbers"):
        assert heavy not in modules, f"`paylinks merchant create` imported {heavy}"
    # The chat core (and its command parsers) is built on first use, which this command never makes.
    assert found["chat_core"] is False
    # The collector held back during start-up is back to normal, with start-up's objects frozen.
    assert found["gc"] == list(gc.get_threshold()) and found["frozen"] > 0


def test_every_plugin_settings_still_load_without_their_sdks(env: dict[str, str]) -> None:
    """The registry's plug-ins give their settings (and `paylinks --help` its commands) from light modules."""
    probe = ("import json, sys; from bots.config import load_settings; s = load_settings(None, env={}); "
             "print(json.dumps([s.payments.stripe.api_base_url, s.payments.portone.api_base_url, "
             "sorted({n.split('.')[0] for n in sys.modules})]))")
    result = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    stripe_url, portone_url, modules = json.loads(result.stdout)
    assert stripe_url == "https://api.stripe.com"
    assert portone_url == "https://api.portone.cloud"
    for heavy in (*SDKS, "aiohttp"):
        assert heavy not in modules, f"loading the settings imported {heavy}"
