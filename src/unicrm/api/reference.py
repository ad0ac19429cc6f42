"""The reference page at /docs, rendered from the OpenAPI document.

With JavaScript: Swagger UI, whose files come from the `swagger-ui-bundle-v2` package and
are served by unicrm itself (no CDN, works offline). Without: the same reference as plain
HTML, rendered on the server with Jinja2 from the same document (in `<noscript>` on /docs,
and alone at /docs/plain).
"""

from __future__ import annotations

import mimetypes
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.responses import FileResponse, Response
from swagger_ui_bundle import swagger_ui_path

from unicrm.engine.errors import ApiError

METHODS = ("get", "post", "put", "patch", "delete")
# Only what the page loads is served from the bundle.
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"})

_env = Environment(loader=PackageLoader("unicrm.api", "templates"), autoescape=select_autoescape(["html"]))
_CODE = re.compile(r"`([^`]+)`")


def code_spans(text: str) -> Markup:
    """Escape a description and show its `code spans` as <code> (the only markdown the documents use)."""
    return Markup(_CODE.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text))))


_env.filters["md"] = code_spans


def _name(reference: str) -> str:
    return reference.rsplit("/", 1)[-1]


def type_label(schema: Any) -> str:
    """A short human-readable type: `string | null`, `array of Project`, `one of: a, b`."""
    if not isinstance(schema, dict) or not schema:
        return "any"
    if "$ref" in schema:
        return _name(schema["$ref"])
    if "const" in schema:
        return orjson.dumps(schema["const"]).decode()
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(type_label(s) for s in schema[key])
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    labels = []
    for k in kinds:
        if k == "array":
            labels.append(f"array of {type_label(schema.get('items'))}")
        elif k == "object" and isinstance(schema.get("additionalProperties"), dict) and not schema.get("properties"):
            labels.append(f"map of {type_label(schema['additionalProperties'])}")
        else:
            labels.append(str(k))
    label = " | ".join(labels) or "any"
    if schema.get("format"):
        label += f" ({schema['format']})"
    if schema.get("enum"):
        label += ": " + ", ".join("null" if v is None else str(v) for v in schema["enum"])
    return label


def property_rows(schema: dict[str, Any], depth: int = 0, prefix: str = "") -> list[dict[str, Any]]:
    """The properties of an object schema, nested objects flattened as `parent.child` rows."""
    rows: list[dict[str, Any]] = []
    required = set(schema.get("required", ()))
    for name, sub in (schema.get("properties") or {}).items():
        sub = sub if isinstance(sub, dict) else {}
        rows.append(
            {
                "name": prefix + name,
                "type": type_label(sub),
                "required": name in required,
                "description": sub.get("description", ""),
            }
        )
        target = sub.get("items") if sub.get("type") == "array" or "array" in (sub.get("type") or []) else sub
        if isinstance(target, dict) and target.get("properties") and depth < 2:
            rows += property_rows(target, depth + 1, prefix + name + ("[]." if target is not sub else "."))
    return rows


def _refs(schema: Any) -> list[str]:
    """Component names a schema points at (one level), for links."""
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        return [_name(schema["$ref"])]
    out: list[str] = []
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, ()):
            out += _refs(sub)
    if "items" in schema:
        out += _refs(schema["items"])
    return out


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    ops = []
    for path, item in document["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body_content = (op.get("requestBody") or {}).get("content", {})
            body_media, body = next(iter(body_content.items()), (None, None))
            responses = []
            for status, reply in op["responses"].items():
                content = reply.get("content", {})
                responses.append(
                    {
                        "status": status,
                        "description": reply.get("description", ""),
                        "media": [
                            {"type": media, "label": type_label(entry.get("schema")), "refs": _refs(entry.get("schema"))}
                            for media, entry in content.items()
                        ],
                        "example": _pretty(content["application/json"]["example"])
                        if "example" in content.get("application/json", {})
                        else None,
                        "headers": sorted(reply.get("headers", {})),
                    }
                )
            ops.append(
                {
                    "id": op.get("operationId", f"{method}-{path}"),
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or ["Other"])[0],
                    "auth": op.get("security", None) != [],
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": type_label(p.get("schema")),
                            "description": p.get("description", ""),
                            "style": p.get("style", ""),
                        }
                        for p in op.get("parameters", ())
                    ],
                    "body": {
                        "media": body_media,
                        "label": type_label(body.get("schema")),
                        "refs": _refs(body.get("schema")),
                        "example": _pretty(body["example"]) if "example" in body else None,
                    }
                    if body
                    else None,
                    "responses": responses,
                }
            )
    return ops


def _context(document: dict[str, Any]) -> dict[str, Any]:
    ops = _operations(document)
    tags = [t["name"] for t in document.get("tags", [])]
    tags += sorted({o["tag"] for o in ops} - set(tags))
    schemas = [
        {
            "name": name,
            "title": schema.get("title", name),
            "description": schema.get("description", ""),
            "label": type_label(schema),
            "refs": _refs(schema),
            "rows": property_rows(schema),
            "example": _pretty(schema["example"]) if "example" in schema else None,
        }
        for name, schema in document["components"]["schemas"].items()
    ]
    return {
        "info": document["info"],
        "groups": [{"tag": tag, "operations": [o for o in ops if o["tag"] == tag]} for tag in tags],
        "schemas": schemas,
    }


@lru_cache(maxsize=4)
def _render(template: str, document_json: bytes) -> str:
    return _env.get_template(template).render(**_context(orjson.loads(document_json)))


def plain_page(document: dict[str, Any]) -> str:
    """The whole reference as HTML without JavaScript."""
    return _render("reference_plain.html", orjson.dumps(document))


def interactive_page(document: dict[str, Any]) -> str:
    """Swagger UI, with the plain reference for browsers without JavaScript."""
    return _render("reference.html", orjson.dumps(document))


def asset_response(name: str) -> Response:
    """A file of the bundled Swagger UI (only the ones the page uses)."""
    if name not in ASSETS:
        raise ApiError(404, f"No reference-page file {name!r}.")
    path = Path(str(swagger_ui_path)) / name
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".js"):
        media_type = "text/javascript"
    return FileResponse(path, media_type=media_type, headers={"cache-control": "public, max-age=86400"})
