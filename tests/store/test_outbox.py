"""The webhook outbox on SQLite and PostgreSQL: claims never overlap, lapse when a sender dies,
back off on failure, give up after the last attempt, and survive a restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.connect_support import WebhookReceiver
from unicrm.api.webhook_worker import WebhookSender, verify_signature
from unicrm.store import webhooks as outbox
from unicrm.store.database import Store
from unicrm.store.models import WebhookDeliveryRow
from unicrm.store.webhooks import WebhookStore


async def _due_now(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(update(WebhookDeliveryRow).values(next_attempt_at=outbox._now() - timedelta(seconds=1)))


async def test_concurrent_claims_are_disjoint(store: Store, database_url: str, tmp_path: Path) -> None:
    env = await store.ensure_environment("default")
    hooks = WebhookStore(store)
    hook = await hooks.create(env, "http://127.0.0.1:9/never", None)
    for i in range(30):
        assert await hooks.enqueue(env, "integrated_account:created", {"id": str(i)}) == 1
    # A second process: its own engine on the same database.
    other_store = await Store.open(database_url, tmp_path)
    try:
        other = WebhookStore(other_store)
        batches = await asyncio.gather(*(h.claim(limit=7) for h in (hooks, other, hooks, other, hooks, other)))
    finally:
        await other_store.close()
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert all(d.webhook_id == hook.id for batch in batches for d in batch)
    # Everything is claimed: nothing more to take until the claims lapse.
    assert await hooks.claim() == []


async def test_claim_lapses_backoff_and_give_up(store: Store) -> None:
    env = await store.ensure_environment("default")
    hooks = WebhookStore(store)
    await hooks.create(env, "http://127.0.0.1:9/never", ["integrated_account:deleted"])
    assert await hooks.enqueue(env, "integrated_account:created", {"id": "x"}) == 0  # not subscribed
    assert await hooks.enqueue(env, "integrated_account:deleted", {"id": "x"}) == 1
    (first,) = await hooks.claim()
    # The sender died without settling: once the claim lapses the row is due again.
    async with store.engine.begin() as conn:
        await conn.execute(update(WebhookDeliveryRow).values(locked_until=outbox._now() - timedelta(seconds=1)))
    (again,) = await hooks.claim()
    assert again.id == first.id and again.body == first.body
    await hooks.settle(again, ok=False, status=500, error="the endpoint answered HTTP 500")
    assert await hooks.claim() == []  # backing off
    for attempt in range(2, outbox.MAX_ATTEMPTS + 1):
        await _due_now(store)
        (row,) = await hooks.claim()
        assert row.attempts == attempt - 1
        await hooks.settle(row, ok=False, status=None, error="no answer")
    await _due_now(store)
    assert await hooks.claim() == []
    (listed,) = await hooks.deliveries(row.webhook_id)
    assert listed["status"] == "failed" and listed["attempts"] == outbox.MAX_ATTEMPTS and listed["last_error"] == "no answer"
    assert outbox.backoff(1) == timedelta(seconds=2) and outbox.backoff(30) == timedelta(hours=1)


async def test_deliveries_survive_a_restart(database_url: str, tmp_path: Path) -> None:
    receiver = await WebhookReceiver().start()
    try:
        store = await Store.open(database_url, tmp_path)
        env = await store.ensure_environment("default")
        hook = await WebhookStore(store).create(env, receiver.url, None)
        await WebhookStore(store).enqueue(env, "integrated_account:created", {"id": "before-restart"})
        await store.close()  # the server stops before sending
        restarted = await Store.open(database_url, tmp_path)
        sender = WebhookSender(WebhookStore(restarted), poll_s=0.05, private_targets=True)
        await sender.start()
        try:
            (got,) = await receiver.wait_for(1)
            for _ in range(100):  # the receiver answers before the outcome is written
                (row,) = await WebhookStore(restarted).deliveries(hook.id)
                if row["status"] != "pending":
                    break
                await asyncio.sleep(0.05)
        finally:
            await sender.stop()
        assert b"before-restart" in got.body
        assert verify_signature(hook.secret, got.body, got.headers["X-Unicrm-Signature"])
        assert row["status"] == "delivered" and row["attempts"] == 1
        await restarted.close()
    finally:
        await receiver.stop()


async def test_a_private_target_is_refused_unless_allowed(store: Store) -> None:
    """Like provider calls, deliveries reach only public addresses unless the operator allows the origin."""
    from unicrm.outbound.policy import OriginPolicy

    receiver = await WebhookReceiver().start()
    try:
        env = await store.ensure_environment("default")
        hooks = WebhookStore(store)
        hook = await hooks.create(env, receiver.url.replace("127.0.0.1", "localhost"), None)
        await hooks.enqueue(env, "integrated_account:created", {"id": "x"})
        sender = WebhookSender(hooks, poll_s=0.05)
        await sender.start(run_loop=False)
        try:
            assert await sender.run_once() == 1
        finally:
            await sender.stop()
        (row,) = await hooks.deliveries(hook.id)
        assert row["status"] == "pending" and "non-public address" in row["last_error"] and not receiver.received
        # The same endpoint once its origin is allowed.
        await _due_now(store)
        allowed = WebhookSender(hooks, poll_s=0.05, policy=OriginPolicy([receiver.origin.replace("127.0.0.1", "localhost")]))
        await allowed.start(run_loop=False)
        try:
            assert await allowed.run_once() == 1
        finally:
            await allowed.stop()
        assert len(receiver.received) == 1
    finally:
        await receiver.stop()


async def test_an_account_change_and_its_event_commit_together(store: Store) -> None:
    from unicrm.api.webhook_worker import Events

    env = await store.ensure_environment("default")
    hooks = WebhookStore(store)
    hook = await hooks.create(env, "http://127.0.0.1:9/never", None)
    events = Events(hooks, None)
    account = await store.create_account(
        env, "strawblond", "t", {"api_key": "k"}, then=events.on("integrated_account:created", lambda a: {"id": a.id})
    )
    (row,) = await hooks.deliveries(hook.id)
    assert row["event"] == "integrated_account:created"

    async def broken(conn: object, a: object) -> None:
        raise RuntimeError("the outbox write failed")

    with pytest.raises(RuntimeError):
        await store.create_account(env, "strawblond", "t2", {"api_key": "k"}, then=broken)
    accounts, _ = await store.list_accounts(env)
    assert [a.tenant_id for a in accounts] == ["t"]  # the failed event took its account with it
    with pytest.raises(RuntimeError):
        await store.delete_account(account.id, env, then=broken)
    assert await store.get_account(account.id, env) is not None
    assert await store.set_account_status(
        account.id, "needs_reauth", "x", then=events.on("integrated_account:authentication_error", lambda a: {"id": a.id})
    )
    assert not await store.set_account_status(account.id, "needs_reauth", "y", then=broken)  # unchanged: no event
    assert [r["event"] for r in await hooks.deliveries(hook.id)] == [
        "integrated_account:authentication_error",
        "integrated_account:created",
    ]
