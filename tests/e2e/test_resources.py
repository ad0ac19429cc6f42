"""The unified contract for the resources besides projects (users, accounts, contacts, ...).

Parametrized over every (provider, resource) a declaration names and an emulator serves, so a
resource added to a provider is held to the whole read contract (paging, cursors, formats,
shaping, date filters, meta) at once; and over every (provider, resource) a provider lacks,
which must answer 405 naming what exists. A project's references must point at records these
routes serve, and a project created from ids found only through them reads back named.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from tests.e2e.test_contract import list_all
from tests.harness import Harness, every_page
from unicrm.emulators import EMULATORS
from unicrm.model import RESOURCES
from unicrm.providers import all_providers

PROVIDERS = sorted(set(EMULATORS) & set(all_providers()))
OTHERS = [r for r in RESOURCES if r != "projects"]
DECLARED = [(p, r) for p in PROVIDERS for r in all_providers()[p].resources]
MISSING = [(p, r) for p in PROVIDERS for r in OTHERS if r not in all_providers()[p].resources]
# The unified project field that points at each resource (seed 000: "References: Accounts → id").
POINTS_AT = {f.name: f.references for f in RESOURCES["projects"].fields if f.references}


def _ids(name: str) -> list[str]:
    return [f"{p}-{r}" for p, r in DECLARED] if name == "declared" else [f"{p}-{r}" for p, r in MISSING]


async def all_records(h: Harness, provider: str, resource: str, limit: int = 2, extra: str = "") -> list[dict[str, Any]]:
    """Every record of a resource (without remote_data), following next_cursor (see every_page)."""
    return await every_page(h, provider, resource=resource, limit=limit, query="&truto_ignore_remote_data=true", extra=extra)


# ---------------------------------------------------------------------------- reads
@pytest.mark.parametrize(("provider", "resource"), DECLARED, ids=_ids("declared"))
async def test_list_every_page_and_stream(harness: Harness, provider: str, resource: str) -> None:
    records = await all_records(harness, provider, resource)
    ids = [r["id"] for r in records]
    assert ids and len(ids) == len(set(ids)) and all(isinstance(i, str) for i in ids)
    assert len(ids) > 2, "seed data should span more than one page at limit=2"
    resp = await harness.unified("GET", provider, resource=resource, query="truto_response_format=stream")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/x-ndjson")
    streamed = [orjson.loads(line)["id"] for line in resp.body.splitlines() if line]
    assert sorted(streamed) == sorted(ids)


@pytest.mark.parametrize(("provider", "resource"), DECLARED, ids=_ids("declared"))
async def test_get_matches_list(harness: Harness, provider: str, resource: str) -> None:
    if "get" not in all_providers()[provider].resources[resource].endpoints:
        # a list-only resource (the provider has no endpoint for one record): get is a 405
        before = len(await harness.provider_requests(provider))
        resp = await harness.unified("GET", provider, "/1", resource=resource)
        assert resp.status == 405, resp.text
        assert f"does not support get for {resource}" in resp.json()["message"]
        assert len(await harness.provider_requests(provider)) == before
        return
    listed = (await harness.unified("GET", provider, resource=resource, query="limit=2")).json()["result"]
    for record in listed:
        resp = await harness.unified("GET", provider, f"/{record['id']}", resource=resource)
        assert resp.status == 200, resp.text
        got = resp.json()
        assert isinstance(got["remote_data"], dict)
        assert {k: v for k, v in got.items() if k != "remote_data"} == {k: v for k, v in record.items() if k != "remote_data"}
    missing = await harness.unified("GET", provider, "/987654321", resource=resource)
    assert missing.status == 404, missing.text
    assert missing.json()["statusCode"] == 404


@pytest.mark.parametrize(("provider", "resource"), DECLARED, ids=_ids("declared"))
async def test_formats_and_shaping(harness: Harness, provider: str, resource: str) -> None:
    model = RESOURCES[resource]
    first = (await harness.unified("GET", provider, resource=resource, query="limit=1")).json()["result"][0]
    # a list-only resource shows its normalized record and dry run through the list
    one = f"/{first['id']}" if "get" in all_providers()[provider].resources[resource].endpoints else ""
    normalized = await harness.unified("GET", provider, one, resource=resource, query="truto_response_format=normalized&limit=1")
    got = normalized.json() if one else normalized.json()["result"][0]
    assert set(got) == {f.name for f in model.fields}
    raw_list = (await harness.unified("GET", provider, resource=resource, query="truto_response_format=raw&limit=2")).json()
    assert set(raw_list) == {"result", "next_cursor"}
    assert raw_list["result"] and "remote_data" not in orjson.dumps(raw_list).decode()
    debug = (await harness.unified("GET", provider, resource=resource, query="truto_response_format=debug&limit=2")).json()
    assert set(debug) == {"result", "debug"} and debug["debug"]["resultCount"] == len(debug["result"]["result"])
    before = len(await harness.provider_requests(provider))
    dry = await harness.unified("GET", provider, one, resource=resource, query="truto_skip_api_call=true")
    assert dry.status == 200 and dry.json()["request"]["url"]
    assert len(await harness.provider_requests(provider)) == before
    keyed = await harness.unified(
        "GET", provider, resource=resource, query="limit=3&truto_key_by=id&truto_exclude_fields=remote_data,name"
    )
    for key, record in keyed.json()["result"].items():
        assert record["id"] == key and "name" not in record and "remote_data" not in record


@pytest.mark.parametrize(("provider", "resource"), DECLARED, ids=_ids("declared"))
async def test_date_filters_and_meta(harness: Harness, provider: str, resource: str) -> None:
    meta = (await harness.call("GET", f"/unified/crm/{resource}/{provider}/meta/list")).json()
    assert meta["resource"] == resource and meta["supported"] is True
    honoured = meta["filters"].get("updated_at", {})
    records = await all_records(harness, provider, resource, limit=50)
    stamps = sorted(r["updated_at"] for r in records if r.get("updated_at"))
    if not honoured:
        resp = await harness.unified("GET", provider, resource=resource, query="updated_at[gte]=2020-01-01T00:00:00Z")
        assert resp.status == 400 and "meta/list" in resp.json()["message"]
        return
    assert stamps, "a resource filtered on updated_at should read it"
    middle = stamps[len(stamps) // 2]
    after = await all_records(harness, provider, resource, limit=50, extra=f"&updated_at[gte]={middle}")
    assert after and all(r["updated_at"] >= middle for r in after)
    assert len(after) == len([s for s in stamps if s >= middle])
    for method in ("list", "get", "create", "update", "delete"):
        doc = (await harness.call("GET", f"/unified/crm/{resource}/{provider}/meta/{method}")).json()
        declared = all_providers()[provider].resources[resource].endpoints
        assert doc["supported"] is (method in declared)


@pytest.mark.parametrize(("provider", "resource"), DECLARED, ids=_ids("declared"))
async def test_undeclared_writes_answer_405(harness: Harness, provider: str, resource: str) -> None:
    declared = all_providers()[provider].resources[resource].endpoints
    if "create" not in declared:
        resp = await harness.unified("POST", provider, resource=resource, json={"name": "x"})
        assert resp.status == 405, resp.text
        assert f"does not support create for {resource}" in resp.json()["message"]
    if "delete" not in declared:
        resp = await harness.unified("DELETE", provider, "/1", resource=resource)
        assert resp.status == 405, resp.text


# ---------------------------------------------------------------------------- missing resources
@pytest.mark.parametrize(("provider", "resource"), MISSING, ids=_ids("missing"))
async def test_missing_resource_is_405_naming_what_exists(harness: Harness, provider: str, resource: str) -> None:
    before = len(await harness.provider_requests(provider))
    resp = await harness.unified("GET", provider, resource=resource)
    assert resp.status == 405, resp.text
    body = resp.json()
    have = all_providers()[provider].resource_names()
    assert body["statusCode"] == 405 and all(name in body["message"] for name in have)
    assert len(await harness.provider_requests(provider)) == before
    meta = (await harness.call("GET", f"/unified/crm/{resource}/{provider}/meta/list")).json()
    assert meta["supported"] is False and meta["available_resources"] == list(have)


async def test_unknown_resource_is_404(harness: Harness) -> None:
    provider = PROVIDERS[0]
    resp = await harness.unified("GET", provider, resource="widgets")
    assert resp.status == 404 and "projects" in resp.json()["message"]
    meta = await harness.call("GET", f"/unified/crm/widgets/{provider}/meta/list")
    assert meta.status == 404


# ---------------------------------------------------------------------------- projects point here
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_project_references_resolve(harness: Harness, provider: str) -> None:
    """Every reference of every sample project is a record the unified route of its resource serves."""
    declared = all_providers()[provider].resources
    targets = {field: resource for field, resource in POINTS_AT.items() if resource in declared}
    if not targets:
        pytest.skip(f"{provider} declares none of the resources a project points at yet")
    projects = await list_all(harness, provider, limit=50, extra="&truto_ignore_remote_data=true")
    known = {
        resource: {r["id"] for r in await all_records(harness, provider, resource, limit=50)} for resource in targets.values()
    }
    checked = 0
    for project in projects:
        for field, resource in targets.items():
            value = project.get(field)
            refs = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
            for ref in refs:
                assert ref["id"] in known[resource], f"project {project['id']} {field} {ref['id']} is not in {resource}"
                checked += 1
    assert checked > 0


def _plain_value(prop: dict[str, Any]) -> Any:
    """A value for a required field that is not a reference, from its meta schema."""
    notes = str(prop.get("x-notes", ""))
    if "accepts " in notes:
        return notes.split("accepts ", 1)[1].split(",")[0].split(";")[0].strip()
    if prop.get("format") == "date-time":
        return "2026-06-30T00:00:00Z"
    if prop.get("type") == "number":
        return 1000
    return "unicrm"


async def ids_from_unified_routes(h: Harness, provider: str) -> dict[str, Any]:
    """A create body whose required references come only from unicrm's unified routes."""
    meta = (await h.call("GET", f"/unified/crm/projects/{provider}/meta/create")).json()
    schema = meta["request_body_schema"]
    declared = all_providers()[provider].resources
    body: dict[str, Any] = {}
    wanted = list(schema["required"]) + [group[0] for group in schema["x-required-one-of"]]
    for field in wanted:
        resource = POINTS_AT.get(field)
        if field == "name":
            continue
        if resource is None:
            body[field] = _plain_value(schema["properties"][field])
            continue
        assert resource in declared, f"{provider} requires {field} but declares no {resource}"
        first = (await h.unified("GET", provider, resource=resource, query="limit=1")).json()["result"][0]
        ref = {"id": first["id"]}
        body[field] = [ref] if schema["properties"][field]["type"] == "array" else ref
    return body


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_create_a_project_from_ids_found_through_unified_routes(harness: Harness, provider: str) -> None:
    meta = (await harness.call("GET", f"/unified/crm/projects/{provider}/meta/create")).json()
    schema = meta["request_body_schema"]
    needed = {POINTS_AT[f] for f in list(schema["required"]) + [g[0] for g in schema["x-required-one-of"]] if f in POINTS_AT}
    if not needed <= set(all_providers()[provider].resources):
        pytest.skip(f"{provider} does not declare {', '.join(sorted(needed))} yet")
    body = {"name": f"From unified ids {uuid.uuid4().hex[:6]}", **await ids_from_unified_routes(harness, provider)}
    created = await harness.unified("POST", provider, json=body)
    assert created.status == 201, created.text
    project = (await harness.unified("GET", provider, f"/{created.json()['id']}")).json()
    for field, value in body.items():
        if field not in POINTS_AT:
            continue
        got = project[field] if isinstance(project[field], list) else [project[field]]
        sent = value if isinstance(value, list) else [value]
        assert [g["id"] for g in got] == [s["id"] for s in sent]
        assert all(g.get("name") for g in got), f"{field} is not named on read-back: {got}"
    await harness.unified("DELETE", provider, f"/{project['id']}")


async def test_integrations_list_their_resources(harness: Harness) -> None:
    body = (await harness.call("GET", "/integration")).json()
    listed = body["result"] if isinstance(body, dict) and "result" in body else body
    by_name = {i["name"]: i for i in listed}
    for name in PROVIDERS:
        resources = by_name[name]["resources"]
        assert list(resources) == list(all_providers()[name].resource_names())
        assert resources["projects"] == sorted(all_providers()[name].endpoints)
        for resource, declared in all_providers()[name].resources.items():
            assert resources[resource] == sorted(declared.endpoints)


@pytest.mark.parametrize(("provider", "resource"), DECLARED, ids=_ids("declared"))
async def test_remote_query_and_ignore_limit(harness: Harness, provider: str, resource: str) -> None:
    before = len(await harness.provider_requests(provider))
    resp = await harness.unified("GET", provider, resource=resource, query="limit=2&remote_query[x_unicrm_probe]=1")
    assert resp.status == 200, resp.text
    sent = (await harness.provider_requests(provider))[before:]
    assert any(r["query"].get("x_unicrm_probe") == "1" or (r["json"] or {}).get("x_unicrm_probe") == "1" for r in sent)
    unlimited = await harness.unified("GET", provider, resource=resource, query="limit=1&truto_ignore_limit=true")
    # the provider's default page instead of one record (every seeded resource has more than two)
    assert unlimited.status == 200 and len(unlimited.json()["result"]) > 1
