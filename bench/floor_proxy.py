"""The floor under any Python gateway: a pass-through proxy that does nothing else, on several stacks.

Each stack runs a bare app that forwards each GET's path and query, with its headers, to one
upstream through one pooled aiohttp session (the client unicrm uses) and answers the
upstream's bytes. No routing framework, no token check, no account, no mapping, no JSON
parsing. `bench/gateway.py --floor` runs one per stack beside the gateway in the same
alternating rounds, so each one's throughput against the direct call says what two Python
HTTP hops cost on this machine on that stack before a gateway does any work of its own.

Stacks (inbound server; the outbound client is aiohttp in all):

- `uvicorn`: uvicorn with httptools and uvloop, ASGI (what `unicrm serve` runs, same options)
- `granian`: granian (Rust HTTP server), ASGI, one worker, uvloop
- `granian-rsgi`: granian with its own RSGI interface (no ASGI message dicts)
- `aiohttp`: aiohttp's own low-level web server (`aiohttp.web.Server`, no router), uvloop

Run: .venv/bin/python bench/floor_proxy.py --upstream http://127.0.0.1:PORT --port N [--stack uvicorn]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}
HOP_BY_HOP_BYTES = {h.encode() for h in HOP_BY_HOP}
STACKS = ("uvicorn", "granian", "granian-rsgi", "aiohttp")
UPSTREAM_ENV = "UNICRM_FLOOR_UPSTREAM"


class Upstream:
    """One pooled aiohttp session to the upstream, opened on first use inside the server's loop."""

    def __init__(self, origin: str) -> None:
        self.origin = origin.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=100)
            self._session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
        return self._session

    async def get(self, path_qs: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        async with self.session().get(self.origin + path_qs, headers=headers) as resp:
            body = await resp.read()
            return resp.status, resp.headers.get("Content-Type", "application/json"), body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def asgi_app(upstream: Upstream) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await upstream.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        query = scope["query_string"].decode()
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in HOP_BY_HOP_BYTES}
        status, content_type, body = await upstream.get(scope["path"] + ("?" + query if query else ""), headers)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


class RSGIApp:
    """The same proxy on granian's RSGI interface."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        query = scope.query_string
        headers = {k: v for k, v in scope.headers.items() if k.lower() not in HOP_BY_HOP}
        status, content_type, body = await self.upstream.get(scope.path + ("?" + query if query else ""), headers)
        proto.response_bytes(status, [("content-type", content_type)], body)


def _upstream_from_env() -> Upstream:
    return Upstream(os.environ[UPSTREAM_ENV])


def granian_asgi() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Factory granian imports (`floor_proxy:granian_asgi`); the upstream comes from the environment."""
    return asgi_app(_upstream_from_env())


def granian_rsgi() -> RSGIApp:
    return RSGIApp(_upstream_from_env())


def run_aiohttp(upstream: Upstream, host: str, port: int) -> None:
    import uvloop
    from aiohttp import web

    async def handler(request: web.BaseRequest) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        status, content_type, body = await upstream.get(request.path_qs, headers)
        return web.Response(body=body, status=status, headers={"Content-Type": content_type})

    async def serve() -> None:
        server = web.Server(handler, access_log=None)
        runner = web.ServerRunner(server, handle_signals=True)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        try:
            await asyncio.Event().wait()
        finally:
            await upstream.close()
            await runner.cleanup()

    uvloop.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="origin to forward to, e.g. http://127.0.0.1:8001")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stack", choices=STACKS, default="uvicorn")
    args = parser.parse_args()
    upstream = Upstream(args.upstream)
    if args.stack == "uvicorn":
        import uvicorn

        uvicorn.run(
            asgi_app(upstream),
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            loop="uvloop",
            http="httptools",
        )
    elif args.stack == "aiohttp":
        run_aiohttp(upstream, args.host, args.port)
    else:
        from granian import Granian
        from granian.constants import Interfaces, Loops

        os.environ[UPSTREAM_ENV] = upstream.origin
        rsgi = args.stack == "granian-rsgi"
        Granian(
            "floor_proxy:granian_rsgi" if rsgi else "floor_proxy:granian_asgi",
            address=args.host,
            port=args.port,
            interface=Interfaces.RSGI if rsgi else Interfaces.ASGI,
            workers=1,
            loop=Loops.uvloop,
            factory=True,
            log_enabled=False,
            working_dir=Path(__file__).resolve().parent,
        ).serve()


if __name__ == "__main__":
    main()
