"""Link tokens and the hosted connect page over real HTTP: the server, the emulators, a real database.

Every failure path checks what the user reads, that nothing was stored, and the `error` on the
way back to the application.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy import text

from tests.connect_support import ConnectEnv, form_post, get, make_connect_env, needs_reauth_account, page_text, query_of
from tests.harness import Harness
from unicrm.store.database import Store


@pytest.fixture(scope="module")
async def env(_harness: Harness) -> AsyncIterator[ConnectEnv]:
    yield await make_connect_env(_harness, "connect-api")
    if _harness.session is not None:
        await _harness.session.close()
        _harness.session = None


@pytest.fixture
async def browser(env: ConnectEnv) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _token(link: dict[str, Any]) -> str:
    return str(query_of(link["url"])["link_token"])


# --------------------------------------------------------------------------- POST /link-token
async def test_link_token_answer_and_storage(env: ConnectEnv) -> None:
    link = await env.link(tenant_id="acme", redirect_uri="https://app.example/back")
    assert set(link) == {"link_token", "url", "expires_at"}
    assert link["url"].startswith(env.harness.base_url + "/connect?link_token=")
    assert _token(link) == link["link_token"]
    # Seven days by default.
    from datetime import UTC, datetime, timedelta

    expires = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    # Stored hashed: the plaintext is nowhere in the table.
    store = await Store.open(env.harness.database_url, env.harness.data_dir)
    try:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT * FROM link_tokens"))).all()
    finally:
        await store.close()
    dumped = repr(rows)
    assert link["link_token"] not in dumped
    assert hashlib.sha256(link["link_token"].encode()).hexdigest() in dumped


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "tenant_id is required"),
        ({"tenant_id": "a", "integrated_account_id": "00000000-0000-0000-0000-000000000000"}, 400, "not both"),
        ({"tenant_id": "a", "integrations": ["nope"]}, 400, "Unknown integration"),
        ({"tenant_id": "a", "integrations": []}, 400, "non-empty list"),
        ({"tenant_id": "a", "redirect_uri": "javascript:alert(1)"}, 400, "absolute http or https URL"),
        ({"tenant_id": "a", "context": {"nope": "x"}}, 400, "no offered integration declares"),
        ({"tenant_id": "a", "integrations": ["teamleader"], "context": {"api_key": "x"}}, 400, "api_key"),
        ({"tenant_id": "a", "context": "x"}, 400, "context must be an object"),
        ({"tenant_id": "a", "integrations": ["strawblond"], "context": {"base_url": "http://169.254.169.254/"}}, 400, "base_url"),
        ({"tenant_id": "a", "integrations": ["insightly"], "context": {"pod": "evil.example#"}}, 400, "must match"),
        ({"tenant_id": "a", "expires_in": 0}, 400, "expires_in"),
        ({"tenant_id": "a", "colour": "red"}, 400, "Unknown link-token field"),
        ({"tenant_id": "a", "scopes": "read"}, 400, "scopes must be a list"),
        ({"integrated_account_id": "not-a-uuid"}, 400, "must be a UUID"),
        ({"integrated_account_id": "00000000-0000-0000-0000-000000000000"}, 404, "No such integrated account"),
    ],
)
async def test_link_token_bad_requests(env: ConnectEnv, body: dict[str, Any], status: int, words: str) -> None:
    response = await env.harness.call("POST", "/link-token", json=body, token=env.token)
    assert response.status == status, response.text
    assert set(response.json()) >= {"statusCode", "error", "message"}
    assert words in response.json()["message"]


async def test_link_token_needs_a_token_and_stays_in_its_environment(env: ConnectEnv) -> None:
    assert (await env.harness.call("POST", "/link-token", json={"tenant_id": "a"}, token=None)).status == 401
    # An account of the default environment cannot be reconnected from another environment.
    other_account = env.harness.accounts["strawblond"]
    response = await env.harness.call("POST", "/link-token", json={"integrated_account_id": other_account}, token=env.token)
    assert response.status == 404


# --------------------------------------------------------------------------- the page
async def test_page_lists_offered_integrations_and_works_without_javascript(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="acme", integrations=["insightly", "teamleader"])
    status, html, _ = await get(browser, link["url"])
    assert status == 200
    text_ = page_text(html)
    assert "Insightly" in text_ and "Teamleader Focus" in text_ and "Capsule" not in text_
    assert "<link" not in html and " src=" not in html  # no external assets: CSS is inline
    assert "<script" not in html  # the chooser needs no script at all
    status, html, _ = await get(browser, env.harness.base_url + f"/connect/insightly?link_token={_token(link)}")
    assert status == 200
    assert 'type="password"' in html and 'name="api_key"' in html
    assert "User Settings → API" in page_text(html)  # where to find the key


async def test_api_key_wrong_then_right(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="tenant-wrong-right", integrations=["strawblond"], redirect_uri="https://app.example/done")
    token = _token(link)
    before = len(await env.accounts())
    url = env.harness.base_url + "/connect/strawblond"
    status, html, _ = await form_post(browser, url, {"link_token": token, "api_key": "not-the-key"})
    assert status == 400
    words = page_text(html)
    assert "StrawBlond did not accept these credentials" in words and "Nothing was saved" in words
    assert "not-the-key" not in html  # a secret is never echoed back
    assert len(await env.accounts()) == before
    status, html, _ = await form_post(browser, url, {"link_token": token, "api_key": env.paste["strawblond"]["api_key"]})
    assert status == 200, page_text(html)
    assert "StrawBlond is connected" in page_text(html)
    accounts = await env.accounts()
    assert len(accounts) == before + 1
    account = next(a for a in accounts if a["tenant_id"] == "tenant-wrong-right")
    assert account["integration"]["name"] == "strawblond" and account["status"] == "active"
    assert account["secrets_set"] == ["api_key"]
    assert f"https://app.example/done?integrated_account_id={account['id']}" in html
    # The account works, and the link is used up.
    response = await env.harness.call(
        "GET", "/unified/crm/projects", query={"integrated_account_id": account["id"], "limit": "1"}, token=env.token
    )
    assert response.status == 200
    status, html, _ = await get(browser, link["url"])
    assert status == 410 and "This link was already used" in page_text(html)
    assert "error=link_used" in html


async def test_missing_field_is_named(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-missing", integrations=["wethod"])
    status, html, _ = await form_post(
        browser, env.harness.base_url + "/connect/wethod", {"link_token": _token(link), "api_token": ""}
    )
    assert status == 400
    assert "Fill in: API token, Company" in page_text(html)
    assert 'aria-invalid="true"' in html


async def test_context_defaults_from_the_link_are_not_asked(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-defaults", integrations=["wethod"], context={"company": "acme"})
    status, html, _ = await get(browser, link["url"])
    assert status == 200 and 'name="api_token"' in html and 'name="company"' not in html
    status, html, _ = await form_post(
        browser,
        env.harness.base_url + "/connect/wethod",
        {"link_token": _token(link), "api_token": env.paste["wethod"]["api_token"]},
    )
    assert status == 200, page_text(html)


async def test_expired_and_unknown_links(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-expired", redirect_uri="https://app.example/done")
    await env.expire(link["link_token"])
    status, html, _ = await get(browser, link["url"])
    assert status == 410
    assert "This link has expired" in page_text(html) and "ask for a new link" in page_text(html)
    assert "https://app.example/done?error=link_expired" in html
    # A form posted after expiry stores nothing either.
    status, html, _ = await form_post(
        browser, env.harness.base_url + "/connect/strawblond", {"link_token": link["link_token"], "api_key": "x"}
    )
    assert status == 410
    status, html, _ = await get(browser, env.harness.base_url + "/connect?link_token=lt_made_up")
    assert status == 404 and "This link is not valid" in page_text(html)
    status, html, _ = await get(browser, env.harness.base_url + "/connect")
    assert status == 400 and "missing its link token" in page_text(html)


async def test_provider_down_while_checking_a_key(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-down", integrations=["planhat"])
    before = len(await env.accounts())
    # Three 503s: the first read and both of its retries.
    await env.harness.control("planhat", "script", {"responses": [{"status": 503, "body": "down"}] * 3})
    status, html, _ = await form_post(
        browser,
        env.harness.base_url + "/connect/planhat",
        {"link_token": _token(link), "api_token": env.paste["planhat"]["api_token"]},
    )
    await env.harness.control("planhat", "script", {"responses": []})
    assert status == 502
    assert "Planhat could not be reached" in page_text(html) and "Try again in a few minutes" in page_text(html)
    assert len(await env.accounts()) == before


# --------------------------------------------------------------------------- OAuth
async def _to_consent(env: ConnectEnv, browser: Any, link: dict[str, Any], integration: str) -> tuple[str, dict[str, str]]:
    status, _, location = await form_post(
        browser, env.harness.base_url + f"/connect/{integration}/authorize", {"link_token": _token(link)}
    )
    assert status == 303 and location
    params = query_of(location)
    assert params["redirect_uri"] == env.harness.base_url + "/connect/oauth/callback"
    assert params["response_type"] == "code" and params["state"]
    status, html, _ = await get(browser, location)
    assert status == 200 and "Approve" in html and "Deny" in html
    return location, params


async def _decide(browser: Any, consent_url: str, params: dict[str, str], decision: str) -> str:
    target = consent_url.split("?", 1)[0]
    fields = {k: v for k, v in params.items() if k in ("client_id", "redirect_uri", "state", "scope")}
    status, _, location = await form_post(browser, target, {**fields, "decision": decision})
    assert status == 302 and location
    return location


@pytest.mark.parametrize("integration", ["teamleader", "capsule"])
async def test_oauth_approve_creates_a_working_account(env: ConnectEnv, browser: Any, integration: str) -> None:
    link = await env.link(tenant_id=f"t-oauth-{integration}", integrations=[integration], redirect_uri="https://app.example/done")
    consent, params = await _to_consent(env, browser, link, integration)
    if integration == "capsule":
        assert params["scope"] == "read write"
    callback = await _decide(browser, consent, params, "approve")
    assert callback.startswith(env.harness.base_url + "/connect/oauth/callback?")
    status, html, _ = await get(browser, callback)
    assert status == 200, page_text(html)
    account = next(a for a in await env.accounts() if a["tenant_id"] == f"t-oauth-{integration}")
    assert {"access_token", "refresh_token", "client_secret"} <= set(account["secrets_set"])
    assert account["context"]["client_id"] == f"{integration}-client"
    response = await env.harness.call(
        "GET", "/unified/crm/projects", query={"integrated_account_id": account["id"], "limit": "2"}, token=env.token
    )
    assert response.status == 200, response.text
    # Replaying the provider's answer is refused, and nothing more is created.
    status, html, _ = await get(browser, callback)
    assert status == 400 and "already used" in page_text(html)
    assert len([a for a in await env.accounts() if a["tenant_id"] == f"t-oauth-{integration}"]) == 1


async def test_oauth_deny(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-deny", integrations=["teamleader"], redirect_uri="https://app.example/done")
    consent, params = await _to_consent(env, browser, link, "teamleader")
    callback = await _decide(browser, consent, params, "deny")
    assert "error=access_denied" in callback
    status, html, _ = await get(browser, callback)
    words = page_text(html)
    assert "You did not allow access in Teamleader Focus" in words and "approve access" in words
    assert "https://app.example/done?error=access_denied" in html
    assert f"/connect?link_token={_token(link)}" in html  # "Try again"
    assert not [a for a in await env.accounts() if a["tenant_id"] == "t-deny"]
    # The link still works: the user may change their mind.
    status, html, _ = await get(browser, link["url"])
    assert status == 200


async def test_forged_and_missing_state(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-forged", integrations=["teamleader"])
    _, params = await _to_consent(env, browser, link, "teamleader")
    nonce = params["state"].split(".")[0]
    base = env.harness.base_url + "/connect/oauth/callback"
    status, html, _ = await get(browser, f"{base}?code=x&state={nonce}.{'0' * 32}")
    assert status == 400 and "was not issued here" in page_text(html)
    status, html, _ = await get(browser, f"{base}?code=x")
    assert status == 400 and "missing its state" in page_text(html)
    status, html, _ = await get(browser, f"{base}?code=x&state=abc.def")
    assert status == 400 and "does not belong to any sign-in" in page_text(html)


async def test_oauth_provider_down_at_code_exchange(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-exchange-down", integrations=["teamleader"], redirect_uri="https://app.example/done")
    consent, params = await _to_consent(env, browser, link, "teamleader")
    callback = await _decide(browser, consent, params, "approve")
    await env.harness.control(
        "teamleader", "script", {"responses": [{"status": 503, "body": "down", "match": {"path_contains": "access_token"}}]}
    )
    status, html, _ = await get(browser, callback)
    assert status == 502
    assert "Teamleader Focus could not be reached" in page_text(html)
    assert "error=provider_unavailable" in html
    assert not [a for a in await env.accounts() if a["tenant_id"] == "t-exchange-down"]


async def test_reconnect_needs_reauth_account_keeps_its_id(env: ConnectEnv, browser: Any) -> None:
    account_id = await needs_reauth_account(env, "teamleader", "t-reauth")
    link = await env.link(integrated_account_id=account_id)
    status, html, _ = await get(browser, link["url"])
    assert "Reconnect Teamleader Focus" in page_text(html)
    consent, params = await _to_consent(env, browser, link, "teamleader")
    status, html, _ = await get(browser, await _decide(browser, consent, params, "approve"))
    assert status == 200 and "renewed" in page_text(html)
    got = await env.harness.call("GET", f"/integrated-account/{account_id}", token=env.token)
    assert got.json()["status"] == "active" and got.json()["last_error"] is None
    works = await env.harness.call("GET", "/unified/crm/projects", query={"integrated_account_id": account_id}, token=env.token)
    assert works.status == 200, works.text
    assert len([a for a in await env.accounts() if a["tenant_id"] == "t-reauth"]) == 1


async def test_oauth_not_offered_without_an_app(env: ConnectEnv, browser: Any, _harness: Harness) -> None:
    # The default environment has no OAuth apps: Teamleader (OAuth only) is not offered there.
    response = await _harness.call("POST", "/link-token", json={"tenant_id": "x", "integrations": ["teamleader"]})
    link = response.json()
    status, html, _ = await get(browser, link["url"])
    assert status == 200 and "None of the CRMs this link offers can be connected" in page_text(html)
    status, html, _ = await form_post(
        browser, _harness.base_url + "/connect/teamleader/authorize", {"link_token": link["link_token"]}
    )
    assert status == 404 and "not offered here" in page_text(html)
    assert urlsplit(link["url"]).path == "/connect"


async def test_oauth_code_refused_by_the_provider(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-refused", integrations=["teamleader"])
    consent, params = await _to_consent(env, browser, link, "teamleader")
    callback = await _decide(browser, consent, params, "approve")
    await env.harness.control(
        "teamleader",
        "script",
        {"responses": [{"status": 400, "body": {"error": "invalid_grant"}, "match": {"path_contains": "access_token"}}]},
    )
    status, html, _ = await get(browser, callback)
    assert status == 400
    assert "Teamleader Focus refused to finish the sign-in" in page_text(html) and "HTTP 400" in page_text(html)
    assert "Try again" in page_text(html)
    assert not [a for a in await env.accounts() if a["tenant_id"] == "t-refused"]


async def test_oauth_state_expires(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-slow", integrations=["teamleader"])
    consent, params = await _to_consent(env, browser, link, "teamleader")
    callback = await _decide(browser, consent, params, "approve")
    store = await Store.open(env.harness.database_url, env.harness.data_dir)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE connect_states SET expires_at = '2000-01-01 00:00:00'"))
    finally:
        await store.close()
    status, html, _ = await get(browser, callback)
    assert status == 400 and "The sign-in took too long" in page_text(html)
    assert not [a for a in await env.accounts() if a["tenant_id"] == "t-slow"]


async def test_a_link_connects_once_even_from_two_windows(env: ConnectEnv) -> None:
    import asyncio

    link = await env.link(tenant_id="t-race", integrations=["strawblond"])
    form = {"link_token": _token(link), "api_key": env.paste["strawblond"]["api_key"]}
    async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
        results = await asyncio.gather(
            *(form_post(s, env.harness.base_url + "/connect/strawblond", form) for s in (one, two, one, two))
        )
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 410, 410, 410], statuses
    assert len([a for a in await env.accounts() if a["tenant_id"] == "t-race"]) == 1


def _api_key_providers() -> list[str]:
    from unicrm.providers import all_providers

    return [name for name, p in all_providers().items() if p.form_fields]


@pytest.mark.parametrize("integration", _api_key_providers())
async def test_every_api_key_emulator_refuses_a_wrong_key(env: ConnectEnv, browser: Any, integration: str) -> None:
    """The emulators reject wrong credentials with the provider's 401, which the page puts in plain words."""
    from unicrm.providers import all_providers

    provider = all_providers()[integration]
    link = await env.link(tenant_id=f"t-wrong-{integration}", integrations=[integration])
    values = dict(env.paste[integration])
    for field_ in provider.form_fields:
        if field_.secret:
            values[field_.name] = "wrong-" + str(values.get(field_.name, "x"))
    status, html, _ = await form_post(
        browser, env.harness.base_url + f"/connect/{integration}", {"link_token": _token(link), **values}
    )
    assert status == 400, page_text(html)
    assert f"{provider.label} did not accept these credentials" in page_text(html)
    assert not [a for a in await env.accounts() if a["tenant_id"] == f"t-wrong-{integration}"]


async def test_a_typed_value_pointing_elsewhere_is_refused_before_any_call(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-pod", integrations=["insightly"], context={})
    before = len(await env.harness.provider_requests("insightly"))
    form = {"link_token": _token(link), "api_key": env.paste["insightly"]["api_key"], "pod": "attacker.example/x"}
    status, html, _ = await form_post(browser, env.harness.base_url + "/connect/insightly", form)
    assert status == 400 and "These details do not fit" in page_text(html) and "pod" in page_text(html)
    assert len(await env.harness.provider_requests("insightly")) == before
    assert not [a for a in await env.accounts() if a["tenant_id"] == "t-pod"]


async def test_oauth_token_that_does_not_work_is_not_saved(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-bad-token", integrations=["teamleader"])
    consent, params = await _to_consent(env, browser, link, "teamleader")
    callback = await _decide(browser, consent, params, "approve")
    # The provider issues tokens, then refuses the first read (a revoked app, a missing scope).
    await env.harness.control(
        "teamleader",
        "script",
        {"responses": [{"status": 401, "body": {"errors": [{"title": "nope"}]}, "match": {"path_contains": "projects.list"}}]},
    )
    status, html, _ = await get(browser, callback)
    assert status == 400
    assert "gave a token that does not work" in page_text(html) and "Nothing was connected" in page_text(html)
    assert not [a for a in await env.accounts() if a["tenant_id"] == "t-bad-token"]


async def test_a_link_that_gives_every_value_only_asks_to_confirm(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(
        tenant_id="t-given", integrations=["strawblond"], context={"api_key": env.paste["strawblond"]["api_key"]}
    )
    status, html, _ = await get(browser, link["url"])
    assert status == 200 and "Connect StrawBlond</button>" in html and 'name="api_key"' not in html
    status, html, _ = await form_post(browser, env.harness.base_url + "/connect/strawblond", {"link_token": _token(link)})
    assert status == 200 and "StrawBlond is connected" in page_text(html)


async def test_link_scopes_replace_the_declared_ones(env: ConnectEnv, browser: Any) -> None:
    link = await env.link(tenant_id="t-scopes", integrations=["capsule"], scopes=["read"])
    _, params = await _to_consent(env, browser, link, "capsule")
    assert params["scope"] == "read"
