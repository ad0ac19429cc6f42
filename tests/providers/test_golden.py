"""Runs every golden fixture of every provider (see golden.py for the shapes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.providers.golden import FIXTURES, get_record, list_records, provider_body
from unicrm.engine.mapping import compile_mapping
from unicrm.providers import all_providers

REGENERATE = os.environ.get("UNICRM_REGENERATE_GOLDEN") == "1"
# <provider>/<op>.json are projects; <provider>/<resource>/<op>.json every other resource.
CASES = sorted(FIXTURES.glob("*/*.json")) + sorted(FIXTURES.glob("*/*/*.json"))


def _where(path: Path) -> tuple[str, str]:
    """(provider, resource) of a fixture file."""
    if path.parent.parent == FIXTURES:
        return path.parent.name, "projects"
    return path.parent.parent.name, path.parent.name


def _case_id(path: Path) -> str:
    provider, resource = _where(path)
    return f"{provider}-{path.stem}" if resource == "projects" else f"{provider}-{resource}-{path.stem}"


@pytest.mark.parametrize("path", CASES, ids=[_case_id(p) for p in CASES])
def test_golden(path: Path) -> None:
    provider_name, resource = _where(path)
    op = path.stem.split(".")[0]
    view = all_providers()[provider_name].for_resource(resource)
    assert view is not None, f"{provider_name} declares no {resource}"
    mapping = compile_mapping(view)
    case: dict[str, Any] = json.loads(path.read_text())
    lookups = case.get("lookups", {})
    context = case.get("context", {})
    changed = False
    if op == "list":
        got: Any = list_records(mapping, case["provider_response"], lookups)
        changed |= _check(case, "unified", got)
    elif op == "get":
        changed |= _check(case, "unified", get_record(mapping, "get", case["provider_response"], lookups))
    elif op in ("create", "update"):
        before = case.get("before")
        body = provider_body(mapping, op, case["unified_body"], lookups, context, before)  # type: ignore[arg-type]
        changed |= _check(case, "provider_body", body)
        if "provider_response" in case and mapping.provider.endpoints[op].returns == "record":  # type: ignore[index]
            changed |= _check(case, "unified", get_record(mapping, op, case["provider_response"], lookups))  # type: ignore[arg-type]
    elif op == "delete":
        endpoint = mapping.provider.endpoints["delete"]
        record_id = case["request"]["id"]
        got = {"id": record_id, "method": endpoint.method, "path": endpoint.path.replace("{id}", record_id)}
        changed |= _check(case, "request", got)
    else:
        pytest.fail(f"unknown fixture op {op}")
    if changed:
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")


def _check(case: dict[str, Any], key: str, got: Any) -> bool:
    if REGENERATE:
        old = case.get(key)
        case[key] = got
        return old != got
    assert key in case, f"fixture lacks {key!r}"
    assert got == case[key]
    return False


def test_every_provider_has_fixtures_for_every_operation() -> None:
    for name, provider in all_providers().items():
        for op in provider.endpoints:
            assert (FIXTURES / name / f"{op}.json").exists(), f"{name} has no golden fixture for {op}"
        for resource, declared in provider.resources.items():
            for op in declared.endpoints:
                path = FIXTURES / name / resource / f"{op}.json"
                assert path.exists(), f"{name} has no golden fixture for {op} {resource}"
