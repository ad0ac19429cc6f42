"""The unified project model (PRODUCT §2): the one list of fields, their types and statuses.

Validation, the normalized response format, the meta endpoint's JSON Schema and the OpenAPI
document are all derived from this table; nothing else spells the unified fields out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FieldKind = Literal["string", "number", "datetime", "ref", "ref_list", "object"]

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


FIELDS: tuple[UnifiedField, ...] = (
    UnifiedField("id", "string", "The project's unique identifier (the provider id as a string)", True),
    UnifiedField("name", "string", "The project's name"),
    UnifiedField("description", "string", "The project's description"),
    UnifiedField("amount", "number", "The project's amount, in currency units"),
    UnifiedField("currency", "string", "The amount's currency (ISO 4217)"),
    UnifiedField("close_date", "datetime", "The project's close date (ISO 8601)"),
    UnifiedField("status", "string", "The project's status", enum=STATUSES),
    UnifiedField("owner", "ref", "The project's owner {id, name}"),
    UnifiedField("account", "ref", "The customer company/organisation {id, name}"),
    UnifiedField("contact", "ref_list", "The project's contacts [{id, name}]"),
    UnifiedField("opportunity", "ref_list", "The project's opportunities [{id, name}]"),
    UnifiedField("stage", "ref", "The project's stage {id, name}", True),
    UnifiedField("tags", "ref_list", "The project's tags [{id, name}]", name_suffices=True),
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


def json_schema_for(kind: FieldKind, enum: tuple[str, ...] | None = None) -> dict[str, Any]:
    """JSON Schema of one unified field kind."""
    ref = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": ["string", "null"]}}}
    schema: dict[str, Any]
    if kind == "string":
        schema = {"type": "string"}
    elif kind == "number":
        schema = {"type": "number"}
    elif kind == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif kind == "ref":
        schema = ref
    elif kind == "ref_list":
        schema = {"type": "array", "items": ref}
    else:
        schema = {"type": "object", "additionalProperties": True}
    if enum:
        schema = {**schema, "enum": list(enum)}
    return schema


def empty_value(kind: FieldKind) -> Any:
    """The value a field takes in the normalized format when the provider has none."""
    return [] if kind == "ref_list" else None
