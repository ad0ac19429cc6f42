"""OAuth2 refresh under load: two server processes, one expired token, exactly one refresh.

Runs against SQLite (a shared file) and PostgreSQL, for every provider whose emulator hands out
an OAuth2 context (a refresh token and a token endpoint that rotates it).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.fernet import Fernet

from tests.databases import fresh_database
from tests.harness import serve_processes
from unicrm.emulators import EMULATORS
from unicrm.emulators.base import EmulatorThread
from unicrm.providers import all_providers
from unicrm.store.database import Store


def _oauth_providers() -> list[str]:
    names = []
    for name in sorted(set(EMULATORS) & set(all_providers())):
        if all_providers()[name].auth.scheme != "oauth2":
            continue
        with EmulatorThread([name], seed=3) as emulators:
            if emulators.running[name].context.get("refresh_token"):
                names.append(name)
    return names


OAUTH_PROVIDERS = _oauth_providers()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: a SQLite file, or a new PostgreSQL database (dropped after)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


async def _burst(urls: list[str], token: str, account: str, count: int) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> int:
            url = f"{urls[i % len(urls)]}/unified/crm/projects?integrated_account_id={account}&limit=1"
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                await resp.read()
                return resp.status

        return await asyncio.gather(*(one(i) for i in range(count)))


def _refreshes(requests: list[dict[str, Any]]) -> int:
    return sum(1 for r in requests if r["method"] == "POST" and ("token" in r["path"]))


@pytest.mark.skipif(not OAUTH_PROVIDERS, reason="no emulator hands out an OAuth2 context")
@pytest.mark.parametrize("provider", OAUTH_PROVIDERS or ["none"])
async def test_one_refresh_across_two_processes(provider: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "UNICRM_SECRET_KEY": Fernet.generate_key().decode(), "UNICRM_DATA_DIR": str(tmp_path)}
    # The store this test opens in-process must share the servers' key; restored afterwards.
    monkeypatch.setenv("UNICRM_SECRET_KEY", env["UNICRM_SECRET_KEY"])
    with EmulatorThread([provider], seed=3) as emulators:
        running = emulators.running[provider]
        context = dict(running.context)
        context["expires_at"] = time.time() - 60  # expired: every request needs a fresh token
        store = await Store.open(database_url, tmp_path)
        try:
            token = await store.create_api_token("default")
            environment = await store.ensure_environment("default")
            account = (await store.create_account(environment, provider, "t", context)).id
        finally:
            await store.close()
        async with serve_processes(database_url, tmp_path, env, running.origin, stop_timeout=10) as urls:
            control = running.base_url.split("/", 3)
            control_url = "/".join(control[:3]) + "/_emulator/requests"
            statuses = await _burst(urls, token, account, 40)
            assert statuses == [200] * 40
            async with aiohttp.ClientSession() as session, session.get(control_url) as resp:
                log = await resp.json()
            requests = log["requests"] if isinstance(log, dict) else log
            assert _refreshes(requests) == 1

            # The rotated refresh token was persisted: expire the access token again and the
            # next refresh (with the new refresh token) succeeds.
            store = await Store.open(database_url, tmp_path)
            try:
                current = await store.get_account(account)
            finally:
                await store.close()
            assert current is not None and current.context["refresh_token"] != context["refresh_token"]
            async with aiohttp.ClientSession() as session:
                patch = {"context": {"expires_at": time.time() - 60}}
                async with session.patch(
                    f"{urls[0]}/integrated-account/{account}", json=patch, headers={"Authorization": f"Bearer {token}"}
                ) as resp:
                    assert resp.status == 200, await resp.text()
            await asyncio.sleep(2.5)  # with SQLite (no NOTIFY) the other process's cache entry expires
            statuses = await _burst(urls, token, account, 10)
            assert statuses == [200] * 10
            async with aiohttp.ClientSession() as session, session.get(control_url) as resp:
                log = await resp.json()
            requests = log["requests"] if isinstance(log, dict) else log
            assert _refreshes(requests) == 2
