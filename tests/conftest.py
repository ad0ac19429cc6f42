"""Shared fixtures. `harness` starts the real server and every emulator once per session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.harness import Harness, start_harness


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("unicrm-data")
    os.environ["UNICRM_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def _harness(data_dir: Path) -> Iterator[Harness]:
    harness, closers = start_harness(data_dir)
    try:
        yield harness
    finally:
        for closer in closers:
            closer.__exit__(None, None, None)


@pytest.fixture
async def harness(_harness: Harness) -> AsyncIterator[Harness]:
    yield _harness
    if _harness.session is not None:
        await _harness.session.close()
        _harness.session = None
