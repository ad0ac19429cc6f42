"""StrawBlond emulator: `/api/project` and the records a project refers to.

Held to StrawBlond's documentation (shared/reference/providers-planhat-teamleader-wethod-strawblond.md
§4; developers.strawblond.com intro, auth, project, custom fields): a personal API key as
`Authorization: Bearer <key>` and `Accept: application/json` on every request; lists are
Laravel pages `{data, links, meta}` of at most 50 (`page`, `per_page`); `filter[...]`,
`sort` (`-` for descending) and `include` (`owner.user` adds the leader's user); single
records are bare objects; `name`, `company_id`, `member_id`, `starts_at` required on create
(201); `PUT` (and `PATCH`, which the vendor SDK sends) change the keys sent, except
`custom_fields`, which is replaced whole; `status` (`active`, `completed`) only on update;
`due_at` read-only; delete answers 204 and is a soft delete.

Where the docs are silent (Laravel conventions): 401 `{"message": "Unauthenticated."}`; a
request without `Accept: application/json` is refused with 406; 404
`{"message": "No query results for model [App\\Models\\Project] <id>"}`; 422
`{"message", "errors": {"field": ["..."]}}`; unknown body keys are ignored; `per_page` above 50
is clamped; 429 `{"message": "Too Many Attempts."}` with `Retry-After` and `X-RateLimit-*`
headers (only when a rate limit is set through the fault API: the real limits are undocumented).

With `dataset_size`, projects 1..N are generated on the fly from their index.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from unicrm.emulators.base import Emulator, json_response

SEEDED_PROJECTS = 40
MAX_PER_PAGE = 50
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MUL, _ADD = 1_000_003, 982_451_653
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
MEMBERS = ("Nina Keller", "Luca Brunner", "Sara Meier", "Jonas Frei", "Lea Baumann", "Marco Steiner")
COMPANIES = (
    "Alpenkäse AG",
    "Bergbahnen Flims",
    "Café Rösterei Zürich",
    "Dorfgarage Huber",
    "Edelweiss Hotels",
    "Fischer Architekten",
    "Glacier Tech GmbH",
    "Helvetia Bikes",
    "Insel Verlag Bern",
    "Jura Uhren SA",
)
TOPICS = ("Website relaunch", "Brand refresh", "Webshop", "Intranet", "App MVP", "SEO audit", "Hosting", "Support retainer")
PROJECT_KEYS = ("name", "description", "company_id", "member_id", "starts_at", "billing_type", "costs_limit")


def hashid(kind: int, index: int) -> str:
    """A 10-character hashid-like id that decodes back to (kind, index)."""
    n = (index * 16 + kind) * _MUL + _ADD
    out = ""
    while n:
        n, digit = divmod(n, 62)
        out = _ALPHABET[digit] + out
    return out.rjust(10, "0")


def unhash(ident: str) -> tuple[int, int] | None:
    if len(ident) != 10 or any(c not in _ALPHABET for c in ident):
        return None
    n = 0
    for c in ident:
        n = n * 62 + _ALPHABET.index(c)
    n -= _ADD
    if n < 0 or n % _MUL:
        return None
    kind_index = n // _MUL
    return kind_index % 16, kind_index // 16


def stamp(moment: datetime) -> str:
    """Laravel's JSON dates: `2022-02-09T08:52:00.000000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


class Invalid(Exception):
    """A Laravel validation failure (422)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        first = next(iter(errors.values()))[0]
        more = sum(len(v) for v in errors.values()) - 1
        message = first + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
        super().__init__(message)
        self.body = {"message": message, "errors": errors}


class NotFound(Exception):
    def __init__(self, ident: str) -> None:
        super().__init__(ident)
        self.body = {"message": f"No query results for model [App\\Models\\Project] {ident}"}


COMPANY, MEMBER, PROJECT, CONTACT, USER = 1, 2, 3, 4, 5


class StrawBlondData:
    """The emulated organisation: members, companies, contacts and projects, from the seed."""

    def __init__(self, seed: int = 1, dataset_size: int | None = None) -> None:
        self.seed = seed
        self.size = SEEDED_PROJECTS if dataset_size is None else dataset_size
        made = _EPOCH - timedelta(days=500)
        self.members: list[dict[str, Any]] = [
            {
                "id": hashid(MEMBER, i + 1),
                "role": "admin" if i == 0 else "member",
                "user": {
                    "id": hashid(USER, i + 1),
                    "name": name,
                    "email": name.lower().replace(" ", ".") + "@example.ch",
                },
                "created_at": stamp(made + timedelta(hours=i)),
            }
            for i, name in enumerate(MEMBERS)
        ]
        self.companies = [
            {
                "id": hashid(COMPANY, i + 1),
                "name": name,
                "is_archived": False,
                "custom_fields": {},
                "created_at": stamp(made + timedelta(days=1, hours=i)),
            }
            for i, name in enumerate(COMPANIES)
        ]
        rng = random.Random(seed)
        self.contacts = []
        for i in range(24):
            first, last = rng.choice(MEMBERS).split()
            company = self.companies[i % len(self.companies)]
            self.contacts.append(
                {
                    "id": hashid(CONTACT, i + 1),
                    "company_id": company["id"],
                    "firstname": first,
                    "lastname": last,
                    "email": f"{first.lower()}.{last.lower()}{i}@example.ch",
                }
            )
        self.members_by_id = {m["id"]: m for m in self.members}
        self.companies_by_id = {c["id"]: c for c in self.companies}
        self.projects: dict[int, dict[str, Any]] = {}
        self.deleted: set[int] = set()
        self.next_index = self.size + 1

    # ------------------------------------------------------------------ projects
    def _generated(self, index: int) -> dict[str, Any]:
        # Cheap and deterministic (no Random per record): benchmarks page through millions.
        h = (index * 2_654_435_761 + self.seed * 97) & 0xFFFFFFFF
        created = _EPOCH + timedelta(seconds=index * 41 + h % 30)
        company = self.companies[h % len(self.companies)]
        member = self.members[(h >> 4) % len(self.members)]
        start = datetime(2024 + (h >> 8) % 2, 1 + (h >> 9) % 12, 1 + (h >> 13) % 28, tzinfo=UTC)
        completed = (h >> 17) % 4 == 0
        custom: dict[str, Any] = {}
        if (h >> 19) % 2:
            custom["crm_project_id"] = f"PRJ-{index:05d}"
        if (h >> 20) % 3 == 0:
            custom["priority"] = 1 + (h >> 21) % 3
        return {
            "id": hashid(PROJECT, index),
            "name": f"{TOPICS[index % len(TOPICS)]} {company['name']} #{index}",
            "description": None if (h >> 22) % 3 == 0 else f"{TOPICS[index % len(TOPICS)]} for {company['name']}",
            "starts_at": stamp(start),
            "due_at": stamp(start + timedelta(days=30 * (1 + (h >> 23) % 6))) if (h >> 26) % 2 else None,
            "billing_type": "hourly" if (h >> 27) % 2 else "flat",
            "company_id": company["id"],
            "member_id": member["id"],
            "assigned_member_ids": [member["id"]],
            "status": "completed" if completed else "active",
            "is_internal": (h >> 28) % 8 == 0,
            "costs_limit": float(1000 * (1 + (h >> 29) % 8)) if (h >> 25) % 3 else None,
            "custom_fields": custom,
            "times_count": (h >> 5) % 60,
            "invoices_count": (h >> 6) % 4,
            "expenses_count": (h >> 7) % 10,
            "created_at": stamp(created),
            "updated_at": stamp(created + timedelta(days=(h >> 11) % 200)),
        }

    def _record(self, index: int) -> dict[str, Any] | None:
        if index in self.deleted:
            return None
        if index in self.projects:
            return self.projects[index]
        if 1 <= index <= self.size:
            return self._generated(index)
        return None

    def _all(self, start: int = 1) -> Iterator[dict[str, Any]]:
        for index in range(start, self.next_index):
            record = self._record(index)
            if record is not None:
                yield record

    def find(self, ident: str) -> int:
        decoded = unhash(ident)
        if decoded is None or decoded[0] != PROJECT or self._record(decoded[1]) is None:
            raise NotFound(ident)
        return decoded[1]

    def out(self, record: Mapping[str, Any], include: set[str]) -> dict[str, Any]:
        """A stored project as the API answers it (relations embedded)."""
        body = {k: v for k, v in record.items() if k != "member_id"}
        body["custom_fields"] = dict(record.get("custom_fields") or {})
        body["assigned_member_ids"] = list(record.get("assigned_member_ids") or [])
        company = self.companies_by_id.get(str(record.get("company_id")))
        body["company"] = {"id": company["id"], "name": company["name"]} if company else None
        member = self.members_by_id.get(str(record.get("member_id")))
        owner: dict[str, Any] | None = None
        if member is not None:
            owner = {"id": member["id"], "role": member["role"]}
            if "owner.user" in include:
                owner["user"] = dict(member["user"])
        body["owner"] = owner
        body["involved_members"] = []
        body["assigned_members"] = [{"id": m} for m in body["assigned_member_ids"]]
        body["is_archived"] = record.get("status") == "completed"
        body["is_ongoing"] = record.get("status") == "active"
        return body

    def list_page(self, query: Mapping[str, str]) -> tuple[list[dict[str, Any]], int, int, int]:
        """(records on the page, page, per_page, total)."""
        page = _positive(query.get("page", "1"), "page")
        per_page = min(_positive(query.get("per_page", str(MAX_PER_PAGE)), "per_page"), MAX_PER_PAGE)
        filters = {k[7:-1]: v for k, v in query.items() if k.startswith("filter[") and k.endswith("]")}
        sort = query.get("sort", "")
        if not filters and not sort and not self.deleted:
            # Creation order with nothing to skip: index arithmetic instead of a scan.
            total = self.next_index - 1
            start = (page - 1) * per_page + 1
            records = [r for r in (self._record(i) for i in range(start, min(start + per_page, self.next_index))) if r]
            return records, page, per_page, total
        matching = [r for r in self._all() if _matches(r, filters)]
        if sort:
            key = sort.lstrip("-")
            if key not in ("name", "created_at", "starts_at", "company"):
                raise Invalid({"sort": [f"Requested sort(s) `{key}` is not allowed."]})
            field = "company_id" if key == "company" else key
            matching.sort(key=lambda r: str(r.get(field) or ""), reverse=sort.startswith("-"))
        offset = (page - 1) * per_page
        return matching[offset : offset + per_page], page, per_page, len(matching)

    def create(self, body: Any) -> dict[str, Any]:
        fields = self._validate(body, creating=True)
        now = datetime.now(UTC)
        index = self.next_index
        self.next_index += 1
        record: dict[str, Any] = {
            "id": hashid(PROJECT, index),
            "description": None,
            "due_at": None,
            "billing_type": "flat",
            "assigned_member_ids": [],
            "status": "active",
            "is_internal": False,
            "costs_limit": None,
            "custom_fields": {},
            "times_count": 0,
            "invoices_count": 0,
            "expenses_count": 0,
            "created_at": stamp(now),
        }
        record.update(fields)
        record["updated_at"] = stamp(now)
        self.projects[index] = record
        return record

    def update(self, ident: str, body: Any) -> dict[str, Any]:
        index = self.find(ident)
        fields = self._validate(body, creating=False)
        current = self._record(index)
        assert current is not None
        record = {**current, **fields}  # custom_fields, when sent, replaces the whole object
        record["updated_at"] = stamp(datetime.now(UTC))
        self.projects[index] = record
        return record

    def delete(self, ident: str) -> None:
        index = self.find(ident)
        self.deleted.add(index)
        self.projects.pop(index, None)

    def _validate(self, body: Any, creating: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Invalid({"name": ["The request body must be a JSON object."]})
        errors: dict[str, list[str]] = {}
        out: dict[str, Any] = {}

        def fail(key: str, message: str) -> None:
            errors.setdefault(key, []).append(message)

        for key in ("name", "company_id", "member_id", "starts_at"):
            if creating and body.get(key) in (None, ""):
                fail(key, f"The {key.replace('_', ' ')} field is required.")
        for key, value in body.items():
            if key in errors:
                continue
            if key == "name":
                if not isinstance(value, str) or not value.strip() or len(value) > 255:
                    fail(key, "The name field must be a string of at most 255 characters.")
                else:
                    out[key] = value
            elif key == "description":
                if value is not None and not isinstance(value, str):
                    fail(key, "The description field must be a string.")
                else:
                    out[key] = value
            elif key == "company_id":
                if str(value) not in self.companies_by_id:
                    fail(key, "The selected company id is invalid.")
                else:
                    out[key] = str(value)
            elif key == "member_id":
                if str(value) not in self.members_by_id:
                    fail(key, "The selected member id is invalid.")
                else:
                    out[key] = str(value)
            elif key == "starts_at":
                moment = parse_date(value)
                if moment is None:
                    fail(key, "The starts at field must be a valid date.")
                else:
                    out[key] = stamp(moment)
            elif key == "billing_type":
                if value not in ("flat", "hourly"):
                    fail(key, "The selected billing type is invalid.")
                else:
                    out[key] = value
            elif key == "costs_limit":
                ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0)
                if not ok:
                    fail(key, "The costs limit field must be at least 0.")
                else:
                    out[key] = None if value is None else float(value)
            elif key == "assigned_member_ids":
                if not isinstance(value, list) or any(str(m) not in self.members_by_id for m in value):
                    fail(key, "The selected assigned member ids is invalid.")
                else:
                    out[key] = [str(m) for m in value]
            elif key == "status" and not creating:
                if value not in ("active", "completed"):
                    fail(key, "The selected status is invalid.")
                else:
                    out[key] = value
            elif key == "custom_fields":
                problem = _custom_problem(value)
                if problem:
                    fail(key, problem)
                else:
                    out[key] = dict(value)
        if errors:
            raise Invalid(errors)
        return out

    def related(self, kind: str) -> list[dict[str, Any]]:
        tables: dict[str, list[dict[str, Any]]] = {
            "member": self.members,
            "company": self.companies,
            "contact": self.contacts,
        }
        return tables[kind]


def _custom_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "The custom fields field must be an object."
    if len(value) > 50:
        return "The custom fields field must not have more than 50 keys."
    for key, item in value.items():
        if isinstance(item, str) and len(item) > 5000:
            return f"The custom field {key} must not be greater than 5000 characters."
        if item is not None and not isinstance(item, str | int | float | bool):
            return f"The custom field {key} must be a string, number, boolean or null."
    return None


def _matches(record: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    for key, value in filters.items():
        if key == "status" and record.get("status") != value:
            return False
        if key == "company" and record.get("company_id") != value:
            return False
        if key == "is_archived" and (record.get("status") == "completed") != (value.lower() in ("1", "true")):
            return False
        if key == "billing_type" and record.get("billing_type") != value:
            return False
        if key == "search" and value.lower() not in str(record.get("name", "")).lower():
            return False
        if key == "custom_field":
            name, _, wanted = value.partition(",")
            if str((record.get("custom_fields") or {}).get(name)) != wanted:
                return False
    return True


def _positive(value: str, name: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise Invalid({name: [f"The {name} must be a positive integer."]})
    return int(value)


def paginated(request: web.Request, records: list[dict[str, Any]], page: int, per_page: int, total: int) -> dict[str, Any]:
    """Laravel's paginator envelope."""
    last = max(1, math.ceil(total / per_page))
    path = str(request.url.with_query(None))

    def link(n: int) -> str:
        return str(request.url.update_query(page=str(n)))

    start = (page - 1) * per_page + 1
    return {
        "data": records,
        "links": {
            "first": link(1),
            "last": link(last),
            "prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last else None,
        },
        "meta": {
            "current_page": page,
            "from": start if records else None,
            "last_page": last,
            "path": path,
            "per_page": per_page,
            "to": start + len(records) - 1 if records else None,
            "total": total,
        },
    }


class StrawBlondEmulator(Emulator):
    """StrawBlond's REST API (api.strawblond.com/api) over HTTP."""

    name = "strawblond"
    base_path = "/api"

    def reset(self) -> None:
        self.data = StrawBlondData(self.seed, self.dataset_size)
        self.token = f"strawblond-api-key-{self.seed}"

    def context(self, base_url: str) -> dict[str, Any]:
        return {"base_url": base_url, "api_key": self.token}

    def rate_limited_response(self, retry_after: int, headers: dict[str, str]) -> web.Response:
        return json_response({"message": "Too Many Attempts."}, 429, {**headers, "Retry-After": str(retry_after)})

    def routes(self, router: web.UrlDispatcher) -> None:
        base = self.base_path
        router.add_get(f"{base}/project", self.list_projects)
        router.add_post(f"{base}/project", self.create_project)
        router.add_get(f"{base}/project/{{id}}", self.get_project)
        router.add_put(f"{base}/project/{{id}}", self.update_project)
        router.add_patch(f"{base}/project/{{id}}", self.update_project)
        router.add_delete(f"{base}/project/{{id}}", self.delete_project)
        for kind in ("member", "company", "contact"):
            router.add_get(f"{base}/{kind}", self._related_list(kind))
            router.add_get(f"{base}/{kind}/{{id}}", self._related_get(kind))
        router.add_get(f"{base}/user", self.current_user)

    async def current_user(self, request: web.Request) -> web.StreamResponse:
        """`GET /user` (the vendor's SDK): the API key's user, the first seeded member's."""

        async def action() -> Any:
            return dict(self.data.related("member")[0]["user"])

        return await self._serve(request, action)

    async def _serve(self, request: web.Request, action: Callable[[], Awaitable[Any]], status: int = 200) -> web.StreamResponse:
        if "application/json" not in request.headers.get("Accept", ""):
            return json_response({"message": "Send the header Accept: application/json."}, 406)
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            return json_response({"message": "Unauthenticated."}, 401)
        try:
            body = await action()
        except Invalid as exc:
            return json_response(exc.body, 422)
        except NotFound as exc:
            return json_response(exc.body, 404)
        if status == 204:
            return web.Response(status=204)
        return json_response(body, status)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise Invalid({"body": ["The request body is not valid JSON."]}) from None

    @staticmethod
    def _include(request: web.Request) -> set[str]:
        return {part.strip() for part in request.query.get("include", "").split(",") if part.strip()}

    async def list_projects(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            records, page, per_page, total = self.data.list_page(request.query)
            include = self._include(request)
            return paginated(request, [self.data.out(r, include) for r in records], page, per_page, total)

        return await self._serve(request, action)

    async def get_project(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            record = self.data._record(self.data.find(request.match_info["id"]))
            assert record is not None
            return self.data.out(record, self._include(request))

        return await self._serve(request, action)

    async def create_project(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            self.count("creates")
            return self.data.out(self.data.create(await self._body(request)), self._include(request))

        return await self._serve(request, action, 201)

    async def update_project(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            self.count("updates")
            record = self.data.update(request.match_info["id"], await self._body(request))
            return self.data.out(record, self._include(request))

        return await self._serve(request, action)

    async def delete_project(self, request: web.Request) -> web.StreamResponse:
        async def action() -> Any:
            self.count("deletes")
            self.data.delete(request.match_info["id"])

        return await self._serve(request, action, 204)

    def _related_list(self, kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            async def action() -> Any:
                items = self.data.related(kind)
                page = _positive(request.query.get("page", "1"), "page")
                per_page = min(_positive(request.query.get("per_page", str(MAX_PER_PAGE)), "per_page"), MAX_PER_PAGE)
                chunk = items[(page - 1) * per_page : page * per_page]
                return paginated(request, chunk, page, per_page, len(items))

            return await self._serve(request, action)

        return handler

    def _related_get(self, kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            async def action() -> Any:
                ident = request.match_info["id"]
                found = next((item for item in self.data.related(kind) if item["id"] == ident), None)
                if found is None:
                    raise NotFound(ident)
                return found

            return await self._serve(request, action)

        return handler


def build(seed: int = 1, dataset_size: int | None = None) -> StrawBlondEmulator:
    """The StrawBlond emulator (discovered by `unicrm.emulators`)."""
    return StrawBlondEmulator(seed=seed, dataset_size=dataset_size)
