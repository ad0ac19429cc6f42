"""The connect page's PKCE branch, end to end over real HTTP.

Neither OAuth provider documents PKCE, so their declarations say `pkce=False`; this test runs
a server whose Teamleader declaration says `pkce=True` (a variant, as a provider that supports
it would declare) against the Teamleader emulator, which checks a challenge when one is sent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.connect_support import form_post, get, page_text
from tests.harness import ServerThread
from unicrm.api.app import ServerConfig
from unicrm.cli import configure_emulator_connect
from unicrm.emulators.base import EmulatorThread
from unicrm.store.database import Store


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_pkce_challenge_sent_and_verifier_exchanged(tmp_path: Path) -> None:
    with EmulatorThread(["teamleader"], seed=5) as emulators:
        running = emulators.running["teamleader"]
        url = f"sqlite+aiosqlite:///{tmp_path}/pkce.db"
        store = await Store.open(url, tmp_path)
        try:
            token = await store.create_api_token("default")
            environment = await store.ensure_environment("default")
            await configure_emulator_connect(store, environment, emulators.running)
        finally:
            await store.close()
        with ServerThread(ServerConfig(database_url=url, data_dir=tmp_path, allow_origins=(running.origin,))) as server:
            engine = server.server.config.app.state.unicrm.engine
            declared = engine.providers["teamleader"]
            engine.providers["teamleader"] = dataclasses.replace(declared, auth=dataclasses.replace(declared.auth, pkce=True))
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    server.base_url + "/link-token",
                    json={"tenant_id": "pkce", "integrations": ["teamleader"]},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    link = await resp.json()
                status, _, consent = await form_post(
                    http, server.base_url + "/connect/teamleader/authorize", {"link_token": link["link_token"]}
                )
                assert status == 303 and consent
                params = _query(consent)
                assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
                fields = {k: params[k] for k in ("client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method")}
                status, _, callback = await form_post(http, consent.split("?")[0], {**fields, "decision": "approve"})
                assert status == 302 and callback
                status, html, _ = await get(http, callback)
                assert status == 200, page_text(html)
                assert "Teamleader Focus is connected" in page_text(html)
                # The emulator saw the verifier that matches the challenge (it refuses any other).
                async with http.get(running.origin + "/_emulator/requests") as resp:
                    log = (await resp.json())["requests"]
                exchange = next(r for r in log if r["path"] == "/oauth2/access_token")
                assert "code_verifier=" in str(exchange["json"])
