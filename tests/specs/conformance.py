"""Checks requests and answers against a provider's published specification.

Each provider has `tests/specs/<provider>/spec.json`: the operations unicrm calls (projects and
the lookups), each with JSON Schemas for its query, headers and body, and for the answer's body
and headers per status code. `$defs` holds shared schemas (`{"$ref": "#/$defs/Project"}`).
The shape, and where each spec came from, is described in tests/specs/README.md.

A request or an answer is an entry of an emulator's request log (`method`, `path`, `query`,
`headers`, `credential_headers`, `json`, and `response: {status, headers, json}`); golden
fixtures are turned into the same shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SPECS = Path(__file__).resolve().parent
FORMATS = FormatChecker()


@dataclass(frozen=True)
class Operation:
    """One documented call: where it is and what it takes and answers."""

    name: str
    method: str
    path: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]

    @property
    def source(self) -> str:
        return str(self.spec["source"])


def _pattern(template: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{[^}]+\})", template):
        out += "[^/]+" if part.startswith("{") else re.escape(part)
    return re.compile(out + "$")


class Spec:
    """A provider's spec file, with validators compiled once."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.doc: dict[str, Any] = json.loads((SPECS / provider / "spec.json").read_text())
        self.defs = self.doc.get("$defs", {})
        self.base = _pattern(self.doc.get("base_path", "")).pattern[:-1]
        self.operations = [
            # The emulators serve under the base path; requests shaped without a base URL lack it.
            Operation(name, op["method"], op["path"], re.compile(f"(?:{self.base})?" + _pattern(op["path"]).pattern), op)
            for name, op in self.doc["operations"].items()
        ]
        self._validators: dict[str, Draft202012Validator] = {}

    # ------------------------------------------------------------------ lookup
    def operation(self, method: str, path: str) -> Operation | None:
        """The documented operation a request goes to (exact paths win over templates)."""
        found = [op for op in self.operations if op.method == method.upper() and op.pattern.match(path)]
        found.sort(key=lambda op: op.path.count("{"))
        return found[0] if found else None

    def validator(self, schema: Any) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            self._validators[key] = Draft202012Validator({"$defs": self.defs, **schema}, format_checker=FORMATS)
        return self._validators[key]

    def problems(self, schema: Any, value: Any, where: str) -> list[str]:
        if schema is None:
            return []
        out = []
        for error in self.validator(schema).iter_errors(value):
            at = "/".join(str(p) for p in error.absolute_path)
            out.append(f"{where}{'/' + at if at else ''}: {error.message}")
        return out

    # ------------------------------------------------------------------ checks
    def request_problems(self, entry: dict[str, Any]) -> list[str]:
        """Why a request does not follow the spec (empty when it does)."""
        op = self.operation(entry["method"], entry["path"])
        if op is None:
            return [f"{entry['method']} {entry['path']} is not a documented operation"]
        spec = op.spec
        where = f"{op.name} ({entry['method']} {entry['path']}) request"
        out = self.problems(spec.get("query", {"type": "object", "maxProperties": 0}), entry.get("query") or {}, where + " query")
        headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
        for name in entry.get("credential_headers") or []:
            headers.setdefault(name, "[credential]")
        out += self.problems(self.doc.get("request_headers"), headers, where + " headers")
        out += self.problems(spec.get("headers"), headers, where + " headers")
        if "body" in spec:
            out += self.problems(spec["body"], entry.get("json"), where + " body")
        elif entry.get("json") not in (None, {}):
            out.append(f"{where} body: the operation takes no body, got {entry['json']!r}")
        return out

    def response_problems(self, entry: dict[str, Any]) -> list[str]:
        """Why an answer does not follow the spec (empty when it does)."""
        op = self.operation(entry["method"], entry["path"])
        answer = entry.get("response")
        if op is None or answer is None:
            return []
        status = str(answer["status"])
        responses = op.spec["responses"]
        errors = self.doc.get("errors", {})
        documented = next((r[k] for r in (responses, errors) for k in (status, status[0] + "XX") if k in r), None)
        if documented is None and status[0] in "45":
            documented = errors.get("default")
        where = f"{op.name} ({entry['method']} {entry['path']}) answer {status}"
        if documented is None:
            return [f"{where}: status {status} is not documented (documented: {', '.join(responses)})"]
        headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        out = self.problems(documented.get("headers"), headers, where + " headers")
        common = self.doc.get("response_headers", {})
        out += self.problems(common.get("all"), headers, where + " headers")
        if status.startswith("2"):
            out += self.problems(common.get("success"), headers, where + " headers")
        if "body" in documented:
            out += self.problems(documented["body"], answer.get("json"), where + " body")
        elif answer.get("json") not in (None, ""):
            out.append(f"{where} body: documented without a body, got {answer['json']!r}")
        return out

    def body_problems(self, operation: str, body: Any, status: str | None = None) -> list[str]:
        """A request body (status None) or an answer body checked against a named operation."""
        spec = self.doc["operations"][operation]
        if status is None:
            return self.problems(spec.get("body"), body, f"{operation} request body")
        return self.problems(spec["responses"][status].get("body"), body, f"{operation} answer {status} body")


@cache
def spec_for(provider: str) -> Spec:
    return Spec(provider)


def providers_with_specs() -> list[str]:
    return sorted(p.name for p in SPECS.iterdir() if (p / "spec.json").exists())
