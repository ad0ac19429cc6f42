"""Insightly API v3.1 emulator: `/v3.1/Projects` and the records a project refers to.

Held to Insightly's documentation (shared/reference/providers-capsule-insightly-pipeliner.md §2;
the v3.1 introduction): HTTP Basic with the user's API key as user name and an empty password;
bare JSON objects and arrays with UPPER_SNAKE keys and integer ids; `skip` / `top` (default 100,
at most 500), `brief=true` (no sub-collections), `count_total=true` (`X-Total-Count`) and
`updated_after_utc` (ISO 8601) on lists; `GET /Tags?record_type=projects` (required record type)
lists the distinct tag names in use on that record type, as `[{TAG_NAME}]`; `/Projects/Search?field_name=&field_value=` (equality,
custom fields too); required `PROJECT_NAME` and `STATUS` (`Not Started`, `In Progress`,
`Deferred`, `Completed`, `Abandoned`, `Cancelled`); body dates `yyyy-MM-dd HH:mm:ss` only (an
ISO date in a body is a 400); `PUT /Projects` with `PROJECT_ID` in the body changing only the
keys sent (`null` clears); `TAGS`, `LINKS` and `CUSTOMFIELDS` in POST/PUT bodies; link object
names singular (`Organisation`, `Contact`, `Opportunity`, `Project`), a plural is a 400;
`PIPELINE_ID`/`STAGE_ID` read-only in bodies; `DELETE /Projects/{id}` answers 202 with an
empty body; every answer carries `X-RateLimit-Limit` / `X-RateLimit-Remaining` (the daily
quota) and an exhausted quota is a 429.

Where the docs are silent (assumptions, kept simple): errors are `{"Message": ...}` (ASP.NET);
create answers 201 with the project; `TAGS` and `LINKS` sent in a PUT replace the project's
tags and links (links sent with their `LINK_ID` are kept as they are), while `CUSTOMFIELDS`
change field by field (a null `FIELD_VALUE` clears one); custom-field names must be defined for
projects; `updated_after_utc` is strictly after; a missing `OWNER_USER_ID` defaults to the API
key's user. The documented burst limit (10 requests a second per instance) is not enforced by
default, because a test suite calls faster than that: set it through the fault controls
(`rate_limit=10`, `rate_window_s=1`); 429s then carry `Retry-After`.

With `dataset_size`, projects 1..N are generated on the fly from their index (nothing is stored
until a write touches them), so a benchmark can page through millions of records.
"""

from __future__ import annotations

import base64
import itertools
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from unicrm.emulators.base import Emulator, json_response

SEEDED_PROJECTS = 42
MAX_TOP = 500
DEFAULT_TOP = 100
DAILY_QUOTA = 100_000
PROJECT_BASE = 3_817_000  # PROJECT_ID = PROJECT_BASE + index
STATUSES = ("Not Started", "In Progress", "Deferred", "Completed", "Abandoned", "Cancelled")
LINKABLE = ("Contact", "Organisation", "Opportunity", "Project", "Lead")
SUB_COLLECTIONS = ("CUSTOMFIELDS", "TAGS", "LINKS")
READ_ONLY = frozenset(
    {
        "PROJECT_ID",
        "PIPELINE_ID",
        "STAGE_ID",
        "IMAGE_URL",
        "DATE_CREATED_UTC",
        "DATE_UPDATED_UTC",
        "LAST_ACTIVITY_DATE_UTC",
        "NEXT_ACTIVITY_DATE_UTC",
        "CAN_EDIT",
        "CAN_DELETE",
    }
)
_BODY_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

USERS = (("Maria", "Reyes"), ("Jae", "Kim"), ("Tove", "Berg"), ("Sam", "Okafor"), ("Lea", "Martin"))
ORGANISATIONS = (
    "Harbor Lane Bakery",
    "Nordvik Logistics",
    "Alpine Dairy",
    "Copperleaf Hotels",
    "Delta Ports",
    "Evergreen Schools",
    "Foxglove Pharma",
    "Helio Energy",
    "Kestrel Analytics",
    "Lumen Health",
    "Orbit Freight",
    "Tenet Retail",
)
PEOPLE = (("Lena", "Vogt"), ("Tom", "Reid"), ("Ines", "Costa"), ("Yuki", "Sato"), ("Piet", "de Vries"), ("Ada", "Ng"))
TOPICS = ("Warehouse system migration", "Till installation", "ERP rollout", "Data migration", "Pilot", "Training")
TAGS = ("priority", "renewal", "pilot", "phase-2", "onsite")
STAGES = ("Kick-off", "Delivery", "Acceptance", "Handover")
CATEGORIES = ("Implementation", "Consulting", "Support")
#: (FIELD_NAME, FIELD_LABEL, FIELD_TYPE) of the project custom fields.
CUSTOM_FIELDS = (("Budget_Code__c", "Budget code", "TEXT"), ("Seats__c", "Seats", "NUMERIC"), ("Go_Live__c", "Go-live", "DATE"))


def stamp(moment: datetime) -> str:
    """Insightly's body date-time: `yyyy-MM-dd HH:mm:ss`, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class InsightlyError(Exception):
    """An error answer: status and `{"Message": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"Message": message}


class InsightlyData:
    """The emulated instance: users, organisations, contacts, opportunities, stages and projects."""

    def __init__(self, seed: int = 1, dataset_size: int | None = None) -> None:
        self.seed = seed
        self.size = SEEDED_PROJECTS if dataset_size is None else dataset_size
        rng = random.Random(seed)
        made = stamp(_EPOCH - timedelta(days=300))
        self.users: list[dict[str, Any]] = [
            {
                "USER_ID": 1_440_021 + i,
                "FIRST_NAME": first,
                "LAST_NAME": last,
                "EMAIL_ADDRESS": f"{first.lower()}.{last.lower()}@example.com",
                "ADMINISTRATOR": i == 0,
                "ACTIVE": True,
                "DATE_CREATED_UTC": made,
                "DATE_UPDATED_UTC": made,
            }
            for i, (first, last) in enumerate(USERS)
        ]
        self.organisations: list[dict[str, Any]] = [
            {
                "ORGANISATION_ID": 98_112_233 + i,
                "ORGANISATION_NAME": name,
                "BACKGROUND": f"{name} is a sample organisation" if i % 2 == 0 else None,
                "WEBSITE": f"https://www.{name.lower().split()[0]}.example",
                "PHONE": f"+1 415 555 01{i:02d}",
                "PHONE_FAX": None,
                "ADDRESS_BILLING_STREET": f"{100 + i} Market Street",
                "ADDRESS_BILLING_CITY": "San Francisco",
                "ADDRESS_BILLING_STATE": "CA",
                "ADDRESS_BILLING_POSTCODE": f"9410{i % 10}",
                "ADDRESS_BILLING_COUNTRY": "United States",
                "OWNER_USER_ID": self.users[i % len(self.users)]["USER_ID"],
                "DATE_CREATED_UTC": made,
                "DATE_UPDATED_UTC": stamp(_EPOCH - timedelta(days=200 - i)),
                "CUSTOMFIELDS": [],
                "TAGS": [],
                "LINKS": [],
            }
            for i, name in enumerate(ORGANISATIONS)
        ]
        self.contacts: list[dict[str, Any]] = []
        for i in range(24):
            first, last = PEOPLE[i % len(PEOPLE)]
            org = self.organisations[i % len(self.organisations)]
            self.contacts.append(
                {
                    "CONTACT_ID": 301_200_400 + i,
                    "FIRST_NAME": first,
                    "LAST_NAME": f"{last} {i}" if i >= len(PEOPLE) else last,
                    "ORGANISATION_ID": org["ORGANISATION_ID"],
                    "TITLE": ("Operations Director", "Buyer", "CTO")[i % 3],
                    "PHONE": f"+1 415 555 02{i:02d}",
                    "PHONE_MOBILE": None,
                    "EMAIL_ADDRESS": f"{first.lower()}{i}@example.com",
                    "OWNER_USER_ID": org["OWNER_USER_ID"],
                    "DATE_CREATED_UTC": made,
                    "DATE_UPDATED_UTC": stamp(_EPOCH - timedelta(days=150 - i)),
                    "CUSTOMFIELDS": [],
                    "TAGS": [],
                    "LINKS": [],
                }
            )
        self.opportunities: list[dict[str, Any]] = [
            {
                "OPPORTUNITY_ID": 50_277_700 + i,
                "OPPORTUNITY_NAME": f"{ORGANISATIONS[i % len(ORGANISATIONS)]} – {rng.choice(TOPICS)}",
                "OPPORTUNITY_STATE": rng.choice(("OPEN", "WON", "WON", "LOST")),
                "OPPORTUNITY_DETAILS": None,
                "OPPORTUNITY_VALUE": 2500 * (i + 1),
                "BID_CURRENCY": "USD",
                "FORECAST_CLOSE_DATE": stamp(_EPOCH + timedelta(days=30 + i)),
                "ORGANISATION_ID": self.organisations[i % len(self.organisations)]["ORGANISATION_ID"],
                "OWNER_USER_ID": self.users[i % len(self.users)]["USER_ID"],
                "DATE_CREATED_UTC": made,
                "DATE_UPDATED_UTC": made,
                "CUSTOMFIELDS": [],
                "TAGS": [],
                "LINKS": [],
            }
            for i in range(15)
        ]
        self.pipelines = [{"PIPELINE_ID": 221_870, "PIPELINE_NAME": "Delivery", "FOR_OPPORTUNITIES": False, "FOR_PROJECTS": True}]
        self.stages: list[dict[str, Any]] = [
            {"STAGE_ID": 915_230 + i, "PIPELINE_ID": 221_870, "STAGE_NAME": name, "STAGE_ORDER": i + 1, "ACTIVITYSET_ID": None}
            for i, name in enumerate(STAGES)
        ]
        self.categories: list[dict[str, Any]] = [
            {"CATEGORY_ID": 612_045 + i, "CATEGORY_NAME": name, "ACTIVE": True, "BACKGROUND_COLOR": "019CDD"}
            for i, name in enumerate(CATEGORIES)
        ]
        self.custom_fields: list[dict[str, Any]] = [
            {
                "FIELD_NAME": name,
                "FIELD_LABEL": label,
                "FIELD_FOR": "PROJECT",
                "FIELD_TYPE": kind,
                "EDITABLE": True,
                "VISIBLE": True,
                "CUSTOM_FIELD_OPTIONS": [],
            }
            for name, label, kind in CUSTOM_FIELDS
        ]
        self.ids: dict[str, set[int]] = {
            "Contact": {c["CONTACT_ID"] for c in self.contacts},
            "Organisation": {o["ORGANISATION_ID"] for o in self.organisations},
            "Opportunity": {o["OPPORTUNITY_ID"] for o in self.opportunities},
            "Lead": set(),
        }
        self.user_ids: set[int] = {u["USER_ID"] for u in self.users}
        self.category_ids: set[int] = {c["CATEGORY_ID"] for c in self.categories}
        # Writes live here (index → record); generated projects not in it come from `_generated`.
        self.projects: dict[int, dict[str, Any]] = {}
        self.deleted: set[int] = set()
        self.next_index = self.size + 1
        self.next_link_id = 900_000_000

    # ------------------------------------------------------------------ generated data
    def _generated(self, index: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + index)
        ident = PROJECT_BASE + index
        created = _EPOCH + timedelta(seconds=index * 3_701 + rng.randrange(60))
        updated = created + timedelta(days=rng.randrange(0, 300), seconds=rng.randrange(86_400))
        status = STATUSES[rng.randrange(len(STATUSES))]
        started = datetime(created.year, created.month, created.day, tzinfo=UTC) + timedelta(days=rng.randrange(1, 30))
        org = self.organisations[rng.randrange(len(self.organisations))]
        owner = self.users[rng.randrange(len(self.users))]["USER_ID"]
        links: list[dict[str, Any]] = []
        if rng.random() < 0.8:
            links.append(self._link(ident, "Organisation", org["ORGANISATION_ID"], ident * 10))
        for k in range(rng.randrange(3)):
            contact = self.contacts[rng.randrange(len(self.contacts))]["CONTACT_ID"]
            if all(link["LINK_OBJECT_ID"] != contact for link in links):
                links.append(self._link(ident, "Contact", contact, ident * 10 + 1 + k))
        if rng.random() < 0.15:
            other = self.opportunities[rng.randrange(len(self.opportunities))]["OPPORTUNITY_ID"]
            links.append(self._link(ident, "Opportunity", other, ident * 10 + 5))
        customs: list[dict[str, Any]] = []
        if rng.random() < 0.6:
            customs.append({"FIELD_NAME": "Budget_Code__c", "FIELD_VALUE": f"OPS-{rng.randrange(10, 99)}"})
        if rng.random() < 0.3:
            customs.append({"FIELD_NAME": "Seats__c", "FIELD_VALUE": rng.randrange(5, 500)})
        in_pipeline = rng.random() < 0.5
        return {
            "PROJECT_ID": ident,
            "PROJECT_NAME": f"{TOPICS[index % len(TOPICS)]} – {org['ORGANISATION_NAME']} #{index}",
            "STATUS": status,
            "PROJECT_DETAILS": rng.choice((None, "Kick-off planned with the customer's IT team", "Phase two of the rollout")),
            "OPPORTUNITY_ID": self.opportunities[rng.randrange(len(self.opportunities))]["OPPORTUNITY_ID"]
            if rng.random() < 0.4
            else None,
            "STARTED_DATE": stamp(started),
            "COMPLETED_DATE": stamp(started + timedelta(days=30 * rng.randrange(1, 9)))
            if status == "Completed" or rng.random() < 0.3
            else None,
            "IMAGE_URL": None,
            "RESPONSIBLE_USER_ID": owner,
            "OWNER_USER_ID": owner,
            "CATEGORY_ID": self.categories[rng.randrange(len(self.categories))]["CATEGORY_ID"],
            "PIPELINE_ID": self.pipelines[0]["PIPELINE_ID"] if in_pipeline else None,
            "STAGE_ID": self.stages[rng.randrange(len(self.stages))]["STAGE_ID"] if in_pipeline else None,
            "DATE_CREATED_UTC": stamp(created),
            "DATE_UPDATED_UTC": stamp(updated),
            "LAST_ACTIVITY_DATE_UTC": stamp(updated - timedelta(hours=rng.randrange(1, 48))) if rng.random() < 0.7 else None,
            "NEXT_ACTIVITY_DATE_UTC": None,
            "CAN_EDIT": True,
            "CAN_DELETE": True,
            "CUSTOMFIELDS": customs,
            "TAGS": [{"TAG_NAME": t} for t in sorted(set(rng.sample(TAGS, rng.randrange(3))))],
            "LINKS": links,
        }

    @staticmethod
    def _link(project_id: int, kind: str, other: int, link_id: int) -> dict[str, Any]:
        return {
            "LINK_ID": link_id,
            "OBJECT_NAME": "Project",
            "OBJECT_ID": project_id,
            "LINK_OBJECT_NAME": kind,
            "LINK_OBJECT_ID": other,
            "ROLE": None,
            "DETAILS": None,
            "RELATIONSHIP_ID": None,
            "IS_FORWARD": None,
        }

    def _record(self, index: int) -> dict[str, Any] | None:
        if index in self.deleted:
            return None
        if index in self.projects:
            return self.projects[index]
        if 1 <= index <= self.size:
            return self._generated(index)
        return None

    def _all(self, start: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
        for index in range(start, self.next_index):
            record = self._record(index)
            if record is not None:
                yield index, record

    def _find(self, ident: Any) -> int:
        index = _integer(ident)
        if index is None or self._record(index - PROJECT_BASE) is None:
            raise InsightlyError(404, f"Project with id {ident} not found")
        return index - PROJECT_BASE

    # ------------------------------------------------------------------ reads
    def list_projects(self, query: Mapping[str, str]) -> tuple[list[dict[str, Any]], int]:
        """A page of projects (by PROJECT_ID) and the total that matched."""
        skip, top = page_params(query)
        after = _query_date(query.get("updated_after_utc"))
        brief = _flag(query.get("brief"))
        field_name, field_value = query.get("field_name"), query.get("field_value")
        if after is None and field_name is None and not self.deleted and not _flag(query.get("count_total")):
            # Nothing to filter or count: jump straight to the page.
            page = [r for _, r in itertools.islice(self._all(skip + 1), top)]
            return [project_out(r, brief) for r in page], -1
        matched = [
            r
            for _, r in self._all()
            if (after is None or r["DATE_UPDATED_UTC"] > after)
            and (field_name is None or _field_equals(r, field_name, field_value))
        ]
        return [project_out(r, brief) for r in matched[skip : skip + top]], len(matched)

    def get_project(self, ident: str) -> dict[str, Any]:
        return project_out(self._at(self._find(ident)), False)

    def _at(self, index: int) -> dict[str, Any]:
        record = self._record(index)
        assert record is not None
        return record

    # ------------------------------------------------------------------ writes
    def create_project(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InsightlyError(400, "The request body must be a project object")
        index = self.next_index
        ident = PROJECT_BASE + index
        now = stamp(datetime.now(UTC))
        record: dict[str, Any] = {
            "PROJECT_ID": ident,
            "PROJECT_NAME": None,
            "STATUS": None,
            "PROJECT_DETAILS": None,
            "OPPORTUNITY_ID": None,
            "STARTED_DATE": None,
            "COMPLETED_DATE": None,
            "IMAGE_URL": None,
            "RESPONSIBLE_USER_ID": None,
            "OWNER_USER_ID": self.users[0]["USER_ID"],  # the API key's user
            "CATEGORY_ID": None,
            "PIPELINE_ID": None,
            "STAGE_ID": None,
            "DATE_CREATED_UTC": now,
            "DATE_UPDATED_UTC": now,
            "LAST_ACTIVITY_DATE_UTC": None,
            "NEXT_ACTIVITY_DATE_UTC": None,
            "CAN_EDIT": True,
            "CAN_DELETE": True,
            "CUSTOMFIELDS": [],
            "TAGS": [],
            "LINKS": [],
        }
        self._apply(record, body)
        self.next_index += 1
        self.projects[index] = record
        return project_out(record, False)

    def update_project(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InsightlyError(400, "The request body must be a project object")
        if body.get("PROJECT_ID") is None:
            raise InsightlyError(400, "PROJECT_ID is required to update a project")
        index = self._find(body["PROJECT_ID"])
        record = _copy(self._at(index))
        self._apply(record, body)
        record["DATE_UPDATED_UTC"] = stamp(datetime.now(UTC))
        self.projects[index] = record
        return project_out(record, False)

    def delete_project(self, ident: str) -> None:
        index = self._find(ident)
        self.deleted.add(index)
        self.projects.pop(index, None)

    def _apply(self, record: dict[str, Any], body: Mapping[str, Any]) -> None:
        """Check every known writable key of the body, then write them (nothing on an error)."""
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key in READ_ONLY or key.startswith("_"):
                continue
            if key in ("PROJECT_NAME", "STATUS"):
                if not isinstance(value, str) or not value.strip():
                    raise InsightlyError(400, f"{key} is required")
                if key == "STATUS" and value not in STATUSES:
                    raise InsightlyError(400, f"STATUS '{value}' is not valid; use one of: {', '.join(STATUSES)}")
                changes[key] = value
            elif key == "PROJECT_DETAILS":
                if value is not None and not isinstance(value, str):
                    raise InsightlyError(400, "PROJECT_DETAILS must be a string")
                changes[key] = value
            elif key in ("STARTED_DATE", "COMPLETED_DATE"):
                if value is not None and (not isinstance(value, str) or not _BODY_DATE.match(value)):
                    raise InsightlyError(400, f"{key} '{value}' is not a valid date; use the format yyyy-MM-dd HH:mm:ss")
                changes[key] = value
            elif key in ("OWNER_USER_ID", "RESPONSIBLE_USER_ID"):
                changes[key] = self._reference(key, value, self.user_ids, "user", nullable=key != "OWNER_USER_ID")
            elif key == "CATEGORY_ID":
                changes[key] = self._reference(key, value, self.category_ids, "project category")
            elif key == "OPPORTUNITY_ID":
                changes[key] = self._reference(key, value, self.ids["Opportunity"], "opportunity")
            elif key == "TAGS":
                changes[key] = _tags(value)
            elif key == "CUSTOMFIELDS":
                changes[key] = self._custom_fields(value, record.get("CUSTOMFIELDS") or [])
            elif key == "LINKS":
                changes[key] = self._links(value, record)
        for key in ("PROJECT_NAME", "STATUS"):
            if key not in changes and not record.get(key):
                raise InsightlyError(400, f"{key} is required")
        record.update(changes)

    @staticmethod
    def _reference(key: str, value: Any, known: set[int], what: str, nullable: bool = True) -> int | None:
        if value is None and nullable:
            return None
        ident = _integer(value)
        if ident is None or ident not in known:
            raise InsightlyError(400, f"{key} {value!r} does not match any {what}")
        return ident

    def _custom_fields(self, value: Any, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise InsightlyError(400, "CUSTOMFIELDS must be an array of {FIELD_NAME, FIELD_VALUE}")
        kinds = {d["FIELD_NAME"]: d["FIELD_TYPE"] for d in self.custom_fields}
        merged = {f["FIELD_NAME"]: f["FIELD_VALUE"] for f in current}
        for item in value:
            name = item.get("FIELD_NAME") if isinstance(item, dict) else None
            if name not in kinds:
                raise InsightlyError(
                    400, f"CUSTOMFIELDS: {name!r} is not a project custom field; project fields: {', '.join(sorted(kinds))}"
                )
            field_value = item.get("FIELD_VALUE")
            if field_value is None:
                merged.pop(name, None)
                continue
            if kinds[name] == "NUMERIC" and (isinstance(field_value, bool) or not isinstance(field_value, int | float)):
                raise InsightlyError(400, f"CUSTOMFIELDS: {name} must be a number")
            if kinds[name] == "DATE" and (not isinstance(field_value, str) or not _BODY_DATE.match(field_value)):
                raise InsightlyError(400, f"CUSTOMFIELDS: {name} must be a date in the format yyyy-MM-dd HH:mm:ss")
            if kinds[name] == "TEXT" and not isinstance(field_value, str):
                raise InsightlyError(400, f"CUSTOMFIELDS: {name} must be text")
            merged[name] = field_value
        return [{"FIELD_NAME": k, "FIELD_VALUE": v} for k, v in merged.items()]

    def _links(self, value: Any, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The project's new links: the ones sent, existing ones (by LINK_ID) kept as they are."""
        if not isinstance(value, list):
            raise InsightlyError(400, "LINKS must be an array of links")
        current = {link["LINK_ID"]: link for link in record.get("LINKS") or []}
        out: list[dict[str, Any]] = []
        for item in value:
            if not isinstance(item, dict):
                raise InsightlyError(400, "LINKS must be an array of links")
            if item.get("LINK_ID") is not None:
                existing = current.get(_integer(item["LINK_ID"]) or -1)
                if existing is None:
                    raise InsightlyError(400, f"LINK_ID {item['LINK_ID']!r} is not a link of this project")
                out.append(existing)
                continue
            kind = item.get("LINK_OBJECT_NAME")
            if kind not in LINKABLE:
                raise InsightlyError(400, f"LINK_OBJECT_NAME {kind!r} is not valid; use one of: {', '.join(LINKABLE)} (singular)")
            other = _integer(item.get("LINK_OBJECT_ID"))
            known = self.ids.get(kind)
            exists = (
                other is not None and self._record(other - PROJECT_BASE) is not None
                if kind == "Project"
                else other in (known or set())
            )
            if not exists:
                raise InsightlyError(400, f"LINK_OBJECT_ID {item.get('LINK_OBJECT_ID')!r} does not match any {kind}")
            if any(link["LINK_OBJECT_NAME"] == kind and link["LINK_OBJECT_ID"] == other for link in out):
                continue
            self.next_link_id += 1
            link = self._link(int(record["PROJECT_ID"]), str(kind), int(other or 0), self.next_link_id)
            for extra in ("ROLE", "DETAILS"):
                if isinstance(item.get(extra), str):
                    link[extra] = item[extra]
            out.append(link)
        return out

    # ------------------------------------------------------------------ related records
    def related(self, kind: str) -> list[dict[str, Any]]:
        tables: dict[str, list[dict[str, Any]]] = {
            "Users": self.users,
            "Organisations": self.organisations,
            "Contacts": self.contacts,
            "Opportunities": self.opportunities,
            "Pipelines": self.pipelines,
            "PipelineStages": self.stages,
            "ProjectCategories": self.categories,
        }
        return tables[kind]

    def tags_in_use(self, record_type: str | None) -> list[dict[str, Any]]:
        """`GET /Tags?record_type=`: the distinct tags on records of that type (Insightly has no tag table)."""
        records: Iterable[Mapping[str, Any]]
        if record_type == "projects":
            records = (r for _, r in self._all())
        elif record_type in ("organisations", "contacts", "opportunities"):
            records = self.related(record_type.capitalize())
        elif record_type in ("leads", "emails"):
            records = ()
        else:
            raise InsightlyError(
                400, "record_type is required: contacts, leads, opportunities, organisations, projects or emails"
            )
        names = {t["TAG_NAME"] for r in records for t in r.get("TAGS") or () if t.get("TAG_NAME")}
        return [{"TAG_NAME": name} for name in sorted(names)]


# --------------------------------------------------------------------------- helpers
def project_out(record: Mapping[str, Any], brief: bool) -> dict[str, Any]:
    """A project as answered; `brief` drops the sub-collections."""
    if brief:
        return {k: v for k, v in record.items() if k not in SUB_COLLECTIONS}
    return _copy(record)


def _copy(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key in SUB_COLLECTIONS:
        out[key] = [dict(item) for item in record.get(key) or []]
    return out


def _tags(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise InsightlyError(400, "TAGS must be an array of {TAG_NAME}")
    names: list[str] = []
    for item in value:
        name = item.get("TAG_NAME") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise InsightlyError(400, "TAGS: every tag needs a TAG_NAME")
        if name.strip() not in names:
            names.append(name.strip())
    return [{"TAG_NAME": n} for n in names]


def _field_equals(record: Mapping[str, Any], name: str, value: str | None) -> bool:
    if name.endswith("__c"):
        found = next((f["FIELD_VALUE"] for f in record.get("CUSTOMFIELDS") or [] if f["FIELD_NAME"] == name), None)
    else:
        found = record.get(name)
    return found is not None and str(found) == (value or "")


def page_params(query: Mapping[str, str]) -> tuple[int, int]:
    skip = _integer(query.get("skip", 0))
    top = _integer(query.get("top", DEFAULT_TOP))
    if skip is None or skip < 0:
        raise InsightlyError(400, "skip must be a non-negative integer")
    if top is None or not 1 <= top <= MAX_TOP:
        raise InsightlyError(400, f"top must be an integer from 1 to {MAX_TOP}")
    return skip, top


def _query_date(value: str | None) -> str | None:
    """`updated_after_utc` (ISO 8601, as query dates are) in the body form, for comparing."""
    if value is None:
        return None
    text = value.strip()
    if "T" not in text:
        raise InsightlyError(400, f"updated_after_utc '{value}' is not valid; use ISO 8601 such as 2025-03-01T00:00:00Z")
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise InsightlyError(400, f"updated_after_utc '{value}' is not a valid ISO 8601 date-time") from None
    return stamp(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _flag(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --------------------------------------------------------------------------- HTTP
class InsightlyEmulator(Emulator):
    """Insightly's API v3.1 (api.{pod}.insightly.com/v3.1) over HTTP."""

    name = "insightly"
    base_path = "/v3.1"
    reset_header = None  # Insightly sends limit and remaining only

    def reset(self) -> None:
        self.data = InsightlyData(self.seed, self.dataset_size)
        self.api_key = f"insightly-api-key-{self.seed:04d}-5f2e"
        self.quota_used: dict[str, int] = {}
        self.daily_quota = DAILY_QUOTA

    def context(self, base_url: str) -> dict[str, Any]:
        return {"base_url": base_url, "api_key": self.api_key, "pod": "na1"}

    def error_response(self, status: int, message: str) -> web.Response:
        return json_response({"Message": message}, status)

    def rate_limited_response(self, retry_after: int, headers: dict[str, str]) -> web.Response:
        return json_response({"Message": "API rate limit exceeded"}, 429, {**headers, "Retry-After": str(retry_after)})

    def routes(self, router: web.UrlDispatcher) -> None:
        base = self.base_path
        router.add_get(f"{base}/Projects", self.list_projects)
        router.add_get(f"{base}/Projects/Search", self.list_projects)
        router.add_post(f"{base}/Projects", self.create_project)
        router.add_put(f"{base}/Projects", self.update_project)
        router.add_get(f"{base}/Projects/{{id}}", self.get_project)
        router.add_delete(f"{base}/Projects/{{id}}", self.delete_project)
        router.add_get(f"{base}/CustomFields/Projects", self._simple(lambda q: self.data.custom_fields))
        router.add_get(f"{base}/Users/Me", self._simple(lambda q: self.data.users[0]))
        router.add_get(f"{base}/Tags", self._simple(self._tags))
        for kind, key in (
            ("Users", "USER_ID"),
            ("Organisations", "ORGANISATION_ID"),
            ("Contacts", "CONTACT_ID"),
            ("Opportunities", "OPPORTUNITY_ID"),
            ("Pipelines", "PIPELINE_ID"),
            ("PipelineStages", "STAGE_ID"),
            ("ProjectCategories", "CATEGORY_ID"),
        ):
            router.add_get(f"{base}/{kind}", self._related_list(kind))
            router.add_get(f"{base}/{kind}/{{id}}", self._related_get(kind, key))

    # ------------------------------------------------------------------ plumbing
    def _key_of(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, _password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user  # the password is ignored

    async def _serve(self, request: web.Request, action: Callable[[], Awaitable[Any]], status: int = 200) -> web.StreamResponse:
        key = self._key_of(request)
        if key != self.api_key:
            return json_response(
                {"Message": "Authorization has been denied for this request."},
                401,
                {"WWW-Authenticate": 'Basic realm="api.insightly.com"'},
            )
        used = self.quota_used.get(key, 0) + 1
        self.quota_used[key] = used
        headers = (
            {}
            if self.faults.rate_limit is not None  # the fault limiter's headers speak instead
            else {"X-RateLimit-Limit": str(self.daily_quota), "X-RateLimit-Remaining": str(max(0, self.daily_quota - used))}
        )
        if used > self.daily_quota:
            return json_response({"Message": "API daily request limit exceeded"}, 429, headers)
        try:
            body = await action()
        except InsightlyError as exc:
            return json_response(exc.body, exc.status, headers)
        if isinstance(body, web.StreamResponse):
            body.headers.update(headers)
            return body
        return json_response(body, status, headers)

    async def _json_body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise InsightlyError(400, "The request body is not valid JSON") from None

    # ------------------------------------------------------------------ handlers
    async def list_projects(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            searching = request.path.endswith("/Search")
            if searching and not request.query.get("field_name"):
                raise InsightlyError(400, "field_name is required")
            query = request.query if searching else {k: v for k, v in request.query.items() if not k.startswith("field_")}
            page, total = self.data.list_projects(query)
            if _flag(request.query.get("count_total")):
                return json_response(page, 200, {"X-Total-Count": str(total)})
            return page

        return await self._serve(request, action)

    async def get_project(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            return self.data.get_project(request.match_info["id"])

        return await self._serve(request, action)

    async def create_project(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            self.count("creates")
            return self.data.create_project(await self._json_body(request))

        return await self._serve(request, action, 201)

    async def update_project(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            self.count("updates")
            return self.data.update_project(await self._json_body(request))

        return await self._serve(request, action)

    async def delete_project(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            self.count("deletes")
            self.data.delete_project(request.match_info["id"])
            return web.Response(status=202)

        return await self._serve(request, action)

    def _simple(self, produce: Callable[[Mapping[str, str]], Any]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            async def action() -> Any:
                return produce(request.query)

            return await self._serve(request, action)

        return handler

    def _tags(self, query: Mapping[str, str]) -> Any:
        skip, top = page_params(query)
        return self.data.tags_in_use(query.get("record_type"))[skip : skip + top]

    def _related_list(self, kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        def produce(query: Mapping[str, str]) -> Any:
            skip, top = page_params(query)
            brief = _flag(query.get("brief"))
            return [project_out(r, True) if brief else dict(r) for r in self.data.related(kind)[skip : skip + top]]

        return self._simple(produce)

    def _related_get(self, kind: str, key: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            async def action() -> Any:
                ident = _integer(request.match_info["id"])
                found = next((r for r in self.data.related(kind) if r[key] == ident), None)
                if found is None:
                    raise InsightlyError(404, f"{kind} record with id {request.match_info['id']} not found")
                return found

            return await self._serve(request, action)

        return handler


def build(seed: int = 1, dataset_size: int | None = None) -> InsightlyEmulator:
    """The Insightly emulator (discovered by `unicrm.emulators`)."""
    return InsightlyEmulator(seed=seed, dataset_size=dataset_size)
