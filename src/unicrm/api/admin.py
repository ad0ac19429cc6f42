"""`/integration` and `/integrated-account` routes (PRODUCT §4).

Context secrets are validated against the integration's declared context, encrypted by the
store, and never returned: responses list which secret keys are set, not their values.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unicrm.api.limits import parse_json_body
from unicrm.api.openapi import ADMIN_ERRORS, JSON, Doc, Reply, documented
from unicrm.api.querystring import QueryStringError, parse_query
from unicrm.api.responses import JSONResponse
from unicrm.api.state import AppState
from unicrm.engine.context import check_context
from unicrm.engine.errors import ApiError, bad_request, not_found
from unicrm.outbound.trace import current_trace
from unicrm.providers.declaration import Provider
from unicrm.store.database import Account

MAX_TENANT_CHARS = 255


def _state(request: Request) -> AppState:
    return request.app.state.unicrm


def integration_document(provider: Provider) -> dict[str, Any]:
    """An integration and the JSON Schema of its account context."""
    props = {}
    for c in provider.context:
        props[c.name] = {"type": "string", "description": c.description, "x-secret": c.secret}
        if c.default is not None:
            props[c.name]["default"] = c.default
        if c.form:
            # What the hosted connect page asks for, and where the user finds it.
            props[c.name]["x-connect-form"] = {"label": c.label or c.name, "where": c.where}
    return {
        "name": provider.name,
        "label": provider.label,
        "documentation_link": provider.docs_url,
        "authentication_method": provider.auth.scheme,
        "operations": sorted(provider.endpoints),
        # Every unified resource and its operations (projects' are `operations` above).
        "resources": {
            name: sorted(view.endpoints) for name in provider.resource_names() if (view := provider.for_resource(name))
        },
        "connect": {"oauth2_authorization_code": provider.oauth_connect, "form": bool(provider.form_fields)},
        "context_schema": {
            "type": "object",
            "properties": props,
            "required": [c.name for c in provider.context if c.required],
            "additionalProperties": False,
        },
    }


def account_document(account: Account, provider: Provider | None) -> dict[str, Any]:
    secret_keys = {c.name for c in provider.context if c.secret} if provider else set(account.context)
    return {
        "id": account.id,
        "tenant_id": account.tenant_id,
        "environment_id": account.environment_id,
        "integration": {"name": account.integration, "label": provider.label if provider else account.integration},
        "authentication_method": provider.auth.scheme if provider else None,
        "context": {k: v for k, v in account.context.items() if k not in secret_keys},
        "secrets_set": sorted(k for k in account.context if k in secret_keys),
        "status": account.status,
        "last_error": account.last_error,
        "created_at": account.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": account.updated_at.isoformat().replace("+00:00", "Z"),
    }


def validate_context(provider: Provider, context: Any, *, partial: bool = False) -> dict[str, Any]:
    """A context that fits the integration's declaration, or a 400 naming the keys."""
    if not isinstance(context, dict):
        raise bad_request("context must be an object of credentials and settings; see GET /integration/" + provider.name)
    allowed = {c.name: c for c in provider.context}
    unknown = sorted(k for k in context if k not in allowed)
    if unknown:
        raise bad_request(f"Unknown context key(s) for {provider.name}: {', '.join(unknown)}. Allowed: {', '.join(allowed)}.")
    bad = sorted(k for k, v in context.items() if v is not None and not isinstance(v, str | int | float | bool))
    if bad:
        raise bad_request(f"Context values must be strings or numbers: {', '.join(bad)}.")
    if not partial:
        missing = [c.name for c in provider.context if c.required and not context.get(c.name)]
        if missing:
            raise bad_request(
                f"Missing context key(s) for {provider.name}: {', '.join(missing)}.",
                missing_required_body_fields={"description": "Context keys this integration needs", "value": missing},
            )
    return {k: v for k, v in context.items() if v is not None}


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    body = parse_json_body(raw) if raw.strip() else None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _provider(request: Request, name: Any) -> Provider:
    providers = _state(request).engine.providers
    if not isinstance(name, str) or name not in providers:
        raise bad_request(f"integration must be one of {', '.join(sorted(providers))}; got {name!r}.")
    return providers[name]


@documented(
    Doc(
        "listIntegrations",
        "List integrations and their context schema",
        "Integrations and accounts",
        replies={200: Reply("Every integration this server has", {JSON: "IntegrationList"})},
        errors=(401, 500),
    )
)
async def list_integrations(request: Request) -> Response:
    await _state(request).auth.environment_of(request)
    providers = _state(request).engine.providers
    result = [integration_document(p) for p in providers.values()]
    return JSONResponse({"result": result, "next_cursor": None, "limit": len(result)})


@documented(
    Doc(
        "getIntegration",
        "Get an integration",
        "Integrations and accounts",
        params=("integration_name",),
        replies={200: Reply("The integration and the JSON Schema of its account context", {JSON: "Integration"})},
        errors=(401, 404, 500),
    )
)
async def get_integration(request: Request) -> Response:
    await _state(request).auth.environment_of(request)
    name = request.path_params["name"]
    provider = _state(request).engine.providers.get(name)
    if provider is None:
        raise not_found(f"No integration named {name!r}.")
    return JSONResponse(integration_document(provider))


async def new_account(state: AppState, environment: str, provider: Provider, tenant: str, context: Any) -> Account:
    """Validate a context and create the account (the one path: POST /integrated-account and the connect page)."""
    checked = validate_context(provider, context)
    check_context(provider, state.engine.destinations[provider.name], checked)
    account = await state.store.create_account(
        environment,
        provider.name,
        tenant,
        checked,
        then=state.events.on("integrated_account:created", lambda a: account_document(a, provider)),
    )
    state.events.wake()
    return account


async def replace_credentials(state: AppState, account: Account, provider: Provider, context: Any) -> Account:
    """A reconnect: the whole context replaced, status back to active, same id (the connect page)."""
    checked = validate_context(provider, context)
    check_context(provider, state.engine.destinations[provider.name], checked)
    updated = await state.store.update_account(
        account.id,
        account.environment_id,
        context=checked,
        status="active",
        last_error=None,
        then=state.events.on("integrated_account:active", lambda a: account_document(a, provider)),
    )
    if updated is None:
        raise not_found("No such integrated account in this environment.")
    await state.accounts.changed(updated)
    state.events.wake()
    return updated


@documented(
    Doc(
        "createIntegratedAccount",
        "Connect an account",
        "Integrations and accounts",
        description="The context is checked against the integration's context schema; secrets are encrypted at rest and never returned.",
        body="IntegratedAccountCreate",
        replies={201: Reply("The account", {JSON: "IntegratedAccount"})},
        errors=ADMIN_ERRORS,
    )
)
async def create_account(request: Request) -> Response:
    state = _state(request)
    environment = await state.auth.environment_of(request)
    body = await _json_body(request)
    provider = _provider(request, body.get("integration"))
    tenant = body.get("tenant_id") or ""
    if not isinstance(tenant, str) or len(tenant) > MAX_TENANT_CHARS or not tenant.isprintable():
        raise bad_request(f"tenant_id must be a string of at most {MAX_TENANT_CHARS} printable characters.")
    account = await new_account(state, environment, provider, tenant, body.get("context"))
    return JSONResponse(account_document(account, provider), status_code=201)


def account_id_or_400(value: str) -> str:
    """The canonical form of an integrated account id, or a 400."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise bad_request(f"The integrated account id must be a UUID; got {value!r}.") from None


def _account_id(request: Request) -> str:
    return account_id_or_400(request.path_params["id"])


async def _owned(request: Request) -> tuple[str, Account]:
    state = _state(request)
    environment = await state.auth.environment_of(request)
    account = await state.store.get_account(_account_id(request), environment)
    if account is None:
        raise not_found("No such integrated account in this environment.")
    trace = current_trace()
    if trace is not None:
        trace.integration = account.integration
        trace.account_id = account.id
    return environment, account


@documented(
    Doc(
        "getIntegratedAccount",
        "Get an account",
        "Integrations and accounts",
        params=("account_id",),
        replies={200: Reply("The account", {JSON: "IntegratedAccount"})},
        errors=ADMIN_ERRORS,
    )
)
async def get_account(request: Request) -> Response:
    _, account = await _owned(request)
    return JSONResponse(account_document(account, _state(request).engine.providers.get(account.integration)))


@documented(
    Doc(
        "listIntegratedAccounts",
        "List accounts",
        "Integrations and accounts",
        params=("account_limit", "account_cursor", "filter_integration_name", "tenant_id"),
        replies={200: Reply("A page of accounts", {JSON: "IntegratedAccountList"})},
        errors=ADMIN_ERRORS,
    )
)
async def list_accounts(request: Request) -> Response:
    state = _state(request)
    environment = await state.auth.environment_of(request)
    try:
        query = parse_query(request.scope.get("query_string", b""))
    except QueryStringError as exc:
        raise bad_request(str(exc)) from None
    limit_raw = query.get("limit", "100")
    try:
        limit = int(limit_raw if isinstance(limit_raw, str) else "x")
    except ValueError:
        raise bad_request(f"limit must be a whole number from 1 to 1000; got {limit_raw!r}.") from None
    if not 1 <= limit <= 1000:
        raise bad_request(f"limit must be a whole number from 1 to 1000; got {limit}.")
    # Truto filters by `integration.name` (bracket form integration[name]) or integration_name.
    integration = query.get("integration_name")
    if isinstance(query.get("integration"), dict):
        integration = query["integration"].get("name")
    integration_name = integration if isinstance(integration, str) else None
    tenant_id = query.get("tenant_id") if isinstance(query.get("tenant_id"), str) else None
    # Signed like the unified cursors, bound to the environment and the filters it continues.
    fingerprint = orjson.dumps(["accounts", integration_name, tenant_id, limit]).decode()
    after = None
    raw_cursor = query.get("next_cursor")
    if raw_cursor:
        if not isinstance(raw_cursor, str):
            raise bad_request("next_cursor must be a single value.")
        try:
            after = state.engine.codec.decode(raw_cursor, environment, fingerprint).get("c")
        except ApiError:
            raise bad_request(
                "next_cursor is not a cursor this server issued for this environment and these filters; "
                "pass it exactly as the previous page returned it."
            ) from None
    try:
        accounts, store_cursor = await state.store.list_accounts(
            environment,
            limit=limit,
            cursor=after if isinstance(after, str) else None,
            integration=integration_name,
            tenant_id=tenant_id,
        )
    except ValueError:
        raise bad_request("next_cursor is not a valid cursor.") from None
    cursor = state.engine.codec.encode(environment, fingerprint, {"c": store_cursor}) if store_cursor else None
    providers = state.engine.providers
    return JSONResponse(
        {"result": [account_document(a, providers.get(a.integration)) for a in accounts], "next_cursor": cursor, "limit": limit}
    )


@documented(
    Doc(
        "updateIntegratedAccount",
        "Update an account",
        "Integrations and accounts",
        description="`context` merges into the stored context (null removes a key); a new context puts the account back to `active`.",
        params=("account_id",),
        body="IntegratedAccountPatch",
        replies={200: Reply("The account", {JSON: "IntegratedAccount"})},
        errors=ADMIN_ERRORS,
    )
)
async def update_account(request: Request) -> Response:
    state = _state(request)
    environment, account = await _owned(request)
    body = await _json_body(request)
    provider = state.engine.providers.get(account.integration)
    if provider is None:
        raise ApiError(400, f"Integration {account.integration!r} is not available on this server.")
    unknown = sorted(set(body) - {"tenant_id", "context"})
    if unknown:
        raise bad_request(f"Only tenant_id and context can be changed; got {', '.join(unknown)}.")
    context = None
    if "context" in body:
        # Like Truto, a PATCH merges into the existing context (null removes a key).
        patch = validate_context(provider, body["context"], partial=True)
        removed = {k for k, v in (body["context"] or {}).items() if v is None}
        context = {k: v for k, v in {**account.context, **patch}.items() if k not in removed}
        validate_context(provider, context)
        check_context(provider, state.engine.destinations[provider.name], context)
    tenant = body.get("tenant_id")
    if tenant is not None and (not isinstance(tenant, str) or len(tenant) > MAX_TENANT_CHARS or not tenant.isprintable()):
        raise bad_request(f"tenant_id must be a string of at most {MAX_TENANT_CHARS} printable characters.")
    updated = await state.store.update_account(
        account.id,
        environment,
        tenant_id=tenant,
        context=context,
        status="active" if context is not None else None,
        last_error=None if context is not None else account.last_error,
        then=state.events.on("integrated_account:updated", lambda a: account_document(a, provider)),
    )
    if updated is None:
        raise not_found("No such integrated account in this environment.")
    await state.accounts.changed(updated)
    state.events.wake()
    return JSONResponse(account_document(updated, provider))


@documented(
    Doc(
        "deleteIntegratedAccount",
        "Delete an account",
        "Integrations and accounts",
        params=("account_id",),
        replies={200: Reply("Deleted", {JSON: "Deleted"})},
        errors=ADMIN_ERRORS,
    )
)
async def delete_account(request: Request) -> Response:
    state = _state(request)
    environment, account = await _owned(request)
    provider = state.engine.providers.get(account.integration)
    await state.store.delete_account(
        account.id, environment, then=state.events.on("integrated_account:deleted", lambda a: account_document(a, provider))
    )
    await state.accounts.changed(account.id)
    state.events.wake()
    return JSONResponse({"id": account.id})


ROUTES = [
    Route("/integration", list_integrations, methods=["GET"]),
    Route("/integration/{name}", get_integration, methods=["GET"]),
    Route("/integrated-account", list_accounts, methods=["GET"]),
    Route("/integrated-account", create_account, methods=["POST"]),
    Route("/integrated-account/{id}", get_account, methods=["GET"]),
    Route("/integrated-account/{id}", update_account, methods=["PATCH"]),
    Route("/integrated-account/{id}", delete_account, methods=["DELETE"]),
]
