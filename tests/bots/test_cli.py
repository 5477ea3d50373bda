"""The `paylinks` command line as an operator uses it (issue 2, points 5 and 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import limits

BIN = Path(sys.executable).parent / "paylinks"


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    environ["PAYLINKS_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    environ["PAYLINKS_SERVER__PUBLIC_BASE_URL"] = "https://pay.example.com"
    return environ


def test_merchant_key_and_link_print_one_line_each(env: dict[str, str]) -> None:
    merchant = run(env, "merchant", "create", "--name", "Cake Shop", "--currency", "SGD", "--locale", "en_SG")
    lines = merchant.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mer_")
    merchant_id = lines[0]

    key = run(env, "apikey", "create", "--merchant", merchant_id).stdout.splitlines()
    assert len(key) == 1 and key[0].startswith("pl_live_") and len(key[0]) > 40

    link = run(env, "link", "create", "--merchant", merchant_id, "25", "Chocolate", "cake").stdout.splitlines()
    assert len(link) == 1 and link[0].startswith("https://pay.example.com/p/")
    link_usd = run(env, "link", "create", "--merchant", merchant_id, "12.50", "USD", "Tea").stdout.strip()
    assert link_usd.startswith("https://pay.example.com/p/") and link_usd != link[0]

    listing = run(env, "merchant", "list").stdout
    assert merchant_id in listing and "Cake Shop" in listing and "SGD" in listing


def test_secrets_are_never_logged(env: dict[str, str]) -> None:
    merchant_id = run(env, "merchant", "create", "--name", "Shop").stdout.strip()
    created = run(env, "apikey", "create", "--merchant", merchant_id)
    assert created.stdout.strip() not in created.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["link", "create", "--merchant", "{m}", "25.555", "USD", "cake"], "USD has 2 decimals"),
        (["link", "create", "--merchant", "mer_missing", "25", "cake"], "no merchant with id mer_missing"),
        (["link", "create", "--merchant", "{m}", "25"], "usage"),
        # The business limits of core/limits.py, enforced by LinkService for the CLI too.
        (["link", "create", "--merchant", "{m}", "25", "x" * (limits.DESCRIPTION_MAX + 1)],
         f"longer than {limits.DESCRIPTION_MAX} characters"),
        (["merchant", "create", "--name", "X", "--currency", "ZZZ"], "ISO 4217"),
        (["merchant", "create", "--name", "X", "--locale", "klingon_XX"], "locale"),
        (["apikey", "create", "--merchant", "mer_nope"], "no merchant"),
    ],
)
def test_mistakes_get_a_message_not_a_traceback(env: dict[str, str], args: list[str], message: str) -> None:
    merchant_id = run(env, "merchant", "create", "--name", "Shop").stdout.strip()
    result = run(env, *[a.replace("{m}", merchant_id) for a in args], check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_config_file_option_and_bad_config(env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[links]\ndefault_currency = "JPY"\n')
    run(env, "--config", str(good), "merchant", "create", "--name", "Ramen")
    assert "JPY" in run(env, "--config", str(good), "merchant", "list").stdout

    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nportt = 1\n")
    result = run(env, "--config", str(bad), "merchant", "list", check=False)
    assert result.returncode == 2 and "unknown key: server.portt" in result.stderr


def test_migrate_on_postgresql(postgres_url: str, env: dict[str, str]) -> None:
    env["PAYLINKS_DATABASE__URL"] = postgres_url
    run(env, "migrate")
    assert run(env, "merchant", "create", "--name", "PG Shop").stdout.startswith("mer_")
