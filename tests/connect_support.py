"""What the connect tests share: an environment with the emulators' OAuth apps, and a webhook receiver."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from tests.harness import Harness
from unicrm.cli import configure_emulator_connect
from unicrm.store.connect import ConnectStore
from unicrm.store.database import Store


@dataclass
class ConnectEnv:
    """An environment of its own (so webhooks and accounts do not meet other tests')."""

    harness: Harness
    token: str
    environment_id: str
    paste: dict[str, dict[str, Any]]

    async def link(self, **body: Any) -> dict[str, Any]:
        response = await self.harness.call("POST", "/link-token", json=body, token=self.token)
        assert response.status == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def accounts(self) -> list[dict[str, Any]]:
        response = await self.harness.call("GET", "/integrated-account", token=self.token)
        assert response.status == 200
        return response.json()["result"]  # type: ignore[no-any-return]

    async def expire(self, link_token: str) -> None:
        store = await Store.open(self.harness.database_url, self.harness.data_dir)
        try:
            connect = ConnectStore(store)
            link = await connect.find_link_token(link_token)
            assert link is not None
            await connect.expire_link_token(link.id)
        finally:
            await store.close()


async def needs_reauth_account(env: ConnectEnv, integration: str, tenant: str) -> str:
    """An OAuth account whose refresh token the provider no longer honours, flipped to needs_reauth by a call."""
    context = dict(env.harness.emulators[integration].context, refresh_token="revoked-refresh", expires_at=1)
    created = await env.harness.call(
        "POST", "/integrated-account", json={"integration": integration, "tenant_id": tenant, "context": context}, token=env.token
    )
    account_id = str(created.json()["id"])
    failed = await env.harness.call("GET", "/unified/crm/projects", query={"integrated_account_id": account_id}, token=env.token)
    assert failed.status == 401
    got = await env.harness.call("GET", f"/integrated-account/{account_id}", token=env.token)
    assert got.json()["status"] == "needs_reauth"
    return account_id


async def make_connect_env(harness: Harness, name: str) -> ConnectEnv:
    store = await Store.open(harness.database_url, harness.data_dir)
    try:
        token = await store.create_api_token(name)
        environment = await store.ensure_environment(name)
        paste = await configure_emulator_connect(store, environment, harness.emulators)
    finally:
        await store.close()
    return ConnectEnv(harness, token, environment, paste)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A real HTTP endpoint on loopback that records what it is sent; `statuses` are answered in turn."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/back", self._back)
        app.router.add_get("/opener", self._opener)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    async def _back(self, request: web.Request) -> web.Response:
        """The application's page the connect flow returns to."""
        items = "".join(f"<li>{k}={v}</li>" for k, v in request.query.items())
        return web.Response(
            text=f"<!doctype html><title>Back in the app</title><h1>Back in the app</h1><ul>{items}</ul>",
            content_type="text/html",
        )

    async def _opener(self, request: web.Request) -> web.Response:
        """An application page that opens the connect link in a popup and listens for its message."""
        link = request.query["link"]
        page = (
            "<!doctype html><title>waiting</title><button id=open>Connect your CRM</button><script>"
            f"document.getElementById('open').onclick=function(){{window.open({link!r},'connect','width=480,height=720');}};"
            "window.addEventListener('message',function(e){if(e.data&&e.data.source==='unicrm'){"
            "document.title=e.data.event+':'+(e.data.integrated_account_id||e.data.error);}});</script>"
        )
        return web.Response(text=page, content_type="text/html")

    @property
    def origin(self) -> str:
        return self.url.rsplit("/", 1)[0]

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} webhook deliveries, got {len(self.received)}")
            await asyncio.sleep(0.05)
        return self.received

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def page_text(html: str) -> str:
    """The visible words of a page (tags and styles removed), for assertions on what users read."""
    html = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def form_post(session: aiohttp.ClientSession, url: str, data: dict[str, str]) -> tuple[int, str, str | None]:
    """POST a form without following redirects: (status, body, Location)."""
    async with session.post(url, data=data, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers.get("Location")


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, str | None]:
    async with session.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers.get("Location")
