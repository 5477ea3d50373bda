"""`paylinks dashboard-link` (issue 14): one sign-in link on stdout, the reason on stderr otherwise."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.bots.test_cli import env, run  # noqa: F401  (the env fixture)


def test_dashboard_link_prints_one_signin_link_and_is_audited(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    merchant_id = run(env, "merchant", "create", "--name", "Cake Shop").stdout.strip()
    lines = run(env, "dashboard-link", "--merchant", merchant_id).stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("https://pay.example.com/dashboard/signin/")
    assert len(lines[0].rsplit("/", 1)[1]) >= 40
    missing = run(env, "dashboard-link", "--merchant", "mer_nobody", check=False)
    assert missing.returncode != 0 and missing.stdout == "" and "no merchant with id mer_nobody" in missing.stderr
    stranger = run(env, "dashboard-link", "--merchant", merchant_id, "--member", "4242", check=False)
    assert stranger.returncode != 0 and stranger.stdout == "" and "not in merchant" in stranger.stderr
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_event ORDER BY id")]
        hashes = [r[0] for r in conn.execute("SELECT token_hash FROM dashboard_signin")]
    assert actions == ["signin.link"]
    assert len(hashes) == 1 and lines[0].rsplit("/", 1)[1] not in hashes[0]  # only a hash is stored
