"""The Insightly emulator: its data and rules directly, and its HTTP surface (auth, quota, 202)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from unicrm.emulators.base import RunningEmulator, start_emulators
from unicrm.emulators.insightly import PROJECT_BASE, SEEDED_PROJECTS, InsightlyData, InsightlyError


def valid(data: InsightlyData, **extra: Any) -> dict[str, Any]:
    return {"PROJECT_NAME": "Rollout", "STATUS": "Not Started", **extra}


def test_seeded_data_is_deterministic_and_pages_by_skip_top() -> None:
    data, again = InsightlyData(seed=3), InsightlyData(seed=3)
    everything, _ = data.list_projects({"top": "500"})
    assert len(everything) == SEEDED_PROJECTS
    assert everything == again.list_projects({"top": "500"})[0]
    assert everything != InsightlyData(seed=4).list_projects({"top": "500"})[0]
    pages = [data.list_projects({"top": "5", "skip": str(s)})[0] for s in range(0, SEEDED_PROJECTS, 5)]
    assert [p["PROJECT_ID"] for page in pages for p in page] == [p["PROJECT_ID"] for p in everything]
    assert data.list_projects({})[0] == everything[:100]  # top defaults to 100
    for project in everything:
        assert project["STATUS"] in ("Not Started", "In Progress", "Deferred", "Completed", "Abandoned", "Cancelled")
        assert len(project["DATE_UPDATED_UTC"]) == 19 and project["DATE_UPDATED_UTC"][10] == " "
        assert all(link["LINK_OBJECT_NAME"] in ("Organisation", "Contact", "Opportunity") for link in project["LINKS"])


def test_brief_count_and_updated_after() -> None:
    data = InsightlyData()
    brief, _ = data.list_projects({"brief": "true", "top": "3"})
    assert all(not {"LINKS", "TAGS", "CUSTOMFIELDS"} & set(p) for p in brief)
    everything, total = data.list_projects({"top": "500", "count_total": "true"})
    assert total == SEEDED_PROJECTS
    middle = sorted(p["DATE_UPDATED_UTC"] for p in everything)[SEEDED_PROJECTS // 2]
    iso = middle.replace(" ", "T") + "Z"
    after, count = data.list_projects({"top": "500", "updated_after_utc": iso})
    assert after and all(p["DATE_UPDATED_UTC"] > middle for p in after)  # strictly after
    assert count == sum(1 for p in everything if p["DATE_UPDATED_UTC"] > middle)
    with pytest.raises(InsightlyError) as caught:
        data.list_projects({"updated_after_utc": middle})  # the body form is not a query date
    assert caught.value.status == 400


@pytest.mark.parametrize("query", [{"top": "0"}, {"top": "501"}, {"top": "x"}, {"skip": "-1"}])
def test_page_parameters_are_validated(query: dict[str, str]) -> None:
    with pytest.raises(InsightlyError) as caught:
        InsightlyData().list_projects(query)
    assert caught.value.status == 400
    assert next(iter(query)) in caught.value.body["Message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"STATUS": "Not Started"}, "PROJECT_NAME"),
        ({"PROJECT_NAME": "x"}, "STATUS"),
        ({"PROJECT_NAME": "x", "STATUS": "Open"}, "STATUS"),
        ({"PROJECT_NAME": "x", "STATUS": "not started"}, "STATUS"),
        ({"PROJECT_NAME": "x", "STATUS": "Completed", "COMPLETED_DATE": "2025-05-30T00:00:00Z"}, "COMPLETED_DATE"),
        ({"PROJECT_NAME": "x", "STATUS": "Completed", "OWNER_USER_ID": 1}, "OWNER_USER_ID"),
        ({"PROJECT_NAME": "x", "STATUS": "Completed", "OPPORTUNITY_ID": 2}, "OPPORTUNITY_ID"),
        (
            {"PROJECT_NAME": "x", "STATUS": "Completed", "LINKS": [{"LINK_OBJECT_NAME": "Contacts", "LINK_OBJECT_ID": 1}]},
            "LINK_OBJECT_NAME",
        ),
        (
            {"PROJECT_NAME": "x", "STATUS": "Completed", "LINKS": [{"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": 1}]},
            "Contact",
        ),
        (
            {"PROJECT_NAME": "x", "STATUS": "Completed", "CUSTOMFIELDS": [{"FIELD_NAME": "Colour__c", "FIELD_VALUE": "red"}]},
            "CUSTOMFIELDS",
        ),
        (
            {"PROJECT_NAME": "x", "STATUS": "Completed", "CUSTOMFIELDS": [{"FIELD_NAME": "Seats__c", "FIELD_VALUE": "ten"}]},
            "Seats__c",
        ),
        ({"PROJECT_NAME": "x", "STATUS": "Completed", "TAGS": [{"name": "x"}]}, "TAG_NAME"),
    ],
)
def test_create_validation(body: dict[str, Any], named: str) -> None:
    data = InsightlyData()
    with pytest.raises(InsightlyError) as caught:
        data.create_project(body)
    assert caught.value.status == 400
    assert named in caught.value.body["Message"]
    assert data.list_projects({"top": "500"})[0][-1]["PROJECT_ID"] == PROJECT_BASE + SEEDED_PROJECTS  # nothing stored


def test_create_update_delete() -> None:
    data = InsightlyData()
    org = data.organisations[0]["ORGANISATION_ID"]
    contact = data.contacts[0]["CONTACT_ID"]
    created = data.create_project(
        valid(
            data,
            PROJECT_ID=1,
            STAGE_ID=5,
            COMPLETED_DATE="2025-06-30 15:45:00",
            TAGS=[{"TAG_NAME": "pilot"}, {"TAG_NAME": "pilot"}],
            CUSTOMFIELDS=[{"FIELD_NAME": "Budget_Code__c", "FIELD_VALUE": "OPS-1"}],
            LINKS=[
                {"LINK_OBJECT_NAME": "Organisation", "LINK_OBJECT_ID": org},
                {"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": contact},
            ],
        )
    )
    ident = created["PROJECT_ID"]
    assert ident == PROJECT_BASE + SEEDED_PROJECTS + 1  # PROJECT_ID and STAGE_ID in a body are read-only
    assert created["STAGE_ID"] is None and created["OWNER_USER_ID"] == data.users[0]["USER_ID"]
    assert created["TAGS"] == [{"TAG_NAME": "pilot"}]
    assert [(link["LINK_OBJECT_NAME"], link["OBJECT_ID"]) for link in created["LINKS"]] == [
        ("Organisation", ident),
        ("Contact", ident),
    ]
    org_link = created["LINKS"][0]

    # PUT changes only what it is sent; TAGS and LINKS replace, CUSTOMFIELDS merge field by field.
    updated = data.update_project(
        {
            "PROJECT_ID": ident,
            "STATUS": "Completed",
            "TAGS": [],
            "CUSTOMFIELDS": [{"FIELD_NAME": "Seats__c", "FIELD_VALUE": 3}],
            "LINKS": [{"LINK_ID": org_link["LINK_ID"]}],
        }
    )
    assert (updated["PROJECT_NAME"], updated["STATUS"], updated["COMPLETED_DATE"]) == (
        "Rollout",
        "Completed",
        "2025-06-30 15:45:00",
    )
    assert updated["TAGS"] == [] and updated["LINKS"] == [org_link]
    assert updated["CUSTOMFIELDS"] == [
        {"FIELD_NAME": "Budget_Code__c", "FIELD_VALUE": "OPS-1"},
        {"FIELD_NAME": "Seats__c", "FIELD_VALUE": 3},
    ]
    cleared = data.update_project(
        {"PROJECT_ID": ident, "COMPLETED_DATE": None, "CUSTOMFIELDS": [{"FIELD_NAME": "Seats__c", "FIELD_VALUE": None}]}
    )
    assert cleared["COMPLETED_DATE"] is None and [f["FIELD_NAME"] for f in cleared["CUSTOMFIELDS"]] == ["Budget_Code__c"]
    for bad in (
        {"PROJECT_ID": ident, "PROJECT_NAME": None},
        {"PROJECT_NAME": "no id"},
        {"PROJECT_ID": ident, "LINKS": [{"LINK_ID": 1}]},
    ):
        with pytest.raises(InsightlyError) as caught:
            data.update_project(bad)
        assert caught.value.status == 400

    data.delete_project(str(ident))
    for call in (
        lambda: data.get_project(str(ident)),
        lambda: data.delete_project(str(ident)),
        lambda: data.update_project({"PROJECT_ID": ident}),
    ):
        with pytest.raises(InsightlyError) as caught:
            call()
        assert caught.value.status == 404


def test_search_by_field_and_custom_field() -> None:
    data = InsightlyData()
    everything, _ = data.list_projects({"top": "500"})
    status = everything[0]["STATUS"]
    found, _ = data.list_projects({"top": "500", "field_name": "STATUS", "field_value": status})
    assert found and all(p["STATUS"] == status for p in found)
    code = next(f["FIELD_VALUE"] for p in everything for f in p["CUSTOMFIELDS"] if f["FIELD_NAME"] == "Budget_Code__c")
    by_code, _ = data.list_projects({"top": "500", "field_name": "Budget_Code__c", "field_value": code})
    assert by_code and all({"FIELD_NAME": "Budget_Code__c", "FIELD_VALUE": code} in p["CUSTOMFIELDS"] for p in by_code)


def test_dataset_size_generates_on_the_fly() -> None:
    data = InsightlyData(seed=2, dataset_size=1_000_000)
    page, _ = data.list_projects({"top": "500", "skip": "999800"})
    assert len(page) == 200 and page[-1]["PROJECT_ID"] == PROJECT_BASE + 1_000_000
    assert data.get_project(str(PROJECT_BASE + 500_000))["PROJECT_ID"] == PROJECT_BASE + 500_000
    assert not data.projects  # nothing stored until a write


# --------------------------------------------------------------------------- HTTP
@pytest.fixture
async def running() -> AsyncIterator[RunningEmulator]:
    emulators = await start_emulators(["insightly"], seed=5)
    yield emulators["insightly"]
    await emulators["insightly"].stop()


def basic(user: str, password: str = "") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_http_auth_quota_and_delete(running: RunningEmulator) -> None:
    key = running.context["api_key"]
    assert running.base_url.endswith("/v3.1")
    async with aiohttp.ClientSession() as http:
        for headers in ({}, basic("wrong"), {"Authorization": f"Bearer {key}"}):
            async with http.get(f"{running.base_url}/Projects", headers=headers) as resp:
                assert resp.status == 401
                assert "Message" in await resp.json()
        async with http.get(
            f"{running.base_url}/Projects", params={"top": "2", "count_total": "true"}, headers=basic(key)
        ) as resp:
            assert resp.status == 200
            assert len(await resp.json()) == 2
            assert resp.headers["X-Total-Count"] == str(SEEDED_PROJECTS)
            assert resp.headers["X-RateLimit-Limit"] == "100000"
            remaining = int(resp.headers["X-RateLimit-Remaining"])
        async with http.post(
            f"{running.base_url}/Projects", json={"PROJECT_NAME": "x", "STATUS": "Deferred"}, headers=basic(key)
        ) as resp:
            assert resp.status == 201
            created = await resp.json()
            assert int(resp.headers["X-RateLimit-Remaining"]) == remaining - 1
        async with http.delete(f"{running.base_url}/Projects/{created['PROJECT_ID']}", headers=basic(key, "ignored")) as resp:
            assert resp.status == 202 and await resp.read() == b""
        async with http.get(f"{running.base_url}/Projects/{created['PROJECT_ID']}", headers=basic(key)) as resp:
            assert resp.status == 404
        async with http.get(f"{running.base_url}/PipelineStages", headers=basic(key)) as resp:
            assert [s["STAGE_NAME"] for s in await resp.json()] == ["Kick-off", "Delivery", "Acceptance", "Handover"]

        # The daily quota: once used up, every call is a 429 until the next day.
        running.emulator.daily_quota = 3  # type: ignore[attr-defined]
        running.emulator.quota_used[key] = 3  # type: ignore[attr-defined]
        async with http.get(f"{running.base_url}/Projects", headers=basic(key)) as resp:
            assert resp.status == 429
            assert resp.headers["X-RateLimit-Remaining"] == "0"
