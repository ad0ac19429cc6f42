"""The ASGI application: routes, error rendering, start-up and shutdown."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from unicrm.api import admin, connect, link_tokens, proxy, unified, webhooks
from unicrm.api.hotpath import UnifiedRouter
from unicrm.api.limits import DEFAULT_MAX_BODY, BoundedInput
from unicrm.api.openapi import DOCS_PAGE, openapi_document
from unicrm.api.responses import JSONResponse, error_response
from unicrm.api.state import AppState
from unicrm.engine.errors import ApiError, reason_phrase
from unicrm.outbound.policy import OriginPolicy, operator_origins
from unicrm.outbound.pool import Timeouts
from unicrm.store.database import Store
from unicrm.store.settings import stream_max_wait_s

log = logging.getLogger("unicrm")


@dataclass(frozen=True)
class ServerConfig:
    """How to start the server."""

    database_url: str | None = None
    data_dir: Path | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: how long a stream waits for a provider's rate limit per page (`UNICRM_STREAM_MAX_WAIT_S`)
    stream_max_wait_s: float = field(default_factory=stream_max_wait_s)
    #: Where browsers reach the server (connect links, the OAuth redirect URI); default: the
    #: request's own origin, or `UNICRM_PUBLIC_URL`.
    public_url: str | None = None
    #: Run the webhook sender in this process (every server does by default).
    send_webhooks: bool = True
    #: Webhook endpoints may resolve to private addresses (a local receiver); env
    #: UNICRM_WEBHOOK_PRIVATE_TARGETS=1. Otherwise only origins allowed with --allow-origin may.
    webhook_private_targets: bool = field(default_factory=lambda: os.environ.get("UNICRM_WEBHOOK_PRIVATE_TARGETS") == "1")
    #: Origins provider calls may reach besides the declared ones (`--allow-origin`); the
    #: server adds those of `UNICRM_ALLOW_ORIGINS`.
    allow_origins: tuple[str, ...] = ()
    #: The largest request body accepted (413 above it); env UNICRM_MAX_BODY_BYTES.
    max_body: int = field(default_factory=lambda: int(os.environ.get("UNICRM_MAX_BODY_BYTES", DEFAULT_MAX_BODY)))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {
        404: f"No route {request.method} {request.url.path}. See /openapi.json.",
        405: f"{request.method} is not allowed on {request.url.path}.",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(
        {"statusCode": exc.status_code, "error": reason_phrase(exc.status_code), "message": message}, status_code=exc.status_code
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged with its traceback here; the client gets the unified shape and no internals.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"statusCode": 500, "error": "Internal Server Error", "message": "unicrm hit an unexpected error; it was logged."},
        status_code=500,
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def docs(request: Request) -> Response:
    return HTMLResponse(DOCS_PAGE)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(config: ServerConfig | None = None) -> Starlette:
    """Build the application; the store opens (and migrates) when the server starts."""
    config = config or ServerConfig()
    # Parsed now, so that a malformed origin stops the server before it listens.
    policy = OriginPolicy(operator_origins(config.allow_origins))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await Store.open(config.database_url, config.data_dir)
        app.state.unicrm = AppState.build(
            store,
            store.secret_box.derive_key("cursor"),
            config.timeouts,
            policy,
            config.webhook_private_targets,
            stream_max_wait_s=config.stream_max_wait_s,
        )
        await app.state.unicrm.accounts.start()
        if config.send_webhooks:
            await app.state.unicrm.sender.start()
        # Everything built so far lives as long as the server: take it out of the garbage
        # collector's view, and collect young objects less often, so that full collections
        # stop re-walking ~100,000 start-up objects (about a fifth of the CPU in a profile).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        try:
            yield
        finally:
            await app.state.unicrm.close()

    app = Starlette(
        routes=[
            *unified.ROUTES,
            *proxy.ROUTES,
            *admin.ROUTES,
            *link_tokens.ROUTES,
            *connect.ROUTES,
            *webhooks.ROUTES,
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected},
        middleware=[Middleware(BoundedInput, max_body=config.max_body)],
        lifespan=lifespan,
    )
    # The same routes, with the two hot GETs recognised before Starlette's route-by-route match.
    app.router = UnifiedRouter(app.router.routes, lifespan=lifespan)
    app.state.openapi = openapi_document()
    app.state.public_url = config.public_url
    return app
