"""StrawBlond ("Blond", REST API beta, Laravel): `/project`.

Facts: shared/reference/providers-planhat-teamleader-wethod-strawblond.md §4 and the vendor's
project reference page (seed 004). A personal API key as Bearer and `Accept: application/json`
on every request; `{data, links, meta}` pages of at most 50 (`page`, `meta.last_page`); hashid
string ids; single records answered bare (not under `data`, as the reference page shows); `name`, `company_id`, `member_id` (the project leader) and `starts_at` required on
create; `PUT /project/{id}`; `status` (`active`, `completed`) writable on update only; `due_at`
read-only; `custom_fields` a flat object that an update REPLACES; delete answers 204 (soft
delete); Laravel 422 validation errors `{"message", "errors": {"field": ["..."]}}`.

Decisions where the docs are silent:
- `starts_at` has no unified field: create defaults it to today (UTC, a date); send
  `remote_data.starts_at` to choose another day.
- Read status: `active` → `in progress` (StrawBlond has no "not started"/"open" state: an
  active project is one being worked on), `completed` → `completed`. Write status (update
  only; StrawBlond creates every project active): `completed`, `closed`, `cancelled`,
  `abandoned` → `completed` (its one terminal state); `open`, `in progress`, `not started`,
  `deferred` → `active`. The original value stays in `remote_data`.
- `amount` is `costs_limit`, the project's budget cap (StrawBlond has no other project value);
  there is no currency field (the organisation's currency applies), so `currency` is unsupported.
- `close_date` is `due_at`, read-only (not in the create/update tables).
- `custom_fields` keep PATCH semantics: on update the current object is read and the keys sent
  are merged over it (`null` sets a key to null, as StrawBlond values may be null), so the
  other keys survive StrawBlond's replace. A dry run shows the body before that merge.
- Owner names come from `include=owner.user` (the member's user); the account name from the
  embedded `company`. Lists, reads and writes all ask for the include.
- Page size: `per_page` (the vendor SDK's per-page pagination, v1.2), at most 50.
- No updated-since filter: `updated_at`/`created_at` filters are applied by unicrm per page.
- Rate limits are undocumented; Laravel's `X-RateLimit-*` / `Retry-After` headers are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from unicrm.providers.declaration import (
    Auth,
    ContextField,
    ConversionError,
    DateTimeFormat,
    Difference,
    Endpoint,
    Enum,
    Errors,
    Field,
    FieldError,
    Hooks,
    IdString,
    Lookups,
    Number,
    Op,
    Pagination,
    Provider,
    RateLimitHeaders,
    Resource,
    full_name,
)

if TYPE_CHECKING:
    from unicrm.engine.calls import ProviderCall

MAX_PAGE = 50
INCLUDE = {"include": "owner.user"}
STATUS = Enum(
    {"active": "in progress", "completed": "completed"},
    write_map={
        "open": "active",
        "in progress": "active",
        "not started": "active",
        "deferred": "active",
        "completed": "completed",
        "closed": "completed",
        "cancelled": "completed",
        "abandoned": "completed",
    },
)


def read_account(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("company_id")
    company = record.get("company")
    if ident is None and isinstance(company, dict):
        ident = company.get("id")
    if ident is None:
        return None
    return {"id": str(ident), "name": company.get("name") if isinstance(company, dict) else None}


def write_account(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    if value is None:
        raise ConversionError("cannot be cleared: every StrawBlond project belongs to a company")
    return {"company_id": str(value["id"])}


def _member_name(member: Mapping[str, Any]) -> str | None:
    user = member.get("user")
    if isinstance(user, dict) and user.get("name"):
        return str(user["name"])
    name = member.get("name")
    return str(name) if name else None


def read_owner(record: Mapping[str, Any], lookups: Lookups) -> Any:
    owner = record.get("owner")
    if not isinstance(owner, dict) or owner.get("id") is None:
        return None
    return {"id": str(owner["id"]), "name": _member_name(owner)}


def write_owner(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    if value is None:
        raise ConversionError("cannot be cleared: every StrawBlond project has a project leader")
    return {"member_id": str(value["id"])}


def read_custom_fields(record: Mapping[str, Any], lookups: Lookups) -> Any:
    custom = record.get("custom_fields")
    return dict(custom) if isinstance(custom, dict) else None


def write_custom_fields(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    if value is None:
        raise ConversionError('cannot be cleared as a whole: send {"key": null} for each field to clear')
    return {"custom_fields": dict(value)}


def default_starts_at(context: Mapping[str, Any], lookups: Lookups) -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def field_errors(body: Any) -> list[FieldError]:
    """Laravel's `{"message", "errors": {"field": ["...", ...]}}`, one error per field."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, Mapping):
        return []
    out = []
    for key, messages in errors.items():
        text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        out.append(FieldError(str(key), text))
    return out


GET = Endpoint("GET", "/project/{id}", query=INCLUDE)


class StrawBlondHooks(Hooks):
    """StrawBlond replaces `custom_fields` whole on update: merge the keys sent over the current ones."""

    async def before_write(
        self,
        op: Op,
        call: ProviderCall,
        record_id: str | None,
        unified: Mapping[str, Any],
        body: dict[str, Any],
        before: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        sent = body.get("custom_fields")
        if op != "update" or record_id is None or "custom_fields" not in unified or not isinstance(sent, dict):
            return body
        current = await call.call(GET, record_id)
        record = current.json()
        existing = record.get("custom_fields") if isinstance(record, dict) else None
        if isinstance(existing, dict):
            body["custom_fields"] = {**existing, **sent}
        return body


# ----------------------------------------------------------------------------- other resources
# Members (a project's member_id: the project leader), companies (company_id) and contacts, all
# Laravel pages like projects; a single record comes bare.


def read_member_name(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _member_name(record)


def read_member_email(record: Mapping[str, Any], lookups: Lookups) -> Any:
    user = record.get("user")
    return user.get("email") if isinstance(user, dict) else None


def read_contact_name(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return full_name(record.get("firstname"), record.get("lastname"))


def read_contact_emails(record: Mapping[str, Any], lookups: Lookups) -> Any:
    email = record.get("email")
    return [{"id": None, "email": email, "type": None}] if email else []


def _model(name: str) -> dict[Op, Endpoint]:
    return {"list": Endpoint("GET", f"/{name}"), "get": Endpoint("GET", f"/{name}/{{id}}")}


RESOURCES = {
    "users": Resource(
        endpoints=_model("member"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read=read_member_name),
            Field("email", read=read_member_email),
            Field("created_at", read="created_at", conv=DateTimeFormat()),
        ),
        notes=("StrawBlond members: a project's leader (member_id); the person is the member's user.",),
    ),
    "accounts": Resource(
        endpoints=_model("company"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read="name"),
            Field("custom_fields", read=read_custom_fields),
            Field("created_at", read="created_at", conv=DateTimeFormat()),
        ),
    ),
    "contacts": Resource(
        endpoints=_model("contact"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("first_name", read="firstname"),
            Field("last_name", read="lastname"),
            Field("name", read=read_contact_name),
            Field("account", read=read_account),
            Field("email_addresses", read=read_contact_emails),
        ),
    ),
}


PROVIDER = Provider(
    name="strawblond",
    label="StrawBlond",
    docs_url="https://developers.strawblond.com/reference/project.html",
    base_url="https://api.strawblond.com/api",
    context=(
        ContextField(
            "api_key",
            "Personal API key (StrawBlond → user settings → API keys)",
            secret=True,
            form=True,
            label="API key",
            where="In StrawBlond: your user settings → API keys → Create key.",
        ),
        ContextField(
            "base_url",
            "API base URL override (https://api.blond.swiss/api after the rebrand, a proxy, an emulator)",
            required=False,
        ),
    ),
    auth=Auth("bearer", token_key="api_key"),
    headers={"Accept": "application/json"},
    endpoints={
        "list": Endpoint("GET", "/project", query=INCLUDE),
        "get": GET,
        "create": Endpoint("POST", "/project", query=INCLUDE),
        "update": Endpoint("PUT", "/project/{id}", query=INCLUDE),
        "delete": Endpoint("DELETE", "/project/{id}", returns="nothing"),
    },
    list_path="data",
    pagination=Pagination(
        "page_number",
        size_param="per_page",
        page_param="page",
        last_page_path="meta.last_page",
        max_size=MAX_PAGE,
        default_size=MAX_PAGE,
    ),
    fields=(
        Field("id", read="id", conv=IdString()),
        Field("name", read="name", write="name", required=("create",)),
        Field("description", read="description", write="description"),
        Field(
            "account",
            read=read_account,
            write=write_account,
            required=("create",),
            remote_fields=("company_id",),
            note="the company (company_id)",
        ),
        Field(
            "owner",
            read=read_owner,
            write=write_owner,
            required=("create",),
            remote_fields=("member_id",),
            note="the project leader (member_id)",
        ),
        Field("amount", read="costs_limit", write="costs_limit", conv=Number(), note="the project's cost limit (costs_limit)"),
        Field("close_date", read="due_at", conv=DateTimeFormat(), note="due_at is read-only in StrawBlond's API"),
        Field(
            "status",
            read="status",
            write="status",
            conv=STATUS,
            write_ops=("update",),
            note="update only (new projects are active); completed, closed, cancelled, abandoned → completed, "
            "open, in progress, not started, deferred → active",
        ),
        Field(
            "custom_fields",
            read=read_custom_fields,
            write=write_custom_fields,
            remote_fields=("custom_fields",),
            note="flat key → value; on update only the keys sent change",
        ),
        Field("created_at", read="created_at", conv=DateTimeFormat()),
        Field("updated_at", read="updated_at", conv=DateTimeFormat()),
    ),
    create_defaults={"starts_at": default_starts_at},
    errors=Errors(field_errors=field_errors),
    rate_limit=RateLimitHeaders(limit="X-RateLimit-Limit", remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset"),
    hooks=StrawBlondHooks(),
    truto_required_on_create=(),
    # The host after the 2026 rebrand to Blond.
    origins=("https://api.blond.swiss",),
    differences=(
        Difference("account", "create", "not listed", "required", "StrawBlond requires company_id on every project"),
        Difference("owner", "create", "not listed", "required", "StrawBlond requires a project leader (member_id)"),
        Difference(
            "status",
            "all",
            "not listed",
            "read; write on update only",
            "active/completed; completed, closed, cancelled, abandoned write completed, the rest active",
        ),
        Difference("close_date", "all", "not listed", "read-only", "due_at is not writable in StrawBlond's API"),
        Difference("amount", "all", "not listed", "supported: costs_limit", "the project's cost limit is its only value"),
        Difference("currency", "all", "not listed", "not supported", "the currency is an organisation setting"),
        Difference("custom_fields", "update", "not listed", "merged", "StrawBlond replaces the object; unicrm merges"),
    ),
    notes=(
        "StrawBlond is not in Truto's matrix; the mapping is our own.",
        "starts_at (required by StrawBlond) defaults to today (UTC); remote_data.starts_at overrides it.",
        "Status is written on update only; StrawBlond has two states, so four unified values map to each.",
        "custom_fields on update: the current object is read and the keys sent are merged over it.",
        'Delete is a soft delete answering 204; the response is {"id": ...}.',
    ),
    resources=RESOURCES,
)
