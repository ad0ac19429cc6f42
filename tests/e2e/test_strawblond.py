"""What is specific to StrawBlond, end to end over HTTP (server + StrawBlond emulator).

The generic contract is in test_contract.py; this file checks the 204 delete, custom fields
merged on update (StrawBlond replaces the object), the required Accept header, page paging to
`meta.last_page`, Laravel 422 errors named back, the starts_at default and status writes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp

from tests.harness import Harness

P = "strawblond"


async def valid_body(h: Harness, **extra: Any) -> dict[str, Any]:
    model = (await h.unified("GET", P, query="limit=1&truto_ignore_remote_data=true")).json()["result"][0]
    return {
        "name": f"StrawBlond e2e {uuid.uuid4().hex[:8]}",
        "account": {"id": model["account"]["id"]},
        "owner": {"id": model["owner"]["id"]},
        **extra,
    }


async def new_requests(h: Harness, before: int) -> list[dict[str, Any]]:
    return (await h.provider_requests(P))[before:]


async def test_delete_answers_204_and_we_answer_the_id(harness: Harness) -> None:
    created = (await harness.unified("POST", P, json=await valid_body(harness))).json()
    before = len(await harness.provider_requests(P))
    deleted = await harness.unified("DELETE", P, f"/{created['id']}")
    assert deleted.status == 200, deleted.text
    assert deleted.json() == {"id": created["id"]}
    sent = [r for r in await new_requests(harness, before) if r["method"] == "DELETE"]
    assert [r["path"] for r in sent] == [f"/api/project/{created['id']}"]
    assert (await harness.unified("GET", P, f"/{created['id']}")).status == 404


async def test_custom_fields_update_keeps_the_other_keys(harness: Harness) -> None:
    body = await valid_body(harness, custom_fields={"crm_project_id": "PRJ-1", "priority": 1, "region": "Bern"})
    created = (await harness.unified("POST", P, json=body)).json()
    before = len(await harness.provider_requests(P))
    patched = await harness.unified("PATCH", P, f"/{created['id']}", json={"custom_fields": {"priority": 3}})
    assert patched.status == 200, patched.text
    want = {"crm_project_id": "PRJ-1", "priority": 3, "region": "Bern"}
    assert patched.json()["custom_fields"] == want
    assert (await harness.unified("GET", P, f"/{created['id']}")).json()["custom_fields"] == want
    put = next(r for r in await new_requests(harness, before) if r["method"] == "PUT")
    assert put["json"]["custom_fields"] == want  # the whole object: StrawBlond replaces it
    # an update without custom_fields reads nothing extra and leaves them alone
    before = len(await harness.provider_requests(P))
    renamed = await harness.unified("PATCH", P, f"/{created['id']}", json={"name": "Renamed"})
    assert renamed.json()["custom_fields"] == want
    assert [r["method"] for r in await new_requests(harness, before)] == ["PUT"]


async def test_emulator_refuses_requests_without_accept_json(harness: Harness) -> None:
    running = harness.emulators[P]
    auth = {"Authorization": f"Bearer {running.context['api_key']}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(running.base_url + "/project", headers={**auth, "Accept": "text/html"}) as resp:
            assert resp.status == 406
        async with session.get(running.base_url + "/project", headers={**auth, "Accept": "application/json"}) as resp:
            assert resp.status == 200
    # and unicrm always sends it
    before = len(await harness.provider_requests(P))
    await harness.unified("GET", P, query="limit=1")
    sent = await new_requests(harness, before)
    assert sent and all("application/json" in r["headers"].get("Accept", "") for r in sent)


async def test_pages_follow_page_numbers_to_meta_last_page(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    ids: list[str] = []
    cursor = None
    while True:
        query = "limit=9" + (f"&next_cursor={cursor}" if cursor else "")
        body = (await harness.unified("GET", P, query=query)).json()
        ids += [r["id"] for r in body["result"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    lists = [r for r in await new_requests(harness, before) if r["method"] == "GET" and r["path"] == "/api/project"]
    pages = [int(r["query"]["page"]) for r in lists]
    assert pages == list(range(1, len(pages) + 1))
    assert all(r["query"]["per_page"] == "9" for r in lists)
    total = len(ids)
    assert len(set(ids)) == total and pages[-1] == -(-total // 9)
    # limit above StrawBlond's 50 is clamped
    before = len(await harness.provider_requests(P))
    await harness.unified("GET", P, query="limit=500")
    assert (await new_requests(harness, before))[-1]["query"]["per_page"] == "50"


async def test_validation_errors_are_named_back(harness: Harness) -> None:
    body = await valid_body(harness, remote_data={"member_id": "nobody0000"})
    resp = await harness.unified("POST", P, json=body)
    assert resp.status == 422, resp.text
    err = resp.json()
    assert err["truto_is_remote_error"] is True
    assert err["truto_error_insight"]["invalid_fields"] == [
        {"field": "owner", "remote_field": "member_id", "message": "The selected member id is invalid."}
    ]
    assert err["raw_response"]["errors"]["member_id"]


async def test_starts_at_defaults_to_today_and_remote_data_overrides(harness: Harness) -> None:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    created = (await harness.unified("POST", P, json=await valid_body(harness))).json()
    assert created["remote_data"]["starts_at"].startswith(today)
    chosen = (await harness.unified("POST", P, json=await valid_body(harness, remote_data={"starts_at": "2026-01-05"}))).json()
    assert chosen["remote_data"]["starts_at"].startswith("2026-01-05")


async def test_status_is_written_on_update_only(harness: Harness) -> None:
    created = (await harness.unified("POST", P, json=await valid_body(harness))).json()
    assert created["status"] == "in progress"
    closed = (await harness.unified("PATCH", P, f"/{created['id']}", json={"status": "cancelled"})).json()
    assert closed["status"] == "completed" and closed["remote_data"]["status"] == "completed"
    reopened = (await harness.unified("PATCH", P, f"/{created['id']}", json={"status": "open"})).json()
    assert reopened["status"] == "in progress"
    on_create = await harness.unified("POST", P, json=await valid_body(harness, status="completed"))
    assert on_create.status == 400 and "status" in on_create.json()["message"]
    read_only = await harness.unified("PATCH", P, f"/{created['id']}", json={"close_date": "2026-01-01T00:00:00Z"})
    assert read_only.status == 400 and "close_date" in read_only.json()["message"]
