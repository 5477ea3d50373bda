"""Shared fixtures: settings on SQLite and PostgreSQL, the app through its factory, and a network guard.

PostgreSQL runs when PAYLINKS_TEST_DATABASE_URL is set (.ci/run sets it): each pytest session gets its
own database on that server, so parallel runs never meet. Set but unreachable is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bots.app import SERVICES, create_app
from bots.config import Secret, Settings, load_settings
from bots.services import Services
from core.db import Database, sqlite_url
from core.links import LinkService
from core.models import metadata
from tests.clock import FakeClock

# A stuck test ends the run with every task's stack instead of eating CI's 90 minutes.
pytest_plugins = ["tests.watchdog"]

PG_ENV = "PAYLINKS_TEST_DATABASE_URL"

# ---------------------------------------------------------------- no internet in tests

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(host: Any) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise OSError(f"tests may not reach the network (tried {address[0]})")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise OSError(f"tests may not reach the network (tried {address[0]})")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, bytes):
        host = host.decode()
    if not _is_local(host):
        raise socket.gaierror(f"tests may not resolve {host}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo

# ---------------------------------------------------------------- databases


def _migrated_sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"

    async def build() -> None:
        db = Database(sqlite_url(path))
        await db.migrate()
        await db.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _migrated_sqlite_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private, migrated database on the configured PostgreSQL server for this session."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL variant not run")
    name = f"paylinks_test_{uuid.uuid4().hex[:12]}"
    admin_url = make_url(base)
    session_url = admin_url.set(database=name).render_as_string(hide_password=False)

    async def create() -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await engine.dispose()
        db = Database(session_url)
        await db.migrate()
        await db.dispose()

    async def drop() -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            await engine.dispose()

    try:
        asyncio.run(create())
    except Exception as exc:  # set but unreachable must fail loudly, never skip
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is not usable: {type(exc).__name__}: {exc}")
    yield session_url
    asyncio.run(drop())


async def _truncate(url: str) -> None:
    engine = create_async_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each back end (tests using it run twice)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        asyncio.run(_truncate(url))
        return url
    path = tmp_path / "paylinks.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return sqlite_url(path)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on each back end (tests using it run twice)."""
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def links(db: Database, clock: FakeClock) -> LinkService:
    """A LinkService on `db` with a hand-moved clock (links at https://pay.example/p/…)."""
    return LinkService(db, public_base_url="https://pay.example", default_expiry=timedelta(days=7),
                       max_amount=Decimal("10000"), clock=clock)


@pytest.fixture
def sqlite_database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite database, for tests that are about something other than storage."""
    path = tmp_path / "paylinks.db"
    shutil.copy(sqlite_template, path)
    return sqlite_url(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A fixed Fernet key for the tests' settings (tests/core/test_secrets.py covers the key file).
TEST_SECRET_KEY = "bRi8rvT6Tp6N4bDgCkUeQp0pTWuGkyrC2ku4kVtbZjI="


def make_settings(database_url: str, port: int | None = None, **overrides: Any) -> Settings:
    settings = load_settings(env={})
    settings.database.url = database_url
    port = port or free_port()
    settings.server.port = port
    settings.server.public_base_url = f"http://127.0.0.1:{port}"
    settings.payments.sandbox.webhook_secret = Secret("whsec_test_secret")
    # Secrets at rest are encrypted under this key (PostgreSQL needs one configured; core/secrets.py).
    settings.security.secret_key = Secret(TEST_SECRET_KEY)
    # Off by default in tests: the tests of payment recording look at a refund-needed payment as recorded;
    # the refunds tests (tests/core/test_refunds.py and friends) turn it on, as it is in production.
    settings.payments.auto_refund_duplicates = False
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        setattr(getattr(settings, section), key, value)
    return settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def sqlite_settings(sqlite_database_url: str) -> Settings:
    return make_settings(sqlite_database_url)


# ---------------------------------------------------------------- the app


class LiveApp:
    """The real app served on 127.0.0.1 at the port of settings.public_base_url, plus a client."""

    def __init__(self, app: web.Application, client: TestClient) -> None:
        self.app = app
        self.client = client

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def base_url(self) -> str:
        return self.services.settings.server.public_base_url


async def start_live_app(settings: Settings, **kwargs: Any) -> tuple[LiveApp, TestClient]:
    app = create_app(settings, migrate=False, **kwargs)
    server = TestServer(app, host="127.0.0.1", port=settings.server.port)
    client = TestClient(server)
    await client.start_server()
    return LiveApp(app, client), client


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveApp]:
    """The app on both back ends."""
    app, client = await start_live_app(settings)
    yield app
    await client.close()


@pytest.fixture
async def sqlite_live(sqlite_settings: Settings) -> AsyncIterator[LiveApp]:
    """The app on SQLite only."""
    app, client = await start_live_app(sqlite_settings)
    yield app
    await client.close()


# The `chat` fixture (drives the conversation core like a user) lives with its helpers.
from tests.chat_support import chat  # noqa: E402, F401
