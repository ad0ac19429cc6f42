"""The hot GET routes answer exactly as the Starlette routes they stand in for.

`UnifiedRouter` serves `GET /unified/crm/{resource}` and `GET /unified/crm/{resource}/{id}`
itself; every other path, method and shape goes through Starlette. These tests run against
the real server and compare the two: the same record through the hot GET and through the
Starlette-routed meta/other paths, and the edge shapes that must fall through unchanged.
"""

from __future__ import annotations

import orjson

from tests.harness import Harness

BASE = "/unified/crm/projects"


async def test_get_and_list_answer_json_with_rate_limit_headers(harness: Harness) -> None:
    await harness.control("capsule", "faults", {"rate_limit": 100, "rate_window_s": 60})
    try:
        listed = await harness.unified("GET", "capsule", query="limit=2")
        assert listed.status == 200
        assert listed.headers["Content-Type"] == "application/json; charset=utf-8"
        assert int(listed.headers["Content-Length"]) == len(listed.body)
        assert "ratelimit-remaining" in listed.headers
        record = listed.json()["result"][0]
        got = await harness.unified("GET", "capsule", f"/{record['id']}")
        assert got.status == 200 and got.json()["id"] == record["id"]
        assert "ratelimit-limit" in got.headers
    finally:
        await harness.control("capsule", "faults", {"rate_limit": None})


async def test_raw_get_keeps_the_providers_bytes_and_type(harness: Harness) -> None:
    record = (await harness.unified("GET", "capsule", query="limit=1")).json()["result"][0]
    raw = await harness.unified("GET", "capsule", f"/{record['id']}", query="truto_response_format=raw")
    assert raw.status == 200
    assert raw.headers["Content-Type"].startswith("application/json")
    assert orjson.loads(raw.body) == {"kase": record["remote_data"]}


async def test_errors_on_the_hot_path_are_the_unified_shape(harness: Harness) -> None:
    unknown = await harness.unified("GET", "capsule", query="", token=None)
    assert unknown.status == 401 and set(unknown.json()) >= {"statusCode", "error", "message"}
    no_resource = await harness.call("GET", "/unified/crm/nothing", query=f"integrated_account_id={harness.accounts['capsule']}")
    assert no_resource.status == 404 and "unified resource" in no_resource.json()["message"]
    too_long = await harness.unified("GET", "capsule", "/" + "9" * 300)
    assert too_long.status == 400 and "record id" in too_long.json()["message"]
    bad_account = await harness.call("GET", BASE, query="integrated_account_id=not-a-uuid")
    assert bad_account.status == 400 and "UUID" in bad_account.json()["message"]
    upper = harness.accounts["capsule"].upper()
    assert (await harness.call("GET", BASE, query=f"integrated_account_id={upper}&limit=1")).status == 200


async def test_other_shapes_fall_through_to_starlette(harness: Harness) -> None:
    meta = await harness.unified("GET", "capsule", "/meta/list")
    deeper = await harness.call("GET", BASE + "/capsule/meta/list")
    assert meta.status == deeper.status == 200
    assert meta.json() == deeper.json()
    post_list = await harness.unified("PUT", "capsule")
    assert post_list.status == 405 and orjson.loads(post_list.body)["statusCode"] == 405
