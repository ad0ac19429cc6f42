"""Capsule CRM (API v2): projects are `kases`.

Facts: shared/reference/providers-capsule-insightly-pipeliner.md §1. Bearer token (a personal
token, or an OAuth2 token that is refreshed at /oauth/token), `{"kase": ...}` envelopes,
page/perPage paging with a Link header, integer ids, a project belongs to one main `party`
(an organisation or a person), and needs an owner or a team.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from unicrm.providers.declaration import (
    ApiSpec,
    AsId,
    Auth,
    ContextField,
    CustomFieldList,
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
    Ref,
    Resource,
    TagNames,
    TypedRef,
    full_name,
    iso_utc,
    list_of,
)

EMBED = {"embed": "tags,fields"}
ONE_PARTY = "Capsule links a project to one main party: send a single contact (or an account)"
ONE_OPPORTUNITY = "Capsule links a project to at most one opportunity"


def _party_name(party: Mapping[str, Any]) -> str | None:
    return str(party["name"]) if party.get("name") else full_name(party.get("firstName"), party.get("lastName"))


def read_user_active(record: Mapping[str, Any], lookups: Lookups) -> Any:
    status = record.get("status")
    return status == "ACTIVE" if isinstance(status, str) else None


def since_filter(op: str, moment: Any) -> Mapping[str, Any]:
    # Capsule's `since` returns records changed after the instant; gt and gte differ only at
    # the exact instant, which Capsule's second-resolution timestamps make moot.
    return {"since": iso_utc(moment)}


def since_at_least(op: str, moment: Any) -> Mapping[str, Any]:
    """`since` for the other resources: Capsule answers records changed strictly after the
    instant, and its timestamps are whole seconds, so `gte t` asks for after ceil(t) - 1 s."""
    if op == "gt":
        return {"since": iso_utc(moment)}
    whole = moment.replace(microsecond=0)
    if whole < moment:
        whole += timedelta(seconds=1)
    return {"since": iso_utc(whole - timedelta(seconds=1))}


def field_errors(body: Any) -> list[FieldError]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list):
        return []
    return [FieldError(str(e.get("field", "")), str(e.get("message", ""))) for e in errors if isinstance(e, Mapping)]


# ----------------------------------------------------------------------------- other resources
# Parties are organisations (unified accounts) and people (unified contacts) behind one
# endpoint; `keep` splits them by `type`.
PARTY_EMBED = {"embed": "tags,fields"}


def is_organisation(record: Mapping[str, Any]) -> bool:
    return record.get("type") == "organisation"


def is_person(record: Mapping[str, Any]) -> bool:
    return record.get("type") == "person"


# These run for every party of every list page: plain loops, `__class__ is dict` rather than
# isinstance, and an early return for the (common) empty collections.
def _sid(value: Any) -> str | None:
    return None if value is None else str(value)


def read_addresses(record: Mapping[str, Any], lookups: Lookups) -> Any:
    rows = record.get("addresses")
    if not rows or rows.__class__ is not list:
        return []
    return [
        {
            "id": _sid(a.get("id")),
            "street_1": a.get("street"),
            "street_2": None,
            "city": a.get("city"),
            "state": a.get("state"),
            "postal_code": a.get("zip"),
            "country": a.get("country"),
            "type": a.get("type"),
        }
        for a in rows
        if a.__class__ is dict
    ]


read_phone_numbers = list_of("phoneNumbers", {"id": AsId("id"), "number": "number", "extension": None, "type": "type"})

read_email_addresses = list_of("emailAddresses", {"id": AsId("id"), "email": "address", "type": "type"})


def read_urls(record: Mapping[str, Any], lookups: Lookups) -> Any:
    # Capsule's websites carry a service (URL, TWITTER, LINKEDIN, ...) and the address as typed.
    rows = record.get("websites")
    if not rows or rows.__class__ is not list:
        return []
    return [{"url": w.get("url") or w.get("address"), "type": w.get("service")} for w in rows if w.__class__ is dict]


def read_website(record: Mapping[str, Any], lookups: Lookups) -> Any:
    rows = record.get("websites")
    if not rows or rows.__class__ is not list:
        return None
    for site in rows:
        if site.__class__ is dict and site.get("service") == "URL":
            return site.get("url") or site.get("address")
    return None


def read_organisation(record: Mapping[str, Any], lookups: Lookups) -> Any:
    org = record.get("organisation")
    if not isinstance(org, dict) or org.get("id") is None:
        return None
    return {"id": str(org["id"]), "name": org.get("name")}


def read_party_name(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _party_name(record)


def read_opportunity_status(record: Mapping[str, Any], lookups: Lookups) -> Any:
    # Capsule closes an opportunity by moving it to a complete milestone (won) or by giving a
    # lost reason; an open one has no closedOn.
    if not record.get("closedOn"):
        return "open"
    return "lost" if record.get("lostReason") or record.get("probability") == 0 else "won"


PARTY_COMMON = (
    Field("id", read="id", conv=IdString(numeric=True)),
    Field("owner", read="owner", conv=Ref()),
    Field("addresses", read=read_addresses),
    Field("phone_numbers", read=read_phone_numbers),
    Field("urls", read=read_urls),
    Field("tags", read="tags", conv=TagNames("name", id_key="id", numeric_id=True)),
    Field("custom_fields", read="fields", conv=CustomFieldList("definition.id", name_path="definition.name")),
    Field("last_activity_at", read="lastContactedAt", conv=DateTimeFormat()),
    Field("created_at", read="createdAt", conv=DateTimeFormat()),
    Field("updated_at", read="updatedAt", conv=DateTimeFormat()),
)
SINCE = (NativeFilter("updated_at", ("gt", "gte"), since_at_least),)
PARTIES: dict[Op, Endpoint] = {
    "list": Endpoint("GET", "/parties", query=PARTY_EMBED),
    "get": Endpoint("GET", "/parties/{id}", query=PARTY_EMBED, record_path="party"),
}

RESOURCES = {
    "users": Resource(
        endpoints={"list": Endpoint("GET", "/users"), "get": Endpoint("GET", "/users/{id}", record_path="user")},
        list_path="users",
        fields=(
            Field("id", read="id", conv=IdString(numeric=True)),
            Field("name", read="name"),
            Field("is_active", read=read_user_active, note="status ACTIVE"),
        ),
        docs_url="https://developer.capsulecrm.com/v2/operations/User",
        notes=(
            "Capsule's User has no email and no timestamps (its party, embed=party, carries names only): "
            "email, created_at and updated_at are not mapped.",
        ),
    ),
    "accounts": Resource(
        endpoints=PARTIES,
        list_path="parties",
        keep=is_organisation,
        keep_note="accounts are Capsule parties of type organisation",
        fields=(
            *PARTY_COMMON,
            Field("name", read="name"),
            Field("description", read="about"),
            Field("website", read=read_website),
        ),
        filters=SINCE,
        docs_url="https://developer.capsulecrm.com/v2/operations/Party",
    ),
    "contacts": Resource(
        endpoints=PARTIES,
        list_path="parties",
        keep=is_person,
        keep_note="contacts are Capsule parties of type person",
        fields=(
            *PARTY_COMMON,
            Field("first_name", read="firstName"),
            Field("last_name", read="lastName"),
            Field("name", read=read_party_name),
            Field("title", read="jobTitle"),
            Field("account", read=read_organisation),
            Field("email_addresses", read=read_email_addresses),
        ),
        filters=SINCE,
        docs_url="https://developer.capsulecrm.com/v2/operations/Party",
    ),
    "opportunities": Resource(
        endpoints={
            "list": Endpoint("GET", "/opportunities", query=EMBED),
            "get": Endpoint("GET", "/opportunities/{id}", query=EMBED, record_path="opportunity"),
        },
        list_path="opportunities",
        fields=(
            Field("id", read="id", conv=IdString(numeric=True)),
            Field("name", read="name"),
            Field("description", read="description"),
            Field("amount", read="value.amount", conv=Number()),
            Field("currency", read="value.currency"),
            Field("owner", read="owner", conv=Ref()),
            Field("account", read="party", conv=TypedRef("organisation", name=_party_name)),
            Field("contact", read="party", conv=TypedRef("person", name=_party_name, many=True)),
            Field("stage", read="milestone", conv=Ref(), note="the opportunity's milestone"),
            Field("status", read=read_opportunity_status),
            Field("tags", read="tags", conv=TagNames("name", id_key="id", numeric_id=True)),
            Field("custom_fields", read="fields", conv=CustomFieldList("definition.id", name_path="definition.name")),
            Field("close_date", read="expectedCloseOn", conv=DateOnly()),
            Field("last_activity_at", read="lastContactedAt", conv=DateTimeFormat()),
            Field("created_at", read="createdAt", conv=DateTimeFormat()),
            Field("updated_at", read="updatedAt", conv=DateTimeFormat()),
        ),
        filters=SINCE,
        docs_url="https://developer.capsulecrm.com/v2/operations/Opportunity",
        notes=("An opportunity's stage is its milestone; unified stages lists project stages (what a project's stage is).",),
    ),
    "stages": Resource(
        endpoints={"list": Endpoint("GET", "/stages"), "get": Endpoint("GET", "/stages/{id}", record_path="stage")},
        list_path="stages",
        fields=(
            Field("id", read="id", conv=IdString(numeric=True)),
            Field("name", read="name"),
            Field("position", read="displayOrder", conv=Number()),
            Field("pipeline", read="board", conv=Ref()),
            Field("created_at", read="createdAt", conv=DateTimeFormat()),
            Field("updated_at", read="updatedAt", conv=DateTimeFormat()),
        ),
        docs_url="https://developer.capsulecrm.com/v2/operations/Stage",
        notes=("Project stages of every board; the pipeline is the stage's board.",),
    ),
    "tags": Resource(
        endpoints={"list": Endpoint("GET", "/kases/tags"), "get": Endpoint("GET", "/kases/tags/{id}", record_path="tag")},
        list_path="tags",
        fields=(Field("id", read="id", conv=IdString(numeric=True)), Field("name", read="name")),
        docs_url="https://developer.capsulecrm.com/v2/operations/Tag",
        notes=("Project tags (the ones a project's tags point at).",),
    ),
}


PROVIDER = Provider(
    name="capsule",
    label="Capsule CRM",
    docs_url="https://developer.capsulecrm.com/v2/operations/Project",
    spec=ApiSpec(
        "JSON Schema transcribed from the reference pages",
        "https://developer.capsulecrm.com/v2/operations/Project",
        "the provider's reference pages",
    ),
    base_url="https://api.capsulecrm.com/api/v2",
    context=(
        ContextField(
            "access_token",
            "A personal access token or an OAuth2 access token",
            secret=True,
            form=True,
            label="Personal access token",
            where="In Capsule: My Preferences → API Authentication Tokens → Generate new API token.",
        ),
        ContextField("refresh_token", "OAuth2 refresh token (OAuth accounts only)", required=False, secret=True),
        ContextField("client_id", "OAuth2 client id (OAuth accounts only)", required=False),
        ContextField("client_secret", "OAuth2 client secret (OAuth accounts only)", required=False, secret=True),
        ContextField("expires_at", "Access token expiry, epoch seconds (OAuth accounts only)", required=False),
        ContextField("token_url", "OAuth2 token endpoint override", required=False),
        ContextField("base_url", "API base URL override (a proxy or an emulator)", required=False),
    ),
    auth=Auth(
        "oauth2",
        token_key="access_token",
        token_url="https://api.capsulecrm.com/oauth/token",
        authorize_url="https://api.capsulecrm.com/oauth/authorise",
        scopes=("read", "write"),
    ),
    headers={"Accept": "application/json"},
    endpoints={
        "list": Endpoint("GET", "/kases", query=EMBED, records_path="kases"),
        "get": Endpoint("GET", "/kases/{id}", query=EMBED, record_path="kase"),
        "create": Endpoint("POST", "/kases", query=EMBED, wrap="kase", record_path="kase"),
        "update": Endpoint("PUT", "/kases/{id}", query=EMBED, wrap="kase", record_path="kase"),
        "delete": Endpoint("DELETE", "/kases/{id}", returns="no_record"),
    },
    pagination=Pagination("link_header", size_param="perPage", page_param="page", max_size=100, default_size=50),
    fields=(
        Field("id", read="id", conv=IdString()),
        Field("name", read="name", write="name", required=("create",)),
        Field("description", read="description", write="description"),
        Field(
            "status",
            read="status",
            write="status",
            conv=Enum({"OPEN": "open", "CLOSED": "closed"}),
            note="Capsule has two statuses, OPEN and CLOSED",
        ),
        Field("close_date", read="expectedCloseOn", write="expectedCloseOn", conv=DateOnly()),
        Field("owner", read="owner", write="owner", conv=Ref(numeric=True), remote_fields=("owner", "team")),
        # The one `party` slot is an organisation (account) or a person (contact): a null in one
        # never clears the other (the engine maps clears first); both set is refused (`exclusive`).
        Field(
            "contact",
            read="party",
            write="party",
            conv=TypedRef("person", name=_party_name, numeric=True, many=True, too_many=ONE_PARTY),
        ),
        Field("account", read="party", write="party", conv=TypedRef("organisation", name=_party_name, numeric=True)),
        Field(
            "opportunity",
            read="opportunity",
            write="opportunity",
            conv=TypedRef(None, numeric=True, many=True, empty_clears=True, too_many=ONE_OPPORTUNITY),
        ),
        Field("stage", read="stage", conv=Ref()),
        Field(
            "tags",
            read="tags",
            write="tags",
            conv=TagNames("name", id_key="id", numeric_id=True),
            note="tags are attached by name or id",
        ),
        Field(
            "custom_fields",
            read="fields",
            write="fields",
            conv=CustomFieldList("definition.id", name_path="definition.name", lookup="field_definitions", numeric=True),
        ),
        Field("created_at", read="createdAt", conv=DateTimeFormat()),
        Field("updated_at", read="updatedAt", conv=DateTimeFormat()),
        Field("last_activity_at", read="lastContactedAt", conv=DateTimeFormat()),
    ),
    required_any={"create": [("account", "contact"), ("owner",)]},
    exclusive=[("account", "contact")],
    filters=(NativeFilter("updated_at", ("gt", "gte"), since_filter),),
    errors=Errors(field_errors=field_errors),
    rate_limit=RateLimitHeaders(
        limit="X-RateLimit-Limit", remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset", reset_kind="epoch", window_s=3600
    ),
    lookups=(
        Lookup(
            "field_definitions",
            Endpoint("GET", "/kases/fields/definitions", query={"perPage": 100}),
            records_path="definitions",
            key="name",
            value="id",
        ),
    ),
    truto_required_on_create=("name",),
    differences=(
        Difference("account", "create", "supported", "required (or a contact)", "Capsule requires a main party on every project"),
        Difference(
            "contact",
            "create",
            "supported",
            "required (or an account), at most one",
            "the contact is the project's main party; Capsule holds one",
        ),
        Difference("owner", "create", "supported", "required (or team in remote_data)", "Capsule requires an owner or a team"),
        Difference("status", "create", "open, closed", "open, closed", "same as Truto; other unified statuses are refused"),
        Difference("opportunity", "create", "supported", "at most one", "Capsule links one opportunity per project"),
        Difference("close_date", "create", "supported", "date only", "Capsule stores expectedCloseOn as a date"),
    ),
    notes=(
        "Tags are attached on write; detaching needs remote_data tags with _delete.",
        "contact reads the main party when it is a person; additional parties are not read.",
    ),
    resources=RESOURCES,
)
