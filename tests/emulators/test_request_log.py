"""The emulator request log: answers next to requests, credentials by header name only."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from unicrm.emulators.base import SECRET_HEADERS, Emulator, json_response


class KeyHeaderEmulator(Emulator):
    name = "keyheader"
    credential_headers = SECRET_HEADERS | {"x-tenant-key"}

    def routes(self, router: web.UrlDispatcher) -> None:
        async def hello(request: web.Request) -> web.Response:
            return json_response({"hello": "world"}, headers={"X-Extra": "1"})

        router.add_get("/hello", hello)


async def test_custom_credential_header_is_logged_by_name_only_and_answers_are_kept() -> None:
    emulator = KeyHeaderEmulator()
    runner = web.AppRunner(emulator.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        url = f"http://127.0.0.1:{port}/hello"
        async with aiohttp.ClientSession() as session, session.get(url, headers={"X-Tenant-Key": "very-secret-key"}) as resp:
            assert resp.status == 200
        entry = emulator.log[-1]
        assert "very-secret-key" not in str(entry)
        assert entry["credential_headers"] == ["x-tenant-key"]
        assert entry["response"]["status"] == 200 and entry["response"]["json"] == {"hello": "world"}
        assert entry["response"]["headers"]["X-Extra"] == "1"
    finally:
        await runner.cleanup()

