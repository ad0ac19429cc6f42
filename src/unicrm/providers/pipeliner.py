"""Pipeliner CRM (REST API v100): `/entities/Projects`.

Facts: shared/reference/providers-capsule-insightly-pipeliner.md §3; spec: Pipeliner's OpenAPI
document (tests/specs/pipeliner/). HTTP Basic with an API application's user name and password,
`{success, data}` envelopes, cursor paging (`first`/`after`, `page_info`), UUIDs, `status`
computed by Pipeliner (read-only), relations returned as objects with `expand=`, which the
docs offer on list and get only: create and update answers carry relations as URIs, so the
record is read back with `get` after a write (names of owner, account and contacts).

`revenue_goal` is required on create and is written whole (the OpenAPI document requires
`base_value`, `currency_id` and `value_foreign` together, on update too): `value_foreign` is the
amount in `currency_id`, `base_value` the same amount in the space's base currency
(`Currencies.is_base`), converted with the exchange rate of the rate list valid now
(`CurrencyExchangeRate.exchange_rate` multiplies a base amount into its currency). An update of
only `amount` or only `currency` reads the project first for the other half.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from unicrm.engine.errors import ApiError
from unicrm.providers.declaration import (
    KIND,
    VALUE,
    WHOLE_RECORD,
    ApiSpec,
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
    Hooks,
    IdOf,
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
    parse_iso_datetime,
    sibling_ref,
    values_at,
)

if TYPE_CHECKING:
    from unicrm.engine.calls import ProviderCall

EXPAND = {"expand": "owner,account,contact_relations.contact"}
FIRST_100 = {"first": 100}
GET = Endpoint("GET", "/entities/Projects/{id}", query=EXPAND, record_path="data")


def _person_name(obj: Mapping[str, Any]) -> str | None:
    name = obj.get("formatted_name") or obj.get("name")
    if name:
        return str(name)
    return full_name(obj.get("first_name"), obj.get("last_name"))


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
    currency = lookups.get("currencies", {}).get(str(goal["currency_id"]))
    return currency.get("code") if isinstance(currency, dict) else None


def write_amount(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    # The rest of revenue_goal (currency_id, base_value) is completed by PipelinerHooks.
    return {"revenue_goal": {"value_foreign": 0 if value is None else value}}


def _currency_id(code: str, lookups: Lookups) -> str:
    currencies = lookups.get("currencies", {})
    for ident, currency in currencies.items():
        if isinstance(currency, dict) and str(currency.get("code", "")).upper() == code:
            return str(ident)
    codes = sorted(str(c.get("code")) for c in currencies.values() if isinstance(c, dict))
    raise ConversionError(f"{code!r} is not a currency of this Pipeliner space; available: {', '.join(codes) or 'none'}")


def write_currency(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    if value is None:
        return {}
    return {"revenue_goal": {"currency_id": _currency_id(str(value).upper(), lookups)}}


def _base_currency(lookups: Lookups) -> str | None:
    for ident, currency in lookups.get("currencies", {}).items():
        if isinstance(currency, dict) and currency.get("is_base"):
            return str(ident)
    return None


def default_revenue_goal(context: Mapping[str, Any], lookups: Lookups) -> dict[str, Any]:
    """Pipeliner requires a revenue goal: 0 in the account's default_currency, else the base currency."""
    code = context.get("default_currency")
    currency_id = _currency_id(str(code).upper(), lookups) if code else _base_currency(lookups)
    if currency_id is None:
        raise ConversionError("the space reports no base currency; set default_currency in the account's context")
    return {"value_foreign": 0, "currency_id": currency_id}


def exchange_rate(currency_id: str, lookups: Lookups, now: datetime | None = None) -> float:
    """Units of `currency_id` per unit of the base currency, from the rate list valid at `now`."""
    if currency_id == _base_currency(lookups):
        return 1.0
    moment = now or datetime.now(UTC)
    valid: list[tuple[datetime, str]] = []
    for list_id, valid_from in lookups.get("exchange_rate_lists", {}).items():
        try:
            start = parse_iso_datetime(str(valid_from).replace(" ", "T"))
        except ValueError:
            continue
        if start <= moment:
            valid.append((start, list_id))
    for _, list_id in sorted(valid, reverse=True):
        for rate in lookups.get("exchange_rates", {}).values():
            if (
                isinstance(rate, dict)
                and str(rate.get("currency_id")) == currency_id
                and str(rate.get("currency_exchange_rate_list_id")) == list_id
                and rate.get("exchange_rate")
            ):
                return float(rate["exchange_rate"])
    raise ConversionError("this Pipeliner space has no exchange rate for the currency; add one or send the base currency")


class PipelinerHooks(Hooks):
    """revenue_goal is written whole: the missing half from the project, base_value converted."""

    def endpoints(self) -> Mapping[str, Endpoint]:
        return {"read before a partial revenue_goal update": GET}

    async def before_write(
        self,
        op: Op,
        call: ProviderCall,
        record_id: str | None,
        unified: Mapping[str, Any],
        body: dict[str, Any],
        before: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        goal = body.get("revenue_goal")
        if not isinstance(goal, dict) or ("base_value" in goal and "currency_id" in goal and "value_foreign" in goal):
            return body  # no money change, or remote_data gave the whole goal
        if record_id is not None and ("currency_id" not in goal or "value_foreign" not in goal):
            current = (await call.call(GET, record_id)).json()
            known = current.get("data", {}).get("revenue_goal") if isinstance(current, dict) else None
            goal = {**(known if isinstance(known, dict) else {}), **goal}
            goal.pop("base_value", None)
        lookups = call.lookups
        if "currency_id" not in goal:
            raise ApiError(
                400,
                "Invalid field value(s): currency Pipeliner needs the amount's currency; send currency with amount.",
                insight={"invalid_fields": [{"field": "currency", "message": "required with amount"}]},
            )
        foreign = float(goal.get("value_foreign") or 0)
        try:
            rate = exchange_rate(str(goal["currency_id"]), lookups)
        except ConversionError as exc:
            raise ApiError(
                400,
                f"Invalid field value(s): currency {exc}.",
                insight={"invalid_fields": [{"field": "currency", "message": str(exc)}]},
            ) from None
        body["revenue_goal"] = {
            "base_value": round(foreign / rate, 2),
            "currency_id": goal["currency_id"],
            "value_foreign": foreign,
        }
        return body


def modified_filter(api_field: str) -> Any:
    def build(op: str, moment: Any) -> Mapping[str, Any]:
        return {"filter": {api_field: moment.strftime("%Y-%m-%d %H:%M:%S")}, "filter-op": {api_field: op}}

    return build


def field_errors(body: Any) -> list[FieldError]:
    """The OpenAPI `Error` has one `message`; name the Project api fields it starts its parts with."""
    if not isinstance(body, Mapping) or not isinstance(body.get("message"), str):
        return []
    out = []
    for part in body["message"].split("; "):
        name, sep, why = part.partition(": ")
        if sep and name.replace("_", "").replace(".", "").isalnum() and name == name.lower():
            out.append(FieldError(name, why))
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


read_phones = values_at(((k, k) for k in _PHONES), {"id": None, "number": VALUE, "extension": None, "type": KIND})

read_emails = values_at(((k, k) for k in _EMAILS), {"id": None, "email": VALUE, "type": KIND})


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
            Field("owner", read=sibling_ref("owner_id", "owner", _person_name)),
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
            Field("owner", read=sibling_ref("owner_id", "owner", _person_name)),
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
            Field("owner", read=sibling_ref("owner_id", "owner", _person_name)),
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
    spec=ApiSpec(
        "OpenAPI 3 (Project, Currency APIs), subset",
        "https://github.com/api-evangelist/pipeliner/blob/main/openapi/pipeliner-project-api-openapi.yml",
        "the provider's own OpenAPI document, via a public mirror",
    ),
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
        "list": Endpoint("GET", "/entities/Projects", query=EXPAND, records_path="data"),
        "get": GET,
        # No expand on writes (the docs offer it on list and get): the answer's relations are
        # URIs, so only its id is used and the record is read back with `get`.
        "create": Endpoint("POST", "/entities/Projects", returns="id", id_path="data.id"),
        "update": Endpoint("PATCH", "/entities/Projects/{id}", returns="id", id_path="data.id"),
        "delete": Endpoint("DELETE", "/entities/Projects/{id}", returns="no_record"),
    },
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
        Field("owner", read=sibling_ref("owner_id", "owner", _person_name), write="owner_id", conv=IdOf(), required=("create",)),
        Field("account", read=sibling_ref("account_id", "account", _person_name), write="account_id", conv=IdOf()),
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
        Lookup(
            "currencies",
            Endpoint("GET", "/entities/Currencies", query=FIRST_100),
            "data",
            key="id",
            value=WHOLE_RECORD,
            ttl_s=3600,
        ),
        Lookup(
            "exchange_rate_lists",
            Endpoint("GET", "/entities/CurrencyExchangeRatesLists", query={**FIRST_100, "order-by": "-valid_from"}),
            "data",
            key="id",
            value="valid_from",
            ttl_s=3600,
        ),
        Lookup(
            "exchange_rates",
            Endpoint("GET", "/entities/CurrencyExchangeRates", query=FIRST_100),
            "data",
            key="id",
            value=WHOLE_RECORD,
            ttl_s=3600,
        ),
    ),
    hooks=PipelinerHooks(),
    truto_required_on_create=("name", "close_date", "owner"),
    differences=(
        Difference("status", "create", "supported", "read-only", "Pipeliner computes status from activities (1/2/4)"),
        Difference("amount", "create", "not supported", "supported", "maps to revenue_goal, which Pipeliner requires"),
        Difference("currency", "create", "not supported", "supported", "revenue_goal's currency"),
    ),
    notes=(
        "revenue_goal is required by Pipeliner: without amount/currency it defaults to 0 in the account's "
        "default_currency (the space's base currency when unset).",
        "revenue_goal.base_value is the amount converted to the base currency with the exchange rate list valid now.",
    ),
    resources=RESOURCES,
)
