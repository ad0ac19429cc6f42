"""What one inbound request did on the way out: provider calls, retries, token refreshes.

The HTTP layer starts a `Trace` per request (in a context variable, so tasks spawned for the
request, like a stream's prefetch, see the same one); the outbound layer and the engine add to
it; the request log line and the metrics are written from it when the answer is complete.
Nothing here holds a credential: URLs are kept without query string or user info.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(slots=True)
class CallRecord:
    """One provider request (after its retries)."""

    method: str
    url: str
    status: int | None
    duration_s: float
    attempts: int = 1
    kind: str = "api"  # "api" or "token" (an OAuth2 refresh)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "duration_ms": round(self.duration_s * 1000, 2),
        }
        if self.attempts > 1:
            out["attempts"] = self.attempts
        if self.kind != "api":
            out["kind"] = self.kind
        return out


class Trace:
    """The outbound side of one inbound request."""

    __slots__ = (
        "account_id",
        "calls",
        "environment_id",
        "error",
        "exception",
        "integration",
        "rate_limited",
        "redact",
        "refresh_failures",
        "refreshes",
        "request_id",
        "retries",
        "stream_records",
    )

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.integration: str | None = None
        self.account_id: str | None = None
        self.environment_id: str | None = None
        self.calls: list[CallRecord] = []
        self.retries = 0
        self.refreshes = 0
        self.refresh_failures = 0
        self.rate_limited = 0
        self.stream_records = 0
        self.error: str | None = None
        self.exception: BaseException | None = None
        # Replaces the account's credentials in a string (set by the engine for the account in use).
        self.redact: Callable[[Any], Any] | None = None


CURRENT: ContextVar[Trace | None] = ContextVar("unicrm_trace", default=None)


def current_trace() -> Trace | None:
    """The trace of the request being served, if any (None outside a request, e.g. in tests of the engine)."""
    return CURRENT.get()


def loggable_url(url: str) -> str:
    """`scheme://host[:port]/path`: no query string (it may carry keys) and no user info."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{port}{parts.path}"
