"""Auth flows by short name: each turns an account's context into request headers.

OAuth2 flows also know when the access token needs refreshing and how to refresh it; the
engine serialises refreshes per account through the store (one at a time, across processes).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from unicrm.engine.errors import ApiError
from unicrm.outbound.http import ProviderResponse, redirect_error, send, session_or_refusal
from unicrm.outbound.policy import Destinations, render_url
from unicrm.outbound.pool import SessionPool
from unicrm.outbound.trace import CallRecord, current_trace, loggable_url
from unicrm.providers.declaration import Auth

HeaderBuilder = Callable[[Auth, Mapping[str, Any]], dict[str, str]]


def _bearer(auth: Auth, context: Mapping[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {context.get(auth.token_key, '')}"}


def _basic(auth: Auth, context: Mapping[str, Any]) -> dict[str, str]:
    user = str(context.get(auth.username_key or "username", ""))
    password = str(context.get(auth.password_key, "")) if auth.password_key else ""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _header(auth: Auth, context: Mapping[str, Any]) -> dict[str, str]:
    # An API key in a provider's own header (X-Api-Key and the like), no Authorization.
    return {auth.header_name or "X-Api-Key": f"{auth.header_prefix}{context.get(auth.token_key, '')}"}


AUTH_FLOWS: dict[str, HeaderBuilder] = {"bearer": _bearer, "basic": _basic, "oauth2": _bearer, "header": _header}


def auth_headers(auth: Auth, context: Mapping[str, Any]) -> dict[str, str]:
    """Headers that authenticate a request for this account."""
    return AUTH_FLOWS[auth.scheme](auth, context)


def needs_refresh(auth: Auth, context: Mapping[str, Any]) -> bool:
    """True when an OAuth2 access token is missing or expires within the refresh margin."""
    if auth.scheme != "oauth2" or not context.get("refresh_token"):
        return False
    expires_at = context.get("expires_at")
    if not context.get(auth.token_key):
        return True
    if expires_at is None:
        return False
    try:
        return float(expires_at) - auth.refresh_margin_s <= time.time()
    except (TypeError, ValueError):
        return True


def token_url(auth: Auth, context: Mapping[str, Any]) -> str:
    """The token endpoint: the account's `token_url` setting, else the declared one."""
    url = context.get("token_url") or auth.token_url
    if not url:
        raise ApiError(500, "This integration declares OAuth2 without a token URL.")
    return render_url(str(url), context)


async def refresh_oauth2(pool: SessionPool, auth: Auth, context: Mapping[str, Any], destinations: Destinations) -> dict[str, Any]:
    """Exchange the refresh token for a new access token; returns the new context.

    A provider that rotates refresh tokens returns a new one, which replaces the old; one that
    does not keeps the old refresh token valid, so it is kept.
    """
    form = {
        "grant_type": "refresh_token",
        "refresh_token": str(context.get("refresh_token", "")),
        "client_id": str(context.get("client_id", "")),
        "client_secret": str(context.get("client_secret", "")),
    }
    url = token_url(auth, context)
    session = session_or_refusal(pool, url, destinations)
    trace = current_trace()
    started = time.perf_counter()
    status: int | None = None
    # Never follow a redirect: it would hand the refresh token and client secret to another host.
    try:
        async with asyncio.timeout(pool.timeouts.read):
            async with session.post(url, data=form, headers={"Accept": "application/json"}, allow_redirects=False) as resp:
                status = resp.status
                body = await resp.read()
                headers = resp.headers
    except TimeoutError:
        raise ApiError(
            504, f"The token endpoint did not answer within {pool.timeouts.read:g} s. Try again later.", remote=True
        ) from None
    except aiohttp.ClientError as exc:
        raise ApiError(
            502, f"Could not refresh the access token: {type(exc).__name__} at the token endpoint. Try again later.", remote=True
        ) from None
    finally:
        if trace is not None:
            trace.calls.append(CallRecord("POST", loggable_url(url), status, time.perf_counter() - started, kind="token"))
    assert status is not None
    if 300 <= status < 400:
        raise redirect_error(ProviderResponse(status, headers, body, url), "POST", url, write=False)
    try:
        data = orjson.loads(body) if body.strip() else None
    except ValueError:
        data = body.decode("utf-8", "replace")
    if status >= 400 or not isinstance(data, dict) or not data.get("access_token"):
        if trace is not None:
            trace.refresh_failures += 1
        raise RefreshRefused(status, data)
    if trace is not None:
        trace.refreshes += 1
    new = dict(context)
    new[auth.token_key] = data["access_token"]
    if data.get("refresh_token"):
        new["refresh_token"] = data["refresh_token"]
    if data.get("expires_in") is not None:
        new["expires_at"] = time.time() + float(data["expires_in"])
    return new


def pkce_pair() -> tuple[str, str]:
    """An RFC 7636 code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorization_url(
    auth: Auth,
    *,
    authorize_url: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    code_challenge: str | None,
    scopes: list[str] | None = None,
) -> str:
    """Where the browser goes to consent: the provider's authorize endpoint with our parameters.

    `scopes` (a link token's) replace the declared ones.
    """
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "state": state}
    asked = scopes or auth.scopes
    if asked:
        params["scope"] = auth.scope_separator.join(asked)
    if code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    return authorize_url + ("&" if "?" in authorize_url else "?") + urlencode(params)


class ExchangeFailed(Exception):
    """The token endpoint refused the code (`refused`) or could not be reached (`unreachable`)."""

    def __init__(self, kind: str, status: int | None, body: Any = None) -> None:
        super().__init__(f"code exchange {kind} (HTTP {status})")
        self.kind = kind
        self.status = status
        self.body = body


async def exchange_code(
    pool: SessionPool,
    destinations: Destinations,
    *,
    token_url: str,
    code: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str,
    code_verifier: str | None,
) -> dict[str, Any]:
    """The authorization-code grant: the token endpoint's JSON answer (access and refresh token).

    The token URL must be one of the provider's allowed origins (a 400 otherwise), and a
    redirect is never followed (it would hand the code and client secret to another host).
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    if code_verifier:
        form["code_verifier"] = code_verifier
    session = session_or_refusal(pool, token_url, destinations)
    try:
        async with asyncio.timeout(pool.timeouts.read):
            async with session.post(token_url, data=form, headers={"Accept": "application/json"}, allow_redirects=False) as resp:
                status = resp.status
                body = await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError):
        raise ExchangeFailed("unreachable", None) from None
    try:
        data = orjson.loads(body) if body.strip() else None
    except ValueError:
        data = None
    if status >= 500:
        raise ExchangeFailed("unreachable", status, data)
    if status >= 300 or not isinstance(data, dict) or not data.get("access_token"):
        raise ExchangeFailed("refused", status, data)
    return data


class RefreshRefused(Exception):
    """The provider refused to refresh the token: the account must be reconnected."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"refresh refused with HTTP {status}")
        self.status = status
        self.body = body


# `send` is re-exported for hooks that need a raw call outside an account context.
__all__ = [
    "AUTH_FLOWS",
    "ExchangeFailed",
    "RefreshRefused",
    "auth_headers",
    "authorization_url",
    "exchange_code",
    "needs_refresh",
    "pkce_pair",
    "refresh_oauth2",
    "send",
]
