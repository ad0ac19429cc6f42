"""The Capsule and Pipeliner emulators follow their providers' documentation (not the engine)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from unicrm.emulators.base import EmulatorThread, RunningEmulator


@pytest.fixture(scope="module")
def running() -> Iterator[dict[str, RunningEmulator]]:
    with EmulatorThread(["capsule", "pipeliner"], seed=11) as thread:
        yield thread.running


async def _call(method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, url, headers=headers, **kwargs) as resp:
        body = await resp.read()
        try:
            data = await resp.json(content_type=None) if body else None
        except ValueError:
            data = body
        return resp.status, resp.headers, data


def _capsule_auth(r: RunningEmulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {r.context['access_token']}"}


def _pipeliner_auth(r: RunningEmulator) -> dict[str, str]:
    token = base64.b64encode(f"{r.context['username']}:{r.context['password']}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_capsule_auth_and_link_header_paging(running: dict[str, RunningEmulator]) -> None:
    r = running["capsule"]
    status, headers, _ = await _call("GET", r.base_url + "/kases", {"Authorization": "Bearer nope"})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    seen = []
    url: str | None = r.base_url + "/kases?perPage=15"
    while url:
        status, headers, body = await _call("GET", url, _capsule_auth(r))
        assert status == 200
        seen += [k["id"] for k in body["kases"]]
        link = headers.get("Link", "")
        url = next((part.split(">")[0].strip(" <") for part in link.split(",") if 'rel="next"' in part), None)
    assert len(seen) == len(set(seen)) == 40
    status, _, _ = await _call("GET", r.base_url + "/kases?perPage=101", _capsule_auth(r))
    assert status == 400


async def test_capsule_embeds_validation_and_delete(running: dict[str, RunningEmulator]) -> None:
    r = running["capsule"]
    _, _, plain = await _call("GET", r.base_url + "/kases/4801", _capsule_auth(r))
    assert "tags" not in plain["kase"] and "fields" not in plain["kase"]
    _, _, embedded = await _call("GET", r.base_url + "/kases/4801?embed=tags,fields", _capsule_auth(r))
    assert "tags" in embedded["kase"] and "fields" in embedded["kase"]
    status, _, body = await _call("POST", r.base_url + "/kases", _capsule_auth(r), json={"kase": {"name": "x"}})
    assert status == 422 and body["message"] == "Validation Failed"
    assert {e["field"] for e in body["errors"]} == {"party", "owner"}
    status, headers, body = await _call(
        "POST",
        r.base_url + "/kases",
        _capsule_auth(r),
        json={"kase": {"name": "x", "party": {"id": 77000}, "owner": {"id": 318}, "status": "OPEN"}},
    )
    assert status == 201 and headers["Location"].endswith(f"/kases/{body['kase']['id']}")
    status, _, _ = await _call(
        "PUT", r.base_url + f"/kases/{body['kase']['id']}", _capsule_auth(r), json={"kase": {"status": "DONE"}}
    )
    assert status == 422
    status, _, nothing = await _call("DELETE", r.base_url + f"/kases/{body['kase']['id']}", _capsule_auth(r))
    assert status == 204 and nothing is None
    status, _, gone = await _call("GET", r.base_url + f"/kases/{body['kase']['id']}", _capsule_auth(r))
    assert status == 404 and gone == {"message": "Could not find resource"}


async def test_capsule_refresh_tokens_rotate(running: dict[str, RunningEmulator]) -> None:
    r = running["capsule"]
    token_url = r.context["token_url"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": r.context["refresh_token"],
        "client_id": r.context["client_id"],
        "client_secret": r.context["client_secret"],
    }
    status, _, first = await _call("POST", token_url, data=form)
    assert status == 200 and first["access_token"] and first["refresh_token"] != r.context["refresh_token"]
    status, _, again = await _call("POST", token_url, data=form)
    assert status == 400 and again["error"] == "invalid_grant"
    status, _, _ = await _call("GET", r.base_url + "/kases?perPage=1", {"Authorization": f"Bearer {first['access_token']}"})
    assert status == 200


async def test_capsule_rate_limit_has_no_retry_after(running: dict[str, RunningEmulator]) -> None:
    r = running["capsule"]
    await _call("POST", r.origin + "/_emulator/faults", json={"rate_limit": 1, "rate_window_s": 30})
    try:
        await _call("GET", r.base_url + "/kases?perPage=1", _capsule_auth(r))
        status, headers, body = await _call("GET", r.base_url + "/kases?perPage=1", _capsule_auth(r))
        assert status == 429 and body == {"error": "rate limit reached"}
        assert headers["X-RateLimit-Remaining"] == "0" and "Retry-After" not in headers
    finally:
        await _call("POST", r.origin + "/_emulator/faults", json={"rate_limit": None})


async def test_pipeliner_envelopes_cursor_and_validation(running: dict[str, RunningEmulator]) -> None:
    r = running["pipeliner"]
    status, headers, body = await _call("GET", r.base_url + "/entities/Projects", {"Authorization": "Basic bad"})
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="restapi"' and body["success"] is False
    ids: list[str] = []
    after = None
    while True:
        url = r.base_url + "/entities/Projects?first=17" + (f"&after={after}" if after else "")
        status, _, page = await _call("GET", url, _pipeliner_auth(r))
        assert status == 200 and page["success"] is True
        ids += [p["id"] for p in page["data"]]
        if not page["page_info"]["has_next_page"]:
            break
        after = page["page_info"]["end_cursor"]
    assert len(ids) == len(set(ids)) == 40
    status, _, bad = await _call("POST", r.base_url + "/entities/Projects", _pipeliner_auth(r), json={"name": "x", "status": 2})
    assert status == 422 and bad["success"] is False
    # The OpenAPI Error shape only: the fields are named in the message.
    assert set(bad) == {"success", "http_status", "code", "name", "message"}
    assert {"status", "end_date", "owner_id", "revenue_goal"} <= {p.split(": ")[0] for p in bad["message"].split("; ")}
    status, _, deleted = await _call("DELETE", r.base_url + f"/entities/Projects/{ids[0]}", _pipeliner_auth(r))
    assert status == 200 and deleted == {"success": True, "data": ids[0]}
    status, _, _ = await _call("GET", r.base_url + f"/entities/Projects/{ids[0]}", _pipeliner_auth(r))
    assert status == 404


async def test_pipeliner_expand_and_filters(running: dict[str, RunningEmulator]) -> None:
    r = running["pipeliner"]
    _, _, plain = await _call("GET", r.base_url + "/entities/Projects?first=1", _pipeliner_auth(r))
    assert isinstance(plain["data"][0]["owner"], str) and plain["data"][0]["owner"].startswith("http")
    _, _, expanded = await _call("GET", r.base_url + "/entities/Projects?first=1&expand=owner", _pipeliner_auth(r))
    assert isinstance(expanded["data"][0]["owner"], dict)
    _, _, everything = await _call("GET", r.base_url + "/entities/Projects?first=100", _pipeliner_auth(r))
    cut = sorted(p["modified"] for p in everything["data"])[20]
    _, _, newer = await _call(
        "GET",
        r.base_url + "/entities/Projects?first=100",
        _pipeliner_auth(r),
        params={"filter[modified]": cut, "filter-op[modified]": "gt"},
    )
    assert newer["data"] and all(p["modified"] > cut for p in newer["data"])
