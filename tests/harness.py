"""End-to-end harness: the real server and the provider emulators on loopback, over real HTTP.

The emulators run in one background thread (own event loop), the unicrm server (uvicorn) in
another; tests talk to both with aiohttp from pytest's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import uvicorn

from unicrm.api.app import ServerConfig, create_app
from unicrm.api.limits import JsonErrorProtocol
from unicrm.outbound.pool import Timeouts
from unicrm.store.database import Store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn serving the unicrm app in a background thread."""

    def __init__(self, config: ServerConfig) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(config),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                access_log=False,
                http=JsonErrorProtocol,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("unicrm server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Response:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Harness:
    """What the end-to-end tests use: the server, its token, one account per emulator."""

    base_url: str
    token: str
    other_token: str
    accounts: dict[str, str]
    emulators: dict[str, Any]
    database_url: str
    data_dir: Path
    session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def http(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        return self.session

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: str | dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        token: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request to the unicrm server. `query` may be a raw string (to test its syntax)."""
        url = self.base_url + path
        if isinstance(query, dict):
            query = urlencode(query, doseq=True)
        if query:
            url += "?" + query
        send_headers = dict(headers or {})
        if token == "default":
            token = self.token
        if token is not None:
            send_headers["Authorization"] = f"Bearer {token}"
        body = orjson.dumps(json) if json is not None else data
        if body is not None:
            send_headers.setdefault("Content-Type", "application/json")
        session = await self.http()
        async with session.request(method, url, data=body, headers=send_headers) as resp:
            return Response(resp.status, resp.headers, await resp.read())

    async def unified(
        self,
        method: str,
        provider: str,
        path: str = "",
        *,
        query: str | dict[str, Any] | None = None,
        json: Any = None,
        resource: str = "projects",
        **kwargs: Any,
    ) -> Response:
        """A unified call for the provider's account (integrated_account_id added), on `resource`."""
        q = f"integrated_account_id={self.accounts[provider]}"
        if isinstance(query, dict):
            query = urlencode(query, doseq=True)
        if query:
            q += "&" + query
        return await self.call(method, f"/unified/crm/{resource}" + path, query=q, json=json, **kwargs)

    async def control(self, provider: str, action: str, payload: Any = None) -> Any:
        """The emulator's `/_emulator/<action>` control API."""
        running = self.emulators[provider]
        origin = running.base_url.split("/", 3)[:3]
        url = "/".join(origin) + f"/_emulator/{action}"
        session = await self.http()
        if payload is None and action in ("requests", "stats"):
            async with session.get(url) as resp:
                return await resp.json()
        async with session.post(url, json=payload or {}) as resp:
            return await resp.json(content_type=None) if resp.content_length != 0 else None

    async def provider_requests(self, provider: str) -> list[dict[str, Any]]:
        data = await self.control(provider, "requests")
        return data["requests"] if isinstance(data, dict) else data  # type: ignore[no-any-return]


async def every_page(
    h: Harness, provider: str, *, resource: str = "projects", limit: int, query: str = "", extra: str = ""
) -> list[dict[str, Any]]:
    """Every record of a unified list, following next_cursor; checks the envelope on every page.

    `query` goes on every page before the cursor, `extra` after it. Fails on an empty page that
    carries a cursor, on a repeated cursor, and on a list that does not end.
    """
    records: list[dict[str, Any]] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(500):
        q = f"limit={limit}{query}" + (f"&next_cursor={cursor}" if cursor else "") + extra
        resp = await h.unified("GET", provider, resource=resource, query=q)
        assert resp.status == 200, resp.text
        body = resp.json()
        assert set(body) >= {"result", "next_cursor", "prev_cursor", "result_count"}
        assert body["result_count"] == len(body["result"]) <= limit
        records.extend(body["result"])
        cursor = body["next_cursor"]
        if cursor is None:
            return records
        assert body["result"], "an empty page came with a next_cursor"
        assert cursor not in seen
        seen.add(cursor)
    raise AssertionError("pagination did not end")


def serve_process(database_url: str, data_dir: Path, env: dict[str, str], origin: str) -> tuple[subprocess.Popen[bytes], str]:
    """A `unicrm serve` child process on a free port, and its base URL (not yet ready)."""
    port = free_port()
    command = [sys.executable, "-m", "unicrm.cli", "serve", "--port", str(port), "--database-url", database_url]
    command += ["--data-dir", str(data_dir), "--log-level", "warning", "--allow-origin", origin]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, f"http://127.0.0.1:{port}"


async def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until a served process answers /health; its stderr in the error if it exits first."""
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server exited")
            try:
                async with session.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


@contextlib.asynccontextmanager
async def serve_processes(
    database_url: str, data_dir: Path, env: dict[str, str], origin: str, count: int = 2, stop_timeout: float = 20
) -> AsyncIterator[list[str]]:
    """`count` `unicrm serve` processes on one database, ready; their URLs. Stopped on exit."""
    servers = [serve_process(database_url, data_dir, env, origin) for _ in range(count)]
    try:
        for proc, url in servers:
            await wait_ready(url, proc)
        yield [url for _, url in servers]
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=stop_timeout)


async def setup_store(database_url: str, data_dir: Path, contexts: dict[str, dict[str, Any]]) -> tuple[str, str, dict[str, str]]:
    """A token, a token of another environment, and one account per emulator."""
    store = await Store.open(database_url, data_dir)
    try:
        token = await store.create_api_token("default")
        other = await store.create_api_token("other")
        environment = await store.ensure_environment("default")
        accounts = {}
        for name, context in contexts.items():
            account = await store.create_account(environment, name, f"tenant-{name}", context)
            accounts[name] = account.id
        return token, other, accounts
    finally:
        await store.close()


def start_harness(data_dir: Path, database_url: str | None = None) -> tuple[Harness, list[Any]]:
    """Start emulators and server; returns the harness and what to close at the end."""
    from unicrm.emulators import EMULATORS
    from unicrm.emulators.base import EmulatorThread

    emulators = EmulatorThread(sorted(EMULATORS), seed=7)
    emulators.__enter__()
    url = database_url or f"sqlite+aiosqlite:///{data_dir}/e2e.db"
    contexts = {name: r.context for name, r in emulators.running.items()}
    token, other, accounts = asyncio.run(setup_store(url, data_dir, contexts))
    # Like `unicrm demo`: exactly the emulators' origins are allowed besides the declared ones.
    origins = tuple(r.origin for r in emulators.running.values())
    server = ServerThread(
        ServerConfig(
            database_url=url,
            data_dir=data_dir,
            timeouts=Timeouts(connect=2.0, read=1.5),
            allow_origins=origins,
            webhook_private_targets=True,  # the tests' webhook receivers listen on loopback
        )
    )
    server.__enter__()
    harness = Harness(server.base_url, token, other, accounts, emulators.running, url, data_dir)
    return harness, [server, emulators]
