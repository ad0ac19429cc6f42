"""The Wethod emulator's data and rules, without HTTP (the HTTP surface is covered end to end)."""

from __future__ import annotations

from typing import Any

import pytest

from unicrm.emulators.wethod import SEEDED_PROJECTS, WethodData, WethodError


def valid_body(data: WethodData, **extra: Any) -> dict[str, Any]:
    contact = data.contacts[0]
    return {
        "name": "New project", "client_id": contact["client_id"], "client_contact_id": contact["id"],
        "pm_id": data.persons[0]["id"], "job_order_category_id": data.categories[0]["id"], "value": 1.5,
        "probability": 50, "start_date": "2025-03-17", "duration": 4, **extra,
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
    for action in (lambda: data.get_project(ident), lambda: data.update_project(ident, {"name": "x"}),
                   lambda: data.delete_project(ident)):
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
