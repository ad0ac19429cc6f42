"""`POST /link-token` (Truto's shape): a single-use, expiring link to the hosted connect page.

New account: `tenant_id`, optional `integrations` (names to offer; default every one),
`redirect_uri`, `context` (defaults merged into the new account's context; link-token values
win over what the user types), `scopes` (OAuth scopes asked instead of the declared ones). Reconnect: `integrated_account_id` instead of `tenant_id`
(`persist_previous_context` keeps the old context under the new credentials). The answer is
`{"link_token", "url", "expires_at"}`; only a hash of the token is stored.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from unicrm.api.admin import _json_body, account_id_or_400
from unicrm.api.openapi import JSON, Doc, Reply, documented, register_schemas
from unicrm.api.responses import JSONResponse
from unicrm.api.state import AppState
from unicrm.engine.context import check_context
from unicrm.engine.errors import bad_request, not_found
from unicrm.store.connect import LINK_TOKEN_TTL

MAX_TTL = timedelta(days=30)
ALLOWED = {
    "scopes",
    "tenant_id",
    "integrated_account_id",
    "integrations",
    "redirect_uri",
    "context",
    "persist_previous_context",
    "expires_in",
}
# Accepted and ignored: Truto options with no meaning here.
IGNORED = {"environment_unified_model_id", "truto_static_gate_id", "region"}


def public_base_url(request: Request) -> str:
    """Where browsers reach this server: `UNICRM_PUBLIC_URL` if set, else the request's own origin."""
    configured = getattr(request.app.state, "public_url", None) or os.environ.get("UNICRM_PUBLIC_URL")
    if configured:
        return str(configured).rstrip("/")
    return str(request.base_url).rstrip("/")


def check_redirect_uri(value: Any) -> str | None:
    """An absolute http(s) URL, or a 400."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad_request("redirect_uri must be a string (an absolute http or https URL).")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_request(f"redirect_uri must be an absolute http or https URL; got {value!r}.")
    return value


register_schemas(
    {
        "LinkTokenCreate": {
            "type": "object",
            "description": "A new account: tenant_id; a reconnect: integrated_account_id instead",
            "properties": {
                "tenant_id": {"type": "string", "description": "for a new account"},
                "integrated_account_id": {"type": "string", "format": "uuid", "description": "to reconnect"},
                "integrations": {"type": "array", "items": {"type": "string"}, "description": "names to offer"},
                "redirect_uri": {"type": "string", "format": "uri"},
                "context": {"type": "object", "description": "defaults merged into the new account's context"},
                "persist_previous_context": {"type": "boolean"},
                "scopes": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "OAuth scopes to ask instead of the declared ones",
                },
                "expires_in": {"type": "integer", "minimum": 1, "description": "seconds (unicrm extension)"},
            },
            "example": {"tenant_id": "acme", "redirect_uri": "https://app.example.com/crm-connected"},
        },
        "LinkToken": {
            "type": "object",
            "required": ["link_token", "url", "expires_at"],
            "properties": {
                "link_token": {"type": "string"},
                "url": {"type": "string", "format": "uri", "description": "the hosted connect page to send your customer to"},
                "expires_at": {"type": "string", "format": "date-time"},
            },
        },
    }
)


@documented(
    Doc(
        "createLinkToken",
        "Create a link to the hosted connect page (single use, 7 days by default)",
        "Connect",
        body="LinkTokenCreate",
        replies={201: Reply("The link", {JSON: "LinkToken"})},
        errors=(400, 401, 404, 413, 500),
    )
)
async def create_link_token(request: Request) -> Response:
    state: AppState = request.app.state.unicrm
    environment = await state.auth.environment_of(request)
    body = await _json_body(request)
    unknown = sorted(set(body) - ALLOWED - IGNORED)
    if unknown:
        raise bad_request(f"Unknown link-token field(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(ALLOWED))}.")
    providers = state.engine.providers
    tenant = body.get("tenant_id")
    account_id = body.get("integrated_account_id")
    if tenant and account_id:
        raise bad_request("Send tenant_id for a new account or integrated_account_id to reconnect one, not both.")
    if not tenant and not account_id:
        raise bad_request("tenant_id is required (or integrated_account_id to reconnect an existing account).")
    if tenant is not None and not isinstance(tenant, str):
        raise bad_request("tenant_id must be a string.")
    integrations = body.get("integrations")
    if integrations is not None:
        if not isinstance(integrations, list) or not integrations or not all(isinstance(i, str) for i in integrations):
            raise bad_request("integrations must be a non-empty list of integration names.")
        wrong = [i for i in integrations if i not in providers]
        if wrong:
            raise bad_request(f"Unknown integration(s): {', '.join(wrong)}. Available: {', '.join(sorted(providers))}.")
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise bad_request("context must be an object.")
    bad = sorted(k for k, v in context.items() if v is not None and not isinstance(v, str | int | float | bool))
    if bad:
        raise bad_request(f"Context values must be strings or numbers: {', '.join(bad)}.")
    if account_id is not None:
        if not isinstance(account_id, str):
            raise bad_request("integrated_account_id must be a string.")
        account_id = account_id_or_400(account_id)
        account = await state.store.get_account(account_id, environment)
        if account is None:
            raise not_found("No such integrated account in this environment.")
        declared = {c.name for c in providers[account.integration].context} if account.integration in providers else set()
        integrations = [account.integration]
    else:
        offered = integrations or list(providers)
        declared = {c.name for name in offered for c in providers[name].context}
    stray = sorted(k for k in context if k not in declared)
    if stray:
        raise bad_request(f"Context key(s) no offered integration declares: {', '.join(stray)}. See GET /integration.")
    # The same bounds and destinations as an account's context, per integration that would get the keys.
    for name in integrations or list(providers):
        provider = providers[name]
        subset = {c.name: context[c.name] for c in provider.context if c.name in context and context[c.name] is not None}
        if subset:
            check_context(provider, state.engine.destinations[name], subset)
    ttl = LINK_TOKEN_TTL
    if body.get("expires_in") is not None:
        seconds = body["expires_in"]
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= MAX_TTL.total_seconds():
            raise bad_request(f"expires_in must be a whole number of seconds from 1 to {int(MAX_TTL.total_seconds())}.")
        ttl = timedelta(seconds=seconds)
    scopes = body.get("scopes")
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(x, str) and x for x in scopes)):
        raise bad_request("scopes must be a list of OAuth scope names.")
    persist = body.get("persist_previous_context", False)
    if not isinstance(persist, bool):
        raise bad_request("persist_previous_context must be true or false.")
    token, link = await state.connect.create_link_token(
        environment,
        tenant_id=tenant if account_id is None else None,
        integrated_account_id=account_id,
        integrations=integrations,
        redirect_uri=check_redirect_uri(body.get("redirect_uri")),
        context={k: v for k, v in context.items() if v is not None},
        persist_previous_context=persist,
        ttl=ttl,
        scopes=scopes or None,
    )
    url = f"{public_base_url(request)}/connect?{urlencode({'link_token': token})}"
    expires = link.expires_at.isoformat().replace("+00:00", "Z")
    return JSONResponse({"link_token": token, "url": url, "expires_at": expires}, status_code=201)


ROUTES = [Route("/link-token", create_link_token, methods=["POST"])]
