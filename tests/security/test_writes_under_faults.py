"""Writes under faults (docs/writes-and-faults.md): released keys, kept unknown outcomes, no duplicates.

- a definite provider failure (a complete answer) releases the Idempotency-Key: the same key
  runs again and writes once;
- an unknown outcome (connection lost after sending, timeout) keeps the key: 502/504 with a
  `write_outcome_unknown` insight, and a retry with that key replays it without a provider call;
- a failure after the provider wrote (a read-back) keeps the key with `write_happened`;
- a 429 with a short Retry-After is waited out once by unicrm, a longer one is returned;
- where the provider lets a record carry a reference of ours (Planhat's externalId), a lost
  answer is settled by looking the record up.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.test_contract import PROVIDERS, create_body, endpoint_match
from tests.harness import Harness
from unicrm.providers import all_providers


async def creates_sent(h: Harness, provider: str, since: int) -> int:
    match = endpoint_match(provider, "create")
    return sum(
        1
        for r in (await h.provider_requests(provider))[since:]
        if r["method"] == match["method"] and r["path"].endswith(match["path_contains"].rstrip("/"))
    )


async def named(h: Harness, provider: str, name: str) -> int:
    """How many projects carry this name (every page)."""
    count, cursor = 0, None
    for _ in range(100):
        query = "limit=100&truto_ignore_remote_data=true" + (f"&next_cursor={cursor}" if cursor else "")
        page = (await h.unified("GET", provider, query=query)).json()
        count += sum(1 for r in page["result"] if r.get("name") == name)
        cursor = page["next_cursor"]
        if not cursor:
            return count
    raise AssertionError("pagination did not end")


async def script(h: Harness, provider: str, items: list[dict[str, Any]]) -> None:
    await h.control(provider, "script", {"responses": items})


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_definite_failure_releases_the_key(harness: Harness, provider: str) -> None:
    name = f"Definite {uuid.uuid4().hex[:8]}"
    body = await create_body(harness, provider, name)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    for status in (500, 503, 400):
        await script(
            harness, provider, [{"status": status, "body": '{"message": "no"}', "match": endpoint_match(provider, "create")}]
        )
        failed = await harness.unified("POST", provider, json=body, headers=key)
        assert failed.status in (400, 502), failed.text
        assert "truto_error_insight" not in failed.json() or "write_outcome_unknown" not in failed.json()["truto_error_insight"]
    ok = await harness.unified("POST", provider, json=body, headers=key)
    assert ok.status == 201, ok.text
    assert ok.headers.get("idempotent-replayed") is None
    replay = await harness.unified("POST", provider, json=body, headers=key)
    assert replay.status == 201 and replay.headers.get("idempotent-replayed") == "true"
    assert await named(harness, provider, name) == 1


@pytest.mark.parametrize("kind", ["drop", "lose_answer", "hang"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unknown_outcome_keeps_the_key(harness: Harness, provider: str, kind: str) -> None:
    name = f"Unknown {kind} {uuid.uuid4().hex[:8]}"
    body = await create_body(harness, provider, name)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    await script(harness, provider, [{"kind": kind, "seconds": 3, "match": endpoint_match(provider, "create")}])
    before = len(await harness.provider_requests(provider))
    first = await harness.unified("POST", provider, json=body, headers=key)
    reference = all_providers()[provider].external_reference
    if kind == "lose_answer" and reference is not None:
        # The provider lets the record carry our reference: the lost answer is settled by a lookup.
        assert first.status == 201, first.text
        assert str(first.json()["remote_data"][reference.write_path]).startswith("unicrm-")
        assert await creates_sent(harness, provider, before) == 1
        assert await named(harness, provider, name) == 1
        return
    assert first.status == (504 if kind == "hang" else 502), first.text
    insight = first.json()["truto_error_insight"]["write_outcome_unknown"]["description"]
    assert "may have been created" in insight and "Idempotency-Key" in insight
    assert await creates_sent(harness, provider, before) == 1
    again = await harness.unified("POST", provider, json=body, headers=key)
    assert again.status == first.status and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert await creates_sent(harness, provider, before) == 1, "the replay reached the provider"
    # Whatever happened upstream, it happened at most once (a hung request may still complete).
    expected = {"drop": {0}, "lose_answer": {1}, "hang": {0, 1}}[kind]
    assert await named(harness, provider, name) in expected


@pytest.mark.parametrize(
    "provider", [p for p in PROVIDERS if all_providers()[p].endpoints["create"].returns != "record"] or ["none"]
)
async def test_a_failure_after_the_write_says_it_was_written(harness: Harness, provider: str) -> None:
    if provider == "none":
        pytest.skip("every provider answers a create with the record")
    name = f"Written {uuid.uuid4().hex[:8]}"
    body = await create_body(harness, provider, name)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    get = endpoint_match(provider, "get")
    await script(harness, provider, [{"status": 500, "body": "{}", "match": get}] * 3)
    try:
        first = await harness.unified("POST", provider, json=body, headers=key)
    finally:
        await script(harness, provider, [])
    assert first.status == 502, first.text
    happened = first.json()["truto_error_insight"]["write_happened"]
    assert happened["id"] and "Do not send it again" in happened["description"]
    again = await harness.unified("POST", provider, json=body, headers=key)
    assert again.headers.get("idempotent-replayed") == "true"
    assert await named(harness, provider, name) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_short_retry_after_is_waited_out_once(harness: Harness, provider: str) -> None:
    name = f"Rate {uuid.uuid4().hex[:8]}"
    body = await create_body(harness, provider, name)
    match = endpoint_match(provider, "create")
    header = all_providers()[provider].rate_limit.retry_after or "Retry-After"
    await script(harness, provider, [{"status": 429, "body": "{}", "headers": {header: "1"}, "match": match}])
    before = len(await harness.provider_requests(provider))
    ok = await harness.unified("POST", provider, json=body)
    assert ok.status == 201, ok.text
    assert await creates_sent(harness, provider, before) == 2
    # A long Retry-After comes back to the client as a 429; nothing was written.
    await script(harness, provider, [{"status": 429, "body": "{}", "headers": {header: "60"}, "match": match}])
    limited = await harness.unified("POST", provider, json={**body, "name": name + " late"})
    assert limited.status == 429, limited.text
    assert await named(harness, provider, name) == 1
    assert await named(harness, provider, name + " late") == 0


async def test_a_reference_of_the_client_is_kept_and_not_trusted_to_settle(harness: Harness) -> None:
    provider = "planhat"
    name = f"Own ref {uuid.uuid4().hex[:8]}"
    body = {**(await create_body(harness, provider, name)), "remote_data": {"externalId": f"mine-{uuid.uuid4().hex[:6]}"}}
    await script(harness, provider, [{"kind": "lose_answer", "match": endpoint_match(provider, "create")}])
    first = await harness.unified("POST", provider, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert first.status == 502 and "write_outcome_unknown" in first.json()["truto_error_insight"], first.text
    assert await named(harness, provider, name) == 1
    found = await harness.unified("GET", provider, f"/extid-{body['remote_data']['externalId']}")
    assert found.status == 200 and found.json()["name"] == name
