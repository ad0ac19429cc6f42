"""Request logs, metrics, /health and /ready of a real `unicrm serve` process with emulators behind it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import free_port, setup_store
from unicrm.emulators.base import EmulatorThread

PROVIDERS = ["capsule", "teamleader"]


@dataclass
class Served:
    base_url: str
    token: str
    accounts: dict[str, str]
    contexts: dict[str, dict[str, Any]]
    emulators: dict[str, Any]
    proc: subprocess.Popen[bytes]
    stderr: Path

    def call(self, path: str, *, headers: dict[str, str] | None = None, auth: bool = True) -> tuple[int, dict[str, str], bytes]:
        send = dict(headers or {})
        if auth:
            send["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, headers=send)
        try:
            with urllib.request.urlopen(request, timeout=20) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def unified(self, provider: str, query: str = "", **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        return self.call(f"/unified/crm/projects?integrated_account_id={self.accounts[provider]}{query}", **kwargs)

    def script(self, provider: str, *responses: dict[str, Any]) -> None:
        origin = "/".join(self.emulators[provider].base_url.split("/", 3)[:3])
        body = orjson.dumps({"responses": list(responses)})
        request = urllib.request.Request(origin + "/_emulator/script", data=body, headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.stderr.read_text().splitlines():
            if raw.startswith("{"):
                lines.append(orjson.loads(raw))
        return lines


def _start(
    tmp: Path, extra_args: list[str], env_extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    stderr = tmp / f"server-{port}.log"
    env = {**os.environ, "UNICRM_DATA_DIR": str(tmp), **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "unicrm.cli", "serve", "--port", str(port), "--data-dir", str(tmp), *extra_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("wb"),
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(stderr.read_text())
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=2):
                return proc, base_url, stderr
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import asyncio

    tmp = tmp_path_factory.mktemp("observe")
    with EmulatorThread(PROVIDERS, seed=5) as emulators:
        contexts = {name: dict(r.context) for name, r in emulators.running.items()}
        # Teamleader's access token has expired: the first call refreshes it.
        contexts["teamleader"]["expires_at"] = time.time() - 60
        url = f"sqlite+aiosqlite:///{tmp}/observe.db"
        token, _, accounts = asyncio.run(setup_store(url, tmp, contexts))
        allow = [arg for r in emulators.running.values() for arg in ("--allow-origin", r.origin)]
        proc, base_url, stderr = _start(tmp, ["--database-url", url, "--log-format", "json", *allow])
        try:
            yield Served(base_url, token, accounts, contexts, emulators.running, proc, stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _requests(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("logger") == "unicrm.request"]


def _secrets(served: Served) -> list[str]:
    values = [served.token]
    for context in served.contexts.values():
        for key in ("access_token", "refresh_token", "client_secret", "api_key", "password", "token"):
            value = context.get(key)
            if isinstance(value, str) and len(value) >= 6:
                values.append(value)
    return values


def test_one_json_line_per_request_with_provider_calls_retries_and_refreshes(served: Served) -> None:
    status, headers, _ = served.unified("capsule", "&limit=2", headers={"x-request-id": "client-req-0001"})
    assert status == 200 and headers["x-request-id"] == "client-req-0001"
    status, _, _ = served.unified("teamleader", "&limit=2")
    assert status == 200
    # A 503 from the provider is retried (a read), then succeeds.
    served.script("capsule", {"kind": "status", "status": 503, "match": {"method": "GET"}})
    status, headers, _ = served.unified("capsule", "&limit=1")
    assert status == 200
    retried_id = headers["x-request-id"]
    status, headers, _body = served.call("/unified/crm/projects?integrated_account_id=3f0c9a4e-7a51-4c0e-9d55-8a1f2b6c7d90")
    assert status == 404 and len(headers["x-request-id"]) == 24

    time.sleep(0.3)
    lines = _requests(served.log_lines())
    by_id = {line["request_id"]: line for line in lines}
    first = by_id["client-req-0001"]
    assert first["method"] == "GET" and first["route"] == "/unified/crm/projects" and first["status"] == 200
    assert first["integration"] == "capsule" and first["account_id"] == served.accounts["capsule"]
    assert first["environment_id"] and first["duration_ms"] > 0
    call = first["provider_calls"][-1]  # (after the field definitions Capsule's mapping reads once)
    assert call["url"].endswith("/kases") and call["method"] == "GET" and call["status"] == 200 and call["duration_ms"] > 0
    assert call["url"].startswith("http://127.0.0.1:") and "?" not in call["url"]
    assert first["retries"] == 0 and first["refreshes"] == 0

    teamleader = next(line for line in lines if line.get("integration") == "teamleader")
    assert teamleader["refreshes"] == 1
    assert any(c.get("kind") == "token" and c["status"] == 200 for c in teamleader["provider_calls"])

    retried = by_id[retried_id]
    assert retried["retries"] == 1 and retried["provider_calls"][-1]["attempts"] == 2

    missing = next(line for line in lines if line["status"] == 404)
    assert missing["level"] == "info" and "No integrated account" in missing["error"]
    assert set(first) >= {"ts", "level", "logger", "msg", "request_id", "method", "route", "path", "status", "duration_ms"}


def test_no_credential_in_any_log_line(served: Served) -> None:
    served.unified("capsule", "&truto_response_format=debug")
    served.unified("teamleader", "&truto_response_format=raw")
    served.script("capsule", {"kind": "status", "status": 401, "match": {"method": "GET"}})
    served.unified("capsule")
    time.sleep(0.3)
    text = served.stderr.read_text()
    assert _requests(served.log_lines())
    for secret in _secrets(served):
        assert secret not in text
    # the OAuth refresh rotated the tokens: the new ones are secrets too, and they are stored encrypted only
    assert "Bearer" not in text


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def test_metrics_count_requests_provider_calls_refreshes_streams_and_rate_limits(served: Served) -> None:
    served.unified("capsule", "&truto_response_format=stream")
    served.script("capsule", {"kind": "status", "status": 429, "body": {"message": "slow down"}, "match": {"method": "GET"}})
    status, headers, _ = served.unified("capsule")
    assert status == 429 and "retry-after" in {k.lower() for k in headers}
    status, headers, body = served.call("/metrics", auth=False)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = _samples(body.decode())
    assert _value(samples, "unicrm_requests_total", route="/unified/crm/projects", status="200", integration="capsule") >= 1
    assert _value(samples, "unicrm_requests_total", route="/unified/crm/projects", status="429", integration="capsule") >= 1
    assert _value(samples, "unicrm_request_duration_seconds_count", route="/unified/crm/projects", method="GET") >= 2
    assert _value(samples, "unicrm_provider_requests_total", provider="capsule", status="200") >= 1
    assert _value(samples, "unicrm_provider_request_duration_seconds_count", provider="capsule") >= 1
    assert _value(samples, "unicrm_token_refreshes_total", provider="teamleader", outcome="ok") >= 1
    assert _value(samples, "unicrm_provider_rate_limited_total", provider="capsule") >= 1
    assert _value(samples, "unicrm_stream_records_total", integration="capsule") >= 1


def test_health_and_ready(served: Served) -> None:
    status, _, body = served.call("/health", auth=False)
    assert status == 200 and orjson.loads(body) == {"status": "ok"}
    status, _, body = served.call("/ready", auth=False)
    ready = orjson.loads(body)
    assert status == 200 and ready["ready"] is True and ready["database"] == "ok"
    assert ready["migration"] == ready["migration_head"] is not None


def test_metrics_are_summed_over_worker_processes(tmp_path: Path) -> None:
    multiproc = Path(tempfile.mkdtemp(prefix="unicrm-prom-", dir=tmp_path))
    proc, base_url, _stderr = _start(
        tmp_path, ["--workers", "2", "--log-level", "warning"], {"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    )
    try:

        def hit(_: int) -> int:
            # A new connection each time, so that the workers take turns accepting them.
            try:
                with urllib.request.urlopen(base_url + "/integration", timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        sent = 0
        deadline = time.monotonic() + 30
        with ThreadPoolExecutor(8) as pool:
            while True:
                assert list(pool.map(hit, range(100))) == [401] * 100
                sent += 100
                pids = {p.name for p in multiproc.glob("counter_*.db")}
                if len(pids) >= 2 or time.monotonic() > deadline:
                    break
        assert len(pids) >= 2, "both workers answered some of the requests"
        for _ in range(3):  # whichever worker answers the scrape, it reports the total
            with urllib.request.urlopen(base_url + "/metrics", timeout=10) as resp:
                samples = _samples(resp.read().decode())
            assert _value(samples, "unicrm_requests_total", route="/integration", status="401") == sent
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_an_unexpected_error_is_a_500_in_the_error_shape_and_logged_with_its_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from unicrm.api.observe import ObservabilityMiddleware
    from unicrm.outbound.trace import current_trace

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        scope["endpoint"] = failing
        trace = current_trace()
        assert trace is not None
        trace.integration, trace.account_id = "capsule", "acc-1"
        raise RuntimeError("boom")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    app = ObservabilityMiddleware(failing, lambda: {failing: "/unified/crm/projects/{id}"})
    scope = {"type": "http", "method": "GET", "path": "/unified/crm/projects/7", "headers": []}
    with caplog.at_level("INFO", logger="unicrm.request"):
        await app(scope, receive, send)
    start, body = sent
    assert start["status"] == 500 and (b"x-request-id", start["headers"][-1][1]) in start["headers"]
    assert orjson.loads(body["body"])["statusCode"] == 500
    (record,) = [r for r in caplog.records if r.name == "unicrm.request"]
    event = record.event  # type: ignore[attr-defined]
    assert record.levelname == "ERROR" and event["status"] == 500 and event["route"] == "/unified/crm/projects/{id}"
    assert event["integration"] == "capsule" and event["account_id"] == "acc-1"
    assert event["error"] == "RuntimeError: boom" and "Traceback" in event["traceback"]
