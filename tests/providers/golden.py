"""Golden fixtures: provider payload in, unified record out; unified body in, provider body out.

Each provider has `tests/fixtures/<provider>/<op>.json` for projects and
`tests/fixtures/<provider>/<resource>/<op>.json` for every other resource it declares
(users, accounts, ...). Shapes:
- list:   {"provider_response": <list answer>, "lookups": {...}?, "unified": [records, no remote_data]}
          (records the resource's `keep` rejects, e.g. people in an accounts list, are left out)
- get:    {"provider_response": <get answer>, "lookups"?, "unified": record}
- create/update: {"unified_body": {...}, "lookups"?, "context"?, "before"?, "provider_body": {...},
                  "provider_response": <answer>?, "unified": record?}
  `provider_body` is after the provider's `before_write` hook, which runs on creates and on
  updates whose fixture gives `before` (the record the hook would read from the provider).
- delete: {"request": {"method", "path"}, "provider_response": <answer or null>}
Set UNICRM_REGENERATE_GOLDEN=1 to rewrite the expected sides from the current mapping (then
review the diff: a fixture is only as good as the review of its expected side).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from unicrm.engine.mapping import CompiledMapping, deep_merge, get_path
from unicrm.engine.validation import validate_body
from unicrm.providers.declaration import Endpoint, Op, Provider

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def map_record(mapping: CompiledMapping, record: dict[str, Any], lookups: dict[str, Any]) -> dict[str, Any]:
    return mapping.to_unified(mapping.provider.hooks.after_read(record), lookups)


def list_records(mapping: CompiledMapping, response: Any, lookups: dict[str, Any]) -> list[dict[str, Any]]:
    records = get_path(response, mapping.provider.list_path)
    assert isinstance(records, list), "list answer has no records at list_path"
    keep = mapping.provider.keep
    return [map_record(mapping, r, lookups) for r in records if keep is None or keep(r)]


def get_record(mapping: CompiledMapping, op: Op, response: Any, lookups: dict[str, Any]) -> dict[str, Any]:
    record = get_path(response, mapping.provider.endpoints[op].record_path)
    assert isinstance(record, dict)
    return map_record(mapping, record, lookups)


class _Answer:
    def __init__(self, body: Any) -> None:
        self.body = body

    def json(self) -> Any:
        return self.body


class FixtureCall:
    """Stands in for ProviderCall in a hook: reads answer the fixture's `before` record, and
    nothing else is sent (a golden fixture makes no provider calls)."""

    def __init__(self, provider: Provider, before: Any) -> None:
        self.provider = provider
        self.before = before

    async def call(self, endpoint: Endpoint, record_id: str | None = None, params: Any = None, body: Any = None) -> _Answer:
        assert endpoint.retriable and self.before is not None, "the hook would call the provider"
        return _Answer(self.before)


def provider_body(
    mapping: CompiledMapping,
    op: Op,
    body: dict[str, Any],
    lookups: dict[str, Any],
    context: dict[str, Any],
    before: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the engine sends for a write, before wrapping (same steps as Engine._write)."""
    fields, remote_data = validate_body(body, op, mapping)
    out = mapping.to_provider(fields, op, lookups)
    provider = mapping.provider
    if op == "create" and provider.create_defaults:
        defaults = {k: (v(context, lookups) if callable(v) else v) for k, v in provider.create_defaults.items()}
        out = deep_merge(defaults, out)
    out = deep_merge(out, remote_data)
    if op == "create" or before is not None:
        call: Any = FixtureCall(provider, before)
        record_id = None if op == "create" else "fixture"
        known = before if op == "update" and provider.hooks.needs_before_update else None
        out = asyncio.run(provider.hooks.before_write(op, call, record_id, fields, out, known))
    return out
