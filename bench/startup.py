"""Benchmark 4: start-up, from spawning `unicrm serve` to its first answered request.

Each repetition spawns `unicrm serve` (the console script, as a user would) on a free port and
polls `GET /health` every 2 ms until it answers 200; the time from spawn to that answer is the
start-up time. Two cases, alternated: a fresh data directory (the store creates and migrates
its SQLite database) and a restart on an existing one. Prints every time and the median.

Run: .venv/bin/python bench/startup.py [--quick] [--repeat N]
Target: under 1.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import HOST, free_port, machine, spawn, stop, unicrm_command, wait_until_answering

TARGET_S = 1.5


def time_start(data_dir: Path) -> float:
    port = free_port()
    database_url = f"sqlite+aiosqlite:///{data_dir}/bench.db"
    args = [
        *unicrm_command(),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--database-url",
        database_url,
        "--data-dir",
        str(data_dir),
    ]
    began = time.monotonic()
    proc = spawn(args, env={"UNICRM_DATA_DIR": str(data_dir)})
    try:
        answered = wait_until_answering(proc, port, "/health", timeout=60)
    finally:
        stop(proc)
    return answered - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repetitions")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per case (default 9, quick 3)")
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 9)
    print(f"start-up benchmark: {machine()}")
    print(f"command: {' '.join(unicrm_command())} serve --port P --database-url sqlite+aiosqlite:///DIR/bench.db --data-dir DIR")
    times: dict[str, list[float]] = {"fresh data dir": [], "existing data dir": []}
    with tempfile.TemporaryDirectory(prefix="unicrm-bench-") as keep:
        time_start(Path(keep))  # warm the OS file cache (bytecode, shared libraries) once, untimed
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="unicrm-bench-") as fresh:
                times["fresh data dir"].append(time_start(Path(fresh)))
            times["existing data dir"].append(time_start(Path(keep)))
    print()
    print(f"{'case':<18} {'median s':>8} {'min s':>6} {'max s':>6}  every run")
    ok = True
    for case, values in times.items():
        median = statistics.median(values)
        ok = ok and median < TARGET_S
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"{case:<18} {median:>8.3f} {min(values):>6.3f} {max(values):>6.3f}  {runs}")
    print()
    print(f"target: median under {TARGET_S} s: {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
