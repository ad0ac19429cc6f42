"""`Store.readiness` (behind /ready): database reachable, schema at the newest migration."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from unicrm.store.database import Store


async def test_ready_at_head_then_not_when_the_schema_is_behind(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/r.db", tmp_path)
    try:
        ready = await store.readiness()
        assert ready["ready"] is True and ready["migration"] == ready["migration_head"]
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
        behind = await store.readiness()
        assert behind["ready"] is False and behind["database"] == "ok" and "migration" in behind["detail"]
    finally:
        await store.close()


async def test_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    store = await Store.open("postgresql://127.0.0.1:1/unicrm", tmp_path, migrate=False)
    try:
        status = await store.readiness()
        assert status["ready"] is False and status["database"] == "unreachable"
        assert "cannot reach the database at 127.0.0.1:1" in status["detail"]
    finally:
        await store.close()
