"""The unified error model (PRODUCT §3.6).

Every failure the API reports is an `ApiError`; the HTTP layer renders it as
`{"statusCode", "error", "message", ...}`. Provider failures carry `remote=True` and the
provider's body in `raw_response`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

Outcome = Literal["unknown", "written"]


def reason_phrase(status: int) -> str:
    """The canonical reason phrase of an HTTP status ("Bad Request", ...)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ApiError(Exception):
    """An error with an HTTP status, a message that says how to fix it, and optional extras."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        remote: bool = False,
        raw_response: Any = None,
        insight: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.remote = remote
        self.raw_response = raw_response
        self.insight = insight or {}
        self.headers = headers or {}
        #: For a failed write: `unknown` when the request may have reached the provider and
        #: its answer was lost, `written` when the provider did write; None means nothing was.
        self.outcome = outcome
        #: for a provider's 429: the seconds it asked to wait (Retry-After or reset), if it said
        self.retry_after_s: float | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body of the error in Truto's shape."""
        out: dict[str, Any] = {"statusCode": self.status, "error": reason_phrase(self.status), "message": self.message}
        if self.remote:
            out["truto_is_remote_error"] = True
            out["raw_response"] = self.raw_response
        if self.insight:
            out["truto_error_insight"] = self.insight
        return out


def bad_request(message: str, **insight: Any) -> ApiError:
    """400 with optional `truto_error_insight` keys."""
    return ApiError(400, message, insight=dict(insight) if insight else None)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, message)
