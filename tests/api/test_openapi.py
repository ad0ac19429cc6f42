"""The OpenAPI document covers every unified resource some provider declares."""

from __future__ import annotations

from unicrm.api.openapi import openapi_document
from unicrm.model import RESOURCES
from unicrm.providers import all_providers


def test_every_declared_resource_has_its_paths_and_schema() -> None:
    doc = openapi_document()
    for provider in all_providers().values():
        for name in provider.resource_names():
            view = provider.for_resource(name)
            assert view is not None
            base = f"/unified/crm/{name}"
            assert base + "/{integration}/meta/{method}" in doc["paths"]
            if "list" in view.endpoints:
                assert "get" in doc["paths"][base]
            if "get" in view.endpoints:
                assert "get" in doc["paths"][base + "/{id}"]
            schema = doc["components"]["schemas"][RESOURCES[name].schema_name]
            assert set(schema["properties"]) == {f.name for f in RESOURCES[name].fields} | {"remote_data"}


def test_projects_keep_all_five_operations() -> None:
    paths = openapi_document()["paths"]
    assert set(paths["/unified/crm/projects"]) == {"get", "post"}
    assert set(paths["/unified/crm/projects/{id}"]) == {"get", "patch", "delete"}
