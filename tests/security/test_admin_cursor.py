"""The admin list's cursor is signed like the unified ones: foreign, tampered or reused with other filters is a 400."""

from __future__ import annotations

from tests.harness import Harness


async def test_admin_cursor_is_signed(harness: Harness) -> None:
    first = await harness.call("GET", "/integrated-account", query="limit=1")
    assert first.status == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor
    following = await harness.call("GET", "/integrated-account", query={"limit": "1", "next_cursor": cursor})
    assert following.status == 200
    assert following.json()["result"][0]["id"] != first.json()["result"][0]["id"]
    # Another environment's token cannot continue this environment's listing.
    foreign = await harness.call(
        "GET", "/integrated-account", query={"limit": "1", "next_cursor": cursor}, token=harness.other_token
    )
    assert foreign.status == 400 and "environment" in foreign.json()["message"]
    body, _, tag = cursor.partition(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + tag
    for bad in (tampered, body, "eyJpZCI6IngifQ", cursor + "x"):
        resp = await harness.call("GET", "/integrated-account", query={"limit": "1", "next_cursor": bad})
        assert resp.status == 400, (bad, resp.text)
    other_filters = await harness.call("GET", "/integrated-account", query={"limit": "2", "next_cursor": cursor})
    assert other_filters.status == 400
