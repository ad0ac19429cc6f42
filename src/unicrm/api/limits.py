"""Bounded input: body size, JSON nesting, query length, and protocol errors in the unified shape.

`BoundedInput` is pure ASGI middleware (no per-request objects beyond a counter): it refuses a
declared or streamed body over the limit with a 413 and an over-long query string with a 414,
before any route runs. The HTTP server's own parse errors (a malformed request line, a
negative Content-Length) never reach ASGI; `JsonErrorProtocol` answers them in the unified
error shape instead of uvicorn's plain text.
"""

from __future__ import annotations

from typing import Any

import orjson

from unicrm.engine.errors import ApiError, bad_request, reason_phrase

DEFAULT_MAX_BODY = 1024 * 1024
MAX_QUERY_BYTES = 16 * 1024
MAX_JSON_DEPTH = 32

Scope = dict[str, Any]
Message = dict[str, Any]


def error_bytes(status: int, message: str) -> bytes:
    return orjson.dumps({"statusCode": status, "error": reason_phrase(status), "message": message})


class BoundedInput:
    """ASGI middleware that bounds what a request may carry."""

    def __init__(self, app: Any, max_body: int = DEFAULT_MAX_BODY, max_query: int = MAX_QUERY_BYTES) -> None:
        self.app = app
        self.max_body = max_body
        self.max_query = max_query

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if len(query) > self.max_query:
            await _answer(send, 414, f"The query string is {len(query)} bytes long; the most unicrm reads is {self.max_query}.")
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():
                    await _answer(send, 400, "Content-Length must be a whole number of bytes.")
                    return
                if int(value) > self.max_body:
                    await _answer(send, 413, self._too_large(int(value)))
                    return
        limit = self.max_body
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message: Message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised into the route reading the body; the error handler renders it.
                    raise ApiError(413, self._too_large(seen))
            return message

        await self.app(scope, bounded_receive, send)

    def _too_large(self, size: int) -> str:
        return (
            f"The request body is {size} bytes or more; the most unicrm accepts is {self.max_body} bytes "
            "(UNICRM_MAX_BODY_BYTES on the server)."
        )


async def _answer(send: Any, status: int, message: str) -> None:
    body = error_bytes(status, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when objects and arrays nest at most `limit` deep (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON, or a 400 saying why it is not acceptable JSON."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON ({exc}).") from None
    if not json_depth_ok(value):
        raise bad_request(f"The request body nests objects or arrays more than {MAX_JSON_DEPTH} levels deep.")
    return value


def _protocol_base() -> type:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # httptools missing: uvicorn runs h11
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


class JsonErrorProtocol(_protocol_base()):  # type: ignore[misc]
    """uvicorn's HTTP protocol, answering requests it cannot parse in the unified error shape."""

    def send_400_response(self, msg: str) -> None:
        body = error_bytes(400, "The HTTP request could not be parsed (malformed request line, header or Content-Length).")
        head = (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
        )
        if not self.transport.is_closing():
            self.transport.write(head + body)
        self.transport.close()
