"""A CLI write while another process holds SQLite's write lock: one clear line and exit 75, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.sqlite_lock import write_lock_held

BIN = Path(sys.executable).parent / "paylinks"


def test_link_create_under_the_lock_says_busy_and_changes_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env["PAYLINKS_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env["PAYLINKS_DATABASE__BUSY_TIMEOUT"] = "1s"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=60)

    merchant = run("merchant", "create", "--name", "Cake Shop", "--currency", "SGD").stdout.strip()
    assert merchant
    with write_lock_held(tmp_path / "cli.db"):
        started = time.perf_counter()
        refused = run("link", "create", "--merchant", merchant, "25", "cake")
        took = time.perf_counter() - started
    assert refused.returncode == 75, refused.stderr
    assert "the database is busy" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stdout == ""
    assert took < 20
    made = run("link", "create", "--merchant", merchant, "25", "cake")
    assert made.returncode == 0 and made.stdout.count("\n") == 1
