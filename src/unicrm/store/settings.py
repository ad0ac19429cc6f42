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


class DatabaseConfigError(Exception):
    """The database cannot be used as configured; the message says what to fix (one line)."""


# The URL schemes unicrm speaks, and the SQLAlchemy async driver each maps to.
SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
URL_HINT = "use postgresql://user:password@host:5432/dbname or sqlite:///path/to/unicrm.db"


def resolve_database_url(url: str | None, data_dir: Path | None) -> str:
    """The SQLAlchemy async URL: explicit, else `UNICRM_DATABASE_URL`, else SQLite in the data dir.

    Raises `DatabaseConfigError` for a scheme unicrm does not support (e.g. `mysql://`).
    """
    url = url or os.environ.get("UNICRM_DATABASE_URL")
    if not url:
        directory = data_dir or default_data_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseConfigError(
                f"cannot create the data directory {directory} ({exc.strerror}): "
                "pass --data-dir (or UNICRM_DATA_DIR) pointing at a writable directory"
            ) from None
        return f"sqlite+aiosqlite:///{directory / 'unicrm.db'}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseConfigError(f"the database URL {url.split('@')[-1]!r} has no scheme: {URL_HINT}")
    driver = SCHEMES.get(scheme.lower())
    if driver is None:
        raise DatabaseConfigError(
            f"unicrm does not support {scheme}:// databases: {URL_HINT} (--database-url or UNICRM_DATABASE_URL)"
        )
    return f"{driver}://{rest}"


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
