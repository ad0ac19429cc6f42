"""The hosted connect page in a real headless Chromium (Debian's, driven by Playwright).

Walks what a customer does: an API-key CRM with a wrong key then the right one (by keyboard,
on a phone-sized screen), OAuth through approve and through deny, a reconnect of a
`needs_reauth` account, an expired link, the popup mode; and checks that the webhook receiver
got the signed events. `UNICRM_SCREENSHOTS=1` writes the screenshots to docs/connect/ (the
README shows them); otherwise they go to the test's temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.connect_support import ConnectEnv, WebhookReceiver, make_connect_env, needs_reauth_account
from tests.harness import Harness
from unicrm.api.webhook_worker import verify_signature

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "connect"


@pytest.fixture(scope="module")
async def env(_harness: Harness) -> AsyncIterator[ConnectEnv]:
    yield await make_connect_env(_harness, "connect-browser")
    if _harness.session is not None:
        await _harness.session.close()
        _harness.session = None


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = await WebhookReceiver().start()
    yield r
    await r.stop()


@pytest.fixture(scope="module")
async def hook(env: ConnectEnv, receiver: WebhookReceiver) -> dict[str, Any]:
    response = await env.harness.call("POST", "/webhook", json={"target_url": receiver.url}, token=env.token)
    assert response.status == 201
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    p = await context.new_page()
    yield p
    await context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("UNICRM_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path_factory.mktemp("connect-shots")


async def _fits_the_screen(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"


async def test_api_key_wrong_then_right_by_keyboard(
    env: ConnectEnv, receiver: WebhookReceiver, hook: dict[str, Any], page: Page, shots: Path
) -> None:
    link = await env.link(tenant_id="browser-insightly", redirect_uri=receiver.origin + "/back")
    await page.goto(link["url"])
    await expect(page.get_by_role("heading", name="Connect your CRM")).to_be_visible()
    await _fits_the_screen(page)
    await page.screenshot(path=str(shots / "1-choose.png"), full_page=True)
    # Keyboard only: Tab to Insightly, Enter, type the key, Enter.
    insightly = page.get_by_role("link", name="Insightly")
    for _ in range(20):
        await page.keyboard.press("Tab")
        if await insightly.evaluate("e => e === document.activeElement"):
            break
    else:
        raise AssertionError("Insightly cannot be reached with Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Connect Insightly")).to_be_visible()
    key = page.get_by_label("API key")
    assert await key.get_attribute("type") == "password"
    await expect(page.get_by_text("User Settings → API → API Key")).to_be_visible()
    await key.focus()
    await page.keyboard.type("this-is-not-the-key")
    await page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Insightly did not accept these credentials")
    await expect(alert).to_contain_text("Nothing was saved")
    await _fits_the_screen(page)
    await page.screenshot(path=str(shots / "2-wrong-key.png"), full_page=True)
    assert not [a for a in await env.accounts() if a["tenant_id"] == "browser-insightly"]
    await page.get_by_label("API key").fill(env.paste["insightly"]["api_key"])
    await page.get_by_role("button", name="Connect Insightly").click()
    await page.wait_for_url(receiver.origin + "/back?**")
    await expect(page.get_by_role("heading", name="Back in the app")).to_be_visible()
    (account,) = [a for a in await env.accounts() if a["tenant_id"] == "browser-insightly"]
    assert f"integrated_account_id={account['id']}" in page.url and "integration=insightly" in page.url


async def test_done_page_without_javascript(env: ConnectEnv, browser: Browser, shots: Path) -> None:
    context = await browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = await context.new_page()
    try:
        link = await env.link(tenant_id="browser-nojs", integrations=["planhat"])
        await page.goto(link["url"])
        await page.get_by_label("API access token").fill(env.paste["planhat"]["api_token"])
        await page.get_by_role("button", name="Connect Planhat").click()
        await expect(page.get_by_role("heading", name="Planhat is connected")).to_be_visible()
        await expect(page.get_by_text("You can close this window.")).to_be_visible()
        await page.screenshot(path=str(shots / "3-connected.png"), full_page=True)
    finally:
        await context.close()


async def test_oauth_approve(env: ConnectEnv, receiver: WebhookReceiver, page: Page, shots: Path) -> None:
    link = await env.link(tenant_id="browser-capsule", redirect_uri=receiver.origin + "/back")
    await page.goto(link["url"])
    await page.get_by_role("link", name="Capsule CRM").click()
    await expect(page.get_by_role("button", name="Sign in with Capsule CRM")).to_be_visible()
    await expect(page.get_by_label("Personal access token")).to_be_visible()  # the other way in
    await page.screenshot(path=str(shots / "4-oauth-or-key.png"), full_page=True)
    await page.get_by_role("button", name="Sign in with Capsule CRM").click()
    await expect(page.get_by_role("button", name="Approve")).to_be_visible()
    await page.screenshot(path=str(shots / "5-consent.png"), full_page=True)
    await page.get_by_role("button", name="Approve").click()
    await page.wait_for_url(receiver.origin + "/back?**")
    (account,) = [a for a in await env.accounts() if a["tenant_id"] == "browser-capsule"]
    assert f"integrated_account_id={account['id']}" in page.url
    assert "refresh_token" in account["secrets_set"]


async def test_oauth_deny(env: ConnectEnv, receiver: WebhookReceiver, page: Page, shots: Path) -> None:
    link = await env.link(tenant_id="browser-deny", integrations=["teamleader"], redirect_uri=receiver.origin + "/back")
    await page.goto(link["url"])
    await page.get_by_role("button", name="Sign in with Teamleader Focus").click()
    await page.get_by_role("button", name="Deny").click()
    await expect(page.get_by_role("heading", name="You did not allow access in Teamleader Focus")).to_be_visible()
    await expect(page.get_by_text("start again and approve access")).to_be_visible()
    await _fits_the_screen(page)
    await page.screenshot(path=str(shots / "6-denied.png"), full_page=True)
    assert "/connect?link_token=" in str(await page.get_by_role("link", name="Try again").get_attribute("href"))
    await page.get_by_role("link", name="Return to the application").click()
    await page.wait_for_url(receiver.origin + "/back?**")
    assert "error=access_denied" in page.url
    assert not [a for a in await env.accounts() if a["tenant_id"] == "browser-deny"]


async def test_reconnect_needs_reauth(env: ConnectEnv, page: Page, shots: Path) -> None:
    account_id = await needs_reauth_account(env, "teamleader", "browser-reauth")
    link = await env.link(integrated_account_id=account_id)
    await page.goto(link["url"])
    await expect(page.get_by_role("heading", name="Reconnect Teamleader Focus")).to_be_visible()
    await page.screenshot(path=str(shots / "7-reconnect.png"), full_page=True)
    await page.get_by_role("button", name="Sign in with Teamleader Focus").click()
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_text("The connection was renewed.")).to_be_visible()
    got = (await env.harness.call("GET", f"/integrated-account/{account_id}", token=env.token)).json()
    assert got["status"] == "active" and got["id"] == account_id
    works = await env.harness.call("GET", "/unified/crm/projects", query={"integrated_account_id": account_id}, token=env.token)
    assert works.status == 200


async def test_expired_link(env: ConnectEnv, receiver: WebhookReceiver, page: Page, shots: Path) -> None:
    link = await env.link(tenant_id="browser-expired", redirect_uri=receiver.origin + "/back")
    await env.expire(link["link_token"])
    response = await page.goto(link["url"])
    assert response is not None and response.status == 410
    await expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    await page.screenshot(path=str(shots / "8-expired.png"), full_page=True)
    await page.get_by_role("link", name="Return to the application").click()
    await page.wait_for_url(receiver.origin + "/back?**")
    assert "error=link_expired" in page.url


async def test_popup_tells_the_opener(env: ConnectEnv, receiver: WebhookReceiver, browser: Browser) -> None:
    context = await browser.new_context()
    try:
        opener = await context.new_page()
        link = await env.link(tenant_id="browser-popup", integrations=["strawblond"], redirect_uri=receiver.origin + "/back")
        from urllib.parse import quote

        await opener.goto(receiver.origin + "/opener?link=" + quote(link["url"], safe=""))
        async with opener.expect_popup() as popup_info:
            await opener.get_by_role("button", name="Connect your CRM").click()
        popup = await popup_info.value
        await popup.get_by_label("API key").fill(env.paste["strawblond"]["api_key"])
        await popup.get_by_role("button", name="Connect StrawBlond").click()
        await expect(opener).to_have_title(f"connected:{(await _account(env, 'browser-popup'))['id']}")
    finally:
        await context.close()


async def _account(env: ConnectEnv, tenant: str) -> dict[str, Any]:
    for _ in range(50):
        found = [a for a in await env.accounts() if a["tenant_id"] == tenant]
        if found:
            return found[0]
    raise AssertionError(f"no account for {tenant}")


async def test_webhook_receiver_got_signed_events(env: ConnectEnv, receiver: WebhookReceiver, hook: dict[str, Any]) -> None:
    # Module order: every flow above ran. Created: insightly, planhat, capsule, popup, the reauth
    # account (POST); reconnected: the reauth account; needs_reauth: the reauth account.
    received = await receiver.wait_for(7)
    events = [(orjson.loads(r.body), r) for r in received]
    by_type: dict[str, list[str]] = {}
    for event, raw in events:
        assert verify_signature(hook["secret"], raw.body, raw.headers["X-Unicrm-Signature"])
        by_type.setdefault(event["event"], []).append(event["payload"]["tenant_id"])
    assert {"browser-insightly", "browser-capsule", "browser-nojs", "browser-reauth"} <= set(
        by_type["integrated_account:created"]
    )
    assert by_type["integrated_account:authentication_error"] == ["browser-reauth"]
    assert by_type["integrated_account:active"] == ["browser-reauth"]
    assert "browser-deny" not in str(by_type) and "browser-expired" not in str(by_type)
