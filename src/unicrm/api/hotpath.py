"""The two hot routes, `GET /unified/crm/{resource}` and `GET /unified/crm/{resource}/{id}`, served lean.

A profile of the GET hot path showed Starlette's per-request machinery (matching the request
against every route in turn, a `Request` object, a `Response` object and its header encoding,
two layers of wrapped `send`) as a large share of unicrm's own CPU per request. The
`UnifiedRouter` recognises these two routes by their path alone and answers them straight in
ASGI; every other request goes through Starlette's router as before. Everything outside the
router still applies to them: the middleware (request ids, logs, metrics, limits) wraps the
router, and an `ApiError` or any other exception raised here reaches the same exception
handlers as one raised in a Starlette route, so answers and errors are the same bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.routing import Router
from starlette.types import Receive, Scope, Send

from unicrm.api import unified
from unicrm.api.querystring import QueryStringError, parse_query
from unicrm.api.responses import JSON_TYPE
from unicrm.api.state import AppState
from unicrm.engine.errors import bad_request
from unicrm.engine.operations import Result

PREFIX = unified.PREFIX
_JSON_TYPE = JSON_TYPE.encode("latin-1")
Endpoint = Callable[..., Awaitable[Any]]


def _authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""


def _query(scope: Scope) -> dict[str, Any]:
    try:
        return parse_query(scope.get("query_string", b""))
    except QueryStringError as exc:
        raise bad_request(f"Malformed query string: {exc}.") from None


def _headers(content_type: bytes, length: int, extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-length", str(length).encode()), (b"content-type", content_type)]
    for key, value in extra.items():
        headers.append((key.lower().encode("latin-1"), value.encode("latin-1")))
    return headers


async def send_result(result: Result, scope: Scope, receive: Receive, send: Send) -> None:
    """An engine result as ASGI messages (what `unified.render` and Starlette would send)."""
    if result.stream is not None:
        await unified.render(result)(scope, receive, send)
        return
    if result.raw is not None:
        body = result.raw
        content_type = result.content_type.encode("latin-1")
    else:
        body = orjson.dumps(result.body, option=orjson.OPT_NON_STR_KEYS)
        content_type = _JSON_TYPE
    await send(
        {"type": "http.response.start", "status": result.status, "headers": _headers(content_type, len(body), result.headers)}
    )
    await send({"type": "http.response.body", "body": body})


async def _list(scope: Scope, receive: Receive, send: Send) -> None:
    state: AppState = scope["app"].state.unicrm
    query = _query(scope)
    account = await unified.resolve_account(state, _authorization(scope), query)
    model = unified.resource_model(scope["path_params"]["resource"])
    await send_result(await state.engine.list(account, query, model.name), scope, receive, send)


async def _get(scope: Scope, receive: Receive, send: Send) -> None:
    state: AppState = scope["app"].state.unicrm
    query = _query(scope)
    account = await unified.resolve_account(state, _authorization(scope), query)
    model = unified.resource_model(scope["path_params"]["resource"])
    record_id = unified.checked_record_id(scope["path_params"]["id"])
    await send_result(await state.engine.get(account, record_id, query, model.name), scope, receive, send)


class UnifiedRouter(Router):
    """Starlette's router, with the two hot GET routes recognised first by their path alone."""

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(PREFIX):
                # `{resource}` and `{resource}/{id}`: one or two non-empty segments (what
                # Starlette's `[^/]+` path parameters match); anything else goes the usual way.
                resource, slash, record_id = path[len(PREFIX) :].partition("/")
                if resource and not slash:
                    _matched(scope, unified.list_records, {"resource": resource})
                    await _list(scope, receive, send)
                    return
                if resource and record_id and "/" not in record_id:
                    _matched(scope, unified.get_record, {"resource": resource, "id": record_id})
                    await _get(scope, receive, send)
                    return
        await super().app(scope, receive, send)


def _matched(scope: MutableMapping[str, Any], endpoint: Endpoint, path_params: dict[str, str]) -> None:
    # What Starlette's Route sets on a match (middleware reads `endpoint`, e.g. to name the route).
    scope["endpoint"] = endpoint
    scope["path_params"] = path_params
