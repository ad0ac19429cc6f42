"""Capsule CRM (API v2): projects are `kases`.

Facts: shared/reference/providers-capsule-insightly-pipeliner.md §1. Bearer token (a personal
token, or an OAuth2 token that is refreshed at /oauth/token), `{"kase": ...}` envelopes,
page/perPage paging with a Link header, integer ids, a project belongs to one main `party`
(an organisation or a person), and needs an owner or a team.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unicrm.providers.declaration import (
    ApiSpec,
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
    NativeFilter,
    Pagination,
    Provider,
    RateLimitHeaders,
    Ref,
    TagNames,
    TypedRef,
    full_name,
    iso_utc,
)

EMBED = {"embed": "tags,fields"}
ONE_PARTY = "Capsule links a project to one main party: send a single contact (or an account)"
ONE_OPPORTUNITY = "Capsule links a project to at most one opportunity"


def _party_name(party: Mapping[str, Any]) -> str | None:
    return str(party["name"]) if party.get("name") else full_name(party.get("firstName"), party.get("lastName"))


def since_filter(op: str, moment: Any) -> Mapping[str, Any]:
    # Capsule's `since` returns records changed after the instant; gt and gte differ only at
    # the exact instant, which Capsule's second-resolution timestamps make moot.
    return {"since": iso_utc(moment)}


def field_errors(body: Any) -> list[FieldError]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list):
        return []
    return [FieldError(str(e.get("field", "")), str(e.get("message", ""))) for e in errors if isinstance(e, Mapping)]


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
        ContextField("access_token", "A personal access token or an OAuth2 access token", secret=True),
        ContextField("refresh_token", "OAuth2 refresh token (OAuth accounts only)", required=False, secret=True),
        ContextField("client_id", "OAuth2 client id (OAuth accounts only)", required=False),
        ContextField("client_secret", "OAuth2 client secret (OAuth accounts only)", required=False, secret=True),
        ContextField("expires_at", "Access token expiry, epoch seconds (OAuth accounts only)", required=False),
        ContextField("token_url", "OAuth2 token endpoint override", required=False),
        ContextField("base_url", "API base URL override (a proxy or an emulator)", required=False),
    ),
    auth=Auth("oauth2", token_key="access_token", token_url="https://api.capsulecrm.com/oauth/token"),
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
)
