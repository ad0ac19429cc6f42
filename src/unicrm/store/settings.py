"""Where unicrm keeps its data: the data directory and the database URL."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """`UNICRM_DATA_DIR`, else `~/.local/share/unicrm`."""
    env = os.environ.get("UNICRM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "unicrm"


def resolve_database_url(url: str | None, data_dir: Path | None) -> str:
    """The SQLAlchemy async URL: explicit, else `UNICRM_DATABASE_URL`, else SQLite in the data dir."""
    url = url or os.environ.get("UNICRM_DATABASE_URL")
    if not url:
        directory = data_dir or default_data_dir()
        directory.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{directory / 'unicrm.db'}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


STREAM_MAX_WAIT_ENV = "UNICRM_STREAM_MAX_WAIT_S"
DEFAULT_STREAM_MAX_WAIT_S = 60.0


def stream_max_wait_s(value: str | float | None = None) -> float:
    """How long a stream waits for a provider's rate limit per page: explicit, else the env var, else 60 s."""
    raw = value if value is not None else os.environ.get(STREAM_MAX_WAIT_ENV)
    if raw is None or raw == "":
        return DEFAULT_STREAM_MAX_WAIT_S
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{STREAM_MAX_WAIT_ENV} must be a number of seconds (0 or more); got {raw!r}") from None
    if not seconds >= 0:
        raise ValueError(f"{STREAM_MAX_WAIT_ENV} must be a number of seconds (0 or more); got {raw!r}")
    return seconds
