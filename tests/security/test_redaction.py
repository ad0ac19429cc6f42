"""Secrets never leave: every operation and format against emulators that echo the request back.

The emulators' `echo_status` fault answers every request with the provider's error body whose
message repeats the request's headers (Authorization included), query and body, and copies
the headers into `X-Echo-*` response headers. Whatever unicrm answers, stores (the account's
`last_error`, idempotency replays) or logs must not contain any form of a credential.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.test_contract import PROVIDERS, create_body, first_id
from tests.harness import Harness, Response
from unicrm.providers import all_providers
from unicrm.store.database import Store

ECHO_STATUSES = (400, 401, 404, 422, 500)
READ_FORMATS = ("unified", "normalized", "raw", "debug")


def secret_forms(provider: str, context: dict[str, Any]) -> set[str]:
    """Every credential of a context, and the Basic token built from it."""
    decl = all_providers()[provider]
    values = {str(context[c.name]) for c in decl.context if c.secret and context.get(c.name)}
    auth = decl.auth
    if auth.scheme == "basic":
        user = str(context.get(auth.username_key or "username", ""))
        password = str(context.get(auth.password_key, "")) if auth.password_key else ""
        values.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    return {form for v in values for form in (v, quote(v, safe=""))}


def occurrences(forms: set[str], *texts: str) -> int:
    return sum(text.count(form) for text in texts for form in forms)


def response_text(resp: Response) -> str:
    return resp.text + "\n" + "\n".join(f"{k}: {v}" for k, v in resp.headers.items())


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def captured_logs() -> Iterator[LogCapture]:
    handler = LogCapture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


async def reconnect(h: Harness, provider: str) -> None:
    """Undo a needs_reauth caused by an echoed 401 (the context is unchanged)."""
    resp = await h.call("PATCH", f"/integrated-account/{h.accounts[provider]}", json={"context": {}})
    assert resp.status == 200, resp.text


def requests_for(record_id: str, body: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """(method, path, query, body) of every operation in every format, dry runs included."""
    out: list[tuple[str, str, str, Any]] = []
    for fmt in (*READ_FORMATS, "stream"):
        out.append(("GET", "", f"truto_response_format={fmt}&limit=2", None))
    for fmt in READ_FORMATS:
        out.append(("GET", f"/{record_id}", f"truto_response_format={fmt}", None))
    for fmt in ("unified", "raw", "debug"):
        out.append(("POST", "", f"truto_response_format={fmt}", body))
        out.append(("PATCH", f"/{record_id}", f"truto_response_format={fmt}", {"name": "Echo me"}))
        out.append(("DELETE", f"/{record_id}", f"truto_response_format={fmt}", None))
    for method, path, payload in (
        ("GET", "", None),
        ("GET", f"/{record_id}", None),
        ("POST", "", body),
        ("PATCH", f"/{record_id}", {"name": "x"}),
        ("DELETE", f"/{record_id}", None),
    ):
        out.append((method, path, "truto_skip_api_call=true", payload))
    return out


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_no_credential_leaves_with_an_echoing_provider(harness: Harness, provider: str, captured_logs: LogCapture) -> None:
    forms = secret_forms(provider, harness.emulators[provider].context)
    assert forms
    record_id = await first_id(harness, provider)
    body = await create_body(harness, provider, "Echo")
    seen = 0
    answers = 0
    redacted = 0
    try:
        for status in ECHO_STATUSES:
            for method, path, query, payload in requests_for(record_id, body):
                await harness.control(provider, "faults", {"echo_status": status})
                headers = {"Idempotency-Key": f"echo-{provider}-{status}-{method}-{query}"} if method == "POST" else None
                resp = await harness.unified(method, provider, path, query=query, json=payload, headers=headers)
                answers += 1
                assert resp.status < 500 or resp.status in (502, 504), resp.text
                seen += occurrences(forms, response_text(resp))
                redacted += resp.text.count("[redacted]")
                if status == 401:
                    await harness.control(provider, "faults", {"echo_status": None})
                    account = await harness.call("GET", f"/integrated-account/{harness.accounts[provider]}")
                    seen += occurrences(forms, account.text)
                    await reconnect(harness, provider)
                if headers:
                    # The idempotency store replays what it kept: it must be redacted too.
                    again = await harness.unified(method, provider, path, query=query, json=payload, headers=headers)
                    seen += occurrences(forms, response_text(again))
    finally:
        await harness.control(provider, "faults", {"echo_status": None})
        await reconnect(harness, provider)
    # The echo really carried credentials to unicrm, which replaced them.
    assert answers >= 5 * len(ECHO_STATUSES)
    assert redacted >= answers // 2, (redacted, answers)
    seen += occurrences(forms, *captured_logs.lines)
    assert seen == 0, f"{seen} credential occurrences in answers or logs"


def database_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.glob("e2e.db*"))


async def test_no_credential_in_the_database(harness: Harness) -> None:
    """After the echo runs: neither the accounts' last_error nor idempotency replays hold a credential."""
    for provider in PROVIDERS:
        await harness.control(provider, "faults", {"echo_status": 401})
        try:
            await harness.unified("GET", provider, query="limit=1")
        finally:
            await harness.control(provider, "faults", {"echo_status": None})
    raw = database_bytes(harness.data_dir)
    try:
        for provider in PROVIDERS:
            forms = secret_forms(provider, harness.emulators[provider].context)
            assert occurrences(forms, raw.decode("latin-1")) == 0, provider
    finally:
        for provider in PROVIDERS:
            await reconnect(harness, provider)


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if all_providers()[p].auth.scheme == "oauth2"])
async def test_tokens_obtained_by_a_refresh_are_redacted(
    harness: Harness, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNICRM_SECRET_KEY", raising=False)  # the harness server's key is its data directory's
    account_id = harness.accounts[provider]
    # A refresh token of our own (earlier tests may have rotated the seeded one away).
    refresh = f"{provider}-refresh-for-redaction-test"
    harness.emulators[provider].emulator.refresh_tokens.add(refresh)
    resp = await harness.call(
        "PATCH", f"/integrated-account/{account_id}", json={"context": {"expires_at": time.time() - 60, "refresh_token": refresh}}
    )
    assert resp.status == 200, resp.text
    list_path = all_providers()[provider].endpoints["list"].path
    await harness.control(
        provider, "script", {"responses": [{"kind": "echo", "status": 400, "match": {"path_contains": list_path}}]}
    )
    try:
        resp = await harness.unified("GET", provider, query="limit=1&truto_response_format=debug")
        assert resp.status == 400, resp.text
    finally:
        await harness.control(provider, "script", {"responses": []})
    store = await Store.open(harness.database_url, harness.data_dir)
    try:
        account = await store.get_account(account_id)
    finally:
        await store.close()
    assert account is not None
    fresh = account.context["access_token"]
    assert fresh != harness.emulators[provider].context["access_token"], "no refresh happened"
    assert fresh not in resp.text and "[redacted]" in resp.text
    # The refreshed context stays: it is valid, and the emulator may have retired the old tokens.
