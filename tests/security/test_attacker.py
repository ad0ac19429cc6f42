"""An attacker with an API token: every context key of every provider aimed at loopback
listeners and cloud-metadata addresses, ids that try to leave the provider path, redirects,
and a name that resolves to loopback.

Trap listeners on 127.0.0.1 and [::1] count every connection they receive; none of their
origins is allowed, so the goal is zero connections, whatever the attack.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from tests.e2e.test_contract import PROVIDERS, create_body
from tests.harness import Harness, ServerThread, setup_store
from unicrm.api.app import ServerConfig
from unicrm.engine.errors import ApiError
from unicrm.outbound.http import send
from unicrm.outbound.policy import Destinations, GuardedResolver, OriginPolicy, RefusedAddress, declared_rule, parse_allowed
from unicrm.outbound.pool import SessionPool
from unicrm.providers import all_providers


class Trap:
    """Raw TCP listeners that answer a bare HTTP response and count connections."""

    def __init__(
        self, answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ) -> None:
        self.answer = answer
        self.connections = 0
        self.servers: list[asyncio.Server] = []
        self.ports: dict[str, int] = {}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            writer.write(self.answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def start(self) -> Trap:
        for host in ("127.0.0.1", "::1"):
            server = await asyncio.start_server(self._handle, host, 0)
            self.servers.append(server)
            self.ports[host] = server.sockets[0].getsockname()[1]
        return self

    @property
    def v4(self) -> str:
        return f"http://127.0.0.1:{self.ports['127.0.0.1']}"

    @property
    def v6(self) -> str:
        return f"http://[::1]:{self.ports['::1']}"

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    t = await Trap().start()
    yield t
    await t.close()


def attack_values(trap: Trap) -> list[str]:
    v4_port = trap.ports["127.0.0.1"]
    return [
        trap.v4,
        trap.v4 + "/api/v2",
        trap.v6,
        f"http://localhost:{v4_port}",
        f"http://127.1:{v4_port}",
        f"http://2130706433:{v4_port}",
        f"http://0.0.0.0:{v4_port}",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
        f"https://api.capsulecrm.com@127.0.0.1:{v4_port}/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "http://[::1",
        "not a url",
        f"na1.insightly.com.127.0.0.1.nip.io:{v4_port}/x#",
        f"127.0.0.1:{v4_port}/#",
        "us-east\r\nX-Injected: 1",
        "value\nwith newline",
        "x" * 20000,
    ]


async def create(h: Harness, provider: str, context: dict[str, Any]) -> Any:
    return await h.call(
        "POST", "/integrated-account", json={"integration": provider, "tenant_id": "attacker", "context": context}
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_context_key_against_loopback_and_metadata(harness: Harness, provider: str, trap: Trap) -> None:
    decl = all_providers()[provider]
    base = dict(harness.emulators[provider].context)
    tried = refused = 0
    for field in decl.context:
        for value in attack_values(trap):
            context = {**base, field.name: value}
            tried += 1
            resp = await create(harness, provider, context)
            assert resp.status in (201, 400), resp.text
            if resp.status == 400:
                refused += 1
                assert field.name in resp.json()["message"] or "Context" in resp.json()["message"], resp.text
                continue
            # Accepted: the value is a credential or a setting that never becomes an origin.
            account_id = resp.json()["id"]
            try:
                for query in ("limit=1", "limit=1&truto_response_format=raw"):
                    call = await harness.call("GET", "/unified/crm/projects", query=f"integrated_account_id={account_id}&{query}")
                    assert call.status < 500 or call.status in (502, 504), call.text
            finally:
                await harness.call("DELETE", f"/integrated-account/{account_id}")
    # Patching an existing account is checked the same way.
    account_id = harness.accounts[provider]
    for field in decl.context:
        if field.is_url or field.pattern:
            patched = await harness.call("PATCH", f"/integrated-account/{account_id}", json={"context": {field.name: trap.v4}})
            assert patched.status == 400, patched.text
            body = patched.json()
            assert field.name in body["message"]
            if field.is_url:
                assert trap.v4 in body["message"] and "--allow-origin" in body["message"]
    assert tried == refused + (tried - refused)
    assert refused > 0
    assert trap.connections == 0, f"{trap.connections} connections reached a loopback listener"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stored_account_is_checked_again_on_every_call(
    harness: Harness, provider: str, trap: Trap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account stored before the allow-list (or after an origin was dropped) cannot call out."""
    # Encrypt with the key the harness server uses (its data directory's), whatever another test set.
    monkeypatch.delenv("UNICRM_SECRET_KEY", raising=False)
    context = {**harness.emulators[provider].context, "base_url": trap.v4}
    if "token_url" in context:
        context["token_url"] = trap.v6 + "/token"
        context["expires_at"] = 0
    valid = await create_body(harness, provider, "x")
    _, _, accounts = await setup_store(harness.database_url, harness.data_dir, {provider: context})
    account_id = accounts[provider]
    query = f"integrated_account_id={account_id}"
    for method, path, body in (
        ("GET", "", None),
        ("GET", "/1", None),
        ("POST", "", valid),
        ("PATCH", "/1", {"name": "x"}),
        ("DELETE", "/1", None),
    ):
        resp = await harness.call(method, "/unified/crm/projects" + path, query=query, json=body)
        assert resp.status == 400, resp.text
        assert "--allow-origin" in resp.json()["message"]
    assert trap.connections == 0


@pytest.mark.parametrize(
    "record_id",
    ["%2E%2E", "%2E", "..%2F..%2Fx", "%2e%2e%2fkases", "@127.0.0.1", "a%3Fb=c", "a%23b", "x%2F..%2F..%2Fy", "%00", "a%0D%0AX: 1"],
)
async def test_ids_never_leave_the_provider_path(harness: Harness, record_id: str) -> None:
    for provider in PROVIDERS:
        before = len(await harness.provider_requests(provider))
        # encoded=True: the test's own client must not resolve the dot segments first.
        account = harness.accounts[provider]
        url = URL(f"{harness.base_url}/unified/crm/projects/{record_id}?integrated_account_id={account}", encoded=True)
        session = await harness.http()
        async with session.get(url, headers={"Authorization": f"Bearer {harness.token}"}) as raw:
            status, text = raw.status, await raw.text()
        assert status in (400, 404), (provider, status, text)
        for request in (await harness.provider_requests(provider))[before:]:
            # Whatever reached the emulator stayed under the provider's own path.
            assert ".." not in request["path"].split("/"), request


async def test_a_redirect_is_never_followed(tmp_path: Path, trap: Trap) -> None:
    """Even from an allowed origin: the redirect target (another trap) gets no connection."""
    target = await Trap().start()
    redirector = await Trap(
        answer=f"HTTP/1.1 302 Found\r\nLocation: {target.v4}/stolen\r\nContent-Length: 0\r\n\r\n".encode()
    ).start()
    try:
        url = f"sqlite+aiosqlite:///{tmp_path}/r.db"
        contexts = {
            "planhat": {"api_token": "secret-token-1234", "base_url": redirector.v4},
            "capsule": {
                "access_token": "old",
                "refresh_token": "refresh-secret-1234",
                "client_id": "c",
                "client_secret": "client-secret-1234",
                "expires_at": 0,
                "base_url": redirector.v4,
                "token_url": redirector.v4 + "/oauth/token",
            },
        }
        token, _, accounts = await setup_store(url, tmp_path, contexts)
        server = ServerThread(ServerConfig(database_url=url, data_dir=tmp_path, allow_origins=(redirector.v4,)))
        with server:
            h = Harness(server.base_url, token, "", accounts, {}, url, tmp_path)
            try:
                for provider in contexts:
                    resp = await h.unified("GET", provider, query="limit=1")
                    assert resp.status == 502, resp.text
                    message = resp.json()["message"]
                    assert "redirect" in message and f"{target.v4}/stolen" in message
                    post = await h.unified("POST", provider, json={"name": "x"})
                    assert post.status in (400, 502), post.text
            finally:
                if h.session is not None:
                    await h.session.close()
        assert redirector.connections >= 2
        assert target.connections == 0
    finally:
        await target.close()
        await redirector.close()


async def test_a_name_resolving_to_loopback_is_refused(trap: Trap) -> None:
    """A declared (not operator-allowed) origin whose name resolves to 127.0.0.1: no connection."""
    port = trap.ports["127.0.0.1"]
    declared = Destinations("Test", [declared_rule(f"http://localhost:{port}", {})], [])
    pool = SessionPool()
    try:
        with pytest.raises(ApiError) as caught:
            await send(pool, "GET", f"http://localhost:{port}/x", destinations=declared)
        assert caught.value.status == 502 and "non-public address" in caught.value.message
        assert "--allow-origin" in caught.value.message
        with pytest.raises(RefusedAddress):
            await GuardedResolver().resolve("localhost", port)
        # The operator allowing it explicitly is what lets it through.
        allowed = Destinations("Test", [], [parse_allowed(f"http://localhost:{port}")])
        pool2 = SessionPool(policy=OriginPolicy([f"http://localhost:{port}"]))
        try:
            response = await send(pool2, "GET", f"http://localhost:{port}/x", destinations=allowed)
            assert response.status == 200
        finally:
            await pool2.close()
    finally:
        await pool.close()
    assert trap.connections == 1


def test_declared_origins_and_patterns() -> None:
    providers = all_providers()
    policy = OriginPolicy(["https://*.example.com", "http://127.0.0.1:9"])
    from unicrm.engine.operations import destinations_of

    insightly = destinations_of(providers["insightly"], policy)
    assert insightly.rule_for("https://api.na1.insightly.com/v3.1") is not None
    assert insightly.rule_for("https://api.evil.com/.insightly.com") is None
    assert insightly.rule_for("https://api.na1.insightly.com.evil.com/") is None
    assert insightly.rule_for("https://crm.example.com/") is not None
    assert insightly.rule_for("https://a.b.example.com/") is None  # `*.` is one label
    assert insightly.rule_for("http://127.0.0.1:9/x") is not None
    assert insightly.rule_for("http://127.0.0.1:10/x") is None
    pipeliner = destinations_of(providers["pipeliner"], OriginPolicy())
    assert pipeliner.rule_for("https://eu-central.api.pipelinersales.com/api") is not None
    assert pipeliner.rule_for("https://evil.api.pipelinersales.com/api") is None
    no_operator = destinations_of(dataclasses.replace(providers["capsule"]), OriginPolicy())
    assert no_operator.rule_for("https://api.capsulecrm.com/api/v2") is not None
    assert no_operator.rule_for("https://93.184.216.34/") is None
