"""Pipeliner CRM (REST API v100): `/entities/Projects`.

Facts: shared/reference/providers-capsule-insightly-pipeliner.md §3. HTTP Basic with an API
application's user name and password, `{success, data}` envelopes, cursor paging
(`first`/`after`, `page_info`), UUIDs, `revenue_goal` required on create, `status` computed
by Pipeliner (read-only), relations returned as objects with `expand=`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unicrm.providers.declaration import (
    Auth,
    ContextField,
    ConversionError,
    DateOnly,
    DateTimeFormat,
    Difference,
    Endpoint,
    Enum,
    Errors,
    Field,
    FieldError,
    IdString,
    Lookup,
    Lookups,
    NativeFilter,
    Number,
    Op,
    Pagination,
    Provider,
    RateLimitHeaders,
    Resource,
    full_name,
)

EXPAND = {"expand": "owner,account,contact_relations.contact"}
DEFAULT_CURRENCY = "EUR"


def _person_name(obj: Mapping[str, Any]) -> str | None:
    name = obj.get("formatted_name") or obj.get("name")
    if name:
        return str(name)
    return full_name(obj.get("first_name"), obj.get("last_name"))


def _ref(record: Mapping[str, Any], id_key: str, obj_key: str) -> Any:
    ident = record.get(id_key)
    if not ident:
        return None
    obj = record.get(obj_key)
    return {"id": str(ident), "name": _person_name(obj) if isinstance(obj, dict) else None}


def read_owner(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _ref(record, "owner_id", "owner")


def read_account(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _ref(record, "account_id", "account")


def write_owner(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    return {"owner_id": None if value is None else str(value["id"])}


def write_account(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    return {"account_id": None if value is None else str(value["id"])}


def read_contacts(record: Mapping[str, Any], lookups: Lookups) -> Any:
    out = []
    for rel in record.get("contact_relations") or []:
        if not isinstance(rel, dict):
            continue  # an unexpanded relation URI carries no contact id
        contact = rel.get("contact")
        ident = rel.get("contact_id") or (contact.get("id") if isinstance(contact, dict) else None)
        if ident:
            out.append({"id": str(ident), "name": _person_name(contact) if isinstance(contact, dict) else None})
    return out


def write_contacts(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    # The first contact is the primary one (Pipeliner derives `primary_contact` from it).
    return {"contact_relations": [{"contact_id": str(c["id"]), "is_primary": i == 0} for i, c in enumerate(value or [])]}


def read_currency(record: Mapping[str, Any], lookups: Lookups) -> Any:
    goal = record.get("revenue_goal")
    if not isinstance(goal, dict) or not goal.get("currency_id"):
        return None
    return lookups.get("currency_codes", {}).get(str(goal["currency_id"]))


def write_amount(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    amount = 0 if value is None else value
    return {"revenue_goal": {"base_value": amount, "value_foreign": amount}}


def _currency_id(code: str, lookups: Lookups) -> str:
    ids = lookups.get("currency_ids", {})
    if code not in ids:
        raise ConversionError(
            f"{code!r} is not a currency of this Pipeliner space; available: {', '.join(sorted(ids)) or 'none'}"
        )
    return str(ids[code])


def write_currency(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    if value is None:
        return {}
    return {"revenue_goal": {"currency_id": _currency_id(str(value).upper(), lookups)}}


def default_revenue_goal(context: Mapping[str, Any], lookups: Lookups) -> dict[str, Any]:
    """Pipeliner requires a revenue goal: default to 0 in the account's currency (EUR if unset)."""
    code = str(context.get("default_currency") or DEFAULT_CURRENCY).upper()
    return {"base_value": 0, "value_foreign": 0, "currency_id": _currency_id(code, lookups)}


def modified_filter(api_field: str) -> Any:
    def build(op: str, moment: Any) -> Mapping[str, Any]:
        return {"filter": {api_field: moment.strftime("%Y-%m-%d %H:%M:%S")}, "filter-op": {api_field: op}}

    return build


def field_errors(body: Any) -> list[FieldError]:
    if not isinstance(body, Mapping):
        return []
    out = []
    for item in body.get("errors") or []:
        if isinstance(item, dict) and item.get("field"):
            out.append(FieldError(str(item["field"]), str(item.get("message", ""))))
    if not out and body.get("field"):
        out.append(FieldError(str(body["field"]), str(body.get("message", ""))))
    return out


# ----------------------------------------------------------------------------- other resources
# Clients (users), Accounts and Contacts: the entities a project's owner_id, account_id and
# contact_relations point at. Pipeliner keeps up to five emails and phones as email1..email5 and
# phone1..phone5, and one postal address as flat fields.
OWNER = {"expand": "owner"}
OPPORTUNITY_EXPAND = {"expand": "owner,primary_account,step"}
CONTACT_EXPAND = {"expand": "owner,primary_account"}


# Key names built once: these run for every account and contact of a page.
_PHONES = tuple(f"phone{n}" for n in range(1, 6))
_EMAILS = tuple(f"email{n}" for n in range(1, 6))


def read_phones(record: Mapping[str, Any], lookups: Lookups) -> Any:
    out = []
    for key in _PHONES:
        value = record.get(key)
        if value:
            out.append({"id": None, "number": value, "extension": None, "type": key})
    return out


def read_emails(record: Mapping[str, Any], lookups: Lookups) -> Any:
    out = []
    for key in _EMAILS:
        value = record.get(key)
        if value:
            out.append({"id": None, "email": value, "type": key})
    return out


def read_address(record: Mapping[str, Any], lookups: Lookups) -> Any:
    street, city, state = record.get("address"), record.get("city"), record.get("state_province")
    postcode, country = record.get("zip_code"), record.get("country")
    if not (street or city or state or postcode or country):
        return []
    return [
        {
            "id": None,
            "street_1": street,
            "street_2": None,
            "city": city,
            "state": state,
            "postal_code": postcode,
            "country": country,
            "type": None,
        }
    ]


def read_home_page(record: Mapping[str, Any], lookups: Lookups) -> Any:
    page = record.get("home_page")
    return [{"url": page, "type": "home_page"}] if page else []


def read_primary_account(record: Mapping[str, Any], lookups: Lookups) -> Any:
    # Contacts and opportunities have only the `primary_account` relation (no
    # `primary_account_id` key in Pipeliner's schemas); with `expand` it is the Account.
    obj = record.get("primary_account")
    if not isinstance(obj, dict) or not obj.get("id"):
        return None
    return {"id": str(obj["id"]), "name": obj.get("name")}


def read_person_name(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _person_name(record)


def read_step(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("step_id")
    if not ident:
        return None
    obj = record.get("step")
    return {"id": str(ident), "name": obj.get("name") if isinstance(obj, dict) else None}


def read_value_currency(record: Mapping[str, Any], lookups: Lookups) -> Any:
    value = record.get("value")
    if not isinstance(value, dict) or not value.get("currency_id"):
        return None
    return lookups.get("currency_codes", {}).get(str(value["currency_id"]))


def read_pipeline(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("pipeline_id")
    return {"id": str(ident), "name": None} if ident else None


def _entity(name: str, query: Mapping[str, Any] | None = None) -> dict[Op, Endpoint]:
    return {
        "list": Endpoint("GET", f"/entities/{name}", query=query or {}),
        "get": Endpoint("GET", f"/entities/{name}/{{id}}", query=query or {}, record_path="data"),
    }


STAMPS = (
    Field("created_at", read="created", conv=DateTimeFormat()),
    Field("updated_at", read="modified", conv=DateTimeFormat()),
)
ENTITY_FILTERS = (
    NativeFilter("updated_at", ("gt", "gte", "lt", "lte"), modified_filter("modified")),
    NativeFilter("created_at", ("gt", "gte", "lt", "lte"), modified_filter("created")),
)

RESOURCES = {
    "users": Resource(
        endpoints=_entity("Clients"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read=read_person_name),
            Field("email", read="email"),
            *STAMPS,
        ),
        filters=ENTITY_FILTERS,
        docs_url="https://developers.pipelinersales.com/api-docs/tutorials-and-articles/create-account",
        notes=("Pipeliner calls its users Clients; a project's owner_id is a Client id.",),
    ),
    "accounts": Resource(
        endpoints=_entity("Accounts", OWNER),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read="name"),
            Field("description", read="comments"),
            Field("owner", read=read_owner),
            Field("website", read="home_page"),
            Field("addresses", read=read_address),
            Field("phone_numbers", read=read_phones),
            Field("urls", read=read_home_page),
            *STAMPS,
        ),
        filters=ENTITY_FILTERS,
        docs_url="https://developers.pipelinersales.com/api-docs/tutorials-and-articles",
    ),
    "contacts": Resource(
        endpoints=_entity("Contacts", CONTACT_EXPAND),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("first_name", read="first_name"),
            Field("last_name", read="last_name"),
            Field("name", read=read_person_name),
            Field("title", read="position"),
            Field("owner", read=read_owner),
            Field("account", read=read_primary_account),
            Field("addresses", read=read_address),
            Field("email_addresses", read=read_emails),
            Field("phone_numbers", read=read_phones),
            *STAMPS,
        ),
        filters=ENTITY_FILTERS,
        docs_url="https://developers.pipelinersales.com/api-docs/tutorials-and-articles/create-contact",
    ),
    "opportunities": Resource(
        endpoints=_entity("Opportunities", OPPORTUNITY_EXPAND),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read="name"),
            Field("owner", read=read_owner),
            Field("account", read=read_primary_account),
            Field("stage", read=read_step, note="the pipeline step"),
            Field("amount", read="value.value_foreign", conv=Number()),
            Field("currency", read=read_value_currency),
            Field("close_date", read="closing_date", conv=DateOnly()),
            *STAMPS,
        ),
        filters=ENTITY_FILTERS,
        lookups=(
            Lookup(
                "currency_codes", Endpoint("GET", "/entities/Currencies"), records_path="data", key="id", value="code", ttl_s=3600
            ),
        ),
        docs_url="https://developers.pipelinersales.com/api-docs/tutorials-and-articles/create-opportunity",
    ),
    "stages": Resource(
        endpoints=_entity("Steps"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read="name"),
            Field("position", read="sort_order", conv=Number()),
            Field("pipeline", read=read_pipeline),
            *STAMPS,
        ),
        filters=ENTITY_FILTERS,
        docs_url="https://developers.pipelinersales.com/api-docs/tutorials-and-articles/create-opportunity",
        notes=("Pipeline steps (an opportunity's step_id).",),
    ),
    "tags": Resource(
        endpoints=_entity("Tags"),
        list_path="data",
        fields=(Field("id", read="id", conv=IdString()), Field("name", read="name"), *STAMPS),
        filters=ENTITY_FILTERS,
        docs_url="http://pipeliner-api-doc.s3-website-eu-west-1.amazonaws.com/latest/rest/space/openapi.json",
        notes=("Pipeliner's Tag entity (a record's tags are TagRelations pointing at these).",),
    ),
}


PROVIDER = Provider(
    name="pipeliner",
    label="Pipeliner CRM",
    docs_url="https://developers.pipelinersales.com/api-docs/",
    base_url="https://{region}.api.pipelinersales.com/api/v100/rest/spaces/{space_id}",
    proxy_prefix="/entities",
    context=(
        ContextField(
            "username",
            "API application user name (Administration → Applications)",
            secret=True,
            form=True,
            label="API username",
            where="In Pipeliner: Administration → Unit, Users & Roles → Applications → Show API Access.",
        ),
        ContextField(
            "password",
            "API application password",
            secret=True,
            form=True,
            label="API password",
            where="Shown once, next to the username, when the API application is created.",
        ),
        ContextField(
            "space_id",
            "The team space id",
            form=True,
            label="Space ID",
            where="Listed with the API access of the application (Show API Access).",
        ),
        ContextField(
            "region",
            "Service region: us-east, eu-central, ca-central or ap-southeast",
            required=False,
            default="us-east",
            form=True,
            label="Region",
            where="The first part of the Service URL shown with the API access (us-east, eu-central, ...).",
            pattern="us-east|eu-central|ca-central|ap-southeast",
        ),
        ContextField("default_currency", "Currency code of the default revenue goal (default EUR)", required=False),
        ContextField("base_url", "API base URL override (a proxy or an emulator)", required=False),
    ),
    auth=Auth("basic", username_key="username", password_key="password"),
    headers={"Accept": "application/json"},
    endpoints={
        "list": Endpoint("GET", "/entities/Projects", query=EXPAND),
        "get": Endpoint("GET", "/entities/Projects/{id}", query=EXPAND, record_path="data"),
        "create": Endpoint("POST", "/entities/Projects", query=EXPAND, record_path="data"),
        "update": Endpoint("PATCH", "/entities/Projects/{id}", query=EXPAND, record_path="data"),
        "delete": Endpoint("DELETE", "/entities/Projects/{id}", returns="nothing"),
    },
    list_path="data",
    pagination=Pagination(
        "cursor",
        size_param="first",
        cursor_param="after",
        next_cursor_path="page_info.end_cursor",
        has_more_path="page_info.has_next_page",
        max_size=100,
        default_size=30,
    ),
    fields=(
        Field("id", read="id", conv=IdString()),
        Field("name", read="name", write="name", required=("create",)),
        Field("description", read="description", write="description"),
        Field(
            "status",
            read="status",
            conv=Enum({1: "not started", 2: "in progress", 4: "completed"}, write_map={}),
            note="Pipeliner computes a project's status from its activities; it is read-only",
        ),
        Field("close_date", read="end_date", write="end_date", conv=DateOnly(), required=("create",)),
        Field("owner", read=read_owner, write=write_owner, required=("create",), remote_fields=("owner_id",)),
        Field("account", read=read_account, write=write_account, remote_fields=("account_id",)),
        Field("contact", read=read_contacts, write=write_contacts, remote_fields=("contact_relations",)),
        Field("amount", read="revenue_goal.value_foreign", write=write_amount, conv=Number(), remote_fields=("revenue_goal",)),
        Field("currency", read=read_currency, write=write_currency, remote_fields=("revenue_goal",)),
        Field("created_at", read="created", conv=DateTimeFormat()),
        Field("updated_at", read="modified", conv=DateTimeFormat()),
    ),
    create_defaults={"revenue_goal": default_revenue_goal},
    filters=(
        NativeFilter("updated_at", ("gt", "gte", "lt", "lte"), modified_filter("modified")),
        NativeFilter("created_at", ("gt", "gte", "lt", "lte"), modified_filter("created")),
    ),
    errors=Errors(field_errors=field_errors),
    rate_limit=RateLimitHeaders(limit="X-RateLimit-Limit", remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset"),
    lookups=(
        Lookup("currency_ids", Endpoint("GET", "/entities/Currencies"), records_path="data", key="code", value="id", ttl_s=3600),
        Lookup(
            "currency_codes", Endpoint("GET", "/entities/Currencies"), records_path="data", key="id", value="code", ttl_s=3600
        ),
    ),
    truto_required_on_create=("name", "close_date", "owner"),
    differences=(
        Difference("status", "create", "supported", "read-only", "Pipeliner computes status from activities (1/2/4)"),
        Difference("amount", "create", "not supported", "supported", "maps to revenue_goal, which Pipeliner requires"),
        Difference("currency", "create", "not supported", "supported", "revenue_goal's currency"),
    ),
    notes=(
        "revenue_goal is required by Pipeliner: without amount/currency it defaults to 0 in the account's "
        "default_currency (EUR when unset).",
    ),
    resources=RESOURCES,
)
