"""`/proxy/{resource}[/{id}]` routes (Truto's proxy API): native paths, the account's credentials.

GET/POST on a resource, GET/PATCH/PUT/DELETE on a record, and POST on
`/proxy/{resource}/{method}` (Truto's custom method: a native POST to `<resource>/<method>`).
A list comes back as `{result, next_cursor}` paged with the provider's own pagination; a
record or a custom method's answer verbatim. Same token auth, account resolution, idempotency
and error shape as the unified routes.

The path is split on its raw (still percent-encoded) slashes: `/proxy/<resource>` is the
collection and `/proxy/<resource>/<id>` a record, so a native path with a slash in it is
written with `%2F` (`/proxy/projects-v2%2Fprojects.list`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unicrm.api.limits import parse_json_body
from unicrm.api.openapi import JSON, RATE_HEADERS, UNIFIED_ERRORS, Doc, Reply, documented, register_schemas
from unicrm.api.unified import MAX_ID_CHARS, _account, _idempotent, _query, _state, render
from unicrm.engine.errors import ApiError, bad_request
from unicrm.engine.proxy import Proxy


def _proxy(request: Request) -> Proxy:
    return _state(request).proxy


def _raw_query(request: Request) -> str:
    return request.scope.get("query_string", b"").decode("latin-1")


def _limit(query: dict[str, Any]) -> int | None:
    raw = query.get("limit")
    if raw is None:
        return None
    if isinstance(raw, list):
        raw = raw[-1]
    try:
        limit = int(str(raw))
    except ValueError:
        raise bad_request(f"limit must be a whole number; got {raw!r}.") from None
    if limit < 1:
        raise bad_request("limit must be at least 1.")
    return limit


async def _body(request: Request, required: bool) -> Any:
    # Its size is bounded before any route runs (BoundedInput, 413); its nesting here.
    raw = await request.body()
    if not raw.strip():
        if required:
            raise bad_request("The request body is empty: send the provider's native JSON body.")
        return None
    return parse_json_body(raw)


def _segments(request: Request) -> list[str]:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    tail = raw.decode("latin-1").split("/proxy/", 1)[-1].rstrip("/")
    segments = [unquote(s) for s in tail.split("/")] if tail else []
    if not 1 <= len(segments) <= 2 or not all(segments) or any(len(s) > MAX_ID_CHARS for s in segments):
        raise bad_request(
            "Proxy paths are /proxy/{resource}, /proxy/{resource}/{id} and /proxy/{resource}/{method}; "
            "write a slash inside a native "
            "resource path as %2F (/proxy/projects-v2%2Fprojects.list)."
        )
    return segments


register_schemas(
    {
        "ProxyPage": {
            "title": "A page of native records (proxy)",
            "type": "object",
            "required": ["result", "next_cursor", "prev_cursor", "result_count"],
            "properties": {
                "result": {"type": "array", "description": "The provider's records as it sent them"},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as next_cursor for the next page"},
                "prev_cursor": {"type": "null"},
                "result_count": {"type": "integer", "minimum": 0},
            },
            "additionalProperties": False,
        },
        "ProxyAnswer": {"title": "The provider's answer (proxy)", "description": "The provider's JSON as it sent it"},
    }
)
_RESOURCE = {
    "name": "resource",
    "in": "path",
    "required": True,
    "description": "A native resource path of the integration (a `/` inside it written %2F)",
    "schema": {"type": "string", "minLength": 1},
}
_ID = {"name": "id", "in": "path", "required": True, "description": "The native record id", "schema": {"type": "string"}}
_ANY = {"type": "object", "description": "The provider's native JSON body, forwarded as it is"}
_ANSWER = {JSON: "ProxyAnswer"}
_TAG = "Proxy"
_COMMON = "Query parameters other than these are forwarded to the provider as they are."


def _proxy_doc(operation_id: str, summary: str, params: tuple[Any, ...], replies: dict[int | str, Reply], body: bool) -> Doc:
    return Doc(
        operation_id,
        summary,
        _TAG,
        description=_COMMON,
        params=params,
        body=_ANY if body else None,
        replies=replies,
        errors=UNIFIED_ERRORS,
    )


def _variants(path: str, method: str) -> list[tuple[str, str, Doc]]:
    """The one `/proxy/{rest:path}` route serves a collection path and a record path."""
    collection, record = "/proxy/{resource}", "/proxy/{resource}/{id}"
    account = ("integrated_account_id",)
    params: tuple[Any, ...]
    one: dict[int | str, Reply] = {200: Reply("The provider's answer", _ANSWER, RATE_HEADERS)}
    if method == "GET":
        return [
            (
                collection,
                "GET",
                _proxy_doc(
                    "proxyList",
                    "List a native resource, paged with the provider's own pagination",
                    (_RESOURCE, *account, "limit", "next_cursor"),
                    {200: Reply("A page of native records", {JSON: "ProxyPage"}, RATE_HEADERS)},
                    False,
                ),
            ),
            (record, "GET", _proxy_doc("proxyGet", "Get a native record", (_RESOURCE, _ID, *account), one, False)),
        ]
    if method == "POST":
        created: dict[int | str, Reply] = {
            201: Reply("Created (the provider answered 201)", _ANSWER, RATE_HEADERS),
            200: Reply("The provider's answer (it answered another 2xx)", _ANSWER, RATE_HEADERS),
        }
        params = (_RESOURCE, *account, "Idempotency-Key")
        method_params = (
            _RESOURCE,
            {**_ID, "name": "id", "description": "The custom method (Truto's proxy custom methods)"},
            *account,
            "Idempotency-Key",
        )
        custom: dict[int | str, Reply] = {200: Reply("The provider's answer, or {} when it is empty", _ANSWER, RATE_HEADERS)}
        return [
            (collection, "POST", _proxy_doc("proxyCreate", "Create a native record", params, created, True)),
            (
                record,
                "POST",
                _proxy_doc(
                    "proxyCustomMethod", "Call a custom method: POST <resource>/<method> natively", method_params, custom, True
                ),
            ),
        ]
    verbs = {"PATCH": ("proxyUpdate", "Update a native record"), "PUT": ("proxyReplace", "Replace a native record")}
    if method in verbs:
        operation_id, summary = verbs[method]
        params = (_RESOURCE, _ID, *account, "Idempotency-Key")
        return [(record, method, _proxy_doc(operation_id, summary, params, one, True))]
    deleted: dict[int | str, Reply] = {
        200: Reply("The provider's answer, or {id} when it answered no body", _ANSWER, RATE_HEADERS)
    }
    return [(record, "DELETE", _proxy_doc("proxyDelete", "Delete a native record", (_RESOURCE, _ID, *account), deleted, False))]


@documented(Doc("proxy", "proxy", _TAG, variants=_variants))
async def proxy_any(request: Request) -> Response:
    segments = _segments(request)
    request.path_params["resource"] = segments[0]
    if len(segments) == 2:
        if request.method == "POST":
            request.path_params["method"] = segments[1]
            return await proxy_custom(request)
        request.path_params["id"] = segments[1]
        return await proxy_record(request)
    if request.method == "GET":
        return await proxy_list(request)
    if request.method == "POST":
        return await proxy_create(request)
    raise ApiError(405, f"{request.method} is not allowed on a proxy resource; use GET (list) or POST (create), or add an id.")


async def proxy_list(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    cursor = query.get("next_cursor")
    if isinstance(cursor, list):
        cursor = cursor[-1]
    result = await _proxy(request).list(
        account, request.path_params["resource"], _raw_query(request), _limit(query), str(cursor) if cursor else None
    )
    return render(result)


async def proxy_create(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    body = await _body(request, required=True)
    resource = request.path_params["resource"]
    return await _idempotent(
        request, account, body, lambda: _proxy(request).single(account, "POST", resource, None, _raw_query(request), body)
    )


async def proxy_custom(request: Request) -> Response:
    """`POST /proxy/{resource}/{method}`: the body (optional) and query as sent, the answer verbatim."""
    query = _query(request)
    account = await _account(request, query)
    body = await _body(request, required=False)
    resource, name = request.path_params["resource"], request.path_params["method"]
    return await _idempotent(
        request, account, body, lambda: _proxy(request).custom(account, resource, name, _raw_query(request), body)
    )


async def proxy_record(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    method = request.method
    body = await _body(request, required=method in ("PATCH", "PUT")) if method != "GET" else None
    resource, record_id = request.path_params["resource"], request.path_params["id"]

    async def run() -> Any:
        return await _proxy(request).single(account, method, resource, record_id, _raw_query(request), body)

    if method in ("PATCH", "PUT"):
        return await _idempotent(request, account, body, run)
    return render(await run())


ROUTES = [Route("/proxy/{rest:path}", proxy_any, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])]
