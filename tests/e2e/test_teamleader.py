"""What is specific to Teamleader Focus, end to end over HTTP (server + Teamleader emulator).

The generic contract (every page, formats, bad input, faults) is in test_contract.py; this file
checks the projects-v2 RPC surface as unicrm drives it: create as one `projects.create` read back
with `projects.info`; owners, customers and deals changed only through their add/remove actions
(add before remove); status through `projects.close` (with the closing strategy per unified
status) and `projects.reopen`, `deferred` refused; money written into the billing method's field
(`fixed_price`, `external_budget`, a 400 for non-billable); delete with its default and
overridden `delete_strategy`; `projects.list` page-number paging sorted by `project_key`
ascending and the refused `updated_at`/`created_at` filters; and OAuth2: one refresh after an
expired access token, then a refused refresh that leaves the account needing re-authorisation.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.harness import Harness
from unicrm.emulators.teamleader import CF_DEFINITION, CF_REGION

P = "teamleader"
API = "/projects-v2/projects"
#: reads unicrm makes around a write (lookups, read-back, the hooks' "before" read)
READS = {f"{API}.info", f"{API}.list", "/users.list", "/companies.list", "/contacts.list", "/deals.list"}


async def new_requests(h: Harness, before: int) -> list[dict[str, Any]]:
    return (await h.provider_requests(P))[before:]


def writes(requests: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The calls that change something, as (action, body), in order."""
    return [(r["path"].removeprefix(API + "."), r["json"]) for r in requests if r["path"] not in READS]


def emulator(h: Harness) -> Any:
    return h.emulators[P].emulator


async def create(h: Harness, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Teamleader e2e {uuid.uuid4().hex[:8]}", **fields}
    resp = await h.unified("POST", P, json=body)
    assert resp.status == 201, resp.text
    return resp.json()


async def test_create_is_one_call_read_back_with_info(harness: Harness) -> None:
    emu = emulator(harness)
    owner = list(emu.users)[1]
    company = next(iter(emu.companies))
    c1, c2 = list(emu.contacts)[:2]
    d1, d2 = list(emu.deals)[:2]
    before = len(await harness.provider_requests(P))
    project = await create(
        harness,
        name="Website relaunch",
        owner={"id": owner},
        account={"id": company},
        contact=[{"id": c1}, {"id": c2}],
        opportunity=[{"id": d1}, {"id": d2}],
        amount=18500,
    )
    calls = [r for r in await new_requests(harness, before) if r["path"].startswith(API)]
    assert [r["path"] for r in calls] == [f"{API}.create", f"{API}.info"]
    assert all(r["method"] == "POST" for r in calls)
    sent = calls[0]["json"]
    assert sent == {
        "title": "Website relaunch",
        "owner_ids": [owner],
        # account and contact both write `customers`: one list holds both kinds
        "customers": [{"type": "company", "id": company}, {"type": "contact", "id": c1}, {"type": "contact", "id": c2}],
        "deal_ids": [d1, d2],
        "fixed_price": {"amount": 18500, "currency": "EUR"},  # EUR when no currency is given
        "billing_method": "fixed_price",
    }
    assert calls[1]["json"] == {"id": project["id"]}  # the 201 carries only {type, id}: read back

    # The unified answer is the read-back record, not the request echoed.
    user = emu.users[owner]
    assert project["name"] == "Website relaunch" and project["status"] == "open"
    assert project["owner"] == {"id": owner, "name": f"{user['first_name']} {user['last_name']}"}
    # Names come from companies.list, contacts.list and deals.list (cached per account).
    assert project["account"] == {"id": company, "name": emu.companies[company]["name"]}
    assert project["contact"] == [
        {"id": c, "name": f"{emu.contacts[c]['first_name']} {emu.contacts[c]['last_name']}"} for c in (c1, c2)
    ]
    assert project["opportunity"] == [{"id": d, "name": emu.deals[d]["title"]} for d in (d1, d2)]
    assert (project["amount"], project["currency"]) == (18500, "EUR")
    remote = project["remote_data"]
    assert remote["billing_method"] == "fixed_price" and remote["project_key"] > 0
    # Teamleader adds the token's user as an owner after the ones given.
    assert [o["id"] for o in remote["owners"]] == [owner, emu.me]


async def test_relations_change_through_add_and_remove_actions(harness: Harness) -> None:
    emu = emulator(harness)
    u2, u3 = list(emu.users)[1:3]
    co1, co2 = list(emu.companies)[:2]
    k1, k2 = list(emu.contacts)[:2]
    d1, d2 = list(emu.deals)[:2]
    project = await create(harness, owner={"id": u2}, account={"id": co1}, contact=[{"id": k1}], opportunity=[{"id": d1}])
    pid = project["id"]
    before = len(await harness.provider_requests(P))
    resp = await harness.unified(
        "PATCH",
        P,
        f"/{pid}",
        json={
            "name": "Renamed",
            "owner": {"id": u3},
            "account": {"id": co2},
            "contact": [{"id": k2}],
            "opportunity": [{"id": d2}],
        },
    )
    assert resp.status == 200, resp.text
    sent = writes(await new_requests(harness, before))
    # projects.update carries only what it can change; the relations go through their actions.
    updates = [body for name, body in sent if name == "update"]
    assert updates == [{"id": pid, "title": "Renamed"}]
    assert [(name, body) for name, body in sent if name != "update"] == [
        ("addOwner", {"id": pid, "user_id": u3}),
        ("removeOwner", {"id": pid, "user_id": u2}),
        ("removeOwner", {"id": pid, "user_id": emu.me}),  # the creator, added by Teamleader
        ("addCustomer", {"id": pid, "customer": {"type": "company", "id": co2}}),
        ("removeCustomer", {"id": pid, "customer": {"type": "company", "id": co1}}),
        ("addCustomer", {"id": pid, "customer": {"type": "contact", "id": k2}}),
        ("removeCustomer", {"id": pid, "customer": {"type": "contact", "id": k1}}),
        ("addDeal", {"id": pid, "deal_id": d2}),
        ("removeDeal", {"id": pid, "deal_id": d1}),
    ]
    got = resp.json()
    assert got["name"] == "Renamed"
    assert got["owner"]["id"] == u3
    assert got["account"] == {"id": co2, "name": emu.companies[co2]["name"]}
    assert got["contact"] == [{"id": k2, "name": f"{emu.contacts[k2]['first_name']} {emu.contacts[k2]['last_name']}"}]
    assert got["opportunity"] == [{"id": d2, "name": emu.deals[d2]["title"]}]
    assert [o["id"] for o in got["remote_data"]["owners"]] == [u3]  # the only owner now

    # Only the account changes: the contacts stay, and so do the owner and deals.
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("PATCH", P, f"/{pid}", json={"account": {"id": co1}})
    assert resp.status == 200, resp.text
    # Nothing for projects.update to change, so it is not sent: only the actions.
    assert writes(await new_requests(harness, before)) == [
        ("addCustomer", {"id": pid, "customer": {"type": "company", "id": co1}}),
        ("removeCustomer", {"id": pid, "customer": {"type": "company", "id": co2}}),
    ]
    fetched = (await harness.unified("GET", P, f"/{pid}")).json()
    assert fetched["account"]["id"] == co1 and [c["id"] for c in fetched["contact"]] == [k2]
    assert fetched["owner"]["id"] == u3 and [d["id"] for d in fetched["opportunity"]] == [d2]

    # An owner cannot be cleared: a Teamleader project always has one.
    cleared = await harness.unified("PATCH", P, f"/{pid}", json={"owner": None})
    assert cleared.status == 400 and "owner" in cleared.json()["message"]


async def test_custom_fields_update_changes_only_the_fields_sent(harness: Harness) -> None:
    sector, region = CF_DEFINITION, CF_REGION
    project = await create(harness, custom_fields={sector: "Retail", region: "North"})
    assert project["custom_fields"] == {sector: "Retail", region: "North"}
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("PATCH", P, f"/{project['id']}", json={"custom_fields": {region: "South"}})
    assert resp.status == 200, resp.text
    # Teamleader replaces collections whole unless told to merge: the update says partial.
    assert writes(await new_requests(harness, before)) == [
        (
            "update",
            {
                "id": project["id"],
                "custom_fields": [{"id": region, "value": "South"}],
                "custom_fields_update_strategy": "partial",
            },
        )
    ]
    assert resp.json()["custom_fields"] == {sector: "Retail", region: "South"}


async def test_status_goes_through_close_and_reopen(harness: Harness) -> None:
    project = await create(harness)
    pid = project["id"]
    assert project["status"] == "open"
    steps = (
        ("completed", ("close", {"id": pid, "closing_strategy": "mark_tasks_and_materials_as_done"}), "closed"),
        ("open", ("reopen", {"id": pid}), "open"),
        ("cancelled", ("close", {"id": pid, "closing_strategy": "none"}), "closed"),
        ("in progress", ("reopen", {"id": pid}), "open"),
    )
    for unified, call, read_back in steps:
        before = len(await harness.provider_requests(P))
        resp = await harness.unified("PATCH", P, f"/{pid}", json={"status": unified})
        assert resp.status == 200, resp.text
        # Status alone leaves projects.update nothing to change: only the action is sent.
        assert writes(await new_requests(harness, before)) == [call], unified
        assert resp.json()["status"] == read_back
        assert resp.json()["remote_data"]["status"] == read_back

    # Already open: no reopen.
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("PATCH", P, f"/{pid}", json={"status": "open"})
    assert resp.status == 200 and writes(await new_requests(harness, before)) == []

    # A create that asks for a closed status creates, then closes.
    before = len(await harness.provider_requests(P))
    closed = await create(harness, status="completed")
    assert closed["status"] == "closed"
    assert [name for name, _ in writes(await new_requests(harness, before))] == ["create", "close"]

    # v2 has no on-hold state: deferred is refused before anything is sent.
    before = len(await harness.provider_requests(P))
    for resp in (
        await harness.unified("PATCH", P, f"/{pid}", json={"status": "deferred"}),
        await harness.unified("POST", P, json={"name": "On hold", "status": "deferred"}),
    ):
        assert resp.status == 400, resp.text
        body = resp.json()
        assert (body["statusCode"], body["error"]) == (400, "Bad Request")
        assert "status" in body["message"] and "open, not started, in progress, closed, completed" in body["message"]
        assert body["truto_error_insight"]["invalid_fields"][0]["field"] == "status"
        assert "truto_is_remote_error" not in body
    assert await new_requests(harness, before) == []


async def test_amount_goes_to_the_billing_methods_money(harness: Harness) -> None:
    # Fixed price: a currency alone keeps the amount; the Blueprint allows EUR only
    # ("Currently only EUR is supported"), so another currency is a 400 before any call.
    fixed = await create(harness, amount=1000)
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("PATCH", P, f"/{fixed['id']}", json={"currency": "usd"})
    assert resp.status == 400, resp.text
    assert resp.json()["truto_error_insight"]["invalid_fields"][0]["field"] == "currency"
    assert "EUR" in resp.json()["message"] and "truto_is_remote_error" not in resp.json()
    resp = await harness.unified("PATCH", P, f"/{fixed['id']}", json={"currency": "eur"})
    assert resp.status == 200, resp.text
    assert writes(await new_requests(harness, before)) == [
        ("update", {"id": fixed["id"], "fixed_price": {"amount": 1000, "currency": "EUR"}})
    ]
    assert (resp.json()["amount"], resp.json()["currency"]) == (1000, "EUR")

    # Time and materials: the amount is the external budget, not a fixed price.
    tm = await create(harness, remote_data={"billing_method": "time_and_materials"})
    assert tm["remote_data"]["billing_method"] == "time_and_materials" and tm["amount"] is None
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("PATCH", P, f"/{tm['id']}", json={"amount": 5000})
    assert resp.status == 200, resp.text
    seen = await new_requests(harness, before)
    assert writes(seen) == [("update", {"id": tm["id"], "external_budget": {"amount": 5000, "currency": "EUR"}})]
    # One read before (the billing method and current money come from it), one read back.
    assert [r["path"] for r in seen if r["path"] == f"{API}.info"] == [f"{API}.info"] * 2
    got = resp.json()
    assert (got["amount"], got["currency"]) == (5000, "EUR")
    assert got["remote_data"]["external_budget"] == {"amount": 5000, "currency": "EUR"}
    assert got["remote_data"]["fixed_price"] is None

    # Non-billable: there is no amount to set; a 400 naming the field, nothing written.
    nb = await create(harness, remote_data={"billing_method": "non_billable"})
    assert nb["remote_data"]["billing_method"] == "non_billable"
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("PATCH", P, f"/{nb['id']}", json={"amount": 10})
    assert resp.status == 400, resp.text
    body = resp.json()
    assert body["statusCode"] == 400 and "amount" in body["message"]
    assert body["truto_error_insight"]["invalid_fields"][0]["field"] == "amount"
    assert writes(await new_requests(harness, before)) == []


async def test_delete_strategy_default_and_override(harness: Harness) -> None:
    first, second = await create(harness), await create(harness)
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("DELETE", P, f"/{first['id']}")
    assert resp.status == 200, resp.text
    assert resp.json() == {"id": first["id"]}
    assert writes(await new_requests(harness, before)) == [
        ("delete", {"id": first["id"], "delete_strategy": "unlink_tasks_and_time_trackings"})
    ]
    assert (await harness.unified("GET", P, f"/{first['id']}")).status == 404

    before = len(await harness.provider_requests(P))
    resp = await harness.unified(
        "DELETE", P, f"/{second['id']}", query={"remote_query[delete_strategy]": "delete_tasks_and_time_trackings"}
    )
    assert resp.status == 200, resp.text
    assert resp.json() == {"id": second["id"]}
    assert writes(await new_requests(harness, before)) == [
        ("delete", {"id": second["id"], "delete_strategy": "delete_tasks_and_time_trackings"})
    ]
    assert (await harness.unified("GET", P, f"/{second['id']}")).status == 404

    # A strategy Teamleader does not know is its 400, named as Teamleader names it.
    third = await create(harness)
    resp = await harness.unified("DELETE", P, f"/{third['id']}", query={"remote_query[delete_strategy]": "shred"})
    assert resp.status == 400, resp.text
    assert resp.json()["truto_is_remote_error"] is True and "delete_strategy" in resp.json()["message"]
    assert (await harness.unified("GET", P, f"/{third['id']}")).status == 200


async def test_list_pages_by_number_sorted_by_project_key(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    first = await harness.unified("GET", P, query="limit=5")
    assert first.status == 200, first.text
    page = first.json()
    sent = [r for r in await new_requests(harness, before) if r["path"] == f"{API}.list"]
    assert [r["method"] for r in sent] == ["POST"]
    assert sent[0]["query"] == {}  # everything in the body
    body = sent[0]["json"]
    assert body["page"] == {"size": 5, "number": 1}
    assert body["sort"] == [{"field": "project_key", "order": "asc"}]
    assert body["includes"] == "custom_fields"

    before = len(await harness.provider_requests(P))
    second = await harness.unified("GET", P, query={"limit": "5", "next_cursor": page["next_cursor"]})
    assert second.status == 200, second.text
    sent = [r for r in await new_requests(harness, before) if r["path"] == f"{API}.list"]
    assert sent[-1]["json"]["page"] == {"size": 5, "number": 2}
    keys = [r["remote_data"]["project_key"] for r in page["result"] + second.json()["result"]]
    assert len(keys) == 10 and keys == sorted(keys) and len(set(keys)) == 10

    # More than Teamleader's page maximum is asked as pages of 100.
    before = len(await harness.provider_requests(P))
    assert (await harness.unified("GET", P, query="limit=300")).status == 200
    sizes = [r["json"]["page"]["size"] for r in await new_requests(harness, before) if r["path"] == f"{API}.list"]
    assert sizes and set(sizes) == {100}

    # Teamleader's own status views pass through remote_query.
    before = len(await harness.provider_requests(P))
    closed = await harness.unified("GET", P, query="limit=100&remote_query[filter][status]=closed")
    assert closed.status == 200, closed.text
    assert closed.json()["result"] and {r["status"] for r in closed.json()["result"]} == {"closed"}
    sent = [r for r in await new_requests(harness, before) if r["path"] == f"{API}.list"]
    assert sent[0]["json"]["filter"] == {"status": "closed"}

    # v2 projects carry no created_at/updated_at: filters on them are refused before any call.
    before = len(await harness.provider_requests(P))
    for field, query in (
        ("updated_at", "updated_at[gt]=2025-01-01T00:00:00Z"),
        ("created_at", "created_at[lte]=2025-01-01T00:00:00Z"),
    ):
        resp = await harness.unified("GET", P, query=query)
        assert resp.status == 400, resp.text
        assert resp.json() == {
            "statusCode": 400,
            "error": "Bad Request",
            "message": f"Teamleader Focus cannot filter projects on {field}: its API does not expose that field. "
            "See GET /unified/crm/projects/teamleader/meta/list for the filters it honours.",
        }
    assert await new_requests(harness, before) == []


async def test_expired_token_refreshes_once_and_a_refused_refresh_asks_to_reconnect(harness: Harness) -> None:
    emu = emulator(harness)
    account_id = harness.accounts[P]
    # A pair of our own, so the account's original tokens stay good for the tests after this one.
    access, refresh = emu.issue_tokens()
    try:
        patched = await harness.call(
            "PATCH",
            f"/integrated-account/{account_id}",
            json={"context": {"access_token": access, "refresh_token": refresh, "expires_at": int(time.time()) + 3600}},
        )
        assert patched.status == 200, patched.text
        assert (await harness.unified("GET", P, query="limit=1")).status == 200
        emu.expire(access)  # an hour passes at Teamleader; unicrm still believes the token good

        stats = await harness.control(P, "stats")
        before = len(await harness.provider_requests(P))
        resp = await harness.unified("GET", P, query="limit=1")
        assert resp.status == 200, resp.text
        calls = [(r["method"], r["path"]) for r in await new_requests(harness, before)]
        # The 401, one refresh, the same call again.
        assert calls == [("POST", f"{API}.list"), ("POST", "/oauth2/access_token"), ("POST", f"{API}.list")]
        assert (await harness.control(P, "stats")).get("refreshes", 0) == stats.get("refreshes", 0) + 1
        assert refresh not in emu.refresh_tokens  # single use: rotated
        account = (await harness.call("GET", f"/integrated-account/{account_id}")).json()
        assert account["status"] == "active"
        assert float(account["context"]["expires_at"]) > time.time() + 3000
        assert "access_token" not in account["context"] and "refresh_token" in account["secrets_set"]

        # The refresh token was already used and the access token has expired: Teamleader refuses.
        patched = await harness.call(
            "PATCH",
            f"/integrated-account/{account_id}",
            json={"context": {"refresh_token": "used-already", "expires_at": int(time.time()) - 60}},
        )
        assert patched.status == 200, patched.text
        before = len(await harness.provider_requests(P))
        resp = await harness.unified("GET", P, query="limit=1")
        assert resp.status == 401, resp.text
        body = resp.json()
        assert body["statusCode"] == 401 and body["truto_is_remote_error"] is True
        assert "reconnect" in body["message"].lower()
        assert body["raw_response"]["error"] == "invalid_grant"
        assert [r["path"] for r in await new_requests(harness, before)] == ["/oauth2/access_token"]
        account = (await harness.call("GET", f"/integrated-account/{account_id}")).json()
        assert account["status"] == "needs_reauth"
        assert "reconnect" in account["last_error"].lower()

        # Until the context is updated, calls answer 401 without reaching Teamleader.
        before = len(await harness.provider_requests(P))
        again = await harness.unified("GET", P, query="limit=1")
        assert again.status == 401 and "reconnect" in again.json()["message"].lower()
        assert await new_requests(harness, before) == []
    finally:
        restored = await harness.call(
            "PATCH", f"/integrated-account/{account_id}", json={"context": harness.emulators[P].context}
        )
        assert restored.status == 200, restored.text
    assert restored.json()["status"] == "active"
    assert (await harness.unified("GET", P, query="limit=1")).status == 200


async def test_create_amount_on_a_time_and_materials_project(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    project = await create(harness, amount=3000, remote_data={"billing_method": "time_and_materials"})
    sent = next(body for name, body in writes(await new_requests(harness, before)) if name == "create")
    assert sent["external_budget"] == {"amount": 3000, "currency": "EUR"} and "fixed_price" not in sent
    assert project["amount"] == 3000

    # Non-billable on create: no money field can hold an amount; a 400 and nothing created.
    before = len(await harness.provider_requests(P))
    refused = await harness.unified(
        "POST", P, json={"name": "No budget", "amount": 10, "remote_data": {"billing_method": "non_billable"}}
    )
    assert refused.status == 400, refused.text
    assert refused.json()["truto_error_insight"]["invalid_fields"][0]["field"] == "amount"
    assert writes(await new_requests(harness, before)) == []


async def test_rate_limit_headers_are_normalized(harness: Harness) -> None:
    """X-RateLimit-Reset is a timestamp (`2021-06-15T10:51:23.035+0100`); unicrm answers seconds."""
    await harness.control(P, "faults", {"rate_limit": 200, "rate_window_s": 60})
    try:
        before = len(await harness.provider_requests(P))
        resp = await harness.unified("GET", P, query="limit=1")
        assert resp.status == 200, resp.text
        assert resp.headers["ratelimit-limit"] == "200;w=60"
        assert 0 <= int(resp.headers["ratelimit-remaining"]) <= 199
        assert 0 <= int(resp.headers["ratelimit-reset"]) <= 60
        assert any(r["path"] == f"{API}.list" for r in await new_requests(harness, before))
    finally:
        await harness.control(P, "faults", {"rate_limit": None})
