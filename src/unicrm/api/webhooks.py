"""`/webhook` routes (Truto's shape): the operator's endpoints for account events, per environment.

`POST /webhook {"target_url", "event_types"?, "is_active"?}` answers the webhook with its
`secret` (shown once); `GET /webhook[/{id}]`, `PATCH`, `DELETE`; and
`GET /webhook/{id}/deliveries` lists recent deliveries with their outcome.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unicrm.api.admin import _json_body
from unicrm.api.openapi import JSON, Doc, Reply, documented, register_schemas
from unicrm.api.responses import JSONResponse
from unicrm.api.state import AppState
from unicrm.engine.errors import bad_request, not_found
from unicrm.outbound.policy import is_ip_literal, is_public
from unicrm.store.webhooks import EVENT_TYPES, Webhook

TAG = "Webhooks"
ERRORS = (400, 401, 404, 413, 500)
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The webhook's id",
    "schema": {"type": "string", "format": "uuid"},
}
_FIELDS = {
    "target_url": {"type": "string", "format": "uri", "description": "http(s) URL the events are posted to"},
    "event_types": {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}},
    "is_active": {"type": "boolean"},
}
register_schemas(
    {
        "Webhook": {
            "type": "object",
            "required": ["id", "target_url", "is_active", "event_types", "environment_id", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                **_FIELDS,
                "environment_id": {"type": "string"},
                "created_at": {"type": ["string", "null"], "format": "date-time"},
                "updated_at": {"type": ["string", "null"], "format": "date-time"},
                "secret": {"type": "string", "description": "the signing secret: only in the answer to the create"},
            },
            "additionalProperties": False,
        },
        "WebhookList": {
            "type": "object",
            "required": ["result", "next_cursor", "limit"],
            "properties": {
                "result": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}},
                "next_cursor": {"type": "null"},
                "limit": {"type": "integer"},
            },
        },
        "WebhookCreate": {
            "type": "object",
            "required": ["target_url"],
            "properties": _FIELDS,
            "additionalProperties": False,
            "example": {"target_url": "https://app.example.com/unicrm-events", "event_types": ["integrated_account:created"]},
        },
        "WebhookPatch": {"type": "object", "properties": _FIELDS, "additionalProperties": False},
        "WebhookDeliveryList": {
            "type": "object",
            "required": ["result", "next_cursor", "limit"],
            "properties": {
                "result": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "event_id": {"type": "string"},
                            "event": {"type": "string"},
                            "status": {"type": "string"},
                            "attempts": {"type": "integer"},
                            "last_status_code": {"type": ["integer", "null"]},
                            "last_error": {"type": ["string", "null"]},
                            "next_attempt_at": {"type": ["string", "null"]},
                            "created_at": {"type": ["string", "null"]},
                            "delivered_at": {"type": ["string", "null"]},
                        },
                    },
                },
                "next_cursor": {"type": "null"},
                "limit": {"type": "integer"},
            },
        },
    }
)


def _state(request: Request) -> AppState:
    return request.app.state.unicrm


def check_target_url(value: Any, state: AppState | None = None) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
        raise bad_request(f"target_url must be an absolute http or https URL; got {value!r}.")
    host = urlsplit(value).hostname or ""
    if state is not None and is_ip_literal(host) and not is_public(host.strip("[]")) and not state.sender.allows_private(value):
        raise bad_request(
            f"target_url points at a non-public address ({host}); allow its origin with --allow-origin "
            "(or UNICRM_WEBHOOK_PRIVATE_TARGETS=1 for local receivers)."
        )
    return value


def check_event_types(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request("event_types must be a list of event names.")
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        raise bad_request(f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}.")
    return value or None


async def _owned(request: Request) -> tuple[str, Webhook]:
    state = _state(request)
    environment = await state.auth.environment_of(request)
    try:
        webhook_id = str(uuid.UUID(request.path_params["id"]))
    except ValueError:
        raise bad_request(f"The webhook id must be a UUID; got {request.path_params['id']!r}.") from None
    webhook = await state.webhooks.get(webhook_id, environment)
    if webhook is None:
        raise not_found("No such webhook in this environment.")
    return environment, webhook


@documented(
    Doc(
        "createWebhook",
        "Register a webhook for account events (answers its signing secret, once)",
        TAG,
        body="WebhookCreate",
        replies={201: Reply("The webhook with its secret", {JSON: "Webhook"})},
        errors=ERRORS,
    )
)
async def create_webhook(request: Request) -> Response:
    state = _state(request)
    environment = await state.auth.environment_of(request)
    body = await _json_body(request)
    unknown = sorted(set(body) - {"target_url", "event_types", "is_active"})
    if unknown:
        raise bad_request(f"Unknown webhook field(s): {', '.join(unknown)}. Allowed: target_url, event_types, is_active.")
    is_active = body.get("is_active", True)
    if not isinstance(is_active, bool):
        raise bad_request("is_active must be true or false.")
    webhook = await state.webhooks.create(
        environment, check_target_url(body.get("target_url"), state), check_event_types(body.get("event_types")), is_active
    )
    return JSONResponse(webhook.document(with_secret=True), status_code=201)


@documented(
    Doc(
        "listWebhooks",
        "List webhooks",
        TAG,
        replies={200: Reply("The environment's webhooks", {JSON: "WebhookList"})},
        errors=ERRORS,
    )
)
async def list_webhooks(request: Request) -> Response:
    state = _state(request)
    environment = await state.auth.environment_of(request)
    result = [w.document() for w in await state.webhooks.all(environment)]
    return JSONResponse({"result": result, "next_cursor": None, "limit": len(result)})


@documented(
    Doc("getWebhook", "Get a webhook", TAG, params=(_ID,), replies={200: Reply("The webhook", {JSON: "Webhook"})}, errors=ERRORS)
)
async def get_webhook(request: Request) -> Response:
    _, webhook = await _owned(request)
    return JSONResponse(webhook.document())


@documented(
    Doc(
        "updateWebhook",
        "Update a webhook",
        TAG,
        params=(_ID,),
        body="WebhookPatch",
        replies={200: Reply("The webhook", {JSON: "Webhook"})},
        errors=ERRORS,
    )
)
async def update_webhook(request: Request) -> Response:
    environment, webhook = await _owned(request)
    body = await _json_body(request)
    unknown = sorted(set(body) - {"target_url", "event_types", "is_active"})
    if unknown:
        raise bad_request(f"Only target_url, event_types and is_active can be changed; got {', '.join(unknown)}.")
    is_active = body.get("is_active")
    if is_active is not None and not isinstance(is_active, bool):
        raise bad_request("is_active must be true or false.")
    updated = await _state(request).webhooks.update(
        webhook.id,
        environment,
        target_url=check_target_url(body["target_url"], _state(request)) if "target_url" in body else None,
        event_types=check_event_types(body["event_types"]) if "event_types" in body else ...,
        is_active=is_active,
    )
    if updated is None:
        raise not_found("No such webhook in this environment.")
    return JSONResponse(updated.document())


@documented(
    Doc(
        "deleteWebhook", "Delete a webhook", TAG, params=(_ID,), replies={200: Reply("Deleted", {JSON: "Deleted"})}, errors=ERRORS
    )
)
async def delete_webhook(request: Request) -> Response:
    environment, webhook = await _owned(request)
    await _state(request).webhooks.delete(webhook.id, environment)
    return JSONResponse({"id": webhook.id})


@documented(
    Doc(
        "listWebhookDeliveries",
        "Recent deliveries of a webhook and their outcome",
        TAG,
        params=(
            _ID,
            {
                "name": "limit",
                "in": "query",
                "description": "How many (default 50)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 500},
            },
        ),
        replies={200: Reply("Deliveries, newest first", {JSON: "WebhookDeliveryList"})},
        errors=ERRORS,
    )
)
async def list_deliveries(request: Request) -> Response:
    _, webhook = await _owned(request)
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise bad_request(f"limit must be a whole number from 1 to 500; got {raw!r}.")
    result = await _state(request).webhooks.deliveries(webhook.id, int(raw))
    return JSONResponse({"result": result, "next_cursor": None, "limit": int(raw)})


ROUTES = [
    Route("/webhook", list_webhooks, methods=["GET"]),
    Route("/webhook", create_webhook, methods=["POST"]),
    Route("/webhook/{id}", get_webhook, methods=["GET"]),
    Route("/webhook/{id}", update_webhook, methods=["PATCH"]),
    Route("/webhook/{id}", delete_webhook, methods=["DELETE"]),
    Route("/webhook/{id}/deliveries", list_deliveries, methods=["GET"]),
]
