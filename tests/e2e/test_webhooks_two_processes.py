"""Two `unicrm serve` processes on one database (SQLite file, PostgreSQL): every account event is
delivered exactly once to the endpoint, whichever process made the change or sent it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from cryptography.fernet import Fernet

from tests.connect_support import WebhookReceiver
from tests.databases import fresh_database
from tests.harness import serve_processes
from unicrm.api.webhook_worker import verify_signature
from unicrm.emulators.base import EmulatorThread
from unicrm.store.database import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path, prefix="unicrm_hooks2") as url:
        yield url


async def test_each_event_once_across_two_processes(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        **os.environ,
        "UNICRM_SECRET_KEY": Fernet.generate_key().decode(),
        "UNICRM_DATA_DIR": str(tmp_path),
        "UNICRM_WEBHOOK_PRIVATE_TARGETS": "1",
    }
    # The store this test opens in-process must share the servers' key; restored afterwards.
    monkeypatch.setenv("UNICRM_SECRET_KEY", env["UNICRM_SECRET_KEY"])
    receiver = await WebhookReceiver().start()
    try:
        with EmulatorThread(["strawblond"], seed=3) as emulators:
            running = emulators.running["strawblond"]
            store = await Store.open(database_url, tmp_path)
            try:
                token = await store.create_api_token("default")
            finally:
                await store.close()
            async with serve_processes(database_url, tmp_path, env, running.origin) as urls:
                headers = {"Authorization": f"Bearer {token}"}
                async with aiohttp.ClientSession(headers=headers) as http:
                    async with http.post(urls[0] + "/webhook", json={"target_url": receiver.url}) as resp:
                        hook = await resp.json()
                    # Ten accounts created and deleted, alternating between the two processes.

                    async def life(i: int) -> None:
                        body = {"integration": "strawblond", "tenant_id": f"t{i}", "context": running.context}
                        async with http.post(urls[i % 2] + "/integrated-account", json=body) as resp:
                            account = await resp.json()
                            assert resp.status == 201, account
                        async with http.delete(urls[(i + 1) % 2] + f"/integrated-account/{account['id']}") as resp:
                            assert resp.status == 200

                    await asyncio.gather(*(life(i) for i in range(10)))
                    got = await receiver.wait_for(20, timeout=30)
                    await asyncio.sleep(1.5)  # a duplicate would arrive within a poll or two
                    for _ in range(100):
                        async with http.get(urls[1] + f"/webhook/{hook['id']}/deliveries?limit=100") as resp:
                            rows = (await resp.json())["result"]
                        if all(r["status"] == "delivered" for r in rows):
                            break
                        await asyncio.sleep(0.1)
    finally:
        await receiver.stop()
    assert len(got) == 20, f"{len(got)} deliveries for 20 events"
    events = [orjson.loads(r.body) for r in got]
    assert len({e["id"] for e in events}) == 20
    assert sorted(e["event"] for e in events) == ["integrated_account:created"] * 10 + ["integrated_account:deleted"] * 10
    assert all(verify_signature(hook["secret"], r.body, r.headers["X-Unicrm-Signature"]) for r in got)
    assert len(rows) == 20 and {r["status"] for r in rows} == {"delivered"} and {r["attempts"] for r in rows} == {1}
