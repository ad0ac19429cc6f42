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
) -> ProviderResponse:
    """Send a request; raise `ApiError` 504 on timeout and 502 when the provider is unreachable.

    `retriable` says the request changes nothing (default: only a GET), so transient failures
    are retried.
    """
    trace = current_trace()
    if trace is None:
        return await _send(pool, method, url, params, json_body, headers, retriable, None)
    record = CallRecord(method, loggable_url(url), None, 0.0)
    started = time.perf_counter()
    try:
        response = await _send(pool, method, url, params, json_body, headers, retriable, record)
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
    record: CallRecord | None,
) -> ProviderResponse:
    session = pool.session_for(url)
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
                    method, url, params=list(params or ()), data=data, headers=send_headers, allow_redirects=False
                ) as resp:
                    body = await resp.read()
                    response = ProviderResponse(resp.status, resp.headers, body, str(resp.url))
            if last or resp.status not in RETRY_STATUSES:
                return response
        except TimeoutError:
            if last:
                raise ApiError(
                    504,
                    f"The provider did not answer within {pool.timeouts.read:g} s ({method} {_redact_url(url)}). "
                    "Try again later; if it keeps happening the provider is degraded.",
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
                ) from None
        await asyncio.sleep(BACKOFF_S[attempt])
    raise AssertionError("unreachable: the last attempt returns or raises")


def _redact_url(url: str) -> str:
    return url.split("?", 1)[0]
