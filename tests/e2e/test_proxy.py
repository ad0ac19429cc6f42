"""The proxy API on every provider: native paths, the account's credentials, the provider's paging.

For each provider: a list followed through next_cursor to the end (the same records the
unified projects route reads), a get that is the provider's answer verbatim, a write the
provider allows, a provider error in the unified error shape, rate-limit headers, and the
emulator seeing exactly the native request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.test_contract import list_all
from tests.harness import Harness, Response
from unicrm.outbound.http import flatten_params
from unicrm.providers import all_providers


@dataclass(frozen=True)
class Native:
    """A provider's native projects resource as the proxy addresses it."""

    collection: str  # /proxy/<collection>
    id_key: str  # the id in a native record
    record: str = ""  # /proxy/<record>/<id> when it differs from the collection (RPC)
    write: str = "update"  # "update" (method below) or "create"
    method: str = "PATCH"
    name_key: str = "name"
    envelope: str | None = None  # a write body wrapped as {envelope: {...}}
    native_path: str = ""  # what the emulator sees for the list (suffix of its path)


NATIVE = {
    "capsule": Native("kases", "id", method="PUT", envelope="kase", native_path="/kases"),
    "insightly": Native("Projects", "PROJECT_ID", write="create", name_key="PROJECT_NAME", native_path="/Projects"),
    "pipeliner": Native("Projects", "id", native_path="/entities/Projects"),
    "planhat": Native("projects", "_id", method="PUT", native_path="/projects"),
    "strawblond": Native("project", "id", method="PUT", native_path="/project"),
    "teamleader": Native(
        "projects-v2%2Fprojects.list",
        "id",
        record="projects-v2%2Fprojects.info",
        name_key="title",
        native_path="/projects-v2/projects.list",
    ),
    "wethod": Native("projects", "id", native_path="/api/projects"),
}
PROVIDERS = sorted(NATIVE)


async def proxy(h: Harness, method: str, provider: str, path: str, query: str = "", **kwargs: Any) -> Response:
    q = f"integrated_account_id={h.accounts[provider]}" + (f"&{query}" if query else "")
    return await h.call(method, f"/proxy/{path}", query=q, **kwargs)


def assert_unified_error(resp: Response, status: int) -> dict[str, Any]:
    assert resp.status == status, resp.text
    body = resp.json()
    assert body["statusCode"] == status and body["error"] and body["message"]
    return dict(body)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_list_pages_with_the_providers_own_pagination(harness: Harness, provider: str) -> None:
    native = NATIVE[provider]
    before = len(await harness.provider_requests(provider))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    for _ in range(200):
        resp = await proxy(harness, "GET", provider, native.collection, "limit=7" + (f"&next_cursor={cursor}" if cursor else ""))
        assert resp.status == 200, resp.text
        body = resp.json()
        assert set(body) == {"result", "next_cursor", "prev_cursor", "result_count"}
        assert body["result_count"] == len(body["result"]) and body["prev_cursor"] is None
        assert isinstance(body["result"], list) and len(body["result"]) <= 7
        seen.extend(str(r[native.id_key]) for r in body["result"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages > 1, "the seed data should span several pages of 7"
    sent = (await harness.provider_requests(provider))[before:]
    assert len(sent) == pages and all(r["path"].endswith(native.native_path) for r in sent)
    unified = await list_all(harness, provider, limit=50)
    assert sorted(seen) == sorted(r["id"] for r in unified)
    assert all("integrated_account_id" not in r["query"] for r in sent)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_get_is_the_providers_answer_verbatim(harness: Harness, provider: str) -> None:
    native = NATIVE[provider]
    project_id = (await harness.unified("GET", provider, query="limit=1")).json()["result"][0]["id"]
    # With the declared get endpoint's static query (embeds, includes) the proxy sends what the
    # unified raw format sends, so the answers are the same bytes.
    static = urlencode(flatten_params(all_providers()[provider].endpoints["get"].query))
    resp = await proxy(harness, "GET", provider, f"{native.record or native.collection}/{project_id}", static)
    assert resp.status == 200, resp.text
    raw = await harness.unified("GET", provider, f"/{project_id}", query="truto_response_format=raw")
    assert raw.status == 200, raw.text
    assert resp.json() == raw.json()
    assert resp.headers["Content-Type"].startswith("application/json")
    # query parameters are forwarded as they are
    before = len(await harness.provider_requests(provider))
    await proxy(harness, "GET", provider, f"{native.record or native.collection}/{project_id}", "x_unicrm_probe=1")
    last = (await harness.provider_requests(provider))[before:][-1]
    assert last["query"].get("x_unicrm_probe") == "1" or (last["json"] or {}).get("x_unicrm_probe") == "1"


async def _write(harness: Harness, provider: str) -> tuple[str, str]:
    """Write through the proxy (update or create); returns (record id, the name written)."""
    native = NATIVE[provider]
    name = f"Proxy {uuid.uuid4().hex[:6]}"
    if native.write == "create":
        body: dict[str, Any] = {native.name_key: name, "STATUS": "Not Started"}
        resp = await proxy(harness, "POST", provider, native.collection, json=body)
        assert resp.status in (200, 201), resp.text
        return str(resp.json()[native.id_key]), name
    project_id = (await harness.unified("GET", provider, query="limit=1")).json()["result"][0]["id"]
    body = {native.name_key: name}
    if native.envelope:
        body = {native.envelope: body}
    path = f"{native.collection}/{project_id}"
    if native.record:
        path = f"{native.record.replace('.info', '.update')}/{project_id}"
    resp = await proxy(harness, native.method, provider, path, json=body)
    assert resp.status == 200, resp.text
    return project_id, name


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_write_through_the_proxy_shows_in_the_unified_api(harness: Harness, provider: str) -> None:
    record_id, name = await _write(harness, provider)
    got = await harness.unified("GET", provider, f"/{record_id}")
    assert got.status == 200, got.text
    assert got.json()["name"] == name
    if NATIVE[provider].write == "create":
        deleted = await proxy(harness, "DELETE", provider, f"{NATIVE[provider].collection}/{record_id}")
        assert deleted.status == 200, deleted.text
        assert (await harness.unified("GET", provider, f"/{record_id}")).status == 404


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_provider_errors_come_back_in_the_unified_shape(harness: Harness, provider: str) -> None:
    native = NATIVE[provider]
    missing = "00000000-0000-4000-8000-000000000000" if provider in ("pipeliner", "teamleader") else "987654321"
    if provider == "planhat":
        missing = "0123456789abcdef01234567"
    resp = await proxy(harness, "GET", provider, f"{native.record or native.collection}/{missing}")
    body = assert_unified_error(resp, 404)
    assert body["truto_is_remote_error"] is True and "raw_response" in body
    # a credential never shows in an error
    dumped = resp.text
    for key, value in harness.emulators[provider].context.items():
        if isinstance(value, str) and len(value) >= 6 and any(s in key for s in ("token", "secret", "password", "key")):
            assert value not in dumped


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_headers_and_429(harness: Harness, provider: str) -> None:
    native = NATIVE[provider]
    await harness.control(provider, "faults", {"rate_limit": 2, "rate_window_s": 30})
    try:
        first = await proxy(harness, "GET", provider, native.collection, "limit=2")
        assert first.status == 200, first.text
        if all_providers()[provider].rate_limit.remaining:
            assert "ratelimit-remaining" in first.headers
        last = first
        for _ in range(3):
            last = await proxy(harness, "GET", provider, native.collection, "limit=2")
        body = assert_unified_error(last, 429)
        assert body["truto_is_remote_error"] is True and int(last.headers["Retry-After"]) >= 1
    finally:
        await harness.control(provider, "faults", {"rate_limit": None})


async def test_bad_proxy_requests(harness: Harness) -> None:
    provider = "capsule"
    assert_unified_error(await harness.call("GET", "/proxy/kases"), 400)  # no account
    assert_unified_error(await proxy(harness, "GET", provider, "kases/1/extra"), 400)
    assert_unified_error(await proxy(harness, "GET", provider, "kases", "limit=zero"), 400)
    assert_unified_error(await proxy(harness, "PATCH", provider, "kases/1", data=b"{not json"), 400)
    big = b'{"kase": {"name": "' + b"x" * (1024 * 1024) + b'"}}'
    assert_unified_error(await proxy(harness, "POST", provider, "kases", data=big), 413)
    assert_unified_error(await proxy(harness, "DELETE", provider, "kases"), 405)
    assert_unified_error(
        await harness.call("GET", "/proxy/kases", query=f"integrated_account_id={harness.accounts[provider]}", token=None), 401
    )
    assert_unified_error(await proxy(harness, "GET", provider, "..%2Fsecret"), 400)
    before = len(await harness.provider_requests(provider))
    odd = await proxy(harness, "GET", provider, "kases%3Fpage%3D2")  # a decoded `?` stays in the path
    assert_unified_error(odd, 404)
    sent = (await harness.provider_requests(provider))[before:]
    assert sent and sent[-1]["path"].endswith("/kases?page=2") and sent[-1]["query"]["page"] == "1"
    cursor = await proxy(harness, "GET", provider, "parties", "next_cursor=garbage")
    assert_unified_error(cursor, 400)


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if all_providers()[p].auth.scheme == "oauth2"])
async def test_a_401_refreshes_the_token_and_the_proxy_call_goes_through(harness: Harness, provider: str) -> None:
    if not harness.emulators[provider].context.get("refresh_token"):
        pytest.skip(f"the {provider} emulator hands out no refresh token")
    native = NATIVE[provider]
    before = (await harness.control(provider, "stats")).get("refreshes", 0)
    path = native.native_path.rsplit("/", 1)[-1]
    await harness.control(
        provider, "script", {"responses": [{"status": 401, "body": {"message": "expired"}, "match": {"path_contains": path}}]}
    )
    resp = await proxy(harness, "GET", provider, native.collection, "limit=2")
    assert resp.status == 200, resp.text
    assert (await harness.control(provider, "stats")).get("refreshes", 0) == before + 1


async def test_a_proxy_create_with_an_idempotency_key_is_sent_once(harness: Harness) -> None:
    provider = "insightly"
    key = f"proxy-{uuid.uuid4()}"
    body = {"PROJECT_NAME": f"Idempotent {key[-6:]}", "STATUS": "Not Started"}
    before = len(await harness.provider_requests(provider))
    first = await proxy(harness, "POST", provider, "Projects", json=body, headers={"Idempotency-Key": key})
    again = await proxy(harness, "POST", provider, "Projects", json=body, headers={"Idempotency-Key": key})
    assert first.status in (200, 201) and again.status == first.status, again.text
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
    posts = [r for r in (await harness.provider_requests(provider))[before:] if r["method"] == "POST"]
    assert len(posts) == 1
    await proxy(harness, "DELETE", provider, f"Projects/{first.json()['PROJECT_ID']}")
