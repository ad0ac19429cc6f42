"""Teamleader Focus, the projects-v2 API (`POST /projects-v2/projects.<action>`).

Facts: shared/reference/providers-planhat-teamleader-wethod-strawblond.md §2 and Teamleader's
developer portal. RPC style: every call is a POST with a JSON body, lists and reads too;
`page: {size, number}` paging (default 20); `{"data": ...}` envelopes; create answers
`201 {"data": {"type": "nextgenProject", "id"}}`, update and every action answer 204.
OAuth2 with one-hour access tokens and single-use rotating refresh tokens, refreshed at
`https://focus.teamleader.eu/oauth2/access_token`. Owners, customers and deals cannot be
changed by `projects.update`: they have their own add/remove actions (done in `TeamleaderHooks`).
The project's own status is `open` or `closed`, changed by `projects.close` / `projects.reopen`.
No `created_at`/`updated_at` on v2 projects, so filters on them are refused (400).

Decisions where the docs are silent:
- Unified status: `open`/`closed` read as themselves. Writing `closed`, `completed`,
  `cancelled` or `abandoned` closes the project (`completed` with
  `closing_strategy=mark_tasks_and_materials_as_done`, the others with `none`); `open`,
  `not started`, `in progress` reopen it. `deferred` is refused: v2 has no on-hold state.
  The list filter statuses (planned, running, overdue, over_budget) are Teamleader's own
  views: pass them as `remote_query[filter][status]=running`.
- `owner` is the project's first owner (names from `users.list`, cached). Setting it makes
  that user the only owner (added first, then the others removed, so a project always has
  one); it cannot be cleared.
- `account` is the first `company` customer, `contact` the `contact` customers; setting
  either replaces the customers of that type (add/remove). A project holds only their ids:
  names come from the first 100 users, companies, contacts and deals (`*.list`, cached per
  account for 5 minutes); beyond those the name is null (a call per record would be needed).
- `opportunity` is the project's deals (`deal_ids` on create, addDeal/removeDeal on update).
- `amount`/`currency` read the money of the billing method (any Teamleader currency is read;
  only EUR is written: the Blueprint says "Currently only EUR is supported" for both fields) (`fixed_price` for fixed price,
  `external_budget` for time and materials, else the computed `price`). Writing them sets
  the money of the billing method: the one `remote_data.billing_method` gives, else the
  project's (`fixed_price` on create): `fixed_price`, or `external_budget` for time and
  materials. A non-billable project has no amount: that is a 400. A missing currency keeps
  the project's (EUR on create).
- `close_date` is `end_date` (a date).
- `custom_fields` are keyed by custom field definition id (`[{id, value}]` on write); an
  update sends `custom_fields_update_strategy=partial`, so only the fields sent change
  (Teamleader replaces collections whole otherwise).
- Delete sends `delete_strategy=unlink_tasks_and_time_trackings` (the least destructive);
  `remote_query[delete_strategy]=...` picks another.
- List sorts by `project_key` ascending so page-number paging is stable while projects are
  created (Teamleader's default is descending, which would shift every page).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from unicrm.engine.errors import ApiError
from unicrm.providers.declaration import (
    WHOLE_RECORD,
    ApiSpec,
    Auth,
    ContextField,
    ConversionError,
    CustomFieldList,
    DateOnly,
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
    full_name,
    list_of,
)

if TYPE_CHECKING:
    from unicrm.engine.calls import ProviderCall

API = "/projects-v2/projects"
DELETE_STRATEGY = "unlink_tasks_and_time_trackings"
#: unified status → (Teamleader status, closing strategy when it closes)
STATUS_WRITE: dict[str, tuple[str, str | None]] = {
    "open": ("open", None),
    "not started": ("open", None),
    "in progress": ("open", None),
    "closed": ("closed", "none"),
    "completed": ("closed", "mark_tasks_and_materials_as_done"),
    "cancelled": ("closed", "none"),
    "abandoned": ("closed", "none"),
}
PROJECT_KEYS = frozenset(
    [
        "title",
        "description",
        "status",
        "billing_method",
        "time_budget",
        "external_budget",
        "internal_budget",
        "fixed_price",
        "start_date",
        "end_date",
        "purchase_order_number",
        "company_entity_id",
        "owner_ids",
        "assignees",
        "customers",
        "deal_ids",
        "quotation_ids",
        "custom_fields",
        "custom_fields_update_strategy",
        "color",
        "delete_strategy",
        "closing_strategy",
        "id",
    ]
)
_WORD = re.compile(r"[a-z_]+")


def action(name: str) -> Endpoint:
    """A projects-v2 action on one project (`{id, ...}` in the body, 204 answer)."""
    return Endpoint("POST", f"{API}.{name}", params_in="body", id_in_body="id", returns="no_record")


def _first_page(path: str) -> Endpoint:
    """The first page (100, Teamleader's maximum) of a `<resource>.list` (reference data for names)."""
    return Endpoint("POST", path, params_in="body", query={"page": {"size": 100, "number": 1}}, safe=True)


# Reads are POSTs too: `safe=True` lets them be retried on a transient failure like a GET.
GET = Endpoint("POST", f"{API}.info", params_in="body", id_in_body="id", record_path="data", safe=True)


# --------------------------------------------------------------------------- reads
def _money(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    method = record.get("billing_method")
    key = {"fixed_price": "fixed_price", "time_and_materials": "external_budget"}.get(str(method))
    for candidate in (key, "price"):
        money = record.get(candidate) if candidate else None
        if isinstance(money, dict) and money.get("amount") is not None:
            return money
    return None


def read_amount(record: Mapping[str, Any], lookups: Lookups) -> Any:
    money = _money(record)
    return None if money is None else money.get("amount")


def read_currency(record: Mapping[str, Any], lookups: Lookups) -> Any:
    money = _money(record)
    return None if money is None else money.get("currency")


def _user_name(user: Any) -> str | None:
    return full_name(user.get("first_name"), user.get("last_name")) if isinstance(user, Mapping) else None


def read_owner(record: Mapping[str, Any], lookups: Lookups) -> Any:
    owners = record.get("owners")
    if not isinstance(owners, list) or not owners or not isinstance(owners[0], dict):
        return None
    ident = str(owners[0].get("id"))
    return {"id": ident, "name": _user_name(lookups.get("users", {}).get(ident))}


def _customer_ids(record: Mapping[str, Any], kind: str) -> list[str]:
    customers = record.get("customers")
    if not isinstance(customers, list):
        return []
    return [str(c["id"]) for c in customers if c.__class__ is dict and c.get("type") == kind and c.get("id")]


def read_account(record: Mapping[str, Any], lookups: Lookups) -> Any:
    companies = _customer_ids(record, "company")
    if not companies:
        return None
    return {"id": companies[0], "name": lookups.get("companies", {}).get(companies[0])}


def read_contact(record: Mapping[str, Any], lookups: Lookups) -> Any:
    people = lookups.get("contacts", {})
    return [{"id": i, "name": _user_name(people.get(i))} for i in _customer_ids(record, "contact")]


# --------------------------------------------------------------------------- writes
def write_amount(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    return {"fixed_price": None} if value is None else {"fixed_price": {"amount": value}}


def write_currency(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    if value is None:
        return {}
    code = str(value).strip().upper()
    if code != "EUR":
        # projects.create/update: fixed_price and external_budget "Currently only EUR is supported".
        raise ConversionError(f"Teamleader projects take amounts in EUR only (fixed_price, external_budget); got {value!r}")
    return {"fixed_price": {"currency": code}}


def write_status(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    # Not part of any body: projects.close / projects.reopen change it (TeamleaderHooks).
    if value is not None and value not in STATUS_WRITE:
        raise ConversionError(f"Teamleader projects are open or closed; accepted values: {', '.join(STATUS_WRITE)}")
    return {}


def write_owner(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    if value is None:
        raise ConversionError("cannot be cleared: a Teamleader project always has an owner")
    return {"owner_ids": [str(value["id"])]}


def write_account(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    return {"customers": [] if value is None else [{"type": "company", "id": str(value["id"])}]}


def write_contact(value: Any, lookups: Lookups) -> Mapping[str, Any]:
    return {"customers": [{"type": "contact", "id": str(c["id"])} for c in value or []]}


# --------------------------------------------------------------------------- errors
def field_errors(body: Any) -> list[FieldError]:
    """Teamleader errors are `{"errors": [{"title", ...}]}`: name the body key a title is about."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list):
        return []
    out = []
    for error in errors:
        if not isinstance(error, Mapping) or not isinstance(error.get("title"), str):
            continue
        named = [w for w in _WORD.findall(error["title"]) if w in PROJECT_KEYS]
        if named:
            out.append(FieldError(named[0], error["title"]))
    return out


# --------------------------------------------------------------------------- hooks
def _ids(items: Any, kind: str | None = None) -> list[str]:
    if not isinstance(items, list):
        return []
    return [str(i["id"]) for i in items if isinstance(i, dict) and i.get("id") and (kind is None or i.get("type") == kind)]


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(
        400, f"Invalid field value(s): {name} {message}.", insight={"invalid_fields": [{"field": name, "message": message}]}
    )


#: where a project's amount lives, by billing method (a non-billable project has none)
_MONEY_FIELD = {"fixed_price": "fixed_price", "time_and_materials": "external_budget"}


def _place_money(body: dict[str, Any], method: Any, money: Mapping[str, Any]) -> None:
    """Move the mapped `fixed_price` money to the field of `method`; a non-billable project is a 400."""
    target = _MONEY_FIELD.get(str(method))
    if target is None:
        raise _invalid("amount", "a non-billable Teamleader project has no amount; set billing_method in remote_data")
    body.pop("fixed_price", None)
    body[target] = dict(money)


class TeamleaderHooks(Hooks):
    """Relations and status through their own actions; money into the billing method's field."""

    needs_before_update = True

    async def before_write(
        self,
        op: Op,
        call: ProviderCall,
        record_id: str | None,
        unified: Mapping[str, Any],
        body: dict[str, Any],
        before: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if op == "create":
            if "account" in unified and "contact" in unified:
                # Both write `customers`; one list holds both kinds.
                body["customers"] = [
                    *write_account(unified["account"], {})["customers"],
                    *write_contact(unified["contact"], {})["customers"],
                ]
            money = body.get("fixed_price")
            if isinstance(money, dict) and ("amount" in unified or "currency" in unified):
                money.setdefault("currency", "EUR")
                # The amount lands in the money field of the billing method remote_data chose.
                method = body.setdefault("billing_method", "fixed_price")
                _place_money(body, method, money)
            return body
        if "custom_fields" in body:
            # An update replaces collections whole; unified custom_fields change only the keys sent.
            body.setdefault("custom_fields_update_strategy", "partial")
        # projects.update cannot change these: TeamleaderHooks.after_write diffs them.
        for name, key in (
            ("owner", "owner_ids"),
            ("account", "customers"),
            ("contact", "customers"),
            ("opportunity", "deal_ids"),
        ):
            if name in unified:
                body.pop(key, None)
        money = body.get("fixed_price")
        if isinstance(money, dict) and record_id is not None and ("amount" in unified or "currency" in unified):
            current = before or {}  # read by the engine: needs_before_update
            # A billing method changed in the same request (remote_data) decides, else the project's.
            changing = body.get("billing_method")
            method = changing.get("value") if isinstance(changing, dict) else current.get("billing_method")
            found = current.get(_MONEY_FIELD.get(str(method), "fixed_price"))
            existing: Mapping[str, Any] = found if isinstance(found, dict) else (_money(current) or {})
            merged = {"amount": existing.get("amount"), "currency": existing.get("currency") or "EUR", **money}
            if merged["amount"] is None:
                raise _invalid("currency", "this project has no amount yet: send amount with the currency")
            _place_money(body, method, merged)
        return body

    async def after_write(
        self, op: Op, call: ProviderCall, record_id: str, unified: Mapping[str, Any], before: Mapping[str, Any] | None
    ) -> bool:
        current: Mapping[str, Any] = before or {}
        changed = False
        if op == "update":
            changed |= await self._relations(call, record_id, unified, current)
        status = unified.get("status")
        if status in STATUS_WRITE:
            target, strategy = STATUS_WRITE[status]
            now = current.get("status", "open")
            if target == "closed" and now != "closed":
                await call.call(action("close"), record_id, body={"closing_strategy": strategy})
                changed = True
            elif target == "open" and now == "closed":
                await call.call(action("reopen"), record_id, body={})
                changed = True
        return changed

    async def _relations(
        self, call: ProviderCall, record_id: str, unified: Mapping[str, Any], current: Mapping[str, Any]
    ) -> bool:
        changed = False

        async def sync(add: str, remove: str, have: list[str], want: list[str], body_of: Any) -> None:
            nonlocal changed
            # Add before remove: a project keeps at least one owner throughout.
            for ident in [i for i in want if i not in have]:
                await call.call(action(add), record_id, body=body_of(ident))
                changed = True
            for ident in [i for i in have if i not in want]:
                await call.call(action(remove), record_id, body=body_of(ident))
                changed = True

        if "owner" in unified:
            owner = unified["owner"]
            await sync("addOwner", "removeOwner", _ids(current.get("owners")), [str(owner["id"])], lambda i: {"user_id": i})
        for name, kind in (("account", "company"), ("contact", "contact")):
            if name in unified:
                value = unified[name]
                want = _ids(value if isinstance(value, list) else [] if value is None else [value])
                await sync(
                    "addCustomer",
                    "removeCustomer",
                    _ids(current.get("customers"), kind),
                    want,
                    lambda i, kind=kind: {"customer": {"type": kind, "id": i}},
                )
        if "opportunity" in unified:
            await sync(
                "addDeal", "removeDeal", _ids(current.get("deals")), _ids(unified["opportunity"] or []), lambda i: {"deal_id": i}
            )
        return changed


# ----------------------------------------------------------------------------- other resources
# users, companies, contacts and deals: what a project's owners, customers and deals point at.
# RPC like projects: `<kind>.list` with the page in the body, `<kind>.info` with the id in it.


def _rpc(kind: str) -> dict[Op, Endpoint]:
    return {
        "list": Endpoint("POST", f"/{kind}.list", params_in="body", safe=True),
        "get": Endpoint("POST", f"/{kind}.info", params_in="body", id_in_body="id", record_path="data", safe=True),
    }


def read_person_name(record: Mapping[str, Any], lookups: Lookups) -> Any:
    return full_name(record.get("first_name"), record.get("last_name"))


def read_user_active(record: Mapping[str, Any], lookups: Lookups) -> Any:
    status = record.get("status")
    return None if status is None else status == "active"


def read_responsible(record: Mapping[str, Any], lookups: Lookups) -> Any:
    ref = record.get("responsible_user")
    if not isinstance(ref, dict) or not ref.get("id"):
        return None
    user = lookups.get("users", {}).get(str(ref["id"]))
    return {"id": str(ref["id"]), "name": read_person_name(user, lookups) if isinstance(user, dict) else None}


read_emails = list_of("emails", {"id": None, "email": "email", "type": "type"})

read_telephones = list_of("telephones", {"id": None, "number": "number", "extension": None, "type": "type"})


def read_addresses(record: Mapping[str, Any], lookups: Lookups) -> Any:
    out = []
    for item in record.get("addresses") or ():
        address = item.get("address") if isinstance(item, dict) else None
        if isinstance(address, dict):
            out.append(
                {
                    "id": None,
                    "street_1": address.get("line_1"),
                    "street_2": None,
                    "city": address.get("city"),
                    # area_level_two is a reference to Teamleader's area list, not a name
                    "state": None,
                    "postal_code": address.get("postal_code"),
                    "country": address.get("country"),
                    "type": item.get("type"),
                }
            )
    return out


def read_string_tags(record: Mapping[str, Any], lookups: Lookups) -> Any:
    # Teamleader tags are plain strings: the name is the id.
    return [{"id": str(t), "name": str(t)} for t in record.get("tags") or () if t]


def read_web_url(record: Mapping[str, Any], lookups: Lookups) -> Any:
    url = record.get("web_url")
    return [{"url": url, "type": "teamleader"}] if url else []


def read_contact_company(record: Mapping[str, Any], lookups: Lookups) -> Any:
    for link in record.get("companies") or ():
        company = link.get("company") if isinstance(link, dict) else None
        if isinstance(company, dict) and company.get("id"):
            ident = str(company["id"])
            return {"id": ident, "name": lookups.get("companies", {}).get(ident)}
    return None


def read_contact_position(record: Mapping[str, Any], lookups: Lookups) -> Any:
    for link in record.get("companies") or ():
        if isinstance(link, dict) and link.get("position"):
            return link["position"]
    return None


def _lead(record: Mapping[str, Any]) -> Mapping[str, Any]:
    lead = record.get("lead")
    return lead if isinstance(lead, dict) else {}


def read_deal_account(record: Mapping[str, Any], lookups: Lookups) -> Any:
    customer = _lead(record).get("customer")
    if not isinstance(customer, dict) or customer.get("type") != "company" or not customer.get("id"):
        return None
    ident = str(customer["id"])
    return {"id": ident, "name": lookups.get("companies", {}).get(ident)}


def read_deal_contacts(record: Mapping[str, Any], lookups: Lookups) -> Any:
    out = []
    lead = _lead(record)
    for ref in (lead.get("customer"), lead.get("contact_person")):
        if isinstance(ref, dict) and ref.get("type") == "contact" and ref.get("id"):
            contact = lookups.get("contacts", {}).get(str(ref["id"]))
            name = read_person_name(contact, lookups) if isinstance(contact, dict) else None
            out.append({"id": str(ref["id"]), "name": name})
    return out


def read_deal_phase(record: Mapping[str, Any], lookups: Lookups) -> Any:
    phase = record.get("current_phase")
    if not isinstance(phase, dict) or not phase.get("id"):
        return None
    ident = str(phase["id"])
    return {"id": ident, "name": lookups.get("phases", {}).get(ident)}


def read_phase_pipeline(record: Mapping[str, Any], lookups: Lookups) -> Any:
    pipeline = record.get("deal_pipeline")
    return {"id": str(pipeline["id"]), "name": None} if isinstance(pipeline, dict) and pipeline.get("id") else None


USER_NAMES = Lookup("users", _first_page("/users.list"), records_path="data", key="id", value="")
COMPANY_NAMES = Lookup("companies", _first_page("/companies.list"), records_path="data", key="id", value="name")
CONTACT_RECORDS = Lookup("contacts", _first_page("/contacts.list"), records_path="data", key="id", value="")
PHASE_NAMES = Lookup("phases", _first_page("/dealPhases.list"), records_path="data", key="id", value="name")
_TS = (
    Field("created_at", read="added_at", conv=DateTimeFormat()),
    Field("updated_at", read="updated_at", conv=DateTimeFormat()),
)

RESOURCES = {
    "users": Resource(
        endpoints=_rpc("users"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read=read_person_name),
            Field("email", read="email"),
            Field("is_active", read=read_user_active),
        ),
        docs_url="https://developer.focus.teamleader.eu/docs/api/users-list",
    ),
    "accounts": Resource(
        endpoints=_rpc("companies"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read="name"),
            Field("owner", read=read_responsible),
            Field("website", read="website"),
            Field("addresses", read=read_addresses),
            Field("phone_numbers", read=read_telephones),
            Field("urls", read=read_web_url),
            Field("tags", read=read_string_tags),
            *_TS,
        ),
        lookups=(USER_NAMES,),
        docs_url="https://developer.focus.teamleader.eu/docs/api/companies-list",
        notes=("Teamleader companies: a project's company customers.",),
    ),
    "contacts": Resource(
        endpoints=_rpc("contacts"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("first_name", read="first_name"),
            Field("last_name", read="last_name"),
            Field("name", read=read_person_name),
            Field("title", read=read_contact_position),
            Field("account", read=read_contact_company),
            Field("addresses", read=read_addresses),
            Field("email_addresses", read=read_emails),
            Field("phone_numbers", read=read_telephones),
            Field("tags", read=read_string_tags),
            *_TS,
        ),
        lookups=(COMPANY_NAMES,),
        docs_url="https://developer.focus.teamleader.eu/docs/api/contacts-list",
        notes=("The account is the contact's first linked company; title is its position there.",),
    ),
    "opportunities": Resource(
        endpoints=_rpc("deals"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read="title"),
            Field("description", read="summary"),
            Field("amount", read="estimated_value.amount", conv=Number()),
            Field("currency", read="estimated_value.currency"),
            Field("owner", read=read_responsible),
            Field("account", read=read_deal_account),
            Field("contact", read=read_deal_contacts),
            Field("stage", read=read_deal_phase, note="the deal's current phase"),
            Field("status", read="status", conv=Enum({"open": "open", "won": "won", "lost": "lost"})),
            Field("close_date", read="estimated_closing_date", conv=DateOnly()),
            Field("created_at", read="created_at", conv=DateTimeFormat()),
            Field("updated_at", read="updated_at", conv=DateTimeFormat()),
            Field("urls", read=read_web_url),
        ),
        lookups=(USER_NAMES, COMPANY_NAMES, CONTACT_RECORDS, PHASE_NAMES),
        docs_url="https://developer.focus.teamleader.eu/docs/api/deals-list",
        notes=("Teamleader deals: a project's deals.",),
    ),
    "stages": Resource(
        endpoints=_rpc("dealPhases"),
        list_path="data",
        fields=(
            Field("id", read="id", conv=IdString()),
            Field("name", read="name"),
            Field("pipeline", read=read_phase_pipeline),
        ),
        docs_url="https://developer.focus.teamleader.eu/docs/api/deal-phases-list",
        notes=("Deal phases (a deal's current_phase); v2 projects have no stages.",),
    ),
    # tags.list is Teamleader's only tags call (no tags.info); a tag is a bare string.
    "tags": Resource(
        endpoints={"list": Endpoint("POST", "/tags.list", params_in="body", safe=True)},
        list_path="data",
        fields=(Field("id", read="tag"), Field("name", read="tag")),
        docs_url="https://developer.focus.teamleader.eu/docs/api/tags-list",
        notes=(
            "The tags of contacts and companies (tags.list); a tag's id is its text, as on accounts and contacts.",
            "List only: Teamleader has no call for a single tag. v2 projects have no tags.",
        ),
    ),
}


PROVIDER = Provider(
    name="teamleader",
    label="Teamleader Focus",
    docs_url="https://developer.focus.teamleader.eu/docs/api/projects",
    spec=ApiSpec(
        "API Blueprint (projects-v2, users, companies, contacts, deals), subset",
        "https://github.com/teamleadercrm/api/blob/master/src/12-nextgen-projects/projects.apib",
        "the provider's own API Blueprint",
    ),
    base_url="https://api.focus.teamleader.eu",
    context=(
        ContextField("access_token", "OAuth2 access token (lives one hour)", secret=True),
        ContextField("refresh_token", "OAuth2 refresh token (single use; Teamleader rotates it on every refresh)", secret=True),
        ContextField("client_id", "OAuth2 client id of your Teamleader integration"),
        ContextField("client_secret", "OAuth2 client secret of your Teamleader integration", secret=True),
        ContextField("expires_at", "Access token expiry, epoch seconds", required=False),
        ContextField("token_url", "OAuth2 token endpoint override (a proxy or an emulator)", required=False),
        ContextField("base_url", "API base URL override (a proxy or an emulator)", required=False),
    ),
    auth=Auth(
        "oauth2",
        token_key="access_token",
        token_url="https://focus.teamleader.eu/oauth2/access_token",
        authorize_url="https://focus.teamleader.eu/oauth2/authorize",
    ),
    headers={"Accept": "application/json"},
    endpoints={
        "list": Endpoint(
            "POST",
            f"{API}.list",
            params_in="body",
            query={"includes": "custom_fields", "sort": [{"field": "project_key", "order": "asc"}]},
            safe=True,
            records_path="data",
        ),
        "get": GET,
        "create": Endpoint("POST", f"{API}.create", params_in="body", returns="id", id_path="data.id"),
        "update": action("update"),
        "delete": Endpoint(
            "POST",
            f"{API}.delete",
            params_in="body",
            id_in_body="id",
            returns="no_record",
            query={"delete_strategy": DELETE_STRATEGY},
        ),
    },
    pagination=Pagination("page_number", size_param="page.size", page_param="page.number", max_size=100, default_size=20),
    fields=(
        Field("id", read="id", conv=IdString()),
        Field("name", read="title", write="title", required=("create",)),
        Field("description", read="description", write="description"),
        Field(
            "status",
            read="status",
            write=write_status,
            conv=Enum({"open": "open", "closed": "closed"}),
            remote_fields=("status",),
            note="accepts "
            + ", ".join(STATUS_WRITE)
            + " (projects.close / projects.reopen); Teamleader has only open and closed",
        ),
        Field("close_date", read="end_date", write="end_date", conv=DateOnly()),
        Field(
            "amount",
            read=read_amount,
            write=write_amount,
            remote_fields=("fixed_price", "external_budget"),
            note="the billing method's money: fixed_price, or external_budget for time and materials",
        ),
        Field("currency", read=read_currency, write=write_currency, remote_fields=("fixed_price",)),
        Field(
            "owner",
            read=read_owner,
            write=write_owner,
            remote_fields=("owner_ids",),
            note="the first owner; setting it makes it the only owner (addOwner/removeOwner)",
        ),
        # contact before account: both write `customers` (the create hook joins them).
        Field("contact", read=read_contact, write=write_contact, remote_fields=("customers",)),
        Field("account", read=read_account, write=write_account, remote_fields=("customers",)),
        Field("opportunity", read="deals", write="deal_ids", conv=LookupRef("deals", many=True)),
        Field(
            "custom_fields",
            read="custom_fields",
            write="custom_fields",
            conv=CustomFieldList("definition.id", write_id_path="id", by_name=False),
            not_clearable='send {"<definition id>": null} per field',
        ),
    ),
    errors=Errors(field_errors=field_errors),
    rate_limit=RateLimitHeaders(
        limit="X-RateLimit-Limit",
        remaining="X-RateLimit-Remaining",
        reset="X-RateLimit-Reset",
        reset_kind="datetime",
        window_s=60,
    ),
    lookups=(
        Lookup("users", _first_page("/users.list"), records_path="data", key="id", value=WHOLE_RECORD),
        Lookup("companies", _first_page("/companies.list"), records_path="data", key="id", value="name"),
        Lookup("contacts", _first_page("/contacts.list"), records_path="data", key="id", value=WHOLE_RECORD),
        Lookup("deals", _first_page("/deals.list"), records_path="data", key="id", value="title"),
    ),
    truto_required_on_create=("name",),
    differences=(
        Difference("status", "update", "supported", "open, closed (close/reopen actions)", "v2 projects are open or closed"),
        Difference("owner", "update", "supported", "replaces all owners", "owners change through addOwner/removeOwner"),
        Difference(
            "account", "update", "supported", "first company customer", "customers change through addCustomer/removeCustomer"
        ),
        Difference("close_date", "create", "not mapped", "date only (end_date)", "Teamleader stores end_date as a date"),
        Difference("created_at", "list", "filter", "not available", "v2 projects carry no created_at/updated_at"),
        Difference("updated_at", "list", "filter", "not available", "v2 projects carry no created_at/updated_at"),
        Difference("tags", "create", "not mapped", "not available", "v2 projects have no tags"),
    ),
    hooks=TeamleaderHooks(),
    notes=(
        "Names of owner, account, contacts and opportunities come from the first 100 of each *.list, cached 5 min.",
        "delete sends delete_strategy=unlink_tasks_and_time_trackings unless remote_query sets another.",
    ),
    resources=RESOURCES,
)
