"""JSON responses (orjson, `application/json; charset=utf-8`) and error rendering."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from unicrm.engine.errors import ApiError

JSON_TYPE = "application/json; charset=utf-8"


class JSONResponse(Response):
    """A JSON response rendered with orjson."""

    media_type = JSON_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error_response(error: ApiError) -> JSONResponse:
    """The unified error shape with the error's status and headers."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)
