"""The OpenAPI document: valid 3.1, every route in it, examples that fit their schemas, true to behaviour."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
from openapi_spec_validator import validate

from tests.harness import Harness
from unicrm.api.app import routes
from unicrm.api.openapi import build_document, undocumented
from unicrm.model import RESOURCES
from unicrm.providers import all_providers

DOCUMENT = build_document(routes())


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"components": DOCUMENT["components"], **schema}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["servers"]


def test_every_route_and_method_is_documented_with_a_unique_operation_id() -> None:
    assert undocumented(routes()) == []
    # Every documented path is served by a route and method (generic routes document one path per resource).
    served = [(r, m) for r in routes() for m in (r.methods or ()) if m != "HEAD"]
    for path, ops in DOCUMENT["paths"].items():
        concrete = path.replace("{", "").replace("}", "")
        for method in ops:
            assert any(r.path_regex.match(concrete) and m.lower() == method for r, m in served), (method, path)
    # ... and every route and method has at least one documented path.
    for route, method in served:
        assert any(
            route.path_regex.match(p.replace("{", "").replace("}", "")) and method.lower() in ops
            for p, ops in DOCUMENT["paths"].items()
        ), (method, route.path)
    ids = [op["operationId"] for ops in DOCUMENT["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and all(ids)


def test_every_declared_resource_has_its_paths_and_schema() -> None:
    for provider in all_providers().values():
        for name in provider.resource_names():
            view = provider.for_resource(name)
            assert view is not None
            base = f"/unified/crm/{name}"
            assert base + "/{integration}/meta/{method}" in DOCUMENT["paths"]
            if "list" in view.endpoints:
                assert "get" in DOCUMENT["paths"][base]
            if "get" in view.endpoints:
                assert "get" in DOCUMENT["paths"][base + "/{id}"]
            schema = DOCUMENT["components"]["schemas"][RESOURCES[name].schema_name]
            assert set(schema["properties"]) == {f.name for f in RESOURCES[name].fields} | {"remote_data"}


def test_projects_keep_all_five_operations_and_the_proxy_is_documented() -> None:
    paths = DOCUMENT["paths"]
    assert set(paths["/unified/crm/projects"]) == {"get", "post"}
    assert set(paths["/unified/crm/projects/{id}"]) == {"get", "patch", "delete"}
    assert set(paths["/proxy/{resource}"]) == {"get", "post"}
    assert set(paths["/proxy/{resource}/{id}"]) == {"get", "patch", "put", "delete"}


def test_every_path_parameter_is_declared_and_every_response_has_content_or_is_empty() -> None:
    for path, ops in DOCUMENT["paths"].items():
        names = {part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")}
        for op in ops.values():
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == names, (path, declared)
            assert op["responses"], path
            for status, reply in op["responses"].items():
                assert "x-request-id" in reply["headers"], (path, status)


def test_writes_document_the_idempotency_key_and_errors_carry_the_error_schema() -> None:
    for method in ("post",):
        params = {p["name"] for p in DOCUMENT["paths"]["/unified/crm/projects"][method]["parameters"]}
        assert "Idempotency-Key" in params
    params = {p["name"] for p in DOCUMENT["paths"]["/unified/crm/projects/{id}"]["patch"]["parameters"]}
    assert "Idempotency-Key" in params
    error = DOCUMENT["components"]["schemas"]["Error"]
    assert "truto_error_insight" in error["properties"]
    create = DOCUMENT["paths"]["/unified/crm/projects"]["post"]["responses"]
    assert create["201"]["content"]["application/json"]["schema"]["anyOf"]
    assert create["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DryRun"}
    assert create["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    listing = DOCUMENT["paths"]["/unified/crm/projects"]["get"]["responses"]["200"]["content"]
    assert set(listing) == {"application/json", "application/x-ndjson"}


def test_nullable_fields_where_unified_records_carry_null() -> None:
    project = DOCUMENT["components"]["schemas"]["Project"]
    for name, schema in project["properties"].items():
        if name != "remote_data":
            assert "null" in schema["type"], name


def test_examples_fit_their_schemas() -> None:
    checked = 0
    for _name, schema in DOCUMENT["components"]["schemas"].items():
        if "example" in schema:
            _validator(schema).validate(schema["example"])
            checked += 1
    for ops in DOCUMENT["paths"].values():
        for op in ops.values():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body and "example" in body:
                _validator(body["schema"]).validate(body["example"])
                checked += 1
            for reply in op["responses"].values():
                entry = reply.get("content", {}).get("application/json", {})
                if "example" in entry:
                    _validator(entry["schema"]).validate(entry["example"])
                    checked += 1
    assert checked >= 10


async def test_served_document_names_this_server_and_a_dry_run_create_answers_200(harness: Harness) -> None:
    served = (await harness.call("GET", "/openapi.json", token=None)).json()
    assert served["servers"][0]["url"] == harness.base_url
    assert served["paths"] == DOCUMENT["paths"]
    # Teamleader needs only a name on create.
    dry = await harness.unified("POST", "teamleader", query={"truto_skip_api_call": "true"}, json={"name": "Dry run"})
    assert dry.status == 200, dry.text
    _validator({"$ref": "#/components/schemas/DryRun"}).validate(dry.json())
    real = await harness.unified("POST", "teamleader", json={"name": "Created for real"})
    assert real.status == 201, real.text
    _validator({"$ref": "#/components/schemas/Project"}).validate(real.json())


def _response_validator(path: str, method: str, status: int, media: str = "application/json") -> Any:
    responses = DOCUMENT["paths"][path][method]["responses"]
    reply = responses.get(str(status)) or responses[f"{str(status)[0]}XX"]
    return _validator(reply["content"][media]["schema"])


def _media(response: Any) -> str:
    return str(response.headers.get("Content-Type", "")).split(";")[0]


async def test_every_format_of_every_provider_fits_the_document(harness: Harness) -> None:
    """Each provider, each response format, each operation: the answer fits its documented schema and content type."""
    from unicrm.cli import example_body

    base = "/unified/crm/projects"
    checked = 0
    for provider, account in sorted(harness.accounts.items()):
        listing = await harness.unified("GET", provider, query={"limit": "2"})
        assert listing.status == 200, listing.text
        record_id = listing.json()["result"][0]["id"]
        for query in (
            {},
            {"truto_response_format": "normalized"},
            {"truto_response_format": "raw"},
            {"truto_response_format": "debug"},
            {"truto_key_by": "id"},
            {"truto_skip_api_call": "true"},
            {"truto_exclude_fields": "owner.name"},
        ):
            page = await harness.unified("GET", provider, query={"limit": "2", **query})
            assert page.status == 200 and _media(page) == "application/json", (provider, query, page.text)
            _response_validator(base, "get", 200).validate(page.json())
            one = await harness.unified("GET", provider, f"/{record_id}", query=query)
            assert one.status == 200 and _media(one) == "application/json", (provider, query, one.text)
            _response_validator(base + "/{id}", "get", 200).validate(one.json())
            checked += 2
        stream = await harness.unified("GET", provider, query={"truto_response_format": "stream", "limit": "5"})
        assert stream.status == 200 and _media(stream) == "application/x-ndjson"
        line_schema = _response_validator(base, "get", 200, "application/x-ndjson")
        for line in stream.body.splitlines():
            line_schema.validate(orjson.loads(line))
            checked += 1
        body = await example_body(harness.base_url, harness.token, provider, account)
        assert body is not None
        created = await harness.unified("POST", provider, json=body)
        assert created.status == 201, (provider, created.text)
        _response_validator(base, "post", 201).validate(created.json())
        new_id = created.json()["id"]
        updated = await harness.unified("PATCH", provider, f"/{new_id}", json={"name": "Renamed by the format test"})
        assert updated.status == 200, (provider, updated.text)
        _response_validator(base + "/{id}", "patch", 200).validate(updated.json())
        deleted = await harness.unified("DELETE", provider, f"/{new_id}", query={"truto_response_format": "raw"})
        assert deleted.status == 200, (provider, deleted.text)
        documented = set(DOCUMENT["paths"][base + "/{id}"]["delete"]["responses"]["200"]["content"])
        assert _media(deleted) in documented, (provider, _media(deleted))
        if _media(deleted) == "application/json":
            _response_validator(base + "/{id}", "delete", 200).validate(orjson.loads(deleted.body))
        else:
            assert deleted.body == b""
        checked += 3
    assert checked >= 7 * 20
