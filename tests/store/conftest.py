"""The store tests' databases: each test on a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.databases import fresh_database
from unicrm.store.database import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: a SQLite file, or a new PostgreSQL database (dropped after)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(database_url, tmp_path)
    yield s
    await s.close()
