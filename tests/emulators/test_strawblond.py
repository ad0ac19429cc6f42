"""The StrawBlond emulator's data and rules directly (its HTTP surface is covered end to end)."""

from __future__ import annotations

import pytest

from unicrm.emulators.strawblond import SEEDED_PROJECTS, Invalid, NotFound, StrawBlondData, hashid, unhash


def valid_body(data: StrawBlondData) -> dict[str, object]:
    return {
        "name": "New",
        "company_id": data.companies[0]["id"],
        "member_id": data.members[0]["id"],
        "starts_at": "2025-03-17",
    }


def test_ids_round_trip_and_pages_cover_the_data() -> None:
    assert unhash(hashid(3, 12345)) == (3, 12345)
    assert unhash("garbage!!!") is None
    data = StrawBlondData(seed=2)
    records, page, per_page, total = data.list_page({"per_page": "500"})
    assert (page, per_page, total, len(records)) == (1, 50, SEEDED_PROJECTS, SEEDED_PROJECTS)
    pages = [data.list_page({"page": str(n), "per_page": "7"})[0] for n in range(1, 7)]
    assert [r["id"] for p in pages for r in p] == [r["id"] for r in records]
    assert records == StrawBlondData(seed=2).list_page({})[0]


def test_create_requires_the_documented_fields_laravel_style() -> None:
    data = StrawBlondData()
    with pytest.raises(Invalid) as caught:
        data.create({"name": "x"})
    assert set(caught.value.body["errors"]) == {"company_id", "member_id", "starts_at"}
    assert caught.value.body["message"].endswith("(and 2 more errors)")
    created = data.create({**valid_body(data), "status": "completed"})
    assert created["status"] == "active"  # status is not writable on create
    assert data.out(created, set())["starts_at"] == "2025-03-17T00:00:00.000000Z"


def test_update_replaces_custom_fields_and_delete_is_soft() -> None:
    data = StrawBlondData()
    created = data.create({**valid_body(data), "custom_fields": {"a": 1, "b": 2}})
    updated = data.update(created["id"], {"custom_fields": {"b": 3}, "status": "completed"})
    assert updated["custom_fields"] == {"b": 3}
    assert data.out(updated, set())["is_archived"] is True
    with pytest.raises(Invalid):
        data.update(created["id"], {"status": "paused"})
    data.delete(created["id"])
    with pytest.raises(NotFound):
        data.find(created["id"])


def test_owner_user_only_when_included() -> None:
    data = StrawBlondData()
    record = data.list_page({"per_page": "1"})[0][0]
    assert "user" not in data.out(record, set())["owner"]
    assert data.out(record, {"owner.user"})["owner"]["user"]["name"]


def test_generated_dataset_pages_by_index() -> None:
    data = StrawBlondData(dataset_size=100_000)
    records, _, _, total = data.list_page({"page": "2000", "per_page": "50"})
    assert total == 100_000 and len(records) == 50
    assert unhash(records[0]["id"]) == (3, 99_951)
