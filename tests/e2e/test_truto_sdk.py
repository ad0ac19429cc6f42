"""Truto's own Python SDK (truto-python-sdk), unchanged, against unicrm: only the base URL differs."""

from __future__ import annotations

import uuid

import pytest
from truto_python_sdk import TrutoApi

from tests.e2e.test_contract import PROVIDERS, create_body, list_all
from tests.e2e.test_proxy import NATIVE
from tests.e2e.test_resources import all_records
from tests.harness import Harness
from unicrm.providers import all_providers

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)


async def test_sdk_list_get_create_update_delete(harness: Harness, provider: str) -> None:
    truto = TrutoApi(harness.token, base_url=harness.base_url)
    query = {"integrated_account_id": harness.accounts[provider]}

    # list: the SDK follows next_cursor itself (and mutates the dict it is given)
    listed = await truto.unified_api.list("crm", "projects", {**query, "limit": 9}).to_array()
    expected = await list_all(harness, provider, limit=25)
    assert sorted(p["id"] for p in listed) == sorted(p["id"] for p in expected)

    one = await truto.unified_api.get("crm", "projects", listed[0]["id"], dict(query))
    assert one["id"] == listed[0]["id"]

    name = f"SDK {uuid.uuid4().hex[:6]}"
    body = await create_body(harness, provider, name)
    created = await truto.unified_api.create("crm", "projects", body, dict(query))
    assert created["name"] == name

    updated = await truto.unified_api.update("crm", "projects", created["id"], {"name": name + "!"}, dict(query))
    assert updated["name"] == name + "!"

    deleted = await truto.unified_api.delete("crm", "projects", created["id"], dict(query))
    assert deleted["id"] == created["id"]

    # the SDK sends Python's None as the literal "None": unicrm treats it as absent
    again = await truto.unified_api.get("crm", "projects", listed[0]["id"], {**query, "truto_response_format": None})
    assert again["id"] == listed[0]["id"]


async def test_sdk_lists_every_declared_resource(harness: Harness, provider: str) -> None:
    """`unified_api.list("crm", "users", ...)` and friends, through the SDK's own cursor loop."""
    truto = TrutoApi(harness.token, base_url=harness.base_url)
    query = {"integrated_account_id": harness.accounts[provider]}
    for resource in all_providers()[provider].resources:
        listed = await truto.unified_api.list("crm", resource, {**query, "limit": 2}).to_array()
        expected = await all_records(harness, provider, resource, limit=50)
        assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in expected)
        if "get" in all_providers()[provider].resources[resource].endpoints:
            one = await truto.unified_api.get("crm", resource, listed[0]["id"], dict(query))
            assert one["id"] == listed[0]["id"]


async def test_sdk_proxy_list_and_get(harness: Harness, provider: str) -> None:
    truto = TrutoApi(harness.token, base_url=harness.base_url)
    query = {"integrated_account_id": harness.accounts[provider]}
    native = NATIVE[provider]
    listed = await truto.proxy_api.list(native.collection, {**query, "limit": 9}).to_array()
    expected = await list_all(harness, provider, limit=50)
    assert sorted(str(r[native.id_key]) for r in listed) == sorted(p["id"] for p in expected)
    one = await truto.proxy_api.get(native.record or native.collection, str(listed[0][native.id_key]), dict(query))
    assert str(one) and str(listed[0][native.id_key]) in str(one)
