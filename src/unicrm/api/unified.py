"""`/unified/crm/{resource}` routes: auth, account resolution, idempotency, rendering.

One set of routes serves every unified resource (projects, users, accounts, ...); an unknown
resource name is a 404 naming the known ones, a resource the account's provider lacks a 405.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from unicrm.api.limits import parse_json_body
from unicrm.api.openapi import Doc, documented, meta_variants, resource_variants
from unicrm.api.querystring import QueryStringError, parse_query
from unicrm.api.responses import JSONResponse
from unicrm.api.state import AppState
from unicrm.engine.errors import ApiError, bad_request, not_found
from unicrm.engine.meta import meta_document, missing_resource_meta
from unicrm.engine.operations import Result
from unicrm.model import OPERATIONS, RESOURCES, ResourceModel
from unicrm.outbound.trace import current_trace
from unicrm.store.database import Account

BASE = "/unified/crm/{resource}"
PREFIX = "/unified/crm/"
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_ID_CHARS = 256
MAX_KEY_CHARS = 255

DESCRIPTIONS = {
    "list": "A page of the account's records; follow `next_cursor` for the next. `truto_response_format=stream` "
    "sends every page as NDJSON.",
    "create": "Validated against the integration's requirements (see meta) before anything is sent. A dry run "
    "(`truto_skip_api_call=true`) answers 200 with the mapped request and creates nothing.",
    "update": "Only the fields sent change; null clears a field.",
}


def _doc(op: str) -> Doc:
    """The Doc of a generic handler: one documented operation per unified resource that has `op`."""
    return Doc(f"{op}Record", op, "Projects", variants=resource_variants(op, DESCRIPTIONS))


def _state(request: Request) -> AppState:
    return request.app.state.unicrm


def _query(request: Request) -> dict[str, Any]:
    try:
        return parse_query(request.scope.get("query_string", b""))
    except QueryStringError as exc:
        raise bad_request(f"Malformed query string: {exc}.") from None


async def _account(request: Request, query: dict[str, Any]) -> Account:
    return await resolve_account(_state(request), request.headers.get("authorization", ""), query)


async def resolve_account(state: AppState, authorization: str, query: dict[str, Any]) -> Account:
    """The token's environment, then the `integrated_account_id` of the query in it (or a 4xx)."""
    environment = await state.auth.environment_for(authorization)
    raw = query.get("integrated_account_id")
    if isinstance(raw, list):
        raw = raw[-1] if raw else None
    if not raw or not isinstance(raw, str):
        raise bad_request(
            "integrated_account_id is required: add ?integrated_account_id=<uuid> (list accounts with GET /integrated-account)."
        )
    if _CANONICAL_UUID.fullmatch(raw):
        account_id = raw  # already in the form uuid.UUID would give (the form every answer shows)
    else:
        try:
            account_id = str(uuid.UUID(raw))
        except ValueError:
            raise bad_request(f"integrated_account_id must be a UUID; got {raw!r}.") from None
    account = await state.accounts.get(account_id, environment)
    if account is None:
        raise not_found(f"No integrated account {account_id} in this environment. List yours with GET /integrated-account.")
    trace = current_trace()
    if trace is not None:
        trace.integration = account.integration
        trace.account_id = account.id
    return account


def _resource(request: Request) -> ResourceModel:
    return resource_model(request.path_params["resource"])


def resource_model(name: str) -> ResourceModel:
    """The unified resource of a path segment, or a 404 naming the known ones."""
    model = RESOURCES.get(name)
    if model is None:
        raise not_found(f"No unified resource {name!r}; unified CRM resources are: {', '.join(RESOURCES)}.")
    return model


async def _body(request: Request, model: ResourceModel) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise bad_request(f"The request body is empty: send a JSON object with unified {model.singular} fields.")
    return parse_json_body(raw)


def _record_id(request: Request) -> str:
    return checked_record_id(str(request.path_params["id"]))


def checked_record_id(record_id: str) -> str:
    """The record id of the path, bounded (it is percent-encoded into the provider's path)."""
    if not record_id or len(record_id) > MAX_ID_CHARS:
        raise bad_request(f"A record id has 1 to {MAX_ID_CHARS} characters; got {len(record_id)}.")
    return record_id


def render(result: Result) -> Response:
    """An engine result as an HTTP response."""
    if result.stream is not None:
        return StreamingResponse(result.stream, media_type=result.content_type, headers=result.headers)
    if result.raw is not None:
        return Response(result.raw, status_code=result.status, media_type=result.content_type, headers=result.headers)
    return JSONResponse(result.body, status_code=result.status, headers=result.headers)


@documented(_doc("list"))
async def list_records(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    model = _resource(request)
    return render(await _state(request).engine.list(account, query, model.name))


@documented(_doc("get"))
async def get_record(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    model = _resource(request)
    return render(await _state(request).engine.get(account, _record_id(request), query, model.name))


@documented(_doc("delete"))
async def delete_record(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    model = _resource(request)
    return render(await _state(request).engine.delete(account, _record_id(request), query, model.name))


@documented(_doc("create"))
async def create_record(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    model = _resource(request)
    body = await _body(request, model)
    key = request.headers.get("idempotency-key")
    # A reference derived from the key: stable across retries, never the key itself.
    reference = "unicrm-" + hashlib.sha256(f"{account.environment_id}\0{key}".encode()).hexdigest()[:32] if key else None
    return await _idempotent(
        request, account, body, lambda: _state(request).engine.create(account, body, query, reference, resource=model.name)
    )


@documented(_doc("update"))
async def update_record(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    model = _resource(request)
    body = await _body(request, model)
    record_id = _record_id(request)
    return await _idempotent(
        request, account, body, lambda: _state(request).engine.update(account, record_id, body, query, model.name)
    )


async def _idempotent(request: Request, account: Account, body: Any, run: Any) -> Response:
    """Honour `Idempotency-Key` on writes: a repeat replays the first answer instead of writing twice."""
    key = request.headers.get("idempotency-key")
    if not key:
        return render(await run())
    if len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise bad_request(f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable characters (a UUID is a good choice).")
    store = _state(request).store
    method, path = request.method, request.url.path
    request_hash = hashlib.sha256(orjson.dumps([request.url.query, body], option=orjson.OPT_SORT_KEYS)).hexdigest()
    hit = await store.idempotency_begin(account.environment_id, account.id, key, method, path, request_hash)
    if hit is not None:
        if hit.request_hash != request_hash:
            raise ApiError(422, "This Idempotency-Key was already used with a different request; use a new key.")
        if hit.state != "done" or hit.status_code is None:
            raise ApiError(409, "A request with this Idempotency-Key is still in progress; retry in a moment.")
        return Response(
            hit.body or b"",
            status_code=hit.status_code,
            media_type="application/json; charset=utf-8",
            headers={"idempotent-replayed": "true"},
        )
    try:
        response = render(await run())
    except ApiError as exc:
        if exc.outcome is not None:
            # The write may have happened (answer lost) or did (a later step failed): keep the
            # answer, so that a retry replays it instead of writing twice.
            await store.idempotency_finish(account.environment_id, key, method, path, exc.status, orjson.dumps(exc.body()))
        else:
            # A definite failure (validation, a complete provider answer, nothing sent):
            # nothing was written, so the key is released and the same request may run again.
            await store.idempotency_abort(account.environment_id, key, method, path)
        raise
    except BaseException:
        await store.idempotency_abort(account.environment_id, key, method, path)
        raise
    await store.idempotency_finish(account.environment_id, key, method, path, response.status_code, bytes(response.body))
    return response


def _method(request: Request) -> str:
    method = request.path_params["method"]
    if method not in OPERATIONS:
        raise bad_request(f"Unknown method {method!r}; meta is available for {', '.join(OPERATIONS)}.")
    return str(method)


def _meta(request: Request, integration: str, model: ResourceModel) -> Response:
    engine = _state(request).engine
    method = _method(request)
    mapping = engine.resource_mappings.get((integration, model.name))
    if mapping is None:
        return JSONResponse(missing_resource_meta(engine.providers[integration], model.name, method))
    return JSONResponse(meta_document(mapping, method))  # type: ignore[arg-type]


@documented(
    Doc(
        "meta",
        "meta",
        "Projects",
        variants=meta_variants(
            "get{name}MetaForAccount",
            "What the account's integration supports for a method on {label}",
            ("method", "integrated_account_id"),
        ),
    )
)
async def meta_for_account(request: Request) -> Response:
    query = _query(request)
    account = await _account(request, query)
    model = _resource(request)
    if account.integration not in _state(request).engine.providers:
        raise not_found(f"Integration {account.integration!r} is not available on this server.")
    return _meta(request, account.integration, model)


@documented(
    Doc(
        "meta",
        "meta",
        "Projects",
        variants=meta_variants(
            "get{name}MetaForIntegration",
            "What an integration supports for a method on {label}",
            ("integration", "method"),
            "Fields supported and required, filters honoured, page sizes, and where the provider differs from Truto.",
        ),
    )
)
async def meta_for_integration(request: Request) -> Response:
    await _state(request).auth.environment_of(request)
    model = _resource(request)
    name = request.path_params["integration"]
    if name not in _state(request).engine.providers:
        known = ", ".join(sorted(_state(request).engine.providers))
        raise not_found(f"No integration named {name!r}; available: {known}.")
    return _meta(request, name, model)


ROUTES = [
    Route(BASE, list_records, methods=["GET"]),
    Route(BASE, create_record, methods=["POST"]),
    Route(BASE + "/meta/{method}", meta_for_account, methods=["GET"]),
    Route(BASE + "/{integration}/meta/{method}", meta_for_integration, methods=["GET"]),
    Route(BASE + "/{id}", get_record, methods=["GET"]),
    Route(BASE + "/{id}", update_record, methods=["PATCH"]),
    Route(BASE + "/{id}", delete_record, methods=["DELETE"]),
]
