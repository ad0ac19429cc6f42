"""Meta documents and the coverage table, generated from the compiled declarations (PRODUCT §3.7).

The same `CompiledMapping` that maps and validates requests answers "what does this provider
support and require", so the docs cannot drift from behaviour.
"""

from __future__ import annotations

from typing import Any

from unicrm.engine.mapping import CompiledMapping
from unicrm.engine.options import FILTER_FIELDS, FILTER_OPS
from unicrm.model import FIELDS, OPERATIONS, RESOURCES, field_schema
from unicrm.providers.declaration import Op, Provider


def filters_honoured(mapping: CompiledMapping) -> dict[str, dict[str, str]]:
    """For each incremental filter and operator: `native`, `engine` (applied by unicrm) or absent."""
    out: dict[str, dict[str, str]] = {}
    for name in FILTER_FIELDS:
        ops: dict[str, str] = {}
        for op in FILTER_OPS:
            if any(f.field == name and op in f.ops for f in mapping.provider.filters):
                ops[op] = "native"
            elif name in mapping.readable:
                ops[op] = "engine"
        if ops:
            out[name] = ops
    return out


def required_on(mapping: CompiledMapping, op: Op) -> list[str]:
    """Required unified fields on an operation (a group reads `a or b`)."""
    required = list(mapping.required.get(op, ()))
    for group in mapping.provider.required_any.get(op, ()):
        label = " or ".join(group)
        if label not in required:
            required.append(label)
    return required


def field_rows(mapping: CompiledMapping, op: Op) -> list[dict[str, Any]]:
    """One row per unified field: supported on this op? required? notes."""
    required = required_on(mapping, op)
    required_names = {n for label in required for n in label.split(" or ")}
    rows = []
    for spec in mapping.model.fields:
        fld = mapping.provider.field(spec.name)
        if op in ("create", "update"):
            supported = spec.name in mapping.writable.get(op, frozenset())
        else:
            supported = spec.name in mapping.readable
        note = fld.note if fld is not None else ""
        if fld is not None and fld.conv is not None and (desc := fld.conv.describe()):
            note = f"{note}; {desc}" if note else desc
        rows.append(
            {
                "name": spec.name,
                "supported": supported,
                "required": spec.name in required_names and op in ("create", "update"),
                "notes": note,
            }
        )
    return rows


def meta_document(mapping: CompiledMapping, method: Op) -> dict[str, Any]:
    """The body of `GET /unified/crm/{resource}/{integration}/meta/{method}`."""
    provider = mapping.provider
    rows = field_rows(mapping, method)
    supported = {r["name"] for r in rows if r["supported"]}
    required = required_on(mapping, method) if method in ("create", "update") else []
    response_props = {
        f.name: field_schema(f) | {"description": f.description} for f in mapping.model.fields if f.name in mapping.readable
    }
    response_props["remote_data"] = {"type": "object", "description": f"The {provider.label} record as received"}
    meta: dict[str, Any] = {
        "integration": provider.name,
        "label": provider.label,
        "resource": mapping.model.name,
        "method": method,
        "supported": method in provider.endpoints,
        "documentation_link": provider.docs_url,
        "response_schema": {"type": "object", "properties": response_props},
        "fields": rows,
        "limits": {
            "default_page_size": provider.pagination.default_size,
            "max_page_size": provider.pagination.max_size,
            "pagination": provider.pagination.style,
        },
        "notes": list(provider.notes) + ([provider.keep_note] if provider.keep_note else []),
        "differences_from_truto": [d.__dict__ for d in provider.differences if d.op in (method, "all")],
    }
    if method in ("create", "update"):
        props = {}
        for f in mapping.model.fields:
            if f.name in supported:
                row = next(r for r in rows if r["name"] == f.name)
                props[f.name] = field_schema(f) | {"description": f.description, "x-notes": row["notes"]}
        props["remote_data"] = {"type": "object", "description": "Merged as-is into the provider request body"}
        meta["request_body_schema"] = {
            "type": "object",
            "properties": props,
            "required": [r for r in required if " or " not in r],
            "x-required-one-of": [r.split(" or ") for r in required if " or " in r],
            "additionalProperties": False,
        }
    if method == "list":
        honoured = filters_honoured(mapping)
        meta["filters"] = honoured
        meta["query_schema"] = {
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                "next_cursor": {"type": "string"},
                **{
                    f"{name}[{op}]": {"type": "string", "format": "date-time", "x-applied-by": how}
                    for name, ops in honoured.items()
                    for op, how in ops.items()
                },
            },
        }
    return meta


def missing_resource_meta(provider: Provider, resource: str, method: str) -> dict[str, Any]:
    """Meta for a resource the provider does not have: says so and names what it has."""
    have = list(provider.resource_names())
    return {
        "integration": provider.name,
        "label": provider.label,
        "resource": resource,
        "method": method,
        "supported": False,
        "message": missing_resource_message(provider, resource),
        "available_resources": have,
    }


def missing_resource_message(provider: Provider, resource: str) -> str:
    """Why a provider cannot serve a resource, naming the ones it can."""
    return (
        f"{provider.label} has no {resource} endpoint that unicrm maps. "
        f"Resources available for {provider.label}: {', '.join(provider.resource_names())}."
    )


def _resources_markdown(resources: dict[str, dict[str, CompiledMapping]], providers: list[str]) -> list[str]:
    lines = ["## Resources besides projects", "", "Operations per provider (`–`: the provider has no such endpoint).", ""]
    lines.append("| resource | " + " | ".join(providers) + " |")
    lines.append("|---|" + "---|" * len(providers))
    for name in RESOURCES:
        if name == "projects":
            continue
        per = resources.get(name, {})
        cells = [", ".join(op for op in OPERATIONS if op in per[p].provider.endpoints) if p in per else "–" for p in providers]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, model in RESOURCES.items():
        per = resources.get(name, {})
        if name == "projects" or not per:
            continue
        have = [p for p in providers if p in per]
        lines += [f"### {name} (read: list and get)", ""]
        lines.append("| field | " + " | ".join(have) + " |")
        lines.append("|---|" + "---|" * len(have))
        for spec in model.fields:
            lines.append(f"| {spec.name} | " + " | ".join("✓" if spec.name in per[p].readable else "–" for p in have) + " |")
        lines.append("")
        for p in have:
            honoured = filters_honoured(per[p])
            filters = "; ".join(f"{f} {', '.join(f'{o} ({h})' for o, h in ops.items())}" for f, ops in honoured.items())
            provider = per[p].provider
            endpoint = provider.endpoints.get("list") or next(iter(provider.endpoints.values()))
            extra = f"; {provider.keep_note}" if provider.keep_note else ""
            lines.append(f"- {p}: `{endpoint.method} {endpoint.path}`; filters: {filters or 'none'}{extra}")
        lines.append("")
    return lines


def coverage_markdown(
    mappings: dict[str, CompiledMapping], resources: dict[str, dict[str, CompiledMapping]] | None = None
) -> str:
    """docs/coverage.md: per provider and operation, supported/required fields and filters.

    `mappings` are the projects mappings by provider; `resources` the other resources' mappings
    by resource, then provider.
    """
    names = sorted(mappings)
    lines = [
        "# Provider coverage",
        "",
        "Generated from the provider declarations by `unicrm coverage` (CI checks it is up to date).",
        "Legend: **R** required, ✓ supported, – not supported. Required groups read `a or b`.",
        "",
    ]
    ops: tuple[Op, ...] = OPERATIONS  # type: ignore[assignment]
    for op in ops:
        lines += [f"## {op}", ""]
        lines.append("| field | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        tables = {n: {r["name"]: r for r in field_rows(mappings[n], op)} for n in names}
        for spec in FIELDS:
            if op in ("create", "update") and spec.response_only:
                continue
            cells = []
            for n in names:
                if op not in mappings[n].provider.endpoints:
                    cells.append("n/a")
                    continue
                row = tables[n][spec.name]
                cells.append("**R**" if row["required"] else "✓" if row["supported"] else "–")
            lines.append(f"| {spec.name} | " + " | ".join(cells) + " |")
        if op in ("create", "update"):
            groups = {n: [r for r in required_on(mappings[n], op) if " or " in r] for n in names}
            if any(groups.values()):
                lines.append("")
                for n in names:
                    if groups[n]:
                        lines.append(f"- {n}: requires {'; '.join(groups[n])}")
        lines.append("")
    lines += ["## Incremental filters", "", "| provider | updated_at | created_at |", "|---|---|---|"]
    for n in names:
        honoured = filters_honoured(mappings[n])

        def cell(field: str, honoured: dict[str, dict[str, str]] = honoured) -> str:
            ops = honoured.get(field)
            if not ops:
                return "not available"
            return ", ".join(f"{op} ({how})" for op, how in ops.items())

        lines.append(f"| {n} | {cell('updated_at')} | {cell('created_at')} |")
    lines += ["", "`native`: translated to the provider's own filter; `engine`: applied by unicrm to each page.", ""]
    lines += ["## Where the provider's API differs from Truto's matrix (seed 000)", ""]
    lines += ["| provider | field | op | Truto | unicrm | why |", "|---|---|---|---|---|---|"]
    for n in names:
        for d in mappings[n].provider.differences:
            lines.append(f"| {n} | {d.field} | {d.op} | {d.truto} | {d.ours} | {d.why} |")
        required_here = {x for r in required_on(mappings[n], "create") for x in r.split(" or ")}
        explained = {d.field for d in mappings[n].provider.differences if d.op == "create"}
        for field in mappings[n].provider.truto_required_on_create:
            if field not in required_here and field not in explained:
                lines.append(f"| {n} | {field} | create | required | not required | the provider's API accepts it missing |")
    lines += ["", "## Notes", ""]
    for n in names:
        for note in mappings[n].provider.notes:
            lines.append(f"- **{n}**: {note}")
    lines.append("")
    if resources is not None:
        lines += _resources_markdown(resources, names)
    return "\n".join(lines)
