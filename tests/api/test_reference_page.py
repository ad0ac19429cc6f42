"""The reference page in a real headless Chromium: Swagger UI from local files, and the no-JavaScript fallback.

Set UNICRM_SCREENSHOT_DIR (e.g. to docs/) to keep the screenshots: docs/reference-page.png is made so.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from tests.harness import Harness

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is installed by scripts/ensure-chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def _operations(document: dict[str, Any]) -> int:
    return sum(len(ops) for ops in document["paths"].values())


async def _screenshot(page: Any, name: str) -> None:
    target = os.environ.get("UNICRM_SCREENSHOT_DIR")
    if target:
        await page.screenshot(path=str(Path(target) / name), full_page=False)


async def test_swagger_ui_renders_the_document_from_local_files(harness: Harness, browser: Browser) -> None:
    document = (await harness.call("GET", "/openapi.json", token=None)).json()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    origins: set[str] = set()
    page.on("request", lambda request: origins.add("/".join(request.url.split("/", 3)[:3])))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(harness.base_url + "/docs")
    await page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    assert await page.locator(".swagger-ui .opblock").count() == _operations(document)
    assert await page.locator(".swagger-ui .info .title").inner_text() != ""
    # Open "List projects": its parameters and the response schemas are shown.
    await page.locator("#operations-Projects-listProjects").click()
    await page.wait_for_selector("#operations-Projects-listProjects .parameters", timeout=10_000)
    text = await page.locator("#operations-Projects-listProjects").inner_text()
    for expected in ("integrated_account_id", "truto_response_format", "next_cursor", "application/x-ndjson"):
        assert expected in text
    assert errors == []
    assert origins == {harness.base_url}, "everything came from unicrm itself (no CDN)"
    await page.evaluate("window.scrollTo(0, 0)")
    await _screenshot(page, "reference-page.png")
    await context.close()


async def test_without_javascript_the_reference_is_plain_html(harness: Harness, browser: Browser) -> None:
    context = await browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    for path in ("/docs", "/docs/plain"):
        await page.goto(harness.base_url + path)
        body = await page.locator("body").inner_text()
        for expected in (
            "GET /unified/crm/projects",
            "integrated_account_id",
            "Idempotency-Key",
            "Request body (application/json)",
            "truto_error_insight",
            "Schemas",
            '"name": "Website redesign"',
        ):
            assert expected in body, (path, expected)
        assert await page.locator("article.operation").count() >= 20
    await _screenshot(page, "reference-page-plain.png")
    await context.close()
