"""Sends one provider request with timeouts and bounded retries of reads only.

Reads are retried at most twice, with backoff, on connection errors and 502/503/504; writes
are never retried, because a write whose answer was lost may already have happened and a
retry could duplicate it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from unicrm.engine.errors import ApiError
from unicrm.outbound.policy import Destinations, OutboundRefused, RefusedAddress
from unicrm.outbound.pool import SessionPool
from unicrm.outbound.trace import CallRecord, current_trace, loggable_url

RETRY_STATUSES = frozenset({502, 503, 504})
MAX_READ_RETRIES = 2
BACKOFF_S = (0.1, 0.4)
_UNSET: Any = object()


@dataclass
class ProviderResponse:
    """A provider's answer, body read in full."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str
    _json: Any = field(default=_UNSET, repr=False)

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not JSON."""
        if self._json is _UNSET:
            if not self.body.strip():
                raise ValueError("empty body")
            self._json = orjson.loads(self.body)
        return self._json

    def json_or_text(self) -> Any:
        """The body as JSON if it parses, else as text (for `raw_response`)."""
        try:
            return self.json()
        except ValueError:
            return self.body.decode("utf-8", "replace")

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "application/octet-stream")


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested params → bracket-form pairs (`filter[modified]=...`); lists repeat `key[]`."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs.extend(flatten_params(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, Mapping):
                    pairs.extend(flatten_params(item, f"{name}[]"))
                else:
                    pairs.append((f"{name}[]", _scalar(item)))
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


async def send(
    pool: SessionPool,
    method: str,
    url: str,
    *,
    params: Sequence[tuple[str, str]] | None = None,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    retriable: bool | None = None,
    destinations: Destinations,
) -> ProviderResponse:
    """Send a request; raise `ApiError` 504 on timeout and 502 when the provider is unreachable.

    `retriable` says the request changes nothing (default: only a GET), so transient failures
    are retried. `destinations` are the origins the request may go to (see `outbound.policy`).
    A redirect is never followed: it is a 502 naming where it pointed. A failure that leaves
    the outcome of a write unknown carries `outcome="unknown"`.
    """
    trace = current_trace()
    if trace is None:
        return await _send(pool, method, url, params, json_body, headers, retriable, destinations, None)
    record = CallRecord(method, loggable_url(url), None, 0.0)
    started = time.perf_counter()
    try:
        response = await _send(pool, method, url, params, json_body, headers, retriable, destinations, record)
        record.status = response.status
        if response.status == 429:
            trace.rate_limited += 1
        return response
    finally:
        record.duration_s = time.perf_counter() - started
        trace.retries += record.attempts - 1
        trace.calls.append(record)


async def _send(
    pool: SessionPool,
    method: str,
    url: str,
    params: Sequence[tuple[str, str]] | None,
    json_body: Any,
    headers: Mapping[str, str] | None,
    retriable: bool | None,
    destinations: Destinations,
    record: CallRecord | None,
) -> ProviderResponse:
    session = session_or_refusal(pool, url, destinations)
    query = list(params) if params else None
    data = orjson.dumps(json_body) if json_body is not None else None
    send_headers = dict(headers or {})
    if data is not None:
        send_headers.setdefault("Content-Type", "application/json")
    retries = MAX_READ_RETRIES if (method == "GET" if retriable is None else retriable) else 0
    for attempt in range(retries + 1):
        last = attempt == retries
        if record is not None:
            record.attempts = attempt + 1
        try:
            async with asyncio.timeout(pool.timeouts.read):
                async with session.request(
                    method, url, params=query, data=data, headers=send_headers, allow_redirects=False
                ) as resp:
                    body = await resp.read()
                    response = ProviderResponse(resp.status, resp.headers, body, str(resp.url))
            if 300 <= response.status < 400 and response.status != 304:
                raise redirect_error(response, method, url, write=retries == 0)
            if last or resp.status not in RETRY_STATUSES:
                return response
        except TimeoutError as exc:
            if last:
                connect_phase = isinstance(exc, aiohttp.ConnectionTimeoutError)
                raise ApiError(
                    504,
                    f"The provider did not answer within {pool.timeouts.read:g} s ({method} {_redact_url(url)}). "
                    "Try again later; if it keeps happening the provider is degraded.",
                    remote=True,
                    outcome=None if connect_phase else "unknown",
                ) from None
        except aiohttp.ClientConnectorError as exc:
            # Connecting failed: nothing was sent, whatever the method.
            if isinstance(exc.os_error, RefusedAddress):
                raise ApiError(
                    502,
                    f"unicrm refused to connect to {exc.host}: {exc.os_error}. Provider calls only reach public "
                    "addresses unless the operator allowed the origin explicitly: "
                    f"--allow-origin {_origin(url)} (or UNICRM_ALLOW_ORIGINS).",
                    remote=True,
                ) from None
            if last:
                raise ApiError(
                    502,
                    f"Could not connect to the provider ({method} {_redact_url(url)}): {type(exc).__name__}. "
                    "Nothing was sent. Try again later.",
                    remote=True,
                ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            if last:
                advice = (
                    "Nothing was retried because this is a write; check the provider before sending it again."
                    if retries == 0
                    else "Try again later."
                )
                raise ApiError(
                    502,
                    f"Could not get an answer from the provider ({method} {_redact_url(url)}): {type(exc).__name__}. {advice}",
                    remote=True,
                    outcome="unknown",
                ) from None
        await asyncio.sleep(BACKOFF_S[attempt])
    raise AssertionError("unreachable: the last attempt returns or raises")


def session_or_refusal(pool: SessionPool, url: str, destinations: Destinations) -> aiohttp.ClientSession:
    """The pooled session for an allowed URL; a 400 naming the origin and how to allow it otherwise."""
    try:
        return pool.session_for(url, destinations)
    except OutboundRefused as exc:
        raise ApiError(400, f"This integrated account's provider URL is refused: {exc.reason}.") from None


def redirect_error(response: ProviderResponse, method: str, url: str, *, write: bool) -> ApiError:
    """A provider redirect as a 502 that says where it pointed (redirects are never followed)."""
    location = response.headers.get("Location", "(no Location header)")
    return ApiError(
        502,
        f"The provider answered {method} {_redact_url(url)} with a redirect (HTTP {response.status}) to "
        f"{_redact_url(location)}; unicrm never follows redirects, so credentials stay with the declared origin. "
        "If the provider moved, update the account's base_url (and allow the new origin if it is not declared).",
        remote=True,
        outcome="unknown" if write else None,
    )


def _origin(url: str) -> str:
    return "/".join(url.split("/", 3)[:3])


def _redact_url(url: str) -> str:
    return url.split("?", 1)[0]
