"""The unified contract (PRODUCT §3), run against every provider through its emulator.

Each test is parametrized over every provider that has both a declaration and an emulator, so
a new provider is held to the whole contract as soon as it is registered.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson
import pytest

from tests.harness import Harness, every_page
from unicrm.emulators import EMULATORS
from unicrm.providers import all_providers

PROVIDERS = sorted(set(EMULATORS) & set(all_providers()))
pytestmark = pytest.mark.parametrize("provider", PROVIDERS)
BASE = "/unified/crm/projects"


async def list_all(h: Harness, provider: str, limit: int = 7, extra: str = "") -> list[dict[str, Any]]:
    """Every project, following next_cursor (see every_page)."""
    return await every_page(h, provider, limit=limit, extra=extra)


async def create_body(h: Harness, provider: str, name: str) -> dict[str, Any]:
    """A valid create body: the required fields (from the meta endpoint) copied from an existing record."""
    meta = (await h.call("GET", f"{BASE}/{provider}/meta/create")).json()
    page = (await h.unified("GET", provider, query="limit=50&truto_ignore_remote_data=true")).json()["result"]
    body: dict[str, Any] = {"name": name}
    required = list(meta["request_body_schema"]["required"])
    groups = meta["request_body_schema"]["x-required-one-of"]
    for field in required:
        if field == "name":
            continue
        body[field] = next(r[field] for r in page if r.get(field) not in (None, [], {}))
    for group in groups:
        for field in group:
            candidates = [r[field] for r in page if r.get(field) not in (None, [], {})]
            if candidates:
                body[field] = candidates[0]
                break
    for key, value in list(body.items()):
        if isinstance(value, dict) and "id" in value:
            body[key] = {"id": value["id"]}
        elif isinstance(value, list):
            body[key] = [{"id": v["id"]} for v in value[:1]]
    return body


async def first_id(h: Harness, provider: str) -> str:
    resp = await h.unified("GET", provider, query="limit=1")
    return str(resp.json()["result"][0]["id"])


# ---------------------------------------------------------------------------- reads
async def test_list_every_page(harness: Harness, provider: str) -> None:
    records = await list_all(harness, provider)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) > 0
    assert all(isinstance(i, str) for i in ids)
    # the same data in one stream, followed on the server
    resp = await harness.unified("GET", provider, query="truto_response_format=stream")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in resp.body.splitlines() if line]
    assert sorted(r["id"] for r in lines) == sorted(ids)


async def test_get_matches_list(harness: Harness, provider: str) -> None:
    listed = (await harness.unified("GET", provider, query="limit=1")).json()["result"][0]
    resp = await harness.unified("GET", provider, f"/{listed['id']}")
    assert resp.status == 200, resp.text
    got = resp.json()
    assert got["id"] == listed["id"]
    assert got["name"] == listed["name"]
    assert isinstance(got["remote_data"], dict)


# ---------------------------------------------------------------------------- writes
async def test_create_update_delete(harness: Harness, provider: str) -> None:
    name = f"Contract {uuid.uuid4().hex[:8]}"
    body = await create_body(harness, provider, name)
    before = len(await harness.provider_requests(provider))
    created = await harness.unified("POST", provider, json=body)
    assert created.status == 201, created.text
    project = created.json()
    assert project["name"] == name
    new_id = project["id"]
    writes = [r for r in (await harness.provider_requests(provider))[before:] if r["method"] in ("POST", "PUT", "PATCH")]
    assert writes, "no write reached the provider"

    fetched = (await harness.unified("GET", provider, f"/{new_id}")).json()
    assert fetched["name"] == name

    renamed = await harness.unified("PATCH", provider, f"/{new_id}", json={"name": name + " renamed"})
    assert renamed.status == 200, renamed.text
    assert renamed.json()["name"] == name + " renamed"
    assert (await harness.unified("GET", provider, f"/{new_id}")).json()["name"] == name + " renamed"

    deleted = await harness.unified("DELETE", provider, f"/{new_id}")
    assert deleted.status == 200, deleted.text
    assert deleted.json()["id"] == new_id
    gone = await harness.unified("GET", provider, f"/{new_id}")
    assert gone.status == 404, gone.text
    assert gone.json()["statusCode"] == 404


async def test_required_fields_checked_before_any_call(harness: Harness, provider: str) -> None:
    before = len(await harness.provider_requests(provider))
    resp = await harness.unified("POST", provider, json={"description": "no name"})
    assert resp.status == 400
    body = resp.json()
    assert "name" in body["truto_error_insight"]["missing_required_body_fields"]["value"]
    after = await harness.provider_requests(provider)
    assert not [r for r in after[before:] if r["method"] != "GET"]


async def test_remote_data_is_merged_into_the_provider_body(harness: Harness, provider: str) -> None:
    body = await create_body(harness, provider, "Dry run")
    body["remote_data"] = {"x_unicrm_marker": {"nested": 1}}
    resp = await harness.unified("POST", provider, json=body, query="truto_skip_api_call=true")
    assert resp.status == 200, resp.text
    request = resp.json()["request"]
    assert "x_unicrm_marker" in orjson.dumps(request["body"]).decode()


# ---------------------------------------------------------------------------- formats
async def test_formats(harness: Harness, provider: str) -> None:
    record_id = await first_id(harness, provider)
    normalized = (await harness.unified("GET", provider, f"/{record_id}", query="truto_response_format=normalized")).json()
    assert "remote_data" not in normalized
    assert {"id", "name", "contact", "tags", "custom_fields", "close_date"} <= set(normalized)
    assert isinstance(normalized["contact"], list)

    raw = await harness.unified("GET", provider, f"/{record_id}", query="truto_response_format=raw")
    assert raw.status == 200
    assert "remote_data" not in raw.text

    raw_list = (await harness.unified("GET", provider, query="truto_response_format=raw&limit=2")).json()
    assert set(raw_list) == {"result", "next_cursor"}

    debug = (await harness.unified("GET", provider, query="truto_response_format=debug&limit=2")).json()
    assert set(debug) == {"result", "debug"}
    assert {
        "requestUrl",
        "requestOptions",
        "data",
        "responseHeaders",
        "nextCursor",
        "isLooping",
        "isEmptyResult",
        "resultCount",
    } <= set(debug["debug"])
    dumped = orjson.dumps(debug).decode()
    secrets = [
        v
        for k, v in harness.emulators[provider].context.items()
        if isinstance(v, str) and len(v) >= 6 and any(s in k for s in ("token", "password", "secret", "key", "username"))
    ]
    for secret in secrets:
        assert secret not in dumped, f"a credential leaked into debug output ({provider})"

    before = len(await harness.provider_requests(provider))
    dry = await harness.unified("GET", provider, f"/{record_id}", query="truto_skip_api_call=true")
    assert dry.status == 200
    assert dry.json()["request"]["url"]
    assert len(await harness.provider_requests(provider)) == before


async def test_shaping(harness: Harness, provider: str) -> None:
    page = (
        await harness.unified(
            "GET",
            provider,
            query="limit=3&truto_ignore_remote_data=true&truto_exclude_fields%5B%5D=description&truto_exclude_fields%5B%5D=owner.name",
        )
    ).json()["result"]
    for record in page:
        assert "remote_data" not in record and "description" not in record
        if isinstance(record.get("owner"), dict):
            assert "name" not in record["owner"]
    keyed = (await harness.unified("GET", provider, query="limit=3&truto_key_by=id&truto_exclude_fields=remote_data,name")).json()
    assert isinstance(keyed["result"], dict)
    for key, record in keyed["result"].items():
        assert record["id"] == key and "name" not in record


# ---------------------------------------------------------------------------- bad input
async def test_account_and_token_errors(harness: Harness, provider: str) -> None:
    cases = [
        (await harness.call("GET", BASE), 400),
        (await harness.call("GET", BASE, query="integrated_account_id=not-a-uuid"), 400),
        (await harness.call("GET", BASE, query=f"integrated_account_id={uuid.uuid4()}"), 404),
        (
            await harness.call(
                "GET", BASE, query=f"integrated_account_id={harness.accounts[provider]}", token=harness.other_token
            ),
            404,
        ),
        (await harness.call("GET", BASE, query=f"integrated_account_id={harness.accounts[provider]}", token=None), 401),
        (await harness.call("GET", BASE, query=f"integrated_account_id={harness.accounts[provider]}", token="ucrm_wrong"), 401),
    ]
    for resp, status in cases:
        assert resp.status == status, resp.text
        body = resp.json()
        assert body["statusCode"] == status and body["error"] and body["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "amount": "abc"}, "amount"),
        ({"name": "x", "close_date": "tomorrow"}, "close_date"),
        ({"name": "x", "owner": 5}, "owner"),
        ({"name": "x", "status": "sleeping"}, "status"),
    ],
)
async def test_wrong_types(harness: Harness, provider: str, payload: dict[str, Any], field: str) -> None:
    resp = await harness.unified("POST", provider, json=payload)
    assert resp.status == 400, resp.text
    assert field in resp.json()["message"]


async def test_body_errors(harness: Harness, provider: str) -> None:
    bad_json = await harness.unified("POST", provider, data=b'{"name": ')
    assert bad_json.status == 400 and "JSON" in bad_json.json()["message"]
    not_object = await harness.unified("POST", provider, json=["name"])
    assert not_object.status == 400
    unknown = await harness.unified("POST", provider, json={"name": "x", "colour": "red"})
    assert unknown.status == 400 and "colour" in unknown.json()["message"]


async def test_status_the_provider_does_not_accept(harness: Harness, provider: str) -> None:
    meta = (await harness.call("GET", f"{BASE}/{provider}/meta/create")).json()
    body = await create_body(harness, provider, "Status check")
    status_row = next(r for r in meta["fields"] if r["name"] == "status")
    accepted = status_row["notes"]
    candidates = ["deferred", "open", "abandoned"]
    rejected = next((s for s in candidates if s not in accepted), None) if status_row["supported"] else "open"
    assert rejected is not None
    body["status"] = rejected
    before = len(await harness.provider_requests(provider))
    resp = await harness.unified("POST", provider, json=body)
    assert resp.status == 400, resp.text
    assert "status" in resp.json()["message"]
    assert not [r for r in (await harness.provider_requests(provider))[before:] if r["method"] != "GET"]


async def test_cursor_and_limit_errors(harness: Harness, provider: str) -> None:
    first = (await harness.unified("GET", provider, query="limit=2")).json()
    cursor = first["next_cursor"]
    assert cursor
    payload, tag = cursor.split(".")
    data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["s"] = {k: (v + 1 if isinstance(v, int) else v) for k, v in data["s"].items()} | {"forged": True}
    forged = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode() + "." + tag
    for bad in (forged, "garbage", cursor[:-3] + "AAA"):
        resp = await harness.unified("GET", provider, query={"next_cursor": bad})
        assert resp.status == 400, resp.text
    for limit in ("0", "-1", "1000000000", "x"):
        resp = await harness.unified("GET", provider, query={"limit": limit})
        assert resp.status == 400, (limit, resp.text)
        assert "limit" in resp.json()["message"]


async def test_unknown_id(harness: Harness, provider: str) -> None:
    resp = await harness.unified("GET", provider, "/999999999")
    assert resp.status in (404, 400), resp.text
    assert resp.json()["statusCode"] == resp.status


# ---------------------------------------------------------------------------- provider faults
def endpoint_match(provider: str, op: str) -> dict[str, str]:
    """An emulator fault match for the provider's declared endpoint of `op` (RPC reads are POSTs)."""
    endpoint = all_providers()[provider].endpoints[op]
    return {"method": endpoint.method, "path_contains": endpoint.path.split("{", 1)[0]}


@pytest.mark.parametrize(
    ("script", "status"),
    [
        ({"status": 404, "body": "{}"}, 404),
        ({"status": 422, "body": '{"message": "nope"}'}, 422),
        ({"status": 500, "body": '{"message": "boom"}'}, 502),
        ({"kind": "not_json"}, 502),
        ({"kind": "empty"}, 502),
        ({"kind": "drop"}, 502),
        ({"kind": "hang", "seconds": 3}, 504),
    ],
)
async def test_provider_faults_on_get(harness: Harness, provider: str, script: dict[str, Any], status: int) -> None:
    record_id = await first_id(harness, provider)
    # GETs are retried twice on 5xx/connection errors, so script enough faults to exhaust them.
    count = 3 if status in (502, 504) and script.get("status") != 422 else 1
    await harness.control(provider, "script", {"responses": [{**script, "match": endpoint_match(provider, "get")}] * count})
    try:
        resp = await harness.unified("GET", provider, f"/{record_id}")
        assert resp.status == status, resp.text
        body = resp.json()
        assert body["statusCode"] == status and body["truto_is_remote_error"] is True
        assert "raw_response" in body
    finally:
        await harness.control(provider, "script", {"responses": []})


async def test_write_is_never_retried(harness: Harness, provider: str) -> None:
    body = await create_body(harness, provider, "Never twice")
    await harness.control(
        provider, "script", {"responses": [{"status": 503, "body": "{}", "match": endpoint_match(provider, "create")}]}
    )
    before = await harness.provider_requests(provider)
    resp = await harness.unified("POST", provider, json=body)
    assert resp.status == 502, resp.text
    after = await harness.provider_requests(provider)
    posts = [
        r for r in after[len(before) :] if r["method"] == "POST" and "oauth" not in r["path"] and "access_token" not in r["path"]
    ]
    assert len(posts) == 1


async def test_rate_limit(harness: Harness, provider: str) -> None:
    await harness.control(provider, "faults", {"rate_limit": 2, "rate_window_s": 30})
    try:
        statuses = []
        last = None
        for _ in range(4):
            last = await harness.unified("GET", provider, query="limit=1")
            statuses.append(last.status)
        assert 429 in statuses, statuses
        assert last is not None and last.status == 429
        retry = last.headers["Retry-After"]
        assert retry.isdigit() and int(retry) >= 1
        assert last.json()["truto_is_remote_error"] is True
    finally:
        await harness.control(provider, "faults", {"rate_limit": None})


async def test_provider_rejects_credentials(harness: Harness, provider: str) -> None:
    await harness.control(provider, "script", {"responses": [{"status": 401, "body": '{"message": "bad token"}'}] * 3})
    try:
        resp = await harness.unified("GET", provider, query="limit=1")
        assert resp.status == 401, resp.text
        assert resp.json()["truto_is_remote_error"] is True
        again = await harness.unified("GET", provider, query="limit=1")
        assert again.status == 401 and "reconnect" in again.json()["message"].lower()
    finally:
        await harness.control(provider, "script", {"responses": []})
        account_id = harness.accounts[provider]
        patched = await harness.call(
            "PATCH", f"/integrated-account/{account_id}", json={"context": harness.emulators[provider].context}
        )
        assert patched.status == 200, patched.text
    assert (await harness.unified("GET", provider, query="limit=1")).status == 200
