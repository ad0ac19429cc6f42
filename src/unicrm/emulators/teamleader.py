"""Teamleader Focus emulator: the projects-v2 RPC API, its lookups and its OAuth2 token endpoint.

Held to Teamleader's documentation (shared/reference/providers-planhat-teamleader-wethod-
strawblond.md §2), not to unicrm: every call is a POST with a JSON body; `{"data": ...}`
envelopes; `page: {size 1..100, number}`; `projects.create` answers 201 with only
`{"type": "nextgenProject", "id"}`; update and actions answer 204; owners, customers and deals
change only through their idempotent add/remove actions; `projects.close` needs a
`closing_strategy`, `projects.delete` a `delete_strategy`; errors are `{"errors": [{"title",
"status"}]}`; rate-limit headers `X-RateLimit-Limit/-Remaining/-Reset` (an ISO timestamp) on
each response (200 requests per sliding minute are reported; 429s only under a rate-limit
fault); list items without the info-only keys; `fixed_price`/`external_budget` in EUR only
("Currently only EUR is supported"). Checked against the Blueprint in tests/specs/teamleader/.

OAuth2: the authorization-code grant (consent page with Approve / Deny at `GET
/oauth2/authorize`; a code is single use and valid 10 minutes, exchanged at `POST
/oauth2/access_token` with the same redirect URI) and refresh (`POST /oauth2/access_token`, form
or JSON): access tokens live one hour (an expired
one is a 401), refresh tokens are single use (a used one is 400 `invalid_grant`); each refresh
is counted in `/_emulator/stats` as `refreshes`.

`tags.list` (src/02-crm/tags.apib: `page`, `sort` on `tag` asc only, `{data: [{tag}]}`) lists
the tags of contacts and companies; there is no call for a single tag.

Collections sent to `projects.update` replace the old ones whole (Teamleader's general rule);
`custom_fields` are merged by definition id only with `custom_fields_update_strategy: partial`.

Assumptions where the docs are silent: the token's user (the first seeded user) is added as an
owner after the `owner_ids` given on create; `projects.update` refuses the relation keys that
have their own actions (`owner_ids`, `customers`, `deal_ids`) with a 400; a deleted project is
404 everywhere; sorting on a documented field the emulator does not model (costs, margins)
orders by project_key.

With `dataset_size`, projects 1..N are generated on the fly from their project key (nothing
is stored until a write touches them), so a benchmark can page through millions of records.
"""

from __future__ import annotations

import re
import secrets
import time
from bisect import bisect_right, insort
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

from aiohttp import web

from unicrm.emulators.base import AuthorizationCodes, Emulator, json_response

SEEDED_PROJECTS = 36
MAX_PAGE = 100
TOKEN_TTL_S = 3600
CURRENCIES = frozenset(
    (
        *("BAM", "CAD", "CHF", "CLP", "CNY", "COP", "CZK", "DKK", "EUR", "GBP", "INR", "ISK"),
        *("JPY", "MAD", "MXN", "NOK", "PEN", "PLN", "RON", "SEK", "TRY", "USD", "ZAR"),
    )
)
BILLING = ("time_and_materials", "fixed_price", "non_billable")
CLOSING = ("mark_tasks_and_materials_as_done", "none")
DELETING = ("unlink_tasks_and_time_trackings", "delete_tasks_and_time_trackings", "delete_tasks_unlink_time_trackings")
STATUS_FILTERS = ("open", "planned", "running", "overdue", "over_budget", "closed")
SORT_FIELDS = (
    *("amount_billed", "amount_paid", "amount_unbilled", "cost", "customer", "end_date", "external_budget_spent"),
    *("external_budget", "internal_budget", "margin", "price", "project_key", "start_date", "status"),
    *("time_budget", "time_estimated", "time_tracked", "title"),
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
USERS = (("Lien", "Peeters"), ("Jonas", "Maes"), ("Sofie", "Claes"), ("Wout", "Jacobs"), ("Emma", "Willems"))
COMPANIES = (
    "Brouwerij De Kroon",
    "Atelier Noord",
    "Vandaele Logistics",
    "Kaasmakerij Leie",
    "Studio Lumen",
    "Bakkerij Hendrickx",
    "Groep Mertens",
    "Fietsfabriek Gent",
)
CONTACTS = (
    ("An", "Desmet"),
    ("Pieter", "Wouters"),
    ("Nina", "Goossens"),
    ("Tom", "Dubois"),
    ("Lotte", "Smets"),
    ("Bram", "Lambert"),
)
TOPICS = ("Website relaunch", "ERP rollout", "Brand refresh", "Webshop", "Office move", "Data migration")
COLORS = (
    "#00B2B2",
    "#008A8C",
    "#992600",
    "#ED9E00",
    "#D157D3",
    "#A400B2",
    "#0071F2",
    "#004DA6",
    "#64788F",
    "#C0C0C4",
    "#82828C",
    "#1A1C20",
)
CF_DEFINITION = "e5f6a7b8-c9d0-4e1f-2a3b-4c5d6e7f8091"
CF_REGION = "f6a7b8c9-d0e1-4f2a-3b4c-5d6e7f809102"
TODAY = date(2025, 6, 1)


#: money fields of which the Blueprint says "Currently only EUR is supported"
EUR_ONLY = frozenset({"fixed_price", "external_budget"})
#: keys of projects.info that projects.list does not document
INFO_ONLY = (
    "update_rights",
    "purchase_order_number",
    "custom_user_rates",
    "task_external_budget_spent",
    "material_external_budget_spent",
)


def _uuid(kind: int, n: int) -> str:
    """A stable uuid-shaped id per object kind and number."""
    return f"{kind:08x}-{n >> 16 & 0xFFFF:04x}-4{n >> 4 & 0xFFF:03x}-8{n & 0xF:03x}-{n:012x}"


def _money(amount: float | None, currency: str = "EUR") -> dict[str, Any] | None:
    return None if amount is None else {"amount": amount, "currency": currency}


class TeamleaderError(Exception):
    """An error answer: status and title."""

    def __init__(self, status: int, title: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title


def _bad(title: str) -> TeamleaderError:
    return TeamleaderError(400, title)


class TeamleaderEmulator(Emulator):
    """The emulated Teamleader Focus account."""

    name = "teamleader"
    documented_rate_limit = 200  # "the number of requests we allow per sliding minute" (example value)

    # ------------------------------------------------------------------ data
    def reset(self) -> None:
        self.size = SEEDED_PROJECTS if self.dataset_size is None else self.dataset_size
        self.users = {
            _uuid(1, i + 1): {
                "id": _uuid(1, i + 1),
                "first_name": f,
                "last_name": last,
                "email": f"{f.lower()}@example.be",
                "status": "active",
            }
            for i, (f, last) in enumerate(USERS)
        }
        self.companies: dict[str, dict[str, Any]] = {
            _uuid(2, i + 1): {"id": _uuid(2, i + 1), "name": name} for i, name in enumerate(COMPANIES)
        }
        self.contacts: dict[str, dict[str, Any]] = {
            _uuid(3, i + 1): {"id": _uuid(3, i + 1), "first_name": f, "last_name": last} for i, (f, last) in enumerate(CONTACTS)
        }
        self.deals: dict[str, dict[str, Any]] = {
            _uuid(4, i + 1): {"id": _uuid(4, i + 1), "title": f"Deal {i + 1}"} for i in range(10)
        }
        self._enrich_references()
        self.definitions = {
            CF_DEFINITION: {"id": CF_DEFINITION, "context": "project", "type": "single_line", "label": "Sector"},
            CF_REGION: {"id": CF_REGION, "context": "project", "type": "single_line", "label": "Region"},
        }
        #: projects touched by a write (or created), by id; generated ones are derived on the fly
        self.stored: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        #: keys of deleted generated projects (1..size), sorted, to find a page's first key
        self.deleted_keys: list[int] = []
        self.next_key = self.size
        self.me = _uuid(1, 1)
        self.client = ("teamleader-client", "teamleader-secret")
        # Kept across resets: the routes are bound to this object.
        if not hasattr(self, "codes"):
            self.codes = AuthorizationCodes("Teamleader Focus", {self.client[0]: self.client[1]})
        self.tokens: dict[str, float] = {}
        self.refresh_tokens: set[str] = {"teamleader-refresh-1"}

    def _generated(self, key: int) -> dict[str, Any]:
        """Project `key` of the synthetic dataset, a pure function of the key and seed."""
        h = (key * 2654435761 + self.seed * 40503) & 0xFFFFFFFF
        start = TODAY + timedelta(days=(h % 240) - 160)
        billing = BILLING[h % 3]
        budget = float(1000 + (h >> 3) % 40 * 500)
        customers = [{"type": "company", "id": _uuid(2, h % len(COMPANIES) + 1)}]
        if h % 4 == 0:
            customers.append({"type": "contact", "id": _uuid(3, h % len(CONTACTS) + 1)})
        return {
            "id": _uuid(5, key),
            "project_key": key,
            "title": f"{TOPICS[h % len(TOPICS)]} {COMPANIES[h % len(COMPANIES)]} #{key}",
            "description": f"Sample project {key}" if h % 3 else None,
            "status": "closed" if h % 6 == 0 else "open",
            "update_rights": "owners_and_assignees",
            "billing_method": billing,
            "time_budget": {"value": 3600 * (h % 80), "unit": "seconds"},
            "time_tracked": {"value": 1800 * (h % 50), "unit": "seconds"},
            "external_budget": _money(budget) if billing == "time_and_materials" else None,
            "internal_budget": _money(budget / 2),
            "fixed_price": _money(budget) if billing == "fixed_price" else None,
            "price": _money(budget * 0.8) if billing != "non_billable" else None,
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=30 + h % 120)).isoformat() if h % 5 else None,
            "purchase_order_number": f"PO-{10000 + key}" if h % 2 else None,
            "company_entity": {"type": "department", "id": _uuid(6, 1)},
            "owners": [{"type": "user", "id": _uuid(1, h % len(USERS) + 1)}],
            "color": COLORS[h % len(COLORS)],
            "assignees": [],
            "customers": customers,
            "deals": [{"type": "deal", "id": _uuid(4, h % 10 + 1)}] if h % 3 == 0 else [],
            "quotations": [],
            "custom_user_rates": [],
            "custom_fields": [{"definition": {"type": "customFieldDefinition", "id": CF_DEFINITION}, "value": "Retail"}]
            if h % 2 == 0
            else [],
        }

    def _key_of(self, project_id: str) -> int | None:
        prefix = _uuid(5, 0)[:9]
        if not project_id.startswith(prefix):
            return None
        try:
            return int(project_id.rsplit("-", 1)[1], 16)
        except (ValueError, IndexError):
            return None

    def _enrich_references(self) -> None:
        """The rest of each user, company, contact and deal in the shape of Teamleader's `*.info`
        answers (same ids and names as before: projects point at them)."""
        start = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)
        user_ids, company_ids, contact_ids = list(self.users), list(self.companies), list(self.contacts)

        def ts(days: float) -> str:
            return (start + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S+00:00")

        for i, user in enumerate(self.users.values()):
            user.update(language="nl", function=("Project manager", "Consultant", "Account manager")[i % 3])
        for i, company in enumerate(self.companies.values()):
            slug = company["name"].lower().split()[-1]
            company.update(
                business_type=None,
                vat_number=f"BE0{400000000 + i}",
                emails=[{"type": "primary", "email": f"info@{slug}.example"}],
                telephones=[{"type": "phone", "number": f"+32 9 555 01 {i:02d}"}],
                website=f"https://www.{slug}.example",
                addresses=[
                    {
                        "type": "invoicing",
                        "address": {
                            "line_1": f"Kouter {i + 1}",
                            "postal_code": "9000",
                            "city": "Gent",
                            "country": "BE",
                            "area_level_two": None,
                        },
                    }
                ],
                responsible_user={"type": "user", "id": user_ids[i % len(user_ids)]},
                tags=[("customer", "prospect", "supplier")[i % 3], *(["vip"] if i % 4 == 0 else [])],
                added_at=ts(i),
                updated_at=ts(10 + 1.5 * i),
                web_url=f"https://focus.teamleader.eu/company_detail.php?id={company['id']}",
            )
        for i, contact in enumerate(self.contacts.values()):
            contact.update(
                emails=[{"type": "primary", "email": f"{contact['first_name'].lower()}@example.be"}],
                telephones=[{"type": "mobile", "number": f"+32 470 55 01 {i:02d}"}],
                addresses=[],
                companies=[
                    {
                        "position": ("Zaakvoerder", "Aankoper", "IT")[i % 3],
                        "decision_maker": i % 3 == 0,
                        "company": {"type": "company", "id": company_ids[i % len(company_ids)]},
                    }
                ],
                tags=["newsletter"] if i % 2 == 0 else [],
                added_at=ts(20 + i),
                updated_at=ts(30 + 2 * i),
            )
        self.phases: dict[str, dict[str, Any]] = {
            _uuid(6, i + 1): {
                "id": _uuid(6, i + 1),
                "name": name,
                "deal_pipeline": {"type": "dealPipeline", "id": _uuid(7, 1)},
                "actions": [],
                "requires_attention_after": {"amount": 7, "unit": "days"},
                "probability": probability,
            }
            for i, (name, probability) in enumerate((("New", 0.1), ("Proposal", 0.4), ("Negotiation", 0.7)))
        }
        for i, deal in enumerate(self.deals.values()):
            deal.update(
                summary=f"Sample deal {i + 1}" if i % 2 else None,
                reference=f"{i + 1}",
                status=("open", "won", "lost")[i % 3],
                lead={
                    "customer": {"type": "company", "id": company_ids[i % len(company_ids)]},
                    "contact_person": {"type": "contact", "id": contact_ids[i % len(contact_ids)]},
                },
                estimated_value={"amount": 1000.0 * (i + 1), "currency": "EUR"},
                estimated_closing_date=(start + timedelta(days=90 + i)).date().isoformat(),
                estimated_probability=0.5,
                current_phase={"type": "dealPhase", "id": _uuid(6, 1 + i % 3)},
                responsible_user={"type": "user", "id": user_ids[i % len(user_ids)]},
                closed_at=None,
                created_at=ts(40 + i),
                updated_at=ts(50 + i),
                web_url=f"https://focus.teamleader.eu/deal_detail.php?id={deal['id']}",
            )

    def _info(
        self, table: Callable[[], dict[str, dict[str, Any]]], kind: str
    ) -> Callable[[dict[str, Any]], Awaitable[web.Response]]:
        """`<kind>s.info`: one record by `id`; 404 when there is none."""

        async def run(body: dict[str, Any]) -> web.Response:
            ident = body.get("id")
            if not isinstance(ident, str) or not ident:
                raise _bad("id is required")
            record = table().get(ident)
            if record is None:
                raise TeamleaderError(404, f"{kind} {ident} not found")
            return json_response({"data": record})

        return run

    def _find(self, project_id: Any, for_write: bool = True) -> dict[str, Any]:
        if not isinstance(project_id, str) or not project_id:
            raise _bad("id is required")
        if project_id in self.deleted:
            raise TeamleaderError(404, f"Project {project_id} not found")
        if project_id in self.stored:
            return self.stored[project_id]
        key = self._key_of(project_id)
        if key is None or not 1 <= key <= self.size or _uuid(5, key) != project_id:
            raise TeamleaderError(404, f"Project {project_id} not found")
        if not for_write:
            return self._generated(key)
        # A write changes it: keep it from now on.
        self.stored[project_id] = self._generated(key)
        return self.stored[project_id]

    def _all(self, start: int = 0) -> Iterator[dict[str, Any]]:
        """Every live project in project_key order, from the `start`-th (0-based) on.

        Only the projects from `start` on are built, so page 50,000 of a million costs what
        page 1 costs.
        """
        deleted = self.deleted_keys
        # The least key k with k - #(deleted keys <= k) == start + 1 is the start-th live one.
        first = start + 1
        while (nxt := start + 1 + bisect_right(deleted, first)) != first:
            first = nxt
        for key in range(first, self.size + 1):
            pid = _uuid(5, key)
            if pid in self.deleted:
                continue
            yield self.stored.get(pid) or self._generated(key)
        skip = max(0, start - (self.size - len(deleted)))
        created = sorted((p for p in self.stored.values() if p["project_key"] > self.size), key=lambda p: p["project_key"])
        yield from [p for p in created if p["id"] not in self.deleted][skip:]

    def _live_count(self) -> int:
        created = sum(1 for p in self.stored.values() if p["project_key"] > self.size and p["id"] not in self.deleted)
        return self.size - len(self.deleted_keys) + created

    # ------------------------------------------------------------------ wiring
    def context(self, base_url: str) -> dict[str, Any]:
        access = "teamleader-access-" + secrets.token_hex(6)
        self.tokens[access] = time.time() + TOKEN_TTL_S
        return {
            "base_url": base_url,
            "access_token": access,
            "refresh_token": "teamleader-refresh-1",
            "client_id": self.client[0],
            "client_secret": self.client[1],
            "expires_at": int(self.tokens[access]),
            "token_url": base_url + "/oauth2/access_token",
        }

    def issue_tokens(self, access_ttl_s: float = TOKEN_TTL_S) -> tuple[str, str]:
        """A fresh access/refresh pair (tests use it to make accounts with an expired token)."""
        access = "teamleader-access-" + secrets.token_hex(6)
        refresh = "teamleader-refresh-" + secrets.token_hex(6)
        self.tokens[access] = time.time() + access_ttl_s
        self.refresh_tokens.add(refresh)
        return access, refresh

    def expire(self, access_token: str) -> None:
        """Make an access token expire now (as an hour passing would)."""
        if access_token in self.tokens:
            self.tokens[access_token] = time.time() - 1

    def oauth_client(self) -> tuple[str, str] | None:
        return self.client

    def error_response(self, status: int, message: str) -> web.Response:
        return json_response({"errors": [{"title": message, "status": status}]}, status)

    def rate_limited_response(self, retry_after: int, headers: dict[str, str]) -> web.Response:
        return json_response({"errors": [{"title": "Too Many Requests", "status": 429}]}, 429, headers)

    def rate_limit_headers(self, limit: int, remaining: int, reset_at: float) -> dict[str, str]:
        # The documented form: `2021-06-15T10:51:23.035+0100` (milliseconds, basic offset).
        moment = datetime.fromtimestamp(reset_at, UTC)
        reset = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": reset}

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/oauth2/authorize", self.codes.consent)
        router.add_post("/oauth2/authorize", self.codes.decide)
        router.add_post("/oauth2/access_token", self.access_token)
        actions: dict[str, Callable[[dict[str, Any]], Awaitable[web.Response]]] = {
            "/projects-v2/projects.list": self.projects_list,
            "/projects-v2/projects.info": self.projects_info,
            "/projects-v2/projects.create": self.projects_create,
            "/projects-v2/projects.update": self.projects_update,
            "/projects-v2/projects.close": self.projects_close,
            "/projects-v2/projects.reopen": self.projects_reopen,
            "/projects-v2/projects.delete": self.projects_delete,
            "/projects-v2/projects.addOwner": self._relation("owners", self._owner_entry, add=True),
            "/projects-v2/projects.removeOwner": self._relation("owners", self._owner_entry, add=False),
            "/projects-v2/projects.addCustomer": self._relation("customers", self._customer_entry, add=True),
            "/projects-v2/projects.removeCustomer": self._relation("customers", self._customer_entry, add=False),
            "/projects-v2/projects.addDeal": self._relation("deals", self._deal_entry, add=True),
            "/projects-v2/projects.removeDeal": self._relation("deals", self._deal_entry, add=False),
            "/users.list": self._lister(lambda: self.users),
            "/companies.list": self._lister(lambda: self.companies),
            "/contacts.list": self._lister(lambda: self.contacts),
            "/deals.list": self._lister(lambda: self.deals),
            "/users.info": self._info(lambda: self.users, "User"),
            "/companies.info": self._info(lambda: self.companies, "Company"),
            "/contacts.info": self._info(lambda: self.contacts, "Contact"),
            "/deals.info": self._info(lambda: self.deals, "Deal"),
            "/dealPhases.list": self._lister(lambda: self.phases),
            "/dealPhases.info": self._info(lambda: self.phases, "Deal phase"),
            "/tags.list": self.tags_list,
            "/customFieldDefinitions.list": self._lister(lambda: self.definitions),
            "/users.me": self.users_me,
        }
        for path, handler in actions.items():
            router.add_post(path, self._rpc(handler))

    def _rpc(
        self, handler: Callable[[dict[str, Any]], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            header = request.headers.get("Authorization", "")
            token = header[7:] if header.startswith("Bearer ") else ""
            if self.tokens.get(token, 0) <= time.time():
                return self.error_response(401, "Access token is invalid or expired")
            raw = await request.read()
            try:
                body = await request.json() if raw else {}
            except ValueError:
                return self.error_response(400, "The request body is not valid JSON")
            if not isinstance(body, dict):
                return self.error_response(400, "The request body must be a JSON object")
            try:
                return await handler(body)
            except TeamleaderError as exc:
                return self.error_response(exc.status, exc.title)

        return run

    # ------------------------------------------------------------------ oauth2
    async def access_token(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            data = {str(k): str(v) for k, v in (await request.json()).items()}
        else:
            data = {str(k): str(v) for k, v in (await request.post()).items()}
        self.count("token_requests")
        if (data.get("client_id"), data.get("client_secret")) != self.client:
            return json_response({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
        if data.get("grant_type") == "authorization_code":
            refused = self.codes.redeem(data)
            if refused:
                return json_response({"error": refused, "error_description": "The authorization code is invalid."}, 400)
            self.count("code_exchanges")
            access, new_refresh = self.issue_tokens()
            return json_response(
                {"token_type": "Bearer", "expires_in": TOKEN_TTL_S, "access_token": access, "refresh_token": new_refresh}
            )
        if data.get("grant_type") != "refresh_token":
            return json_response({"error": "unsupported_grant_type"}, 400)
        refresh = data.get("refresh_token", "")
        if refresh not in self.refresh_tokens:
            return json_response({"error": "invalid_grant", "error_description": "The refresh token is invalid."}, 400)
        # Single use: the old refresh token dies with this answer.
        self.refresh_tokens.discard(refresh)
        access, new_refresh = self.issue_tokens()
        self.count("refreshes")
        return json_response(
            {"token_type": "Bearer", "expires_in": TOKEN_TTL_S, "access_token": access, "refresh_token": new_refresh}
        )

    # ------------------------------------------------------------------ lookups
    def _lister(self, table: Callable[[], dict[str, dict[str, Any]]]) -> Callable[[dict[str, Any]], Awaitable[web.Response]]:
        async def run(body: dict[str, Any]) -> web.Response:
            size, number = self._page(body)
            rows = list(table().values())
            return json_response({"data": rows[(number - 1) * size : number * size]})

        return run

    async def tags_list(self, body: dict[str, Any]) -> web.Response:
        """`tags.list`: the tags on contacts and companies, `{data: [{tag}]}`, sorted by tag (asc only)."""
        size, number = self._page(body)
        for rule in body.get("sort") or ():
            if not isinstance(rule, dict) or rule.get("field") != "tag" or rule.get("order", "asc") != "asc":
                raise _bad("sort supports only field tag, order asc")
        names = sorted({t for table in (self.companies, self.contacts) for r in table.values() for t in r.get("tags") or ()})
        return json_response({"data": [{"tag": t} for t in names[(number - 1) * size : number * size]]})

    async def users_me(self, body: dict[str, Any]) -> web.Response:
        return json_response({"data": self.users[self.me]})

    # ------------------------------------------------------------------ projects
    def _page(self, body: dict[str, Any]) -> tuple[int, int]:
        page = body.get("page") or {}
        if not isinstance(page, dict):
            raise _bad("page must be an object")
        size, number = page.get("size", 20), page.get("number", 1)
        if not isinstance(size, int) or not 1 <= size <= MAX_PAGE:
            raise _bad(f"page.size must be an integer between 1 and {MAX_PAGE}")
        if not isinstance(number, int) or number < 1:
            raise _bad("page.number must be a positive integer")
        return size, number

    def _matches(self, project: dict[str, Any], flt: dict[str, Any]) -> bool:
        if "ids" in flt and project["id"] not in flt["ids"]:
            return False
        if flt.get("deal_ids") and not {d["id"] for d in project["deals"]} & set(flt["deal_ids"]):
            return False
        if flt.get("customers"):
            wanted = {(c.get("type"), c.get("id")) for c in flt["customers"] if isinstance(c, dict)}
            if not {(c["type"], c["id"]) for c in project["customers"]} & wanted:
                return False
        if flt.get("term"):
            haystack = f"{project['project_key']} {project['title']}".lower()
            if not all(t in haystack for t in str(flt["term"]).lower().split()):
                return False
        status = flt.get("status")
        if status:
            today = TODAY.isoformat()
            start, end = project.get("start_date") or "", project.get("end_date") or ""
            is_open = project["status"] == "open"
            price = (project.get("price") or {}).get("amount") or 0
            budget = (project.get("external_budget") or {}).get("amount")
            checks = {
                "open": is_open,
                "closed": not is_open,
                "planned": is_open and bool(start) and start > today,
                "running": is_open and bool(start) and start <= today and (not end or end >= today),
                "overdue": is_open and bool(end) and end < today,
                "over_budget": budget is not None and price > budget,
            }
            if not checks[status]:
                return False
        return True

    def _out(self, project: dict[str, Any], custom_fields: bool, listed: bool = False) -> dict[str, Any]:
        out = dict(project)
        if not custom_fields:
            out.pop("custom_fields", None)
        if listed:
            # projects.list documents fewer keys than projects.info.
            for key in INFO_ONLY:
                out.pop(key, None)
        return out

    async def projects_list(self, body: dict[str, Any]) -> web.Response:
        size, number = self._page(body)
        flt = body.get("filter") or {}
        if not isinstance(flt, dict):
            raise _bad("filter must be an object")
        if flt.get("status") is not None and flt["status"] not in STATUS_FILTERS:
            raise _bad(f"filter.status must be one of {', '.join(STATUS_FILTERS)}")
        includes = str(body.get("includes") or "").split(",")
        sort = body.get("sort") or [{"field": "project_key", "order": "desc"}]
        if not isinstance(sort, list) or not all(isinstance(s, dict) and s.get("field") in SORT_FIELDS for s in sort):
            raise _bad(f"sort must be a list of {{field, order}} with field one of {', '.join(SORT_FIELDS)}")
        first = sort[0]
        reverse = first.get("order", "asc") == "desc"
        start = (number - 1) * size
        if not flt and first["field"] == "project_key" and not reverse:
            # The common paging case stays lazy, so a synthetic dataset of millions is cheap.
            page: list[dict[str, Any]] = list(islice(self._all(start), size))
            matches: int | None = None
        else:
            rows = [p for p in self._all() if self._matches(p, flt)]

            def sort_key(p: dict[str, Any]) -> Any:
                value = p.get(first["field"])
                if isinstance(value, dict):  # money {amount, currency} or duration {value, unit}
                    value = value.get("amount", value.get("value"))
                return (value is None, value if value is not None else "")

            rows.sort(key=sort_key, reverse=reverse)
            page, matches = rows[start : start + size], len(rows)
        answer: dict[str, Any] = {"data": [self._out(p, "custom_fields" in includes, listed=True) for p in page]}
        if "pagination" in includes:
            total = matches if matches is not None else self._live_count()
            answer["meta"] = {"page": {"size": size, "number": number}, "matches": total}
        return json_response(answer)

    async def projects_info(self, body: dict[str, Any]) -> web.Response:
        return json_response({"data": self._out(self._find(body.get("id"), for_write=False), True)})

    def _check_money(self, key: str, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("amount"), int | float)
            or isinstance(value.get("amount"), bool)
        ):
            raise _bad(f"{key} must be an object with a numeric amount and a currency")
        if value.get("currency") not in CURRENCIES:
            raise _bad(f"{key}.currency must be one of {', '.join(sorted(CURRENCIES))}")
        if key in EUR_ONLY and value["currency"] != "EUR":
            raise _bad(f"{key}.currency must be EUR: currently only EUR is supported")
        if not 0 <= value["amount"] < 1e11:
            raise _bad(f"{key}.amount must be at least 0 and below 100000000000")
        return {"amount": value["amount"], "currency": value["currency"]}

    def _check_date(self, key: str, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _DATE.match(value):
            raise _bad(f"{key} must be a date formatted as YYYY-MM-DD")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise _bad(f"{key} is not a valid date") from None
        return value

    def _check_custom_fields(self, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise _bad("custom_fields must be a list of {id, value}")
        out = []
        for item in value:
            if not isinstance(item, dict) or item.get("id") not in self.definitions:
                raise _bad(
                    f"custom_fields: unknown custom field definition {item.get('id') if isinstance(item, dict) else item!r}"
                )
            out.append({"definition": {"type": "customFieldDefinition", "id": item["id"]}, "value": item.get("value")})
        return out

    def _apply(self, project: dict[str, Any], body: dict[str, Any]) -> None:
        """The fields create and update share."""
        if "title" in body:
            if not isinstance(body["title"], str) or not body["title"].strip():
                raise _bad("title must not be empty")
            project["title"] = body["title"]
        if "description" in body:
            if body["description"] is not None and not isinstance(body["description"], str):
                raise _bad("description must be a string")
            project["description"] = body["description"]
        for key in ("external_budget", "internal_budget", "fixed_price"):
            if key in body:
                project[key] = self._check_money(key, body[key])
        for key in ("start_date", "end_date"):
            if key in body:
                project[key] = self._check_date(key, body[key])
        if project.get("start_date") and project.get("end_date") and project["start_date"] > project["end_date"]:
            raise _bad("end_date must not be before start_date")
        if "purchase_order_number" in body:
            project["purchase_order_number"] = body["purchase_order_number"]
        if "color" in body:
            if body["color"] not in COLORS:
                raise _bad(f"color must be one of {', '.join(COLORS)}")
            project["color"] = body["color"]
        if "custom_fields" in body:
            # Collections in an update replace the old ones whole, unless the custom fields
            # are sent with custom_fields_update_strategy=partial (then merged by definition).
            strategy = body.get("custom_fields_update_strategy", "replace")
            if strategy not in ("replace", "partial"):
                raise _bad("custom_fields_update_strategy must be replace or partial")
            rows = self._check_custom_fields(body["custom_fields"])
            merged = {c["definition"]["id"]: c for c in project.get("custom_fields") or []} if strategy == "partial" else {}
            for row in rows:
                merged[row["definition"]["id"]] = row
            project["custom_fields"] = list(merged.values())
        if project.get("billing_method") == "fixed_price" and project.get("fixed_price"):
            project["price"] = dict(project["fixed_price"])
        elif project.get("billing_method") == "non_billable":
            project["price"] = None

    def _check_user(self, ident: Any) -> str:
        if ident not in self.users:
            raise _bad(f"User {ident} does not exist")
        return str(ident)

    def _check_customer(self, customer: Any) -> dict[str, str]:
        if not isinstance(customer, dict) or customer.get("type") not in ("company", "contact"):
            raise _bad("customer must be an object with type company or contact and an id")
        table = self.companies if customer["type"] == "company" else self.contacts
        if customer.get("id") not in table:
            raise _bad(f"{customer['type'].capitalize()} {customer.get('id')} does not exist")
        return {"type": customer["type"], "id": customer["id"]}

    def _check_deal(self, ident: Any) -> str:
        if ident not in self.deals:
            raise _bad(f"Deal {ident} does not exist")
        return str(ident)

    async def projects_create(self, body: dict[str, Any]) -> web.Response:
        if not isinstance(body.get("title"), str) or not body["title"].strip():
            raise _bad("title is required")
        billing = body.get("billing_method", "time_and_materials")
        if billing not in BILLING:
            raise _bad(f"billing_method must be one of {', '.join(BILLING)}")
        owners = [self._check_user(u) for u in body.get("owner_ids") or []]
        if self.me not in owners:
            owners.append(self.me)  # the creator is always an owner
        self.next_key += 1
        key = self.next_key
        project: dict[str, Any] = {
            "id": _uuid(5, key),
            "project_key": key,
            "title": "",
            "description": None,
            "status": "open",
            "update_rights": "owners_and_assignees",
            "billing_method": billing,
            "time_budget": None,
            "time_tracked": {"value": 0, "unit": "seconds"},
            "external_budget": None,
            "internal_budget": None,
            "fixed_price": None,
            "price": None,
            "start_date": None,
            "end_date": None,
            "purchase_order_number": None,
            "company_entity": {"type": "department", "id": _uuid(6, 1)},
            "owners": [{"type": "user", "id": u} for u in owners],
            "color": COLORS[0],
            "assignees": [],
            "customers": [self._check_customer(c) for c in body.get("customers") or []],
            "deals": [{"type": "deal", "id": self._check_deal(d)} for d in body.get("deal_ids") or []],
            "quotations": [],
            "custom_user_rates": [],
            "custom_fields": [],
        }
        self._apply(project, body)
        if billing != "time_and_materials" and project["external_budget"] is not None:
            raise _bad("external_budget is only available for time_and_materials projects")
        self.stored[project["id"]] = project
        return json_response({"data": {"type": "nextgenProject", "id": project["id"]}}, 201)

    async def projects_update(self, body: dict[str, Any]) -> web.Response:
        project = self._find(body.get("id"))
        for key, use in (
            ("owner_ids", "addOwner/removeOwner"),
            ("customers", "addCustomer/removeCustomer"),
            ("deal_ids", "addDeal/removeDeal"),
        ):
            if key in body:
                raise _bad(f"{key} cannot be updated with projects.update; use projects.{use}")
        if "billing_method" in body:
            method = body["billing_method"]
            value = method.get("value") if isinstance(method, dict) else None
            if value not in BILLING:
                raise _bad(f"billing_method must be an object {{value, update_strategy}} with value one of {', '.join(BILLING)}")
            project["billing_method"] = value
        candidate = dict(project)
        self._apply(candidate, body)
        project.update(candidate)
        return web.Response(status=204)

    async def projects_close(self, body: dict[str, Any]) -> web.Response:
        project = self._find(body.get("id"))
        if body.get("closing_strategy") not in CLOSING:
            raise _bad(f"closing_strategy is required: one of {', '.join(CLOSING)}")
        project["status"] = "closed"
        return web.Response(status=204)

    async def projects_reopen(self, body: dict[str, Any]) -> web.Response:
        self._find(body.get("id"))["status"] = "open"
        return web.Response(status=204)

    async def projects_delete(self, body: dict[str, Any]) -> web.Response:
        project = self._find(body.get("id"))
        if body.get("delete_strategy") not in DELETING:
            raise _bad(f"delete_strategy is required: one of {', '.join(DELETING)}")
        self.deleted.add(project["id"])
        if project["project_key"] <= self.size:
            insort(self.deleted_keys, project["project_key"])
        self.stored.pop(project["id"], None)
        self.count("deletes:" + str(body["delete_strategy"]))
        return web.Response(status=204)

    def _relation(
        self, collection: str, entry_of: Callable[[dict[str, Any]], dict[str, Any]], add: bool
    ) -> Callable[[dict[str, Any]], Awaitable[web.Response]]:
        """projects.add<X> / remove<X>: idempotent, 204; `entry_of` checks the reference."""

        async def run(body: dict[str, Any]) -> web.Response:
            project, entry = self._find(body.get("id")), entry_of(body)
            if not add:
                project[collection] = [e for e in project[collection] if e != entry]
            elif entry not in project[collection]:
                project[collection] = [*project[collection], entry]
            return web.Response(status=204)

        return run

    def _owner_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"type": "user", "id": self._check_user(body.get("user_id"))}

    def _customer_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._check_customer(body.get("customer"))

    def _deal_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"type": "deal", "id": self._check_deal(body.get("deal_id"))}


def build(seed: int = 1, dataset_size: int | None = None) -> TeamleaderEmulator:
    """A Teamleader Focus emulator with seeded sample data."""
    return TeamleaderEmulator(seed=seed, dataset_size=dataset_size)
