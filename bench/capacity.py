"""Benchmark 6: the figures of the capacity model (docs/scaling.md).

Part 1, server CPU per request by operation: `unicrm emulate capsule` and `unicrm serve` as
subprocesses; N sequential requests of each operation (GET by id, list page of 100, create,
update, delete); the server's CPU time (/proc) divided by N.

Part 2, database work per request and memory per cached account: the server runs in this
process (uvicorn in a thread) so SQLAlchemy's `before_cursor_execute` event counts every SQL
statement each operation sends, with the account cache warm and cold. Then A accounts are
created and each is read once through the API; the growth of the process's resident memory
divided by A is the memory one cached account costs (its decrypted context, its reference data
such as Capsule's field definitions, its token-cache and lookup entries).

Run: .venv/bin/python bench/capacity.py [--quick] [--requests N] [--accounts A] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import orjson
from _support import closing_all, cpu_seconds, machine, proc_status, start_emulators, start_server
from sqlalchemy import event

from unicrm.cli import example_body

BASE = "/unified/crm/projects"


class Client:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, account: str, body: Any = None, extra: str = "", key: str | None = None) -> Any:
        url = f"{self.base_url}{path}?integrated_account_id={account}{extra}"
        data = orjson.dumps(body) if body is not None else None
        headers = {**self.headers, "Content-Type": "application/json"} if data else dict(self.headers)
        if key:
            headers["Idempotency-Key"] = key
        async with self.session.request(method, url, data=data, headers=headers) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path} answered {resp.status}: {payload[:300]!r}")
            return orjson.loads(payload) if payload else None


def operations(client: Client, account: str, record_id: str, template: dict[str, Any]) -> dict[str, Any]:
    """One coroutine factory per operation; create/update/delete work on projects they create."""
    created: list[str] = []

    async def get() -> None:
        await client.call("GET", f"{BASE}/{record_id}", account)

    async def list_page() -> None:
        await client.call("GET", BASE, account, extra="&limit=100")

    async def create() -> None:
        project = await client.call("POST", BASE, account, {**template, "name": f"Capacity {time.monotonic_ns()}"})
        created.append(project["id"])

    async def create_idempotent() -> None:
        body = {**template, "name": f"Capacity {time.monotonic_ns()}"}
        project = await client.call("POST", BASE, account, body, key=f"capacity-{time.monotonic_ns()}")
        created.append(project["id"])

    async def update() -> None:
        await client.call("PATCH", f"{BASE}/{created[len(created) // 2]}", account, {"description": "updated"})

    async def delete() -> None:
        await client.call("DELETE", f"{BASE}/{created.pop()}", account)

    return {
        "get": get,
        "list 100": list_page,
        "create": create,
        "create, Idempotency-Key": create_idempotent,
        "update": update,
        "delete": delete,
    }


async def cpu_part(requests: int) -> list[tuple[str, float]]:
    emulators = start_emulators(["capsule"], dataset_size=1000)
    server = start_server(allow_origins=emulators.origins)
    out: list[tuple[str, float]] = []
    with closing_all(emulators, server):
        account = server.create_account("capsule", emulators.running["capsule"]["context"])
        async with aiohttp.ClientSession() as session:
            client = Client(session, server.base_url, server.token)
            record_id = (await client.call("GET", BASE, account, extra="&limit=1"))["result"][0]["id"]
            template = await example_body(server.base_url, server.token, "capsule", account) or {}
            ops = operations(client, account, record_id, template)
            for name, op in ops.items():
                for _ in range(20):  # warm-up (and projects for update/delete to work on)
                    await op() if name != "delete" else None
                before = cpu_seconds(server.proc.pid)
                for _ in range(requests):
                    await op()
                out.append((name, (cpu_seconds(server.proc.pid) - before) / requests * 1e6))
    return out


@contextmanager
def counting(engine: Any) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def db_and_memory_part(requests: int, accounts: int, database_url: str | None) -> dict[str, Any]:
    from tests.harness import ServerThread

    from unicrm.api.app import ServerConfig
    from unicrm.store.database import Store

    temp = tempfile.TemporaryDirectory(prefix="unicrm-capacity-")
    data_dir = Path(temp.name)
    url = database_url or f"sqlite+aiosqlite:///{data_dir}/capacity.db"
    emulators = start_emulators(["capsule"], dataset_size=1000)
    result: dict[str, Any] = {}
    with closing_all(emulators):
        context = emulators.running["capsule"]["context"]
        store = await Store.open(url, data_dir)
        token = await store.create_api_token("capacity")
        environment = await store.ensure_environment("capacity")
        ids = [(await store.create_account(environment, "capsule", f"t{i}", context)).id for i in range(accounts + 1)]
        await store.close()
        server = ServerThread(ServerConfig(database_url=url, data_dir=data_dir, allow_origins=tuple(emulators.origins)))
        app = server.server.config.app
        server.__enter__()
        try:
            state = app.state.unicrm
            async with aiohttp.ClientSession() as session:
                client = Client(session, server.base_url, token)
                first = ids[0]
                record_id = (await client.call("GET", BASE, first, extra="&limit=1"))["result"][0]["id"]
                template = await example_body(server.base_url, token, "capsule", first) or {}
                ops = operations(client, first, record_id, template)
                for name, op in ops.items():
                    for _ in range(5):
                        await op() if name != "delete" else None
                    with counting(state.store.engine) as statements:
                        for _ in range(requests):
                            await op()
                    kinds: dict[str, int] = {}
                    for s in statements:
                        kinds[s] = kinds.get(s, 0) + 1
                    result[f"db {name}"] = (len(statements) / requests, kinds)
                # The first request of an account nobody asked for yet (cache cold), then again (warm).
                with counting(state.store.engine) as statements:
                    await client.call("GET", f"{BASE}/{record_id}", ids[1])
                result["db get, account not cached"] = (len(statements), {})
                gc.collect()
                before_kb = proc_status(_pid()).get("VmRSS", 0)
                started = time.perf_counter()
                for account in ids[1 : accounts + 1]:
                    await client.call("GET", f"{BASE}/{record_id}", account)
                elapsed = time.perf_counter() - started
                gc.collect()
                after_kb = proc_status(_pid()).get("VmRSS", 0)
                result["accounts"] = accounts
                result["rss per account KB"] = (after_kb - before_kb) / accounts
                result["cold get ms"] = elapsed / accounts * 1000
                result["cached accounts"] = len(state.accounts._entries)
        finally:
            server.__exit__(None, None, None)
    temp.cleanup()
    return result


def _pid() -> int:
    import os

    return os.getpid()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 requests, 300 accounts")
    parser.add_argument("--requests", type=int, default=None, help="requests per operation (default 500)")
    parser.add_argument("--accounts", type=int, default=None, help="accounts for the memory figure (default 2000)")
    parser.add_argument("--database-url", default=None, help="part 2 against this database (default SQLite)")
    args = parser.parse_args()
    requests = args.requests or (100 if args.quick else 500)
    accounts = args.accounts or (300 if args.quick else 2000)
    print(f"capacity figures: {machine()}")
    cpu = asyncio.run(cpu_part(requests))
    print()
    print(f"server CPU per request (Capsule emulator, {requests} sequential requests each)")
    for name, us in cpu:
        print(f"  {name:<24} {us:>8,.0f} µs")
    figures = asyncio.run(db_and_memory_part(requests, accounts, args.database_url))
    print()
    print("SQL statements per request (account and token caches warm)")
    for key, value in figures.items():
        if key.startswith("db "):
            count, kinds = value
            detail = ", ".join(f"{k} {v / requests:.2f}" for k, v in sorted(kinds.items())) if kinds else ""
            print(f"  {key[3:]:<28} {count:>6.2f}  {detail}")
    print()
    print(
        f"memory per cached account: {figures['rss per account KB']:.1f} KB RSS "
        f"({figures['accounts']:,} accounts read once each, {figures['cached accounts']:,} in the cache; "
        f"first GET of an account {figures['cold get ms']:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
