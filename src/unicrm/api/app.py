"""The ASGI application: routes, error rendering, start-up and shutdown."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from unicrm.api import admin, connect, link_tokens, metrics, proxy, reference, unified, webhooks
from unicrm.api.hotpath import UnifiedRouter
from unicrm.api.limits import DEFAULT_MAX_BODY, BoundedInput
from unicrm.api.observe import ObservabilityMiddleware
from unicrm.api.openapi import JSON, Doc, Reply, build_document, documented, with_server
from unicrm.api.responses import JSONResponse, error_response
from unicrm.api.state import AppState
from unicrm.engine.errors import ApiError, reason_phrase
from unicrm.outbound.policy import OriginPolicy, operator_origins
from unicrm.outbound.pool import Timeouts
from unicrm.outbound.trace import current_trace
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
    trace = current_trace()
    if trace is not None:
        trace.error = exc.message
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {
        404: f"No route {request.method} {request.url.path}. See /openapi.json.",
        405: f"{request.method} is not allowed on {request.url.path}.",
    }.get(exc.status_code, str(exc.detail))
    trace = current_trace()
    if trace is not None:
        trace.error = message
    return JSONResponse(
        {"statusCode": exc.status_code, "error": reason_phrase(exc.status_code), "message": message}, status_code=exc.status_code
    )


OPS = "Operations"
_NO_AUTH_ERRORS = (500,)


@documented(
    Doc(
        "getOpenApi",
        "This OpenAPI 3.1 document",
        OPS,
        replies={200: Reply("The document; `servers` names the URL it was fetched from", {JSON: {"type": "object"}})},
        errors=_NO_AUTH_ERRORS,
        auth=False,
    )
)
async def openapi(request: Request) -> Response:
    return JSONResponse(with_server(request.app.state.openapi, str(request.base_url)))


@documented(
    Doc(
        "getReference",
        "The API reference page",
        OPS,
        description="Swagger UI (served from the swagger-ui-bundle-v2 package, no CDN) over this document; without "
        "JavaScript the same reference as plain HTML. /docs/plain is the plain page alone.",
        replies={200: Reply("HTML", {"text/html": {"type": "string"}})},
        errors=_NO_AUTH_ERRORS,
        auth=False,
    )
)
async def docs(request: Request) -> Response:
    return HTMLResponse(reference.interactive_page(request.app.state.openapi))


@documented(
    Doc(
        "getReferencePlain",
        "The API reference as plain HTML (no JavaScript)",
        OPS,
        replies={200: Reply("HTML", {"text/html": {"type": "string"}})},
        errors=_NO_AUTH_ERRORS,
        auth=False,
    )
)
async def docs_plain(request: Request) -> Response:
    return HTMLResponse(reference.plain_page(request.app.state.openapi))


@documented(
    Doc(
        "getReferenceAsset",
        "A file of the reference page (Swagger UI's scripts and styles)",
        OPS,
        params=("asset",),
        replies={
            200: Reply(
                "The file",
                {
                    "text/javascript": {"type": "string"},
                    "text/css": {"type": "string"},
                    "image/png": {"type": "string", "format": "binary"},
                },
            )
        },
        errors=(404, 500),
        auth=False,
    )
)
async def docs_asset(request: Request) -> Response:
    return reference.asset_response(request.path_params["asset"])


@documented(
    Doc(
        "getHealth",
        "Liveness: the process answers",
        OPS,
        replies={200: Reply("Alive", {JSON: "Health"})},
        errors=_NO_AUTH_ERRORS,
        auth=False,
    )
)
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@documented(
    Doc(
        "getReady",
        "Readiness: the database answers and its schema is at the newest migration",
        OPS,
        replies={
            200: Reply("Ready to serve", {JSON: "Ready"}),
            503: Reply("Not ready; `detail` says why", {JSON: "Ready"}),
        },
        errors=_NO_AUTH_ERRORS,
        auth=False,
    )
)
async def ready(request: Request) -> Response:
    state = request.app.state.unicrm
    status = await state.store.readiness()
    return JSONResponse(status, status_code=200 if status["ready"] else 503)


@documented(
    Doc(
        "getMetrics",
        "Prometheus metrics",
        OPS,
        description="Requests by route, status and integration; latency histograms; provider calls by provider and "
        "status; retries, token refreshes, rate-limited answers, stream records. With PROMETHEUS_MULTIPROC_DIR "
        "set, the sum over every server process sharing that directory.",
        replies={200: Reply("Prometheus text exposition", {"text/plain": {"type": "string"}})},
        errors=_NO_AUTH_ERRORS,
        auth=False,
    )
)
async def metrics_endpoint(request: Request) -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


def routes() -> list[BaseRoute]:
    """Every route of the API (the OpenAPI document is built from this list)."""
    return [
        *unified.ROUTES,
        *proxy.ROUTES,
        *admin.ROUTES,
        *link_tokens.ROUTES,
        *connect.ROUTES,
        *webhooks.ROUTES,
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/plain", docs_plain, methods=["GET"]),
        Route("/docs/assets/{asset}", docs_asset, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


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

    all_routes = routes()
    app = Starlette(
        routes=all_routes,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        middleware=[Middleware(BoundedInput, max_body=config.max_body)],
        lifespan=lifespan,
    )
    # The same routes, with the two hot GETs recognised before Starlette's route-by-route match.
    app.router = UnifiedRouter(app.router.routes, lifespan=lifespan)
    # Around the exception handlers, so that every answer (a 500 too) carries x-request-id and is logged and counted.
    app.add_middleware(ObservabilityMiddleware, routes=lambda: route_templates(all_routes))
    app.state.openapi = build_document(all_routes)
    app.state.public_url = config.public_url
    return app


def route_templates(all_routes: list[BaseRoute]) -> dict[Any, str]:
    """Endpoint -> path template, for log lines and metric labels (bounded, unlike raw paths)."""
    return {getattr(r, "endpoint", None): getattr(r, "path", "") for r in all_routes}


def app_from_environment() -> Starlette:
    """The app of a `unicrm serve --workers N` worker process (settings from the environment)."""
    import os

    from unicrm.api.logs import configure_logging

    configure_logging(os.environ.get("UNICRM_LOG_LEVEL", "info"), os.environ.get("UNICRM_LOG_FORMAT", "text"))
    return create_app(ServerConfig())
