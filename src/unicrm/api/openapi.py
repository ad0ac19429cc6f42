"""The OpenAPI 3.1 document and the docs page, generated from the unified model."""

from __future__ import annotations

from typing import Any

from unicrm import __version__
from unicrm.model import RESOURCES, ResourceModel, field_schema
from unicrm.providers import all_providers

ERROR = {"$ref": "#/components/schemas/Error"}


def _params(*names: str) -> list[dict[str, Any]]:
    catalogue: dict[str, dict[str, Any]] = {
        "integrated_account_id": {"in": "query", "required": True, "schema": {"type": "string", "format": "uuid"}},
        "truto_response_format": {
            "in": "query",
            "schema": {"type": "string", "enum": ["unified", "normalized", "raw", "stream", "debug"]},
        },
        "truto_ignore_remote_data": {"in": "query", "schema": {"type": "boolean"}},
        "truto_exclude_fields": {"in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
        "truto_skip_api_call": {"in": "query", "schema": {"type": "boolean"}},
        "truto_key_by": {"in": "query", "schema": {"type": "string"}},
        "truto_ignore_limit": {"in": "query", "schema": {"type": "boolean"}},
        "limit": {"in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
        "next_cursor": {"in": "query", "schema": {"type": "string"}},
        "remote_query": {"in": "query", "style": "deepObject", "schema": {"type": "object"}},
        "updated_at": {
            "in": "query",
            "style": "deepObject",
            "schema": {"type": "object"},
            "description": "updated_at[gt|gte|lt|lte]=<ISO 8601>",
        },
        "created_at": {
            "in": "query",
            "style": "deepObject",
            "schema": {"type": "object"},
            "description": "created_at[gt|gte|lt|lte]=<ISO 8601>",
        },
        "id": {"in": "path", "required": True, "schema": {"type": "string"}},
        "method": {
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": ["list", "get", "create", "update", "delete"]},
        },
        "integration": {"in": "path", "required": True, "schema": {"type": "string", "enum": sorted(all_providers())}},
    }
    return [{"name": n, **catalogue[n]} for n in names]


def _responses(ok: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    out: dict[str, Any] = {status: {"description": ok, "content": {"application/json": {"schema": schema}}}}
    for code in ("400", "401", "404", "405", "409", "422", "429", "502", "504"):
        out[code] = {"description": "Error", "content": {"application/json": {"schema": ERROR}}}
    return out


def _resource_paths(model: ResourceModel, ops: set[str]) -> dict[str, Any]:
    """The paths of one resource: the operations some provider declares, plus meta."""
    common = (
        "integrated_account_id",
        "truto_response_format",
        "truto_ignore_remote_data",
        "truto_exclude_fields",
        "truto_skip_api_call",
        "remote_query",
    )
    ref = {"$ref": f"#/components/schemas/{model.schema_name}"}
    body_ref = {"$ref": f"#/components/schemas/{model.schema_name}Body"}
    listing = {
        "type": "object",
        "properties": {
            "result": {"type": "array", "items": ref},
            "next_cursor": {"type": ["string", "null"]},
            "prev_cursor": {"type": "null"},
            "result_count": {"type": "integer"},
        },
    }
    plural, singular = model.name, model.singular
    base = f"/unified/crm/{plural}"
    collection: dict[str, Any] = {}
    item: dict[str, Any] = {}
    if "list" in ops:
        collection["get"] = {
            "summary": f"List {plural}",
            "parameters": _params(
                *common, "truto_key_by", "truto_ignore_limit", "limit", "next_cursor", "updated_at", "created_at"
            ),
            "responses": _responses(f"A page of {plural}", listing),
        }
    if "create" in ops:
        collection["post"] = {
            "summary": f"Create a {singular}",
            "parameters": _params(*common),
            "requestBody": {"required": True, "content": {"application/json": {"schema": body_ref}}},
            "responses": _responses(f"The created {singular}", ref, "201"),
        }
    if "get" in ops:
        item["get"] = {
            "summary": f"Get a {singular}",
            "parameters": _params("id", *common),
            "responses": _responses(f"The {singular}", ref),
        }
    if "update" in ops:
        item["patch"] = {
            "summary": f"Update a {singular}",
            "parameters": _params("id", *common),
            "requestBody": {"required": True, "content": {"application/json": {"schema": body_ref}}},
            "responses": _responses(f"The updated {singular}", ref),
        }
    if "delete" in ops:
        item["delete"] = {
            "summary": f"Delete a {singular}",
            "parameters": _params("id", *common),
            "responses": _responses(f"The deleted {singular} or {{id}}", ref),
        }
    return {
        base: collection,
        base + "/{id}": item,
        base + "/meta/{method}": {
            "get": {
                "summary": "What the account's integration supports for a method",
                "parameters": _params("method", "integrated_account_id"),
                "responses": _responses("Meta", {"type": "object"}),
            },
        },
        base + "/{integration}/meta/{method}": {
            "get": {
                "summary": "What an integration supports for a method",
                "parameters": _params("integration", "method"),
                "responses": _responses("Meta", {"type": "object"}),
            },
        },
    }


def _schemas(model: ResourceModel) -> dict[str, Any]:
    record = {
        "type": "object",
        "description": model.description,
        "properties": {f.name: field_schema(f) | {"description": f.description} for f in model.fields}
        | {"remote_data": {"type": "object"}},
    }
    body = {
        "type": "object",
        "properties": {f.name: field_schema(f) for f in model.fields if not f.response_only}
        | {"remote_data": {"type": "object", "description": "merged as-is into the provider body"}},
        "additionalProperties": False,
    }
    return {model.schema_name: record, f"{model.schema_name}Body": body}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the unified CRM resources (operations any provider declares) and the account routes."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    providers = all_providers()
    for model in RESOURCES.values():
        ops: set[str] = set()
        for provider in providers.values():
            view = provider.for_resource(model.name)
            if view is not None:
                ops |= set(view.endpoints)
        if model.name == "projects":
            ops |= {"list", "get", "create", "update", "delete"}
        if not ops:
            continue
        schemas |= _schemas(model)
        paths |= _resource_paths(model, ops)
    schemas["Error"] = {
        "type": "object",
        "required": ["statusCode", "error", "message"],
        "properties": {
            "statusCode": {"type": "integer"},
            "error": {"type": "string"},
            "message": {"type": "string"},
            "truto_is_remote_error": {"type": "boolean"},
            "raw_response": {},
            "truto_error_insight": {"type": "object"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "unicrm",
            "version": __version__,
            "description": "Unified API for CRM projects and the records they point to (Truto wire-compatible).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": ERROR}}}},
            "schemas": schemas,
        },
        "security": [{"bearer": []}],
        "paths": _connect_paths()
        | {
            **paths,
            **_proxy_paths(),
            "/integration": {
                "get": {
                    "summary": "Integrations and their context schema",
                    "responses": _responses("Integrations", {"type": "object"}),
                }
            },
            "/integrated-account": {
                "get": {"summary": "List integrated accounts", "responses": _responses("Accounts", {"type": "object"})},
                "post": {"summary": "Connect an account", "responses": _responses("The account", {"type": "object"}, "201")},
            },
            "/integrated-account/{id}": {
                "get": {
                    "summary": "Get an account",
                    "parameters": _params("id"),
                    "responses": _responses("The account", {"type": "object"}),
                },
                "patch": {
                    "summary": "Update an account (context merges)",
                    "parameters": _params("id"),
                    "responses": _responses("The account", {"type": "object"}),
                },
                "delete": {
                    "summary": "Delete an account",
                    "parameters": _params("id"),
                    "responses": _responses("{id}", {"type": "object"}),
                },
            },
        },
    }


def _proxy_paths() -> dict[str, Any]:
    """Truto's proxy API: the provider's own resources with the account's credentials."""
    resource = {
        "name": "resource",
        "in": "path",
        "required": True,
        "description": "A native resource path of the integration (a `/` inside it written %2F)",
        "schema": {"type": "string"},
    }
    account = _params("integrated_account_id")
    native = {"type": "object", "description": "The provider's own JSON, forwarded as it is", "additionalProperties": True}
    listing = {
        "type": "object",
        "properties": {
            "result": {"type": "array", "items": native},
            "next_cursor": {"type": ["string", "null"]},
            "prev_cursor": {"type": "null"},
            "result_count": {"type": "integer"},
        },
    }
    body = {"required": True, "content": {"application/json": {"schema": native}}}
    item = [resource, *_params("id"), *account]
    return {
        "/proxy/{resource}": {
            "get": {
                "summary": "List a native resource, paged with the provider's own pagination",
                "parameters": [resource, *account, *_params("limit", "next_cursor")],
                "responses": _responses("A page of native records", listing),
            },
            "post": {
                "summary": "Create a native record",
                "parameters": [resource, *account],
                "requestBody": body,
                "responses": _responses("The provider's answer", native, "201"),
            },
        },
        "/proxy/{resource}/{id}": {
            "get": {
                "summary": "Get a native record",
                "parameters": item,
                "responses": _responses("The provider's answer", native),
            },
            "patch": {
                "summary": "Update a native record",
                "parameters": item,
                "requestBody": body,
                "responses": _responses("The provider's answer", native),
            },
            "put": {
                "summary": "Replace a native record",
                "parameters": item,
                "requestBody": body,
                "responses": _responses("The provider's answer", native),
            },
            "delete": {
                "summary": "Delete a native record",
                "parameters": item,
                "responses": _responses("The provider's answer, or {id}", native),
            },
            "post": {
                "summary": "Call a custom method: POST <resource>/<method> natively (the second segment is the method)",
                "parameters": item,
                "requestBody": {"required": False, "content": {"application/json": {"schema": native}}},
                "responses": _responses("The provider's answer, or {} when it is empty", native),
            },
        },
    }


def _connect_paths() -> dict[str, Any]:
    """The connect routes' path items, declared next to their handlers (issue 11)."""
    from unicrm.api import link_tokens, webhooks

    return {**link_tokens.OPENAPI_PATHS, **webhooks.OPENAPI_PATHS}


DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>unicrm API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code,pre{background:#f4f4f4;padding:.1rem .3rem}li{margin:.3rem 0}</style></head>
<body><h1>unicrm — unified CRM projects API</h1>
<p>The machine-readable contract is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).
Every call takes <code>Authorization: Bearer &lt;token&gt;</code>; unified calls take <code>?integrated_account_id=</code>.</p>
<ul id="paths"></ul>
<script>
fetch('/openapi.json').then(r=>r.json()).then(doc=>{const ul=document.getElementById('paths');
for(const [p,ops] of Object.entries(doc.paths)){for(const [m,op] of Object.entries(ops)){
const li=document.createElement('li');li.innerHTML='<code>'+m.toUpperCase()+' '+p+'</code> — '+op.summary;ul.appendChild(li);}}});
</script>
<p>Per-integration support: <code>GET /unified/crm/projects/{integration}/meta/{method}</code>.</p>
</body></html>"""
