"""The OpenAPI 3.1 document of the REST API, generated from the pydantic models in api_models.

Schemas come from the models (pydantic's JSON Schema, draft 2020-12, which OpenAPI 3.1 uses); this module
adds the operations, their parameters, the error codes each route answers (api_models.ROUTE_ERRORS) and
the OpenAPI links between create, get and cancel (schemathesis follows them in its stateful tests).
tests/adapters/web/test_api_openapi.py checks the document both ways against the router and every response.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from adapters.web import api_models as m
from core import limits
from core.money import currency_codes

API_PREFIX = m.API_PREFIX
_REF = "#/components/schemas/"


def _clean(node: Any) -> Any:
    """Drop pydantic's titles and `default: null` on fields that are merely optional (absent ≠ null)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "title" and isinstance(value, str):
                continue
            if key == "default" and value is None:
                continue
            out[key] = _clean(value) if key not in ("properties", "$defs") else {
                name: _clean(sub) for name, sub in value.items()
            }
        return out
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return node


@cache
def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m.CreateLink, "validation"), (m.Link, "serialization"), (m.LinkList, "serialization"),
         (m.Error, "serialization"), (m.CreateWebhookEndpoint, "validation"),
         (m.WebhookEndpointOut, "serialization"), (m.WebhookEndpointCreated, "serialization"),
         (m.WebhookEndpointList, "serialization"), (m.WebhookDelivery, "serialization"),
         (m.WebhookDeliveryList, "serialization"), (m.CreateRefund, "validation"),
         (m.RefundOut, "serialization"), (m.EventList, "serialization"), (m.CreateSeries, "validation"),
         (m.Series, "serialization"), (m.SeriesList, "serialization"),
         (m.CreatePromoCode, "validation"), (m.PromoCodeOut, "serialization"), (m.PromoCodeList, "serialization")],
        ref_template=_REF + "{model}",
    )
    schemas: dict[str, Any] = _clean(top["$defs"])
    # pydantic states dict keys as patternProperties, which lets other keys through with any value;
    # the API refuses such keys, so say it with propertyNames.
    codes_in_either_case = [*currency_codes(), *(code.lower() for code in currency_codes())]
    for name in ("CreateLink", "CreateSeries"):
        metadata = schemas[name]["properties"]["metadata"]["anyOf"][0]
        (key_pattern, value_schema), = metadata.pop("patternProperties").items()
        metadata["propertyNames"]["pattern"] = key_pattern
        metadata["additionalProperties"] = value_schema
        schemas[name]["properties"]["currency"]["enum"] = codes_in_either_case
    schemas["CreatePromoCode"]["properties"]["currency"]["enum"] = codes_in_either_case
    codes = ", ".join(m.ERROR_CODES)
    schemas["ErrorDetail"]["properties"]["code"]["description"] = f"Stable machine-readable code: one of {codes}."
    return schemas


def _json(schema: str, description: str, headers: dict[str, Any] | None = None,
          links: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF + schema}}},
    }
    if headers:
        response["headers"] = headers
    if links:
        response["links"] = links
    return response


def _errors(operation_id: str) -> dict[str, Any]:
    """One response per error status, its `error.code` an enum of exactly the codes this route answers."""
    responses = {}
    for status, codes in sorted(m.errors_for(operation_id).items()):
        listed = "; ".join(f"`{code}`: {m.ERROR_CODES[code]}" for code in codes)
        schema = {"allOf": [
            {"$ref": _REF + "Error"},
            {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}},
        ]}
        response: dict[str, Any] = {"description": f"Error codes: {listed}",
                                    "content": {"application/json": {"schema": schema}}}
        if status in m.ERROR_HEADERS:
            response["headers"] = m.ERROR_HEADERS[status]
        responses[str(status)] = response
    return responses


def _link_links(from_body: str = "$response.body#/id") -> dict[str, Any]:
    return {
        "GetLink": {"operationId": "getLink", "parameters": {"id": from_body},
                    "description": "The link just returned."},
        "CancelLink": {"operationId": "cancelLink", "parameters": {"id": from_body},
                       "description": "Cancel the link just returned."},
    }


def _paths() -> dict[str, Any]:
    prefix = API_PREFIX
    link_id = {"name": "id", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": m.LINK_ID_PATTERN},
               "description": "The link's id (the last segment of its pay page URL)."}
    location = {"Location": {"schema": {"type": "string"}, "description": "Path of the link in this API."}}
    replayed = {"Idempotent-Replayed": {"schema": {"type": "string", "const": "true"}}}
    return {
        f"{prefix}/links": {
            "post": {
                "operationId": "createLink",
                "summary": "Create a payment link",
                "parameters": [{
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": m.MAX_IDEMPOTENCY_KEY,
                               "pattern": m.IDEMPOTENCY_KEY_PATTERN},
                    "description": "Retry safely: the same key with the same body returns the link created "
                    "first (status 200, header `Idempotent-Replayed: true`, same id); the same key with a "
                    "different body is a 409. Keys are per merchant and kept forever.",
                }],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": _REF + "CreateLink"}}},
                },
                "responses": {
                    "201": _json("Link", "Created.", location, _link_links()),
                    "200": _json("Link", "An Idempotency-Key replay: the link created first by the same key "
                                 "and body.", {**location, **replayed}, _link_links()),
                    **_errors("createLink"),
                },
            },
            "get": {
                "operationId": "listLinks",
                "summary": "List your links, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": [s.value for s in m.StatusFilter]},
                     "description": "Only links with this effective status; empty (`status=`) means all."},
                    {"name": "livemode", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["true", "false"]},
                     "description": "`true`: only live (real money) links; `false`: only test-mode links "
                                    "(sandbox, Stripe test keys, PortOne sandbox); absent: both."},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": m.MAX_LIMIT,
                                "default": m.DEFAULT_LIMIT}},
                    {"name": "cursor", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": m.LINK_ID_PATTERN},
                     "description": "`next_cursor` of the previous page (the id of a link of yours)."},
                ],
                "responses": {
                    "200": _json("LinkList", "One page of links."),
                    **_errors("listLinks"),
                },
            },
        },
        f"{prefix}/links/export.csv": {
            "get": {
                "operationId": "exportLinks",
                "summary": "Your links with their payments as CSV (streamed)",
                "description": "One row per payment and one for a link without payments, newest link first. "
                "UTF-8 with a BOM, RFC 4180 quoting; cells starting with = + - @ are prefixed with '. "
                "Columns (later versions append, never rename): " + ", ".join(m.EXPORT_COLUMNS) + ".",
                "parameters": [
                    {"name": "q", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "Words found in description, reference, customer name/email/phone or id."},
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": [s.value for s in m.StatusFilter]}},
                    {"name": "currency", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": "^[A-Za-z]{3}$"}},
                    {"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
                     "description": "Links made on or after this UTC day."},
                    {"name": "to", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
                     "description": "Links made on or before this UTC day."},
                    {"name": "origin", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,19}$"},
                     "description": "A chat platform's name (`telegram`, `slack`…) or `api`."},
                ],
                "responses": {
                    "200": {"description": "The CSV file.",
                            "content": {"text/csv": {"schema": {"type": "string"}}}},
                    **_errors("exportLinks"),
                },
            },
        },
        f"{prefix}/links/{{id}}": {
            "get": {
                "operationId": "getLink",
                "summary": "Get one of your links",
                "parameters": [link_id],
                "responses": {
                    "200": _json("Link", "The link, with its effective status.",
                                 links={"CancelLink": _link_links()["CancelLink"]}),
                    **_errors("getLink"),
                },
            },
        },
        f"{prefix}/links/{{id}}/cancel": {
            "post": {
                "operationId": "cancelLink",
                "summary": "Cancel an active link",
                "parameters": [link_id],
                "responses": {
                    "200": _json("Link", "Cancelled.", links={"GetLink": _link_links()["GetLink"]}),
                    **_errors("cancelLink"),
                },
            },
        },
        f"{prefix}/links/{{id}}/refund": {
            "post": {
                "operationId": "refundLink",
                "summary": "Refund a payment of the link, all of it or part",
                "description": "Reserves the amount and asks the payment provider at once. The answer's "
                "`status` is `pending` until the provider confirms it (`succeeded`; the link's "
                "`amount_refunded` then grows, and a link refunded in full reads `refunded`) or refuses it "
                "(`failed`, with the provider's reason). Several requests at once never refund more than "
                "was paid.",
                "parameters": [link_id, {
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": m.MAX_IDEMPOTENCY_KEY,
                               "pattern": m.IDEMPOTENCY_KEY_PATTERN},
                    "description": "Retry safely: the same key with the same body returns the refund made "
                    "first (status 200, `Idempotent-Replayed: true`); with a different body, a 409.",
                }],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": _REF + "CreateRefund"}}},
                },
                "responses": {
                    "201": _json("RefundOut", "Asked of the provider (see `status`)."),
                    "200": _json("RefundOut", "An Idempotency-Key replay: the refund made first.", replayed),
                    **_errors("refundLink"),
                },
            },
        },
        f"{prefix}/links/{{id}}/events": {
            "get": {
                "operationId": "listLinkEvents",
                "summary": "The link's timeline, oldest first",
                "parameters": [link_id],
                "responses": {
                    "200": _json("EventList", "What happened to the link, times in UTC."),
                    **_errors("listLinkEvents"),
                },
            },
        },
        **_webhook_paths(prefix),
        **_series_paths(prefix),
        **_promo_paths(prefix),
        f"{prefix}/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {"description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                },
            },
        },
    }


def _series_paths(prefix: str) -> dict[str, Any]:
    series_id = {"name": "id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": m.SERIES_ID_PATTERN}, "description": "The series' id."}
    follow = {"GetSeries": {"operationId": "getSeries", "parameters": {"id": "$response.body#/id"},
                            "description": "The series just returned."},
              "CancelSeries": {"operationId": "cancelSeries", "parameters": {"id": "$response.body#/id"},
                               "description": "Cancel the series just returned."}}
    return {
        f"{prefix}/series": {
            "post": {
                "operationId": "createSeries",
                "summary": "Create a recurring charge: a new link each period, sent to the customer",
                "description": "Each period (see `schedule`) a link is made from the body's link fields and sent "
                "to the customer like any link (WhatsApp, SMS, email as available); a worker that was down "
                "makes each missed period's link once, late. The first link is made at `start_at` (now by "
                "default).",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": {"$ref": _REF + "CreateSeries"}}}},
                "responses": {"201": _json("Series", "Created.", links=follow), **_errors("createSeries")},
            },
            "get": {
                "operationId": "listSeries",
                "summary": "List your series, newest first",
                "responses": {"200": _json("SeriesList", "Your series."), **_errors("listSeries")},
            },
        },
        f"{prefix}/series/{{id}}": {
            "get": {
                "operationId": "getSeries", "summary": "Get one series with the links it made",
                "parameters": [series_id],
                "responses": {"200": _json("Series", "The series."), **_errors("getSeries")},
            },
        },
        f"{prefix}/series/{{id}}/cancel": {
            "post": {
                "operationId": "cancelSeries", "summary": "Stop a series: no further links are made",
                "description": "Links already made stay as they are (cancel them one by one if needed).",
                "parameters": [series_id],
                "responses": {"200": _json("Series", "Cancelled."), **_errors("cancelSeries")},
            },
        },
    }


def _promo_paths(prefix: str) -> dict[str, Any]:
    base = f"{prefix}/promo_codes"
    code = {"name": "code", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": m.PROMO_CODE_PATTERN},
            "description": "The code (case-insensitive)."}
    return {
        base: {
            "post": {
                "operationId": "createPromoCode",
                "summary": "Create a promo code",
                "description": "Customers type it in the pay page's \"Promo code\" field; the discounted amount "
                "is what the provider charges and what the payment records. A redemption is held while its "
                "checkout is open and counted when it is paid, so `max_redemptions` is never passed.",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": _REF + "CreatePromoCode"}}}},
                "responses": {"201": _json("PromoCodeOut", "Created."), **_errors("createPromoCode")},
            },
            "get": {
                "operationId": "listPromoCodes",
                "summary": "List your promo codes",
                "responses": {"200": _json("PromoCodeList", "Newest first."), **_errors("listPromoCodes")},
            },
        },
        f"{base}/{{code}}": {
            "get": {
                "operationId": "getPromoCode", "summary": "Get one promo code", "parameters": [code],
                "responses": {"200": _json("PromoCodeOut", "The code."), **_errors("getPromoCode")},
            },
            "delete": {
                "operationId": "deletePromoCode", "summary": "Delete a promo code (checkouts holding it keep it)",
                "parameters": [code],
                "responses": {"200": _json("PromoCodeOut", "The code as it was."), **_errors("deletePromoCode")},
            },
        },
    }


def _webhook_paths(prefix: str) -> dict[str, Any]:
    endpoint_id = {"name": "id", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": m.WEBHOOK_ENDPOINT_ID_PATTERN},
                   "description": "The webhook endpoint's id."}
    delivery_id = {"name": "delivery_id", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": m.DELIVERY_ID_PATTERN},
                   "description": "A delivery's id (from the deliveries list)."}
    base = f"{prefix}/webhook_endpoints"
    return {
        base: {
            "post": {
                "operationId": "createWebhookEndpoint",
                "summary": "Add a webhook endpoint; its signing secret is in this answer only",
                "description": "Events are POSTed as `{\"id\", \"type\", \"timestamp\", \"data\"}` (`data`: the "
                "link as this API returns it; payment events add `data.payment`), signed per Standard Webhooks "
                "(`webhook-id`, `webhook-timestamp`, `webhook-signature`). Failed deliveries are retried with "
                "backoff for [webhooks] max_age (3 days); events for one link arrive in order.",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": _REF + "CreateWebhookEndpoint"}}}},
                "responses": {"201": _json("WebhookEndpointCreated", "Created."),
                              **_errors("createWebhookEndpoint")},
            },
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "List your webhook endpoints",
                "responses": {"200": _json("WebhookEndpointList", "Every endpoint of yours, oldest first."),
                              **_errors("listWebhookEndpoints")},
            },
        },
        f"{base}/{{id}}": {
            "get": {
                "operationId": "getWebhookEndpoint", "summary": "Get one webhook endpoint",
                "parameters": [endpoint_id],
                "responses": {"200": _json("WebhookEndpointOut", "The endpoint."), **_errors("getWebhookEndpoint")},
            },
            "delete": {
                "operationId": "deleteWebhookEndpoint", "summary": "Delete a webhook endpoint",
                "parameters": [endpoint_id],
                "responses": {"200": _json("WebhookEndpointOut", "Deleted; its waiting deliveries are dropped."),
                              **_errors("deleteWebhookEndpoint")},
            },
        },
        f"{base}/{{id}}/test": {
            "post": {
                "operationId": "testWebhookEndpoint", "summary": "Send a `webhook.test` event to this endpoint",
                "parameters": [endpoint_id],
                "responses": {"202": _json("WebhookDelivery", "Queued; the delivery shows how it went."),
                              **_errors("testWebhookEndpoint")},
            },
        },
        f"{base}/{{id}}/deliveries": {
            "get": {
                "operationId": "listWebhookDeliveries", "summary": "This endpoint's deliveries, newest first",
                "parameters": [endpoint_id],
                "responses": {"200": _json("WebhookDeliveryList", "The latest 50 deliveries."),
                              **_errors("listWebhookDeliveries")},
            },
        },
        f"{base}/{{id}}/deliveries/{{delivery_id}}/resend": {
            "post": {
                "operationId": "resendWebhookDelivery",
                "summary": "Deliver again now (same webhook-id); enables a disabled endpoint",
                "parameters": [endpoint_id, delivery_id],
                "responses": {"202": _json("WebhookDelivery", "Queued again."), **_errors("resendWebhookDelivery")},
            },
        },
    }


def build_document(public_base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "paylinks API",
            "version": "1.0.0",
            "description": (
                "Payment links for your own systems. Authenticate with `Authorization: Bearer <key>` "
                "(`paylinks apikey create --merchant ID`); a key revoked with `paylinks apikey revoke` is "
                "refused from the next request on. Errors are "
                "`{\"error\": {\"code\", \"message\", \"field\"}}`; `field` names what to fix (dotted for "
                "nested fields: `customer.email`). Money is never a JSON number with a fraction: send "
                "`amount` as a string or `amount_minor` as an integer. Links expire at most "
                f"{limits.MAX_EXPIRY.days} days after creation."
            ),
        },
        "servers": [{"url": public_base_url.rstrip("/")}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": copy.deepcopy(_schemas()),
        },
    }
