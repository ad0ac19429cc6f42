"""The Planhat emulator: its data and rules directly, and its HTTP surface (auth, limits)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from unicrm.emulators.base import RunningEmulator, start_emulators
from unicrm.emulators.planhat import HARD_PER_SECOND, SEEDED_PROJECTS, PlanhatData, PlanhatError


def a_company(data: PlanhatData) -> str:
    return str(data.companies[0]["_id"])


def test_seeded_data_is_deterministic_and_pages_by_limit_offset() -> None:
    data, again = PlanhatData(seed=3), PlanhatData(seed=3)
    first = data.list_projects({"limit": "100", "select": "name,mrr,createdAt"})
    assert len(first) == SEEDED_PROJECTS
    assert first == again.list_projects({"limit": "100", "select": "name,mrr,createdAt"})
    assert first != PlanhatData(seed=4).list_projects({"limit": "100", "select": "name,mrr,createdAt"})
    pages = [data.list_projects({"limit": "7", "offset": str(o)}) for o in range(0, SEEDED_PROJECTS, 7)]
    assert [p["_id"] for page in pages for p in page] == [p["_id"] for p in first]
    assert [p["_id"] for p in first] == sorted(p["_id"] for p in first)  # ObjectIds grow with creation
    assert all(len(p["_id"]) == 24 for p in first)


def test_list_is_lean_unless_select_asks_for_more() -> None:
    data = PlanhatData()
    lean = data.list_projects({"limit": "3"})
    assert all(set(p) == {"_id", "companyId", "name"} for p in lean)
    chosen = data.list_projects({"limit": "3", "select": "mrr,currency"})
    assert all(set(p) <= {"_id", "mrr", "currency"} and "mrr" in p for p in chosen)
    full = data.get_project(lean[0]["_id"])
    assert {"companyName", "createdAt", "updatedAt", "__v", "custom"} <= set(full)


def test_list_filters_and_sorts() -> None:
    data = PlanhatData()
    company = data.get_project(data.list_projects({"limit": "1"})[0]["_id"])["companyId"]
    only = data.list_projects({"limit": "100", "companyId": company})
    assert only and all(p["companyId"] == company for p in only)
    by_mrr = data.list_projects({"limit": "100", "sort": "-mrr", "select": "mrr"})
    assert [p["mrr"] for p in by_mrr] == sorted((p["mrr"] for p in by_mrr), reverse=True)
    with pytest.raises(PlanhatError) as caught:
        data.list_projects({"sort": "colour"})
    assert caught.value.status == 400


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "2001"}, {"limit": "x"}, {"offset": "-1"}])
def test_page_parameters_are_validated(query: dict[str, str]) -> None:
    with pytest.raises(PlanhatError) as caught:
        PlanhatData().list_projects(query)
    assert caught.value.status == 400
    assert next(iter(query)) in caught.value.body["error"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"companyId": "COMPANY"}, "name"),
        ({"name": "No company"}, "companyId"),
        ({"name": "x", "companyId": "000000000000000000000000"}, "companyId"),
        ({"name": "x", "companyId": "COMPANY", "mrr": "ten"}, "mrr"),
        ({"name": "x", "companyId": "COMPANY", "endDate": "next week"}, "endDate"),
        ({"name": "x", "companyId": "COMPANY", "custom": {"Seats": "many"}}, "custom.Seats"),
        ({"name": "x", "companyId": "COMPANY", "custom": {"Region": "Mars"}}, "custom.Region"),
    ],
)
def test_create_validation(body: dict[str, Any], named: str) -> None:
    data = PlanhatData()
    body = {k: (a_company(data) if v == "COMPANY" else v) for k, v in body.items()}
    with pytest.raises(PlanhatError) as caught:
        data.create_project(body)
    assert caught.value.status == 400
    assert named in caught.value.body["error"]


def test_create_update_delete() -> None:
    data = PlanhatData()
    created = data.create_project(
        {
            "name": "Rollout",
            "companyId": a_company(data),
            "companyName": "ignored",
            "mrr": 10,
            "currency": "EUR",
            "endDate": "2025-09-30",
            "custom": {"Region": "DACH", "Segment": "not a project field"},
            "colour": "red",
        }
    )
    assert created["companyName"] == data.companies[0]["name"]
    assert created["endDate"] == "2025-09-30T00:00:00.000Z"
    assert created["custom"] == {"Region": "DACH"}
    assert "colour" not in created
    ident = created["_id"]
    assert data.list_projects({"limit": "2000"})[-1]["_id"] == ident  # newest ObjectId sorts last

    updated = data.update_project(ident, {"mrr": 20, "custom": {"Seats": 5, "Region": None}, "endDate": None})
    assert (updated["mrr"], updated["currency"], updated["custom"]) == (20, "EUR", {"Seats": 5})
    assert "endDate" not in updated
    assert updated["updatedAt"] >= created["updatedAt"]
    with pytest.raises(PlanhatError):
        data.update_project(ident, {"name": ""})

    assert data.delete_project(ident) == {"n": 1, "ok": 1, "deletedCount": 1}
    for call in (lambda: data.get_project(ident), lambda: data.delete_project(ident), lambda: data.update_project(ident, {})):
        with pytest.raises(PlanhatError) as caught:
            call()
        assert caught.value.status == 404


def test_keyables_address_projects() -> None:
    data = PlanhatData()
    created = data.create_project({"name": "Keyed", "companyId": a_company(data), "externalId": "PRJ-X1", "sourceId": "sf-9"})
    assert data.get_project("extid-PRJ-X1")["_id"] == created["_id"]
    assert data.get_project("srcid-sf-9")["_id"] == created["_id"]
    with pytest.raises(PlanhatError):
        data.get_project("extid-nope")


def test_generated_dataset_pages_without_materialising() -> None:
    data = PlanhatData(seed=1, dataset_size=1_000_000)
    page = data.list_projects({"limit": "2000", "offset": "998000"})
    assert len(page) == 2000
    assert data.get_project(page[-1]["_id"])["name"].endswith("#1000000")
    assert data.list_projects({"limit": "10", "offset": "1000000"}) == []
    assert data.projects == {}


def test_related_models_and_custom_field_definitions() -> None:
    data = PlanhatData()
    parents = {d["parent"] for d in data.related("customfields", {})}
    assert parents == {"project", "company"}
    company = a_company(data)
    users = data.related("endusers", {"companyId": company})
    assert users and all(u["companyId"] == company for u in users)
    assert data.related_item("companies", company)["_id"] == company


# ---------------------------------------------------------------------------- HTTP
@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    running = await start_emulators(["planhat"], seed=5)
    try:
        yield running["planhat"]
    finally:
        await running["planhat"].stop()


async def test_bearer_or_basic_token_and_quota_headers(emulator: RunningEmulator) -> None:
    token = emulator.context["api_token"]
    basic = base64.b64encode(f"{token}:".encode()).decode()
    async with aiohttp.ClientSession() as session:
        for auth in (f"Bearer {token}", f"Basic {basic}"):
            async with session.get(emulator.base_url + "/projects?limit=2", headers={"Authorization": auth}) as resp:
                assert resp.status == 200
                assert len(await resp.json()) == 2
                assert resp.headers["X-Rate-Limit-Limit"] == "200"
                assert int(resp.headers["X-Rate-Limit-Remaining"]) < 200
        for auth in ("Bearer wrong", "", "Basic !!"):
            async with session.get(emulator.base_url + "/projects", headers={"Authorization": auth}) as resp:
                assert resp.status == 401
                assert "error" in await resp.json()


async def test_hard_limit_per_second(emulator: RunningEmulator) -> None:
    clock = [1000.0]
    emulator.emulator.clock = lambda: clock[0]  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {emulator.context['api_token']}"}
    async with aiohttp.ClientSession() as session:

        async def status() -> int:
            async with session.get(emulator.base_url + "/users", headers=headers) as resp:
                if resp.status == 429:
                    assert await resp.text() == "Too many requests"
                    assert "Retry-After" not in resp.headers
                    assert resp.headers["X-Rate-Limit-Remaining"].isdigit()
                return resp.status

        statuses = [await status() for _ in range(HARD_PER_SECOND + 1)]
        assert statuses == [200] * HARD_PER_SECOND + [429]
        clock[0] += 1.0  # the next second
        assert await status() == 200
        # The soft quota (200 a minute) is reported, not enforced.
        remaining = [await status() for _ in range(60)]
        assert remaining == [200] * 60
