"""The Teamleader Focus emulator: its OAuth2 token endpoint, its RPC rules, its data.

Over HTTP: refresh tokens rotate and are single use, a bad client is refused, an expired access
token is a 401 in Teamleader's `{"errors": [...]}` shape, `page.size` is 1..100, create answers
201 with only `{type, id}`, `projects.update` refuses the relation keys, close and delete need
their strategy. Directly: the seeded data is a function of the seed, and a million-project
dataset is generated on the fly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from unicrm.emulators.base import RunningEmulator, start_emulators
from unicrm.emulators.teamleader import CF_DEFINITION, CF_REGION, SEEDED_PROJECTS, TeamleaderEmulator, build

ASC = [{"field": "project_key", "order": "asc"}]


@pytest.fixture
async def running() -> AsyncIterator[RunningEmulator]:
    emulators = await start_emulators(["teamleader"], seed=5)
    yield emulators["teamleader"]
    await emulators["teamleader"].stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def rpc(
    http: aiohttp.ClientSession, running: RunningEmulator, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One Teamleader call: POST with a JSON body and the account's bearer token."""
    headers = {"Authorization": f"Bearer {token or running.context['access_token']}"}
    async with http.post(f"{running.base_url}/{path}", json=body if body is not None else {}, headers=headers) as resp:
        raw = await resp.read()
        return resp.status, orjson.loads(raw) if raw else None


async def token_call(http: aiohttp.ClientSession, running: RunningEmulator, as_json: bool = False, **fields: str) -> Any:
    form = {
        "grant_type": "refresh_token",
        "client_id": running.context["client_id"],
        "client_secret": running.context["client_secret"],
        **fields,
    }
    async with http.post(running.context["token_url"], json=form if as_json else None, data=None if as_json else form) as resp:
        return resp.status, await resp.json()


def emulator(running: RunningEmulator) -> TeamleaderEmulator:
    assert isinstance(running.emulator, TeamleaderEmulator)
    return running.emulator


def titles(errors: Any) -> str:
    assert isinstance(errors, dict) and isinstance(errors["errors"], list)
    return " ".join(e["title"] for e in errors["errors"])


# --------------------------------------------------------------------------- OAuth2
async def test_refresh_rotates_and_is_single_use(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    assert running.context["token_url"] == running.origin + "/oauth2/access_token"
    first = running.context["refresh_token"]
    status, answer = await token_call(http, running, refresh_token=first)
    assert status == 200, answer
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    assert answer["access_token"] != running.context["access_token"] and answer["refresh_token"] != first
    assert (await rpc(http, running, "users.me", token=answer["access_token"]))[0] == 200

    # Single use: the old refresh token is dead; the new one works (JSON bodies too).
    status, reused = await token_call(http, running, refresh_token=first)
    assert (status, reused["error"]) == (400, "invalid_grant")
    status, again = await token_call(http, running, as_json=True, refresh_token=answer["refresh_token"])
    assert status == 200 and again["refresh_token"] not in (first, answer["refresh_token"])

    # A wrong client is refused before the refresh token is looked at (and does not use it up).
    status, bad = await token_call(http, running, client_secret="wrong", refresh_token=again["refresh_token"])
    assert (status, bad["error"]) == (401, "invalid_client")
    status, _ = await token_call(http, running, refresh_token=again["refresh_token"])
    assert status == 200
    status, grant = await token_call(http, running, grant_type="password", refresh_token="x")
    assert (status, grant["error"]) == (400, "unsupported_grant_type")

    async with http.get(running.origin + "/_emulator/stats") as resp:
        stats = await resp.json()
    assert stats["refreshes"] == 3 and stats["token_requests"] == 6


async def test_expired_or_missing_token_is_401(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    token = running.context["access_token"]
    assert (await rpc(http, running, "projects-v2/projects.list"))[0] == 200
    emulator(running).expire(token)
    status, body = await rpc(http, running, "projects-v2/projects.list")
    assert status == 401
    assert body == {"errors": [{"title": "Access token is invalid or expired", "status": 401}]}
    async with http.post(f"{running.base_url}/projects-v2/projects.list", json={}) as resp:
        assert resp.status == 401 and "errors" in await resp.json()
    # A token issued with a short life expires by itself.
    access, _ = emulator(running).issue_tokens(access_ttl_s=0.05)
    assert (await rpc(http, running, "users.me", token=access))[0] == 200
    await asyncio.sleep(0.1)
    assert (await rpc(http, running, "users.me", token=access))[0] == 401


# --------------------------------------------------------------------------- RPC rules
@pytest.mark.parametrize("size", [0, 101, "20"])
async def test_page_size_bounds(running: RunningEmulator, http: aiohttp.ClientSession, size: Any) -> None:
    status, body = await rpc(http, running, "projects-v2/projects.list", {"page": {"size": size, "number": 1}})
    assert status == 400
    assert "page.size" in titles(body)


async def test_paging_and_sorting(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    status, body = await rpc(http, running, "projects-v2/projects.list", {"page": {"size": 100}, "sort": ASC})
    assert status == 200 and [p["project_key"] for p in body["data"]] == list(range(1, SEEDED_PROJECTS + 1))
    assert all("custom_fields" not in p for p in body["data"])  # only with includes=custom_fields
    _, default = await rpc(http, running, "projects-v2/projects.list", {"includes": "pagination,custom_fields"})
    keys = [p["project_key"] for p in default["data"]]
    assert keys == list(range(SEEDED_PROJECTS, SEEDED_PROJECTS - 20, -1))  # 20 per page, project_key desc
    assert default["meta"] == {"page": {"size": 20, "number": 1}, "matches": SEEDED_PROJECTS}
    assert all("custom_fields" in p for p in default["data"])
    _, last = await rpc(http, running, "projects-v2/projects.list", {"page": {"size": 10, "number": 4}, "sort": ASC})
    assert [p["project_key"] for p in last["data"]] == list(range(31, SEEDED_PROJECTS + 1))
    status, bad = await rpc(http, running, "projects-v2/projects.list", {"sort": [{"field": "updated_at"}]})
    assert status == 400 and "sort" in titles(bad)


async def test_create_answers_only_type_and_id(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    emu = emulator(running)
    owner, company = list(emu.users)[2], next(iter(emu.companies))
    status, body = await rpc(
        http,
        running,
        "projects-v2/projects.create",
        {
            "title": "Webshop",
            "owner_ids": [owner],
            "customers": [{"type": "company", "id": company}],
            "billing_method": "fixed_price",
            "fixed_price": {"amount": 1200, "currency": "EUR"},
        },
    )
    assert status == 201
    assert body == {"data": {"type": "nextgenProject", "id": body["data"]["id"]}}
    status, info = await rpc(http, running, "projects-v2/projects.info", {"id": body["data"]["id"]})
    assert status == 200
    project = info["data"]
    assert (project["title"], project["status"], project["project_key"]) == ("Webshop", "open", SEEDED_PROJECTS + 1)
    assert [o["id"] for o in project["owners"]] == [owner, emu.me]  # the creator is added
    assert project["price"] == {"amount": 1200, "currency": "EUR"}

    for bad, named in (
        ({}, "title"),
        ({"title": "x", "billing_method": "hourly"}, "billing_method"),
        ({"title": "x", "owner_ids": ["nobody"]}, "nobody"),
        ({"title": "x", "fixed_price": {"amount": 1, "currency": "BTC"}}, "fixed_price.currency"),
        ({"title": "x", "billing_method": "fixed_price", "external_budget": {"amount": 1, "currency": "EUR"}}, "external_budget"),
        ({"title": "x", "start_date": "2025-06-02", "end_date": "2025-06-01"}, "end_date"),
    ):
        status, error = await rpc(http, running, "projects-v2/projects.create", bad)
        assert status == 400 and named in titles(error), bad
    _, listed = await rpc(http, running, "projects-v2/projects.list", {"page": {"size": 100}, "sort": ASC})
    assert len(listed["data"]) == SEEDED_PROJECTS + 1  # nothing stored by a refused create


async def test_update_refuses_relation_keys(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    emu = emulator(running)
    _, created = await rpc(http, running, "projects-v2/projects.create", {"title": "ERP rollout"})
    pid = created["data"]["id"]
    for key, value in (
        ("owner_ids", [list(emu.users)[1]]),
        ("customers", [{"type": "company", "id": list(emu.companies)[1]}]),
        ("deal_ids", [next(iter(emu.deals))]),
    ):
        status, error = await rpc(http, running, "projects-v2/projects.update", {"id": pid, "title": "Changed", key: value})
        assert status == 400 and key in titles(error) and "projects.add" in titles(error)
    _, info = await rpc(http, running, "projects-v2/projects.info", {"id": pid})
    assert info["data"]["title"] == "ERP rollout"  # a refused update changes nothing

    # The actions change them, idempotently; update answers 204 with no body.
    user = list(emu.users)[1]
    for _ in range(2):
        assert await rpc(http, running, "projects-v2/projects.addOwner", {"id": pid, "user_id": user}) == (204, None)
    assert (await rpc(http, running, "projects-v2/projects.update", {"id": pid, "title": "Changed"})) == (204, None)
    _, info = await rpc(http, running, "projects-v2/projects.info", {"id": pid})
    assert info["data"]["title"] == "Changed"
    assert [o["id"] for o in info["data"]["owners"]] == [emu.me, user]
    status, error = await rpc(http, running, "projects-v2/projects.update", {"id": pid, "billing_method": "fixed_price"})
    assert status == 400 and "billing_method" in titles(error)  # on update it is {value, update_strategy}


async def test_update_replaces_custom_fields_unless_partial(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    sector, region = CF_DEFINITION, CF_REGION
    body = {"title": "Fields", "custom_fields": [{"id": sector, "value": "Retail"}, {"id": region, "value": "North"}]}
    _, created = await rpc(http, running, "projects-v2/projects.create", body)
    pid = created["data"]["id"]

    async def values() -> dict[str, Any]:
        _, info = await rpc(http, running, "projects-v2/projects.info", {"id": pid})
        return {c["definition"]["id"]: c["value"] for c in info["data"]["custom_fields"]}

    assert await values() == {sector: "Retail", region: "North"}
    partial = {"id": pid, "custom_fields": [{"id": region, "value": "South"}], "custom_fields_update_strategy": "partial"}
    assert (await rpc(http, running, "projects-v2/projects.update", partial))[0] == 204
    assert await values() == {sector: "Retail", region: "South"}
    # Without the strategy the collection is replaced whole, as every collection in an update.
    whole = {"id": pid, "custom_fields": [{"id": region, "value": "East"}]}
    assert (await rpc(http, running, "projects-v2/projects.update", whole))[0] == 204
    assert await values() == {region: "East"}
    status, error = await rpc(http, running, "projects-v2/projects.update", {**whole, "custom_fields_update_strategy": "merge"})
    assert status == 400 and "custom_fields_update_strategy" in titles(error)


async def test_close_needs_a_closing_strategy(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    _, created = await rpc(http, running, "projects-v2/projects.create", {"title": "Office move"})
    pid = created["data"]["id"]
    status, error = await rpc(http, running, "projects-v2/projects.close", {"id": pid})
    assert status == 400 and "closing_strategy" in titles(error)
    status, _ = await rpc(http, running, "projects-v2/projects.close", {"id": pid, "closing_strategy": "archive"})
    assert status == 400
    _, info = await rpc(http, running, "projects-v2/projects.info", {"id": pid})
    assert info["data"]["status"] == "open"
    assert await rpc(http, running, "projects-v2/projects.close", {"id": pid, "closing_strategy": "none"}) == (204, None)
    _, info = await rpc(http, running, "projects-v2/projects.info", {"id": pid})
    assert info["data"]["status"] == "closed"
    assert await rpc(http, running, "projects-v2/projects.reopen", {"id": pid}) == (204, None)
    _, info = await rpc(http, running, "projects-v2/projects.info", {"id": pid})
    assert info["data"]["status"] == "open"


async def test_delete_needs_a_strategy_then_the_project_is_gone(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    _, first = await rpc(http, running, "projects-v2/projects.list", {"page": {"size": 3}, "sort": ASC})
    seeded = first["data"][2]["id"]  # a generated project, never written
    status, error = await rpc(http, running, "projects-v2/projects.delete", {"id": seeded})
    assert status == 400 and "delete_strategy" in titles(error)
    assert (await rpc(http, running, "projects-v2/projects.info", {"id": seeded}))[0] == 200
    done = await rpc(
        http, running, "projects-v2/projects.delete", {"id": seeded, "delete_strategy": "delete_tasks_and_time_trackings"}
    )
    assert done == (204, None)
    for path, body in (
        ("projects-v2/projects.info", {"id": seeded}),
        ("projects-v2/projects.update", {"id": seeded, "title": "x"}),
        ("projects-v2/projects.delete", {"id": seeded, "delete_strategy": "unlink_tasks_and_time_trackings"}),
    ):
        status, error = await rpc(http, running, path, body)
        assert status == 404 and seeded in titles(error), path
    _, listed = await rpc(http, running, "projects-v2/projects.list", {"page": {"size": 100}, "sort": ASC})
    assert seeded not in [p["id"] for p in listed["data"]] and len(listed["data"]) == SEEDED_PROJECTS - 1
    async with http.get(running.origin + "/_emulator/stats") as resp:
        assert (await resp.json())["deletes:delete_tasks_and_time_trackings"] == 1


# --------------------------------------------------------------------------- data
async def listed(emu: TeamleaderEmulator, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await emu.projects_list(body)
    assert resp.status == 200 and resp.body is not None
    return orjson.loads(resp.body)["data"]  # type: ignore[arg-type]


async def test_seeded_data_is_deterministic_per_seed() -> None:
    page = {"page": {"size": 100}, "sort": ASC, "includes": "custom_fields"}
    everything = await listed(build(seed=3), page)
    assert len(everything) == SEEDED_PROJECTS
    assert everything == await listed(build(seed=3), page)
    assert everything != await listed(build(seed=4), page)
    emu = build(seed=3)
    for project in everything:
        assert project["status"] in ("open", "closed")
        assert project["billing_method"] in ("time_and_materials", "fixed_price", "non_billable")
        assert project["owners"] and all(o["id"] in emu.users for o in project["owners"])
        assert all(c["id"] in (emu.companies if c["type"] == "company" else emu.contacts) for c in project["customers"])
        if project["billing_method"] == "fixed_price":
            assert project["fixed_price"]["currency"] == "EUR"
        if project["billing_method"] == "time_and_materials":
            assert project["external_budget"] is not None and project["fixed_price"] is None
    assert not emu.stored  # reading stores nothing


async def test_dataset_size_generates_projects_on_the_fly() -> None:
    emu = build(seed=2, dataset_size=100_000)
    page = await listed(emu, {"page": {"size": 20, "number": 5000}, "sort": ASC})
    assert [p["project_key"] for p in page] == list(range(99_981, 100_001))
    assert await listed(emu, {"page": {"size": 20, "number": 5001}, "sort": ASC}) == []
    assert not emu.stored  # paging stores nothing
    resp = await emu.projects_info({"id": page[0]["id"]})
    assert orjson.loads(resp.body)["data"]["project_key"] == 99_981  # type: ignore[arg-type]


async def test_a_page_builds_only_its_own_projects() -> None:
    """Page 50,000 of a million builds 20 projects, not the 999,980 before it (and stores none)."""
    emu = build(seed=2, dataset_size=1_000_000)
    built: list[int] = []
    generate = emu._generated

    def counting(key: int) -> dict[str, Any]:
        built.append(key)
        return generate(key)

    emu._generated = counting  # type: ignore[method-assign]
    page = await listed(emu, {"page": {"size": 20, "number": 50_000}, "sort": ASC})
    assert [p["project_key"] for p in page] == list(range(999_981, 1_000_001))
    assert built == list(range(999_981, 1_000_001))
    assert not emu.stored
    # Deleting shifts later pages by one, as on the real list.
    await emu.projects_delete({"id": page[0]["id"], "delete_strategy": "unlink_tasks_and_time_trackings"})
    first = await listed(emu, {"page": {"size": 20, "number": 1}, "sort": ASC})
    assert [p["project_key"] for p in first] == list(range(1, 21))
    shifted = await listed(emu, {"page": {"size": 20, "number": 50_000}, "sort": ASC})
    assert [p["project_key"] for p in shifted] == list(range(999_982, 1_000_001))
    await emu.projects_delete({"id": first[0]["id"], "delete_strategy": "unlink_tasks_and_time_trackings"})
    again = await listed(emu, {"page": {"size": 20, "number": 1}, "sort": ASC})
    assert [p["project_key"] for p in again] == list(range(2, 22))


def test_rate_limit_reset_is_a_documented_timestamp() -> None:
    headers = build().rate_limit_headers(200, 150, 1_623_754_283.5)
    assert headers == {
        "X-RateLimit-Limit": "200",
        "X-RateLimit-Remaining": "150",
        "X-RateLimit-Reset": "2021-06-15T10:51:23.500+0000",
    }
