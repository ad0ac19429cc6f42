"""The unified model (PRODUCT §2): each resource's fields, their types, and the project statuses.

Projects are the resource unicrm writes; users, accounts, contacts, opportunities, stages and
tags are the records a project points to, with the fields of Truto's published unified CRM
schemas (truto.one/docs/api-reference/unified-crm-api/<resource>). Validation, the normalized
response format, the meta endpoint's JSON Schema and the OpenAPI document are all derived from
these tables; nothing else spells the unified fields out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

FieldKind = Literal["string", "number", "integer", "boolean", "datetime", "ref", "ref_list", "object", "object_list"]

STATUSES: tuple[str, ...] = (
    "open",
    "closed",
    "not started",
    "in progress",
    "deferred",
    "cancelled",
    "abandoned",
    "completed",
)


@dataclass(frozen=True, slots=True)
class UnifiedField:
    """One field of the unified project."""

    name: str
    kind: FieldKind
    description: str
    response_only: bool = False
    enum: tuple[str, ...] | None = None
    #: A reference may name its target instead of giving its id (tags are attached by name).
    name_suffices: bool = False
    #: For `object_list`: the item's properties and their JSON types (`{"email": "string"}`).
    items: Mapping[str, str] | None = None
    #: For references: the unified resource whose ids they hold (Truto: "References: Accounts → id").
    references: str | None = None


FIELDS: tuple[UnifiedField, ...] = (
    UnifiedField("id", "string", "The project's unique identifier (the provider id as a string)", True),
    UnifiedField("name", "string", "The project's name"),
    UnifiedField("description", "string", "The project's description"),
    UnifiedField("amount", "number", "The project's amount, in currency units"),
    UnifiedField("currency", "string", "The amount's currency (ISO 4217)"),
    UnifiedField("close_date", "datetime", "The project's close date (ISO 8601)"),
    UnifiedField("status", "string", "The project's status", enum=STATUSES),
    UnifiedField("owner", "ref", "The project's owner {id, name}", references="users"),
    UnifiedField("account", "ref", "The customer company/organisation {id, name}", references="accounts"),
    UnifiedField("contact", "ref_list", "The project's contacts [{id, name}]", references="contacts"),
    UnifiedField("opportunity", "ref_list", "The project's opportunities [{id, name}]", references="opportunities"),
    UnifiedField("stage", "ref", "The project's stage {id, name}", True, references="stages"),
    UnifiedField("tags", "ref_list", "The project's tags [{id, name}]", name_suffices=True, references="tags"),
    UnifiedField("custom_fields", "object", "Custom fields {name or id: value}"),
    UnifiedField("created_at", "datetime", "When the project was created", True),
    UnifiedField("updated_at", "datetime", "When the project was last updated", True),
    UnifiedField("last_activity_at", "datetime", "When the project last had activity", True),
)

FIELDS_BY_NAME: dict[str, UnifiedField] = {f.name: f for f in FIELDS}
WRITABLE: frozenset[str] = frozenset(f.name for f in FIELDS if not f.response_only)
# remote_data is accepted on writes (merged into the provider body) and returned on reads.
REQUEST_EXTRAS: frozenset[str] = frozenset({"remote_data"})

OPERATIONS: tuple[str, ...] = ("list", "get", "create", "update", "delete")

_URL = {"url": "string", "type": "string"}
_ADDRESS = {
    "id": "string",
    "street_1": "string",
    "street_2": "string",
    "city": "string",
    "state": "string",
    "postal_code": "string",
    "country": "string",
    "type": "string",
}
_PHONE = {"id": "string", "number": "string", "extension": "string", "type": "string"}
_EMAIL = {"id": "string", "email": "string", "type": "string"}


def _id(what: str) -> UnifiedField:
    return UnifiedField("id", "string", f"The {what}'s unique identifier (the provider id as a string)", True)


def _stamps(what: str) -> tuple[UnifiedField, ...]:
    return (
        UnifiedField("created_at", "datetime", f"When the {what} was created", True),
        UnifiedField("updated_at", "datetime", f"When the {what} was last updated", True),
    )


USER_FIELDS: tuple[UnifiedField, ...] = (
    _id("user"),
    UnifiedField("name", "string", "The user's name"),
    UnifiedField("email", "string", "The user's email"),
    UnifiedField("is_active", "boolean", "Whether the user is active"),
    *_stamps("user"),
    UnifiedField("urls", "object_list", "The user's urls [{url, type}]", items=_URL),
)

ACCOUNT_FIELDS: tuple[UnifiedField, ...] = (
    _id("account"),
    UnifiedField("owner", "ref", "The account's owner {id, name}", references="users"),
    UnifiedField("name", "string", "The account's name"),
    UnifiedField("description", "string", "The account's description"),
    UnifiedField("industry", "string", "The account's industry"),
    UnifiedField("website", "string", "The account's website"),
    UnifiedField("number_of_employees", "integer", "The account's number of employees"),
    UnifiedField("addresses", "object_list", "The account's addresses", items=_ADDRESS),
    UnifiedField("phone_numbers", "object_list", "The account's phone numbers", items=_PHONE),
    UnifiedField("urls", "object_list", "The account's urls [{url, type}]", items=_URL),
    UnifiedField("tags", "ref_list", "The account's tags [{id, name}]", name_suffices=True),
    UnifiedField("custom_fields", "object", "Custom fields {name or id: value}"),
    UnifiedField("last_activity_at", "datetime", "When the account last had activity", True),
    *_stamps("account"),
)

CONTACT_FIELDS: tuple[UnifiedField, ...] = (
    _id("contact"),
    UnifiedField("first_name", "string", "The contact's first name"),
    UnifiedField("last_name", "string", "The contact's last name"),
    UnifiedField("name", "string", "The contact's full name"),
    UnifiedField("title", "string", "The contact's job title"),
    UnifiedField("account", "ref", "The contact's account {id, name}", references="accounts"),
    UnifiedField("owner", "ref", "The contact's owner {id, name}", references="users"),
    UnifiedField("addresses", "object_list", "The contact's addresses", items=_ADDRESS),
    UnifiedField("email_addresses", "object_list", "The contact's email addresses", items=_EMAIL),
    UnifiedField("phone_numbers", "object_list", "The contact's phone numbers", items=_PHONE),
    UnifiedField("urls", "object_list", "The contact's urls [{url, type}]", items=_URL),
    UnifiedField("tags", "ref_list", "The contact's tags [{id, name}]", name_suffices=True),
    UnifiedField("custom_fields", "object", "Custom fields {name or id: value}"),
    UnifiedField("last_activity_at", "datetime", "When the contact last had activity", True),
    *_stamps("contact"),
)

OPPORTUNITY_STATUSES: tuple[str, ...] = ("open", "won", "lost")

OPPORTUNITY_FIELDS: tuple[UnifiedField, ...] = (
    _id("opportunity"),
    UnifiedField("name", "string", "The opportunity's name"),
    UnifiedField("description", "string", "The opportunity's description"),
    UnifiedField("amount", "number", "The opportunity's amount, in currency units"),
    UnifiedField("currency", "string", "The amount's currency (ISO 4217)"),
    UnifiedField("owner", "ref", "The opportunity's owner {id, name}", references="users"),
    UnifiedField("account", "ref", "The opportunity's account {id, name}", references="accounts"),
    UnifiedField("contact", "ref_list", "The opportunity's contacts [{id, name}]", references="contacts"),
    UnifiedField("stage", "ref", "The opportunity's stage {id, name}"),
    UnifiedField("status", "string", "The opportunity's status", enum=OPPORTUNITY_STATUSES),
    UnifiedField("tags", "ref_list", "The opportunity's tags [{id, name}]", name_suffices=True),
    UnifiedField("custom_fields", "object", "Custom fields {name or id: value}"),
    UnifiedField("close_date", "datetime", "The opportunity's (expected) close date (ISO 8601)"),
    UnifiedField("last_activity_at", "datetime", "When the opportunity last had activity", True),
    *_stamps("opportunity"),
    UnifiedField("urls", "object_list", "The opportunity's urls [{url, type}]", items=_URL),
)

STAGE_FIELDS: tuple[UnifiedField, ...] = (
    _id("stage"),
    UnifiedField("name", "string", "The stage's name"),
    UnifiedField("position", "number", "The stage's order in its pipeline"),
    UnifiedField("status", "string", "The stage's status", enum=("active", "inactive")),
    UnifiedField("pipeline", "ref", "The pipeline (board) the stage belongs to {id, name}"),
    *_stamps("stage"),
)

TAG_FIELDS: tuple[UnifiedField, ...] = (
    _id("tag"),
    UnifiedField("name", "string", "The tag's name"),
    *_stamps("tag"),
)


@dataclass(frozen=True)
class ResourceModel:
    """One unified resource: its route name, how messages call one record, and its fields."""

    name: str
    singular: str
    fields: tuple[UnifiedField, ...]
    description: str
    schema_name: str
    truto_docs: str = field(default="")

    @cached_property
    def fields_by_name(self) -> dict[str, UnifiedField]:
        return {f.name: f for f in self.fields}

    @cached_property
    def kinds(self) -> tuple[tuple[str, FieldKind], ...]:
        return tuple((f.name, f.kind) for f in self.fields)


def _resource(name: str, singular: str, fields: tuple[UnifiedField, ...], description: str, schema: str) -> ResourceModel:
    docs = f"https://truto.one/docs/api-reference/unified-crm-api/{name}"
    return ResourceModel(name, singular, fields, description, schema, docs)


#: Every unified resource by route name; projects first (the resource unicrm exists for).
RESOURCES: dict[str, ResourceModel] = {
    r.name: r
    for r in (
        _resource("projects", "project", FIELDS, "Projects (Capsule kases, Pipeliner projects, ...)", "Project"),
        _resource("users", "user", USER_FIELDS, "The CRM's users: project owners and managers", "User"),
        _resource("accounts", "account", ACCOUNT_FIELDS, "Companies / organisations / clients", "Account"),
        _resource("contacts", "contact", CONTACT_FIELDS, "People at a company", "Contact"),
        _resource("opportunities", "opportunity", OPPORTUNITY_FIELDS, "Deals / opportunities", "Opportunity"),
        _resource("stages", "stage", STAGE_FIELDS, "Project stages (board or pipeline steps)", "Stage"),
        _resource("tags", "tag", TAG_FIELDS, "Tags a project can carry", "Tag"),
    )
}
PROJECTS = RESOURCES["projects"]


def json_schema_for(
    kind: FieldKind, enum: tuple[str, ...] | None = None, items: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """JSON Schema of one unified field kind."""
    ref = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": ["string", "null"]}}}
    schema: dict[str, Any]
    if kind == "string":
        schema = {"type": "string"}
    elif kind == "number":
        schema = {"type": "number"}
    elif kind == "integer":
        schema = {"type": "integer"}
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif kind == "ref":
        schema = ref
    elif kind == "ref_list":
        schema = {"type": "array", "items": ref}
    elif kind == "object_list":
        props = {k: {"type": [t, "null"]} for k, t in (items or {}).items()}
        schema = {"type": "array", "items": {"type": "object", "properties": props}}
    else:
        schema = {"type": "object", "additionalProperties": True}
    if enum:
        schema = {**schema, "enum": list(enum)}
    return schema


def empty_value(kind: FieldKind) -> Any:
    """The value a field takes in the normalized format when the provider has none."""
    return [] if kind in ("ref_list", "object_list") else None


def field_schema(f: UnifiedField) -> dict[str, Any]:
    """JSON Schema of one unified field (a reference names the resource its ids come from)."""
    schema = json_schema_for(f.kind, f.enum, f.items)
    return schema | {"x-references": f"{f.references}.id"} if f.references else schema
