"""Shared plumbing of the benchmarks: unicrm subprocesses on loopback, stats, machine facts.

Every process a benchmark starts is registered here and ended (SIGTERM, then SIGKILL) when
the benchmark exits, whatever way it exits, so no benchmark leaves a process behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import http.client
import json
import math
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

_children: list[subprocess.Popen[bytes]] = []


def unicrm_command() -> list[str]:
    """The `unicrm` console script of this interpreter's environment (else `python -m unicrm.cli`)."""
    script = Path(sys.executable).parent / "unicrm"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "unicrm.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def spawn(args: Sequence[str], *, env: dict[str, str] | None = None, stdout: int | None = None) -> subprocess.Popen[bytes]:
    """Start a child in its own session; it is ended when the benchmark exits."""
    proc = subprocess.Popen(
        list(args),
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=None,  # a failing child's traceback reaches the terminal
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL; only this child, never anything else."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=timeout)
    if proc.stdout is not None:
        proc.stdout.close()
    if proc in _children:
        _children.remove(proc)


def stop_all() -> None:
    for proc in list(_children):
        stop(proc)


atexit.register(stop_all)


def _on_signal(signum: int, frame: Any) -> None:
    stop_all()
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


def read_json_line(proc: subprocess.Popen[bytes], timeout: float) -> Any:
    """The first line a child prints that parses as JSON (`unicrm emulate --json`)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before printing its JSON line")
        ready, _, _ = select.select([fd], [], [], 0.05)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            with contextlib.suppress(ValueError):
                return json.loads(line)
    raise RuntimeError(f"{proc.args!r} printed no JSON line within {timeout:g} s")


def http_get(url_path: str, port: int, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", url_path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_until_answering(proc: subprocess.Popen[bytes], port: int, path: str = "/health", timeout: float = 60.0) -> float:
    """Poll `path` until it answers 200; returns the monotonic time of that answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before answering")
        try:
            status, _ = http_get(path, port, timeout=2.0)
        except OSError:
            time.sleep(0.002)
            continue
        if status == 200:
            return time.monotonic()
        time.sleep(0.002)
    raise RuntimeError(f"nothing answered 200 on {HOST}:{port}{path} within {timeout:g} s")


@dataclass
class Server:
    """A `unicrm serve` process over SQLite in a fresh temporary data directory."""

    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    database_url: str
    token: str
    temp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def create_account(self, integration: str, context: dict[str, Any]) -> str:
        body = json.dumps({"integration": integration, "tenant_id": f"bench-{integration}", "context": context})
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            conn.request(
                "POST",
                "/integrated-account",
                body=body,
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status not in (200, 201):
            raise RuntimeError(f"POST /integrated-account answered {resp.status}: {data[:500]!r}")
        return str(json.loads(data)["id"])

    def close(self) -> None:
        stop(self.proc)
        if self.temp is not None:
            self.temp.cleanup()
            self.temp = None


def data_dir_env(data_dir: Path) -> dict[str, str]:
    return {"UNICRM_DATA_DIR": str(data_dir)}


def create_token(database_url: str, data_dir: Path) -> str:
    out = subprocess.run(
        [*unicrm_command(), "token", "create", "--database-url", database_url, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        env={**os.environ, **data_dir_env(data_dir)},
        timeout=120,
    )
    return out.stdout.decode().strip().splitlines()[-1]


def start_server(log_level: str = "warning", allow_origins: Sequence[str] = ()) -> Server:
    """Fresh data dir and SQLite database, a token, `unicrm serve` answering /health.

    `allow_origins` are passed as `--allow-origin` (the emulators' origins, on loopback).
    """
    temp = tempfile.TemporaryDirectory(prefix="unicrm-bench-")
    data_dir = Path(temp.name)
    database_url = f"sqlite+aiosqlite:///{data_dir}/bench.db"
    try:
        token = create_token(database_url, data_dir)
        port = free_port()
        proc = spawn(
            [
                *unicrm_command(),
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--log-level",
                log_level,
                "--database-url",
                database_url,
                "--data-dir",
                str(data_dir),
                *[arg for origin in allow_origins for arg in ("--allow-origin", origin)],
            ],
            env=data_dir_env(data_dir),
        )
        wait_until_answering(proc, port)
    except BaseException:
        temp.cleanup()
        raise
    return Server(proc, port, data_dir, database_url, token, temp)


@dataclass
class Emulators:
    """A `unicrm emulate ... --json` process and what it printed."""

    proc: subprocess.Popen[bytes]
    running: dict[str, dict[str, Any]]

    @property
    def origins(self) -> list[str]:
        """Each emulator's scheme://host:port, to allow on the server."""
        return ["/".join(str(r["base_url"]).split("/", 3)[:3]) for r in self.running.values()]

    def close(self) -> None:
        stop(self.proc)


def start_emulators(
    providers: Sequence[str], *, dataset_size: int | None = None, seed: int = 1, timeout: float = 300
) -> Emulators:
    args = [*unicrm_command(), "emulate", *providers, "--host", HOST, "--seed", str(seed), "--json"]
    if dataset_size is not None:
        args += ["--dataset-size", str(dataset_size)]
    proc = spawn(args, stdout=subprocess.PIPE)
    try:
        running = read_json_line(proc, timeout)
    except BaseException:
        stop(proc)
        raise
    return Emulators(proc, running)


@contextlib.contextmanager
def closing_all(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in reversed(things):
            thing.close()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class RssSampler:
    """Samples a process's resident size every 50 ms from `start()` to `stop()`; `peak_mb` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024

    async def _sample(self) -> None:
        while not self._done.is_set():
            self.peak_kb = max(self.peak_kb, proc_status(self.pid).get("VmRSS", 0))
            try:
                await asyncio.wait_for(self._done.wait(), 0.05)
            except TimeoutError:
                pass

    def start(self) -> RssSampler:
        self._task = asyncio.create_task(self._sample())
        return self

    async def stop(self) -> None:
        self._done.set()
        if self._task is not None:
            await self._task


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB, from /proc/<pid>/status (Linux)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def descendants(pid: int) -> list[int]:
    """A process's children, grandchildren, ... (Linux /proc; a server may run its work in a child)."""
    out: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            pending.extend(kids)
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants so far."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in descendants(pid))


def machine() -> str:
    """One line: CPUs, memory, Python."""
    cpus = os.cpu_count()
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
                break
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = " (" + line.split(":", 1)[1].strip() + ")"
                break
    return f"{cpus} CPUs{model}{mem}, Python {platform.python_version()} on {platform.system()}"
