"""What is specific to Insightly, end to end over HTTP (server + Insightly emulator).

The generic contract (every page, formats, bad input, faults) is in test_contract.py; this file
checks the LINKS round trip (account, contacts, opportunities), the six statuses and the refusal
of open/closed, body dates on the wire, the native `updated_after_utc` filter, the update as
`PUT /Projects` with `PROJECT_ID` in the body, delete's 202, and the forwarded quota headers.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.harness import Harness

P = "insightly"


async def new_requests(h: Harness, before: int) -> list[dict[str, Any]]:
    return (await h.provider_requests(P))[before:]


async def create(h: Harness, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Insightly e2e {uuid.uuid4().hex[:8]}", "status": "not started", **fields}
    resp = await h.unified("POST", P, json=body)
    assert resp.status == 201, resp.text
    return resp.json()


def links_of(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [link for link in record["remote_data"]["LINKS"] if link["LINK_OBJECT_NAME"] == kind]


async def test_links_round_trip(harness: Harness) -> None:
    data = harness.emulators[P].emulator.data
    org, other_org = data.organisations[0], data.organisations[1]
    c1, c2, c3 = (data.contacts[i] for i in (0, 1, 2))
    o1, o2 = data.opportunities[0], data.opportunities[1]
    before = len(await harness.provider_requests(P))
    project = await create(
        harness,
        account={"id": str(org["ORGANISATION_ID"])},
        contact=[{"id": str(c1["CONTACT_ID"])}, {"id": c2["CONTACT_ID"]}],
        opportunity=[{"id": str(o1["OPPORTUNITY_ID"])}, {"id": str(o2["OPPORTUNITY_ID"])}],
    )
    # One POST carries everything: the first opportunity as OPPORTUNITY_ID, the rest as LINKS
    # with Insightly's singular object names.
    writes = [r for r in await new_requests(harness, before) if r["method"] != "GET"]
    assert [(r["method"], r["path"]) for r in writes] == [("POST", "/v3.1/Projects")]
    sent = writes[0]["json"]
    assert sent["OPPORTUNITY_ID"] == o1["OPPORTUNITY_ID"]
    assert sent["LINKS"] == [
        {"LINK_OBJECT_NAME": "Organisation", "LINK_OBJECT_ID": org["ORGANISATION_ID"]},
        {"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": c1["CONTACT_ID"]},
        {"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": c2["CONTACT_ID"]},
        {"LINK_OBJECT_NAME": "Opportunity", "LINK_OBJECT_ID": o2["OPPORTUNITY_ID"]},
    ]
    assert project["account"] == {"id": str(org["ORGANISATION_ID"]), "name": org["ORGANISATION_NAME"]}
    assert project["contact"] == [{"id": str(c["CONTACT_ID"]), "name": f"{c['FIRST_NAME']} {c['LAST_NAME']}"} for c in (c1, c2)]
    assert project["opportunity"] == [{"id": str(o["OPPORTUNITY_ID"]), "name": o["OPPORTUNITY_NAME"]} for o in (o1, o2)]
    org_link = links_of(project, "Organisation")[0]

    # Changing the contacts keeps the other links as they are (with their LINK_ID): Insightly
    # replaces LINKS whole, so the project is read first.
    before = len(await harness.provider_requests(P))
    patched = await harness.unified("PATCH", P, f"/{project['id']}", json={"contact": [{"id": str(c3["CONTACT_ID"])}]})
    assert patched.status == 200, patched.text
    calls = await new_requests(harness, before)
    assert [(r["method"], r["path"]) for r in calls if r["path"].startswith("/v3.1/Projects")] == [
        ("GET", f"/v3.1/Projects/{project['id']}"),
        ("PUT", "/v3.1/Projects"),
    ]
    put = next(r["json"] for r in calls if r["method"] == "PUT")
    assert org_link in put["LINKS"]
    assert {"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": c3["CONTACT_ID"]} in put["LINKS"]
    assert "OPPORTUNITY_ID" not in put
    got = patched.json()
    assert got["account"]["id"] == str(org["ORGANISATION_ID"])
    assert [c["id"] for c in got["contact"]] == [str(c3["CONTACT_ID"])]
    assert [o["id"] for o in got["opportunity"]] == [str(o1["OPPORTUNITY_ID"]), str(o2["OPPORTUNITY_ID"])]
    assert links_of(got, "Organisation") == [org_link]

    # A new account replaces the organisation link; clearing opportunities clears both forms.
    patched = await harness.unified(
        "PATCH", P, f"/{project['id']}", json={"account": {"id": str(other_org["ORGANISATION_ID"])}, "opportunity": []}
    )
    assert patched.status == 200, patched.text
    got = (await harness.unified("GET", P, f"/{project['id']}")).json()
    assert got["account"] == {"id": str(other_org["ORGANISATION_ID"]), "name": other_org["ORGANISATION_NAME"]}
    assert got["opportunity"] == [] and got["remote_data"]["OPPORTUNITY_ID"] is None
    assert [c["id"] for c in got["contact"]] == [str(c3["CONTACT_ID"])]

    # An organisation Insightly does not have comes back named as the unified field.
    wrong = await harness.unified("PATCH", P, f"/{project['id']}", json={"account": {"id": "424242"}})
    assert wrong.status == 400, wrong.text
    body = wrong.json()
    assert body["truto_is_remote_error"] is True
    assert body["truto_error_insight"]["invalid_fields"][0]["field"] == "account"


@pytest.mark.parametrize(
    ("unified", "insightly"),
    [
        ("not started", "Not Started"),
        ("in progress", "In Progress"),
        ("deferred", "Deferred"),
        ("completed", "Completed"),
        ("abandoned", "Abandoned"),
        ("cancelled", "Cancelled"),
    ],
)
async def test_status_values(harness: Harness, unified: str, insightly: str) -> None:
    project = await create(harness, status=unified)
    assert project["status"] == unified and project["remote_data"]["STATUS"] == insightly


async def test_open_and_closed_are_refused_and_status_is_required(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    for status in ("open", "closed"):
        resp = await harness.unified("POST", P, json={"name": "Two-state", "status": status})
        assert resp.status == 400, resp.text
        message = resp.json()["message"]
        assert "status" in message and repr(status) in message
        assert "not started, in progress, deferred, completed, abandoned, cancelled" in message
    missing = await harness.unified("POST", P, json={"name": "No status"})
    assert missing.status == 400
    assert missing.json()["truto_error_insight"]["missing_required_body_fields"]["value"] == ["status"]
    assert not [r for r in await new_requests(harness, before) if r["method"] != "GET"]


async def test_dates_on_the_wire(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    project = await create(harness, status="completed", close_date="2025-06-30T17:45:00+02:00")
    post = next(r for r in await new_requests(harness, before) if r["method"] == "POST")
    assert post["json"]["COMPLETED_DATE"] == "2025-06-30 15:45:00"  # UTC, Insightly's body form
    assert project["close_date"] == "2025-06-30T15:45:00Z"
    assert project["remote_data"]["COMPLETED_DATE"] == "2025-06-30 15:45:00"
    created = project["remote_data"]["DATE_CREATED_UTC"]
    assert project["created_at"] == created.replace(" ", "T") + "Z"

    # An ISO date sent raw through remote_data is what Insightly refuses: its 400 names the field.
    wrong = await harness.unified(
        "PATCH", P, f"/{project['id']}", json={"remote_data": {"COMPLETED_DATE": "2025-07-01T00:00:00Z"}}
    )
    assert wrong.status == 400, wrong.text
    assert wrong.json()["truto_error_insight"]["invalid_fields"][0]["field"] == "close_date"


async def test_updated_at_filters_are_applied_by_unicrm(harness: Harness) -> None:
    """The plain GET /Projects list is not documented to honour updated_after_utc, so no date
    filter is sent to Insightly: unicrm filters each page (and the meta endpoint says so)."""
    everything = (await harness.unified("GET", P, query="limit=500&truto_ignore_remote_data=true")).json()["result"]
    stamps = sorted(r["updated_at"] for r in everything)
    middle = stamps[len(stamps) // 2]
    for op, keep in (
        ("gte", lambda s: s >= middle),
        ("gt", lambda s: s > middle),
        ("lt", lambda s: s < middle),
        ("lte", lambda s: s <= middle),
    ):
        before = len(await harness.provider_requests(P))
        resp = await harness.unified("GET", P, query=f"limit=500&updated_at[{op}]={middle}")
        assert resp.status == 200, resp.text
        assert sorted(r["updated_at"] for r in resp.json()["result"]) == [s for s in stamps if keep(s)]
        assert all("updated_after_utc" not in r["query"] for r in await new_requests(harness, before))
    meta = (await harness.call("GET", f"/unified/crm/projects/{P}/meta/list")).json()
    assert meta["filters"]["updated_at"] == {"gt": "engine", "gte": "engine", "lt": "engine", "lte": "engine"}


async def test_update_is_a_put_with_the_id_in_the_body(harness: Harness) -> None:
    project = await create(harness, description="first", tags=[{"name": "pilot"}], custom_fields={"Budget_Code__c": "OPS-1"})
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("PATCH", P, f"/{project['id']}", json={"name": "Renamed", "custom_fields": {"Seats__c": 12}})
    assert resp.status == 200, resp.text
    writes = [r for r in await new_requests(harness, before) if r["method"] != "GET"]
    assert [(r["method"], r["path"]) for r in writes] == [("PUT", "/v3.1/Projects")]
    assert writes[0]["json"] == {
        "PROJECT_ID": int(project["id"]),  # in Insightly's type, a number
        "PROJECT_NAME": "Renamed",
        "CUSTOMFIELDS": [{"FIELD_NAME": "Seats__c", "FIELD_VALUE": 12}],
    }
    got = resp.json()
    # Only what was sent changed: description, tags and the other custom field stay.
    assert (got["name"], got["description"], got["status"]) == ("Renamed", "first", "not started")
    assert got["tags"] == [{"id": "pilot", "name": "pilot"}]
    assert got["custom_fields"] == {"Budget_Code__c": "OPS-1", "Seats__c": 12}

    unknown = await harness.unified("PATCH", P, "/3999999", json={"name": "nobody"})
    assert unknown.status == 404, unknown.text

    # Delete answers 202 with no body at Insightly; unicrm answers the id.
    before = len(await harness.provider_requests(P))
    deleted = await harness.unified("DELETE", P, f"/{project['id']}")
    assert deleted.status == 200 and deleted.json() == {"id": project["id"]}
    assert [r["method"] for r in await new_requests(harness, before)] == ["DELETE"]
    assert (await harness.unified("GET", P, f"/{project['id']}")).status == 404


async def test_paging_and_quota_headers(harness: Harness) -> None:
    before = len(await harness.provider_requests(P))
    resp = await harness.unified("GET", P, query="limit=1000")
    assert resp.status == 200
    assert resp.headers["ratelimit-limit"] == "100000;w=86400"
    assert resp.headers["ratelimit-remaining"].isdigit()
    sent = (await new_requests(harness, before))[-1]["query"]
    assert (sent["top"], sent["skip"]) == ("500", "0")  # the unified 1,000 clamped to Insightly's 500
