"""Streams against rate-limited providers, over real HTTP, for every provider's emulator.

Each provider gets its own emulator serving a few of its largest pages (3 full + 1 short) and
one server whose streams wait at most `MAX_WAIT_S` per page. The emulators' shared fault
settings (`rate_limit` requests per `rate_window_s`) make the provider answer with its own
documented rate-limit headers and 429; the stream must wait them out, or end with an error
line whose `next_cursor` resumes it exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.harness import ServerThread, setup_store
from unicrm.api.app import ServerConfig
from unicrm.emulators import EMULATORS
from unicrm.emulators.base import EmulatorThread, RunningEmulator
from unicrm.outbound.pool import Timeouts
from unicrm.providers import all_providers

PROVIDERS = sorted(set(EMULATORS) & set(all_providers()))
MAX_WAIT_S = 2.0
BASE = "/unified/crm/projects"


def dataset_size(provider: str) -> int:
    return all_providers()[provider].pagination.max_size * 3 + 7


class Rig:
    """One server plus one emulator per provider (each with its own dataset size)."""

    def __init__(self, base_url: str, token: str, emulators: dict[str, RunningEmulator]) -> None:
        self.base_url = base_url
        self.token = token
        self.emulators = emulators

    async def new_account(self, http: aiohttp.ClientSession, provider: str) -> str:
        """A fresh account, so reference data (lookups) is read again and counted in the window."""
        body = {
            "integration": provider,
            "tenant_id": f"rl-{provider}-{time.monotonic_ns()}",
            "context": self.emulators[provider].context,
        }
        async with http.post(self.base_url + "/integrated-account", json=body, headers=self.auth) as resp:
            assert resp.status in (200, 201), await resp.text()
            return str((await resp.json())["id"])

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def control(self, http: aiohttp.ClientSession, provider: str, action: str, payload: Any = None) -> Any:
        url = self.emulators[provider].origin + f"/_emulator/{action}"
        if payload is None:
            async with http.get(url) as resp:
                return await resp.json()
        async with http.post(url, json=payload) as resp:
            return await resp.json()

    async def stream(self, http: aiohttp.ClientSession, account: str, cursor: str | None = None) -> tuple[int, list[Any]]:
        query: dict[str, str] = {"integrated_account_id": account, "truto_response_format": "stream"}
        if cursor:
            query["next_cursor"] = cursor
        async with http.get(self.base_url + BASE, params=query, headers=self.auth) as resp:
            body = await resp.read()
            if resp.status != 200:
                return resp.status, [orjson.loads(body)]
            assert resp.headers["Content-Type"].startswith("application/x-ndjson")
            return resp.status, [orjson.loads(line) for line in body.splitlines() if line]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    data_dir: Path = tmp_path_factory.mktemp("rate-limits")
    threads = [EmulatorThread([name], seed=3, dataset_size=dataset_size(name)) for name in PROVIDERS]
    for thread in threads:
        thread.__enter__()
    emulators = {name: thread.running[name] for name, thread in zip(PROVIDERS, threads, strict=True)}
    url = f"sqlite+aiosqlite:///{data_dir}/rl.db"
    token, _, _ = asyncio.run(setup_store(url, data_dir, {}))
    config = ServerConfig(
        database_url=url,
        data_dir=data_dir,
        timeouts=Timeouts(connect=2.0, read=5.0),
        stream_max_wait_s=MAX_WAIT_S,
        allow_origins=tuple(e.origin for e in emulators.values()),
    )
    server = ServerThread(config)
    server.__enter__()
    try:
        yield Rig(server.base_url, token, emulators)
    finally:
        server.__exit__(None, None, None)
        for thread in threads:
            thread.__exit__(None, None, None)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def list_requests(log: list[dict[str, Any]], provider: str) -> list[dict[str, Any]]:
    endpoint = all_providers()[provider].endpoints["list"]
    return [r for r in log if r["method"] == endpoint.method and r["path"].endswith(endpoint.path)]


def ids_of(lines: list[Any]) -> list[str]:
    return [line["id"] for line in lines if "error" not in line]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_waits_out_the_rate_limit(rig: Rig, http: aiohttp.ClientSession, provider: str) -> None:
    account = await rig.new_account(http, provider)
    lookups = len(all_providers()[provider].lookups)
    await rig.control(http, provider, "reset", {})
    # Lookups plus two pages fit in a window: the stream has to wait at least once for the rest.
    await rig.control(http, provider, "faults", {"rate_limit": lookups + 2, "rate_window_s": 1.0})
    try:
        started = time.monotonic()
        status, lines = await rig.stream(http, account)
        elapsed = time.monotonic() - started
    finally:
        await rig.control(http, provider, "faults", {"rate_limit": None})
    assert status == 200, lines
    assert not [line for line in lines if "error" in line], lines[-1]
    ids = ids_of(lines)
    assert len(ids) == len(set(ids)) == dataset_size(provider)
    assert elapsed >= 0.5, "the limit never held the stream back"
    pages = list_requests((await rig.control(http, provider, "requests"))["requests"], provider)
    spec = all_providers()[provider].rate_limit
    if spec.remaining and spec.reset:
        # The provider says when its window resets: the stream waits for it and never meets a 429.
        assert len(pages) == 4, f"{len(pages)} list requests for 4 pages: some were refused"
    else:
        assert len(pages) >= 4


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_gives_up_with_a_cursor_that_resumes_exactly(rig: Rig, http: aiohttp.ClientSession, provider: str) -> None:
    account = await rig.new_account(http, provider)
    lookups = len(all_providers()[provider].lookups)
    await rig.control(http, provider, "reset", {})
    # Two pages, then a window far longer than the server's longest wait.
    await rig.control(http, provider, "faults", {"rate_limit": lookups + 2, "rate_window_s": 120.0})
    try:
        status, first = await rig.stream(http, account)
    finally:
        await rig.control(http, provider, "faults", {"rate_limit": None})
    assert status == 200, first
    last = first[-1]
    assert set(last) == {"error", "next_cursor"}, last
    assert last["error"]["statusCode"] == 429 and last["error"]["truto_is_remote_error"] is True
    assert "next_cursor" in last["error"]["message"]
    assert not [line for line in first[:-1] if "error" in line]
    part_one = ids_of(first)
    size = all_providers()[provider].pagination.max_size
    assert len(part_one) == 2 * size
    status, rest = await rig.stream(http, account, last["next_cursor"])
    assert status == 200, rest
    assert not [line for line in rest if "error" in line], rest[-1]
    everything = part_one + ids_of(rest)
    assert len(everything) == len(set(everything)) == dataset_size(provider)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_error_line_carries_a_cursor(rig: Rig, http: aiohttp.ClientSession, provider: str) -> None:
    account = await rig.new_account(http, provider)
    endpoint = all_providers()[provider].endpoints["list"]
    await rig.control(http, provider, "reset", {})
    match = {"method": endpoint.method, "path_contains": endpoint.path}
    # The first page passes (a zero-second "hang" is consumed and answers normally; so are
    # reference-data reads whose path the match also catches), the second page fails.
    also_caught = sum(
        1
        for lookup in all_providers()[provider].lookups
        if lookup.endpoint.method == endpoint.method and endpoint.path in lookup.endpoint.path
    )
    passing = [{"kind": "hang", "seconds": 0, "match": match}] * (1 + also_caught)
    await rig.control(http, provider, "script", {"responses": [*passing, {"status": 500, "body": "{}", "match": match}]})
    status, first = await rig.stream(http, account)
    assert status == 200, first
    last = first[-1]
    assert last["error"]["statusCode"] == 502 and isinstance(last["next_cursor"], str), last
    part_one = ids_of(first)
    assert len(part_one) == all_providers()[provider].pagination.max_size
    status, rest = await rig.stream(http, account, last["next_cursor"])
    assert status == 200
    everything = part_one + ids_of(rest)
    assert len(everything) == len(set(everything)) == dataset_size(provider)


async def test_a_stream_cursor_resumes_only_a_stream(rig: Rig, http: aiohttp.ClientSession) -> None:
    provider = "capsule"
    account = await rig.new_account(http, provider)
    await rig.control(http, provider, "reset", {})
    lookups = len(all_providers()[provider].lookups)
    await rig.control(http, provider, "faults", {"rate_limit": lookups + 1, "rate_window_s": 120.0})
    try:
        _, lines = await rig.stream(http, account)
    finally:
        await rig.control(http, provider, "faults", {"rate_limit": None})
    cursor = lines[-1]["next_cursor"]
    query = {"integrated_account_id": account, "next_cursor": cursor}
    async with http.get(rig.base_url + BASE, params=query, headers=rig.auth) as resp:
        assert resp.status == 400
        assert "stream" in (await resp.json())["message"]


async def test_first_page_refused_for_longer_than_the_wait_is_a_429_answer(rig: Rig, http: aiohttp.ClientSession) -> None:
    provider = "wethod"  # its 429 carries only x-ratelimit-retry-after
    account = await rig.new_account(http, provider)
    await rig.control(http, provider, "reset", {})
    await rig.control(http, provider, "faults", {"rate_limit": 0, "rate_window_s": 120.0})
    try:
        status, body = await rig.stream(http, account)
    finally:
        await rig.control(http, provider, "faults", {"rate_limit": None})
    assert status == 429
    assert body[0]["truto_is_remote_error"] is True
