"""Golden fixtures: provider payload in, unified record out; unified body in, provider body out.

Each provider has `tests/fixtures/<provider>/<op>.json`. Shapes:
- list:   {"provider_response": <list answer>, "lookups": {...}?, "unified": [records, no remote_data]}
- get:    {"provider_response": <get answer>, "lookups"?, "unified": record}
- create/update: {"unified_body": {...}, "lookups"?, "context"?, "provider_body": {...},
                  "provider_response": <answer>?, "unified": record?}
- delete: {"request": {"method", "path"}, "provider_response": <answer or null>}
Set UNICRM_REGENERATE_GOLDEN=1 to rewrite the expected sides from the current mapping (then
review the diff: a fixture is only as good as the review of its expected side).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unicrm.engine.mapping import CompiledMapping, deep_merge, get_path
from unicrm.engine.validation import validate_body
from unicrm.providers.declaration import Op

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def map_record(mapping: CompiledMapping, record: dict[str, Any], lookups: dict[str, Any]) -> dict[str, Any]:
    return mapping.to_unified(mapping.provider.hooks.after_read(record), lookups)


def list_records(mapping: CompiledMapping, response: Any, lookups: dict[str, Any]) -> list[dict[str, Any]]:
    records = get_path(response, mapping.provider.list_path)
    assert isinstance(records, list), "list answer has no records at list_path"
    return [map_record(mapping, r, lookups) for r in records]


def get_record(mapping: CompiledMapping, op: Op, response: Any, lookups: dict[str, Any]) -> dict[str, Any]:
    record = get_path(response, mapping.provider.endpoints[op].record_path)
    assert isinstance(record, dict)
    return map_record(mapping, record, lookups)


def provider_body(
    mapping: CompiledMapping, op: Op, body: dict[str, Any], lookups: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """What the engine sends for a write, before wrapping (same steps as Engine._write)."""
    fields, remote_data = validate_body(body, op, mapping)
    out = mapping.to_provider(fields, op, lookups)
    provider = mapping.provider
    if op == "create" and provider.create_defaults:
        defaults = {k: (v(context, lookups) if callable(v) else v) for k, v in provider.create_defaults.items()}
        out = deep_merge(defaults, out)
    return deep_merge(out, remote_data)
