"""Bounded input: hand-made bad requests, each must be a 4xx in the unified error shape.

Covers the 500s reported in the issue (non-ASCII digit query keys, dates that overflow when
converted to UTC, deep `remote_data`, malformed URL contexts, CR/LF in header-bound values, a
10 MB context) and the bounds added with it (body size, JSON nesting, query length and key
count, id length), plus protocol-level errors answered by the HTTP server itself.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import pytest

from tests.e2e.test_contract import PROVIDERS
from tests.harness import Harness, ServerThread, setup_store
from unicrm.api.app import ServerConfig

BASE = "/unified/crm/projects"
DEEP = b'{"a":' * 300 + b"1" + b"}" * 300

LIST_QUERIES = [
    "remote_query[a][%C2%B2]=1",
    "remote_query[a][%D9%A3]=1",
    "a[%C2%B2]=1",
    "remote_query[a][99999999999999999999]=1",
    "updated_at[gt]=0001-01-01T00:00:00%2B01:00",
    "updated_at[lt]=9999-12-31T23:59:59-01:00",
    "created_at[gte]=0001-01-01T00:30:00%2B05:00",
    "updated_at[gt]=yesterday",
    "updated_at=2025-01-01",
    "updated_at[between]=1",
    "updated_at[gt][x]=1",
    "limit=-1",
    "limit=0",
    "limit=1e3",
    "limit=99999999999999999999999",
    "limit[a]=1",
    "next_cursor=garbage",
    "next_cursor=a.b",
    "next_cursor=%FF%FE",
    "next_cursor=eyJhIjoxfQ.AAAA",
    "truto_response_format=xml",
    "truto_response_format[a]=1",
    "truto_ignore_remote_data=maybe",
    "truto_skip_api_call=2",
    "truto_key_by[a]=b",
    "truto_ignore_limit=perhaps",
    "a[b][c][d][e][f][g][h][i][j]=1",
    "a[=1",
    "a[b=1",
    "a[0]=1&a[x]=2",
    "a=1&a[b]=2",
    "a[]=1&a[b]=2",
    "remote_query=1",
    "&".join(f"k{i}=1" for i in range(300)),
    "x=" + "y" * 20000,
    "remote_query[%00]=%00",
    "remote_query[a]=%0D%0AInjected:%201",
]


def cases(account: str) -> list[tuple[str, str, str | None, bytes | None, dict[str, str]]]:
    """(method, path, query, body, headers) of each bad request."""
    acc = f"integrated_account_id={account}"
    out: list[tuple[str, str, str | None, bytes | None, dict[str, str]]] = []
    for q in LIST_QUERIES:
        out.append(("GET", BASE, f"{acc}&{q}", None, {}))
    for q in ("", "integrated_account_id=not-a-uuid", "integrated_account_id[]=x", f"integrated_account_id={uuid.uuid4()}"):
        out.append(("GET", BASE, q, None, {}))
    bodies: list[bytes] = [
        b"",
        b"null",
        b"[]",
        b"1",
        b'"x"',
        b"{",
        b'{"name": "x"',
        b"\xff\xfe{}",
        b'{"name": "x", "remote_data": ' + DEEP + b"}",
        b"[" * 5000 + b"]" * 5000,
        orjson.dumps({"name": 1}),
        orjson.dumps({"name": "x", "close_date": "0001-01-01T00:00:00+01:00"}),
        orjson.dumps({"name": "x", "close_date": "9999-12-31T23:59:59-01:00"}),
        orjson.dumps({"name": "x", "start_date": "not a date"}),
        orjson.dumps({"name": "x", "remote_data": []}),
        orjson.dumps({"name": "x", "unknown": 1}),
        orjson.dumps({"name": "x", "status": "weird"}),
        orjson.dumps({"name": "x", "owner": "x"}),
        orjson.dumps({"name": "x", "owner": {"id": True}}),
        orjson.dumps({"name": "x", "contacts": {}}),
        orjson.dumps({"name": "x", "amount": "lots"}),
        b'{"name": "x", "amount": 1e400}',
        b'{"name": "x", "amount": NaN}',
        orjson.dumps({"name": "x" * 10, "remote_data": {"k": "v" * (2 * 1024 * 1024)}}),
    ]
    for body in bodies:
        out.append(("POST", BASE, acc, body, {}))
    for body in bodies[:12]:
        out.append(("PATCH", BASE + "/1", acc, body, {}))
    for rid in ("x" * 300, "%2E%2E", "%2E"):
        out.append(("GET", BASE + "/" + rid, acc, None, {}))
        out.append(("DELETE", BASE + "/" + rid, acc, None, {}))
        out.append(("PATCH", BASE + "/" + rid, acc, b'{"name": "x"}', {}))
    for integration, context in (
        (None, {}),
        (1, {}),
        ("capsule", []),
        ("capsule", {"access_token": "x" * 10_000_000}),
        ("capsule", {"access_token": "x" * 100_000}),
        ("capsule", {"access_token": "t", "base_url": "ftp://example.com"}),
        ("capsule", {"access_token": "t", "base_url": "http://[::1"}),
        ("capsule", {"access_token": "t", "base_url": "http://x\r\n"}),
        ("capsule", {"access_token": "t", "base_url": "javascript:alert(1)"}),
        ("capsule", {"access_token": "t", "base_url": "http://169.254.169.254/"}),
        ("capsule", {"access_token": "t", "token_url": "http://127.0.0.1:1/"}),
        ("capsule", {"access_token": "t\r\nX-Injected: 1"}),
        ("capsule", {"access_token": {"nested": 1}}),
        ("capsule", {"nope": "t"}),
        ("insightly", {"api_key": "k", "pod": "evil.com/"}),
        ("insightly", {"api_key": "k", "pod": "127.0.0.1#"}),
        ("pipeliner", {"username": "u", "password": "p", "space_id": "1", "region": "evil"}),
        ("wethod", {"api_token": "t", "company": "acme\r\nX: 1"}),
    ):
        body = orjson.dumps({"integration": integration, "context": context})
        out.append(("POST", "/integrated-account", None, body, {}))
    out += [
        (
            "POST",
            "/integrated-account",
            None,
            orjson.dumps({"integration": "capsule", "tenant_id": 1, "context": {"access_token": "t"}}),
            {},
        ),
        (
            "POST",
            "/integrated-account",
            None,
            b'{"integration": "capsule", "context": {"access_token": "t"}, "x": ' + DEEP + b"}",
            {},
        ),
        ("PATCH", f"/integrated-account/{account}", None, orjson.dumps({"context": {"base_url": "gopher://x"}}), {}),
        ("PATCH", f"/integrated-account/{account}", None, orjson.dumps({"context": {"base_url": "http://10.0.0.1/"}}), {}),
        ("PATCH", f"/integrated-account/{account}", None, orjson.dumps({"context": {"access_token": "a\nb"}}), {}),
        ("PATCH", f"/integrated-account/{account}", None, orjson.dumps({"status": "active"}), {}),
        ("PATCH", "/integrated-account/not-a-uuid", None, b"{}", {}),
        ("GET", "/integrated-account", "limit=x", None, {}),
        ("GET", "/integrated-account", "limit=0", None, {}),
        ("GET", "/integrated-account", "next_cursor=garbage", None, {}),
        ("GET", "/integrated-account", "next_cursor=eyJpZCI6IngifQ", None, {}),
        ("GET", "/integrated-account", "a[%C2%B2]=1", None, {}),
        ("GET", f"{BASE}/capsule/meta/xyz", None, None, {}),
        ("GET", f"{BASE}/nope/meta/list", None, None, {}),
        ("GET", "/nope", None, None, {}),
        ("PUT", BASE, acc, b"{}", {}),
        ("GET", BASE, acc, None, {"Authorization": "Bearer "}),
        ("GET", BASE, acc, None, {"Authorization": "Basic abc"}),
        ("GET", BASE, acc, None, {"Authorization": "Bearer " + "x" * 5000}),
        ("POST", BASE, acc, b'{"name": "x"}', {"Idempotency-Key": "k" * 1000}),
    ]
    return out


async def raw_exchange(harness: Harness, request: bytes) -> tuple[int, bytes]:
    host, port = harness.base_url.rsplit("/", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


PROTOCOL = [
    b"GET /unified/crm/projects?a=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /integrated-account HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /integrated-account HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /unified/crm/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /integrated-account HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /integrated-account HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\nConnection: close\r\n\r\n{}",
]


async def test_no_500_from_hand_made_bad_input(harness: Harness) -> None:
    account = harness.accounts["capsule"]
    statuses: list[tuple[int, str]] = []
    for method, path, query, body, headers in cases(account):
        token = None if "Authorization" in headers else "default"
        resp = await harness.call(method, path, query=query, data=body, headers=headers, token=token)
        label = f"{method} {path}?{(query or '')[:80]} {(body or b'')[:60]!r}"
        statuses.append((resp.status, label))
        assert resp.status < 500, (label, resp.status, resp.text[:300])
        if resp.status >= 400:
            payload = resp.json()
            assert payload["statusCode"] == resp.status and payload["error"] and payload["message"], label
    for raw in PROTOCOL:
        status, body = await raw_exchange(harness, raw)
        statuses.append((status, repr(raw[:40])))
        assert 400 <= status < 500, (raw, status, body)
        assert orjson.loads(body)["statusCode"] == status
    five_hundreds = [s for s in statuses if s[0] >= 500]
    assert len(statuses) >= 100
    # Nearly all are refused; the few accepted are valid after all (a provider param named ²).
    assert sum(1 for s in statuses if 400 <= s[0] < 500) >= 0.9 * len(statuses)
    assert five_hundreds == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_queries_on_every_provider(harness: Harness, provider: str) -> None:
    for q in LIST_QUERIES:
        resp = await harness.unified("GET", provider, query=q)
        assert resp.status < 500, (q, resp.status, resp.text[:300])


async def test_limits_name_the_bound(harness: Harness) -> None:
    big = await harness.unified("POST", "capsule", data=b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}')
    assert big.status == 413 and "1048576" in big.json()["message"]
    deep = await harness.unified("POST", "capsule", data=b'{"name": "x", "remote_data": ' + DEEP + b"}")
    assert deep.status == 400 and "levels deep" in deep.json()["message"]
    context = await harness.call(
        "POST", "/integrated-account", json={"integration": "capsule", "context": {"access_token": "t\r\nX: 1"}}
    )
    assert context.status == 400 and "access_token" in context.json()["message"]
    long_id = await harness.unified("GET", "capsule", "/" + "9" * 300)
    assert long_id.status == 400 and "256" in long_id.json()["message"]
    many = await harness.unified("GET", "capsule", query="&".join(f"k{i}=1" for i in range(300)))
    assert many.status == 400 and "256" in many.json()["message"]


async def test_the_body_limit_is_configurable_and_bounds_chunked_bodies(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/limits.db"
    token, _, _ = await setup_store(url, tmp_path, {})
    with ServerThread(ServerConfig(database_url=url, data_dir=tmp_path, max_body=200)) as server:
        h = Harness(server.base_url, token, "", {}, {}, url, tmp_path)
        try:
            body = orjson.dumps({"integration": "capsule", "context": {"access_token": "x" * 300}})
            declared = await h.call("POST", "/integrated-account", data=body)
            assert declared.status == 413 and "200 bytes" in declared.json()["message"]
            small = await h.call(
                "POST", "/integrated-account", json={"integration": "capsule", "context": {"access_token": "t0k3n"}}
            )
            assert small.status == 201, small.text
        finally:
            if h.session is not None:
                await h.session.close()
        # No Content-Length: the streamed chunks are counted.
        chunk = b"x" * 150
        raw = (
            b"POST /integrated-account HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3
            + b"0\r\n\r\n"
        )
        status, answer = await raw_exchange(h, raw)
        assert status == 413 and orjson.loads(answer)["statusCode"] == 413
