"""The OpenAPI 3.1 document of the REST API, built from the same limits the handlers enforce.

tests/adapters/web/test_api_openapi.py checks it both ways: every route exists in the document (and the
other way round), and every response the tests see validates against the schema documented for it.
"""

from __future__ import annotations

from typing import Any

from adapters.web import api
from core.models import LinkStatus

_REF = "#/components/schemas/"
_RESPONSES = "#/components/responses/"

_DATE_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC (`…Z`)"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def _json(schema_ref: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF + schema_ref}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


def _schemas() -> dict[str, Any]:
    statuses = [s.value for s in LinkStatus]
    customer_out = {
        "type": "object",
        "required": ["name", "email", "phone"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
            "phone": {"type": ["string", "null"], "description": "E.164, e.g. +6591234567"},
        },
    }
    metadata = {
        "type": "object",
        "maxProperties": api.MAX_METADATA_KEYS,
        "propertyNames": {"minLength": 1, "maxLength": api.MAX_METADATA_KEY},
        "additionalProperties": {"type": "string", "maxLength": api.MAX_METADATA_VALUE},
        "description": "Your own string key/value pairs, returned unchanged.",
    }
    return {
        "Link": {
            "type": "object",
            "required": [
                "id", "url", "status", "amount", "amount_minor", "currency", "description", "reference",
                "customer", "metadata", "created_at", "expires_at", "paid_at", "cancelled_at",
            ],
            "additionalProperties": False,
            "properties": {
                "id": {
                    "type": "string",
                    "pattern": "^[a-z2-7]{26,}$",
                    "description": "Public id (≥128 random bits); also the last segment of `url`.",
                },
                "url": {"type": "string", "format": "uri", "description": "`{public_base_url}/p/{id}`: the pay page."},
                "status": {
                    "type": "string",
                    "enum": statuses,
                    "description": "The effective status: an active link past `expires_at` reads `expired`.",
                },
                "amount": {
                    "type": "string",
                    "pattern": r"^[0-9]+(\.[0-9]+)?$",
                    "description": "Decimal string with the currency's ISO 4217 decimals (\"25.00\", \"1200\" JPY).",
                },
                "amount_minor": {"type": "integer", "minimum": 1},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "description": {"type": "string"},
                "reference": {"type": ["string", "null"]},
                "customer": customer_out,
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "created_at": _DATE_TIME,
                "expires_at": _DATE_TIME,
                "paid_at": _nullable(_DATE_TIME),
                "cancelled_at": _nullable(_DATE_TIME),
            },
        },
        "LinkList": {
            "type": "object",
            "required": ["data", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "data": {"type": "array", "items": {"$ref": _REF + "Link"}},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as `cursor` for the next (older) page; null on the last page.",
                },
            },
        },
        "CreateLink": {
            "type": "object",
            "additionalProperties": False,
            "required": ["description"],
            "description": "Exactly one of `amount` and `amount_minor`; at most one of `expires_at` and "
            "`expires_in`. Unknown fields are refused (400 naming the field).",
            "properties": {
                "amount": {
                    "type": "string",
                    "pattern": r"^[0-9]{1,20}(\.[0-9]{1,20})?$",
                    "description": "Decimal string, e.g. \"25.00\". JSON numbers are refused (400) so no "
                    "float ever rounds money. More decimals than the currency has (ISO 4217) is a 400.",
                    "examples": ["25.00"],
                },
                "amount_minor": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Integer count of minor units (2500 = 25.00 SGD; 1200 = ¥1200).",
                },
                "currency": {
                    "type": "string",
                    "description": "ISO 4217 code; default: the merchant's default currency.",
                    "examples": ["SGD"],
                },
                "description": {"type": "string", "minLength": 1, "maxLength": api.MAX_DESCRIPTION},
                "reference": {"type": ["string", "null"], "maxLength": api.MAX_REFERENCE,
                              "description": "Your own order number or similar."},
                "expires_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "ISO 8601 with a UTC offset, in the future and at most "
                    f"{api.MAX_EXPIRY.days} days away. Default: now + links.default_expiry (7 days).",
                },
                "expires_in": {
                    "type": "string",
                    "pattern": r"^\s*[0-9]{1,6}\s*[smhdwSMHDW]\s*$",
                    "description": f"A duration such as \"30m\", \"2h\", \"3d\", \"1w\" (at most "
                    f"{api.MAX_EXPIRY.days} days).",
                },
                "customer": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": ["string", "null"], "maxLength": api.MAX_CUSTOMER_NAME},
                        "email": {"type": ["string", "null"], "format": "email",
                                  "maxLength": api.MAX_CUSTOMER_EMAIL},
                        "phone": {"type": ["string", "null"], "maxLength": api.MAX_CUSTOMER_PHONE,
                                  "description": "International format (+6591234567); stored as E.164."},
                    },
                },
                "metadata": {**metadata, "type": ["object", "null"]},
            },
            "examples": [{"amount": "25.00", "currency": "SGD", "description": "Chocolate cake",
                          "reference": "order-1042", "expires_in": "3d",
                          "customer": {"name": "Ana", "email": "ana@example.com", "phone": "+6591234567"},
                          "metadata": {"order_id": "1042"}}],
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "field"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {
                            "type": "string",
                            "description": "Stable machine-readable code, e.g. invalid_json, invalid_type, "
                            "missing_field, unknown_field, invalid_amount, amount_too_large, invalid_currency, "
                            "invalid_expiry, too_long, invalid_email, invalid_phone, invalid_metadata, "
                            "too_many_keys, invalid_idempotency_key, idempotency_conflict, invalid_status, "
                            "invalid_limit, invalid_cursor, unauthorized, not_found, not_active, "
                            "method_not_allowed, body_too_large, internal_error.",
                        },
                        "message": {"type": "string", "description": "For people; may change."},
                        "field": {
                            "type": ["string", "null"],
                            "description": "The field, query parameter or header at fault (`amount`, "
                            "`customer.email`, `limit`, `Idempotency-Key`, `Authorization`, `body`…).",
                        },
                    },
                }
            },
        },
    }


def build_document(public_base_url: str) -> dict[str, Any]:
    prefix = api.API_PREFIX
    link_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "The link's id (the last segment of its pay page URL)."}
    location = {"Location": {"schema": {"type": "string"}, "description": "Path of the link in this API."}}
    authed_errors = {
        "401": {"$ref": _RESPONSES + "Unauthorized"},
        "500": {"$ref": _RESPONSES + "InternalError"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "paylinks API",
            "version": "1.0.0",
            "description": (
                "Payment links for your own systems. Authenticate with `Authorization: Bearer <key>` "
                "(`paylinks apikey create --merchant ID`); a key revoked with `paylinks apikey revoke` is "
                "refused from the next request on. Errors are "
                "`{\"error\": {\"code\", \"message\", \"field\"}}`; `field` names what to fix. Money is "
                "never a JSON number with a fraction: send `amount` as a string or `amount_minor` as an integer."
            ),
        },
        "servers": [{"url": public_base_url.rstrip("/")}],
        "security": [{"bearerAuth": []}],
        "paths": {
            f"{prefix}/links": {
                "post": {
                    "operationId": "createLink",
                    "summary": "Create a payment link",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": api.MAX_IDEMPOTENCY_KEY},
                            "description": "Retry safely: the same key with the same body returns the link "
                            "created first (status 200, header `Idempotent-Replayed: true`, same id); the same "
                            "key with a different body is a 409. Keys are per merchant and kept forever.",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": _REF + "CreateLink"}}},
                    },
                    "responses": {
                        "201": _json("Link", "Created.", location),
                        "200": _json(
                            "Link",
                            "An Idempotency-Key replay: the link created first by the same key and body.",
                            {**location, "Idempotent-Replayed": {"schema": {"type": "string", "const": "true"}}},
                        ),
                        "400": {"$ref": _RESPONSES + "BadRequest"},
                        "409": _error("The Idempotency-Key was used before with a different body."),
                        "413": _error(f"The body is larger than {api.MAX_BODY_BYTES} bytes."),
                        **authed_errors,
                    },
                },
                "get": {
                    "operationId": "listLinks",
                    "summary": "List your links, newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": [s.value for s in LinkStatus]}},
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": api.MAX_LIMIT,
                                    "default": api.DEFAULT_LIMIT}},
                        {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
                         "description": "`next_cursor` of the previous page."},
                    ],
                    "responses": {
                        "200": _json("LinkList", "One page of links."),
                        "400": {"$ref": _RESPONSES + "BadRequest"},
                        **authed_errors,
                    },
                },
            },
            f"{prefix}/links/{{id}}": {
                "get": {
                    "operationId": "getLink",
                    "summary": "Get one of your links",
                    "parameters": [link_id],
                    "responses": {
                        "200": _json("Link", "The link, with its effective status."),
                        "404": {"$ref": _RESPONSES + "NotFound"},
                        **authed_errors,
                    },
                },
            },
            f"{prefix}/links/{{id}}/cancel": {
                "post": {
                    "operationId": "cancelLink",
                    "summary": "Cancel an active link",
                    "parameters": [link_id],
                    "responses": {
                        "200": _json("Link", "Cancelled."),
                        "404": {"$ref": _RESPONSES + "NotFound"},
                        "409": _error("The link is not active (already paid, expired or cancelled)."),
                        **authed_errors,
                    },
                },
            },
            f"{prefix}/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
            "responses": {
                "BadRequest": _error("Invalid input; `error.field` names the field, parameter or header."),
                "Unauthorized": _error("Missing, malformed, unknown or revoked API key."),
                "NotFound": _error("No such link among yours (another merchant's link is not found either)."),
                "InternalError": _error("Unexpected failure; the message carries an error id for the logs."),
            },
        },
    }
