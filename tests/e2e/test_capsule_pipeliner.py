"""What is specific to Capsule and Pipeliner, over real HTTP through the server and emulators."""

from __future__ import annotations

import uuid

from tests.harness import Harness


async def _sample(h: Harness, provider: str) -> list[dict]:  # type: ignore[type-arg]
    return (await h.unified("GET", provider, query="limit=50&truto_ignore_remote_data=true")).json()["result"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- Capsule
async def test_capsule_contact_becomes_the_main_party(harness: Harness) -> None:
    sample = await _sample(harness, "capsule")
    person = next(r["contact"][0] for r in sample if r["contact"])
    owner = next(r["owner"] for r in sample if r["owner"])
    body = {
        "name": "Person project",
        "contact": [{"id": person["id"]}],
        "owner": {"id": owner["id"]},
        "close_date": "2026-03-01T17:45:00Z",
    }
    created = await harness.unified("POST", "capsule", json=body)
    assert created.status == 201, created.text
    project = created.json()
    assert project["contact"] == [{"id": person["id"], "name": person["name"]}]
    assert project["account"] is None
    assert project["close_date"] == "2026-03-01T00:00:00Z"  # Capsule keeps the date only
    assert project["remote_data"]["party"]["type"] == "person"
    sent = [r for r in await harness.provider_requests("capsule") if r["method"] == "POST" and r["path"].endswith("/kases")][-1]
    assert sent["json"]["kase"]["party"] == {"id": int(person["id"])}
    assert sent["json"]["kase"]["expectedCloseOn"] == "2026-03-01"


async def test_capsule_account_and_contact_conflict(harness: Harness) -> None:
    resp = await harness.unified(
        "POST", "capsule", json={"name": "x", "account": {"id": "1"}, "contact": [{"id": "2"}], "owner": {"id": "318"}}
    )
    assert resp.status == 400
    assert {f["field"] for f in resp.json()["truto_error_insight"]["invalid_fields"]} == {"account", "contact"}


async def test_capsule_party_required_names_unified_fields(harness: Harness) -> None:
    resp = await harness.unified("POST", "capsule", json={"name": "No party"})
    assert resp.status == 400
    assert resp.json()["truto_error_insight"]["missing_required_body_fields"]["value"] == ["account or contact", "owner"]


async def test_capsule_validation_error_is_named_back(harness: Harness) -> None:
    # An owner id Capsule does not know: Capsule's 422 names `owner`, we name the unified field.
    sample = await _sample(harness, "capsule")
    account = next(r["account"] for r in sample if r["account"])
    resp = await harness.unified(
        "POST", "capsule", json={"name": "Bad owner", "account": {"id": account["id"]}, "owner": {"id": "999"}}
    )
    assert resp.status == 422, resp.text
    body = resp.json()
    assert body["truto_is_remote_error"] is True
    assert body["truto_error_insight"]["invalid_fields"][0]["field"] == "owner"
    assert body["truto_error_insight"]["invalid_fields"][0]["remote_field"] == "owner"
    assert body["raw_response"]["message"] == "Validation Failed"


async def test_capsule_tags_custom_fields_and_status(harness: Harness) -> None:
    sample = await _sample(harness, "capsule")
    account = next(r["account"] for r in sample if r["account"])
    owner = next(r["owner"] for r in sample if r["owner"])
    body = {
        "name": "Tagged",
        "account": {"id": account["id"]},
        "owner": {"id": owner["id"]},
        "tags": [{"name": "Brand new tag"}],
        "custom_fields": {"PO number": "PO-77"},
        "status": "closed",
    }
    created = (await harness.unified("POST", "capsule", json=body)).json()
    assert [t["name"] for t in created["tags"]] == ["Brand new tag"]
    assert created["custom_fields"] == {"PO number": "PO-77"}
    assert created["status"] == "closed"
    bad = await harness.unified("PATCH", "capsule", f"/{created['id']}", json={"custom_fields": {"No such field": 1}})
    assert bad.status == 400 and "PO number" in bad.json()["message"]


async def test_capsule_updated_since_filter_is_native(harness: Harness) -> None:
    everything = (await harness.unified("GET", "capsule", query="limit=100")).json()["result"]
    moments = sorted(r["updated_at"] for r in everything)
    cut = moments[len(moments) // 2]
    page = await harness.unified("GET", "capsule", query={"limit": "100", "updated_at[gt]": cut})
    assert page.status == 200
    assert all(r["updated_at"] > cut for r in page.json()["result"])
    sent = [r for r in await harness.provider_requests("capsule") if r["path"].endswith("/kases") and r["method"] == "GET"][-1]
    assert sent["query"]["since"] == cut


async def test_capsule_rate_limit_headers_are_normalized(harness: Harness) -> None:
    await harness.control("capsule", "faults", {"rate_limit": 100, "rate_window_s": 60})
    try:
        resp = await harness.unified("GET", "capsule", query="limit=1")
        assert resp.headers["ratelimit-limit"] == "100;w=3600"
        assert int(resp.headers["ratelimit-remaining"]) <= 99
        # The emulator states the reset in whole epoch seconds rounded up: up to a second past the window.
        assert 0 <= int(resp.headers["ratelimit-reset"]) <= 61
    finally:
        await harness.control("capsule", "faults", {"rate_limit": None})


# ---------------------------------------------------------------------------- Pipeliner
async def test_pipeliner_revenue_goal_defaults_and_amounts(harness: Harness) -> None:
    sample = await _sample(harness, "pipeliner")
    owner = sample[0]["owner"]
    body = {"name": "No amount", "owner": {"id": owner["id"]}, "close_date": "2026-01-31T00:00:00Z"}
    created = await harness.unified("POST", "pipeliner", json=body)
    assert created.status == 201, created.text
    goal = created.json()["remote_data"]["revenue_goal"]
    assert goal["base_value"] == 0 and created.json()["currency"] == "EUR"
    priced = await harness.unified("PATCH", "pipeliner", f"/{created.json()['id']}", json={"amount": 1250.5, "currency": "usd"})
    assert priced.status == 200, priced.text
    assert priced.json()["amount"] == 1250.5 and priced.json()["currency"] == "USD"
    unknown = await harness.unified("PATCH", "pipeliner", f"/{created.json()['id']}", json={"currency": "XXX"})
    assert unknown.status == 400 and "EUR" in unknown.json()["message"]


async def test_pipeliner_status_is_read_only(harness: Harness) -> None:
    resp = await harness.unified("PATCH", "pipeliner", f"/{uuid.uuid4()}", json={"status": "completed"})
    assert resp.status == 400
    assert "read-only" in resp.json()["message"] or "computes" in resp.json()["message"]


async def test_pipeliner_contacts_and_filters(harness: Harness) -> None:
    sample = await _sample(harness, "pipeliner")
    contact = next(r["contact"][0] for r in sample if r["contact"])
    owner = sample[0]["owner"]
    created = (
        await harness.unified(
            "POST",
            "pipeliner",
            json={
                "name": "With contact",
                "owner": {"id": owner["id"]},
                "close_date": "2026-02-01T00:00:00Z",
                "contact": [{"id": contact["id"]}],
            },
        )
    ).json()
    assert created["contact"] == [contact]
    cut = "2025-03-01T00:00:00Z"
    page = (
        await harness.unified(
            "GET", "pipeliner", query={"limit": "100", "updated_at[gte]": cut, "updated_at[lt]": "2099-01-01T00:00:00Z"}
        )
    ).json()
    assert page["result"] and all(r["updated_at"] >= cut for r in page["result"])
    sent = [r for r in await harness.provider_requests("pipeliner") if r["path"].endswith("/Projects") and r["method"] == "GET"][
        -1
    ]
    assert sent["query"]["filter[modified]"] == "2025-03-01 00:00:00"
    assert sent["query"]["filter-op[modified]"] == "gte"


# ---------------------------------------------------------------------------- idempotency
async def test_idempotency_key_replays_instead_of_writing_twice(harness: Harness) -> None:
    sample = await _sample(harness, "pipeliner")
    body = {
        "name": f"Once {uuid.uuid4().hex[:6]}",
        "owner": {"id": sample[0]["owner"]["id"]},
        "close_date": "2026-02-01T00:00:00Z",
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    before = len(await harness.provider_requests("pipeliner"))
    first = await harness.unified("POST", "pipeliner", json=body, headers=key)
    second = await harness.unified("POST", "pipeliner", json=body, headers=key)
    assert first.status == second.status == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers.get("idempotent-replayed") == "true"
    posts = [r for r in (await harness.provider_requests("pipeliner"))[before:] if r["method"] == "POST"]
    assert len(posts) == 1
    other = await harness.unified("POST", "pipeliner", json={**body, "name": "different"}, headers=key)
    assert other.status == 422
