"""The API in a real `paylinks serve` process, whose first request is the API's (no earlier model __init__).

In-process tests cannot see failures that depend on process-wide state that an earlier test already set
up (SQLAlchemy's mapper configuration was one: rows built with model_construct broke until some model
was instantiated normally). This starts a fresh server and makes the first calls to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.db import Database
from core.merchants import MerchantService
from tests.conftest import free_port

PAYLINKS = Path(sys.executable).parent / "paylinks"


def _call(url: str, *, key: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     method="POST" if body is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _create_key(url: str) -> str:
    async def make() -> str:
        db = Database(url)
        try:
            merchants = MerchantService(db, default_currency="USD", default_locale="en_US")
            merchant = await merchants.create("Process Cakes", currency="SGD")
            return (await merchants.create_api_key(merchant.id, test=True))[1]
        finally:
            await db.dispose()

    return asyncio.run(make())


@pytest.fixture
def served(sqlite_database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    key = _create_key(sqlite_database_url)
    port = free_port()
    env = {
        **os.environ,
        "PAYLINKS_DATABASE__URL": sqlite_database_url,
        "PAYLINKS_SERVER__PORT": str(port),
        "PAYLINKS_SERVER__PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PAYLINKS_PAYMENTS__SANDBOX__WEBHOOK_SECRET": "whsec_process_test",
    }
    env.pop("PAYLINKS_CONFIG", None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(PAYLINKS), "serve"], env=env, cwd=tmp_path, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"paylinks serve did not come up:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield base, key
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_first_requests_to_a_fresh_server(served: tuple[str, str]) -> None:
    base, key = served
    status, link = _call(f"{base}/api/v1/links", key=key, body={"amount": "25.00", "description": "cake"})
    assert status == 201, link
    assert link["currency"] == "SGD" and link["url"] == f"{base}/p/{link['id']}"
    status, again = _call(f"{base}/api/v1/links/{link['id']}", key=key)
    assert status == 200 and again == link
    status, page = _call(f"{base}/api/v1/links?limit=5", key=key)
    assert status == 200 and [item["id"] for item in page["data"]] == [link["id"]]
    status, cancelled = _call(f"{base}/api/v1/links/{link['id']}/cancel", key=key, body={})
    assert status == 200 and cancelled["status"] == "cancelled"
    status, error = _call(f"{base}/api/v1/links", key="pl_live_" + "x" * 43)
    assert status == 401 and error["error"]["field"] == "Authorization"
