"""The floor under any Python gateway on this stack: a pass-through proxy that does nothing else.

uvicorn (the server `unicrm serve` uses, same options) runs a bare ASGI app that forwards each
GET's path and query, with its headers, to one upstream through one pooled aiohttp session (the
client unicrm uses) and answers the upstream's bytes. No routing framework, no token check, no
account, no mapping, no JSON parsing. `bench/gateway.py --floor` runs it beside the gateway, so
its throughput against the direct call says what two Python HTTP hops cost on this machine
before unicrm does any work of its own.

Run: .venv/bin/python bench/floor_proxy.py --upstream http://127.0.0.1:PORT --port N
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
HOP_BY_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}


def proxy_app(upstream: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    session: aiohttp.ClientSession | None = None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    connector = aiohttp.TCPConnector(limit=100)
                    session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if session is not None:
                        await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert session is not None
        query = scope["query_string"].decode()
        url = upstream + scope["path"] + ("?" + query if query else "")
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in HOP_BY_HOP}
        async with session.get(url, headers=headers) as resp:
            body = await resp.read()
            status = resp.status
            content_type = resp.headers.get("Content-Type", "application/json")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="origin to forward to, e.g. http://127.0.0.1:8001")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        proxy_app(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
