"""Fresh databases for tests: a SQLite file, or a new PostgreSQL database dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

# The PostgreSQL of this machine (trust auth). Tests that need it fail, not skip, without it.
PG_ADMIN = os.environ.get("UNICRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_database(kind: str, tmp_path: Path, prefix: str = "unicrm_test") -> Iterator[str]:
    """The SQLAlchemy URL of an empty database of `kind` (`sqlite` or `postgresql`)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/{prefix}.db"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        server = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
        yield f"postgresql+asyncpg://{server}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
