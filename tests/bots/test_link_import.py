"""`paylinks link import`: good, bad and repeated rows on SQLite and PostgreSQL (core/imports.py), and the
command itself: plain progress lines and a summary when piped, rich's progress bar on a terminal (a pty)."""

from __future__ import annotations

import csv
import os
import pty
import select as select_module
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bots.config import Settings
from bots.services import Services, build_services
from core.imports import Importer, ImportFileError
from core.models import OutboxMessage, PaymentLink
from core.sql import table
from tests.clock import FakeClock
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "paylinks"
LINKS = table(PaymentLink)
OUTBOX = table(OutboxMessage)

GOOD_AND_BAD = """Amount,Currency,Description,REFERENCE,customer_name,customer_email,customer_phone,expires_in
120.00,SGD,Tuition March,T-001,Ana,ana@example.com,,30d
80,,Tuition March,T-002,Bo,,+65 9123 4567,
abc,SGD,Tuition March,T-003,Cy,,,
50,SGD,Tuition March,,Di,,,
50,SGD,Tuition March,T-005,Ed,not-an-email,,
50,XXX,Tuition March,T-006,Fi,,,
50,SGD,Tuition March,T-007,Gu,,12,
50,SGD,Tuition March,T-001,Ana again,,,
"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    # An SMTP host (never reached: nothing is dispatched here) so email is on with PostgreSQL too.
    return make_settings(database_url, email__host="127.0.0.1", email__security="none")


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    built = build_services(settings, clock=FakeClock())
    yield built
    await built.db.dispose()


def write(tmp_path: Path, text: str, name: str = "fees.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def counts(services: Services) -> tuple[int, int]:
    async with services.db.read() as conn:
        links = (await conn.execute(select(func.count()).select_from(LINKS))).scalar_one()
        rows = (await conn.execute(select(func.count()).select_from(OUTBOX).where(
            OUTBOX.c.platform == "email"))).scalar_one()
    return int(links), int(rows)


async def test_good_rows_are_made_bad_ones_reported_by_row_and_reason_and_a_rerun_makes_nothing_twice(
    services: Services, tmp_path: Path
) -> None:
    merchant = await services.merchants.create("Academy", currency="SGD", locale="en_SG")
    path = write(tmp_path, GOOD_AND_BAD)
    report = await Importer(services.links).run(path, merchant.id)
    assert (report.rows, report.created, report.already) == (8, 2, 0)
    with (tmp_path / "fees.errors.csv").open(newline="") as handle:
        errors = list(csv.reader(handle))
    assert errors[0] == ["row", "reason"]
    by_row = {int(row): reason for row, reason in errors[1:]}
    assert set(by_row) == {4, 5, 6, 7, 8, 9}
    assert "amount" in by_row[4] and "reference is required" in by_row[5] and "email" in by_row[6].lower()
    assert "XXX" in by_row[7] or "currency" in by_row[7].lower()
    assert "phone" in by_row[8] and "earlier row" in by_row[9]
    assert await counts(services) == (2, 0)  # without --send nobody hears of it
    made = await services.links.find(merchant.id, "T-002")
    assert made is not None and made.customer_phone == "+6591234567" and made.amount_minor == 8000
    first = await services.links.find(merchant.id, "T-001")
    assert first is not None and first.expires_at - first.created_at == timedelta(days=30)
    again = await Importer(services.links).run(path, merchant.id)
    assert (again.created, again.already) == (0, 3)  # T-001 twice and T-002; the bad rows fail again
    assert await counts(services) == (2, 0)
    assert "imported 0 of 8 rows; 3 already imported" in again.summary(dry_run=False, send=False)


async def test_send_queues_each_customers_link_and_dry_run_makes_nothing(services: Services, tmp_path: Path) -> None:
    merchant = await services.merchants.create("Academy", currency="SGD", locale="en_SG")
    path = write(tmp_path, "reference,amount,description,customer_email\nR-1,10,Fee,ana@example.com\n"
                 "R-2,12,Fee,bo@example.com\n")
    dry = await Importer(services.links).run(path, merchant.id, send=True, dry_run=True)
    assert dry.created == 2 and await counts(services) == (0, 0)
    assert dry.summary(dry_run=True, send=True) == "would import 2 of 2 rows"
    sent = await Importer(services.links).run(path, merchant.id, send=True)
    assert sent.created == 2 and await counts(services) == (2, 2)


@pytest.mark.parametrize(("text", "message"), [
    ("amount,description,colour\n1,x,red\n", "unknown column 'colour'"),
    ("amount,description\n1,x\n", "'reference' is required"),
    ("", "is empty"),
])
async def test_a_file_with_wrong_columns_is_refused_by_name(
    services: Services, tmp_path: Path, text: str, message: str
) -> None:
    merchant = await services.merchants.create("Academy", currency="SGD", locale="en_SG")
    with pytest.raises(ImportFileError, match=message):
        await Importer(services.links).run(write(tmp_path, text), merchant.id)
    assert await counts(services) == (0, 0)


# ---------------------------------------------------------------- the command


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env["PAYLINKS_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    return env


def make_merchant(env: dict[str, str]) -> str:
    done = subprocess.run([str(BIN), "merchant", "create", "--name", "Academy", "--currency", "SGD"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def test_the_command_prints_progress_lines_and_a_summary_when_piped(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    merchant = make_merchant(env)
    rows = "".join(f"{10 + n},Fee {n},F-{n}\n" for n in range(1500))
    path = write(tmp_path, "amount,description,reference\n" + rows + "x,Bad,F-bad\n")
    done = subprocess.run([str(BIN), "link", "import", str(path), "--merchant", merchant], env=env,
                          capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stderr  # one row had an error
    assert lines[0] == "imported 1000/1501 rows" and lines[1] == "imported 1501/1501 rows"
    assert lines[-1] == (f"imported 1500 of 1501 rows; 1 with errors (see {tmp_path / 'fees.errors.csv'}); "
                         "nothing sent to anyone")


def test_the_command_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    merchant = make_merchant(env)
    path = write(tmp_path, "amount,description,reference\n" + "".join(f"5,Fee,P-{n}\n" for n in range(300)))
    leader, follower = pty.openpty()
    process = subprocess.Popen([str(BIN), "link", "import", str(path), "--merchant", merchant], env=env,
                               stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    try:
        while True:
            ready, _, _ = select_module.select([leader], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        process.wait(timeout=60)
        os.close(leader)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "importing" in text and "300/300" in text and "━" in text  # rich's bar, with its count
    assert "imported 300 of 300 rows; nothing sent to anyone" in text
    assert "imported 300/300 rows" not in text  # no plain progress lines on a terminal
