"""Response formats and shaping (PRODUCT §3.2, §3.3) applied to mapped records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from unicrm.engine.errors import bad_request
from unicrm.model import PROJECTS, empty_value
from unicrm.providers.declaration import iso_utc, parse_iso_datetime

_KINDS = PROJECTS.kinds


def _coerce(kind: str, value: Any) -> Any:
    if value is None:
        return empty_value(kind)  # type: ignore[arg-type]
    if kind == "datetime":
        try:
            return iso_utc(parse_iso_datetime(str(value)))
        except ValueError:
            return None
    if kind == "number":
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return int(number) if number.is_integer() else number
    if kind == "integer":
        if isinstance(value, bool):
            return None
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "object_list":
        return [dict(v) for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
    if kind == "string":
        return str(value)
    if kind == "ref":
        return {"id": str(value.get("id")), "name": value.get("name")} if isinstance(value, Mapping) else None
    if kind == "ref_list":
        if not isinstance(value, list):
            return []
        return [{"id": str(v.get("id")), "name": v.get("name")} for v in value if isinstance(v, Mapping)]
    if kind == "object":
        return dict(value) if isinstance(value, Mapping) else None
    return value


def normalize(record: Mapping[str, Any], kinds: Sequence[tuple[str, str]] = _KINDS) -> dict[str, Any]:
    """Every unified field of the resource present, values coerced to the schema's types, no remote_data."""
    return {name: _coerce(kind, record.get(name)) for name, kind in kinds}


def exclude_fields(record: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """Drop fields by name or dotted path (`owner.name`, `contact.name` for every item)."""
    for path in paths:
        _drop(record, path.split("."))
    return record


def _drop(node: Any, parts: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _drop(item, parts)
        return
    if not isinstance(node, dict):
        return
    head = parts[0]
    if len(parts) == 1:
        node.pop(head, None)
    elif head in node:
        _drop(node[head], parts[1:])


def key_by(records: list[dict[str, Any]], field: str) -> dict[str, Any]:
    """`truto_key_by`: a list's result as an object keyed by a field's value."""
    out: dict[str, Any] = {}
    for record in records:
        value = record.get(field)
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise bad_request(f"truto_key_by={field} names a field whose values are not scalars.")
        out[str(value)] = record
    return out
