"""Property-based run of the server's own OpenAPI document (schemathesis) against the real server.

A server of its own (so that the writes it makes do not disturb other tests) with every
provider emulator behind it: requests built from `/openapi.json`, positive and negative, for
every operation, each answer checked for server errors and for conformance of its status,
content type and body to the document. Deterministic (derandomized) and bounded: at least
2,000 requests in a couple of minutes.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs  # schemathesis's own validator
import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from tests.harness import Harness, start_harness

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 20}
MIN_REQUESTS = 2000


NDJSON = "application/x-ndjson"


class StreamLines:
    """schemathesis cannot read NDJSON: each line of a stream is checked against its operation's line schema."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.validators: dict[str, Any] = {}
        for path, item in document["paths"].items():
            for method, op in item.items():
                media = op["responses"].get("200", {}).get("content", {}).get(NDJSON)
                if media is not None:
                    root = {"components": document["components"], **media["schema"]}
                    self.validators[f"{method.upper()} {path}"] = jsonschema_rs.Draft202012Validator(root)

    def validate_lines(self, label: str, body: bytes) -> None:
        validator = self.validators[label]
        for number, line in enumerate(body.splitlines(), 1):
            errors = [str(e) for e in validator.iter_errors(orjson.loads(line))]
            if errors:
                raise AssertionError(f"stream line {number} violates the line schema: {errors[0][:500]}")


@pytest.fixture(scope="module")
def fuzz_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness, closers = start_harness(tmp_path_factory.mktemp("fuzz"))
    try:
        yield harness
    finally:
        for closer in reversed(closers):
            closer.__exit__(None, None, None)


async def _record_ids(harness: Harness) -> list[str]:
    ids: list[str] = []
    try:
        for provider in harness.accounts:
            page = await harness.unified("GET", provider, query={"limit": "3", "truto_ignore_remote_data": "true"})
            if page.status == 200:
                ids += [r["id"] for r in page.json()["result"] if r.get("id")]
    finally:
        if harness.session is not None:
            await harness.session.close()
            harness.session = None
    return ids


def _pinned(document: dict[str, Any], accounts: list[str], record_ids: list[str]) -> dict[str, Any]:
    """The document with the account parameter drawn from this server's accounts, and some real record ids.

    Only the generator's copy is changed: the served document stays general.
    """
    doc = orjson.loads(orjson.dumps(document))
    for path, item in doc["paths"].items():
        for op in item.values():
            for param in op.get("parameters", ()):
                if param["name"] == "integrated_account_id":
                    param["schema"] = {"type": "string", "enum": accounts}
                if param["name"] == "id" and path.startswith("/unified/") and record_ids:
                    param["schema"] = {"anyOf": [{"type": "string", "enum": record_ids}, {"type": "string", "minLength": 1}]}
    return doc


def test_the_document_holds_for_every_answer(fuzz_harness: Harness) -> None:
    harness = fuzz_harness
    with urllib.request.urlopen(harness.base_url + "/openapi.json", timeout=10) as resp:
        document = orjson.loads(resp.read())
    record_ids = asyncio.run(_record_ids(harness))
    schema = schemathesis.openapi.from_dict(_pinned(document, sorted(harness.accounts.values()), record_ids))
    auth = {"Authorization": f"Bearer {harness.token}"}
    stream_lines = StreamLines(document)
    session = requests.Session()
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    media: Counter[str] = Counter()
    failures: dict[str, str] = {}
    started = time.monotonic()

    def make_check(label: str, counted: str) -> Any:
        def check(case: Any) -> None:
            response = case.call(base_url=harness.base_url, session=session, headers=auth, timeout=30)
            sent[counted] += 1
            statuses[response.status_code] += 1
            media[(response.headers.get("content-type") or ["none"])[0].split(";")[0]] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=auth)
                if any(v.startswith(NDJSON) for v in response.headers.get("content-type", [])):
                    stream_lines.validate_lines(counted, response.content)
            except (AssertionError, BaseExceptionGroup) as exc:
                key = f"{label} {type(exc).__name__}"
                if key not in failures:
                    failures[key] = f"{exc}\n{case.as_curl_command(headers=auth)}"[:3000]

        return check

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in EXAMPLES.items():
            label = f"{operation.label} [{mode.value}]"
            strategy = operation.as_strategy(generation_mode=mode)

            check = make_check(label, operation.label)

            run = settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(case=strategy)(check))
            try:
                run()
            except Unsatisfiable:
                # Nothing about this operation can be made invalid (e.g. no parameters): positive only.
                assert mode is GenerationMode.NEGATIVE, label

    elapsed = time.monotonic() - started
    total = sum(sent.values())
    summary = f"{total} requests, {len(sent)} operations, {elapsed:.0f} s, statuses {dict(sorted(statuses.items()))}, content types {dict(media.most_common())}"
    print("\nfuzz:", summary)
    Path(harness.data_dir / "fuzz-summary.txt").write_text(
        summary + "\n" + "\n".join(f"{k}: {v}" for k, v in sorted(sent.items()))
    )
    assert not failures, f"{len(failures)} kinds of finding ({summary}):\n\n" + "\n\n".join(
        f"{k}\n{v}" for k, v in failures.items()
    )
    assert total >= MIN_REQUESTS, summary
    assert len(sent) == sum(len(ops) for ops in document["paths"].values()), "every operation was exercised"
