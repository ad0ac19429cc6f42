"""Pipeliner CRM REST v100 emulator: `/entities/Projects` and the entities projects refer to.

Held to Pipeliner's documentation (shared/reference/providers-capsule-insightly-pipeliner.md §3):
HTTP Basic (an API application's user name and password) with 401 + `WWW-Authenticate: Basic
realm="restapi"`; every answer wrapped in `{"success": ..., "data": ...}`; cursor paging with
`first` (default 30, max 100) / `after` and `page_info`; `filter[field]` + `filter-op[field]`;
`expand=owner,account,contact_relations.contact` turns relation URIs into objects;
`order-by`; required `name`, `end_date`, `owner_id` and `revenue_goal` (with `base_value`,
`currency_id`, `value_foreign`, on update too); `status` computed (1 not started, 2 in progress,
4 completed) and read-only; soft delete answering `{"success": true, "data": "<id>"}`; errors
`{"success": false, "http_status", "code", "name", "message"}` and nothing else (the OpenAPI
`Error` schema); `expand` honoured on list and get only (the parameters page lists it for
`*.List, *.Get`), so create and update answer relations as URIs; currencies with `is_base` and
exchange rates (`CurrencyExchangeRatesLists`, `CurrencyExchangeRates`). Checked against the
spec in tests/specs/pipeliner/.

Assumptions where the docs are silent (documented here, not invented elsewhere): a validation
error answers 422 with code 118 `ERROR_VALIDATION`, its message starting with the offending
field's api name (`revenue_goal: ...`); no rate-limit numbers are published, so 429s (with
`X-RateLimit-*` and `Retry-After`) only happen when a test sets a rate limit through the
fault controls.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from unicrm.emulators.base import Emulator, json_response

SPACE = "sample_space"
CURRENCIES = (
    ("EUR", "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"),
    ("USD", "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"),
    ("GBP", "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"),
    ("CHF", "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"),
)
#: units of each currency per EUR (the base currency) in the one exchange rate list
RATES = {"USD": 1.08, "GBP": 0.85, "CHF": 0.95}
RATE_LIST = "3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b"
PROJECT_TYPE = "4f5a6b7c-8d9e-4f0a-9b1c-2d3e4f5a6b7c"
SALES_UNIT = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
CLIENTS = (("Jonas", "Berg"), ("Mila", "Novak"), ("Omar", "Haddad"))
ACCOUNTS = ("Nordlicht GmbH", "Baltic Freight", "Cedar Health", "Orbit Media", "Kestrel Foods", "Lumen Labs")
CONTACTS = (("Lena", "Vogt"), ("Tom", "Reid"), ("Ines", "Costa"), ("Yuki", "Sato"), ("Piet", "de Vries"))
FILTER_OPS = {"eq", "not-eq", "gt", "gte", "lt", "lte"}


def _stamp(moment: datetime) -> str:
    # The docs' form: space separator, microseconds, +00:00.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00:00"


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class PipelinerEmulator(Emulator):
    name = "pipeliner"
    base_path = f"/api/v100/rest/spaces/{SPACE}"

    def reset(self) -> None:
        rng = random.Random(self.seed)
        self.credentials = ("pipeliner-app-user", "pipeliner-app-password")
        self.clients: dict[str, dict[str, Any]] = {_uuid(rng): {"first_name": f, "last_name": last} for f, last in CLIENTS}
        for cid, client in self.clients.items():
            client.update(id=cid, formatted_name=f"{client['first_name']} {client['last_name']}")
        self.accounts: dict[str, dict[str, Any]] = {}
        for name in ACCOUNTS:
            aid = _uuid(rng)
            self.accounts[aid] = {"id": aid, "name": name, "formatted_name": name}
        self.contacts: dict[str, dict[str, Any]] = {}
        for first, last in CONTACTS:
            cid = _uuid(rng)
            self.contacts[cid] = {"id": cid, "first_name": first, "last_name": last, "formatted_name": f"{first} {last}"}
        self._enrich_entities()
        self.currencies: dict[str, dict[str, Any]] = {
            cid: {
                "id": cid,
                "is_delete_protected": code == "EUR",
                "is_deleted": False,
                "code": code,
                "is_base": code == "EUR",
                "symbol": code,
                "revision": 1,
            }
            for code, cid in CURRENCIES
        }
        self.rate_lists: dict[str, dict[str, Any]] = {
            RATE_LIST: {
                "id": RATE_LIST,
                "is_delete_protected": False,
                "is_deleted": False,
                "valid_from": "2024-01-01 00:00:00.000000+00:00",
                "revision": 1,
            }
        }
        self.rates: dict[str, dict[str, Any]] = {}
        for i, (code, cid) in enumerate(CURRENCIES):
            if code in RATES:
                rid = str(uuid.UUID(int=0x7000 + i, version=4))  # not from rng: project ids stay as seeded
                self.rates[rid] = {
                    "id": rid,
                    "is_delete_protected": False,
                    "is_deleted": False,
                    "currency_exchange_rate_list_id": RATE_LIST,
                    "currency_id": cid,
                    "exchange_rate": RATES[code],
                    "revision": 1,
                }
        self.relations: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        base = datetime(2025, 2, 3, 8, 30, tzinfo=UTC)
        client_ids, account_ids, contact_ids = list(self.clients), list(self.accounts), list(self.contacts)
        for i in range(40):
            created = base + timedelta(days=i * 2, minutes=i * 11, microseconds=i * 1234)
            pid = _uuid(rng)
            project = {
                "id": pid,
                "is_deleted": False,
                "is_delete_protected": False,
                "created": _stamp(created),
                "modified": _stamp(created + timedelta(days=rng.randint(0, 15), seconds=rng.randint(0, 86000))),
                "revision": 1,
                "name": f"{['ERP onboarding', 'CRM rollout', 'Data migration', 'Training'][i % 4]} {i + 1}",
                "description": f"Sample project {i + 1}" if i % 3 else None,
                "start_date": created.date().isoformat(),
                "end_date": (created + timedelta(days=90)).date().isoformat(),
                "owner_id": client_ids[i % len(client_ids)],
                "account_id": account_ids[i % len(account_ids)] if i % 5 else None,
                "share_mode": 0,
                "revenue_goal": self._goal(float(1000 * (i + 1)), CURRENCIES[i % 2][1]),
                "project_type_id": PROJECT_TYPE,
                "unit_id": SALES_UNIT,
                "is_favorite": False,
                "completion_rate": float((i * 13) % 101),
                "tags": [],
            }
            rel_ids = []
            if i % 2 == 0:
                rel_ids.append(self._relation(pid, contact_ids[i % len(contact_ids)], True))
            project["contact_relation_ids"] = rel_ids
            self.projects[pid] = project

    def _goal(self, foreign: float, currency_id: str) -> dict[str, Any]:
        code = self.currencies[currency_id]["code"]
        return {"base_value": round(foreign / RATES.get(code, 1.0), 2), "currency_id": currency_id, "value_foreign": foreign}

    def _enrich_entities(self) -> None:
        """The rest of each Client, Account and Contact, in the fields of Pipeliner's entity schemas.

        Same ids and names as before (projects point at them); added: owners, timestamps, the flat
        address fields, email1/phone1, `home_page`, `comments` and a contact's `position`.
        Opportunities carry the documented required fields (`name`, `owner_id`, `closing_date`,
        `step_id`, `value`). Contacts and opportunities answer their primary account only as
        the `primary_account` relation (a URI, or the Account with `expand=primary_account`):
        Pipeliner's Contact and Opportunity schemas have no `primary_account_id` key, so the
        internal `primary_account_id` below is never answered. Steps have `sort_order` and
        `percent` as in the Step schema (Pipeliner OpenAPI, via api-evangelist/pipeliner).
        """
        start = datetime(2024, 10, 1, 9, 0, tzinfo=UTC)
        client_ids = list(self.clients)
        account_ids = list(self.accounts)
        for i, client in enumerate(self.clients.values()):
            first = client["first_name"].lower()
            client.update(
                email=f"{first}@pipeliner-sample.example",
                middle_name=None,
                default_unit_id="aba4a358-f3f8-4f55-b3ed-dd5cf589103b",
                is_deleted=False,
                created=_stamp(start + timedelta(days=i, microseconds=1000 * i)),
                modified=_stamp(start + timedelta(days=10 + i, microseconds=1000 * i)),
            )
        for i, account in enumerate(self.accounts.values()):
            slug = account["name"].lower().split()[0]
            account.update(
                owner_id=client_ids[i % len(client_ids)],
                comments=f"{account['name']}, sample account" if i % 2 == 0 else None,
                home_page=f"https://www.{slug}.example",
                email1=f"info@{slug}.example",
                phone1=f"+49 30 555 01{i:02d}",
                phone2=None,
                address=f"{i + 3} Hafenstrasse",
                city="Hamburg",
                state_province=None,
                zip_code=f"2045{i}",
                country="Germany",
                is_deleted=False,
                created=_stamp(start + timedelta(days=5 + i, hours=i)),
                modified=_stamp(start + timedelta(days=20 + 2 * i, hours=i)),
            )
        for i, contact in enumerate(self.contacts.values()):
            contact.update(
                owner_id=client_ids[i % len(client_ids)],
                primary_account_id=account_ids[i % len(account_ids)],
                position=("Head of Finance", "IT Lead", "Buyer")[i % 3],
                email1=f"{contact['first_name'].lower()}@example.com",
                phone1=f"+49 170 555 0{i:03d}",
                address=None,
                city="Berlin" if i % 2 else None,
                state_province=None,
                zip_code=None,
                country="Germany" if i % 2 else None,
                is_deleted=False,
                created=_stamp(start + timedelta(days=30 + i, minutes=7 * i)),
                modified=_stamp(start + timedelta(days=40 + 3 * i, minutes=7 * i)),
            )
        # Pipeline steps and opportunities (an opportunity always sits in a step; `name`,
        # `owner_id`, `closing_date`, `step_id` and `value` are required on create).
        self.steps: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(("First contact", "Proposal", "Negotiation", "Closed/Won")):
            sid = str(uuid.UUID(int=0x5000 + i, version=4))
            self.steps[sid] = {
                "id": sid,
                "name": name,
                "pipeline_id": "7b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
                "sort_order": i + 1,
                "percent": (10, 40, 70, 100)[i],
                "is_deleted": False,
                "created": _stamp(start),
                "modified": _stamp(start + timedelta(days=i)),
            }
        step_ids = list(self.steps)
        # Tags (`/entities/Tags`, schema Tag: `name` and `color` required on create, `color` a
        # 24-bit RGB integer, `supported_entities` a bit flag of the record kinds it applies to).
        self.tags: dict[str, dict[str, Any]] = {}
        for i, (name, color) in enumerate(
            (("Key account", 0xE53935), ("Renewal", 0x43A047), ("Pilot", 0x1E88E5), ("Onsite", 0xFDD835))
        ):
            tid = str(uuid.UUID(int=0x7000 + i, version=4))
            self.tags[tid] = {
                "id": tid,
                "name": name,
                "color": color,
                "supported_entities": 1 << (i % 5),
                "is_enabled": True,
                "use_lang": False,
                "creator_id": client_ids[i % len(client_ids)],
                "entity_api_name": None,
                "allowed_entity_type_ids": None,
                "is_delete_protected": False,
                "is_deleted": False,
                "created": _stamp(start + timedelta(days=2 * i, hours=3)),
                "modified": _stamp(start + timedelta(days=15 + 4 * i, hours=3)),
            }
        self.opportunities: dict[str, dict[str, Any]] = {}
        for i, topic in enumerate(("Licences", "Support renewal", "Data warehouse", "Training days", "Integrations")):
            oid = str(uuid.UUID(int=0x6000 + i, version=4))
            self.opportunities[oid] = {
                "id": oid,
                "name": f"{topic} {i + 1}",
                "owner_id": client_ids[i % len(client_ids)],
                "primary_account_id": account_ids[i % len(account_ids)],
                "step_id": step_ids[i % len(step_ids)],
                "closing_date": (start + timedelta(days=120 + 7 * i)).date().isoformat(),
                "value": {"base_value": 5000.0 * (i + 1), "currency_id": CURRENCIES[i % 2][1], "value_foreign": 5000.0 * (i + 1)},
                "is_archived": False,
                "is_deleted": False,
                "created": _stamp(start + timedelta(days=60 + i, hours=i)),
                "modified": _stamp(start + timedelta(days=70 + 2 * i, hours=i)),
            }

    def _entity_out(self, request: web.Request, entity: str, record: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        """An entity with its relations as URIs, or as objects when `expand` names them."""
        out = dict(record)
        for key, table, target in (
            ("owner", self.clients, "Clients"),
            ("primary_account", self.accounts, "Accounts"),
            ("step", self.steps, "Steps"),
        ):
            ident = record.get(f"{key}_id")
            if ident is None:
                continue
            related = table.get(ident)
            out[key] = dict(related) if key in expand and related else self._uri(request, target, ident)
        # The Contact and Opportunity schemas have the `primary_account` relation but no
        # `primary_account_id` key (it is set from the account relation marked primary): the
        # emulator keeps the id internally and answers only the relation.
        out.pop("primary_account_id", None)
        return out

    def entity_list(self, entity: str, table: Any) -> Any:
        """`GET /entities/<entity>`: cursor pages (`first`/`after`), `filter[...]`, `expand`, by `created`."""

        async def handler(request: web.Request) -> web.Response:
            if (denied := self._authorised(request)) is not None:
                return denied
            query = request.query
            params = self._page_params(query)
            if isinstance(params, web.Response):
                return params
            first, filters, offset = params
            rows = sorted((r for r in table().values() if self._matches(r, filters)), key=lambda r: str(r.get("created")))
            page = rows[offset : offset + first]
            end = offset + len(page)
            expand = self._expand(request)
            return json_response(
                {
                    "success": True,
                    "total": len(rows),
                    "page_info": _page_info(offset, end, len(rows)),
                    "data": [self._entity_out(request, entity, r, expand) for r in page],
                }
            )

        return handler

    def entity_get(self, entity: str, table: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if (denied := self._authorised(request)) is not None:
                return denied
            record = table().get(request.match_info["id"])
            if record is None:
                return self._not_found()
            return json_response({"success": True, "data": self._entity_out(request, entity, record, self._expand(request))})

        return handler

    def _relation(self, project_id: str, contact_id: str, primary: bool) -> str:
        rid = str(uuid.uuid4())
        self.relations[rid] = {"id": rid, "project_id": project_id, "contact_id": contact_id, "is_primary": primary}
        return rid

    def context(self, base_url: str) -> dict[str, Any]:
        return {"base_url": base_url, "username": self.credentials[0], "password": self.credentials[1], "space_id": SPACE}

    # ------------------------------------------------------------------ provider specifics
    def _error(self, status: int, code: int, name: str, message: str) -> web.Response:
        body = {"success": False, "http_status": status, "code": code, "name": name, "message": message}
        return json_response(body, status)

    def error_response(self, status: int, message: str) -> web.Response:
        return self._error(status, 500, "ERROR_UNEXPECTED", message)

    def rate_limited_response(self, retry_after: int, headers: dict[str, str]) -> web.Response:
        response = self._error(429, 429, "ERROR_TOO_MANY_REQUESTS", "Too many requests")
        response.headers.update(headers)
        response.headers["Retry-After"] = str(retry_after)
        return response

    def routes(self, router: web.UrlDispatcher) -> None:
        base = self.base_path + "/entities"
        router.add_get(base + "/Projects", self.list_projects)
        router.add_post(base + "/Projects", self.create_project)
        router.add_get(base + "/Projects/{id}", self.get_project)
        router.add_patch(base + "/Projects/{id}", self.update_project)
        router.add_delete(base + "/Projects/{id}", self.delete_project)
        router.add_get(base + "/Currencies", self.simple_list(self._currencies_out))
        router.add_get(base + "/CurrencyExchangeRatesLists", self.simple_list(self._rate_lists_out))
        router.add_get(base + "/CurrencyExchangeRates", self.simple_list(self._rates_out))
        for entity, table in (
            ("Clients", lambda: self.clients),
            ("Accounts", lambda: self.accounts),
            ("Contacts", lambda: self.contacts),
            ("Opportunities", lambda: self.opportunities),
            ("Steps", lambda: self.steps),
            ("Tags", lambda: self.tags),
        ):
            router.add_get(f"{base}/{entity}", self.entity_list(entity, table))
            router.add_get(f"{base}/{entity}/{{id}}", self.entity_get(entity, table))
        router.add_get(base + "/ProjectContactRelations", self.simple_list(lambda: self.relations))

    def _authorised(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
        if header == expected:
            return None
        response = self._error(401, 401, "ERROR_UNAUTHORIZED", "Invalid credentials")
        response.headers["WWW-Authenticate"] = 'Basic realm="restapi"'
        return response

    def simple_list(self, table: Any) -> Any:
        """One page (`first`, default 30, max 100) of a small table; `table(request)` or `table()`."""

        async def handler(request: web.Request) -> web.Response:
            if (denied := self._authorised(request)) is not None:
                return denied
            try:
                first = int(request.query.get("first", "30"))
            except ValueError:
                return self._error(400, 117, "ERROR_PARAMETER_INVALID", "first must be a number")
            if not 1 <= first <= 100:
                return self._error(400, 117, "ERROR_PARAMETER_INVALID", "first must be between 1 and 100")
            try:
                rows = list(table(request).values())
            except TypeError:
                rows = list(table().values())
            page = rows[:first]
            info = {"start_cursor": "", "end_cursor": "", "has_previous_page": False, "has_next_page": len(rows) > first}
            return json_response({"success": True, "data": page, "page_info": info})

        return handler

    def _currencies_out(self, request: web.Request) -> dict[str, Any]:
        return {
            cid: {
                **c,
                "currency_exchange_rates": [
                    self._uri(request, "CurrencyExchangeRates", r) for r, rate in self.rates.items() if rate["currency_id"] == cid
                ],
            }
            for cid, c in self.currencies.items()
        }

    def _rate_lists_out(self, request: web.Request) -> dict[str, Any]:
        return {
            lid: {
                **rl,
                "currency_exchange_rates": [
                    self._uri(request, "CurrencyExchangeRates", r)
                    for r, rate in self.rates.items()
                    if rate["currency_exchange_rate_list_id"] == lid
                ],
            }
            for lid, rl in self.rate_lists.items()
        }

    def _rates_out(self, request: web.Request) -> dict[str, Any]:
        return {
            rid: {
                **rate,
                "currency": self._uri(request, "Currencies", rate["currency_id"]),
                "currency_exchange_rate_list": self._uri(
                    request, "CurrencyExchangeRatesLists", rate["currency_exchange_rate_list_id"]
                ),
            }
            for rid, rate in self.rates.items()
        }

    def _uri(self, request: web.Request, entity: str, ident: str) -> str:
        return f"{request.scheme}://{request.host}{self.base_path}/entities/{entity}/{ident}"

    def _status(self, project: dict[str, Any]) -> int:
        rate = project.get("completion_rate") or 0
        return 4 if rate >= 100 else 2 if rate > 0 else 1

    def _out(self, request: web.Request, project: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        out = {k: v for k, v in project.items() if k != "contact_relation_ids"}
        out["status"] = self._status(project)
        out["formatted_name"] = project["name"]
        out["project_type"] = self._uri(request, "ProjectTypes", project.get("project_type_id") or PROJECT_TYPE)
        out["unit"] = self._uri(request, "SalesUnits", project.get("unit_id") or SALES_UNIT)
        owner = self.clients.get(project["owner_id"])
        out["owner"] = dict(owner) if "owner" in expand and owner else self._uri(request, "Clients", project["owner_id"])
        if project.get("account_id"):
            account = self.accounts.get(project["account_id"])
            out["account"] = (
                dict(account) if "account" in expand and account else self._uri(request, "Accounts", project["account_id"])
            )
        else:
            out["account"] = None
        relations: list[Any] = []
        for rid in project.get("contact_relation_ids", []):
            rel = self.relations[rid]
            if "contact_relations" in expand or "contact_relations.contact" in expand:
                item = dict(rel)
                if "contact_relations.contact" in expand:
                    item["contact"] = dict(self.contacts[rel["contact_id"]])
                relations.append(item)
            else:
                relations.append(self._uri(request, "ProjectContactRelations", rid))
        out["contact_relations"] = relations
        primary = next(
            (self.relations[r]["contact_id"] for r in project.get("contact_relation_ids", []) if self.relations[r]["is_primary"]),
            None,
        )
        out["primary_contact"] = self._uri(request, "Contacts", primary) if primary else None
        return out

    def _expand(self, request: web.Request) -> set[str]:
        return {e.strip() for e in request.query.get("expand", "").split(",") if e.strip()}

    def _synthetic(self, index: int) -> dict[str, Any]:
        created = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=index)
        return {
            "id": str(uuid.UUID(int=index + 1)),
            "is_deleted": False,
            "is_delete_protected": False,
            "created": _stamp(created),
            "modified": _stamp(created),
            "revision": 1,
            "name": f"Synthetic project {index}",
            "description": None,
            "start_date": "2024-01-01",
            "end_date": "2024-12-31",
            "owner_id": next(iter(self.clients)),
            "account_id": None,
            "share_mode": 0,
            "revenue_goal": {"base_value": 0.0, "currency_id": CURRENCIES[0][1], "value_foreign": 0.0},
            "project_type_id": PROJECT_TYPE,
            "unit_id": SALES_UNIT,
            "is_favorite": False,
            "completion_rate": 0.0,
            "tags": [],
            "contact_relation_ids": [],
        }

    def _matches(self, project: dict[str, Any], filters: list[tuple[str, str, str]]) -> bool:
        for field, op, raw in filters:
            value = project.get(field)
            if field in ("created", "modified"):
                left: Any = _parse(str(value))
                right: Any = _parse(raw)
            else:
                left, right = str(value), raw
            ok = {
                "eq": left == right,
                "not-eq": left != right,
                "gt": left > right,
                "gte": left >= right,
                "lt": left < right,
                "lte": left <= right,
            }[op]
            if not ok:
                return False
        return True

    def _page_params(self, query: Mapping[str, str]) -> tuple[int, list[tuple[str, str, str]], int] | web.Response:
        """`first`, the `filter[...]`/`filter-op[...]` pairs and the `after` offset of a list call, or its 400."""
        try:
            first = int(query.get("first", "30"))
        except ValueError:
            return self._error(400, 117, "ERROR_PARAMETER_INVALID", "first must be a number")
        if not 1 <= first <= 100:
            return self._error(400, 117, "ERROR_PARAMETER_INVALID", "first must be between 1 and 100")
        filters = []
        for key, raw in query.items():
            if key.startswith("filter[") and key.endswith("]"):
                field = key[7:-1]
                op = query.get(f"filter-op[{field}]", "eq")
                if op not in FILTER_OPS:
                    return self._error(400, 117, "ERROR_PARAMETER_INVALID", f"unsupported filter-op {op}")
                try:
                    if field in ("created", "modified"):
                        _parse(raw)
                except ValueError:
                    return self._error(400, 117, "ERROR_PARAMETER_INVALID", f"filter[{field}] is not a date-time")
                filters.append((field, op, raw))
        offset = 0
        if after := query.get("after"):
            try:
                offset = int(orjson.loads(base64.b64decode(after))[0])
            except Exception:
                return self._error(400, 117, "ERROR_PARAMETER_INVALID", "after is not a valid cursor")
        return first, filters, offset

    async def list_projects(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        query = request.query
        params = self._page_params(query)
        if isinstance(params, web.Response):
            return params
        first, filters, offset = params
        expand = self._expand(request)
        if self.dataset_size:
            total = self.dataset_size
            page = [self._synthetic(i) for i in range(offset, min(offset + first, total))]
        else:
            include_deleted = query.get("include-deleted") == "true"
            projects = [p for p in self.projects.values() if include_deleted or p["id"] not in self.deleted]
            projects = [p for p in projects if self._matches(p, filters)]
            order = query.get("order-by", "created")
            for part in reversed(order.split(",")):
                key = part.lstrip("-")
                projects.sort(key=lambda p, k=key: str(p.get(k)), reverse=part.startswith("-"))  # type: ignore[misc]
            total = len(projects)
            page = projects[offset : offset + first]
        end = offset + len(page)
        return json_response(
            {
                "success": True,
                "page_info": _page_info(offset, end, total),
                "data": [self._out(request, p, expand) for p in page],
            }
        )

    def _find(self, request: web.Request) -> dict[str, Any] | None:
        ident = request.match_info["id"]
        if ident in self.deleted:
            return None
        if ident in self.projects:
            return self.projects[ident]
        if self.dataset_size:
            try:
                index = uuid.UUID(ident).int - 1
            except ValueError:
                return None
            if 0 <= index < self.dataset_size:
                return self._synthetic(index)
        return None

    def _not_found(self) -> web.Response:
        return self._error(404, 404, "ERROR_ENTITY_NOT_FOUND", "Entity not found")

    async def get_project(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        project = self._find(request)
        if project is None:
            return self._not_found()
        return json_response({"success": True, "data": self._out(request, project, self._expand(request))})

    def _apply(self, body: dict[str, Any], current: dict[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, str]]]:
        errors: list[dict[str, str]] = []
        project = (
            dict(current)
            if current
            else {
                "description": None,
                "start_date": None,
                "account_id": None,
                "share_mode": 0,
                "project_type_id": PROJECT_TYPE,
                "unit_id": SALES_UNIT,
                "is_favorite": False,
                "completion_rate": 0.0,
                "tags": [],
                "contact_relation_ids": [],
            }
        )

        def err(field: str, message: str) -> None:
            errors.append({"field": field, "message": message})

        for key in body:
            if key in ("status", "completion_rate", "created", "modified", "id", "is_deleted"):
                err(key, f"{key} is read-only")
        for key in ("name", "description", "share_mode"):
            if key in body:
                project[key] = body[key]
        for key in ("start_date", "end_date"):
            if key in body:
                try:
                    project[key] = None if body[key] is None else datetime.strptime(body[key], "%Y-%m-%d").date().isoformat()
                except (TypeError, ValueError):
                    err(key, f"{key} must be a date (YYYY-MM-DD)")
        if "owner_id" in body:
            if body["owner_id"] not in self.clients:
                err("owner_id", "owner_id does not reference an existing Client")
            else:
                project["owner_id"] = body["owner_id"]
        if "account_id" in body:
            if body["account_id"] is not None and body["account_id"] not in self.accounts:
                err("account_id", "account_id does not reference an existing Account")
            else:
                project["account_id"] = body["account_id"]
        if "revenue_goal" in body:
            goal = body["revenue_goal"]
            if not isinstance(goal, dict) or not {"base_value", "currency_id", "value_foreign"} <= set(goal):
                err("revenue_goal", "revenue_goal needs base_value, currency_id and value_foreign")
            elif goal["currency_id"] not in self.currencies:
                err("revenue_goal", "revenue_goal.currency_id does not reference an existing Currency")
            else:
                project["revenue_goal"] = {
                    "base_value": float(goal["base_value"]),
                    "currency_id": goal["currency_id"],
                    "value_foreign": float(goal["value_foreign"]),
                }
        if "contact_relations" in body:
            relations = body["contact_relations"] or []
            bad = [r for r in relations if not isinstance(r, dict) or r.get("contact_id") not in self.contacts]
            if bad:
                err("contact_relations", "contact_relations must reference existing Contacts")
            else:
                project["__relations"] = relations
        if current is None:
            for key in ("name", "end_date", "owner_id", "revenue_goal"):
                if not project.get(key):
                    err(key, f"{key} is required")
        elif "name" in body and not body["name"]:
            err("name", "name is required")
        if project.get("start_date") and project.get("end_date") and project["end_date"] < project["start_date"]:
            err("end_date", "end_date must not be before start_date")
        return project, errors

    def _save_relations(self, project: dict[str, Any]) -> None:
        relations = project.pop("__relations", None)
        if relations is None:
            return
        for rid in project.get("contact_relation_ids", []):
            self.relations.pop(rid, None)
        project["contact_relation_ids"] = [
            self._relation(project["id"], r["contact_id"], bool(r.get("is_primary"))) for r in relations
        ]

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, 117, "ERROR_PARAMETER_INVALID", "Body is not valid JSON")
        if not isinstance(body, dict):
            return self._error(400, 117, "ERROR_PARAMETER_INVALID", "Body must be an object")
        return body

    def _invalid(self, errors: list[dict[str, str]]) -> web.Response:
        # The Error schema has one message: each problem is `<api name>: <why>`.
        return self._error(422, 118, "ERROR_VALIDATION", "; ".join(f"{e['field']}: {e['message']}" for e in errors))

    async def create_project(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        project, errors = self._apply(body, None)
        if errors:
            return self._invalid(errors)
        now = _stamp(datetime.now(UTC))
        project.update(id=str(uuid.uuid4()), created=now, modified=now, revision=1, is_deleted=False, is_delete_protected=False)
        self._save_relations(project)
        self.projects[project["id"]] = project
        # expand is a list/get parameter: a create answers relations as URIs.
        return json_response({"success": True, "data": self._out(request, project, set())}, 201)

    async def update_project(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        current = self._find(request)
        if current is None:
            return self._not_found()
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        project, errors = self._apply(body, current)
        if errors:
            return self._invalid(errors)
        project["modified"] = _stamp(datetime.now(UTC))
        project["revision"] = int(project.get("revision", 1)) + 1
        self._save_relations(project)
        self.projects[project["id"]] = project
        return json_response({"success": True, "data": self._out(request, project, set())})

    async def delete_project(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        project = self._find(request)
        if project is None:
            return self._not_found()
        self.deleted.add(project["id"])
        if project["id"] in self.projects:
            self.projects[project["id"]]["is_deleted"] = True
        return json_response({"success": True, "data": project["id"]})


def build(seed: int = 1, dataset_size: int | None = None) -> PipelinerEmulator:
    """A Pipeliner emulator with seeded sample data."""
    return PipelinerEmulator(seed=seed, dataset_size=dataset_size)


def _cursor(position: int) -> str:
    return base64.b64encode(orjson.dumps([str(position)])).decode()


def _page_info(offset: int, end: int, total: int) -> dict[str, Any]:
    """Pipeliner's `page_info` of a page holding rows `offset` to `end` of `total`."""
    return {
        "start_cursor": _cursor(offset),
        "end_cursor": _cursor(end),
        "has_previous_page": offset > 0,
        "has_next_page": end < total,
    }
