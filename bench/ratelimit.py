"""Benchmark 5: a streamed export against a rate-limited provider, at the provider's rate.

Starts `unicrm emulate <provider> --dataset-size N --json` (default Capsule, 20,000 projects)
and a fresh `unicrm serve`, creates an account, then sets the emulator's shared fault setting
`rate_limit` = R requests per `rate_window_s` = W seconds (the emulator then answers with the
provider's documented rate-limit headers, and 429 beyond R). It streams
`truto_response_format=stream` end to end and checks every record arrived exactly once (ids
parsed from every line). The bound is what the limit allows: requests needed (pages plus the
provider's reference-data reads) ÷ (R / W). It prints elapsed against that bound, the requests
the emulator received (any beyond those needed were refused with 429), and the server's
memory: idle, peak (VmHWM) and along the stream.

Run: .venv/bin/python bench/ratelimit.py [--quick] [--provider capsule] [--size 20000] [--limit 50] [--window 10]
Target: at least 0.9 of the bound (bound ÷ elapsed >= 0.9); every record exactly once; memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import orjson
from _support import RssSampler, closing_all, cpu_seconds, machine, proc_status, start_emulators, start_server

from unicrm.providers import all_providers

TARGET_FRACTION = 0.9
FLAT_TOLERANCE_MB = 2.0


@dataclass
class Outcome:
    records: int = 0
    unique: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)
    seconds: float = 0.0
    first_record_s: float = 0.0
    peak_sampled_mb: float = 0.0
    curve: list[tuple[int, float]] = field(default_factory=list)


def control(origin: str, action: str, payload: object | None = None) -> object:
    """The emulator's `/_emulator/<action>` (a GET when there is no payload)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{origin}/_emulator/{action}",
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if data is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


async def consume(url: str, token: str, pid: int, size: int, window_s: float, timeout: float) -> Outcome:
    out = Outcome()
    ids: set[str] = set()

    sampler = RssSampler(pid).start()
    step = max(size // 10, 1)
    next_mark = step
    buffer = b""
    # The stream is silent while the server waits for the provider's window: read timeout above it.
    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_read=window_s * 2 + 30)
    start = time.perf_counter()
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            if resp.status != 200:
                raise RuntimeError(f"stream answered {resp.status}: {(await resp.read())[:300]!r}")
            async for chunk in resp.content.iter_any():
                if not out.records:
                    out.first_record_s = time.perf_counter() - start
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line:
                        continue
                    item = orjson.loads(line)
                    if "error" in item:
                        out.errors.append(item)
                        continue
                    out.records += 1
                    ids.add(item["id"])
                if out.records >= next_mark:
                    out.curve.append((out.records, proc_status(pid).get("VmRSS", 0) / 1024))
                    next_mark += step
    finally:
        out.seconds = time.perf_counter() - start
        await sampler.stop()
    out.unique = len(ids)
    out.peak_sampled_mb = sampler.peak_mb
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 projects, 20 requests per 4 s window")
    parser.add_argument("--provider", default="capsule", help="which emulator serves the projects")
    parser.add_argument("--size", type=int, default=None, help="projects to export (default 20000)")
    parser.add_argument("--limit", type=int, default=None, help="R: requests allowed per window (default 50)")
    parser.add_argument("--window", type=float, default=None, help="W: window in seconds (default 10)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    args = parser.parse_args()
    size = args.size or (5_000 if args.quick else 20_000)
    limit = args.limit or (20 if args.quick else 50)
    window = args.window or (4.0 if args.quick else 10.0)
    provider = all_providers()[args.provider]
    page = provider.pagination.max_size
    pages = math.ceil(size / page)
    if size % page == 0 and provider.pagination.style in ("offset", "page_number") and not provider.pagination.last_page_path:
        pages += 1  # only a short page ends these: a full last page costs one more, empty, request
    needed = pages + len(provider.lookups)
    bound = needed / (limit / window)
    print(f"rate-limited stream benchmark: {machine()}")
    print(
        f"{args.provider}: {size:,} projects, {page} a page = {pages} pages + {len(provider.lookups)} reference read(s) "
        f"= {needed} requests; limit {limit} per {window:g} s => bound {bound:.1f} s"
    )
    emulators = start_emulators([args.provider], dataset_size=size)
    server = start_server(allow_origins=emulators.origins)
    with closing_all(emulators, server):
        running = emulators.running[args.provider]
        account = server.create_account(args.provider, running["context"])
        origin = "/".join(str(running["base_url"]).split("/", 3)[:3])
        control(origin, "faults", {"rate_limit": limit, "rate_window_s": window})
        before = control(origin, "stats")
        assert isinstance(before, dict)
        print(f"server pid {server.proc.pid}, emulator pid {emulators.proc.pid}", flush=True)
        idle = proc_status(server.proc.pid)
        cpu_before = cpu_seconds(server.proc.pid)
        url = f"{server.base_url}/unified/crm/projects?integrated_account_id={account}&truto_response_format=stream"
        out = asyncio.run(consume(url, server.token, server.proc.pid, size, window, args.timeout))
        status = proc_status(server.proc.pid)
        server_cpu = cpu_seconds(server.proc.pid) - cpu_before
        after = control(origin, "stats")
        assert isinstance(after, dict)
    received = int(after.get("requests", 0)) - int(before.get("requests", 0))
    fraction = bound / out.seconds if out.seconds else 0.0
    idle_mb = idle.get("VmRSS", 0) / 1024
    peak_mb = max(status.get("VmHWM", 0) / 1024, out.peak_sampled_mb)
    print()
    print(f"records received    {out.records:,} ({out.unique:,} distinct) of {size:,}")
    print(f"error lines         {len(out.errors)}{': ' + str(out.errors[0])[:300] if out.errors else ''}")
    print(f"elapsed             {out.seconds:.2f} s (first record after {out.first_record_s:.3f} s)")
    print(f"bound               {bound:.2f} s = {needed} requests / ({limit} per {window:g} s)")
    print(f"bound / elapsed     {fraction:.3f}")
    floor_s = (math.ceil(needed / limit) - 1) * window
    print(
        f"window floor        {floor_s:.2f} s = (ceil({needed} / {limit}) - 1) windows of {window:g} s, the least any client "
        f"needs under fixed windows (floor / elapsed {floor_s / out.seconds if out.seconds else 0:.3f})"
    )
    print(
        f"provider requests   {received} received by the emulator, {needed} needed ({max(0, received - needed)} refused with 429)"
    )
    print(f"server memory MB    idle {idle_mb:.1f}, peak {peak_mb:.1f} (HWM {status.get('VmHWM', 0) / 1024:.1f})")
    print("server RSS MB along the stream: " + ", ".join(f"{n:,} {mb:.1f}" for n, mb in out.curve))
    print(f"server CPU          {server_cpu:.2f} s ({server_cpu / max(out.records, 1) * 1e6:.1f} µs per record)")
    exact = out.records == out.unique == size and not out.errors
    # Flat: no growth along the stream once the first pages' one-time allocations are done
    # (from a fifth of the records to the last), so a longer export would need no more.
    early = out.curve[1][1] if len(out.curve) > 1 else idle_mb
    growth = max((mb for _, mb in out.curve), default=early) - early
    flat = growth <= FLAT_TOLERANCE_MB
    print()
    print(f"every record exactly once: {'yes' if exact else 'NO'}")
    print(f"bound / elapsed >= {TARGET_FRACTION}: {'met' if fraction >= TARGET_FRACTION else 'MISSED'} ({fraction:.3f})")
    print(
        f"memory flat (growth from a fifth of the stream to its end <= {FLAT_TOLERANCE_MB:g} MB): "
        f"{'met' if flat else 'MISSED'} (+{growth:.1f} MB; idle to peak +{peak_mb - idle_mb:.1f} MB)"
    )
    print("the first window's requests go at once, so a run can finish before the bound (ratio > 1) but not before the floor.")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
