"""The OpenAPI 3.1 document, generated from the routes and the unified model.

Each handler carries its `Doc` (set with `@documented(...)` next to the handler); the document
is built by walking the application's routes, so a new route is in the document as soon as it
has a `Doc`, and a route without one is reported by the tests. Schemas come from the unified
model (`unicrm.model.RESOURCES`) and the declarations (integration names, the operations
each resource has somewhere), never spelled twice. A handler that serves many paths (one
generic route for every unified resource, the proxy) gives its `Doc` `variants`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from unicrm import __version__
from unicrm.engine.options import FILTER_OPS, FORMATS, MAX_LIMIT
from unicrm.model import OPERATIONS, RESOURCES, ResourceModel, UnifiedField, field_schema
from unicrm.providers import all_providers

JSON = "application/json"
NDJSON = "application/x-ndjson"
F = TypeVar("F", bound=Callable[..., Any])


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class Reply:
    """One documented answer: a description, its content by media type, its headers."""

    description: str
    content: Mapping[str, Any] = field(default_factory=dict)  # media type -> component name or schema
    headers: tuple[str, ...] = ()
    example: Any = None


@dataclass(frozen=True)
class Doc:
    """What the OpenAPI document says about one operation (one handler)."""

    operation_id: str
    summary: str
    tag: str
    description: str = ""
    #: names from the parameter catalogue, or whole parameter objects
    params: tuple[str | dict[str, Any], ...] = ()
    body: str | dict[str, Any] | None = None  # component name (or schema) of the request body
    body_example: Any = None
    body_media: str = "application/json"
    replies: Mapping[int | str, Reply] = field(default_factory=dict)
    errors: tuple[int | str, ...] = ()
    auth: bool = True
    #: For a handler that serves several documented paths (a generic `{resource}` route, the
    #: proxy): given the route's path and method, the (path, method, Doc) triples to document.
    variants: Callable[[str, str], Iterable[tuple[str, str, Doc]]] | None = None


#: Component schemas that route modules declare next to their handlers (`register_schemas`).
EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {}


def register_schemas(schemas: Mapping[str, dict[str, Any]]) -> None:
    """Add component schemas to the document (a route module's own answer and body shapes)."""
    EXTRA_SCHEMAS.update(schemas)


def documented(doc: Doc) -> Callable[[F], F]:
    """Attach the operation's documentation to a handler."""

    def mark(handler: F) -> F:
        handler.__openapi__ = doc  # type: ignore[attr-defined]
        return handler

    return mark


def doc_of(endpoint: Any) -> Doc | None:
    return getattr(endpoint, "__openapi__", None)


# ---------------------------------------------------------------------------- parameters
ERROR_TEXT: dict[int | str, str] = {
    400: "The request is invalid; `message` says what to change (and `truto_error_insight` which fields)",
    401: "Missing or invalid API token, or the account's credentials were rejected by the provider",
    403: "The provider refused access to this account",
    404: "No such route, account or record",
    405: "The integration does not support this method",
    409: "A request with the same Idempotency-Key is still in progress",
    410: "The link expired or was already used",
    413: "The request body is too large",
    414: "The query string is too long",
    415: "The request body is not JSON",
    422: "The Idempotency-Key was used with a different request, or the provider rejected the values",
    429: "The provider is rate limiting this account; retry after `Retry-After` seconds",
    500: "An unexpected error in unicrm (it is logged with the request id)",
    502: "The provider failed or answered something unreadable (`truto_is_remote_error`)",
    503: "Not ready: the database is unreachable or not migrated",
    504: "The provider did not answer in time",
    "4XX": "Another provider rejection, passed through with the provider's status",
}
ALWAYS_ERRORS: tuple[int | str, ...] = (400, 413, 414, 500)
UNIFIED_ERRORS: tuple[int | str, ...] = (400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 502, 504, "4XX")
ADMIN_ERRORS: tuple[int | str, ...] = (400, 401, 404, 413, 500)

HEADERS: dict[str, dict[str, Any]] = {
    "x-request-id": {
        "description": "The request's id (the client's own `x-request-id` if it sent a sane one); it is in the log line",
        "schema": {"type": "string"},
    },
    "ratelimit-limit": {"description": "The provider's request quota, `N;w=<window seconds>`", "schema": {"type": "string"}},
    "ratelimit-remaining": {"description": "Requests left in the provider's window", "schema": {"type": "string"}},
    "ratelimit-reset": {"description": "Seconds until the provider's window resets", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}},
    "idempotent-replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def _parameters() -> dict[str, dict[str, Any]]:
    date_filter = {
        "type": "object",
        "properties": {op: {"type": "string", "format": "date-time"} for op in FILTER_OPS},
        "additionalProperties": False,
    }
    boolean = {"type": "boolean"}
    return {
        "integrated_account_id": {
            "in": "query",
            "required": True,
            "description": "The integrated account to call (GET /integrated-account lists them)",
            "schema": {"type": "string", "format": "uuid"},
            "example": "3f0c9a4e-7a51-4c0e-9d55-8a1f2b6c7d90",
        },
        "truto_response_format": {
            "in": "query",
            "description": "unified (default), normalized (every field, coerced, no remote_data), raw (the provider's "
            "answer), stream (lists only: NDJSON of every page), debug (unified plus the provider exchanges)",
            "schema": {"type": "string", "enum": list(FORMATS), "default": "unified"},
        },
        "truto_ignore_remote_data": {"in": "query", "description": "Leave remote_data out", "schema": boolean},
        "truto_exclude_fields": {
            "in": "query",
            "description": "Fields to leave out, by name or dotted path (`owner.name`); repeat or use `[]`",
            "schema": {"type": "array", "items": {"type": "string"}},
            "style": "form",
            "explode": True,
        },
        "truto_skip_api_call": {
            "in": "query",
            "description": "Dry run: validate and map, call nothing, answer 200 with the request that would be sent",
            "schema": boolean,
        },
        "truto_key_by": {
            "in": "query",
            "description": "Answer `result` as an object keyed by this field's value",
            "schema": {"type": "string"},
        },
        "truto_ignore_limit": {"in": "query", "description": "Use the provider's default page size", "schema": boolean},
        "limit": {
            "in": "query",
            "description": "Page size (capped at the provider's maximum, see meta)",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        },
        "next_cursor": {
            "in": "query",
            "description": "The `next_cursor` of the previous page (opaque, signed, bound to the account and filters)",
            "schema": {"type": "string"},
        },
        "remote_query": {
            "in": "query",
            "style": "deepObject",
            "explode": True,
            "description": "Parameters passed to the provider as they are: `remote_query[param]=value`",
            "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "updated_at": {
            "in": "query",
            "style": "deepObject",
            "explode": True,
            "description": "Incremental filter: `updated_at[gt|gte|lt|lte]=<ISO 8601>` (native or applied by unicrm, see meta)",
            "schema": date_filter,
        },
        "created_at": {
            "in": "query",
            "style": "deepObject",
            "explode": True,
            "description": "Incremental filter: `created_at[gt|gte|lt|lte]=<ISO 8601>`",
            "schema": date_filter,
        },
        "Idempotency-Key": {
            "in": "header",
            "description": "Makes a write safe to retry: a repeat with the same key and request replays the first answer",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        },
        "x-request-id": {
            "in": "header",
            "description": "Your own request id (8-128 of `A-Za-z0-9._:-`), echoed and logged; otherwise one is made",
            "schema": {"type": "string"},
        },
        "id": {"in": "path", "required": True, "description": "The record's id", "schema": {"type": "string"}},
        "account_id": {
            "in": "path",
            "name": "id",
            "required": True,
            "description": "The integrated account's id",
            "schema": {"type": "string", "format": "uuid"},
        },
        "method": {
            "in": "path",
            "required": True,
            "description": "The unified method",
            "schema": {"type": "string", "enum": list(OPERATIONS)},
        },
        "integration": {
            "in": "path",
            "required": True,
            "description": "The integration's name",
            "schema": {"type": "string", "enum": sorted(all_providers())},
        },
        "integration_name": {
            "in": "path",
            "name": "name",
            "required": True,
            "description": "The integration's name",
            "schema": {"type": "string", "enum": sorted(all_providers())},
        },
        "account_limit": {
            "in": "query",
            "name": "limit",
            "description": "Page size",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        },
        "account_cursor": {
            "in": "query",
            "name": "next_cursor",
            "description": "The `next_cursor` of the previous page",
            "schema": {"type": "string"},
        },
        "filter_integration_name": {
            "in": "query",
            "name": "integration_name",
            "description": "Only accounts of this integration (Truto's `integration[name]` works too)",
            "schema": {"type": "string"},
        },
        "tenant_id": {"in": "query", "description": "Only accounts of this tenant", "schema": {"type": "string"}},
        "asset": {
            "in": "path",
            "required": True,
            "description": "A file name of the bundled Swagger UI",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
        },
    }


UNIFIED_QUERY = (
    "integrated_account_id",
    "truto_response_format",
    "truto_ignore_remote_data",
    "truto_exclude_fields",
    "truto_skip_api_call",
    "remote_query",
)
LIST_QUERY = (*UNIFIED_QUERY, "truto_key_by", "truto_ignore_limit", "limit", "next_cursor", "updated_at", "created_at")


# ---------------------------------------------------------------------------- schemas
def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema, also allowing null."""
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        out["type"] = [*kind, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


REF_OUT = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": ["string", "null"]}},
    "additionalProperties": False,
}
REF_IN = {
    "type": "object",
    "properties": {"id": {"type": ["string", "integer"]}, "name": {"type": "string"}},
    "description": 'A reference: {"id": "..."} (tags may be given by {"name": "..."})',
}


def _field_schema(f: UnifiedField, *, request: bool) -> dict[str, Any]:
    refs = {"x-references": f"{f.references}.id"} if f.references else {}
    if f.kind == "ref":
        return nullable(REF_IN if request else REF_OUT) | refs
    if f.kind == "ref_list":
        return nullable({"type": "array", "items": REF_IN if request else REF_OUT}) | refs
    return nullable(field_schema(f))


EXAMPLE_PROJECT: dict[str, Any] = {
    "id": "1042",
    "name": "Website redesign",
    "description": "New public site and CMS migration",
    "amount": 12500,
    "currency": "EUR",
    "close_date": "2026-03-31T00:00:00.000Z",
    "status": "in progress",
    "owner": {"id": "7", "name": "Ada Lovelace"},
    "account": {"id": "311", "name": "Acme Ltd"},
    "contact": [{"id": "912", "name": "Grace Hopper"}],
    "opportunity": [{"id": "55", "name": "Acme website"}],
    "stage": {"id": "3", "name": "Delivery"},
    "tags": [{"id": "4", "name": "web"}],
    "custom_fields": {"po_number": "PO-1187"},
    "created_at": "2026-01-12T09:30:00.000Z",
    "updated_at": "2026-02-02T16:05:11.000Z",
    "last_activity_at": "2026-02-02T16:05:11.000Z",
    "remote_data": {"id": 1042, "name": "Website redesign"},
}
EXAMPLE_BODY: dict[str, Any] = {
    "name": "Website redesign",
    "description": "New public site and CMS migration",
    "amount": 12500,
    "currency": "EUR",
    "close_date": "2026-03-31T00:00:00Z",
    "status": "open",
    "owner": {"id": "7"},
    "account": {"id": "311"},
}


@dataclass(frozen=True)
class Resource:
    """A unified resource as the document names it: schema names, labels, fields, examples."""

    name: str  # component name prefix, e.g. "Project"
    label: str  # the route name, plural, e.g. "projects"
    tag: str
    fields: tuple[UnifiedField, ...]
    example: dict[str, Any] | None = None
    body_example: dict[str, Any] | None = None
    singular: str = ""
    description: str = ""

    @classmethod
    def of(cls, model: ResourceModel) -> Resource:
        example, body = EXAMPLES.get(model.name, (None, None))
        return cls(
            model.schema_name,
            model.name,
            model.name.capitalize(),
            model.fields,
            example,
            body,
            model.singular,
            model.description,
        )


EXAMPLES: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {"projects": (EXAMPLE_PROJECT, EXAMPLE_BODY)}
PROJECTS = Resource.of(RESOURCES["projects"])


def supported_ops(model: ResourceModel) -> list[str]:
    """The operations some provider declares for a resource (projects: all five), in the model's order."""
    ops: set[str] = {"list", "get", "create", "update", "delete"} if model.name == "projects" else set()
    for provider in all_providers().values():
        view = provider.for_resource(model.name)
        if view is not None:
            ops |= set(view.endpoints)
    return [op for op in OPERATIONS if op in ops]


def documented_resources() -> list[ResourceModel]:
    """The unified resources some provider serves (each gets its paths and schemas)."""
    return [model for model in RESOURCES.values() if supported_ops(model)]


def _page(title: str, result: dict[str, Any], example: Any = None) -> dict[str, Any]:
    cursor = {"type": ["string", "null"], "description": "Pass as next_cursor for the next page; null on the last page"}
    page = {
        "title": title,
        "type": "object",
        "required": ["result", "next_cursor", "prev_cursor", "result_count"],
        "properties": {
            "result": result,
            "next_cursor": cursor,
            "prev_cursor": {"type": "null"},
            "result_count": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": False,
    }
    if example is not None:
        page["example"] = example
    return page


def resource_schemas(resource: Resource) -> dict[str, Any]:
    """The component schemas of one unified resource: record, normalized record, body, pages, debug, stream line."""
    n, label = resource.name, resource.label
    props = {f.name: _field_schema(f, request=False) | {"description": f.description} for f in resource.fields}
    record: dict[str, Any] = {
        "title": f"{n} (unified)",
        "description": "A field is absent when the provider has no such data or `truto_exclude_fields` removed it; "
        "null when the provider has it empty.",
        "type": "object",
        "properties": props | {"remote_data": {"type": "object", "description": "The provider's record as received"}},
        "additionalProperties": False,
    }
    normalized: dict[str, Any] = {
        "title": f"{n} (normalized)",
        "description": "`truto_response_format=normalized`: every unified field, coerced to its type (lists empty, "
        "others null when missing), no remote_data.",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
    }
    writable = {
        f.name: _field_schema(f, request=True) | {"description": f.description} for f in resource.fields if not f.response_only
    }
    body: dict[str, Any] = {
        "title": f"{n} body",
        "description": "The unified fields to write; null clears a field. Which fields an integration needs or supports: "
        f"GET /unified/crm/{label}/{{integration}}/meta/create.",
        "type": "object",
        "properties": writable
        | {"remote_data": {"type": "object", "description": "Merged as-is into the provider's request body"}},
        "additionalProperties": False,
    }
    if resource.example is not None:
        record["example"] = resource.example
        normalized["example"] = {k: v for k, v in resource.example.items() if k != "remote_data"}
    if resource.body_example is not None:
        body["example"] = resource.body_example
    either = {"anyOf": [ref(n), ref(f"{n}Normalized")]}
    page_example = (
        {"result": [resource.example], "next_cursor": "eyJ2IjoxfQ.c2ln", "prev_cursor": None, "result_count": 1}
        if resource.example
        else None
    )
    return {
        n: record,
        f"{n}Normalized": normalized,
        f"{n}Body": body,
        f"{n}Page": _page(f"Page of {label} (unified or normalized)", {"type": "array", "items": either}, page_example),
        f"{n}PageKeyed": _page(
            f"Page of {label} keyed by a field (truto_key_by)", {"type": "object", "additionalProperties": either}
        ),
        f"{n}PageRaw": {
            "title": "Page of provider records (raw)",
            "type": "object",
            "required": ["result", "next_cursor"],
            "properties": {"result": {"type": "array", "items": {"type": "object"}}, "next_cursor": {"type": ["string", "null"]}},
            "additionalProperties": False,
        },
        f"{n}PageDebug": {
            "title": f"Page of {label} with debug information (debug)",
            "type": "object",
            "required": ["result", "debug"],
            "properties": {"result": {"anyOf": [ref(f"{n}Page"), ref(f"{n}PageKeyed")]}, "debug": ref("Debug")},
            "additionalProperties": False,
        },
        f"{n}Debug": {
            "title": f"{n} with debug information (debug)",
            "type": "object",
            "required": ["result", "debug"],
            "properties": {"result": {"anyOf": [ref(n), ref("Deleted")]}, "debug": ref("Debug")},
            "additionalProperties": False,
        },
        f"{n}StreamLine": {
            "title": "One NDJSON line of a stream",
            "description": 'Each line is one record; if a later page fails, the last line is {"error": Error}',
            "anyOf": [
                ref(n),
                ref(f"{n}Normalized"),
                {"type": "object", "required": ["error"], "properties": {"error": ref("Error")}},
            ],
        },
    }


def _shared_record_schemas() -> dict[str, Any]:
    """What every resource's answers share: the debug block, dry runs, raw records, deletions."""
    exchange = {
        "type": "object",
        "description": "A provider request as sent (credentials redacted)",
        "properties": {
            "url": {"type": "string"},
            "method": {"type": "string"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "query": {"type": "object"},
            "body": {},
            "status": {"type": ["integer", "null"]},
        },
    }
    return {
        "ProviderRecord": {
            "title": "Provider record (raw)",
            "description": "`truto_response_format=raw`: the provider's answer as it sent it",
        },
        "Deleted": {
            "title": "Deleted",
            "description": "The id of the deleted record (when the provider answers without the record)",
            "type": "object",
            "properties": {"id": {"type": "string"}},
            "additionalProperties": False,
            "example": {"id": "1042"},
        },
        "Debug": {
            "title": "Debug information",
            "type": "object",
            "properties": {
                "requestUrl": {"type": ["string", "null"]},
                "requestOptions": {"anyOf": [exchange, {"type": "null"}]},
                "data": {"description": "The provider's last answer (redacted)"},
                "responseHeaders": {"type": ["object", "null"]},
                "requests": {"type": "array", "items": exchange},
                "nextCursor": {"type": ["string", "null"]},
                "isLooping": {"type": "boolean"},
                "isEmptyResult": {"type": "boolean"},
                "resultCount": {"type": "integer"},
            },
            "required": ["requestUrl", "requestOptions", "data", "responseHeaders", "requests"],
        },
        "DryRun": {
            "title": "Dry run (truto_skip_api_call=true)",
            "description": "Nothing was sent: the request unicrm would send, credentials redacted",
            "type": "object",
            "required": ["result", "debug", "truto_skip_api_call", "request"],
            "properties": {
                "result": {"type": "null"},
                "debug": {"type": "null"},
                "truto_skip_api_call": {"const": True},
                "request": exchange,
            },
            "additionalProperties": False,
        },
    }


def _admin_schemas() -> dict[str, Any]:
    names = sorted(all_providers())
    integration = {
        "title": "Integration",
        "type": "object",
        "required": ["name", "label", "authentication_method", "operations", "context_schema"],
        "properties": {
            "name": {"type": "string", "enum": names},
            "label": {"type": "string"},
            "documentation_link": {"type": ["string", "null"]},
            "authentication_method": {"type": "string"},
            "operations": {"type": "array", "items": {"type": "string", "enum": list(OPERATIONS)}},
            "resources": {
                "type": "object",
                "description": "Every unified resource it has, and that resource's operations",
                "additionalProperties": {"type": "array", "items": {"type": "string", "enum": list(OPERATIONS)}},
            },
            "connect": {
                "type": "object",
                "description": "How the hosted connect page connects it",
                "properties": {
                    "oauth2_authorization_code": {"type": "boolean", "description": "sign in with OAuth"},
                    "form": {"type": "boolean", "description": "a form of context fields (an API key)"},
                },
            },
            "context_schema": {"type": "object", "description": "JSON Schema of the account context (x-secret marks secrets)"},
        },
        "additionalProperties": False,
    }
    account = {
        "title": "Integrated account",
        "description": "A connected account. Secrets are never returned: `secrets_set` names the ones stored.",
        "type": "object",
        "required": ["id", "tenant_id", "environment_id", "integration", "context", "secrets_set", "status"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "tenant_id": {"type": "string"},
            "environment_id": {"type": "string"},
            "integration": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "label": {"type": "string"}},
                "required": ["name", "label"],
            },
            "authentication_method": {"type": ["string", "null"]},
            "context": {"type": "object", "description": "The non-secret context values"},
            "secrets_set": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": ["active", "needs_reauth"]},
            "last_error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
        "example": {
            "id": "3f0c9a4e-7a51-4c0e-9d55-8a1f2b6c7d90",
            "tenant_id": "acme",
            "environment_id": "b1d7c1e2-0d6f-4a53-8a8e-3c1f0e9b2a11",
            "integration": {"name": "capsule", "label": "Capsule"},
            "authentication_method": "bearer",
            "context": {},
            "secrets_set": ["access_token"],
            "status": "active",
            "last_error": None,
            "created_at": "2026-01-12T09:30:00.000000Z",
            "updated_at": "2026-01-12T09:30:00.000000Z",
        },
    }
    context = {
        "type": "object",
        "description": "Credentials and settings, as GET /integration describes for the integration",
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    }
    field_row = {
        "type": "object",
        "required": ["name", "supported", "required", "notes"],
        "properties": {
            "name": {"type": "string"},
            "supported": {"type": "boolean"},
            "required": {"type": "boolean"},
            "notes": {"type": "string"},
        },
    }
    return {
        "Integration": integration,
        "IntegrationList": {
            "type": "object",
            "required": ["result", "next_cursor", "limit"],
            "properties": {
                "result": {"type": "array", "items": ref("Integration")},
                "next_cursor": {"type": "null"},
                "limit": {"type": "integer"},
            },
        },
        "IntegratedAccount": account,
        "IntegratedAccountList": {
            "type": "object",
            "required": ["result", "next_cursor", "limit"],
            "properties": {
                "result": {"type": "array", "items": ref("IntegratedAccount")},
                "next_cursor": {"type": ["string", "null"]},
                "limit": {"type": "integer"},
            },
        },
        "IntegratedAccountCreate": {
            "type": "object",
            "required": ["integration", "context"],
            "properties": {
                "integration": {"type": "string", "enum": names},
                "tenant_id": {"type": "string"},
                "context": context,
            },
            "example": {"integration": "capsule", "tenant_id": "acme", "context": {"access_token": "<the customer's token>"}},
        },
        "IntegratedAccountPatch": {
            "type": "object",
            "description": "context merges into the stored one (a null value removes a key)",
            "properties": {"tenant_id": {"type": ["string", "null"]}, "context": context},
            "additionalProperties": False,
            "example": {"context": {"access_token": "<a new token>"}},
        },
        "Meta": {
            "title": "What an integration supports and requires for a method",
            "type": "object",
            "required": ["integration", "label", "method", "supported", "response_schema", "fields", "limits"],
            "properties": {
                "integration": {"type": "string"},
                "label": {"type": "string"},
                "resource": {"type": "string", "enum": list(RESOURCES)},
                "method": {"type": "string", "enum": list(OPERATIONS)},
                "supported": {"type": "boolean"},
                "documentation_link": {"type": ["string", "null"]},
                "response_schema": {"type": "object"},
                "request_body_schema": {"type": "object"},
                "query_schema": {"type": "object"},
                "filters": {"type": "object"},
                "fields": {"type": "array", "items": field_row},
                "limits": {
                    "type": "object",
                    "properties": {
                        "default_page_size": {"type": "integer"},
                        "max_page_size": {"type": "integer"},
                        "pagination": {"type": "string"},
                    },
                },
                "notes": {"type": "array", "items": {"type": "string"}},
                "differences_from_truto": {"type": "array", "items": {"type": "object"}},
            },
        },
        "MetaMissing": {
            "title": "An integration without this resource",
            "type": "object",
            "required": ["integration", "label", "resource", "method", "supported", "message", "available_resources"],
            "properties": {
                "integration": {"type": "string"},
                "label": {"type": "string"},
                "resource": {"type": "string"},
                "method": {"type": "string"},
                "supported": {"const": False},
                "message": {"type": "string"},
                "available_resources": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
        "Ready": {
            "type": "object",
            "required": ["ready", "database"],
            "properties": {
                "ready": {"type": "boolean"},
                "database": {"type": "string", "enum": ["ok", "unreachable"]},
                "migration": {"type": ["string", "null"]},
                "migration_head": {"type": ["string", "null"]},
                "detail": {"type": "string"},
            },
        },
        "Error": {
            "title": "Error",
            "description": "Every error, in Truto's shape",
            "type": "object",
            "required": ["statusCode", "error", "message"],
            "properties": {
                "statusCode": {"type": "integer"},
                "error": {"type": "string", "description": "The status's reason phrase"},
                "message": {"type": "string", "description": "What went wrong and what to do"},
                "truto_is_remote_error": {"type": "boolean", "description": "true when the provider answered the error"},
                "raw_response": {"description": "The provider's error answer (credentials redacted)"},
                "truto_error_insight": {
                    "type": "object",
                    "description": "Machine-readable details naming unified fields",
                    "properties": {
                        "invalid_fields": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": ["string", "null"]},
                                    "remote_field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                        "missing_required_body_fields": {
                            "type": "object",
                            "properties": {"description": {"type": "string"}, "value": {}},
                        },
                        "rate_limit_error": {"type": "object", "properties": {"description": {"type": "string"}}},
                        "unknown_body_fields": {
                            "type": "object",
                            "properties": {"description": {"type": "string"}, "value": {"type": "array"}},
                        },
                        "unsupported_body_fields": {
                            "type": "object",
                            "properties": {"description": {"type": "string"}, "value": {"type": "array"}},
                        },
                        "write_outcome_unknown": {
                            "type": "object",
                            "description": "A write was sent and its answer lost: it may have happened; check before resending",
                            "properties": {"description": {"type": "string"}},
                        },
                        "write_happened": {
                            "type": "object",
                            "description": "The provider accepted the write and a later step failed: do not send it again",
                            "properties": {"description": {"type": "string"}, "id": {"type": ["string", "null"]}},
                        },
                    },
                },
            },
            "example": {
                "statusCode": 400,
                "error": "Bad Request",
                "message": "Invalid field value(s): amount must be a number, got 'lots'.",
                "truto_error_insight": {"invalid_fields": [{"field": "amount", "message": "must be a number, got 'lots'"}]},
            },
        },
    }


# ---------------------------------------------------------------------------- assembly
def _content(content: Mapping[str, Any], example: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for media_type, schema in content.items():
        entry: dict[str, Any] = {"schema": ref(schema) if isinstance(schema, str) else schema}
        if example is not None and media_type == JSON:
            entry["example"] = example
        out[media_type] = entry
    return out


def _parameter(item: str | dict[str, Any], params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    spec = params[item]
    return {"name": spec.get("name", item), **{k: v for k, v in spec.items() if k != "name"}}


_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _operation(doc: Doc, path_params: Iterable[str], params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    parameters = [_parameter(item, params) for item in doc.params]
    declared = {(p["name"], p["in"]) for p in parameters}
    for name in path_params:
        if (name, "path") not in declared:
            parameters.insert(0, {"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    parameters.append(_parameter("x-request-id", params))
    op: dict[str, Any] = {
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "tags": [doc.tag],
        "parameters": parameters,
    }
    if doc.description:
        op["description"] = doc.description
    if doc.body:
        body: dict[str, Any] = {"schema": ref(doc.body) if isinstance(doc.body, str) else doc.body}
        if doc.body_example is not None:
            body["example"] = doc.body_example
        op["requestBody"] = {"required": True, "content": {doc.body_media: body}}
    responses: dict[str, Any] = {}
    for status, reply in doc.replies.items():
        entry: dict[str, Any] = {"description": reply.description}
        headers = ("x-request-id", *reply.headers)
        entry["headers"] = {h: HEADERS[h] for h in headers}
        if reply.content:
            entry["content"] = _content(reply.content, reply.example)
        responses[str(status)] = entry
    # Every route is behind the input bounds (413, 414, a malformed request is a 400) and may fail (500).
    errors = list(doc.errors) + [code for code in ALWAYS_ERRORS if code not in doc.errors]
    for status in sorted(errors, key=str):
        headers = ("x-request-id", *(("Retry-After", *RATE_HEADERS) if status == 429 else ()))
        error = {JSON: {"schema": ref("Error")}}
        if str(status) in responses:
            # The operation also answers this status itself (an HTML problem page): both bodies are possible.
            responses[str(status)].setdefault("content", {}).update(error)
            continue
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "headers": {h: HEADERS[h] for h in headers},
            "content": error,
        }
    op["responses"] = responses
    if not doc.auth:
        op["security"] = []
    return op


def build_document(routes: Iterable[Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route (Starlette `Route`s with a `Doc`)."""
    params = _parameters()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        doc = doc_of(getattr(route, "endpoint", None))
        if doc is None:
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD":
                continue
            variants = doc.variants(route.path, method) if doc.variants else [(route.path, method, doc)]
            for path, verb, variant in variants:
                path_params = [m.group(1) for m in _PATH_PARAM.finditer(path)]
                paths.setdefault(path, {})[verb.lower()] = _operation(variant, path_params, params)
    tags = [
        {"name": "Projects", "description": "Unified CRM API: one API for projects in every CRM"},
        *(
            {"name": r.tag, "description": f"Unified CRM API: {r.description}"}
            for r in map(Resource.of, documented_resources())
            if r.label != "projects"
        ),
        {"name": "Proxy", "description": "The provider's own API, with the account's credentials"},
        {"name": "Integrations and accounts", "description": "What can be connected, and the connected accounts"},
        {"name": "Connect", "description": "Link tokens and the hosted connect page your customers use to connect their CRM"},
        {"name": "Webhooks", "description": "Signed account events sent to your endpoints"},
        {"name": "Operations", "description": "Health, readiness, metrics and this reference"},
    ]
    used = {op["tags"][0] for ops in paths.values() for op in ops.values()}
    tags += [{"name": t} for t in sorted(used - {t["name"] for t in tags})]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "unicrm",
            "version": __version__,
            "summary": "Self-hosted unified API for CRM projects (Truto wire-compatible)",
            "description": "Every call takes `Authorization: Bearer <api token>` (create one with `unicrm token create`); "
            "unified calls take `integrated_account_id`. Errors are `{statusCode, error, message}`. Bracket "
            "parameters (`updated_at[gt]=...`) need `curl -g`. What each integration supports: the meta routes.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/", "description": "This server"}],
        "tags": [t for t in tags if t["name"] in used],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token of an environment"}},
            "schemas": {k: v for m in documented_resources() for k, v in resource_schemas(Resource.of(m)).items()}
            | _shared_record_schemas()
            | _admin_schemas()
            | EXTRA_SCHEMAS,
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def with_server(document: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The document with `servers` naming the URL it was fetched from."""
    out = copy.copy(document)
    out["servers"] = [{"url": base_url.rstrip("/") or "/", "description": "This server"}]
    return out


def undocumented(routes: Iterable[Any]) -> list[str]:
    """Routes that have no `Doc` (the tests require none)."""
    return [getattr(r, "path", repr(r)) for r in routes if doc_of(getattr(r, "endpoint", None)) is None]


# ---------------------------------------------------------------------------- shared Doc pieces
OP_VERBS = {"list": "list", "get": "get", "create": "create", "update": "update", "delete": "delete"}
OP_METHODS = {"list": "GET", "create": "POST", "get": "GET", "update": "PATCH", "delete": "DELETE"}


def resource_variants(op: str, descriptions: Mapping[str, str] | None = None) -> Callable[[str, str], list[tuple[str, str, Doc]]]:
    """Variants of a generic `/unified/crm/{resource}` handler: one operation per resource that has `op`."""

    def expand(path: str, method: str) -> list[tuple[str, str, Doc]]:
        out = []
        for model in documented_resources():
            if op not in supported_ops(model):
                continue
            r = Resource.of(model)
            operation_id = f"list{r.label.capitalize()}" if op == "list" else f"{op}{r.name}"
            summary = (
                f"List {r.label}"
                if op == "list"
                else f"{op.capitalize()} a{'n' if r.singular[:1] in 'aeiou' else ''} {r.singular}"
            )
            text = (descriptions or {}).get(op, "") if r.label == "projects" else ""
            out.append((path.replace("{resource}", r.label), method, unified_doc(op, operation_id, summary, text, r)))
        return out

    return expand


def meta_variants(
    operation_id: str, summary: str, params: tuple[str, ...], description: str = ""
) -> Callable[[str, str], list[tuple[str, str, Doc]]]:
    """Variants of the generic meta handlers: one per documented resource."""

    def expand(path: str, method: str) -> list[tuple[str, str, Doc]]:
        out = []
        for model in documented_resources():
            r = Resource.of(model)
            doc = Doc(
                operation_id.format(name=r.name),
                summary.format(label=r.label, singular=r.singular),
                r.tag,
                description=description,
                params=params,
                replies={
                    200: Reply(
                        "The integration's support and requirements for the method",
                        {JSON: {"anyOf": [ref("Meta"), ref("MetaMissing")]}},
                    )
                },
                errors=(400, 401, 404, 413, 500),
            )
            out.append((path.replace("{resource}", r.label), method, doc))
        return out

    return expand


def unified_doc(op: str, operation_id: str, summary: str, description: str = "", resource: Resource | None = None) -> Doc:
    """The Doc of a unified operation (list, get, create, update, delete) of a resource."""
    resource = resource or PROJECTS
    n = resource.name
    rate = RATE_HEADERS
    single = [ref(n), ref(f"{n}Normalized"), ref(f"{n}Debug")]
    params: tuple[str, ...]
    replies: dict[int | str, Reply]
    if op == "list":
        pages = [ref(f"{n}Page"), ref(f"{n}PageKeyed"), ref(f"{n}PageRaw"), ref(f"{n}PageDebug"), ref("DryRun")]
        example = resource_schemas(resource)[f"{n}Page"].get("example")
        replies = {
            200: Reply(
                f"A page of {resource.label} (or, for `stream`, every record as NDJSON)",
                {JSON: {"anyOf": pages}, NDJSON: f"{n}StreamLine"},
                rate,
                example=example,
            )
        }
        params = LIST_QUERY
    elif op == "get":
        replies = {
            200: Reply(
                "The record (unified, normalized, raw: the provider's record, debug, or a dry run)",
                {JSON: {"anyOf": [*single, ref("DryRun"), ref("ProviderRecord")]}},
                rate,
                example=resource.example,
            )
        }
        params = ("id", *UNIFIED_QUERY)
    elif op == "create":
        replies = {
            201: Reply(
                "Created: the record as the provider stored it",
                {JSON: {"anyOf": [*single, ref("ProviderRecord")]}},
                (*rate, "idempotent-replayed"),
                example=resource.example,
            ),
            200: Reply("Dry run (truto_skip_api_call=true): nothing was created", {JSON: "DryRun"}),
        }
        params = (*UNIFIED_QUERY, "Idempotency-Key")
    elif op == "update":
        replies = {
            200: Reply(
                "The updated record (or a dry run)",
                {JSON: {"anyOf": [*single, ref("DryRun"), ref("ProviderRecord")]}},
                (*rate, "idempotent-replayed"),
                example=resource.example,
            )
        }
        params = ("id", *UNIFIED_QUERY, "Idempotency-Key")
    else:
        replies = {
            200: Reply(
                "Deleted: `{id}`, or the deleted record where the provider answers with it; raw: the provider's answer "
                "(`application/octet-stream` when it had no body)",
                {
                    JSON: {"anyOf": [ref("Deleted"), *single, ref("DryRun"), ref("ProviderRecord")]},
                    "application/octet-stream": {"type": "string", "maxLength": 0, "description": "empty"},
                },
                rate,
                example={"id": "1042"},
            )
        }
        params = ("id", *UNIFIED_QUERY)
    return Doc(
        operation_id=operation_id,
        summary=summary,
        tag=resource.tag,
        description=description,
        params=params,
        body=f"{n}Body" if op in ("create", "update") else None,
        body_example=resource.body_example if op in ("create", "update") else None,
        replies=replies,
        errors=UNIFIED_ERRORS,
    )
