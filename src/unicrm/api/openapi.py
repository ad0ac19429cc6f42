"""The OpenAPI 3.1 document and the docs page, generated from the unified model."""

from __future__ import annotations

from typing import Any

from unicrm import __version__
from unicrm.model import FIELDS, json_schema_for
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


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the unified projects API and the account routes."""
    project = {
        "type": "object",
        "properties": {f.name: json_schema_for(f.kind, f.enum) | {"description": f.description} for f in FIELDS}
        | {"remote_data": {"type": "object"}},
    }
    body = {
        "type": "object",
        "properties": {f.name: json_schema_for(f.kind, f.enum) for f in FIELDS if not f.response_only}
        | {"remote_data": {"type": "object", "description": "merged as-is into the provider body"}},
        "additionalProperties": False,
    }
    common = (
        "integrated_account_id",
        "truto_response_format",
        "truto_ignore_remote_data",
        "truto_exclude_fields",
        "truto_skip_api_call",
        "remote_query",
    )
    listing = {
        "type": "object",
        "properties": {
            "result": {"type": "array", "items": {"$ref": "#/components/schemas/Project"}},
            "next_cursor": {"type": ["string", "null"]},
            "prev_cursor": {"type": "null"},
            "result_count": {"type": "integer"},
        },
    }
    ref = {"$ref": "#/components/schemas/Project"}
    base = "/unified/crm/projects"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "unicrm",
            "version": __version__,
            "description": "Unified API for CRM projects (Truto wire-compatible).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": ERROR}}}},
            "schemas": {
                "Project": project,
                "ProjectBody": body,
                "Error": {
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
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": _connect_paths()
        | {
            base: {
                "get": {
                    "summary": "List projects",
                    "parameters": _params(
                        *common, "truto_key_by", "truto_ignore_limit", "limit", "next_cursor", "updated_at", "created_at"
                    ),
                    "responses": _responses("A page of projects", listing),
                },
                "post": {
                    "summary": "Create a project",
                    "parameters": _params(*common),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProjectBody"}}},
                    },
                    "responses": _responses("The created project", ref, "201"),
                },
            },
            base + "/{id}": {
                "get": {
                    "summary": "Get a project",
                    "parameters": _params("id", *common),
                    "responses": _responses("The project", ref),
                },
                "patch": {
                    "summary": "Update a project",
                    "parameters": _params("id", *common),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProjectBody"}}},
                    },
                    "responses": _responses("The updated project", ref),
                },
                "delete": {
                    "summary": "Delete a project",
                    "parameters": _params("id", *common),
                    "responses": _responses("The deleted project or {id}", ref),
                },
            },
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
