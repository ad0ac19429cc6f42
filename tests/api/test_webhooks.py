"""Account webhooks end to end: register an endpoint, connect/reconnect/fail/delete, check the signed events."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.connect_support import ConnectEnv, WebhookReceiver, form_post, get, make_connect_env, query_of
from tests.harness import Harness
from unicrm.api.webhook_worker import verify_signature


@pytest.fixture(scope="module")
async def env(_harness: Harness) -> AsyncIterator[ConnectEnv]:
    yield await make_connect_env(_harness, "connect-webhooks")
    if _harness.session is not None:
        await _harness.session.close()
        _harness.session = None


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = await WebhookReceiver().start()
    yield r
    await r.stop()


async def _register(env: ConnectEnv, url: str, **extra: Any) -> dict[str, Any]:
    response = await env.harness.call("POST", "/webhook", json={"target_url": url, **extra}, token=env.token)
    assert response.status == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _settled(env: ConnectEnv, hook_id: str, count: int) -> list[dict[str, Any]]:
    """The endpoint's deliveries once `count` of them are settled (the receiver answers before the row is written)."""
    for _ in range(200):
        rows = (await env.harness.call("GET", f"/webhook/{hook_id}/deliveries", token=env.token)).json()["result"]
        if len([r for r in rows if r["status"] != "pending"]) >= count:
            return rows  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries of {hook_id} not settled")


def _check_signed(secret: str, headers: dict[str, str], body: bytes) -> None:
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    assert headers["X-Truto-Signature"] == f"format=sha256,v={expected}"
    assert verify_signature(secret, body, headers["X-Unicrm-Signature"])
    assert headers["X-Unicrm-Signature"].startswith(f"t={headers['X-Unicrm-Timestamp']},")
    # A tampered body or a stale timestamp is refused.
    assert not verify_signature(secret, body + b" ", headers["X-Unicrm-Signature"])
    assert not verify_signature(secret, body, headers["X-Unicrm-Signature"], now=int(headers["X-Unicrm-Timestamp"]) + 3600)


async def test_webhook_routes_validate(env: ConnectEnv) -> None:
    bad = await env.harness.call("POST", "/webhook", json={"target_url": "ftp://x"}, token=env.token)
    assert bad.status == 400 and "target_url" in bad.json()["message"]
    bad = await env.harness.call(
        "POST", "/webhook", json={"target_url": "https://x.example", "event_types": ["nope"]}, token=env.token
    )
    assert bad.status == 400 and "Unknown event type" in bad.json()["message"]
    assert (await env.harness.call("GET", "/webhook/not-a-uuid", token=env.token)).status == 400
    missing = await env.harness.call("GET", "/webhook/00000000-0000-0000-0000-000000000000", token=env.token)
    assert missing.status == 404
    assert (await env.harness.call("GET", "/webhook", token=None)).status == 401


async def test_account_events_are_signed_and_listed(env: ConnectEnv, receiver: WebhookReceiver) -> None:
    hook = await _register(env, receiver.url)
    secret = hook["secret"]
    assert len(secret) == 64 and hook["is_active"] is True
    listed = await env.harness.call("GET", "/webhook", token=env.token)
    assert all("secret" not in w for w in listed.json()["result"])
    async with aiohttp.ClientSession() as browser:
        # created: through the connect page
        link = await env.link(tenant_id="t-hooks", integrations=["strawblond"])
        status, _, _ = await form_post(
            browser,
            env.harness.base_url + "/connect/strawblond",
            {"link_token": link["link_token"], "api_key": env.paste["strawblond"]["api_key"]},
        )
        assert status == 200
        account_id = next(a["id"] for a in await env.accounts() if a["tenant_id"] == "t-hooks")
        # reconnected: a reconnect link
        link = await env.link(integrated_account_id=account_id)
        status, _, _ = await form_post(
            browser,
            env.harness.base_url + "/connect/strawblond",
            {"link_token": link["link_token"], "api_key": env.paste["strawblond"]["api_key"]},
        )
        assert status == 200
    # needs_reauth: the provider starts refusing the key
    patched = await env.harness.call(
        "PATCH", f"/integrated-account/{account_id}", json={"context": {"api_key": "revoked"}}, token=env.token
    )
    assert patched.status == 200
    failed = await env.harness.call("GET", "/unified/crm/projects", query={"integrated_account_id": account_id}, token=env.token)
    assert failed.status == 401
    again = await env.harness.call("GET", "/unified/crm/projects", query={"integrated_account_id": account_id}, token=env.token)
    assert again.status == 401
    # deleted
    assert (await env.harness.call("DELETE", f"/integrated-account/{account_id}", token=env.token)).status == 200
    got = await receiver.wait_for(5)
    events = [orjson.loads(r.body) for r in got]
    assert [e["event"] for e in events] == [
        "integrated_account:created",
        "integrated_account:active",
        "integrated_account:updated",
        "integrated_account:authentication_error",
        "integrated_account:deleted",
    ]
    for received, event in zip(got, events, strict=True):
        _check_signed(secret, received.headers, received.body)
        assert event["payload"]["id"] == account_id and event["webhook_id"] == hook["id"]
        assert event["environment_id"] == env.environment_id
        assert "api_key" not in event["payload"]["context"]  # secrets never leave
        assert received.headers["X-Unicrm-Event-Id"] == event["id"]
    assert events[3]["payload"]["status"] == "needs_reauth"
    rows = await _settled(env, hook["id"], 5)
    assert len(rows) == 5 and {r["status"] for r in rows} == {"delivered"} and {r["attempts"] for r in rows} == {1}
    assert (await env.harness.call("DELETE", f"/webhook/{hook['id']}", token=env.token)).status == 200


async def test_failed_delivery_is_retried_with_the_same_signed_body(env: ConnectEnv, receiver: WebhookReceiver) -> None:
    receiver.statuses = [500]
    hook = await _register(env, receiver.url, event_types=["integrated_account:created"])
    created = await env.harness.call(
        "POST",
        "/integrated-account",
        json={"integration": "strawblond", "tenant_id": "t-retry", "context": env.harness.emulators["strawblond"].context},
        token=env.token,
    )
    assert created.status == 201
    # the first attempt is refused; the retry comes after a 2 s backoff
    got = await receiver.wait_for(2, timeout=20)
    assert got[0].body == got[1].body
    _check_signed(hook["secret"], got[1].headers, got[1].body)
    rows = await _settled(env, hook["id"], 1)
    assert rows[0]["status"] == "delivered" and rows[0]["attempts"] == 2
    # only subscribed events: deleting sends nothing to this endpoint
    await env.harness.call("DELETE", f"/integrated-account/{created.json()['id']}", token=env.token)
    patched = await env.harness.call("PATCH", f"/webhook/{hook['id']}", json={"is_active": False}, token=env.token)
    assert patched.json()["is_active"] is False
    await env.harness.call("DELETE", f"/webhook/{hook['id']}", token=env.token)
    assert len(receiver.received) == 2


async def test_oauth_connect_sends_created(env: ConnectEnv, receiver: WebhookReceiver) -> None:
    hook = await _register(env, receiver.url)
    link = await env.link(tenant_id="t-hooks-oauth", integrations=["capsule"])
    async with aiohttp.ClientSession() as browser:
        _, _, location = await form_post(
            browser, env.harness.base_url + "/connect/capsule/authorize", {"link_token": link["link_token"]}
        )
        assert location
        params = query_of(location)
        fields = {k: params[k] for k in ("client_id", "redirect_uri", "state", "scope")}
        _, _, callback = await form_post(browser, location.split("?")[0], {**fields, "decision": "approve"})
        assert callback
        status, _, _ = await get(browser, callback)
        assert status == 200
    got = await receiver.wait_for(1)
    event = orjson.loads(got[0].body)
    assert event["event"] == "integrated_account:created" and event["payload"]["tenant_id"] == "t-hooks-oauth"
    assert event["payload"]["integration"]["name"] == "capsule"
    await env.harness.call("DELETE", f"/webhook/{hook['id']}", token=env.token)
