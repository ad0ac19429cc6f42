"""Prometheus metrics (prometheus_client) and the `/metrics` answer.

Several server processes: with `PROMETHEUS_MULTIPROC_DIR` set (before the process starts;
`unicrm serve --workers N` sets it itself), every process writes its samples to files in
that directory and `/metrics` on any of them answers the sum over all of them. Without it,
each process is its own scrape target. Only counters and histograms are used, so both modes
give the same totals.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from unicrm.outbound.trace import Trace

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "unicrm_requests",
    "Requests answered, by route template, method, status and integration",
    ["route", "method", "status", "integration"],
)
REQUEST_SECONDS = Histogram(
    "unicrm_request_duration_seconds", "Time to answer a request (whole body sent)", ["route", "method"], buckets=LATENCY_BUCKETS
)
PROVIDER_CALLS = Counter("unicrm_provider_requests", "Requests sent to providers, by provider and status", ["provider", "status"])
PROVIDER_SECONDS = Histogram(
    "unicrm_provider_request_duration_seconds", "Provider request time, retries included", ["provider"], buckets=LATENCY_BUCKETS
)
PROVIDER_RETRIES = Counter("unicrm_provider_retries", "Provider requests retried after a transient failure", ["provider"])
TOKEN_REFRESHES = Counter("unicrm_token_refreshes", "OAuth2 token refreshes, by provider and outcome", ["provider", "outcome"])
RATE_LIMITED = Counter("unicrm_provider_rate_limited", "Provider answers of HTTP 429 (rate limited)", ["provider"])
STREAM_RECORDS = Counter("unicrm_stream_records", "Records sent in truto_response_format=stream answers", ["integration"])


# Label lookups cached per label values: prometheus_client's labels() validates and locks on
# every call, a few microseconds that a request's hot path need not pay twice.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def record(trace: Trace, route: str, method: str, status: int, duration_s: float) -> None:
    """Count one answered request and what it did."""
    integration = trace.integration or ""
    _child(REQUESTS, route, method, str(status), integration).inc()
    _child(REQUEST_SECONDS, route, method).observe(duration_s)
    if not trace.calls:
        return
    provider = integration or "unknown"
    for call in trace.calls:
        _child(PROVIDER_CALLS, provider, str(call.status) if call.status is not None else "no_answer").inc()
        _child(PROVIDER_SECONDS, provider).observe(call.duration_s)
    if trace.retries:
        _child(PROVIDER_RETRIES, provider).inc(trace.retries)
    if trace.refreshes:
        _child(TOKEN_REFRESHES, provider, "ok").inc(trace.refreshes)
    if trace.refresh_failures:
        _child(TOKEN_REFRESHES, provider, "refused").inc(trace.refresh_failures)
    if trace.rate_limited:
        _child(RATE_LIMITED, provider).inc(trace.rate_limited)
    if trace.stream_records:
        _child(STREAM_RECORDS, integration).inc(trace.stream_records)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric (summed over processes in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
