"""Checks a unified write body against the model and the provider's declaration (PRODUCT §3.4).

Runs before any provider call: unknown fields, wrong types, fields the provider cannot write
and missing required fields all give a 400 that names unified fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unicrm.engine.errors import ApiError
from unicrm.engine.mapping import CompiledMapping
from unicrm.model import REQUEST_EXTRAS, STATUSES, UnifiedField
from unicrm.providers.declaration import Op, parse_iso_datetime


def _type_problem(spec: UnifiedField, value: Any) -> str | None:
    """Why a value does not fit a unified field's type, or None. `null` clears a field."""
    if value is None:
        return None
    kind = spec.kind
    if kind == "string":
        if not isinstance(value, str):
            return f"must be a string, got {type(value).__name__}"
        if spec.enum and value not in spec.enum:
            return f"must be one of {', '.join(spec.enum)}; got {value!r}"
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {value!r}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return f"must be true or false, got {value!r}"
    elif kind == "object_list":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return "must be an array of objects"
    elif kind == "datetime":
        if not isinstance(value, str):
            return f"must be an ISO 8601 date-time string, got {value!r}"
        try:
            parse_iso_datetime(value)
        except ValueError:
            return f"must be an ISO 8601 date-time such as 2025-06-30T00:00:00Z, got {value!r}"
    elif kind == "ref":
        return _ref_problem(value, spec.name_suffices)
    elif kind == "ref_list":
        if not isinstance(value, list):
            return 'must be an array of objects like [{"id": "..."}]'
        for index, item in enumerate(value):
            problem = _ref_problem(item, spec.name_suffices)
            if problem:
                return f"item {index} {problem}"
    elif kind == "object" and not isinstance(value, dict):
        return "must be an object"
    return None


def _ref_problem(value: Any, name_suffices: bool = False) -> str | None:
    if not isinstance(value, dict):
        return f'must be an object like {{"id": "..."}}, got {value!r}'
    if name_suffices and "id" not in value and isinstance(value.get("name"), str) and value["name"]:
        return None
    ident = value.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int) or ident == "":
        return 'must have a non-empty "id" (string)'
    return None


def validate_body(body: Any, op: Op, mapping: CompiledMapping) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (unified fields, remote_data) of a valid body, or raise a 400 naming the fields."""
    label = mapping.provider.label
    by_name = mapping.model.fields_by_name
    singular = mapping.model.singular
    if not isinstance(body, dict):
        raise ApiError(400, f"The request body must be a JSON object with unified {singular} fields; got {type(body).__name__}.")
    unknown = sorted(k for k in body if k not in by_name and k not in REQUEST_EXTRAS)
    if unknown:
        raise ApiError(
            400,
            f"Unknown field(s) {', '.join(unknown)}. Unified {singular} fields are: "
            f"{', '.join(sorted(by_name))}; provider-specific keys go in remote_data.",
            insight={"unknown_body_fields": {"description": "Fields that are not part of the unified model", "value": unknown}},
        )
    remote_data = body.get("remote_data") or {}
    if not isinstance(remote_data, dict):
        raise ApiError(400, "remote_data must be an object; it is merged as-is into the provider's request body.")
    fields = {k: v for k, v in body.items() if k not in REQUEST_EXTRAS}
    invalid: list[dict[str, str]] = []
    for name, value in fields.items():
        spec = by_name[name]
        if spec.response_only:
            invalid.append({"field": name, "message": "is read-only (response only)"})
            continue
        problem = _type_problem(spec, value)
        if problem:
            invalid.append({"field": name, "message": problem})
    if invalid:
        raise _invalid(invalid)
    missing = [
        name
        for name in mapping.required.get(op, ())
        if _blank(fields.get(name)) and not _given_remotely(mapping, name, remote_data)
    ]
    for group in mapping.provider.required_any.get(op, ()):
        if all(_blank(fields.get(name)) for name in group) and not any(_given_remotely(mapping, n, remote_data) for n in group):
            missing.append(" or ".join(group))
    writable = mapping.writable.get(op, frozenset())
    unsupported = sorted(k for k in fields if k not in writable)
    if unsupported:
        notes = []
        for name in unsupported:
            fld = mapping.provider.field(name)
            reason = fld.note if fld is not None and fld.note else f"{label} has no writable counterpart"
            notes.append({"field": name, "message": f"cannot be written on {op} in {label}: {reason}"})
        can = ", ".join(sorted(writable)) or "none"
        raise ApiError(
            400,
            f"{label} cannot {op} field(s) {', '.join(unsupported)}"
            + "".join(f" ({n['field']} {n['message']})" for n in notes)
            + f". Writable on {op}: {can}. "
            f"Send provider-specific keys in remote_data instead."
            + (f" Also missing required field(s): {', '.join(missing)}." if missing else ""),
            insight={
                "invalid_fields": notes,
                "unsupported_body_fields": {"description": "Not writable here", "value": unsupported},
                **_missing_insight(missing, label, op),
            },
        )
    for group in mapping.provider.exclusive:
        given = [name for name in group if not _blank(fields.get(name))]
        if len(given) > 1:
            raise ApiError(
                400,
                f"{label} stores {' and '.join(group)} in the same place: send only one of {', '.join(given)}.",
                insight={
                    "invalid_fields": [
                        {"field": n, "message": f"conflicts with {', '.join(g for g in given if g != n)}"} for n in given
                    ]
                },
            )
    if missing:
        raise ApiError(
            400,
            f"Missing required field(s) for {op} in {label}: {', '.join(missing)}. "
            f"See GET /unified/crm/{mapping.model.name}/{mapping.provider.name}/meta/{op} for what {label} requires.",
            insight=_missing_insight(missing, label, op),
        )
    return fields, remote_data


def _missing_insight(missing: list[str], label: str, op: str) -> dict[str, Any]:
    if not missing:
        return {}
    return {"missing_required_body_fields": {"description": f"Fields {label} requires on {op}", "value": missing}}


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _given_remotely(mapping: CompiledMapping, name: str, remote_data: Mapping[str, Any]) -> bool:
    """A required field also counts as given when remote_data sets its provider key directly."""
    fld = mapping.provider.field(name)
    return fld is not None and any(key in remote_data for key in fld.provider_keys())


def _invalid(invalid: list[dict[str, str]]) -> ApiError:
    detail = "; ".join(f"{i['field']} {i['message']}" for i in invalid)
    return ApiError(400, f"Invalid field value(s): {detail}.", insight={"invalid_fields": invalid})


__all__ = ["STATUSES", "validate_body"]
