"""The store on SQLite and on PostgreSQL (each test runs on both)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from unicrm.store.database import Store
from unicrm.store.settings import resolve_database_url


def test_urls(tmp_path: Path) -> None:
    assert resolve_database_url("postgres://u@h/db", None) == "postgresql+asyncpg://u@h/db"
    assert resolve_database_url("sqlite:///x.db", None) == "sqlite+aiosqlite:///x.db"
    assert resolve_database_url(None, tmp_path).endswith(f"{tmp_path}/unicrm.db")


async def test_tokens_are_hashed_and_scoped(store: Store) -> None:
    token = await store.create_api_token("default")
    other = await store.create_api_token("other")
    env = await store.authenticate_token(token)
    assert env is not None and env != await store.authenticate_token(other)
    assert await store.authenticate_token(token + "x") is None
    async with store.engine.connect() as conn:
        stored = [row[0] for row in (await conn.exec_driver_sql("SELECT token_hash FROM api_tokens")).all()]
    assert token not in stored and all(len(h) == 64 for h in stored)


async def test_accounts_are_encrypted_and_scoped(store: Store) -> None:
    env = await store.ensure_environment("default")
    other = await store.ensure_environment("other")
    account = await store.create_account(env, "capsule", "acme", {"access_token": "s3cret-token"})
    async with store.engine.connect() as conn:
        raw = (await conn.exec_driver_sql("SELECT context_encrypted FROM integrated_accounts")).scalar()
    assert "s3cret-token" not in str(raw)
    assert (await store.get_account(account.id, env)).context == {"access_token": "s3cret-token"}  # type: ignore[union-attr]
    assert await store.get_account(account.id, other) is None
    updated = await store.update_account(account.id, env, context={"access_token": "new"}, status="active")
    assert updated is not None and updated.version == 2 and updated.context == {"access_token": "new"}
    assert await store.update_account(account.id, other, tenant_id="x") is None
    page, cursor = await store.list_accounts(env, limit=1)
    assert [a.id for a in page] == [account.id] and cursor is None
    await store.set_account_status(account.id, "needs_reauth", "bad token")
    assert (await store.get_account(account.id)).status == "needs_reauth"  # type: ignore[union-attr]
    assert not await store.delete_account(account.id, other)
    assert await store.delete_account(account.id, env)
    assert await store.get_account(account.id) is None


async def test_list_pages(store: Store) -> None:
    env = await store.ensure_environment("default")
    ids = {(await store.create_account(env, "capsule", f"t{i}", {})).id for i in range(5)}
    seen: set[str] = set()
    cursor = None
    while True:
        page, cursor = await store.list_accounts(env, limit=2, cursor=cursor)
        seen |= {a.id for a in page}
        if cursor is None:
            break
    assert seen == ids


async def test_one_refresh_for_concurrent_callers(store: Store) -> None:
    env = await store.ensure_environment("default")
    account = await store.create_account(env, "capsule", "t", {"access_token": "old", "refresh_token": "r1"})
    calls = 0

    async def refresh(ctx: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {**ctx, "access_token": "new", "refresh_token": "r2"}

    results = await asyncio.gather(
        *(store.refresh_account_context(account.id, lambda c: c["access_token"] == "old", refresh) for _ in range(12))
    )
    assert calls == 1
    assert {r.context["refresh_token"] for r in results} == {"r2"}
    assert (await store.get_account(account.id)).context["refresh_token"] == "r2"  # type: ignore[union-attr]


async def test_failed_refresh_changes_nothing(store: Store) -> None:
    env = await store.ensure_environment("default")
    account = await store.create_account(env, "capsule", "t", {"access_token": "old"})

    async def refuse(ctx: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        await store.refresh_account_context(account.id, lambda c: True, refuse)
    assert (await store.get_account(account.id)).context == {"access_token": "old"}  # type: ignore[union-attr]


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from unicrm.store.database import Store

    async def main() -> None:
        store = await Store.open(sys.argv[1], Path(sys.argv[2]))
        async def refresh(ctx):
            with open(sys.argv[4], "a") as log:
                log.write("refresh\\n")
            await asyncio.sleep(0.2)
            return {**ctx, "access_token": "new"}
        await asyncio.gather(*(store.refresh_account_context(sys.argv[3], lambda c: c["access_token"] == "old", refresh)
                               for _ in range(5)))
        await store.close()

    asyncio.run(main())
    """
)


async def test_one_refresh_across_processes(store: Store, database_url: str, tmp_path: Path) -> None:
    env = await store.ensure_environment("default")
    account = await store.create_account(env, "capsule", "t", {"access_token": "old"})
    log = tmp_path / "refreshes.log"
    procs = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, database_url, str(tmp_path), account.id, str(log)]) for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    assert log.read_text().count("refresh") == 1


async def test_idempotency_keys(store: Store) -> None:
    env = await store.ensure_environment("default")
    assert await store.idempotency_begin(env, "acc", "k1", "POST", "/p", "h1") is None
    hit = await store.idempotency_begin(env, "acc", "k1", "POST", "/p", "h1")
    assert hit is not None and hit.state == "in_progress"
    await store.idempotency_finish(env, "k1", "POST", "/p", 201, b'{"id": "1"}')
    done = await store.idempotency_begin(env, "acc", "k1", "POST", "/p", "h2")
    assert done is not None and done.state == "done" and done.status_code == 201 and done.request_hash == "h1"
    assert await store.idempotency_begin(env, "acc", "k2", "POST", "/p", "h1") is None
    await store.idempotency_abort(env, "k2", "POST", "/p")
    assert await store.idempotency_begin(env, "acc", "k2", "POST", "/p", "h1") is None


async def test_two_servers_migrate_at_once(database_url: str, tmp_path: Path) -> None:
    stores = await asyncio.gather(Store.open(database_url, tmp_path), Store.open(database_url, tmp_path))
    for s in stores:
        assert await s.ensure_environment("x")
        await s.close()


def test_schema_head_shortcut_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from unicrm.store.database import MIGRATIONS, _script_head

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert _script_head() == ScriptDirectory.from_config(config).get_current_head()
