"""What every provider emulator shares: the aiohttp app, faults, the request log, rate limits.

A provider module subclasses `Emulator`, adds its routes in `routes()`, seeds its data in
`reset()`, says which `context` authenticates against it, and overrides the few hooks where
its API differs (its error body, its 429, its rate-limit header names).

Every emulator also serves a control API under `/_emulator/` (not part of any provider's
API) for tests and benchmarks: `POST faults`, `POST script`, `POST reset`, `GET requests`,
`GET stats`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import math
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTROL_PREFIX = "/_emulator/"
SECRET_HEADERS = frozenset({"authorization", "cookie", "x-api-key"})


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response (orjson)."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {app} · {label}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}}
button{{font:inherit;padding:.6rem 1.2rem;margin:.3rem .3rem 0 0;min-height:2.75rem}}</style></head>
<body><h1>{label} (emulator)</h1>
<p><strong>{app}</strong> would like to access your {label} account{scope}.</p>
<form method="post" action="{action}">{hidden}
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>"""


@dataclass
class _IssuedCode:
    client_id: str
    redirect_uri: str
    expires: float
    challenge: str | None


class AuthorizationCodes:
    """An emulator's OAuth2 authorization-code grant: the consent page and single-use codes.

    The provider module decides the paths and the answers' shape; this keeps what every
    authorization server does: a consent page (Approve / Deny) for a known client, a redirect
    with `code` and `state` (or `error=access_denied`), codes that work once, within `ttl_s`,
    for the same client and redirect URI (and the PKCE verifier when a challenge was sent).
    """

    def __init__(self, label: str, clients: dict[str, str], ttl_s: float = 600.0) -> None:
        self.label = label
        self.clients = clients
        self.ttl_s = ttl_s
        self._codes: dict[str, _IssuedCode] = {}

    def _page_error(self, message: str) -> web.Response:
        return web.Response(text=f"<!doctype html><h1>{html.escape(message)}</h1>", status=400, content_type="text/html")

    async def consent(self, request: web.Request) -> web.Response:
        """GET of the authorize endpoint: the consent page, or an error page for a bad client."""
        query = request.query
        if query.get("client_id") not in self.clients:
            return self._page_error("Unknown client_id: this application is not registered.")
        if query.get("response_type") != "code" or not query.get("redirect_uri"):
            return self._page_error("response_type=code and a redirect_uri are required.")
        keep = ("client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method")
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(query[k], quote=True)}">' for k in keep if k in query
        )
        scope = f" ({html.escape(query['scope'])})" if query.get("scope") else ""
        page = CONSENT_PAGE.format(
            app=html.escape(query["client_id"]), label=self.label, scope=scope, action=request.path, hidden=hidden
        )
        return web.Response(text=page, content_type="text/html")

    async def decide(self, request: web.Request) -> web.Response:
        """POST of the consent form: back to the client with a code, or with access_denied."""
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        redirect_uri = str(form.get("redirect_uri", ""))
        if client_id not in self.clients or not redirect_uri:
            return self._page_error("Unknown client_id or missing redirect_uri.")
        params: dict[str, str] = {}
        if form.get("decision") == "approve":
            code = secrets.token_urlsafe(24)
            challenge = str(form["code_challenge"]) if form.get("code_challenge") else None
            self._codes[code] = _IssuedCode(client_id, redirect_uri, time.time() + self.ttl_s, challenge)
            params["code"] = code
        else:
            params["error"] = "access_denied"
        if form.get("state"):
            params["state"] = str(form["state"])
        separator = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(redirect_uri + separator + urlencode(params))

    def redeem(self, data: dict[str, str]) -> str | None:
        """Check an authorization_code grant; None if good, else the OAuth error code."""
        client_id = data.get("client_id", "")
        if self.clients.get(client_id) != data.get("client_secret") or client_id not in self.clients:
            return "invalid_client"
        issued = self._codes.pop(data.get("code", ""), None)
        if issued is None or issued.expires < time.time():
            return "invalid_grant"
        if issued.client_id != client_id or issued.redirect_uri != data.get("redirect_uri"):
            return "invalid_grant"
        if issued.challenge is not None:
            verifier = data.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if digest != issued.challenge:
                return "invalid_grant"
        return None


@dataclass
class Faults:
    """Misbehaviour an emulator is told to show (settable at run time through /_emulator/faults)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit: int | None = None
    rate_window_s: float = 60.0
    #: Answer every request with this status and the provider's error body whose message
    #: repeats the request's headers (credentials included), query and body, as careless
    #: providers do; the headers are echoed in `X-Echo-*` response headers too.
    echo_status: int | None = None
    #: Share of requests whose connection is dropped before the handler runs (nothing done).
    drop_rate: float = 0.0
    #: Share of requests that are handled (a create is written) and whose answer is then lost.
    lose_answer_rate: float = 0.0

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key in names:
                setattr(self, key, value)


@dataclass
class ScriptedResponse:
    """A one-shot fault consumed by the next matching request."""

    kind: str = "status"  # status | drop | lose_answer | not_json | empty | hang | echo
    status: int = 500
    body: str = ""
    content_type: str = "application/json"
    seconds: float = 5.0
    method: str | None = None
    path_contains: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ScriptedResponse:
        match = data.get("match") or {}
        return cls(
            kind=str(data.get("kind", "status")),
            status=int(data.get("status", 500)),
            body=data["body"] if isinstance(data.get("body"), str) else orjson.dumps(data.get("body", "")).decode(),
            content_type=str(data.get("content_type", "application/json")),
            seconds=float(data.get("seconds", 5.0)),
            method=match.get("method"),
            path_contains=match.get("path_contains"),
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
        )

    def matches(self, request: web.Request) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        return not (self.path_contains and self.path_contains not in request.path)


@dataclass
class RateWindow:
    started: float = 0.0
    count: int = 0


class Emulator:
    """Base class of the provider emulators."""

    name = "emulator"
    base_path = ""
    #: the provider's rate-limit header names (None to send none)
    limit_header: str | None = "X-RateLimit-Limit"
    remaining_header: str | None = "X-RateLimit-Remaining"
    reset_header: str | None = "X-RateLimit-Reset"

    def __init__(self, seed: int = 1, dataset_size: int | None = None) -> None:
        self.seed = seed
        self.dataset_size = dataset_size
        self.faults = Faults()
        self.script: deque[ScriptedResponse] = deque()
        self.log: list[dict[str, Any]] = []
        self.stats: dict[str, int] = {}
        self._windows: dict[str, RateWindow] = {}
        self._random = random.Random(seed)
        self.app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        self.app.router.add_post(CONTROL_PREFIX + "faults", self._control_faults)
        self.app.router.add_post(CONTROL_PREFIX + "script", self._control_script)
        self.app.router.add_post(CONTROL_PREFIX + "reset", self._control_reset)
        self.app.router.add_get(CONTROL_PREFIX + "requests", self._control_requests)
        self.app.router.add_get(CONTROL_PREFIX + "stats", self._control_stats)
        self.reset()
        self.routes(self.app.router)

    # ------------------------------------------------------------------ for subclasses
    def routes(self, router: web.UrlDispatcher) -> None:
        """Add the provider's routes (paths include `base_path`)."""

    def reset(self) -> None:
        """(Re)create the seeded data."""

    def context(self, base_url: str) -> dict[str, Any]:
        """The unicrm integrated-account context that authenticates against this emulator."""
        return {"base_url": base_url}

    def personal_credentials(self, base_url: str) -> dict[str, Any]:
        """What a user would paste on the connect page's form (default: the ready context)."""
        return self.context(base_url)

    def oauth_client(self) -> tuple[str, str] | None:
        """The OAuth app (client id, secret) registered with this emulator, if it has an authorize endpoint."""
        return None

    def error_response(self, status: int, message: str) -> web.Response:
        """The provider's error body for a given status (used by injected faults)."""
        return json_response({"message": message}, status)

    def echo_response(self, request: web.Request, status: int) -> web.Response:
        """The provider's error body with the request repeated in the message (fault `echo_status`)."""
        seen = self.log[-1] if self.log else {}
        headers = {str(k): v for k, v in request.headers.items()}
        echoed = orjson.dumps(
            {"method": request.method, "path": request.path_qs, "headers": headers, "body": seen.get("json")}
        ).decode()
        response = self.error_response(status, f"Request rejected, you sent: {echoed}")
        for name, value in headers.items():
            if name.isascii() and value.isprintable():
                response.headers[f"X-Echo-{name}"] = value
        return response

    def rate_limited_response(self, retry_after: int, headers: dict[str, str]) -> web.Response:
        """The provider's 429."""
        return json_response({"message": "rate limit reached"}, 429, headers)

    def credential_of(self, request: web.Request) -> str:
        """What rate limits are counted per (the credential by default)."""
        return request.headers.get("Authorization", "")

    def count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    # ------------------------------------------------------------------ middleware
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        await self._record(request)
        self.count("requests")
        if self.faults.echo_status:
            return self.echo_response(request, int(self.faults.echo_status))
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        scripted = self._next_scripted(request)
        if scripted is not None and scripted.kind == "lose_answer":
            # The request is handled (a create is written), then the connection drops.
            await handler(request)
            _drop(request)
        if scripted is not None:
            outcome = await self._play(request, scripted)
            if outcome is not None:
                return outcome
        headers: dict[str, str] = {}
        if self.faults.rate_limit is not None:
            limited, headers = self._rate_limit(request)
            if limited is not None:
                return limited
        if self.faults.error_rate and self._random.random() < self.faults.error_rate:
            return self.error_response(500, "Internal server error (injected)")
        if self.faults.drop_rate and self._random.random() < self.faults.drop_rate:
            self.count("dropped")
            _drop(request)
        response = await handler(request)
        if self.faults.lose_answer_rate and self._random.random() < self.faults.lose_answer_rate:
            self.count("answers_lost")
            _drop(request)
        for key, value in headers.items():
            response.headers.setdefault(key, value)
        return response

    async def _record(self, request: web.Request) -> None:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
        headers = {str(k): v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS}
        self.log.append(
            {
                "method": request.method,
                "path": request.path,
                "query": {str(k): v for k, v in request.query.items()},
                "headers": headers,
                "json": body,
            }
        )

    def _next_scripted(self, request: web.Request) -> ScriptedResponse | None:
        for item in self.script:
            if item.matches(request):
                self.script.remove(item)
                return item
        return None

    async def _play(self, request: web.Request, scripted: ScriptedResponse) -> web.StreamResponse | None:
        if scripted.kind == "hang":
            await asyncio.sleep(scripted.seconds)
            return None
        if scripted.kind == "drop":
            _drop(request)
        if scripted.kind == "echo":
            return self.echo_response(request, scripted.status)
        if scripted.kind == "not_json":
            return web.Response(text="<html><body>Bad gateway</body></html>", status=200, content_type="text/html")
        if scripted.kind == "empty":
            return web.Response(body=b"", status=200, content_type="application/json")
        return web.Response(
            body=scripted.body.encode(), status=scripted.status, content_type=scripted.content_type, headers=scripted.headers
        )

    def _rate_limit(self, request: web.Request) -> tuple[web.Response | None, dict[str, str]]:
        limit = int(self.faults.rate_limit or 0)
        window_s = float(self.faults.rate_window_s)
        now = time.time()
        window = self._windows.setdefault(self.credential_of(request), RateWindow(now, 0))
        if now - window.started >= window_s:
            window.started, window.count = now, 0
        window.count += 1
        reset_at = window.started + window_s
        remaining = max(0, limit - window.count)
        headers = self.rate_limit_headers(limit, remaining, reset_at)
        if window.count > limit:
            retry_after = max(1, int(reset_at - now + 0.999))
            return self.rate_limited_response(retry_after, headers), headers
        return None, headers

    def rate_limit_headers(self, limit: int, remaining: int, reset_at: float) -> dict[str, str]:
        """The provider's rate-limit headers (reset as epoch seconds by default)."""
        out = {}
        if self.limit_header:
            out[self.limit_header] = str(limit)
        if self.remaining_header:
            out[self.remaining_header] = str(remaining)
        if self.reset_header:
            # Whole epoch seconds, rounded up: at the moment stated the window has reset (a
            # truncated value would name a moment up to a second before it does).
            out[self.reset_header] = str(math.ceil(reset_at))
        return out

    # ------------------------------------------------------------------ control API
    async def _control_faults(self, request: web.Request) -> web.Response:
        self.faults.update(await request.json())
        if self.faults.rate_limit is None:
            self._windows.clear()
        return json_response(self.faults.__dict__)

    async def _control_script(self, request: web.Request) -> web.Response:
        data = await request.json()
        items = data.get("responses", [])
        if not items:
            self.script.clear()
        self.script.extend(ScriptedResponse.parse(i) for i in items)
        return json_response({"queued": len(self.script)})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.faults = Faults()
        self.script.clear()
        self.log.clear()
        self.stats.clear()
        self._windows.clear()
        self.reset()
        return json_response({"reset": True})

    async def _control_requests(self, request: web.Request) -> web.Response:
        return json_response({"requests": self.log})

    async def _control_stats(self, request: web.Request) -> web.Response:
        return json_response(self.stats)


def _drop(request: web.Request) -> None:
    """Abort the connection without an answer (the client sees it closed)."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError


@dataclass
class RunningEmulator:
    """An emulator listening on loopback."""

    name: str
    base_url: str
    context: dict[str, Any]
    emulator: Emulator
    runner: web.AppRunner = field(repr=False)

    @property
    def origin(self) -> str:
        return "/".join(self.base_url.split("/", 3)[:3])

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_emulators(
    names: list[str], host: str = "127.0.0.1", port: int = 0, seed: int = 1, dataset_size: int | None = None
) -> dict[str, RunningEmulator]:
    """Start emulators, each on its own port (consecutive from `port`, or any free port)."""
    from unicrm.emulators import EMULATORS

    running: dict[str, RunningEmulator] = {}
    for offset, name in enumerate(names):
        emulator = EMULATORS[name](seed=seed, dataset_size=dataset_size)
        runner = web.AppRunner(emulator.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port + offset if port else 0)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port + offset
        base_url = f"http://{host}:{bound}{emulator.base_path}"
        running[name] = RunningEmulator(name, base_url, emulator.context(base_url), emulator, runner)
    return running


class EmulatorThread:
    """Emulators in a background thread with their own event loop (for tests and tools)."""

    def __init__(self, names: list[str], seed: int = 1, dataset_size: int | None = None, host: str = "127.0.0.1") -> None:
        self.names = names
        self.seed = seed
        self.dataset_size = dataset_size
        self.host = host
        self.running: dict[str, RunningEmulator] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_emulators(self.names, host=self.host, seed=self.seed, dataset_size=self.dataset_size), self._loop
        )
        self.running = future.result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop_all() -> None:
            for r in self.running.values():
                with contextlib.suppress(Exception):
                    await r.stop()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop_all(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
