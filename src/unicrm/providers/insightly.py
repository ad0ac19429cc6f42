"""Insightly (REST API v3.1): `/Projects`.

Facts: shared/reference/providers-capsule-insightly-pipeliner.md §2 and Insightly's v3.1
introduction. HTTP Basic with the user's API key as user name and an empty password, on a
pod-specific host (`https://api.{pod}.insightly.com/v3.1`); bare JSON objects and arrays;
`skip`/`top` paging (≤ 500) that ends on a short page; UPPER_SNAKE keys and integer ids;
`PUT /Projects` with `PROJECT_ID` in the body and only the keys that change; required
`PROJECT_NAME` and `STATUS` (six values); body dates `yyyy-MM-dd HH:mm:ss` (UTC) while query
dates are ISO 8601; sub-collections `LINKS`, `TAGS`, `CUSTOMFIELDS` in the same payload;
delete answers 202 with no body; `X-RateLimit-Limit/-Remaining` (the
daily quota) and 429.

Decisions where the docs are silent (or only third parties speak):
- `status` maps the six Insightly values to their lower-case unified names; unified `open` and
  `closed` have no Insightly value and are refused with a 400 listing the accepted ones
  (guessing `In Progress`/`Completed` would silently store something the client did not say).
- `owner` is `OWNER_USER_ID` (the record owner); `RESPONSIBLE_USER_ID` stays in `remote_data`
  and can be written through it. `close_date` is `COMPLETED_DATE` (Insightly has no expected
  close date). `stage` is `STAGE_ID` (read-only: Insightly moves stages through
  `/Projects/{id}/PipelineStage`).
- `account` is the first `LINKS` item to an `Organisation`, `contact` the links to `Contact`s,
  `opportunity` is `OPPORTUNITY_ID` followed by the links to other `Opportunity` records. On
  write the first opportunity goes to `OPPORTUNITY_ID`, the rest and the account/contacts to
  `LINKS` in the same POST/PUT. Insightly replaces `LINKS` as a whole when it is sent, so an
  update that touches account, contact or opportunity reads the project first and sends its
  other links (other kinds, other objects) back unchanged, existing ones with their `LINK_ID`.
- Names of owners, organisations, contacts, opportunities and stages come from reference lists
  read once per account and cached for five minutes (the first 500 of each); a relation outside
  them keeps its id and a null name.
- `tags` have no id in Insightly: a tag's id is its name, and tags are written by name (or by
  the id, which is the name). Sending `tags` replaces the project's tags.
- `custom_fields` are `{FIELD_NAME: FIELD_VALUE}` (names end in `__c`); only the fields sent
  change and a null value clears one. Unknown names are refused by Insightly and named back as
  `custom_fields`.
- Every `updated_at`/`created_at` filter is applied by unicrm to each page. `updated_after_utc`
  is documented only by third parties, and for `/Projects/Search` (the v3.0 swagger client and
  an MCP connector that switches to `/Search` for it), not for the plain `GET /Projects` list:
  if the list ignored it, a native filter would return unfiltered rows as if filtered.
- Delete's answer has no body, so the response is `{"id": ...}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from unicrm.providers.declaration import (
    KIND,
    VALUE,
    WHOLE_RECORD,
    ApiSpec,
    Auth,
    ContextField,
    CustomFieldList,
    DateTimeFormat,
    Difference,
    Endpoint,
    Enum,
    Errors,
    Field,
    FieldError,
    Hooks,
    IdString,
    Lookup,
    LookupRef,
    Lookups,
    Number,
    Op,
    Pagination,
    Provider,
    RateLimitHeaders,
    Resource,
    TagNames,
    full_name,
    values_at,
)

if TYPE_CHECKING:
    from unicrm.engine.calls import ProviderCall

MAX_PAGE = 500
DEFAULT_PAGE = 100
BODY_DATE = "%Y-%m-%d %H:%M:%S"
STATUS_VALUES = ("Not Started", "In Progress", "Deferred", "Completed", "Abandoned", "Cancelled")
#: Which `LINK_OBJECT_NAME` (singular, British spelling) each unified relation uses.
LINK_KINDS = {"account": "Organisation", "contact": "Contact", "opportunity": "Opportunity"}
#: The provider keys of each relation, for naming Insightly's errors back; `LINKS[Kind]` names
#: the links of one kind (the error extractor below produces them).
LINK_FIELDS = {name: f"LINKS[{kind}]" for name, kind in LINK_KINDS.items()}
PROJECT_KEYS = frozenset(
    {
        "PROJECT_ID",
        "PROJECT_NAME",
        "STATUS",
        "PROJECT_DETAILS",
        "OPPORTUNITY_ID",
        "STARTED_DATE",
        "COMPLETED_DATE",
        "RESPONSIBLE_USER_ID",
        "OWNER_USER_ID",
        "CATEGORY_ID",
        "PIPELINE_ID",
        "STAGE_ID",
        "CUSTOMFIELDS",
        "TAGS",
        "LINKS",
    }
)
_KEY = re.compile(r"\b[A-Z][A-Z_]+[A-Z]\b")
_NUMERIC = IdString(numeric=True)


# --------------------------------------------------------------------------- people
def _person_name(person: Any) -> str | None:
    return full_name(person.get("FIRST_NAME"), person.get("LAST_NAME")) if person.__class__ is dict else None


# --------------------------------------------------------------------------- links
_LAST_LINKS: tuple[Any, Any, int, dict[Any, list[str]]] = (None, None, 0, {})


def _linked(record: Mapping[str, Any], kind: str) -> list[str]:
    """Ids of the linked records of one kind, in link order, once each.

    Three fields read the links of the same record one after the other: the links are grouped
    by kind in one pass and kept for the record they came from (one entry, swapped atomically).
    """
    global _LAST_LINKS
    links = record.get("LINKS") or ()
    last, last_links, count, groups = _LAST_LINKS
    # The same record with the same links list, not grown or shrunk since: reuse the grouping.
    if last is not record or last_links is not links or count != len(links):
        groups = {}
        for link in links:
            # `.__class__ is dict`, not isinstance: this runs for every record of every page
            if link.__class__ is dict:
                ident = link.get("LINK_OBJECT_ID")
                if ident is not None:
                    ids = groups.setdefault(link.get("LINK_OBJECT_NAME"), [])
                    ident = str(ident)
                    if ident not in ids:
                        ids.append(ident)
        _LAST_LINKS = (record, links, len(links), groups)
    return groups.get(kind, [])


def read_account(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ids = _linked(record, "Organisation")
    if not ids:
        return None
    return {"id": ids[0], "name": lookups.get("organisations", {}).get(ids[0])}


def read_contacts(record: Mapping[str, Any], lookups: Lookups) -> Any:
    people = lookups.get("contacts", {})
    return [{"id": i, "name": _person_name(people.get(i))} for i in _linked(record, "Contact")]


def read_opportunities(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ids = _linked(record, "Opportunity")
    main = record.get("OPPORTUNITY_ID")
    if main is not None:
        ids = [str(main)] + [i for i in ids if i != str(main)]
    names = lookups.get("opportunities", {})
    return [{"id": i, "name": names.get(i)} for i in ids]


def _ids(value: Any) -> list[int]:
    """Numeric ids of a unified ref or ref list (None clears), once each, in order."""
    items = [] if value is None else [value] if isinstance(value, Mapping) else list(value)
    out: list[int] = []
    for item in items:
        ident = _NUMERIC.write(item["id"], {})
        if ident not in out:
            out.append(ident)
    return out


def write_account(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    _ids(value)  # checked here so a bad id is a 400 before any call; LINKS are built by the hooks
    return {}


def write_contacts(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    _ids(value)
    return {}


def write_opportunities(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    ids = _ids(value)
    return {"OPPORTUNITY_ID": ids[0] if ids else None}


def wanted_links(unified: Mapping[str, Any]) -> dict[str, list[int]]:
    """For each link kind the body touches, the ids it must link (the first opportunity is
    OPPORTUNITY_ID, not a link)."""
    out: dict[str, list[int]] = {}
    for name, kind in LINK_KINDS.items():
        if name in unified:
            ids = _ids(unified[name])
            out[kind] = ids[1:] if name == "opportunity" else ids
    return out


def merge_links(current: list[Any], wanted: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    """The LINKS to send: untouched kinds as they are, wanted links (existing ones with their
    LINK_ID), and nothing else of the touched kinds."""
    out = [dict(link) for link in current if isinstance(link, dict) and link.get("LINK_OBJECT_NAME") not in wanted]
    for kind, ids in wanted.items():
        existing: dict[int, dict[str, Any]] = {}
        for link in current:
            if isinstance(link, dict) and link.get("LINK_OBJECT_NAME") == kind:
                try:
                    existing.setdefault(int(link["LINK_OBJECT_ID"]), link)
                except (KeyError, TypeError, ValueError):
                    continue
        for ident in ids:
            out.append(dict(existing[ident]) if ident in existing else {"LINK_OBJECT_NAME": kind, "LINK_OBJECT_ID": ident})
    return out


class InsightlyHooks(Hooks):
    """Builds `LINKS` from account, contact and opportunity (three unified fields, one list)."""

    async def before_write(
        self,
        op: Op,
        call: ProviderCall,
        record_id: str | None,
        unified: Mapping[str, Any],
        body: dict[str, Any],
        before: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        wanted = wanted_links(unified)
        if not wanted or "LINKS" in body:  # LINKS given in remote_data win, untouched
            return body
        current: list[Any] = []
        if op == "update" and record_id is not None:
            # Insightly replaces LINKS whole: keep what the client did not ask to change.
            get = call.provider.endpoints["get"]
            record = (await call.call(get, record_id)).json()
            current = list(record.get("LINKS") or ()) if isinstance(record, dict) else []
        links = merge_links(current, wanted)
        if op == "create" and not links:
            return body  # a new project has no links to clear
        return {**body, "LINKS": links}


# --------------------------------------------------------------------------- tags, custom fields
# --------------------------------------------------------------------------- filters, errors
def error_message(body: Any) -> str | None:
    if isinstance(body, Mapping):
        message = body.get("Message") or body.get("message")
        return str(message) if message else None
    if isinstance(body, str):
        return body.strip()[:300] or None
    return None


def field_errors(body: Any) -> list[FieldError]:
    """Insightly's errors are a `Message`: name the project key it is about when it names one
    (a link error names its kind too, so it goes back to account, contact or opportunity)."""
    message = error_message(body)
    if not message:
        return []
    keys = {k for k in _KEY.findall(message) if k in PROJECT_KEYS}
    keys.discard("PROJECT_ID")
    if keys == {"LINKS"} or "LINK_OBJECT_ID" in message or "LINK_OBJECT_NAME" in message:
        kinds = [kind for kind in LINK_KINDS.values() if kind in message]
        if len(kinds) == 1:
            return [FieldError(f"LINKS[{kinds[0]}]", message)]
        return [FieldError("LINKS", message)]
    if len(keys) != 1:
        return []
    return [FieldError(keys.pop(), message)]


# ----------------------------------------------------------------------------- other resources
# Users (a project's OWNER_USER_ID), Organisations and Contacts (its LINKS), Opportunities
# (OPPORTUNITY_ID and LINKS) and PipelineStages (STAGE_ID): bare arrays paged with skip/top.
# Names of related records come from the same cached lookups as on projects.
USERS = Lookup("users", Endpoint("GET", "/Users", query={"top": MAX_PAGE}), None, key="USER_ID", value="", ttl_s=300)
ORGANISATIONS = Lookup(
    "organisations",
    Endpoint("GET", "/Organisations", query={"brief": "true", "top": MAX_PAGE}),
    None,
    key="ORGANISATION_ID",
    value="ORGANISATION_NAME",
)
STAGES = Lookup("stages", Endpoint("GET", "/PipelineStages"), None, key="STAGE_ID", value="STAGE_NAME", ttl_s=3600)
PIPELINES = Lookup("pipelines", Endpoint("GET", "/Pipelines"), None, key="PIPELINE_ID", value="PIPELINE_NAME", ttl_s=3600)
_STAMPS = (
    Field("created_at", read="DATE_CREATED_UTC", conv=DateTimeFormat()),
    Field("updated_at", read="DATE_UPDATED_UTC", conv=DateTimeFormat()),
)


def read_person(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _person_name(record)


def read_organisation(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("ORGANISATION_ID")
    if ident is None:
        return None
    return {"id": str(ident), "name": lookups.get("organisations", {}).get(str(ident))}


def read_pipeline(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ident = record.get("PIPELINE_ID")
    if ident is None:
        return None
    return {"id": str(ident), "name": lookups.get("pipelines", {}).get(str(ident))}


def read_email(record: Mapping[str, Any], lookups: Lookups) -> Any:
    email = record.get("EMAIL_ADDRESS")
    return [{"id": None, "email": email, "type": None}] if email else []


_PHONE_KINDS = (("PHONE", "work"), ("PHONE_MOBILE", "mobile"), ("PHONE_FAX", "fax"))


read_phones = values_at(_PHONE_KINDS, {"id": None, "number": VALUE, "extension": None, "type": KIND})


def _address_keys(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}_{part}" for part in ("STREET", "CITY", "STATE", "POSTCODE", "COUNTRY"))


# Key names built once: these run for every organisation and contact of a page.
_ADDRESSES = {
    "organisation": ((_address_keys("ADDRESS_BILLING"), "billing"), (_address_keys("ADDRESS_SHIP"), "shipping")),
    "contact": ((_address_keys("ADDRESS_MAIL"), "mail"), (_address_keys("ADDRESS_OTHER"), "other")),
}


def _addresses(record: Mapping[str, Any], which: str) -> list[dict[str, Any]]:
    out = []
    for (street, city, state, postcode, country), kind in _ADDRESSES[which]:
        values = (record.get(street), record.get(city), record.get(state), record.get(postcode), record.get(country))
        if any(values):
            out.append(
                {
                    "id": None,
                    "street_1": values[0],
                    "street_2": None,
                    "city": values[1],
                    "state": values[2],
                    "postal_code": values[3],
                    "country": values[4],
                    "type": kind,
                }
            )
    return out


def read_organisation_addresses(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _addresses(record, "organisation")


def read_contact_addresses(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return _addresses(record, "contact")


def read_website(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return record.get("WEBSITE")


def read_website_urls(record: Mapping[str, Any], lookups: Lookups) -> Any:
    site = record.get("WEBSITE")
    return [{"url": site, "type": "website"}] if site else []


def _collection(name: str) -> dict[Op, Endpoint]:
    return {"list": Endpoint("GET", f"/{name}"), "get": Endpoint("GET", f"/{name}/{{id}}")}


def _id(key: str) -> Field:
    return Field("id", read=key, conv=IdString(numeric=True))


RESOURCES = {
    "users": Resource(
        endpoints=_collection("Users"),
        fields=(
            _id("USER_ID"),
            Field("name", read=read_person),
            Field("email", read="EMAIL_ADDRESS"),
            Field("is_active", read="ACTIVE"),
            *_STAMPS,
        ),
        docs_url="https://api.insightly.com/v3.1/Help#!/Users/GetEntities",
    ),
    "accounts": Resource(
        endpoints=_collection("Organisations"),
        fields=(
            _id("ORGANISATION_ID"),
            Field("name", read="ORGANISATION_NAME"),
            Field("description", read="BACKGROUND"),
            Field("owner", read="OWNER_USER_ID", conv=LookupRef("users", name=_person_name)),
            Field("website", read=read_website),
            Field("addresses", read=read_organisation_addresses),
            Field("phone_numbers", read=read_phones),
            Field("urls", read=read_website_urls),
            Field("tags", read="TAGS", conv=TagNames("TAG_NAME")),
            *_STAMPS,
        ),
        lookups=(USERS,),
        docs_url="https://api.insightly.com/v3.1/Help#!/Organisations/GetEntities",
    ),
    "contacts": Resource(
        endpoints=_collection("Contacts"),
        fields=(
            _id("CONTACT_ID"),
            Field("first_name", read="FIRST_NAME"),
            Field("last_name", read="LAST_NAME"),
            Field("name", read=read_person),
            Field("title", read="TITLE"),
            Field("account", read=read_organisation),
            Field("owner", read="OWNER_USER_ID", conv=LookupRef("users", name=_person_name)),
            Field("addresses", read=read_contact_addresses),
            Field("email_addresses", read=read_email),
            Field("phone_numbers", read=read_phones),
            Field("tags", read="TAGS", conv=TagNames("TAG_NAME")),
            *_STAMPS,
        ),
        lookups=(USERS, ORGANISATIONS),
        docs_url="https://api.insightly.com/v3.1/Help#!/Contacts/GetEntities",
    ),
    "opportunities": Resource(
        endpoints=_collection("Opportunities"),
        fields=(
            _id("OPPORTUNITY_ID"),
            Field("name", read="OPPORTUNITY_NAME"),
            Field("description", read="OPPORTUNITY_DETAILS"),
            Field("amount", read="OPPORTUNITY_VALUE", conv=Number()),
            Field("currency", read="BID_CURRENCY"),
            Field("owner", read="OWNER_USER_ID", conv=LookupRef("users", name=_person_name)),
            Field("account", read=read_organisation),
            Field("stage", read="STAGE_ID", conv=LookupRef("stages")),
            Field(
                "status",
                read="OPPORTUNITY_STATE",
                conv=Enum({"OPEN": "open", "WON": "won", "LOST": "lost", "ABANDONED": "lost", "SUSPENDED": "open"}),
                note="ABANDONED reads as lost and SUSPENDED as open; the state itself is in remote_data",
            ),
            Field("close_date", read="FORECAST_CLOSE_DATE", conv=DateTimeFormat()),
            Field("tags", read="TAGS", conv=TagNames("TAG_NAME")),
            *_STAMPS,
        ),
        lookups=(USERS, ORGANISATIONS, STAGES),
        docs_url="https://api.insightly.com/v3.1/Help#!/Opportunities/GetEntities",
    ),
    "stages": Resource(
        endpoints=_collection("PipelineStages"),
        fields=(
            _id("STAGE_ID"),
            Field("name", read="STAGE_NAME"),
            Field("position", read="STAGE_ORDER", conv=Number()),
            Field("pipeline", read=read_pipeline),
        ),
        lookups=(PIPELINES,),
        docs_url="https://api.insightly.com/v3.1/Help#!/PipelineStages/GetEntities",
        notes=("Stages of every pipeline (a project's STAGE_ID is one of them).",),
    ),
    # Insightly's Tags API lists the tags in use on one record type (`record_type` is required)
    # and has no endpoint for a single tag; a tag has only its name, which is also its id.
    "tags": Resource(
        endpoints={"list": Endpoint("GET", "/Tags", query={"record_type": "projects"})},
        fields=(Field("id", read="TAG_NAME"), Field("name", read="TAG_NAME")),
        docs_url="https://api.insightly.com/v3.1/Help#!/Tags/GetTags",
        notes=(
            "The tags in use on projects (GET /Tags?record_type=projects); a tag's id is its name.",
            "List only: Insightly has no endpoint for a single tag.",
        ),
    ),
}


PROVIDER = Provider(
    name="insightly",
    label="Insightly",
    docs_url="https://api.insightly.com/v3.1/Help",
    spec=ApiSpec(
        "JSON Schema transcribed from the v3.1 introduction and a generated client",
        "https://api.na1.insightly.com/v3.1/",
        "partly third-party (client generated from Insightly's v3.0 swagger)",
    ),
    base_url="https://api.{pod}.insightly.com/v3.1",
    context=(
        ContextField(
            "api_key",
            "The user's API key (User Settings → API)",
            secret=True,
            form=True,
            label="API key",
            where="In Insightly: your profile picture → User Settings → API → API Key.",
        ),
        ContextField(
            "pod",
            "The instance's pod, from the API URL under User Settings → API (na1 in https://api.na1.insightly.com/v3.1)",
            required=False,
            default="na1",
            form=True,
            label="Pod",
            where="The part after api. in the API URL shown under User Settings → API (na1, eu1, ...).",
            pattern=r"[a-z]{2}[0-9]{1,2}",
        ),
        ContextField("base_url", "API base URL override (a proxy or an emulator)", required=False),
    ),
    auth=Auth("basic", username_key="api_key"),
    headers={"Accept": "application/json"},
    endpoints={
        "list": Endpoint("GET", "/Projects"),
        "get": Endpoint("GET", "/Projects/{id}"),
        "create": Endpoint("POST", "/Projects"),
        "update": Endpoint("PUT", "/Projects", id_in_body="PROJECT_ID"),
        "delete": Endpoint("DELETE", "/Projects/{id}", returns="no_record"),
    },
    pagination=Pagination("offset", size_param="top", offset_param="skip", max_size=MAX_PAGE, default_size=DEFAULT_PAGE),
    fields=(
        Field("id", read="PROJECT_ID", conv=IdString(numeric=True)),
        Field("name", read="PROJECT_NAME", write="PROJECT_NAME", required=("create",)),
        Field("description", read="PROJECT_DETAILS", write="PROJECT_DETAILS"),
        Field(
            "status",
            read="STATUS",
            write="STATUS",
            conv=Enum({value: value.lower() for value in STATUS_VALUES}),
            required=("create",),
            note="Insightly's six project statuses; the two generic states are refused",
        ),
        Field(
            "close_date",
            read="COMPLETED_DATE",
            write="COMPLETED_DATE",
            conv=DateTimeFormat(BODY_DATE),
            note="COMPLETED_DATE, sent as yyyy-MM-dd HH:mm:ss (UTC)",
        ),
        Field(
            "owner",
            read="OWNER_USER_ID",
            write="OWNER_USER_ID",
            conv=LookupRef("users", name=_person_name, numeric=True),
            note="the record owner user",
            not_clearable="every Insightly project has an owner user",
        ),
        Field(
            "account",
            read=read_account,
            write=write_account,
            remote_fields=(LINK_FIELDS["account"],),
            note="a LINKS item to an Organisation",
        ),
        Field(
            "contact",
            read=read_contacts,
            write=write_contacts,
            remote_fields=(LINK_FIELDS["contact"],),
            note="LINKS items to Contacts",
        ),
        Field(
            "opportunity",
            read=read_opportunities,
            write=write_opportunities,
            remote_fields=("OPPORTUNITY_ID", LINK_FIELDS["opportunity"]),
            note="the first is OPPORTUNITY_ID, the others LINKS items to Opportunities",
        ),
        Field(
            "stage", read="STAGE_ID", conv=LookupRef("stages"), note="STAGE_ID; changed through Insightly's pipeline endpoints"
        ),
        Field("tags", read="TAGS", write="TAGS", conv=TagNames("TAG_NAME"), note="tags are names; sending tags replaces them"),
        Field(
            "custom_fields",
            read="CUSTOMFIELDS",
            write="CUSTOMFIELDS",
            conv=CustomFieldList("FIELD_NAME", value_key="FIELD_VALUE", by_name=False),
            note="{FIELD_NAME: FIELD_VALUE}; only the fields sent change",
            not_clearable='send {"Name__c": null} for each field to clear',
        ),
        Field("created_at", read="DATE_CREATED_UTC", conv=DateTimeFormat()),
        Field("updated_at", read="DATE_UPDATED_UTC", conv=DateTimeFormat()),
        Field("last_activity_at", read="LAST_ACTIVITY_DATE_UTC", conv=DateTimeFormat()),
    ),
    errors=Errors(message=error_message, field_errors=field_errors),
    rate_limit=RateLimitHeaders(limit="X-RateLimit-Limit", remaining="X-RateLimit-Remaining", window_s=86400),
    lookups=(
        Lookup("users", Endpoint("GET", "/Users", query={"top": MAX_PAGE}), None, key="USER_ID", value=WHOLE_RECORD, ttl_s=300),
        Lookup(
            "organisations",
            Endpoint("GET", "/Organisations", query={"brief": "true", "top": MAX_PAGE}),
            None,
            key="ORGANISATION_ID",
            value="ORGANISATION_NAME",
        ),
        Lookup(
            "contacts",
            Endpoint("GET", "/Contacts", query={"brief": "true", "top": MAX_PAGE}),
            None,
            key="CONTACT_ID",
            value=WHOLE_RECORD,
        ),
        Lookup(
            "opportunities",
            Endpoint("GET", "/Opportunities", query={"brief": "true", "top": MAX_PAGE}),
            None,
            key="OPPORTUNITY_ID",
            value="OPPORTUNITY_NAME",
        ),
        Lookup("stages", Endpoint("GET", "/PipelineStages"), None, key="STAGE_ID", value="STAGE_NAME", ttl_s=3600),
    ),
    hooks=InsightlyHooks(),
    truto_required_on_create=("name", "status"),
    differences=(
        Difference("account", "all", "not supported", "supported", "the project's LINKS to an Organisation"),
        Difference("contact", "all", "not supported", "supported", "the project's LINKS to Contacts"),
        Difference(
            "status",
            "create",
            "required: not started, in progress, deferred, cancelled, abandoned, completed",
            "required, same six values",
            "open and closed have no Insightly value and are refused",
        ),
        Difference("close_date", "all", "supported", "supported: COMPLETED_DATE", "Insightly has no expected close date"),
        Difference("tags", "all", "supported", "id = name", "Insightly tags have no id, only a name"),
        Difference("custom_fields", "list", "not listed", "supported", "the project's CUSTOMFIELDS"),
        Difference("custom_fields", "get", "not listed", "supported", "the project's CUSTOMFIELDS"),
        Difference(
            "id", "delete", "not returned", '{"id"} returned', "Insightly answers 202 with no body; the id is the request's"
        ),
    ),
    notes=(
        "account/contact/opportunity are the project's LINKS (plus OPPORTUNITY_ID); an update touching them "
        "reads the project first, as Insightly replaces LINKS whole.",
        "owner is OWNER_USER_ID; RESPONSIBLE_USER_ID is in remote_data.",
        "Names of related records come from the first 500 users, organisations, contacts and opportunities, cached 5 min.",
        "updated_at and created_at filters are applied by unicrm: the plain GET /Projects list is not documented to "
        "honour updated_after_utc (only /Projects/Search is, in third-party sources).",
    ),
    resources=RESOURCES,
)
