"""Benchmark 1: what the gateway costs: unified calls against the same calls sent straight to the emulator.

Starts `unicrm emulate capsule pipeliner --json` and `unicrm serve` (fresh temporary data
directory, SQLite) as subprocesses on 127.0.0.1, creates a token and one integrated account per
provider, warms up, then for each provider, each call (GET by id, list page of 100) and each
concurrency (1 and 32) alternates time-bounded rounds of direct and unified requests (the order
flips every round, so machine noise hits both alike). The direct call is the exact provider
request the gateway sends upstream (same URL, query, headers), built from the declaration.

Client: aiohttp, one keep-alive session per side with a pool as large as the concurrency.
Prints requests/s, p50 and p99 latency, the unified/direct throughput ratio, the p50 added by
the gateway, and the CPU time the server spends per unified request.

With `--floor [STACK ...]`, more sides join the same alternating rounds: the direct request
sent through `bench/floor_proxy.py`, a bare pass-through proxy (one pooled aiohttp session out)
that does nothing else, once per inbound stack (default: every stack it knows: uvicorn +
httptools + uvloop, granian ASGI, granian RSGI, aiohttp's web server). The fastest of them is
the most any Python gateway can reach on this machine, and unicrm is measured against it.

Run: .venv/bin/python bench/gateway.py [--quick] [--floor [STACK ...]] [--providers capsule pipeliner] [--rounds N] [--seconds S]
Targets: unified throughput >= 0.7x direct at concurrency 32; <= 0.5 ms added to p50 at concurrency 1.
Against the fastest floor (with --floor): GET c32 >= 0.9x its throughput; server CPU per GET
<= 1.25x its CPU per request; added p50 at c1 <= its added p50 + 0.15 ms; list c32 >= 0.85x.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from _support import (  # noqa: E402
    closing_all,
    free_port,
    machine,
    percentile,
    spawn,
    start_emulators,
    start_server,
    stop,
    tree_cpu_seconds,
)
from floor_proxy import STACKS  # noqa: E402
from yarl import URL  # noqa: E402

from unicrm.engine.pagination import paginator_for  # noqa: E402
from unicrm.outbound.auth import auth_headers  # noqa: E402
from unicrm.outbound.http import flatten_params  # noqa: E402
from unicrm.providers import all_providers  # noqa: E402

TARGET_RATIO_C32 = 0.7
TARGET_ADDED_P50_MS = 0.5
LIST_SIZE = 100


@dataclass
class Target:
    """One side of a comparison: a fixed request."""

    url: URL
    headers: dict[str, str]


@dataclass
class Samples:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    round_rates: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(sorted(self.latencies), q) * 1000


def direct_targets(provider_name: str, context: dict[str, Any], record_id: str) -> dict[str, Target]:
    """The provider requests the gateway sends for a get and a list page of 100."""
    provider = all_providers()[provider_name]
    base = str(context.get("base_url") or provider.base_url).rstrip("/")
    headers = {**provider.headers, **auth_headers(provider.auth, context)}
    get_ep = provider.endpoints["get"]
    list_ep = provider.endpoints["list"]
    paginator = paginator_for(provider.pagination)
    list_params = {**list_ep.query, **paginator.params(paginator.first(), LIST_SIZE)}
    get_url = base + get_ep.path.replace("{id}", quote(record_id, safe=""))
    if get_ep.query:
        get_url += "?" + urlencode(flatten_params(get_ep.query))
    list_url = base + list_ep.path + "?" + urlencode(flatten_params(list_params))
    return {"get": Target(URL(get_url, encoded=True), headers), "list": Target(URL(list_url, encoded=True), headers)}


def unified_targets(base_url: str, token: str, account_id: str, record_id: str) -> dict[str, Target]:
    headers = {"Authorization": f"Bearer {token}"}
    get_url = f"{base_url}/unified/crm/projects/{quote(record_id, safe='')}?integrated_account_id={account_id}"
    list_url = f"{base_url}/unified/crm/projects?integrated_account_id={account_id}&limit={LIST_SIZE}"
    return {"get": Target(URL(get_url, encoded=True), headers), "list": Target(URL(list_url, encoded=True), headers)}


async def run_round(
    session: aiohttp.ClientSession, target: Target, concurrency: int, seconds: float, max_requests: int
) -> Samples:
    """As many requests as fit in `seconds` (at most `max_requests`), `concurrency` at a time."""
    latencies: list[float] = []
    issued = 0
    deadline = time.perf_counter() + seconds
    errors: list[str] = []

    async def worker() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            async with session.get(target.url, headers=target.headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors.append(f"{resp.status} from {target.url}")
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    return Samples(requests=len(latencies), seconds=elapsed, latencies=latencies, round_rates=[len(latencies) / elapsed])


def merge(into: Samples, part: Samples, cpu: float) -> None:
    into.requests += part.requests
    into.seconds += part.seconds
    into.latencies.extend(part.latencies)
    into.round_rates.extend(part.round_rates)
    into.cpu_seconds += cpu


async def check(
    session: aiohttp.ClientSession, direct: dict[str, Target], unified: dict[str, Target], list_path: str | None
) -> None:
    """Both sides answer 200 and the list pages really hold 100 records."""
    for name in ("get", "list"):
        for side, target in (("direct", direct[name]), ("unified", unified[name])):
            async with session.get(target.url, headers=target.headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{side} {name} answered {resp.status}: {body[:300]!r}")
            if name == "list":
                data = orjson.loads(body)
                records = data.get("result") if side == "unified" else data
                if side == "direct" and list_path:
                    for part in list_path.split("."):
                        records = records.get(part)
                if not isinstance(records, list) or len(records) != LIST_SIZE:
                    count = len(records) if isinstance(records, list) else records
                    raise RuntimeError(f"{side} list page holds {count} records, not {LIST_SIZE}")


def start_floor_proxy(upstream_origin: str, stack: str) -> tuple[Any, str]:
    """`bench/floor_proxy.py --stack STACK` forwarding to `upstream_origin`; returns (process, its origin)."""
    port = free_port()
    proc = spawn(
        [
            sys.executable,
            str(Path(__file__).resolve().parent / "floor_proxy.py"),
            "--upstream",
            upstream_origin,
            "--port",
            str(port),
            "--stack",
            stack,
        ]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("floor proxy exited before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("floor proxy did not start listening")


def via(origin: str, target: Target) -> Target:
    """The same request sent to another origin (path, query and headers kept)."""
    return Target(URL(origin + target.url.raw_path_qs, encoded=True), target.headers)


async def first_id(session: aiohttp.ClientSession, unified: dict[str, Target]) -> str:
    async with session.get(unified["list"].url, headers=unified["list"].headers) as resp:
        data = orjson.loads(await resp.read())
    return str(data["result"][0]["id"])


async def bench(args: argparse.Namespace) -> int:
    rounds = args.rounds or (2 if args.quick else 5)
    seconds = args.seconds or (0.4 if args.quick else 1.5)
    warmup = 0.3 if args.quick else 2.0
    stacks: tuple[str, ...] = () if args.floor is None else tuple(args.floor or STACKS)
    print(f"gateway benchmark: {machine()}")
    print(f"{rounds} alternating rounds of {seconds:g} s per side and case; providers: {', '.join(args.providers)}")
    emulators = start_emulators(args.providers, dataset_size=args.dataset_size)
    server = start_server(allow_origins=emulators.origins)
    with closing_all(emulators, server):
        accounts = {name: server.create_account(name, emulators.running[name]["context"]) for name in args.providers}
        print(f"server pid {server.proc.pid} on {server.base_url}, emulators pid {emulators.proc.pid}")
        results: list[tuple[str, str, int, Samples, Samples]] = []
        floors: list[tuple[str, str, int, Samples, Samples, dict[str, Samples]]] = []
        for name in args.providers:
            context = emulators.running[name]["context"]
            if "base_url" not in context:
                context = {**context, "base_url": emulators.running[name]["base_url"]}
            async with aiohttp.ClientSession() as probe:
                record_id = await first_id(probe, unified_targets(server.base_url, server.token, accounts[name], "0"))
                unified = unified_targets(server.base_url, server.token, accounts[name], record_id)
                direct = direct_targets(name, context, record_id)
                await check(probe, direct, unified, all_providers()[name].list_path)
            floor_procs = []
            sides: tuple[str, ...] = ("direct", "unified")
            pids = {"direct": emulators.proc.pid, "unified": server.proc.pid}
            floor_targets: dict[str, dict[str, Target]] = {}
            for stack in stacks:
                floor_proc, floor_origin = start_floor_proxy(str(direct["get"].url.origin()), stack)
                floor_procs.append(floor_proc)
                floor_targets[stack] = {op: via(floor_origin, direct[op]) for op in direct}
                sides += (f"floor:{stack}",)
                pids[f"floor:{stack}"] = floor_proc.pid
            if stacks:
                listed = ", ".join(f"{st} pid {pids['floor:' + st]}" for st in stacks)
                print(f"floor proxies: {listed}", flush=True)
            for op in args.ops:
                for concurrency in args.concurrency:
                    connector = {
                        side: aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, force_close=False)
                        for side in sides
                    }
                    sessions = {side: aiohttp.ClientSession(connector=connector[side]) for side in connector}
                    try:
                        targets = {"direct": direct[op], "unified": unified[op]}
                        for stack in stacks:
                            targets[f"floor:{stack}"] = floor_targets[stack][op]
                        for side in sides:
                            await run_round(sessions[side], targets[side], concurrency, warmup, 1_000_000)
                        totals = {side: Samples() for side in sides}
                        for r in range(rounds):
                            order = sides if r % 2 == 0 else sides[::-1]
                            for side in order:
                                before = tree_cpu_seconds(pids[side])
                                part = await run_round(sessions[side], targets[side], concurrency, seconds, args.max_requests)
                                merge(totals[side], part, tree_cpu_seconds(pids[side]) - before)
                    finally:
                        for session in sessions.values():
                            await session.close()
                    results.append((name, op, concurrency, totals["direct"], totals["unified"]))
                    d, u = totals["direct"], totals["unified"]
                    line = (
                        f"  {name} {op} c{concurrency}: direct {d.rps:,.0f} req/s, unified {u.rps:,.0f} req/s "
                        f"({u.rps / d.rps:.2f}×)"
                    )
                    if stacks:
                        by_stack = {stack: totals[f"floor:{stack}"] for stack in stacks}
                        floors.append((name, op, concurrency, d, u, by_stack))
                        line += "; floors " + ", ".join(f"{st} {f.rps:,.0f} ({f.rps / d.rps:.2f}×)" for st, f in by_stack.items())
                    print(line, flush=True)
            for floor_proc in floor_procs:
                stop(floor_proc)
    report(results)
    if floors:
        report_floor(floors)
    return 0


def fastest(by_stack: dict[str, Samples], concurrency: int) -> str:
    """The fastest floor of a case: most requests/s at c32, lowest p50 at c1."""
    if concurrency >= 32:
        return max(by_stack, key=lambda st: by_stack[st].rps)
    return min(by_stack, key=lambda st: by_stack[st].p(50))


def report_floor(floors: list[tuple[str, str, int, Samples, Samples, dict[str, Samples]]]) -> None:
    print()
    print("floors: the direct request through bench/floor_proxy.py on each stack (one aiohttp session out, no other work)")
    header = (
        f"{'provider':<10} {'call':<9} {'conc':>4} {'stack':<13} | {'floor rps':>10} {'p50 ms':>7} | "
        f"{'floor/direct':>12} {'+p50 ms':>8} {'CPU/req':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, op, concurrency, d, _u, by_stack in floors:
        call = "get" if op == "get" else f"list {LIST_SIZE}"
        best = fastest(by_stack, concurrency)
        for stack, f in by_stack.items():
            cpu_us = f.cpu_seconds / f.requests * 1e6 if f.requests else 0.0
            mark = " *" if stack == best else ""
            print(
                f"{name:<10} {call:<9} {concurrency:>4} {stack:<13} | {f.rps:>10,.0f} {f.p(50):>7.2f} | "
                f"{f.rps / d.rps:>12.2f} {f.p(50) - d.p(50):>8.2f} {cpu_us:>7,.0f}µs{mark}"
            )
    print("* the fastest floor of the case (most req/s at c32, lowest p50 at c1)")
    print()
    print("unicrm against the fastest floor of each case (issue 13's targets)")
    header = f"{'provider':<10} {'call':<9} {'conc':>4} {'floor':<13} | {'measure':<34} {'unicrm':>9} {'floor':>9} {'ratio':>6} | target"
    print(header)
    print("-" * len(header))
    all_met = True
    for name, op, concurrency, d, u, by_stack in floors:
        call = "get" if op == "get" else f"list {LIST_SIZE}"
        best = fastest(by_stack, concurrency)
        f = by_stack[best]
        rows: list[tuple[str, str, str, str, bool | None]] = []
        if concurrency >= 32:
            ratio = u.rps / f.rps
            want = 0.9 if op == "get" else 0.85
            rows.append(("throughput req/s", f"{u.rps:,.0f}", f"{f.rps:,.0f}", f"{ratio:.2f}", ratio >= want))
            target = [f">= {want}"]
        else:
            added_u, added_f = u.p(50) - d.p(50), f.p(50) - d.p(50)
            # The latency target is for GET; a list page's parsing and mapping of 100 records alone
            # is ~0.4 ms, so its added p50 is shown without one.
            met = added_u <= added_f + 0.15 if op == "get" else None
            rows.append(("added p50 ms", f"{added_u:.3f}", f"{added_f:.3f}", f"{added_u - added_f:+.3f}", met))
            target = ["<= floor + 0.15 ms" if op == "get" else "(no target)"]
        if op == "get" and concurrency >= 32:
            cu = u.cpu_seconds / u.requests * 1e6 if u.requests else 0.0
            cf = f.cpu_seconds / f.requests * 1e6 if f.requests else 0.0
            rows.append(
                ("server CPU per request µs", f"{cu:,.0f}", f"{cf:,.0f}", f"{cu / cf:.2f}" if cf else "-", cu <= 1.25 * cf)
            )
            target.append("<= 1.25")
        for (measure, uv, fv, rv, met), tgt in zip(rows, target, strict=True):
            if met is not None:
                all_met = all_met and met
            verdict = "" if met is None else f": {'met' if met else 'MISSED'}"
            print(f"{name:<10} {call:<9} {concurrency:>4} {best:<13} | {measure:<34} {uv:>9} {fv:>9} {rv:>6} | {tgt}{verdict}")
    print(f"floor targets: {'all met' if all_met else 'NOT all met'}")


def report(results: list[tuple[str, str, int, Samples, Samples]]) -> None:
    print()
    header = (
        f"{'provider':<10} {'call':<9} {'conc':>4} | {'direct rps':>10} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'unified rps':>11} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>6} {'+p50 ms':>8} "
        f"{'srv CPU/req':>11} {'emu CPU/req':>11} | target"
    )
    print(header)
    print("-" * len(header))
    all_met = True
    for name, op, concurrency, d, u in results:
        ratio = u.rps / d.rps
        added = u.p(50) - d.p(50)
        server_cpu_us = u.cpu_seconds / u.requests * 1e6 if u.requests else 0.0
        emulator_cpu_us = d.cpu_seconds / d.requests * 1e6 if d.requests else 0.0
        if concurrency >= 32:
            met = ratio >= TARGET_RATIO_C32
            verdict = f"ratio >= {TARGET_RATIO_C32}: {'met' if met else 'MISSED'}"
        else:
            met = added <= TARGET_ADDED_P50_MS
            verdict = f"+p50 <= {TARGET_ADDED_P50_MS} ms: {'met' if met else 'MISSED'}"
        all_met = all_met and met
        call = "get" if op == "get" else f"list {LIST_SIZE}"
        print(
            f"{name:<10} {call:<9} {concurrency:>4} | {d.rps:>10,.0f} {d.p(50):>7.2f} {d.p(99):>7.2f} | "
            f"{u.rps:>11,.0f} {u.p(50):>7.2f} {u.p(99):>7.2f} | {ratio:>6.2f} {added:>8.2f} {server_cpu_us:>9,.0f}µs "
            f"{emulator_cpu_us:>9,.0f}µs | {verdict}"
        )
    print()
    ratios = [u.rps / d.rps for _, _, c, d, u in results if c >= 32]
    spreads = [
        f"{min(u.round_rates) / max(d.round_rates):.2f}–{max(u.round_rates) / min(d.round_rates):.2f}"
        for _, _, c, d, u in results
        if c >= 32
    ]
    if ratios:
        print(f"c32 unified/direct ratios: {', '.join(f'{r:.2f}' for r in ratios)} (round extremes: {', '.join(spreads)})")
    print(f"targets: {'all met' if all_met else 'NOT all met'}")
    print("rps = requests / seconds summed over the rounds; p50/p99 over every request of the rounds;")
    print("+p50 = unified p50 - direct p50; srv CPU/req = unicrm serve CPU time per unified request;")
    print("emu CPU/req = emulator CPU time per direct request (the upstream cost both sides pay).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (about half a minute)")
    parser.add_argument("--providers", nargs="+", default=["capsule", "pipeliner"])
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds per case (default 5, quick 2)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per round and side (default 1.5, quick 0.4)")
    parser.add_argument("--ops", nargs="+", choices=["get", "list"], default=["get", "list"], help="which calls")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 32], help="concurrency levels")
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap on requests per round")
    parser.add_argument(
        "--floor",
        nargs="*",
        choices=STACKS,
        default=None,
        metavar="STACK",
        help=f"also measure bare pass-through proxies (bench/floor_proxy.py) on these stacks (default all: {', '.join(STACKS)})",
    )
    parser.add_argument("--dataset-size", type=int, default=1000, help="projects each emulator serves")
    args = parser.parse_args()
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
