"""Helpers for the REST API tests: a client that checks every answer against the OpenAPI document.

Each response a test sees must have a status documented for its operation and a body that validates
against the documented schema, so the document cannot drift from what the API really does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from adapters.web.openapi import build_document
from tests.conftest import LiveApp

DOC_URI = "urn:paylinks-openapi"
_DEFAULT = object()


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    text: str
    body: Any

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and "error" in self.body, self.text
        return self.body["error"]  # type: ignore[no-any-return]


class OpenApiChecker:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^}/]+\}", "[^/]+", template) + "$"), template)
            for template in doc["paths"]
        ]

    def template_for(self, path: str) -> str | None:
        for pattern, template in self._paths:
            if pattern.match(path):
                return template
        return None

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def validate(self, schema_ref: dict[str, Any], instance: Any) -> None:
        # Inline schemas (the per-route error responses) point into the document too.
        schema = json.loads(json.dumps(schema_ref).replace('"$ref": "#/', f'"$ref": "{DOC_URI}#/'))
        validator = Draft202012Validator(
            schema, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors)

    def check_response(self, method: str, path: str, response: ApiResponse) -> None:
        template = self.template_for(path.partition("?")[0])
        operation = self.doc["paths"].get(template or "", {}).get(method.lower())
        if operation is None:
            # Unknown endpoint or method: still a JSON error of the documented shape.
            assert response.status in (404, 405), (method, path, response.status)
            self.validate({"$ref": "#/components/schemas/Error"}, response.body)
            return
        documented = operation["responses"]
        key = str(response.status)
        assert key in documented, f"{method} {template} answered {response.status}, not documented: {response.text}"
        spec = self._resolve(documented[key])
        content = spec.get("content", {}).get("application/json")
        assert content is not None, f"{method} {template} {key} has no JSON body documented"
        assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
        self.validate(content["schema"], response.body)
        for header in spec.get("headers", {}):
            assert header in response.headers, f"{method} {template} {key} lacks documented header {header}"

    def check_request(self, method: str, path: str, body: Any) -> None:
        """A body the API accepted must also be valid by the documented request schema."""
        operation = self.doc["paths"][self.template_for(path) or ""][method.lower()]
        self.validate(operation["requestBody"]["content"]["application/json"]["schema"], body)


class ApiClient:
    """The live app's test client, with a Bearer key and an OpenAPI check on every answer."""

    def __init__(self, live: LiveApp, key: str | None, checker: OpenApiChecker | None = None) -> None:
        self.live = live
        self.key = key
        self.checker = checker or OpenApiChecker(build_document(live.base_url))

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _DEFAULT,
        data: str | bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        key: Any = _DEFAULT,
    ) -> ApiResponse:
        key = self.key if key is _DEFAULT else key
        sent_headers = dict(headers or {})
        if key is not None:
            sent_headers.setdefault("Authorization", f"Bearer {key}")
        if json_body is not _DEFAULT:
            data = json.dumps(json_body)
            sent_headers.setdefault("Content-Type", "application/json")
        async with self.live.client.request(method, path, data=data, params=params, headers=sent_headers) as resp:
            text = await resp.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = None
            response = ApiResponse(resp.status, dict(resp.headers), text, body)
        assert "Traceback" not in text
        self.checker.check_response(method, path, response)
        if method == "POST" and path == "/api/v1/links" and response.status == 201 and json_body is not _DEFAULT:
            self.checker.check_request(method, path, json_body)
        return response

    async def create(self, body: dict[str, Any], **kw: Any) -> ApiResponse:
        return await self.request("POST", "/api/v1/links", json_body=body, **kw)

    async def get(self, path: str, **kw: Any) -> ApiResponse:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> ApiResponse:
        return await self.request("POST", path, **kw)


@dataclass
class Shop:
    merchant_id: str
    key: str
    api: ApiClient


async def make_shop(live: LiveApp, name: str = "Cake Shop", currency: str = "SGD", locale: str = "en_SG") -> Shop:
    merchant = await live.services.merchants.create(name, currency=currency, locale=locale)
    _, secret = await live.services.merchants.create_api_key(merchant.id, test=True)
    return Shop(merchant.id, secret, ApiClient(live, secret))


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)
