"""The Wethod emulator: its data and rules directly, then its HTTP surface (auth, headers, errors)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from unicrm.emulators.base import EmulatorThread, RunningEmulator
from unicrm.emulators.wethod import SEEDED_PROJECTS, WethodData, WethodError


def valid_body(data: WethodData, **extra: Any) -> dict[str, Any]:
    contact = data.contacts[0]
    return {
        "name": "New project",
        "client_id": contact["client_id"],
        "client_contact_id": contact["id"],
        "pm_id": data.persons[0]["id"],
        "job_order_category_id": data.categories[0]["id"],
        "value": 1.5,
        "probability": 50,
        "start_date": "2025-03-17",
        "duration": 4,
        **extra,
    }


def test_seeded_data_is_deterministic_and_pages_by_limit_offset() -> None:
    data, again = WethodData(seed=3), WethodData(seed=3)
    first = data.list_projects({"limit": "100"})
    assert len(first) == SEEDED_PROJECTS
    assert first == again.list_projects({"limit": "100"})
    assert first != WethodData(seed=4).list_projects({"limit": "100"})
    pages = [data.list_projects({"limit": "7", "offset": str(o)}) for o in range(0, SEEDED_PROJECTS, 7)]
    assert [p["id"] for page in pages for p in page] == [p["id"] for p in first]
    assert all(isinstance(p["value"], float) and isinstance(p["id"], int) for p in first)


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"offset": "-1"}])
def test_page_parameters_are_validated(query: dict[str, str]) -> None:
    with pytest.raises(WethodError) as caught:
        WethodData().list_projects(query)
    assert caught.value.status == 400
    assert caught.value.body["key"] == "invalid_data"
    assert caught.value.body["failures"][0]["field"] in query


def test_updated_at_filter_operators() -> None:
    data = WethodData(seed=1)
    everything = data.list_projects({})
    pivot = sorted(p["updated_at"] for p in everything)[len(everything) // 2]
    newer = data.list_projects({"updated_at": f"gt:{pivot}"})
    not_older = data.list_projects({"updated_at": f"gte:{pivot}"})
    older = data.list_projects({"updated_at": f"lt:{pivot}"})
    assert newer and all(p["updated_at"] > pivot for p in newer)
    assert len(not_older) == len(newer) + 1
    assert len(older) + len(not_older) == len(everything)
    # offsets in the filter are honoured (+ arrives as a space when not percent-encoded)
    shifted = data.list_projects({"updated_at": "gt:" + pivot.replace("Z", " 00:00")})
    assert shifted == newer
    with pytest.raises(WethodError):
        data.list_projects({"updated_at": "gt:yesterday"})


def test_create_requires_the_documented_fields_and_names_failures() -> None:
    data = WethodData()
    with pytest.raises(WethodError) as caught:
        data.create_project({"name": "x"})
    failures = {f["field"] for f in caught.value.body["failures"]}
    assert failures == {"client_id", "pm_id", "job_order_category_id", "value", "probability", "start_date", "duration"}
    with pytest.raises(WethodError) as caught:
        data.create_project(valid_body(data, client_id=9999, probability=101, metadata_13="Nope"))
    assert {f["field"]: f["message"] for f in caught.value.body["failures"]} == {
        "client_id": "Client not found",
        "probability": "Must be an integer from 0 to 100",
        "metadata_13": "Must be one of: Finance, Retail, Manufacturing, Public sector",
    }


def test_create_then_read_update_archive_and_soft_delete() -> None:
    data = WethodData()
    created = data.create_project(valid_body(data, metadata_13="Retail"))
    assert created["id"] == SEEDED_PROJECTS + 1
    assert created["date_start"] == "2025-03-01"  # Wethod keeps the start month
    assert created["metadata_13"] == "Retail" and created["is_archived"] is False
    ident = str(created["id"])
    updated = data.update_project(ident, {"value": "2.25", "metadata_13": None})
    assert updated["value"] == 2.25 and "metadata_13" not in updated
    assert data.set_archived(ident, True)["is_archived"] is True
    assert data.get_project(ident)["archived_on"] is not None
    assert data.set_archived(ident, False)["archived_on"] is None
    data.delete_project(ident)
    for action in (
        lambda: data.get_project(ident),
        lambda: data.update_project(ident, {"name": "x"}),
        lambda: data.delete_project(ident),
    ):
        with pytest.raises(WethodError) as caught:
            action()
        assert caught.value.status == 404 and caught.value.body["key"] == "not_found"
    assert int(ident) not in [p["id"] for p in data.list_projects({"limit": "100"})]
    only_deleted = data.list_projects({"deleted": "only"})
    assert [p["id"] for p in only_deleted] == [int(ident)] and only_deleted[0]["deleted_at"]


def test_contact_must_belong_to_the_client() -> None:
    data = WethodData()
    other = next(c for c in data.contacts if c["client_id"] != data.contacts[0]["client_id"])
    with pytest.raises(WethodError) as caught:
        data.create_project(valid_body(data, client_contact_id=other["id"]))
    assert caught.value.body["failures"] == [
        {"field": "client_contact_id", "message": "The contact does not belong to the project's client"}
    ]


def test_dataset_size_generates_projects_on_the_fly() -> None:
    data = WethodData(seed=2, dataset_size=1_000_000)
    page = data.list_projects({"limit": "100", "offset": "0"})
    assert len(page) == 100 and not data.projects  # nothing materialised by reading
    assert data.get_project("999999")["id"] == 999_999
    data.update_project("500000", {"name": "touched"})
    assert list(data.projects) == [500_000]
    assert data.get_project("500000")["name"] == "touched"


def test_reference_lists() -> None:
    data = WethodData()
    client = data.clients[0]["id"]
    contacts = data.reference("contacts", {"client_id": str(client)})
    assert contacts and all(c["client_id"] == client for c in contacts)
    assert data.reference_item("clients", str(client))["corporate_name"]
    assert [m["key"] for m in data.reference("project-metadata", {})] == ["Industry", "Region"]
    with pytest.raises(WethodError):
        data.reference_item("persons", "999")


def test_unfiltered_pages_skip_deleted_projects_like_a_scan() -> None:
    data = WethodData(seed=5)
    for ident in ("1", "2", "9", "10"):
        data.delete_project(ident)
    scanned = [p["id"] for p in data.list_projects({"probability": "gte:0", "limit": "100"})]
    paged = [p["id"] for offset in range(0, 40, 6) for p in data.list_projects({"limit": "6", "offset": str(offset)})]
    assert paged == scanned == [i for i in range(1, SEEDED_PROJECTS + 1) if i not in (1, 2, 9, 10)]


# --------------------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def wethod() -> Iterator[RunningEmulator]:
    with EmulatorThread(["wethod"], seed=11) as thread:
        yield thread.running["wethod"]


async def _get(running: RunningEmulator, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(running.base_url + path, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


def _headers(running: RunningEmulator, **override: str) -> dict[str, str]:
    base = {
        "Authorization": f"Bearer {running.context['api_token']}",
        "Wethod-Company": running.context["company"],
        "Wethod-Version": "2024-06-15",
    }
    return {k: v for k, v in {**base, **override}.items() if v}


async def test_http_requires_token_and_both_headers(wethod: RunningEmulator) -> None:
    status, body, _ = await _get(wethod, "/api/projects?limit=2", _headers(wethod))
    assert status == 200 and isinstance(body, list) and len(body) == 2
    status, body, _ = await _get(wethod, "/api/projects", _headers(wethod, Authorization="Bearer nope"))
    assert status == 401 and body["key"] == "unauthorized"
    status, body, _ = await _get(wethod, "/api/projects", _headers(wethod, **{"Wethod-Version": "", "Wethod-Company": ""}))
    assert status == 400 and {f["field"] for f in body["failures"]} == {"Wethod-Company", "Wethod-Version"}
    status, body, _ = await _get(wethod, "/api/projects", _headers(wethod, **{"Wethod-Company": "globex"}))
    assert status == 401


async def test_http_archive_action_and_404_body(wethod: RunningEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(wethod.base_url + "/api/projects/3:archive", headers=_headers(wethod)) as resp:
            assert resp.status == 200
            assert (await resp.json())["is_archived"] is True
        async with session.delete(wethod.base_url + "/api/projects/3", headers=_headers(wethod)) as resp:
            assert resp.status == 200 and await resp.read() == b""
    status, body, _ = await _get(wethod, "/api/projects/3", _headers(wethod))
    assert status == 404 and body == {"key": "not_found", "message": "The requested resource does not exist."}


async def _faults(running: RunningEmulator, settings: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session, session.post(running.origin + "/_emulator/faults", json=settings) as resp:
        assert resp.status == 200


async def test_http_rate_limit_answers_with_retry_after_header(wethod: RunningEmulator) -> None:
    await _faults(wethod, {"rate_limit": 1, "rate_window_s": 30})
    try:
        await _get(wethod, "/api/clients", _headers(wethod))
        status, body, headers = await _get(wethod, "/api/clients", _headers(wethod))
        assert status == 429 and body["key"] == "too_many_requests"
        assert int(headers["x-ratelimit-retry-after"]) >= 1
    finally:
        await _faults(wethod, {"rate_limit": None})
