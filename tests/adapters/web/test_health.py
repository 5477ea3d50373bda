"""GET /healthz answers 200 when the database answers and 503 when it does not (issue 2, point 10)."""

from __future__ import annotations

from tests.conftest import LiveApp, make_settings, start_live_app


async def test_healthy(live: LiveApp) -> None:
    response = await live.client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_unhealthy_database_is_503(tmp_path: object) -> None:
    # A PostgreSQL URL where nothing listens: the app starts (no migration) but the database never answers.
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:9/nothing")
    _app, client = await start_live_app(settings, run_jobs=False)
    try:
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["status"] == "unavailable"
    finally:
        await client.close()
