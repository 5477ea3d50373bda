"""`paylinks merchant set-provider | show` and `paylinks rotate-secrets` as an operator runs them (issue 12,
points 1 and 2): secrets on stdin only, checked against the provider (FakeStripe / FakePortOne on
127.0.0.1), one line naming the webhook URL, never more than four characters of a secret shown, the key
file made once beside the SQLite database, rotation. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bots.accounts_cli import SecretsInputError, read_secrets
from core.db import Database
from core.models import SLACK_BOTS, AuditEvent, ProviderAccount
from core.secrets import KEY_FILE_NAME, generate_key
from core.sql import table
from tests.conftest import TEST_SECRET_KEY
from tests.fakes.portone import FakePortOne
from tests.fakes.stripe import FakeStripe

BIN = Path(sys.executable).parent / "paylinks"
KEY, WHSEC = "sk_test_shop_cli_key_2468", "whsec_shop_cli_secret_1357"
LIVE_KEY = "sk_live_shop_cli_key_8642"
PORTONE_KEY, PORTONE_SECRET = "pk_test_CLI_SHOP", "sk_test_cli_portone_secret_9999"
LEGACY_TOKEN = "xoxb-legacy-plaintext-token-0000"
PUBLIC = "https://pay.example.com"


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


async def run(env: dict[str, str], *args: str, stdin: str = "") -> Ran:
    process = await asyncio.create_subprocess_exec(
        str(BIN), *args, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=60)
    return Ran(process.returncode or 0, out.decode(), err.decode())


@pytest.fixture
async def stripe_fake() -> AsyncIterator[FakeStripe]:
    server = await FakeStripe(secret_keys=("sk_test_deployment",), webhook_secret="whsec_deployment").start()
    server.add_account(KEY, webhook_secret=WHSEC)
    server.add_account(LIVE_KEY, webhook_secret=WHSEC)
    yield server
    await server.close()


@pytest.fixture
async def portone_fake() -> AsyncIterator[FakePortOne]:
    server = await FakePortOne(client_key="pk_test_DEPLOYMENT", secret_key="sk_test_deployment").start()
    server.add_account(PORTONE_KEY, PORTONE_SECRET)
    yield server
    await server.close()


@pytest.fixture
def env(database_url: str, stripe_fake: FakeStripe, portone_fake: FakePortOne) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    environ["PAYLINKS_DATABASE__URL"] = database_url
    environ["PAYLINKS_SERVER__PUBLIC_BASE_URL"] = PUBLIC
    environ["PAYLINKS_PAYMENTS__STRIPE__API_BASE_URL"] = stripe_fake.url
    environ["PAYLINKS_PAYMENTS__PORTONE__API_BASE_URL"] = portone_fake.url
    if not database_url.startswith("sqlite"):
        environ["PAYLINKS_SECURITY__SECRET_KEY"] = TEST_SECRET_KEY  # PostgreSQL: the key is configured
    return environ


def key_file(env: dict[str, str]) -> Path:
    return Path(env["PAYLINKS_DATABASE__URL"].split(":///", 1)[1]).parent / KEY_FILE_NAME


def no_secret_in(*outputs: Ran, secrets: tuple[str, ...] = (KEY, LIVE_KEY, WHSEC, PORTONE_SECRET)) -> None:
    for output in outputs:
        for secret in secrets:
            assert secret not in output.stdout and secret not in output.stderr
            assert secret[:-4] not in output.stdout and secret[:-4] not in output.stderr


async def merchant(env: dict[str, str]) -> str:
    created = await run(env, "merchant", "create", "--name", "Cake Shop", "--currency", "SGD")
    assert created.code == 0, created.stderr
    return created.stdout.strip()


async def test_set_provider_checks_the_keys_and_names_the_webhook_url(env: dict[str, str],
                                                                      stripe_fake: FakeStripe) -> None:
    sqlite = env["PAYLINKS_DATABASE__URL"].startswith("sqlite")
    created = await run(env, "merchant", "create", "--name", "Cake Shop", "--currency", "SGD")
    assert created.code == 0, created.stderr
    shop = created.stdout.strip()

    bad = await run(env, "merchant", "set-provider", shop, "stripe",
                    stdin="secret_key=sk_test_wrong_key_0000\nwebhook_secret=whsec_wrong\n")
    assert bad.code == 2 and "stripe refused these credentials" in bad.stderr and "Traceback" not in bad.stderr
    no_secret_in(bad, secrets=("sk_test_wrong_key_0000",))
    assert [c.kind for c in stripe_fake.calls][-1] == "account"  # it asked Stripe

    refused = await run(env, "merchant", "set-provider", shop, "stripe",
                        stdin=f"secret_key=pk_test_public\nwebhook_secret={WHSEC}\npassword=hunter2\n")
    assert refused.code == 2 and "unknown name 'password'" in refused.stderr, refused.stderr
    no_secret_in(refused, secrets=(WHSEC, "hunter2"))
    # Secrets never come from argv.
    argv = await run(env, "merchant", "set-provider", shop, "stripe", "--secret-key", KEY)
    assert argv.code == 2
    refused = await run(env, "merchant", "set-provider", shop, "stripe", "--environment", "live",
                        stdin=f"secret_key={KEY}\nwebhook_secret={WHSEC}\n")
    assert refused.code == 2 and "--environment does not apply to stripe" in refused.stderr

    saved = await run(env, "merchant", "set-provider", shop, "stripe",
                      stdin=f"# from the dashboard\nsecret_key={KEY}\n\nwebhook_secret={WHSEC}\n")
    assert saved.code == 0, saved.stderr
    lines = saved.stdout.splitlines()
    assert len(lines) == 1 and "stripe" in lines[0] and lines[0].endswith(f"{PUBLIC}/webhooks/stripe/{shop}")
    no_secret_in(bad, saved)
    if sqlite:  # the first command that needed the key made it, and said so once (the sandbox's webhook
        # secret derives from it, so that is the first command that opens the services)
        assert "created a new secret key" in created.stderr
        assert "created a new secret key" not in bad.stderr + saved.stderr
        assert stat.S_IMODE(key_file(env).stat().st_mode) == 0o600

    shown = await run(env, "merchant", "show", shop)
    assert shown.code == 0, shown.stderr
    assert "created a new secret key" not in shown.stderr  # said once
    rows = dict(line.split("\t", 1) for line in shown.stdout.splitlines())
    assert rows["provider"] == "stripe (own account)"
    assert (rows["secret_key"], rows["webhook_secret"]) == ("…" + KEY[-4:], "…" + WHSEC[-4:])
    assert rows["webhook_url"] == f"{PUBLIC}/webhooks/stripe/{shop}"
    no_secret_in(shown)

    async with database(env) as db, db.read() as conn:
        [row] = (await conn.execute(select(table(ProviderAccount)))).all()
        # The change is in the shop's audit log (the dashboard's /dashboard/audit), with no secret in it.
        [audit] = (await conn.execute(select(table(AuditEvent)).where(
            table(AuditEvent).c.action == "provider.changed"))).all()
    assert KEY not in row.secrets and WHSEC not in row.secrets and row.provider == "stripe"
    assert (audit.merchant_id, audit.platform, audit.detail["provider"], audit.detail["previous"],
            audit.detail["secrets_changed"]) == (shop, "cli", "stripe", "sandbox (deployment)",
                                                 "secret_key, webhook_secret")
    assert KEY[:-4] not in repr(audit.detail) and WHSEC[:-4] not in repr(audit.detail)

    other = await merchant(env)
    shown = await run(env, "merchant", "show", other)
    assert "provider\tsandbox (the deployment's default)" in shown.stdout


async def test_portone_and_the_sandbox(env: dict[str, str], portone_fake: FakePortOne) -> None:
    shop = await merchant(env)
    bad = await run(env, "merchant", "set-provider", shop, "portone", "--country", "TH",
                    stdin=f"client_key={PORTONE_KEY}\nsecret_key=sk_test_not_the_secret\n")
    assert bad.code == 2 and "portone refused these credentials" in bad.stderr
    no_secret_in(bad, secrets=("sk_test_not_the_secret",))
    missing_country = await run(env, "merchant", "set-provider", shop, "portone",
                                stdin=f"client_key={PORTONE_KEY}\nsecret_key={PORTONE_SECRET}\n")
    assert missing_country.code == 2 and "--country" in missing_country.stderr

    saved = await run(env, "merchant", "set-provider", shop, "portone", "--environment", "sandbox", "--country", "th",
                      stdin=f"client_key={PORTONE_KEY}\nsecret_key={PORTONE_SECRET}\n")
    assert saved.code == 0, saved.stderr
    assert saved.stdout.strip().endswith(f"{PUBLIC}/webhooks/portone/{shop}") and len(saved.stdout.splitlines()) == 1
    fetch = portone_fake.calls_of("fetch")[-1]
    assert fetch.headers["X-Portone-Client-Key"] == PORTONE_KEY  # a signed status call with the shop's keys
    rows = dict(line.split("\t", 1) for line in (await run(env, "merchant", "show", shop)).stdout.splitlines())
    assert (rows["provider"], rows["environment"], rows["country"]) == ("portone (own account)", "sandbox", "TH")
    assert rows["secret_key"] == "…" + PORTONE_SECRET[-4:]
    no_secret_in(saved)

    back = await run(env, "merchant", "set-provider", shop, "sandbox")
    assert back.code == 0 and "no webhook to register" in back.stdout
    rows = dict(line.split("\t", 1) for line in (await run(env, "merchant", "show", shop)).stdout.splitlines())
    assert rows["provider"].startswith("sandbox") and "secret_key" not in rows
    unknown = await run(env, "merchant", "set-provider", "mer_nobody", "sandbox")
    assert unknown.code == 2 and "no merchant with id mer_nobody" in unknown.stderr


async def test_rotate_secrets_reencrypts_every_row(env: dict[str, str]) -> None:
    shop = await merchant(env)
    saved = await run(env, "merchant", "set-provider", shop, "stripe",
                      stdin=f"secret_key={LIVE_KEY}\nwebhook_secret={WHSEC}\n")
    assert saved.code == 0, saved.stderr
    # The shop takes real money through its own account now: its API keys are live keys.
    api_key = await run(env, "apikey", "create", "--merchant", shop)
    assert api_key.code == 0 and api_key.stdout.startswith("pl_live_")
    # A Slack bot token stored in plaintext before encryption existed.
    async with database(env) as db, db.write() as conn:
        await conn.execute(insert(SLACK_BOTS).values(client_id="c1", app_id="A1", team_id="T1",
                                                     bot_token=LEGACY_TOKEN, is_enterprise_install=False))
    old = env.get("PAYLINKS_SECURITY__SECRET_KEY") or key_file(env).read_text().strip()
    new = generate_key()
    rotated_env = {**env, "PAYLINKS_SECURITY__SECRET_KEY": new, "PAYLINKS_SECURITY__PREVIOUS_SECRET_KEYS": old}
    rotated = await run(rotated_env, "rotate-secrets")
    assert rotated.code == 0, rotated.stderr
    assert rotated.stdout.strip() == "re-encrypted 2 stored secrets under security.secret_key"
    again = await run(rotated_env, "rotate-secrets")
    assert again.stdout.strip() == "re-encrypted 0 stored secrets under security.secret_key"
    async with database(env) as db, db.read() as conn:
        token = (await conn.execute(select(SLACK_BOTS.c.bot_token))).scalar_one()
    assert token.startswith("fernet:") and LEGACY_TOKEN not in token

    # Only the new key is needed now; the old one alone cannot read the secrets, and says which setting.
    only_new = {**env, "PAYLINKS_SECURITY__SECRET_KEY": new}
    shown = await run(only_new, "merchant", "show", shop)
    assert shown.code == 0 and "…" + LIVE_KEY[-4:] in shown.stdout
    only_old = {**env, "PAYLINKS_SECURITY__SECRET_KEY": old}
    refused = await run(only_old, "merchant", "show", shop)
    assert refused.code == 2 and "security.secret_key" in refused.stderr and "Traceback" not in refused.stderr
    no_secret_in(rotated, again, shown, refused)
    assert new not in rotated.stderr + rotated.stdout and old not in rotated.stderr + rotated.stdout


def test_secrets_are_read_as_name_value_lines() -> None:
    names = ("secret_key", "webhook_secret")
    assert read_secrets(["# comment", "", f" secret_key = {KEY} ", f"webhook_secret={WHSEC}"], names) == {
        "secret_key": KEY, "webhook_secret": WHSEC}
    for lines, message in [
        ([f"secret_key={KEY}"], "missing on standard input: webhook_secret=…"),
        ([f"secret_key={KEY}", f"webhook_secret={WHSEC}", "password=hunter2"], "line 3: unknown name 'password'"),
        ([KEY], "line 1: expected name=value"),
        ([f"secret_key={KEY}", f"secret_key={KEY}"], "line 2: secret_key given twice"),
        (["secret_key=", f"webhook_secret={WHSEC}"], "line 1: secret_key is empty"),
    ]:
        with pytest.raises(SecretsInputError, match=message) as caught:
            read_secrets(lines, names)
        assert KEY not in str(caught.value) and WHSEC not in str(caught.value) and "hunter2" not in str(caught.value)


async def test_postgresql_without_a_key_refuses_to_store_secrets(postgres_url: str, stripe_fake: FakeStripe) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env.update({"PAYLINKS_DATABASE__URL": postgres_url, "PAYLINKS_PAYMENTS__STRIPE__API_BASE_URL": stripe_fake.url})
    assert (await run(env, "migrate")).code == 0
    shop = await merchant(env)
    refused = await run(env, "merchant", "set-provider", shop, "stripe",
                        stdin=f"secret_key={KEY}\nwebhook_secret={WHSEC}\n")
    assert refused.code == 2 and "security.secret_key (PAYLINKS_SECURITY__SECRET_KEY) is required" in refused.stderr
    no_secret_in(refused)


class database:
    def __init__(self, env: dict[str, str]) -> None:
        self.db = Database(env["PAYLINKS_DATABASE__URL"])

    async def __aenter__(self) -> Database:
        return self.db

    async def __aexit__(self, *exc: object) -> None:
        await self.db.dispose()
