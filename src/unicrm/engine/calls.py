"""One account's calls to its provider: URL, headers, auth, token refresh, error mapping.

`ProviderCall` is what the operations use and what provider hooks receive, so a hook never
builds URLs or handles credentials itself. Every exchange can be recorded (redacted) for the
`debug` format and the `truto_skip_api_call` dry run.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from unicrm.engine.errors import ApiError, bad_request
from unicrm.engine.mapping import CompiledMapping, deep_merge, get_path, set_path, unified_for_remote
from unicrm.outbound.auth import RefreshRefused, auth_headers, needs_refresh, refresh_oauth2
from unicrm.outbound.http import ProviderResponse, flatten_params, send
from unicrm.outbound.policy import Destinations, render_url
from unicrm.outbound.pool import SessionPool
from unicrm.providers.declaration import Endpoint, FieldError, Provider, parse_iso_datetime

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
# A 429 is a certain "not done": waiting this long and sending again is safe even for a write.
MAX_RETRY_AFTER_S = 3
MIN_SECRET_LENGTH = 4
MESSAGE_KEYS = (
    "message",
    "Message",
    "msg",
    "errorMessage",
    "error_description",
    "description",
    "detail",
    "summary",
    "error",
    "title",
)


class AccountGateway(Protocol):
    """What calls need from the store: refresh tokens once across processes, flag reauth."""

    async def refresh_context(
        self,
        account_id: str,
        needs: Callable[[dict[str, Any]], bool],
        refresh: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]: ...

    async def mark_needs_reauth(self, account_id: str, message: str) -> None: ...


@dataclass
class Exchange:
    """One provider request as the debug format shows it (credentials redacted)."""

    method: str
    url: str
    headers: dict[str, str]
    params: list[tuple[str, str]]
    body: Any
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    #: the answer, kept so `response_headers` is copied only when the debug format asks
    response: ProviderResponse | None = field(default=None, repr=False)

    def answer_headers(self) -> dict[str, str]:
        return dict(self.response.headers) if self.response is not None else self.response_headers


@dataclass(frozen=True)
class CallSetup:
    """What a `ProviderCall` derives from an account's context alone, so the engine can reuse it.

    `secrets`/`needles`: every form of the account's credentials (see `ProviderCall.learn`);
    `base_url`: the account's provider base URL.
    """

    secrets: tuple[str, ...]
    needles: tuple[bytes, ...]
    base_url: str
    #: the request headers built from the declaration's templates and the auth scheme
    headers: dict[str, str]
    #: the forms that hold no other form: an answer holds a credential iff it holds one of these
    probes: tuple[bytes, ...] = ()
    text_probes: tuple[str, ...] = ()


class ProviderCall:
    """Sends requests to one account's provider."""

    def __init__(
        self,
        provider: Provider,
        mapping: CompiledMapping,
        account_id: str,
        context: dict[str, Any],
        pool: SessionPool,
        gateway: AccountGateway,
        destinations: Destinations,
        setup: CallSetup | None = None,
    ) -> None:
        self.provider = provider
        self.mapping = mapping
        self.account_id = account_id
        self.context = context
        self.pool = pool
        self.gateway = gateway
        # The last few exchanges, for the debug format; bounded because a stream makes one
        # call per page through the same ProviderCall.
        self.exchanges: deque[Exchange] = deque(maxlen=16)
        self.last_response: ProviderResponse | None = None
        self.destinations = destinations
        # Built once per context (a token refresh replaces `self.context`, and with it these).
        setup = setup or self.learn(provider, context)
        self._secrets = setup.secrets
        self._needles = setup.needles
        self._probes, self._text_probes = setup.probes, setup.text_probes
        self.base_url = setup.base_url
        self._headers = setup.headers
        self._headers_for: dict[str, Any] | None = context
        self._headers_checked = False

    @staticmethod
    def learn(provider: Provider, context: Mapping[str, Any]) -> CallSetup:
        """What an account's context alone decides: its credentials in every form, its base URL.

        The credentials: the context's secret values, the auth headers sent (a Basic token is
        not in the context as such), and their JSON-escaped and URL-encoded forms (see `secret_forms`).
        """
        raw = {str(context.get(c.name)) for c in provider.context if c.secret and context.get(c.name)}
        for value in auth_headers(provider.auth, context).values():
            raw.add(value)
            raw.add(value.partition(" ")[2])
        secrets, needles = secret_forms(frozenset(raw))
        values = _template_values(provider, context)
        base = context.get("base_url") or render_url(provider.base_url, values)
        headers = {k: v.format_map(values) for k, v in provider.headers.items()}
        headers.update(auth_headers(provider.auth, context))
        # Searching for "Bearer <token>" adds nothing once "<token>" is searched for: an answer
        # is scanned (a list page is ~50 KB) only for the forms that contain no other form.
        text_probes = tuple(a for a in secrets if not any(b != a and b in a for b in secrets))
        probes = tuple(a.encode() for a in text_probes)
        return CallSetup(secrets, needles, str(base).rstrip("/"), headers, probes, text_probes)

    def _learn_secrets(self) -> None:
        setup = self.learn(self.provider, self.context)
        self._secrets, self._needles = setup.secrets, setup.needles
        self._probes, self._text_probes = setup.probes, setup.text_probes

    # ------------------------------------------------------------------ building requests
    def url_for(self, endpoint: Endpoint, record_id: str | None = None) -> str:
        path = endpoint.path
        if record_id is not None:
            if record_id in (".", ".."):
                # The HTTP client would resolve a dot segment: the call would reach another path.
                raise bad_request(f"{record_id!r} is not a record id.")
            path = path.replace("{id}", quote(record_id, safe=""))
        return self.base_url + path

    def headers(self) -> dict[str, str]:
        # Built from the context it was given (a token refresh replaces `self.context`: rebuilt then).
        if self._headers_for is not self.context:
            values = self._template_context()
            self._headers = {k: v.format_map(values) for k, v in self.provider.headers.items()}
            self._headers.update(auth_headers(self.provider.auth, self.context))
            self._headers_for, self._headers_checked = self.context, False
        if not self._headers_checked:
            for name, value in self._headers.items():
                if not value.isprintable():
                    # CR/LF would split the header (and aiohttp refuses it); accounts are checked on
                    # create/patch, this catches one stored before that check existed.
                    raise bad_request(
                        f"The {name} header built from this account's context holds control characters; fix the context."
                    )
            self._headers_checked = True
        return dict(self._headers)

    def _template_context(self) -> _Ctx:
        return _template_values(self.provider, self.context)

    def plan(self, endpoint: Endpoint, record_id: str | None, params: Mapping[str, Any], body: Any) -> Exchange:
        """The request that would be sent (for dry runs), redacted."""
        method, url, query, payload = self._shape(endpoint, record_id, params, body)
        return self._redacted(Exchange(method, url, self.headers(), query, payload))

    def _shape(
        self, endpoint: Endpoint, record_id: str | None, params: Mapping[str, Any], body: Any
    ) -> tuple[str, str, list[tuple[str, str]], Any]:
        if not params and endpoint.params_in != "body" and not endpoint.id_in_body and body is None:
            # A plain read (GET by id): its query is the declaration's, flattened once.
            return endpoint.method, self.url_for(endpoint, record_id), _declared_query(endpoint), None
        params = {**endpoint.query, **params}
        payload = body
        if endpoint.params_in == "body":
            # RPC-style APIs take paging and filters in the body; dotted keys nest (`page.size`).
            nested: dict[str, Any] = {}
            for key, value in params.items():
                set_path(nested, str(key), value)
            payload = deep_merge(nested, payload or {})
            params = {}
        if endpoint.id_in_body and record_id is not None:
            payload = {**(payload or {}), endpoint.id_in_body: self.provider_id(record_id)}
        if endpoint.wrap and body is not None:
            payload = {endpoint.wrap: payload}
        return endpoint.method, self.url_for(endpoint, record_id), flatten_params(params), payload

    def provider_id(self, record_id: str) -> Any:
        """A unified id in the provider's own type (numeric ids go back as numbers)."""
        fld = self.provider.field("id")
        if fld is not None and fld.conv is not None:
            try:
                return fld.conv.write(record_id, {})
            except ValueError:
                return record_id
        return record_id

    # ------------------------------------------------------------------ sending
    async def call(
        self,
        endpoint: Endpoint,
        record_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> ProviderResponse:
        """Send a declared endpoint; raises `ApiError` for provider errors."""
        method, url, query, payload = self._shape(endpoint, record_id, params or {}, body)
        return await self.request(method, url, query, payload, retriable=endpoint.retriable)

    async def request(
        self,
        method: str,
        url: str,
        query: list[tuple[str, str]] | None = None,
        payload: Any = None,
        retriable: bool | None = None,
    ) -> ProviderResponse:
        """Send any request to this provider (hooks use it for follow-up calls); `retriable` as in `send`."""
        if not url.startswith("http"):
            url = self.base_url + url
        auth = self.provider.auth
        if needs_refresh(auth, self.context):
            await self._refresh()
        response = await self._send(method, url, query or [], payload, retriable)
        if response.status == 401 and auth.scheme == "oauth2" and self.context.get("refresh_token"):
            # A 401 means the provider did nothing, so one retry after a refresh is safe even for writes.
            await self._refresh(force=True)
            response = await self._send(method, url, query or [], payload, retriable)
        if response.status == 429:
            # The provider certainly did nothing; a short Retry-After is worth one wait here.
            wait = _retry_after_header(self.provider, response)
            if wait is not None and wait <= MAX_RETRY_AFTER_S:
                await asyncio.sleep(wait)
                response = await self._send(method, url, query or [], payload, retriable)
        self.last_response = response
        if response.status >= 400:
            raise self.redact_error(await self._error(response))
        return response

    async def _send(
        self, method: str, url: str, query: list[tuple[str, str]], payload: Any, retriable: bool | None
    ) -> ProviderResponse:
        headers = self.headers()
        exchange = Exchange(method, url, headers, query, payload)
        self.exchanges.append(exchange)
        try:
            response = await send(
                self.pool,
                method,
                url,
                params=query,
                json_body=payload,
                headers=headers,
                retriable=retriable,
                destinations=self.destinations,
            )
        except ApiError as exc:
            raise self.redact_error(exc) from None
        response = self._scrub(response)
        exchange.status = response.status
        exchange.response = response
        return response

    async def _refresh(self, force: bool = False) -> None:
        auth = self.provider.auth
        stale_token = self.context.get(auth.token_key)

        def still_needed(ctx: dict[str, Any]) -> bool:
            # Another process may have refreshed while we waited for the lock.
            if force:
                return ctx.get(auth.token_key) == stale_token
            return needs_refresh(auth, ctx)

        async def do_refresh(ctx: dict[str, Any]) -> dict[str, Any]:
            return await refresh_oauth2(self.pool, auth, ctx, self.destinations)

        try:
            self.context = await self.gateway.refresh_context(self.account_id, still_needed, do_refresh)
        except RefreshRefused as exc:
            message = (
                f"{self.provider.label} refused to refresh this account's access token (HTTP {exc.status}). "
                "Reconnect the integrated account: update its context with new credentials."
            )
            await self.gateway.mark_needs_reauth(self.account_id, message)
            raise ApiError(401, message, remote=True, raw_response=self.redact(exc.body)) from None
        except ApiError as exc:
            raise self.redact_error(exc) from None
        # The new tokens are credentials too, from now on.
        self._learn_secrets()

    # ------------------------------------------------------------------ errors
    async def _error(self, response: ProviderResponse) -> ApiError:
        label = self.provider.label
        raw = response.json_or_text()
        provider_message = self._message(raw)
        suffix = f": {provider_message}" if provider_message else ""
        status = response.status
        headers = rate_limit_headers(self.provider, response)
        if status == 401:
            message = (
                f"{label} rejected this integrated account's credentials{suffix}. "
                "Update the account's context with valid credentials (PATCH /integrated-account/{id})."
            )
            await self.gateway.mark_needs_reauth(self.account_id, message)
            return ApiError(401, message, remote=True, raw_response=raw)
        if status == 403:
            return ApiError(
                403, f"{label} refused access{suffix}. Check the account's permissions in {label}.", remote=True, raw_response=raw
            )
        if status == 404:
            return ApiError(404, f"{label} has no such record{suffix}.", remote=True, raw_response=raw)
        if status == 429:
            retry = retry_after_seconds(self.provider, response)
            headers["Retry-After"] = str(retry)
            error = ApiError(
                429,
                f"{label} rate limit reached{suffix}. Retry after {retry} s.",
                remote=True,
                raw_response=raw,
                headers=headers,
                insight={"rate_limit_error": {"description": f"{label} is rate limiting this account"}},
            )
            # What the provider itself asked for (None when it said nothing): a stream waits it out.
            error.retry_after_s = rate_limit_state(self.provider, response).wait_s
            return error
        if status >= 500:
            return ApiError(
                502,
                f"{label} failed with HTTP {status}{suffix}. Try again later.",
                remote=True,
                raw_response=raw,
                headers=headers,
            )
        invalid = self._field_errors(raw)
        message = f"{label} rejected the request (HTTP {status}){suffix}."
        if invalid:
            message = f"{label} rejected the request (HTTP {status}): " + "; ".join(
                f"{i['field']}: {i['message']}" for i in invalid
            )
        return ApiError(
            status,
            message,
            remote=True,
            raw_response=raw,
            headers=headers,
            insight={"invalid_fields": invalid} if invalid else None,
        )

    def _message(self, raw: Any) -> str | None:
        if self.provider.errors.message is not None:
            try:
                return self.provider.errors.message(raw)
            except Exception:
                return None
        return generic_message(raw)

    def _field_errors(self, raw: Any) -> list[dict[str, str]]:
        extract = self.provider.errors.field_errors
        if extract is None:
            return []
        try:
            errors: list[FieldError] = extract(raw)
        except Exception:
            return []
        back = self.mapping.remote_to_unified
        return [
            {"field": unified_for_remote(back, e.remote_field), "remote_field": e.remote_field, "message": e.message}
            for e in errors
        ]

    # ------------------------------------------------------------------ redaction
    def _scrub(self, response: ProviderResponse) -> ProviderResponse:
        """The provider's answer with every credential of the account replaced, before anything reads it.

        Everything unicrm returns or stores about a call (messages, `raw_response`, the raw and
        debug formats, `last_error`) is derived from this answer, so redacting it here covers
        every path, including a provider that echoes the request's headers back.
        """
        body = response.body
        dirty_body = any(probe in body for probe in self._probes)
        joined = "\n".join(response.headers.values())
        dirty_headers = any(probe in joined for probe in self._text_probes)
        if not dirty_body and not dirty_headers:
            return response
        for needle in self._needles:
            body = body.replace(needle, REDACTED.encode())
        headers = response.headers
        if dirty_headers:
            headers = CIMultiDictProxy(CIMultiDict((k, self.redact(v)) for k, v in response.headers.items()))
        return ProviderResponse(response.status, headers, body, self.redact(response.url))

    def redact_error(self, error: ApiError) -> ApiError:
        """The same error with credentials taken out of its message and `raw_response`."""
        error.message = self.redact(error.message)
        error.args = (error.message,)
        error.raw_response = self.redact(error.raw_response)
        return error

    def redact(self, value: Any) -> Any:
        """Replace every credential of this account in a value (strings, dicts, lists)."""
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        return value

    def _redacted(self, exchange: Exchange) -> Exchange:
        headers = {k: (REDACTED if k.lower() in SECRET_HEADERS else self.redact(v)) for k, v in exchange.headers.items()}
        return Exchange(
            exchange.method,
            self.redact(exchange.url),
            headers,
            [(k, self.redact(v)) for k, v in exchange.params],
            self.redact(exchange.body),
            exchange.status,
            {k: self.redact(v) for k, v in exchange.answer_headers().items()},
        )

    def debug_exchanges(self) -> list[Exchange]:
        return [self._redacted(e) for e in self.exchanges]


_DECLARED_QUERIES: dict[int, tuple[Endpoint, list[tuple[str, str]]]] = {}


def _declared_query(endpoint: Endpoint) -> list[tuple[str, str]]:
    """`flatten_params(endpoint.query)`, computed once per endpoint (a fresh list each time)."""
    known = _DECLARED_QUERIES.get(id(endpoint))
    if known is None or known[0] is not endpoint:
        known = (endpoint, flatten_params(endpoint.query))
        _DECLARED_QUERIES[id(endpoint)] = known
    return list(known[1])


def _template_values(provider: Provider, context: Mapping[str, Any]) -> _Ctx:
    """Context values for `{key}` templates; a declared default fills a key left unset."""
    values = _Ctx({c.name: c.default for c in provider.context if c.default is not None})
    values.update({k: v for k, v in context.items() if v not in (None, "")})
    return values


@functools.lru_cache(maxsize=4096)
def secret_forms(raw: frozenset[str]) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """Each secret as sent, JSON-escaped and URL-encoded, longest first (so that a longer
    secret is replaced before a shorter one inside it); cached, since every request of an
    account asks for the same set."""
    variants: set[str] = set()
    for secret in raw:
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        escaped = orjson.dumps(secret).decode()[1:-1]
        # `\/` too: some JSON encoders (PHP's among them) escape the slash.
        variants.update({secret, escaped, escaped.replace("/", "\\/"), quote(secret, safe=""), quote_plus(secret)})
    ordered = tuple(sorted(variants, key=len, reverse=True))
    return ordered, tuple(v.encode() for v in ordered)


class _Ctx(dict[str, Any]):
    """format_map helper: a missing key renders empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


def generic_message(raw: Any) -> str | None:
    """A provider's error message from the usual keys of its body."""
    if isinstance(raw, str):
        text = raw.strip()
        return text[:300] if text else None
    if isinstance(raw, dict):
        for key in MESSAGE_KEYS:
            value = raw.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                nested = generic_message(value)
                if nested:
                    return nested
        errors = raw.get("errors")
        if isinstance(errors, list) and errors:
            return generic_message(errors[0])
    if isinstance(raw, list) and raw:
        return generic_message(raw[0])
    return None


def rate_limit_headers(provider: Provider, response: ProviderResponse) -> dict[str, str]:
    """The provider's rate-limit headers as `ratelimit-limit/-remaining/-reset` (seconds)."""
    spec = provider.rate_limit
    out: dict[str, str] = {}
    if spec.limit and (value := response.headers.get(spec.limit)):
        out["ratelimit-limit"] = f"{value};w={spec.window_s}" if spec.window_s else value
    if spec.remaining and (value := response.headers.get(spec.remaining)):
        out["ratelimit-remaining"] = value
    if spec.reset and (value := response.headers.get(spec.reset)):
        seconds = _reset_seconds(value, spec.reset_kind)
        if seconds is not None:
            out["ratelimit-reset"] = str(seconds)
    return out


def _reset_seconds(value: str, kind: str) -> int | None:
    seconds = _reset_in(value, kind)
    return None if seconds is None else max(0, int(seconds + 0.999))


@dataclass(frozen=True)
class RateLimitState:
    """What one provider answer says about its rate-limit window, in seconds from now.

    `remaining`: requests left in the window; `reset_s`: until the window resets; `wait_s`:
    the wait a 429 asks for (its Retry-After, else its reset). None where the provider is silent.
    """

    remaining: int | None = None
    reset_s: float | None = None
    wait_s: float | None = None


def rate_limit_state(provider: Provider, response: ProviderResponse) -> RateLimitState:
    """The provider's rate-limit headers of one answer, read through its declaration."""
    spec = provider.rate_limit
    remaining: int | None = None
    if spec.remaining and (value := response.headers.get(spec.remaining)):
        try:
            remaining = int(float(value))
        except ValueError:
            remaining = None
    reset = _reset_in(response.headers.get(spec.reset), spec.reset_kind) if spec.reset else None
    wait: float | None = None
    if response.status == 429:
        wait = _retry_after_in(response.headers.get(spec.retry_after)) if spec.retry_after else None
        if wait is None:
            wait = reset
    return RateLimitState(remaining, reset, wait)


def _reset_in(value: str | None, kind: str) -> float | None:
    """Seconds from now until a reset header's moment (may be <= 0 when it has passed)."""
    if not value:
        return None
    try:
        if kind == "seconds":
            seconds = float(value)
        elif kind == "epoch":
            seconds = float(value) - time.time()
        else:
            seconds = parse_iso_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) else None


def _retry_after_in(value: str | None) -> float | None:
    """A Retry-After value (delta seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return seconds if math.isfinite(seconds) else None


def _retry_after_header(provider: Provider, response: ProviderResponse) -> float | None:
    """The provider's Retry-After in seconds when it sent a number, else None."""
    spec = provider.rate_limit
    value = response.headers.get(spec.retry_after) if spec.retry_after else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 1e6 else None


def retry_after_seconds(provider: Provider, response: ProviderResponse) -> int:
    """Whole seconds to wait after a 429: the provider's Retry-After, else its reset header, else 10."""
    wait = rate_limit_state(provider, response).wait_s if response.status == 429 else None
    if wait is None:
        spec = provider.rate_limit
        wait = _retry_after_in(response.headers.get(spec.retry_after)) if spec.retry_after else None
        if wait is None and spec.reset:
            wait = _reset_in(response.headers.get(spec.reset), spec.reset_kind)
    return 10 if wait is None else max(1, int(wait + 0.999))


def record_of(endpoint: Endpoint, response: ProviderResponse) -> Any:
    """The record in a provider answer, at the endpoint's `record_path`."""
    return get_path(response.json(), endpoint.record_path)
