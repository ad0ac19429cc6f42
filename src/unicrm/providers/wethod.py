"""Wethod (public REST API, beta): `/api/projects`, the project list and pipeline in one.

Facts: shared/reference/providers-planhat-teamleader-wethod-strawblond.md §3 and the vendor's
"create a project" page (seed 003). A personal token as Bearer plus two required headers,
`Wethod-Company` (the company slug) and `Wethod-Version` (a date); bare JSON arrays;
`limit` (≤ 100) / `offset` paging that ends on a short page; integer ids; relations as plain
ids (`client_id`, `pm_id`, `client_contact_id`, `project_stage_id`); `value` in thousands;
custom fields as dynamic `metadata_<id>` keys; `invalid_data` 400s with `failures[]`;
`updated_at=<op>:<iso>` filters; soft delete.

Decisions where the docs are silent (or only third parties speak):
- Names of related records (account, owner, contact, stage) and custom-field keys come from
  reference lists read once per account and cached (`Lookup`s of the first 100 clients,
  people, contacts, stages, metadata); a relation outside them keeps its id and a null name.
- `status` is `closed` when the project is archived, else `open`. Writing it calls Wethod's
  `:archive` / `:unarchive` actions after the main call (create itself cannot archive).
- Create needs fields the unified model has no place for; they default as the reference
  proposes: `job_order_category_id` from the account context (else the company's first job
  order category), `probability` from the context (else 10, the lowest non-zero step of
  Wethod's older scale: a new, unqualified opportunity), `start_date` the first day of the
  current month (UTC), `duration` from the context (else 1 month), `value` 0. `remote_data`
  overrides any of them.
- `contact` holds at most one contact (Wethod has one `client_contact_id`); `currency` is a
  company setting in Wethod, not a project field, so it is not supported.
- Delete is Wethod's soft delete; a deleted project then reads as 404 like any unknown id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from unicrm.providers.declaration import (
    Auth,
    ContextField,
    ConversionError,
    DateOnly,
    DateTimeFormat,
    Difference,
    Endpoint,
    Errors,
    Field,
    FieldError,
    Hooks,
    IdString,
    Lookup,
    Lookups,
    NativeFilter,
    Op,
    Pagination,
    Provider,
    RateLimitHeaders,
    Resource,
    Scale,
    full_name,
    iso_utc,
)

if TYPE_CHECKING:
    from unicrm.engine.calls import ProviderCall

MAX_PAGE = 100
DEFAULT_PROBABILITY = 10
DEFAULT_DURATION_MONTHS = 1
STATUSES = ("open", "closed")
_METADATA = re.compile(r"^metadata_(\d+)$")
_NUMERIC = IdString(numeric=True)


def _ref_id(value: Any, what: str) -> int:
    if value is None:
        raise ConversionError(f"cannot be cleared: every Wethod project has {what}")
    return int(_NUMERIC.write(value["id"], {}))


def _person_name(person: Any) -> str | None:
    return full_name(person.get("name"), person.get("surname")) if person.__class__ is dict else None


def _ref(ident: Any, name: Any) -> dict[str, Any] | None:
    return None if ident is None else {"id": str(ident), "name": name}


def read_account(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("client_id")
    return _ref(ident, lookups.get("clients", {}).get(str(ident)))


def write_account(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    return {"client_id": _ref_id(value, "a client")}


def read_owner(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("pm_id")
    return _ref(ident, _person_name(lookups.get("persons", {}).get(str(ident))))


def write_owner(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    return {"pm_id": _ref_id(value, "a project manager")}


def read_contact(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("client_contact_id")
    if ident is None:
        return []
    return [{"id": str(ident), "name": _person_name(lookups.get("contacts", {}).get(str(ident)))}]


def write_contact(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    if not value:
        return {"client_contact_id": None}
    if len(value) > 1:
        raise ConversionError("Wethod links a project to one client contact: send at most one")
    return {"client_contact_id": int(_NUMERIC.write(value[0]["id"], {}))}


def read_stage(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("project_stage_id")
    return _ref(ident, lookups.get("stages", {}).get(str(ident)))


def read_status(record: Mapping[str, Any], lookups: Lookups) -> Any:
    archived = record.get("is_archived")
    if archived is None:
        return None
    return "closed" if archived is True or str(archived).lower() in ("true", "1") else "open"


def write_status(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    # Nothing goes into the project body: `WethodHooks.after_write` archives or unarchives.
    if value not in STATUSES:
        raise ConversionError(f"{value!r} is not accepted by Wethod; accepted values: {', '.join(STATUSES)}")
    return {}


# A Wethod project's own keys; whatever else a record holds is a candidate `metadata_<id>` key.
# Subtracting this set (C speed) spares a Python-level check of every key of every record.
_PROJECT_KEYS = frozenset(
    {
        "account_id",
        "archived_on",
        "billing_group_id",
        "business_unit_id",
        "client_contact_id",
        "client_id",
        "created_at",
        "date_start",
        "due_date",
        "duration",
        "external_cost_percentage",
        "id",
        "is_archived",
        "job_order",
        "job_order_category_id",
        "name",
        "pm_id",
        "probability",
        "project_stage_id",
        "project_type_id",
        "purchase_order",
        "reason_why_id",
        "signed_on",
        "updated_at",
        "value",
        "deleted_at",
        "start_date",
    }
)


def read_custom_fields(record: Mapping[str, Any], lookups: Lookups) -> Any:
    definitions = lookups.get("metadata", {})
    out: dict[str, Any] = {}
    for key in record.keys() - _PROJECT_KEYS:
        # `metadata_<digits>` (checked without a regex: this runs for every record)
        if not (key.startswith("metadata_") and key[9:].isdigit()):
            continue
        ident = key[9:]
        definition = definitions.get(ident)
        name = definition.get("key") if definition.__class__ is dict else None
        out[str(name or ident)] = record[key]
    return out


def write_custom_fields(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    definitions = lookups.get("metadata", {})
    by_key = {str(d.get("key")): ident for ident, d in definitions.items() if isinstance(d, Mapping)}
    out: dict[str, Any] = {}
    for key, field_value in (value or {}).items():
        name = str(key)
        if _METADATA.match(name):
            out[name] = field_value
        elif name.isdigit():
            out[f"metadata_{name}"] = field_value
        elif name in by_key:
            out[f"metadata_{by_key[name]}"] = field_value
        else:
            known = ", ".join(sorted(by_key)) or "none"
            raise ConversionError(f"{name!r} is not a Wethod project metadata key; known keys: {known}")
    return out


# --------------------------------------------------------------------------- create defaults
def default_job_order_category(context: Mapping[str, Any], lookups: Lookups) -> int:
    configured = context.get("job_order_category_id")
    if configured not in (None, ""):
        return int(str(configured))
    categories = lookups.get("job_order_categories", {})
    if not categories:
        raise ConversionError(
            "Wethod requires a job order category and this company has none: set job_order_category_id "
            "in the integrated account's context or send it in remote_data"
        )
    return int(next(iter(categories)))


def default_probability(context: Mapping[str, Any], lookups: Lookups) -> int:
    configured = context.get("default_probability")
    return DEFAULT_PROBABILITY if configured in (None, "") else int(str(configured))


def default_duration(context: Mapping[str, Any], lookups: Lookups) -> int:
    configured = context.get("default_duration")
    return DEFAULT_DURATION_MONTHS if configured in (None, "") else int(str(configured))


def default_start_date(context: Mapping[str, Any], lookups: Lookups) -> str:
    return datetime.now(UTC).strftime("%Y-%m-01")


# --------------------------------------------------------------------------- filters, errors
def updated_at_filter(op: str, moment: datetime) -> Mapping[str, Any]:
    return {"updated_at": f"{op}:{iso_utc(moment)}"}


def field_errors(body: Any) -> list[FieldError]:
    failures = body.get("failures") if isinstance(body, Mapping) else None
    if not isinstance(failures, list):
        return []
    return [
        FieldError(str(f.get("field", "")), str(f.get("message", "")))
        for f in failures
        if isinstance(f, Mapping) and f.get("field")
    ]


# --------------------------------------------------------------------------- hooks
ARCHIVE = Endpoint("POST", "/api/projects/{id}:archive")
UNARCHIVE = Endpoint("POST", "/api/projects/{id}:unarchive")
GET = Endpoint("GET", "/api/projects/{id}")


class WethodHooks(Hooks):
    """Status lives behind Wethod's archive actions, which the project body cannot set."""

    async def after_write(
        self, op: Op, call: ProviderCall, record_id: str, unified: Mapping[str, Any], before: Mapping[str, Any] | None
    ) -> bool:
        status = unified.get("status")
        if status is None:
            return False
        want_archived = status == "closed"
        if op == "create":
            if not want_archived:
                return False  # a new project is never archived
        else:
            current = (await call.call(GET, record_id)).json()
            if isinstance(current, Mapping) and read_status(current, {}) == status:
                return False
        await call.call(ARCHIVE if want_archived else UNARCHIVE, record_id)
        return True


# ----------------------------------------------------------------------------- other resources
# Persons (a project's pm_id and account_id), clients (client_id), client contacts
# (client_contact_id) and project stages (project_stage_id): bare arrays paged with limit/offset.
CLIENT_NAMES = Lookup(
    "clients", Endpoint("GET", "/api/clients", query={"limit": MAX_PAGE}), None, key="id", value="corporate_name"
)


def read_person_name(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _person_name(record)


def read_person_active(record: Mapping[str, Any], lookups: Lookups) -> Any:
    archived = record.get("is_archived")
    return None if archived is None else not archived


def read_email_list(record: Mapping[str, Any], lookups: Lookups) -> Any:
    email = record.get("email")
    return [{"id": None, "email": email, "type": None}] if email else []


def _reference(kind: str) -> dict[Op, Endpoint]:
    return {"list": Endpoint("GET", f"/api/{kind}"), "get": Endpoint("GET", f"/api/{kind}/{{id}}")}


_ID = Field("id", read="id", conv=IdString(numeric=True))
RESOURCES = {
    "users": Resource(
        endpoints=_reference("persons"),
        fields=(
            _ID,
            Field("name", read=read_person_name),
            Field("email", read="email"),
            Field("is_active", read=read_person_active),
        ),
        docs_url="https://docs.wethod.com/",
        notes=("Wethod persons: project managers (pm_id) and account managers (account_id).",),
    ),
    "accounts": Resource(
        endpoints=_reference("clients"),
        fields=(_ID, Field("name", read="corporate_name")),
        docs_url="https://docs.wethod.com/",
        notes=("Wethod clients: a project's client_id. acronym and legal_name are in remote_data.",),
    ),
    "contacts": Resource(
        endpoints=_reference("contacts"),
        fields=(
            _ID,
            Field("first_name", read="name"),
            Field("last_name", read="surname"),
            Field("name", read=read_person_name),
            Field("account", read=read_account),
            Field("email_addresses", read=read_email_list),
        ),
        lookups=(CLIENT_NAMES,),
        docs_url="https://docs.wethod.com/",
        notes=("Client contacts; the account name comes from the first 100 clients, cached per account.",),
    ),
    "stages": Resource(
        endpoints=_reference("project-stages"),
        fields=(_ID, Field("name", read="name"), Field("position", read="hierarchy")),
        docs_url="https://docs.wethod.com/",
        notes=("Project stages; position is Wethod's hierarchy.",),
    ),
}


PROVIDER = Provider(
    name="wethod",
    label="Wethod",
    docs_url="https://docs.wethod.com/reference/create-project",
    base_url="https://api.wethod.com",
    proxy_prefix="/api",
    context=(
        ContextField(
            "api_token",
            "Personal API token (Wethod → account settings)",
            secret=True,
            form=True,
            label="API token",
            where="In Wethod: your account settings → API tokens.",
        ),
        ContextField(
            "company",
            "Company slug, e.g. acme for acme.wethod.com (sent as Wethod-Company)",
            form=True,
            label="Company",
            where="The first part of your Wethod address: acme for acme.wethod.com.",
        ),
        ContextField("version", "Wethod API version date (sent as Wethod-Version)", required=False, default="2024-06-15"),
        ContextField("job_order_category_id", "Job order category of new projects (default: the first)", required=False),
        ContextField("default_probability", "Probability (%) of new projects (default 10)", required=False),
        ContextField("default_duration", "Duration in months of new projects (default 1)", required=False),
        ContextField("base_url", "API base URL override (a proxy or an emulator)", required=False),
    ),
    auth=Auth("bearer", token_key="api_token"),
    headers={
        "Accept": "application/json",
        "Wethod-Company": "{company}",
        "Wethod-Version": "{version}",
    },
    endpoints={
        "list": Endpoint("GET", "/api/projects"),
        "get": GET,
        "create": Endpoint("POST", "/api/projects"),
        "update": Endpoint("PATCH", "/api/projects/{id}"),
        "delete": Endpoint("DELETE", "/api/projects/{id}", returns="nothing"),
    },
    list_path=None,
    pagination=Pagination("offset", size_param="limit", offset_param="offset", max_size=MAX_PAGE, default_size=MAX_PAGE),
    fields=(
        Field("id", read="id", conv=IdString(numeric=True)),
        Field("name", read="name", write="name", required=("create",)),
        Field("amount", read="value", write="value", conv=Scale(1000), note="Wethod stores the value in thousands"),
        Field("close_date", read="due_date", write="due_date", conv=DateOnly()),
        Field(
            "status",
            read=read_status,
            write=write_status,
            remote_fields=("is_archived",),
            note="accepts open, closed: closed archives the project, open unarchives it",
        ),
        Field(
            "owner",
            read=read_owner,
            write=write_owner,
            required=("create",),
            remote_fields=("pm_id",),
            note="the project manager (pm_id)",
        ),
        Field(
            "account",
            read=read_account,
            write=write_account,
            required=("create",),
            remote_fields=("client_id",),
            note="the client (client_id)",
        ),
        Field(
            "contact",
            read=read_contact,
            write=write_contact,
            remote_fields=("client_contact_id",),
            note="at most one: the client contact (client_contact_id)",
        ),
        Field("stage", read=read_stage, remote_fields=("project_stage_id",)),
        Field(
            "custom_fields",
            read=read_custom_fields,
            write=write_custom_fields,
            remote_fields=("metadata_*",),
            note="project metadata, keyed by metadata key (or id)",
        ),
        Field("created_at", read="created_at", conv=DateTimeFormat()),
        Field("updated_at", read="updated_at", conv=DateTimeFormat()),
    ),
    create_defaults={
        "job_order_category_id": default_job_order_category,
        "probability": default_probability,
        "start_date": default_start_date,
        "duration": default_duration,
        "value": 0,
    },
    filters=(NativeFilter("updated_at", ("gt", "gte", "lt", "lte"), updated_at_filter),),
    errors=Errors(field_errors=field_errors),
    rate_limit=RateLimitHeaders(retry_after="x-ratelimit-retry-after"),
    lookups=(
        Lookup("clients", Endpoint("GET", "/api/clients", query={"limit": MAX_PAGE}), None, key="id", value="corporate_name"),
        Lookup("persons", Endpoint("GET", "/api/persons", query={"limit": MAX_PAGE}), None, key="id", value=""),
        Lookup("contacts", Endpoint("GET", "/api/contacts", query={"limit": MAX_PAGE}), None, key="id", value=""),
        Lookup("stages", Endpoint("GET", "/api/project-stages", query={"limit": MAX_PAGE}), None, key="id", value="name"),
        Lookup("metadata", Endpoint("GET", "/api/project-metadata", query={"limit": MAX_PAGE}), None, key="id", value=""),
        Lookup(
            "job_order_categories",
            Endpoint("GET", "/api/job-order-categories", query={"limit": MAX_PAGE}),
            None,
            key="id",
            value="name",
            ttl_s=3600,
        ),
    ),
    hooks=WethodHooks(),
    differences=(
        Difference("account", "create", "not listed", "required", "Wethod requires client_id on every project"),
        Difference("owner", "create", "not listed", "required", "Wethod requires a project manager (pm_id)"),
        Difference("amount", "all", "not listed", "supported, × 1000", "Wethod's value is in thousands"),
        Difference("contact", "create", "not listed", "at most one", "Wethod holds one client_contact_id"),
        Difference(
            "status",
            "all",
            "not listed",
            "open, closed",
            "derived from is_archived; written through the :archive / :unarchive actions",
        ),
        Difference("close_date", "create", "not listed", "date only", "due_date is a date"),
        Difference("currency", "all", "not listed", "not supported", "the currency is a company setting in Wethod"),
        Difference("custom_fields", "all", "not listed", "supported", "metadata_<id> keys, named by metadata key"),
    ),
    notes=(
        "Wethod is not in Truto's matrix; the mapping is our own.",
        "Create defaults: job_order_category_id (context, else the first category), probability (context, else 10), "
        "start_date (first day of this month), duration (context, else 1), value 0; remote_data overrides them.",
        "Names of accounts, owners, contacts and stages come from the first 100 of each, cached per account.",
        "Delete is a soft delete; a deleted project reads as 404.",
    ),
    resources=RESOURCES,
)
