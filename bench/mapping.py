"""Benchmark 2: mapping throughput, provider records to unified records, on one core.

For every declared provider and resource, the golden fixtures' provider records
(tests/fixtures/<provider>/{get,list}.json for projects, tests/fixtures/<provider>/<resource>/
{get,list}.json for users, accounts, ...) are mapped the way the engine maps a list page:
`to_unified(hooks.after_read(record), lookups)`. The baseline is the same Capsule mapping written
as a JSONata expression (JSONata is the mapping language of Truto's engine) evaluated by
`jsonata-python`. Rounds of every measurement alternate, so machine noise hits them alike;
the figure reported is the median of the rounds, the ratio the median of per-round ratios.

Before timing, the JSONata expression is checked to produce the same records as unicrm's
Capsule mapping on the fixtures (keys whose value is null count as absent: JSONata drops
undefined keys where unicrm writes None).

Run: .venv/bin/python bench/mapping.py [--quick] [--rounds N] [--seconds S]
Target: >= 200,000 records/s per provider and resource, and >= 50x the JSONata baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import orjson  # noqa: E402

from unicrm.engine.mapping import CompiledMapping, compile_mapping, get_path  # noqa: E402
from unicrm.providers import all_providers  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
TARGET_RATE = 200_000
TARGET_RATIO = 50.0

# The Capsule mapping of src/unicrm/providers/capsule.py, field for field, in JSONata.
CAPSULE_JSONATA = """
{
  "id": $string(id),
  "name": name,
  "description": description,
  "status": $lookup({"OPEN": "open", "CLOSED": "closed"}, status),
  "close_date": expectedCloseOn ? $substring(expectedCloseOn, 0, 10) & "T00:00:00Z" : null,
  "owner": $exists(owner.id) ? {"id": $string(owner.id), "name": owner.name} : null,
  "contact": party.type = "person" and $exists(party.id)
    ? [{"id": $string(party.id),
        "name": party.name ? party.name : ($n := $join([party.firstName, party.lastName], " "); $n ? $n : null)}]
    : [],
  "account": party.type = "organisation" and $exists(party.id)
    ? {"id": $string(party.id),
       "name": party.name ? party.name : ($n := $join([party.firstName, party.lastName], " "); $n ? $n : null)}
    : null,
  "opportunity": $exists(opportunity.id) ? [{"id": $string(opportunity.id), "name": opportunity.name}] : [],
  "stage": $exists(stage.id) ? {"id": $string(stage.id), "name": stage.name} : null,
  "tags": tags ? [tags.{"id": $string(id), "name": name}] : [],
  "custom_fields": $type(fields) = "array"
    ? $merge(fields.{(definition.name ? definition.name : $string(definition.id)): value})
    : null,
  "created_at": createdAt ? $fromMillis($toMillis(createdAt), "[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01]Z") : null,
  "updated_at": updatedAt ? $fromMillis($toMillis(updatedAt), "[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01]Z") : null,
  "last_activity_at": lastContactedAt
    ? $fromMillis($toMillis(lastContactedAt), "[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01]Z") : null
}
"""


def pin_to_one_core() -> str:
    """Run on one CPU (the last one) so figures are per core; say which."""
    if hasattr(os, "sched_setaffinity"):
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity on this platform)"


def fixture_records(mapping: CompiledMapping) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The provider records of a provider's get and list fixtures, and their lookups."""
    provider = mapping.provider
    records: list[dict[str, Any]] = []
    lookups: dict[str, Any] = {}
    folder = FIXTURES / provider.name if provider.resource == "projects" else FIXTURES / provider.name / provider.resource
    for op in ("get", "list"):
        path = folder / f"{op}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        lookups.update(data.get("lookups") or {})
        response = data.get("provider_response")
        if op == "list":
            found = get_path(response, provider.list_path)
            records.extend(r for r in found or [] if isinstance(r, dict) and (provider.keep is None or provider.keep(r)))
        else:
            record = get_path(response, provider.endpoints["get"].record_path)
            if isinstance(record, dict):
                records.append(record)
    return (records, lookups) if records else None


def make_pool(records: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    return [records[i % len(records)] for i in range(size)]


def time_unicrm(mapping: CompiledMapping, pool: list[dict[str, Any]], lookups: dict[str, Any], serialise: bool) -> float:
    """Records per second over one pass of the pool (the engine's list-page loop)."""
    to_unified = mapping.to_unified
    after_read = mapping.provider.hooks.after_read
    dumps = orjson.dumps
    start = time.perf_counter()
    if serialise:
        for record in pool:
            unified = to_unified(after_read(record), lookups)
            unified["remote_data"] = record
            dumps(unified)
    else:
        for record in pool:
            to_unified(after_read(record), lookups)
    return len(pool) / (time.perf_counter() - start)


def time_jsonata(evaluate: Callable[[Any], Any], pool: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for record in pool:
        evaluate(record)
    return len(pool) / (time.perf_counter() - start)


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def check_equivalent(
    evaluate: Callable[[Any], Any], mapping: CompiledMapping, records: list[dict[str, Any]], lookups: dict[str, Any]
) -> None:
    for record in records:
        ours = without_nulls(mapping.to_unified(mapping.provider.hooks.after_read(record), lookups))
        theirs = without_nulls(evaluate(record))
        if ours != theirs:
            raise SystemExit(f"the JSONata baseline differs from unicrm on record {record.get('id')}:\n{ours}\n{theirs}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 21, quick 5)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per measurement (default 0.25, quick 0.1)")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 21)
    seconds = args.seconds or (0.1 if args.quick else 0.25)

    pinned = pin_to_one_core()
    print(f"mapping benchmark: Python {platform.python_version()}, {pinned}, {rounds} alternating rounds of ~{seconds:g} s each")

    try:
        import jsonata
    except ImportError:
        print("jsonata-python is not installed: .venv/bin/pip install -e '.[dev]'", file=sys.stderr)
        return 2

    providers = all_providers()
    inputs: dict[str, tuple[CompiledMapping, list[dict[str, Any]], dict[str, Any]]] = {}
    for provider_name, provider in providers.items():
        for resource in provider.resource_names():
            view = provider.for_resource(resource)
            assert view is not None
            name = provider_name if resource == "projects" else f"{provider_name}/{resource}"
            mapping = compile_mapping(view)
            found = fixture_records(mapping)
            if found is None:
                print(f"  {name}: no fixtures with provider records, skipped")
                continue
            inputs[name] = (mapping, found[0], found[1])
    if "capsule" not in inputs:
        print("no Capsule fixtures: the JSONata baseline needs them", file=sys.stderr)
        return 2

    compile_start = time.perf_counter()
    expression = jsonata.Jsonata(CAPSULE_JSONATA)
    compile_ms = (time.perf_counter() - compile_start) * 1000
    capsule_mapping, capsule_records, capsule_lookups = inputs["capsule"]
    check_equivalent(expression.evaluate, capsule_mapping, capsule_records, capsule_lookups)
    print(
        f"JSONata baseline: compiled in {compile_ms:.1f} ms, "
        f"same output as unicrm on {len(capsule_records)} Capsule fixture records"
    )

    # Size each pool from a calibration pass so one measurement takes about `seconds`.
    pools: dict[str, list[dict[str, Any]]] = {}
    for name, (mapping, records, lookups) in inputs.items():
        rate = time_unicrm(mapping, make_pool(records, 20_000), lookups, serialise=False)
        pools[name] = make_pool(records, max(10_000, int(rate * seconds)))
    jsonata_rate = time_jsonata(expression.evaluate, make_pool(capsule_records, 50))
    jsonata_pool = make_pool(capsule_records, max(50, int(jsonata_rate * seconds)))

    gc.collect()
    gc.freeze()
    plain: dict[str, list[float]] = {name: [] for name in inputs}
    serialised: dict[str, list[float]] = {name: [] for name in inputs}
    baseline: list[float] = []
    for _ in range(rounds):
        for name, (mapping, _records, lookups) in inputs.items():
            plain[name].append(time_unicrm(mapping, pools[name], lookups, serialise=False))
            serialised[name].append(time_unicrm(mapping, pools[name], lookups, serialise=True))
        baseline.append(time_jsonata(expression.evaluate, jsonata_pool))

    base = statistics.median(baseline)
    # Each round's unicrm rate over the JSONata rate of the same round: noise that slows the
    # machine for a while hits both sides of a ratio alike.
    ratios = [ours / theirs for ours, theirs in zip(plain["capsule"], baseline, strict=True)]
    print()
    print(
        f"{'provider':<24} {'records/s':>10} {'best round':>11} {'µs/record':>10} "
        f"{'+remote_data+orjson/s':>22} {'× JSONata':>10}  target (median)"
    )
    ok = True
    for name in inputs:
        rate = statistics.median(plain[name])
        full = statistics.median(serialised[name])
        ratio = statistics.median(ratios)
        meets = rate >= TARGET_RATE and (name != "capsule" or ratio >= TARGET_RATIO)
        ok = ok and meets
        ratio_text = f"{ratio:>9.0f}×" if name == "capsule" else f"{'-':>10}"
        print(
            f"{name:<24} {rate:>10,.0f} {max(plain[name]):>11,.0f} {1e6 / rate:>10.2f} "
            f"{full:>22,.0f} {ratio_text}  {'met' if meets else 'MISSED'}"
        )
    print(
        f"{'JSONata':<24} {base:>10,.0f} {max(baseline):>11,.0f} {1e6 / base:>10.2f} {'':>22} {'1×':>10}  "
        "(jsonata-python, Capsule mapping)"
    )
    print()
    print(
        f"Capsule unicrm/JSONata: median of per-round ratios {statistics.median(ratios):.0f}× "
        f"(rounds ranged {min(ratios):.0f}×–{max(ratios):.0f}×)"
    )
    print("records/s: median over the rounds; best round: the fastest round (least disturbed by other load).")
    verdict = "all met" if ok else "NOT all met"
    print(f"targets: >= {TARGET_RATE:,} records/s per provider and >= {TARGET_RATIO:.0f}× JSONata: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
