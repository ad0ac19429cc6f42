"""Per-request observability as pure ASGI middleware: request id, one log line, metrics.

Kept cheap for the hot path: a context variable, two clock reads, a few counter updates, and
a log line built only when the `unicrm.request` logger is enabled.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from unicrm.api import metrics
from unicrm.model import RESOURCES
from unicrm.outbound.trace import CURRENT, Trace

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("unicrm.request")
# A client's own request id is kept when it looks like one (and cannot break a log line).
_CLIENT_ID = re.compile(rb"^[A-Za-z0-9._:-]{8,128}$")
_INTERNAL_ERROR = orjson.dumps(
    {"statusCode": 500, "error": "Internal Server Error", "message": "unicrm hit an unexpected error; it was logged."}
)


# A random per-process prefix and a counter: unique across processes, and no system call per request.
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def _new_prefix() -> None:
    global _PREFIX
    _PREFIX = os.urandom(6).hex()


os.register_at_fork(after_in_child=_new_prefix)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    """24 hex characters, unique across server processes."""
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFF:012x}"


class ObservabilityMiddleware:
    """Gives every request an id (`x-request-id`), then logs and counts it once the answer is sent."""

    def __init__(self, app: ASGIApp, routes: Callable[[], dict[Any, str]]) -> None:
        self.app = app
        self._routes_source = routes
        self._routes: dict[Any, str] | None = None

    def _route(self, scope: Scope) -> str:
        if self._routes is None:
            self._routes = self._routes_source()
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return "unmatched"
        template = self._routes.get(endpoint, "unmatched")
        if "{resource}" in template:
            # A unified resource is one of a few names: name it (still a bounded label), unless unknown.
            resource = scope.get("path_params", {}).get("resource")
            if resource in RESOURCES:
                return template.replace("{resource}", resource)
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _CLIENT_ID.match(value):
                    request_id = value.decode()
                break
        trace = Trace(request_id or new_request_id())
        header = (b"x-request-id", trace.request_id.encode())
        state = {"status": 500, "started": False, "done": False}

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message["headers"] = [*message.get("headers", ()), header]
            elif kind == "http.response.body" and not message.get("more_body", False) and not state["done"]:
                await send(message)
                state["done"] = True
                self._finish(scope, trace, state["status"], started)
                return
            await send(message)

        token = CURRENT.set(trace)
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            trace.exception = exc
            if state["started"]:
                raise
            # Answer in the unified shape (with the request id) instead of the server's plain 500.
            await send_wrapper(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json; charset=utf-8")],
                }
            )
            await send_wrapper({"type": "http.response.body", "body": _INTERNAL_ERROR})
        finally:
            CURRENT.reset(token)
            if not state["done"]:
                # The client went away (or the app failed mid-stream): log what happened anyway.
                state["done"] = True
                self._finish(scope, trace, state["status"], started)

    def _finish(self, scope: Scope, trace: Trace, status: int, started: float) -> None:
        duration = time.perf_counter() - started
        route = self._route(scope)
        method = scope["method"]
        metrics.record(trace, route, method, status, duration)
        # 502/504 are a provider's failure (a warning); any other 5xx is unicrm's own (an error).
        if trace.exception is not None or (status >= 500 and status not in (502, 504)):
            level = logging.ERROR
        elif status >= 500:
            level = logging.WARNING
        else:
            level = logging.INFO
        if not log.isEnabledFor(level):
            return
        event: dict[str, Any] = {
            "request_id": trace.request_id,
            "method": method,
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "integration": trace.integration,
            "account_id": trace.account_id,
            "environment_id": trace.environment_id,
            "provider_calls": [c.as_dict() for c in trace.calls],
            "retries": trace.retries,
            "refreshes": trace.refreshes,
        }
        if trace.stream_records:
            event["stream_records"] = trace.stream_records
        if trace.error is not None:
            event["error"] = trace.error
        if trace.exception is not None:
            event["error"] = f"{type(trace.exception).__name__}: {trace.exception}"
            event["traceback"] = "".join(traceback.format_exception(trace.exception))
        if trace.redact is not None:
            for key in ("error", "path", "traceback"):
                if key in event:
                    event[key] = trace.redact(event[key])
            for call in event["provider_calls"]:
                call["url"] = trace.redact(call["url"])
        # makeRecord + handle: the same record as log.log() makes, without looking up the caller's frame.
        record = log.makeRecord(log.name, level, __file__, 0, "%s %s %s", (method, route, status), None, extra={"event": event})
        log.handle(record)
