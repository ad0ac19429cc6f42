"""Every request the declarations send and every emulator answer, checked against the spec.

Three sources of requests and answers: the declarations themselves (every declared endpoint
and lookup must be a documented operation, with its static query), the golden fixtures
(provider bodies and answers), and end-to-end runs through the real server and the emulators
(the emulators' request logs: paths, query, headers, bodies, status codes, answer headers).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.test_contract import create_body
from tests.harness import Harness
from tests.providers.golden import FIXTURES, provider_body
from tests.specs.conformance import providers_with_specs, spec_for
from unicrm.emulators import EMULATORS
from unicrm.engine.calls import ProviderCall
from unicrm.engine.mapping import compile_mapping
from unicrm.outbound.auth import auth_headers
from unicrm.providers import all_providers
from unicrm.providers.declaration import Endpoint, Provider

SPECCED = providers_with_specs()
BASE = "http://spec.invalid"


def test_every_provider_has_a_spec() -> None:
    assert set(SPECCED) == set(all_providers())


@pytest.mark.parametrize("provider", SPECCED)
def test_spec_file_is_well_formed(provider: str) -> None:
    spec = spec_for(provider)
    doc = spec.doc
    assert doc["retrieved"] and doc["sources"] and doc["official"], "say where the spec came from, and when"
    for name, op in doc["operations"].items():
        assert str(op["source"]).startswith("https://"), f"{name} has no source URL"
        assert op["responses"], f"{name} documents no answer"
        for part in ("query", "headers", "body"):
            if part in op:
                spec.validator(op[part]).check_schema({"$defs": spec.defs, **op[part]})
        for answer in op["responses"].values():
            for part in ("body", "headers"):
                if answer.get(part) is not None:
                    spec.validator(answer[part]).check_schema({"$defs": spec.defs, **answer[part]})


def _call(provider: Provider) -> ProviderCall:
    context = dict(EMULATORS[provider.name]().context(BASE + "/x")) if provider.name in EMULATORS else {}
    context["base_url"] = BASE
    # No pool, gateway or destinations: the request is only shaped here, never sent.
    return ProviderCall(provider, compile_mapping(provider), "spec", context, None, None, None)  # type: ignore[arg-type]


def _entry(call: ProviderCall, endpoint: Endpoint, record_id: str | None, body: Any) -> dict[str, Any]:
    """A request in the emulator log's shape, built by the engine's own request shaping."""
    method, url, query, payload = call._shape(endpoint, record_id, {}, body)
    headers = call.headers()
    if payload is not None:
        headers.setdefault("Content-Type", "application/json")  # outbound.http sends bodies as JSON
    secret = {k.lower() for k in auth_headers(call.provider.auth, call.context)}
    return {
        "method": method,
        "path": url[len(BASE) :].split("?")[0],
        "query": dict(query),
        "headers": {k: v for k, v in headers.items() if k.lower() not in secret},
        "credential_headers": sorted(secret),
        "json": payload,
    }


def _declared(provider: Provider) -> list[tuple[str, Endpoint]]:
    out = [(op, e) for op, e in provider.endpoints.items()]
    out += [(f"lookup {lk.name}", lk.endpoint) for lk in provider.lookups]
    out += [(f"hook {name}", e) for name, e in provider.hooks.endpoints().items()]
    return out


@pytest.mark.parametrize("provider", SPECCED)
def test_declared_endpoints_are_documented(provider: str) -> None:
    """Every endpoint a declaration can call is in the spec, and its static query/body is valid."""
    declaration = all_providers()[provider]
    spec = spec_for(provider)
    call = _call(declaration)
    problems = []
    for label, endpoint in _declared(declaration):
        entry = _entry(call, endpoint, "1" if "{id}" in endpoint.path or endpoint.id_in_body else None, None)
        op = spec.operation(entry["method"], entry["path"])
        if op is None:
            problems.append(f"{label}: {entry['method']} {entry['path']} is not documented")
            continue
        # Only the static part (headers are checked on the wire, end to end): a call shape
        # without a body is complete for reads and deletes.
        if label in ("list", "get", "delete") or label.startswith("lookup"):
            problems += [f"{label}: {p}" for p in spec.request_problems(entry) if " request headers" not in p]
        else:
            problems += [f"{label}: {p}" for p in spec.problems(op.spec.get("query", {}), entry["query"], "query")]
    assert not problems, "\n".join(problems)


def _fixtures(provider: str) -> list[tuple[str, dict[str, Any]]]:
    return [(path.stem, json.loads(path.read_text())) for path in sorted((FIXTURES / provider).glob("*.json"))]


GOLDEN = [(p, name) for p in SPECCED for name, _ in _fixtures(p)]


@pytest.mark.parametrize(("provider", "name"), GOLDEN, ids=[f"{p}-{n}" for p, n in GOLDEN])
def test_golden_fixture_follows_the_spec(provider: str, name: str) -> None:
    declaration = all_providers()[provider]
    mapping = compile_mapping(declaration)
    spec = spec_for(provider)
    case = dict(_fixtures(provider))[name]
    op = name.split(".")[0]
    endpoint = declaration.endpoints[op]  # type: ignore[index]
    call = _call(declaration)
    problems: list[str] = []
    record_id = None if op in ("list", "create") else str(case.get("request", {}).get("id", "1"))
    body = None
    if op in ("create", "update"):
        body = provider_body(
            mapping, op, case["unified_body"], case.get("lookups", {}), case.get("context", {}), case.get("before")
        )  # type: ignore[arg-type]
        if not body and op == "update":
            body = None  # the engine sends no update whose body the hooks emptied
    if body is not None or op not in ("create", "update"):
        entry = _entry(call, endpoint, record_id, body)
        problems += spec.request_problems(entry)
    documented = spec.operation(endpoint.method, _entry(call, endpoint, record_id, None)["path"])
    assert documented is not None
    if case.get("provider_response") is not None:
        ok = next(s for s in documented.spec["responses"] if s.startswith("2"))
        problems += spec.body_problems(documented.name, case["provider_response"], ok)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- end to end
PROVIDERS_E2E = sorted(set(SPECCED) & set(EMULATORS))


async def _scenario(h: Harness, provider: str) -> None:
    """Every operation once, a miss and a refused write, through the unified API."""
    listed = await h.unified("GET", provider, query="limit=3")
    assert listed.status == 200, listed.text
    records = listed.json()["result"]
    page2 = listed.json()["next_cursor"]
    if page2:
        assert (await h.unified("GET", provider, query=f"limit=3&next_cursor={page2}")).status == 200
    got = await h.unified("GET", provider, f"/{records[0]['id']}")
    assert got.status == 200, got.text
    created = await h.unified("POST", provider, json=await create_body(h, provider, "Spec conformance"))
    assert created.status == 201, created.text
    ident = created.json()["id"]
    meta = (await h.call("GET", f"/unified/crm/projects/{provider}/meta/update")).json()
    writable = set(meta["request_body_schema"]["properties"])
    update: dict[str, Any] = {"name": "Spec conformance renamed"}
    if "description" in writable:
        update["description"] = "checked against the published spec"
    for field in ("close_date", "amount", "currency"):
        values = [r[field] for r in records if r.get(field) not in (None, "")]
        if field in writable and values:
            update[field] = values[0]
    updated = await h.unified("PATCH", provider, f"/{ident}", json=update)
    assert updated.status == 200, updated.text
    deleted = await h.unified("DELETE", provider, f"/{ident}")
    assert deleted.status == 200, deleted.text
    # A miss, read and written: the providers' error answers are checked too.
    missing = await h.unified("GET", provider, f"/{ident}")
    assert missing.status in (200, 404, 410), missing.text  # a soft-deleted record may still read
    written = await h.unified("PATCH", provider, f"/{ident}", json={"name": "gone"})
    assert written.status in (200, 400, 404, 410, 422), written.text


@pytest.mark.parametrize("provider", PROVIDERS_E2E)
async def test_end_to_end_requests_and_answers_follow_the_spec(harness: Harness, provider: str) -> None:
    before = len(await harness.provider_requests(provider))
    await _scenario(harness, provider)
    entries = [e for e in (await harness.provider_requests(provider))[before:] if not e.get("scripted")]
    assert entries, "the scenario sent nothing to the provider"
    spec = spec_for(provider)
    problems = []
    for entry in entries:
        if spec.operation(entry["method"], entry["path"]) is None and entry["path"].endswith(("/token", "/access_token")):
            continue  # OAuth token endpoints are checked by the OAuth tests
        problems += spec.request_problems(entry)
        problems += spec.response_problems(entry)
    assert not problems, "\n".join(dict.fromkeys(problems))


@pytest.mark.parametrize("provider", SPECCED)
def test_declaration_names_the_spec_it_is_held_to(provider: str) -> None:
    """The coverage table's spec column comes from the declaration: it must be this spec's source."""
    api = all_providers()[provider].spec
    assert api is not None, "declare spec=ApiSpec(...) in the provider module"
    doc = spec_for(provider).doc
    assert api.source in doc["sources"], (api.source, doc["sources"])
