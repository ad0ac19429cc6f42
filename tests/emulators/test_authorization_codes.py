"""The emulators' authorize endpoints (Capsule, Teamleader) over real HTTP, and PKCE."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from unicrm.emulators.base import EmulatorThread
from unicrm.outbound.auth import authorization_url, pkce_pair
from unicrm.providers import all_providers

PATHS = {"capsule": ("/oauth/authorise", "/oauth/token"), "teamleader": ("/oauth2/authorize", "/oauth2/access_token")}


@pytest.mark.parametrize("name", sorted(PATHS))
@pytest.mark.parametrize("pkce", [False, True])
async def test_code_grant(name: str, pkce: bool) -> None:
    with EmulatorThread([name]) as emulators:
        running = emulators.running[name]
        client_id, secret = running.emulator.oauth_client()  # type: ignore[misc]
        authorize, token = (running.origin + p for p in PATHS[name])
        verifier, challenge = pkce_pair() if pkce else (None, None)
        redirect = "http://127.0.0.1:1/callback"
        url = authorization_url(
            all_providers()[name].auth,
            authorize_url=authorize,
            client_id=client_id,
            redirect_uri=redirect,
            state="s1",
            code_challenge=challenge,
        )
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                page = await resp.text()
            assert resp.status == 200 and "Approve" in page and "Deny" in page
            if challenge:
                assert challenge in page
            fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            async with http.post(authorize, data={**fields, "decision": "approve"}, allow_redirects=False) as resp:
                location = resp.headers["Location"]
            back = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            assert location.startswith(redirect) and back["state"] == "s1" and back["code"]
            grant = {
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": redirect,
                "client_id": client_id,
                "client_secret": secret,
            }
            if pkce:
                async with http.post(token, data={**grant, "code_verifier": "wrong"}) as resp:
                    assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
                # A refused code is spent, like any used code: start again.
                async with http.post(authorize, data={**fields, "decision": "approve"}, allow_redirects=False) as resp:
                    grant["code"] = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
                grant["code_verifier"] = str(verifier)
            async with http.post(token, data={**grant, "redirect_uri": "http://elsewhere/"}) as resp:
                assert resp.status == 400  # another redirect URI: refused, and the code is spent
            async with http.post(authorize, data={**fields, "decision": "approve"}, allow_redirects=False) as resp:
                grant["code"] = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
            async with http.post(token, data=grant) as resp:
                tokens = await resp.json()
            assert resp.status == 200 and tokens["access_token"] and tokens["refresh_token"]
            async with http.post(token, data=grant) as resp:
                assert resp.status == 400  # single use
            async with http.post(authorize, data={**fields, "decision": "deny"}, allow_redirects=False) as resp:
                assert "error=access_denied" in resp.headers["Location"] and "state=s1" in resp.headers["Location"]
            async with http.get(url.replace(client_id, "someone-else")) as resp:
                assert resp.status == 400 and "Unknown client_id" in await resp.text()
