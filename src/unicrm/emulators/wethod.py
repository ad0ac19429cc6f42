"""Wethod emulator: `/api/projects` and the reference lists a project points to.

Held to Wethod's documentation (shared/reference/providers-planhat-teamleader-wethod-strawblond.md
§3, seed 003), not to unicrm: Bearer token plus required `Wethod-Company` / `Wethod-Version`
headers, bare JSON arrays, `limit` (1–100, default 100) / `offset`, `field=<op>:<value>`
filters (`updated_at`, `deleted`, `deleted_at`, `probability`, `date_start`,
`project_stage_id`), create/update validation answering 400 `invalid_data` with
`failures[]`, `{"key", "message"}` errors, soft delete, `:archive` / `:unarchive` actions.

Where the docs are silent (assumptions, kept simple): unknown body keys are ignored; the
update body uses the create names (`start_date`); delete answers 200 with an empty body; a
deleted project is 404 on get, update and delete; a token belongs to one company, so another
`Wethod-Company` is a 401; 429s carry `x-ratelimit-retry-after` (seconds).

With `dataset_size`, projects 1..N are generated on the fly from their id (nothing is stored
until a write touches them), so a benchmark can page through millions of records.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from unicrm.emulators.base import Emulator, json_response

SEEDED_PROJECTS = 40
MAX_LIMIT = 100
NOT_FOUND = {"key": "not_found", "message": "The requested resource does not exist."}
INVALID_MESSAGE = "You provided invalid data. Check 'failures' for details."
_METADATA = re.compile(r"^metadata_(\d+)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

FIRST_NAMES = ("Giulia", "Marco", "Chiara", "Luca", "Francesca", "Matteo", "Sara", "Davide", "Elena", "Paolo")
SURNAMES = ("Ferri", "Conti", "Rinaldi", "Galli", "Moretti", "Barbieri", "Fontana", "Greco", "Bassi", "Villa")
COMPANIES = (
    "Fratelli Bassi S.p.A.",
    "Nordvik Logistics AS",
    "Lanificio Sella",
    "Banca Adriatica",
    "Ottica Riva",
    "Cantine Moretti",
    "Vela Mobility",
    "Studio Aurora",
    "Pastificio Greco",
    "Helio Energy",
    "Farmacie Unite",
    "Torino Motori",
)
TOPICS = (
    "Brand platform",
    "Website relaunch",
    "CRM rollout",
    "Data platform",
    "Mobile app",
    "Campaign",
    "Service design",
    "E-commerce",
    "Intranet",
    "Analytics dashboard",
)
STAGES = ("Lead", "Qualified", "Proposal", "Negotiation", "Won")
CATEGORIES = ("Consulting", "Design", "Development")
METADATA = (("Industry", ("Finance", "Retail", "Manufacturing", "Public sector")), ("Region", ("North", "Centre", "South")))


def now_iso() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_moment(text: str) -> datetime:
    value = text.strip().replace(" ", "+")  # a raw `+` in a query string arrives as a space
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_EPOCH_S = int(_EPOCH.timestamp())


class _Draws:
    """Deterministic draws from integer tuple hashes (stable across runs, unlike str hashes);
    much cheaper than a `Random` per record."""

    __slots__ = ("count", "seed")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.count = 0

    def below(self, n: int) -> int:
        self.count += 1
        return hash((self.seed, self.count, 0x5EED)) % n


def _stamp(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()[:19] + ".000Z"


def _day(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).date().isoformat()


class WethodError(Exception):
    """An error answer: status and body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def invalid(failures: list[dict[str, str]]) -> WethodError:
    return WethodError(400, {"key": "invalid_data", "message": INVALID_MESSAGE, "failures": failures})


class WethodData:
    """The emulated company: reference lists and projects, deterministic from the seed."""

    def __init__(self, seed: int = 0, dataset_size: int | None = None) -> None:
        self.seed = seed
        self.size = SEEDED_PROJECTS if dataset_size is None else dataset_size
        rng = random.Random(seed)
        self.clients: list[dict[str, Any]] = [
            {"id": i + 1, "corporate_name": name, "acronym": name[:3].upper(), "legal_name": name, "deleted_at": None}
            for i, name in enumerate(COMPANIES)
        ]
        self.persons: list[dict[str, Any]] = [
            {
                "id": i + 1,
                "name": FIRST_NAMES[i],
                "surname": SURNAMES[(i * 3) % len(SURNAMES)],
                "email": f"{FIRST_NAMES[i].lower()}.{SURNAMES[(i * 3) % len(SURNAMES)].lower()}@example.com",
                "is_archived": False,
            }
            for i in range(8)
        ]
        self.contacts: list[dict[str, Any]] = []
        for i in range(24):
            first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
            self.contacts.append(
                {
                    "id": 100 + i,
                    "client_id": (i % len(self.clients)) + 1,
                    "name": first,
                    "surname": last,
                    "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                }
            )
        self.stages: list[dict[str, Any]] = [
            {"id": i + 1, "name": name, "description": f"{name} stage", "hierarchy": i + 1} for i, name in enumerate(STAGES)
        ]
        self.categories: list[dict[str, Any]] = [{"id": i + 1, "name": name} for i, name in enumerate(CATEGORIES)]
        self.metadata: list[dict[str, Any]] = [
            {
                "id": 13 + 8 * i,
                "created_at": "2024-01-10T09:00:00.000Z",
                "updated_at": "2024-01-10T09:00:00.000Z",
                "key": key,
                "values": list(values),
                "is_required": False,
            }
            for i, (key, values) in enumerate(METADATA)
        ]
        # Writes live here (id → record); generated projects not in it are read from `_generated`.
        self._contacts_by_client: dict[int, list[dict[str, Any]]] = {}
        for contact in self.contacts:
            self._contacts_by_client.setdefault(contact["client_id"], []).append(contact)
        self.projects: dict[int, dict[str, Any]] = {}
        self.next_id = self.size + 1

    # ------------------------------------------------------------------ generated data
    def _generated(self, ident: int) -> dict[str, Any]:
        # Cheap deterministic draws (no Random object per record): streaming benchmarks read
        # hundreds of thousands of generated projects through this function.
        draw = _Draws(self.seed * 1_000_003 + ident)
        created = _EPOCH_S + ident * 37 + draw.below(30)
        updated = created + draw.below(300) * 86_400 + draw.below(86_400)
        year, month = 2024 + draw.below(2), 1 + draw.below(12)
        start = date(year, month, 1)
        duration = 1 + draw.below(12)
        client = self.clients[draw.below(len(self.clients))]
        contacts = self._contacts_by_client.get(client["id"], [])
        archived = draw.below(100) < 20
        updated_day = _day(updated)
        record: dict[str, Any] = {
            "id": ident,
            "created_at": _stamp(created),
            "updated_at": _stamp(updated),
            "name": f"{TOPICS[ident % len(TOPICS)]} {client['corporate_name'].split()[0]} #{ident}",
            "job_order": f"JO-{year % 100}-{ident:04d}",
            "purchase_order": f"PO-{1000 + draw.below(9000)}" if draw.below(2) else None,
            "value": (5000 + draw.below(495_000)) / 1000,
            "probability": (0, 10, 25, 50, 75, 90, 100)[draw.below(7)],
            "external_cost_percentage": draw.below(40),
            "date_start": start.isoformat(),
            "duration": duration,
            "is_archived": archived,
            "archived_on": updated_day if archived else None,
            "due_date": (start + timedelta(days=31 * duration - 1)).isoformat() if draw.below(10) < 7 else None,
            "signed_on": (start - timedelta(days=1 + draw.below(39))).isoformat() if draw.below(2) else None,
            "job_order_category_id": self.categories[draw.below(len(self.categories))]["id"],
            "project_type_id": None,
            "client_id": client["id"],
            "pm_id": self.persons[draw.below(len(self.persons))]["id"],
            "account_id": self.persons[draw.below(len(self.persons))]["id"] if draw.below(10) < 6 else None,
            "client_contact_id": contacts[draw.below(len(contacts))]["id"] if contacts and draw.below(10) < 7 else None,
            "reason_why_id": None,
            "business_unit_id": None,
            "billing_group_id": None,
            "project_stage_id": self.stages[draw.below(len(self.stages))]["id"],
            "is_timesheet_whitelist_enabled": False,
            "deleted_at": None,
        }
        for definition in self.metadata:
            if draw.below(2):
                values = definition["values"]
                record[f"metadata_{definition['id']}"] = values[draw.below(len(values))]
        return record

    def _record(self, ident: int) -> dict[str, Any] | None:
        if ident in self.projects:
            return self.projects[ident]
        if 1 <= ident <= self.size:
            return self._generated(ident)
        return None

    def _all(self) -> Iterator[dict[str, Any]]:
        for ident in range(1, self.next_id):
            record = self._record(ident)
            if record is not None:
                yield record

    # ------------------------------------------------------------------ reads
    def list_projects(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        limit, offset = page_params(query)
        checks = project_filters(query)
        deleted = query.get("deleted", "exclude")
        if deleted not in ("exclude", "include", "only"):
            raise invalid([{"field": "deleted", "message": "Must be one of exclude, include, only"}])
        out: list[dict[str, Any]] = []
        if not checks and deleted == "exclude":
            return self._plain_page(limit, offset)
        skipped = 0
        for record in self._all():
            is_deleted = record.get("deleted_at") is not None
            if (deleted == "exclude" and is_deleted) or (deleted == "only" and not is_deleted):
                continue
            if not all(check(record) for check in checks):
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(public(record))
            if len(out) >= limit:
                break
        return out

    def _plain_page(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """An unfiltered page without walking the records before it (generated data can be huge)."""
        deleted = sorted(i for i, r in self.projects.items() if r.get("deleted_at") is not None)
        ident = offset + 1
        for gone in deleted:  # each deleted id at or before the candidate moves it one further
            if gone > ident:
                break
            ident += 1
        out: list[dict[str, Any]] = []
        while len(out) < limit and ident < self.next_id:
            record = self._record(ident)
            if record is not None and record.get("deleted_at") is None:
                out.append(public(record))
            ident += 1
        return out

    def get_project(self, ident: str) -> dict[str, Any]:
        return public(self._live(ident))

    def _live(self, ident: str) -> dict[str, Any]:
        record = self._record(int(ident)) if ident.isdigit() else None
        if record is None or record.get("deleted_at") is not None:
            raise WethodError(404, NOT_FOUND)
        return record

    # ------------------------------------------------------------------ writes
    def create_project(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid([{"field": "body", "message": "The body must be a JSON object"}])
        fields = self._validate(body, creating=True)
        stamp = now_iso()
        record: dict[str, Any] = {
            "id": self.next_id,
            "created_at": stamp,
            "updated_at": stamp,
            "name": None,
            "job_order": None,
            "purchase_order": None,
            "value": 0,
            "probability": 0,
            "external_cost_percentage": None,
            "date_start": None,
            "duration": 1,
            "is_archived": False,
            "archived_on": None,
            "due_date": None,
            "signed_on": None,
            "job_order_category_id": None,
            "project_type_id": None,
            "client_id": None,
            "pm_id": None,
            "account_id": None,
            "client_contact_id": None,
            "reason_why_id": None,
            "business_unit_id": None,
            "billing_group_id": None,
            "project_stage_id": None,
            "is_timesheet_whitelist_enabled": False,
            "deleted_at": None,
        }
        record.update(fields)
        self.projects[self.next_id] = record
        self.next_id += 1
        return public(record)

    def update_project(self, ident: str, body: Any) -> dict[str, Any]:
        record = dict(self._live(ident))
        if not isinstance(body, dict):
            raise invalid([{"field": "body", "message": "The body must be a JSON object"}])
        fields = self._validate(body, creating=False, current=record)
        record.update(fields)
        for key in [k for k, v in fields.items() if v is None and _METADATA.match(k)]:
            del record[key]  # only metadata with a value appears on a project
        record["updated_at"] = now_iso()
        self.projects[record["id"]] = record
        return public(record)

    def delete_project(self, ident: str) -> None:
        record = dict(self._live(ident))
        record["deleted_at"] = record["updated_at"] = now_iso()
        self.projects[record["id"]] = record

    def set_archived(self, ident: str, archived: bool) -> dict[str, Any]:
        record = dict(self._live(ident))
        record["is_archived"] = archived
        record["archived_on"] = datetime.now(UTC).date().isoformat() if archived else None
        record["updated_at"] = now_iso()
        self.projects[record["id"]] = record
        return public(record)

    # ------------------------------------------------------------------ validation
    def _validate(self, body: Mapping[str, Any], creating: bool, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The body's known fields, checked as Wethod documents them; unknown keys are ignored."""
        failures: list[dict[str, str]] = []
        out: dict[str, Any] = {}

        def fail(field: str, message: str) -> None:
            failures.append({"field": field, "message": message})

        required = ("name", "client_id", "pm_id", "job_order_category_id", "value", "probability", "start_date", "duration")
        if creating:
            for key in required:
                if body.get(key) in (None, ""):
                    fail(key, "This field is required")
        for key, value in body.items():
            if key in required and creating and value in (None, ""):
                continue
            if key == "name":
                if not isinstance(value, str) or not value.strip():
                    fail(key, "Must be a non-empty string")
                elif len(value) > 500:
                    fail(key, "Must be at most 500 characters")
                else:
                    out[key] = value
            elif key in ("job_order", "purchase_order"):
                if value is not None and not isinstance(value, str):
                    fail(key, "Must be a string")
                elif key == "job_order" and value is not None and len(value) > 150:
                    fail(key, "Must be at most 150 characters")
                else:
                    out[key] = value
            elif key == "value":
                number = _number(value)
                if number is None or number < 0:
                    fail(key, "Must be a non-negative number (the value in thousands)")
                else:
                    out[key] = number
            elif key == "probability":
                number = _integer(value)
                if number is None or not 0 <= number <= 100:
                    fail(key, "Must be an integer from 0 to 100")
                else:
                    out[key] = number
            elif key == "external_cost_percentage":
                number = _integer(value)
                if value is not None and number is None:
                    fail(key, "Must be an integer")
                else:
                    out[key] = number
            elif key == "duration":
                number = _integer(value)
                if number is None or number < 1:
                    fail(key, "Must be an integer of at least 1 (months)")
                else:
                    out[key] = number
            elif key in ("start_date", "date_start"):
                if not _is_date(value):
                    fail(key, "Must be a date in the YYYY-MM-DD format")
                else:
                    out["date_start"] = str(value)[:8] + "01"  # Wethod keeps the start month
            elif key in ("due_date", "signed_on"):
                if value is not None and not _is_date(value):
                    fail(key, "Must be a date in the YYYY-MM-DD format")
                else:
                    out[key] = value
            elif key == "client_id":
                if self._find(self.clients, value) is None:
                    fail(key, "Client not found")
                else:
                    out[key] = int(value)
            elif key in ("pm_id", "account_id"):
                if key == "account_id" and value is None:
                    out[key] = None
                elif self._find(self.persons, value) is None:
                    fail(key, "Person not found")
                else:
                    out[key] = int(value)
            elif key == "job_order_category_id":
                if self._find(self.categories, value) is None:
                    fail(key, "Job order category not found")
                else:
                    out[key] = int(value)
            elif key == "client_contact_id":
                if value is None:
                    out[key] = None
                    continue
                contact = self._find(self.contacts, value)
                client_id = body.get("client_id", current.get("client_id") if current else None)
                if contact is None:
                    fail(key, "Client contact not found")
                elif self._find(self.clients, client_id) is not None and contact["client_id"] != _integer(client_id):
                    fail(key, "The contact does not belong to the project's client")
                else:
                    out[key] = contact["id"]
            elif key in ("project_type_id", "business_unit_id"):
                if value is not None and _integer(value) is None:
                    fail(key, "Must be an integer id")
                else:
                    out[key] = _integer(value)
            elif (match := _METADATA.match(key)) is not None:
                definition = self._find(self.metadata, match.group(1))
                if definition is None:
                    fail(key, "Project metadata not found")
                elif value is not None and value not in definition["values"]:
                    fail(key, f"Must be one of: {', '.join(definition['values'])}")
                else:
                    out[key] = value
        if failures:
            raise invalid(failures)
        return out

    @staticmethod
    def _find(items: list[dict[str, Any]], ident: Any) -> dict[str, Any] | None:
        number = _integer(ident)
        return next((item for item in items if item["id"] == number), None) if number is not None else None

    # ------------------------------------------------------------------ reference lists
    def _reference_items(self, kind: str) -> list[dict[str, Any]]:
        lists: dict[str, list[dict[str, Any]]] = {
            "clients": self.clients,
            "persons": self.persons,
            "contacts": self.contacts,
            "project-stages": self.stages,
            "project-metadata": self.metadata,
            "job-order-categories": self.categories,
        }
        return lists[kind]

    def reference(self, kind: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        items = self._reference_items(kind)
        if kind == "contacts" and query.get("client_id"):
            wanted = _integer(query["client_id"].split(":")[-1])
            items = [c for c in items if c["client_id"] == wanted]
        limit, offset = page_params(query)
        return items[offset : offset + limit]

    def reference_item(self, kind: str, ident: str) -> dict[str, Any]:
        found = self._find(self._reference_items(kind), ident)
        if found is None:
            raise WethodError(404, NOT_FOUND)
        return found


# --------------------------------------------------------------------------- helpers
def public(record: Mapping[str, Any]) -> dict[str, Any]:
    """A project as Wethod answers it: metadata keys only when set."""
    return {k: v for k, v in record.items() if v is not None or not k.startswith("metadata_")}


def page_params(query: Mapping[str, str]) -> tuple[int, int]:
    failures = []
    limit = _integer(query.get("limit", MAX_LIMIT))
    offset = _integer(query.get("offset", 0))
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        failures.append({"field": "limit", "message": f"Must be an integer from 1 to {MAX_LIMIT}"})
    if offset is None or offset < 0:
        failures.append({"field": "offset", "message": "Must be a non-negative integer"})
    if failures:
        raise invalid(failures)
    assert limit is not None and offset is not None
    return limit, offset


_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "bt")


def _condition(field: str, spec: str, kind: str) -> Any:
    """One `field=<op>:<value>` filter as a predicate; a bare value means equality (or "on that day")."""
    op, _, operand = spec.partition(":")
    if op not in _OPS or not operand:
        op, operand = "eq", spec

    def parse(text: str) -> Any:
        if kind == "datetime":
            return _parse_moment(text)
        if kind == "date":
            return date.fromisoformat(text.strip())
        number = _integer(text)
        if number is None:
            raise ValueError(text)
        return number

    try:
        operands = [parse(t) for t in operand.split(",")] if op in ("in", "nin", "bt") else [parse(operand)]
    except ValueError:
        raise invalid([{"field": field, "message": f"Invalid filter value {operand!r}"}]) from None
    if op == "bt" and len(operands) != 2:
        raise invalid([{"field": field, "message": "bt needs two values: bt:min,max"}])
    day_match = kind == "datetime" and op == "eq" and _DATE.match(operand.strip()) is not None

    def value_of(record: Mapping[str, Any]) -> Any:
        raw = record.get(field)
        if raw is None:
            return None
        if kind == "datetime":
            return _parse_moment(str(raw))
        if kind == "date":
            return date.fromisoformat(str(raw))
        return _integer(raw)

    def check(record: Mapping[str, Any]) -> bool:
        value = value_of(record)
        if value is None:
            return op in ("neq", "nin")
        if day_match:
            return bool(value.date() == operands[0].date())
        first = operands[0]
        return {
            "eq": lambda: value == first,
            "neq": lambda: value != first,
            "gt": lambda: value > first,
            "gte": lambda: value >= first,
            "lt": lambda: value < first,
            "lte": lambda: value <= first,
            "in": lambda: value in operands,
            "nin": lambda: value not in operands,
            "bt": lambda: operands[0] <= value <= operands[1],
        }[op]()

    return check


FILTER_KINDS = {
    "updated_at": "datetime",
    "deleted_at": "datetime",
    "probability": "int",
    "date_start": "date",
    "project_stage_id": "int",
}


def project_filters(query: Mapping[str, str]) -> list[Any]:
    return [_condition(name, query[name], kind) for name, kind in FILTER_KINDS.items() if query.get(name)]


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- HTTP
COMPANY = "acme"
REFERENCE_LISTS = ("clients", "persons", "contacts", "project-stages", "project-metadata", "job-order-categories")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ERROR_KEYS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    412: "precondition_failure",
    429: "too_many_requests",
}


class WethodEmulator(Emulator):
    """Wethod's public API over aiohttp, on top of `WethodData`."""

    name = "wethod"
    # Wethod publishes no limit/remaining headers; a 429 carries x-ratelimit-retry-after only.
    limit_header = None
    remaining_header = None
    reset_header = None

    def reset(self) -> None:
        self.data = WethodData(self.seed, self.dataset_size)
        self.token = f"wethod-token-{self.seed:04d}-{random.Random(self.seed).getrandbits(64):016x}"

    def context(self, base_url: str) -> dict[str, Any]:
        # No `version`: the declaration's default (2024-06-15) is what clients send.
        return {"base_url": base_url, "api_token": self.token, "company": COMPANY}

    def error_response(self, status: int, message: str) -> web.Response:
        return json_response({"key": ERROR_KEYS.get(status, "internal_error"), "message": message}, status)

    def rate_limited_response(self, retry_after: int, headers: dict[str, str]) -> web.Response:
        return json_response(
            {"key": "too_many_requests", "message": "Too many requests, slow down."},
            429,
            {**headers, "x-ratelimit-retry-after": str(retry_after)},
        )

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/projects", self._guard(self._list))
        router.add_post("/api/projects", self._guard(self._create))
        # The action routes go first: `{id}` alone would also match `12:archive`.
        router.add_post("/api/projects/{id}:archive", self._guard(self._archive))
        router.add_post("/api/projects/{id}:unarchive", self._guard(self._unarchive))
        router.add_get("/api/projects/{id}", self._guard(self._get))
        router.add_patch("/api/projects/{id}", self._guard(self._update))
        router.add_delete("/api/projects/{id}", self._guard(self._delete))
        for kind in REFERENCE_LISTS:
            router.add_get(f"/api/{kind}", self._guard(self._reference_list(kind)))
            router.add_get(f"/api/{kind}/{{id}}", self._guard(self._reference_item(kind)))

    def _guard(self, handler: Callable[[web.Request], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Auth and the required headers, then the handler; `WethodError`s become Wethod's error bodies."""

        async def guarded(request: web.Request) -> web.Response:
            try:
                self._check_headers(request)
                result = await handler(request)
            except WethodError as exc:
                return json_response(exc.body, exc.status)
            if isinstance(result, web.Response):
                return result
            return json_response(result, 201 if request.method == "POST" and request.path == "/api/projects" else 200)

        return guarded

    def _check_headers(self, request: web.Request) -> None:
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            raise WethodError(401, {"key": "unauthorized", "message": "Missing or invalid API token."})
        company = request.headers.get("Wethod-Company")
        version = request.headers.get("Wethod-Version")
        failures = []
        if not company:
            failures.append({"field": "Wethod-Company", "message": "This header is required"})
        if not version:
            failures.append({"field": "Wethod-Version", "message": "This header is required"})
        elif not _VERSION.match(version):
            failures.append({"field": "Wethod-Version", "message": "Must be an API version date (YYYY-MM-DD)"})
        if failures:
            raise invalid(failures)
        if company != COMPANY:
            # A personal token belongs to one company.
            raise WethodError(401, {"key": "unauthorized", "message": f"This token cannot access company {company!r}."})

    async def _body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise invalid([{"field": "body", "message": "The body is not valid JSON"}]) from None

    async def _list(self, request: web.Request) -> Any:
        return self.data.list_projects(request.query)

    async def _get(self, request: web.Request) -> Any:
        return self.data.get_project(request.match_info["id"])

    async def _create(self, request: web.Request) -> Any:
        return self.data.create_project(await self._body(request))

    async def _update(self, request: web.Request) -> Any:
        ident = request.match_info["id"]
        self.data.get_project(ident)  # 404 before looking at the body
        return self.data.update_project(ident, await self._body(request))

    async def _delete(self, request: web.Request) -> web.Response:
        self.data.delete_project(request.match_info["id"])
        return web.Response(status=200)

    async def _archive(self, request: web.Request) -> Any:
        return self.data.set_archived(request.match_info["id"], True)

    async def _unarchive(self, request: web.Request) -> Any:
        return self.data.set_archived(request.match_info["id"], False)

    def _reference_list(self, kind: str) -> Callable[[web.Request], Awaitable[Any]]:
        async def handler(request: web.Request) -> Any:
            return self.data.reference(kind, request.query)

        return handler

    def _reference_item(self, kind: str) -> Callable[[web.Request], Awaitable[Any]]:
        async def handler(request: web.Request) -> Any:
            return self.data.reference_item(kind, request.match_info["id"])

        return handler


def build(seed: int = 1, dataset_size: int | None = None) -> WethodEmulator:
    """A Wethod emulator with seeded sample data."""
    return WethodEmulator(seed=seed, dataset_size=dataset_size)
