"""The OpenAPI document: valid 3.1, every route in it, examples that fit their schemas, true to behaviour."""

from __future__ import annotations

from typing import Any

import jsonschema
from openapi_spec_validator import validate

from tests.harness import Harness
from unicrm.api.app import routes
from unicrm.api.openapi import build_document, undocumented

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
    documented = {(path, method) for path, ops in DOCUMENT["paths"].items() for method in ops}
    served = {(r.path, m.lower()) for r in routes() for m in (r.methods or ()) if m != "HEAD"}
    assert documented == served
    ids = [op["operationId"] for ops in DOCUMENT["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and all(ids)


def test_every_path_parameter_is_declared_and_every_response_has_content_or_is_empty() -> None:
    for path, ops in DOCUMENT["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
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
