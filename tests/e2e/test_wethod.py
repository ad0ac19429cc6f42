"""What is specific to Wethod, end to end over HTTP (server + Wethod emulator).

The generic contract (every page, formats, bad input, faults) is in test_contract.py; this file
checks amounts in thousands, `invalid_data` failures named as unified fields, the native
`updated_at` filter, soft delete, the required headers, archive-backed status and the create
defaults.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness import Harness

P = "wethod"


async def new_requests(h: Harness, before: int) -> list[dict[str, Any]]:
    return (await h.provider_requests(P))[before:]


async def a_valid_body(h: Harness, **extra: Any) -> dict[str, Any]:
    """Account, owner and contact of an existing project (so the contact belongs to the client)."""
    page = (await h.unified("GET", P, query="limit=100&truto_ignore_remote_data=true")).json()["result"]
    model = next(r for r in page if r["contact"])
    return {
        "name": f"Wethod e2e {uuid.uuid4().hex[:8]}",
        "account": {"id": model["account"]["id"]},
        "owner": {"id": model["owner"]["id"]},
        "contact": [{"id": model["contact"][0]["id"]}],
        **extra,
    }


def query_of(request: dict[str, Any]) -> dict[str, Any]:
    query = request.get("query") or {}
    return {k: (v[-1] if isinstance(v, list) else v) for k, v in query.items()}


def header(request: dict[str, Any], name: str) -> str | None:
    headers = {k.lower(): v for k, v in (request.get("headers") or {}).items()}
    return headers.get(name.lower())


async def test_amount_is_scaled_both_ways(harness: Harness) -> None:
    listed = (await harness.unified("GET", P, query="limit=10")).json()["result"]
    assert listed
    for record in listed:
        assert abs(record["amount"] - float(record["remote_data"]["value"]) * 1000) < 1e-6
    before = len(await harness.provider_requests(P))
    created = await harness.unified("POST", P, json=await a_valid_body(harness, amount=123456.7))
    assert created.status == 201, created.text
    project = created.json()
    assert project["amount"] == 123456.7
    assert project["remote_data"]["value"] == 123.4567
    post = next(r for r in await new_requests(harness, before) if r["method"] == "POST")
    assert post["json"]["value"] == 123.4567
    patched = await harness.unified("PATCH", P, f"/{project['id']}", json={"amount": 1100})
    assert patched.status == 200, patched.text
    assert patched.json()["amount"] == 1100 and patched.json()["remote_data"]["value"] == 1.1


async def test_invalid_data_failures_are_named_as_unified_fields(harness: Harness) -> None:
    body = await a_valid_body(harness, custom_fields={"Industry": "Astrology"})
    body["account"] = {"id": "99999"}
    body.pop("contact")
    resp = await harness.unified("POST", P, json=body)
    assert resp.status == 400, resp.text
    error = resp.json()
    assert error["truto_is_remote_error"] is True
    assert error["raw_response"]["key"] == "invalid_data"
    invalid = {i["field"]: i for i in error["truto_error_insight"]["invalid_fields"]}
    assert invalid["account"]["remote_field"] == "client_id"
    assert invalid["account"]["message"] == "Client not found"
    assert invalid["custom_fields"]["remote_field"].startswith("metadata_")
    assert "account" in error["message"]


async def test_updated_at_filter_is_sent_natively(harness: Harness) -> None:
    everything = [r for r in (await harness.unified("GET", P, query="limit=100")).json()["result"]]
    stamps = sorted(r["updated_at"] for r in everything)
    pivot = stamps[len(stamps) // 3]
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("GET", P, query={"updated_at[gt]": pivot, "limit": "100"})
    assert resp.status == 200, resp.text
    got = resp.json()["result"]
    assert got and all(r["updated_at"] > pivot for r in got)
    sent = [r for r in await new_requests(harness, before) if r["path"] == "/api/projects"]
    assert query_of(sent[-1])["updated_at"] == f"gt:{pivot}"

    # a range: one condition goes to Wethod, the other is applied by unicrm
    upper = stamps[2 * len(stamps) // 3]
    before = len(await harness.provider_requests(P))
    ranged = (await harness.unified("GET", P, query={"updated_at[gte]": pivot, "updated_at[lt]": upper})).json()["result"]
    assert ranged and all(pivot <= r["updated_at"] < upper for r in ranged)
    assert len(ranged) == len([s for s in stamps if pivot <= s < upper])
    sent = [r for r in await new_requests(harness, before) if r["path"] == "/api/projects"]
    assert query_of(sent[-1])["updated_at"] == f"gte:{pivot}"


async def test_a_fresh_write_is_found_by_updated_since(harness: Harness) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = (await harness.unified("POST", P, json=await a_valid_body(harness))).json()
    found = (await harness.unified("GET", P, query={"updated_at[gt]": since})).json()["result"]
    assert created["id"] in [r["id"] for r in found]


async def test_soft_delete_then_get_is_404(harness: Harness) -> None:
    created = (await harness.unified("POST", P, json=await a_valid_body(harness))).json()
    deleted = await harness.unified("DELETE", P, f"/{created['id']}")
    assert deleted.status == 200, deleted.text
    assert deleted.json() == {"id": created["id"]}
    gone = await harness.unified("GET", P, f"/{created['id']}")
    assert gone.status == 404 and gone.json()["truto_is_remote_error"] is True
    assert gone.json()["raw_response"]["key"] == "not_found"
    # still there for Wethod, as a soft-deleted record
    trash = (await harness.unified("GET", P, query={"remote_query[deleted]": "only", "limit": "100"})).json()["result"]
    assert created["id"] in [r["id"] for r in trash]
    assert all(r["remote_data"]["deleted_at"] for r in trash)


async def test_required_headers_are_sent(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    assert (await harness.unified("GET", P, query="limit=1")).status == 200
    sent = await new_requests(harness, before)
    assert sent
    for request in sent:
        # The company comes from the account's context; the version is the declared default.
        assert header(request, "Wethod-Company") == harness.emulators[P].context["company"]
        assert header(request, "Wethod-Version") == "2024-06-15"


async def test_an_account_of_another_company_is_refused(harness: Harness) -> None:
    context = {**harness.emulators[P].context, "company": "globex", "version": "2025-01-01"}
    payload = {"integration": P, "tenant_id": "globex", "context": context}
    created = await harness.call("POST", "/integrated-account", json=payload)
    assert created.status in (200, 201), created.text
    account = created.json()["id"]
    before = len(await harness.provider_requests(P))
    resp = await harness.call("GET", "/unified/crm/projects", query={"integrated_account_id": account, "limit": "1"})
    assert resp.status == 401, resp.text
    assert resp.json()["truto_is_remote_error"] is True and "globex" in resp.json()["message"]
    sent = await new_requests(harness, before)
    assert header(sent[-1], "Wethod-Company") == "globex" and header(sent[-1], "Wethod-Version") == "2025-01-01"


async def test_create_defaults_and_remote_data_override(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    body = await a_valid_body(harness, remote_data={"probability": 90, "duration": 3})
    created = await harness.unified("POST", P, json=body)
    assert created.status == 201, created.text
    post = next(r for r in await new_requests(harness, before) if r["method"] == "POST")
    sent = post["json"]
    assert sent["probability"] == 90 and sent["duration"] == 3  # remote_data wins
    assert sent["value"] == 0 and sent["start_date"].endswith("-01") and isinstance(sent["job_order_category_id"], int)
    assert created.json()["amount"] == 0


async def test_status_goes_through_archive_actions(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    created = await harness.unified("POST", P, json=await a_valid_body(harness, status="closed"))
    assert created.status == 201, created.text
    assert created.json()["status"] == "closed"
    paths = [r["path"] for r in await new_requests(harness, before)]
    assert f"/api/projects/{created.json()['id']}:archive" in paths
    reopened = await harness.unified("PATCH", P, f"/{created.json()['id']}", json={"status": "open"})
    assert reopened.status == 200, reopened.text
    assert reopened.json()["status"] == "open"
    assert reopened.json()["remote_data"]["is_archived"] is False
    refused = await harness.unified("PATCH", P, f"/{created.json()['id']}", json={"status": "deferred"})
    assert refused.status == 400 and "status" in refused.json()["message"]


async def test_names_of_related_records_are_resolved(harness: Harness) -> None:
    record = (await harness.unified("GET", P, query="limit=1")).json()["result"][0]
    assert record["account"]["name"] and record["owner"]["name"]
    if record["stage"] is not None:
        assert record["stage"]["name"]
    meta = (await harness.call("GET", f"/unified/crm/projects/{P}/meta/list")).json()
    assert meta["filters"]["updated_at"] == {"gt": "native", "gte": "native", "lt": "native", "lte": "native"}
    assert meta["limits"]["max_page_size"] == 100
