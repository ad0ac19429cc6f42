"""Fields that write one provider key: a clear in one never undoes what another sets."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from unicrm.engine.errors import ApiError
from unicrm.engine.mapping import CompiledMapping, compile_mapping
from unicrm.engine.validation import validate_body
from unicrm.model import FIELDS_BY_NAME
from unicrm.providers import all_providers
from unicrm.providers.declaration import Op

#: Lookups a write may consult (Pipeliner's currencies, Capsule's field definitions).
LOOKUPS: dict[str, Any] = {
    "currencies": {"c-eur": {"code": "EUR", "is_base": True}, "c-usd": {"code": "USD", "is_base": False}},
    "field_definitions": {"Budget": 1},
}


def _sample(name: str) -> Any:
    kind = FIELDS_BY_NAME[name].kind
    return {
        "string": "EUR" if name == "currency" else "x",
        "number": 5,
        "datetime": "2026-01-01T00:00:00Z",
        "ref": {"id": "1"},
        "ref_list": [{"id": "1"}],
        "object": {"Budget": 1},
    }[kind]


def _groups() -> list[tuple[str, str, str, Op]]:
    """(provider, field that sets, field that clears, op) for every pair sharing a provider key."""
    out: list[tuple[str, str, str, Op]] = []
    op: Op = "update"
    for name, provider in all_providers().items():
        # Updates: nothing is required there, so each field can be sent alone; creates map
        # through the same to_provider.
        writers = [f for f in provider.fields if f.writes_on(op)]
        for a, b in itertools.permutations(writers, 2):
            if set(a.provider_keys()) & set(b.provider_keys()):
                out.append((name, a.unified, b.unified, op))
    return out


def _subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict) and isinstance(big, dict):
        return all(k in big and _subset(v, big[k]) for k, v in small.items())
    return bool(small == big)


def _map(mapping: CompiledMapping, body: dict[str, Any], op: Op) -> dict[str, Any]:
    fields, _ = validate_body(body, op, mapping)
    return mapping.to_provider(fields, op, LOOKUPS)


def test_there_are_shared_key_groups() -> None:
    # Capsule (party), Pipeliner (revenue_goal) and Teamleader (customers, fixed_price) at least.
    assert {g[0] for g in _groups()} >= {"capsule", "pipeliner", "teamleader"}


@pytest.mark.parametrize(("provider", "setter", "clearer", "op"), _groups())
def test_a_null_in_one_field_keeps_what_another_sets(provider: str, setter: str, clearer: str, op: Op) -> None:
    mapping = compile_mapping(all_providers()[provider])
    alone = _map(mapping, {setter: _sample(setter)}, op)
    both = _map(mapping, {clearer: None, setter: _sample(setter)}, op)
    assert _subset(alone, both), (alone, both)
    both_reversed = _map(mapping, {setter: _sample(setter), clearer: None}, op)
    assert both == both_reversed


def test_capsule_contact_with_a_null_account_sends_the_contact() -> None:
    mapping = compile_mapping(all_providers()["capsule"])
    body = _map(mapping, {"contact": [{"id": "1"}], "account": None}, "update")
    assert body == {"party": {"id": 1}}
    body = _map(mapping, {"account": {"id": "7"}, "contact": []}, "update")
    assert body == {"party": {"id": 7}}


def test_capsule_refuses_an_account_and_a_contact_together() -> None:
    mapping = compile_mapping(all_providers()["capsule"])
    with pytest.raises(ApiError) as err:
        _map(mapping, {"contact": [{"id": "1"}], "account": {"id": "2"}}, "update")
    assert err.value.status == 400 and "same place" in err.value.message
