"""The OpenAPI document matches the router and the handlers; the /api/ error middleware never leaks details."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from adapters.web import api, api_models
from adapters.web.openapi import build_document
from core import links as core_links
from tests.adapters.web.api_support import Shop, make_shop
from tests.conftest import LiveApp


@pytest.fixture
async def shop(live: LiveApp) -> Shop:
    return await make_shop(live)


def _api_routes(live: LiveApp) -> set[tuple[str, str]]:
    routes = set()
    for route in live.app.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if canonical.startswith("/api/") and route.method != "HEAD":  # HEAD is aiohttp's automatic twin of GET
            routes.add((route.method.lower(), canonical))
    return routes


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


async def test_document_is_served_without_auth_and_is_valid_openapi(live: LiveApp, shop: Shop) -> None:
    resp = await shop.api.get("/api/v1/openapi.json", key=None)
    assert resp.status == 200
    validate(resp.body)  # raises on an invalid OpenAPI 3.1 document
    assert resp.body["openapi"].startswith("3.")
    assert resp.body["servers"] == [{"url": live.base_url}]
    assert resp.body == build_document(live.base_url)


async def test_every_route_is_documented_and_every_documented_route_exists(live: LiveApp) -> None:
    routes = _api_routes(live)
    documented = _documented(build_document(live.base_url))
    assert routes, "no API routes mounted"
    assert routes - documented == set(), "routes missing from the document"
    assert documented - routes == set(), "documented routes the app does not have"


def test_documented_fields_are_the_ones_the_handlers_use() -> None:
    schemas = build_document("http://x")["components"]["schemas"]
    assert set(schemas["CreateLink"]["properties"]) == api.CREATE_FIELDS
    assert tuple(schemas["CustomerIn"]["properties"]) == api.CUSTOMER_FIELDS
    link = schemas["Link"]
    assert set(link["required"]) == set(link["properties"])
    assert schemas["LinkStatus"]["enum"] == list(api.STATUSES)


def test_every_authenticated_operation_documents_401_and_500() -> None:
    doc = build_document("http://x")
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:
                continue
            assert {"401", "500"} <= set(operation["responses"]), (method, path)


async def test_documented_example_request_is_accepted(shop: Shop) -> None:
    example = build_document("http://x")["components"]["schemas"]["CreateLink"]["examples"][0]
    resp = await shop.api.create(example)
    assert resp.status == 201, resp.text


# ---------------------------------------------------------------- the error middleware


async def test_unknown_api_path_and_wrong_method_are_json_errors(shop: Shop) -> None:
    missing = await shop.api.get("/api/v1/nothing-here")
    assert missing.status == 404 and missing.error["code"] == "not_found"
    wrong = await shop.api.request("DELETE", "/api/v1/links")
    assert wrong.status == 405 and wrong.error["code"] == "method_not_allowed"
    assert set(re.split(r",\s*", wrong.headers["Allow"])) >= {"GET", "POST"}


@pytest.mark.parametrize(
    ("method", "path", "target"),
    [
        ("POST", "/api/v1/links", "create"),
        ("GET", "/api/v1/links", "list_links"),
        ("GET", "/api/v1/links/abc", "get"),
        ("POST", "/api/v1/links/abc/cancel", "cancel"),
    ],
)
async def test_unexpected_failure_is_a_bare_json_500_logged_with_an_id(
    live: LiveApp, shop: Shop, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    method: str, path: str, target: str,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(live.services.links, target, broken)
    body = {"json_body": {"amount": "1.00", "description": "x"}} if method == "POST" else {}
    with caplog.at_level(logging.ERROR, logger="paylinks.api"):
        resp = await shop.api.request(method, path, **body)
    assert resp.status == 500
    assert resp.error["code"] == "internal_error" and resp.error["field"] is None
    assert "hunter2" not in resp.text and "RuntimeError" not in resp.text
    error_id = re.search(r"err_[a-z0-9]+", resp.error["message"])
    assert error_id is not None
    logged = [r for r in caplog.records if error_id.group(0) in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback goes to the log, not the client
    assert shop.key not in caplog.text


async def test_middleware_leaves_other_paths_alone(live: LiveApp) -> None:
    resp = await live.client.get("/healthz")
    assert resp.status == 200
    other = await live.client.get("/definitely-not-api")
    assert other.status == 404
    assert "no such endpoint" not in await other.text()  # not the API's JSON 404


def _codes_raised_in(path: str) -> set[str]:
    source = Path(path).read_text()
    calls = r'(?:_bad|ApiError|LinkError|error_response)\(\s*(?:\d{3},\s*)?"([a-z_]+)"'
    codes = set(re.findall(calls, source))
    codes |= set(re.findall(r'\d{3}: \("([a-z_]+)"', source))  # the HTTP error table
    return codes


def test_every_error_code_the_code_can_raise_is_documented() -> None:
    raised = _codes_raised_in(api.__file__) | _codes_raised_in(core_links.__file__)
    assert {"unauthorized", "invalid_limit", "not_active", "invalid_text"} <= raised  # the scan finds them
    documented = set(api_models.ERROR_CODES)
    assert raised - documented == set()
    doc = build_document("http://x")
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:
                continue
            for status in ("401", "429", "500", "503"):
                assert status in operation["responses"], (method, path, status)


def test_pydantic_errors_name_the_field_with_a_dotted_path() -> None:
    from pydantic import ValidationError

    cases = {
        ("customer", "email"): {"description": "x", "amount": "1", "customer": {"email": 5}},
        ("customer", "nickname"): {"description": "x", "amount": "1", "customer": {"nickname": "a"}},
        ("metadata",): {"description": "x", "amount": "1", "metadata": {"k": 1}},
        ("description",): {"amount": "1"},
    }
    for loc, body in cases.items():
        with pytest.raises(ValidationError) as info:
            api_models.CreateLink.model_validate(body)
        code, message, field = api_models.first_error(info.value)
        assert field == ".".join(loc) and code in api_models.ERROR_CODES and message
