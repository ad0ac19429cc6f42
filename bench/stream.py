"""Benchmark 3: streaming export, `truto_response_format=stream` over a large emulated dataset.

For each dataset size (default 100,000 and 1,000,000 projects) this starts a fresh
`unicrm emulate <provider> --dataset-size N --json` and a fresh `unicrm serve` (temporary data
directory, SQLite), creates an account, and consumes the unified NDJSON stream with an aiohttp
client that counts the records (and checks that the first and last lines are unified
records). It prints records/s end to end, time to the first record, and the `unicrm serve`
process's resident memory: idle after start-up, and its peak (VmHWM from /proc/<pid>/status,
the kernel's high-water mark, cross-checked by sampling VmRSS every 50 ms).

Run: .venv/bin/python bench/stream.py [--quick] [--sizes 100000 1000000] [--provider capsule]
Target: >= 20,000 records/s; peak memory <= 150 MB and the same at both sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import orjson
from _support import RssSampler, closing_all, cpu_seconds, machine, proc_status, start_emulators, start_server

TARGET_RATE = 20_000
TARGET_PEAK_MB = 150.0
SAME_TOLERANCE_MB = 10.0


@dataclass
class Run:
    size: int
    records: int
    seconds: float
    first_record_s: float
    idle_rss_mb: float
    peak_hwm_mb: float
    peak_sampled_mb: float
    emulator_start_s: float
    server_cpu_s: float
    emulator_cpu_s: float
    curve: list[tuple[int, float]]

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


async def consume(
    url: str, token: str, pid: int, timeout: float, size: int, curve: list[tuple[int, float]]
) -> tuple[int, float, float, float]:
    """Read the stream to its end; returns (records, seconds, time to first record, sampled peak RSS MB).

    `curve` receives (records so far, server RSS MB) at every tenth of `size`: a leak grows
    along it, a plateau does not.
    """

    sampler = RssSampler(pid).start()
    records = 0
    first_at = 0.0
    first_line = b""
    tail = b""
    step = max(size // 10, 1)
    next_mark = step
    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_read=60)
    start = time.perf_counter()
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            if resp.status != 200:
                raise RuntimeError(f"stream answered {resp.status}: {(await resp.read())[:300]!r}")
            async for chunk in resp.content.iter_any():
                if not first_line:
                    first_at = time.perf_counter() - start
                    first_line = chunk.split(b"\n", 1)[0]
                records += chunk.count(b"\n")
                if records >= next_mark:
                    curve.append((records, proc_status(pid).get("VmRSS", 0) / 1024))
                    next_mark += step
                tail = (tail + chunk)[-4096:]
    finally:
        elapsed = time.perf_counter() - start
        await sampler.stop()
    lines = [line for line in tail.split(b"\n") if line.strip()]
    if lines and not tail.endswith(b"\n"):
        records += 1  # a last record without a trailing newline
    for line in (first_line, lines[-1] if lines else b""):
        record = orjson.loads(line)
        if not isinstance(record, dict) or "id" not in record:
            raise RuntimeError(f"the stream holds something other than unified records: {line[:200]!r}")
    return records, elapsed, first_at, sampler.peak_mb


def run_size(size: int, provider: str, timeout: float) -> Run:
    began = time.perf_counter()
    emulators = start_emulators([provider], dataset_size=size, timeout=timeout)
    emulator_start = time.perf_counter() - began
    server = start_server(allow_origins=emulators.origins)
    with closing_all(emulators, server):
        account = server.create_account(provider, emulators.running[provider]["context"])
        print(f"  {size:,}: server pid {server.proc.pid}, emulator pid {emulators.proc.pid}", flush=True)
        idle = proc_status(server.proc.pid)
        cpu_before = (cpu_seconds(server.proc.pid), cpu_seconds(emulators.proc.pid))
        url = f"{server.base_url}/unified/crm/projects?integrated_account_id={account}&truto_response_format=stream"
        curve: list[tuple[int, float]] = []
        records, seconds, first_at, sampled_mb = asyncio.run(consume(url, server.token, server.proc.pid, timeout, size, curve))
        status = proc_status(server.proc.pid)
        server_cpu = cpu_seconds(server.proc.pid) - cpu_before[0]
        emulator_cpu = cpu_seconds(emulators.proc.pid) - cpu_before[1]
    return Run(
        size=size,
        records=records,
        seconds=seconds,
        first_record_s=first_at,
        idle_rss_mb=idle.get("VmRSS", 0) / 1024,
        peak_hwm_mb=status.get("VmHWM", 0) / 1024,
        peak_sampled_mb=max(sampled_mb, status.get("VmRSS", 0) / 1024),
        emulator_start_s=emulator_start,
        server_cpu_s=server_cpu,
        emulator_cpu_s=emulator_cpu,
        curve=curve,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes 10,000 and 100,000 instead")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="dataset sizes (default 100000 1000000)")
    parser.add_argument("--provider", default="capsule", help="which emulator serves the projects")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on one size after this many seconds")
    args = parser.parse_args()
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [100_000, 1_000_000])
    print(f"stream benchmark: {machine()}")
    print(f"provider {args.provider}, sizes {', '.join(f'{s:,}' for s in sizes)}; a fresh emulator and server per size")
    runs: list[Run] = []
    for size in sizes:
        run = run_size(size, args.provider, args.timeout)
        runs.append(run)
        print(
            f"  {size:,}: {run.records:,} records in {run.seconds:.1f} s = {run.rate:,.0f} records/s; "
            f"server peak {run.peak_hwm_mb:.1f} MB (emulator ready in {run.emulator_start_s:.1f} s)",
            flush=True,
        )
    print()
    header = (
        f"{'records':>10} {'received':>10} {'seconds':>8} {'records/s':>10} {'1st rec s':>9} "
        f"{'idle RSS MB':>11} {'peak MB (HWM)':>13} {'peak MB (sampled)':>17} {'srv CPU µs/rec':>14} {'emu CPU µs/rec':>14}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        print(
            f"{run.size:>10,} {run.records:>10,} {run.seconds:>8.1f} {run.rate:>10,.0f} {run.first_record_s:>9.3f} "
            f"{run.idle_rss_mb:>11.1f} {run.peak_hwm_mb:>13.1f} {run.peak_sampled_mb:>17.1f} "
            f"{run.server_cpu_s / max(run.records, 1) * 1e6:>14.1f} {run.emulator_cpu_s / max(run.records, 1) * 1e6:>14.1f}"
        )
    print()
    for run in runs:
        points = ", ".join(f"{n // 1000:,}k {mb:.0f}" for n, mb in run.curve)
        print(f"server RSS MB along the {run.size:,} stream: {points}")
    print()
    complete = all(run.records == run.size for run in runs)
    rate_ok = all(run.rate >= TARGET_RATE for run in runs)
    peaks = [run.peak_hwm_mb for run in runs]
    peak_ok = max(peaks) <= TARGET_PEAK_MB
    same_ok = max(peaks) - min(peaks) <= SAME_TOLERANCE_MB
    print(f"every record received: {'yes' if complete else 'NO'}")
    print(f"records/s >= {TARGET_RATE:,}: {'met' if rate_ok else 'MISSED'} (lowest {min(r.rate for r in runs):,.0f})")
    print(f"peak memory <= {TARGET_PEAK_MB:.0f} MB: {'met' if peak_ok else 'MISSED'} (highest {max(peaks):.1f} MB)")
    print(
        f"peak memory the same at every size (within {SAME_TOLERANCE_MB:.0f} MB): {'met' if same_ok else 'MISSED'} "
        f"(spread {max(peaks) - min(peaks):.1f} MB)"
    )
    print("srv/emu CPU µs/rec: CPU time of unicrm serve / of the emulator per streamed record (both on this machine).")
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
