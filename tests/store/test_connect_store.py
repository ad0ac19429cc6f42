"""Link tokens, OAuth states and integration settings on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from unicrm.store.connect import ConnectStore
from unicrm.store.database import Store


async def test_link_is_used_once_under_concurrency(store: Store) -> None:
    connect = ConnectStore(store)
    env = await store.ensure_environment("default")
    token, link = await connect.create_link_token(
        env,
        tenant_id="acme",
        integrated_account_id=None,
        integrations=["capsule"],
        redirect_uri=None,
        context={"base_url": "http://x"},
    )
    found = await connect.find_link_token(token)
    assert found is not None and found.id == link.id and found.context == {"base_url": "http://x"}
    assert found.integrations == ["capsule"] and not found.expired
    wins = await asyncio.gather(*(connect.consume_link_token(link.id) for _ in range(8)))
    assert sorted(wins) == [False] * 7 + [True]
    await connect.set_link_result(link.id, "account-1")
    used = await connect.find_link_token(token)
    assert used is not None and used.used_at is not None and used.result_account_id == "account-1"
    assert await connect.find_link_token(token + "x") is None


async def test_expired_link_cannot_be_used(store: Store) -> None:
    connect = ConnectStore(store)
    env = await store.ensure_environment("default")
    _, link = await connect.create_link_token(
        env, tenant_id="acme", integrated_account_id=None, integrations=None, redirect_uri=None, context={}
    )
    await connect.expire_link_token(link.id)
    assert (await connect.get_link_token(link.id)).expired  # type: ignore[union-attr]
    assert await connect.consume_link_token(link.id) is False


async def test_state_is_single_use(store: Store) -> None:
    connect = ConnectStore(store)
    env = await store.ensure_environment("default")
    token, link = await connect.create_link_token(
        env, tenant_id="acme", integrated_account_id=None, integrations=None, redirect_uri=None, context={}
    )
    nonce = await connect.create_state(link.id, "teamleader", "verifier-1", token)
    outcomes = await asyncio.gather(*(connect.use_state(nonce) for _ in range(5)))
    assert sorted(o for _, o in outcomes) == ["ok", "used", "used", "used", "used"]
    state = next(s for s, o in outcomes if o == "ok")
    assert state is not None and state.verifier == "verifier-1" and state.link_token == token
    assert (await connect.use_state("nope"))[1] == "unknown"


async def test_settings_and_environment_fallback(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    connect = ConnectStore(store)
    env = await store.ensure_environment("default")
    assert await connect.get_settings(env, "capsule") is None
    monkeypatch.setenv("UNICRM_OAUTH_CAPSULE_CLIENT_ID", "env-client")
    monkeypatch.setenv("UNICRM_OAUTH_CAPSULE_CLIENT_SECRET", "env-secret")
    from_env = await connect.get_settings(env, "capsule")
    assert from_env is not None and from_env.client_id == "env-client" and from_env.source == "environment"
    await connect.set_settings(env, "capsule", context={"base_url": "http://emulator"})
    merged = await connect.get_settings(env, "capsule")
    assert merged is not None and merged.client_id == "env-client" and merged.context == {"base_url": "http://emulator"}
    await connect.set_settings(env, "capsule", client_id="db-client", client_secret="db-secret")
    stored = await connect.get_settings(env, "capsule")
    assert stored is not None and stored.client_id == "db-client" and stored.client_secret == "db-secret"
    assert stored.context == {"base_url": "http://emulator"}  # kept
    assert [s.integration for s in await connect.list_settings(env)] == ["capsule"]
