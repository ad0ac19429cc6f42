"""Capsule CRM v2 emulator: projects (`/kases`) and what they refer to.

Held to Capsule's documentation (shared/reference/providers-capsule-insightly-pipeliner.md §1):
Bearer auth with 401 + `WWW-Authenticate`; OAuth2: the authorization-code grant (consent page
with Approve / Deny at `GET /oauth/authorise`, codes exchanged once at `POST /oauth/token`) and
refresh at the same endpoint (rotating the refresh token); `page`/`perPage` (1–100, default 50) with an RFC 5988 `Link` header; `since`;
`embed=tags,fields`; `{"kase": ...}` envelopes; 201 + `Location` on create; partial `PUT`;
204 on delete; 422 `{"message": "Validation Failed", "errors": [...]}`; 404
`{"message": "Could not find resource"}`; `X-RateLimit-*` headers (reset as epoch seconds) and
429 `{"error": "rate limit reached"}` without `Retry-After`.

Assumptions where the docs are silent: access tokens issued here live one hour; the seeded
account holds a personal access token plus an OAuth2 refresh token so both flows can be tested.
"""

from __future__ import annotations

import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from unicrm.emulators.base import AuthorizationCodes, Emulator, json_response

BASE = "/api/v2"
ORGS = (
    "Harbor Lane Bakery",
    "Nordvik Logistics",
    "Alpine Dairy",
    "Blue Fern Studio",
    "Copperleaf Hotels",
    "Delta Ports",
    "Evergreen Schools",
    "Foxglove Pharma",
)
PEOPLE = (("Ana", "Lopez"), ("Ben", "Okafor"), ("Chloe", "Martin"), ("Dev", "Patel"), ("Eva", "Schmidt"), ("Finn", "Larsen"))
USERS = ((318, "mreyes", "Maria Reyes"), (319, "jkim", "Jae Kim"), (320, "tberg", "Tove Berg"))
TAGS = ("Retail", "Priority", "Renewal", "Pilot")
FIELD_DEFS = ((311, "PO number", "text"), (312, "Budget", "number"))
STATUSES = ("OPEN", "CLOSED")


def _iso(moment: datetime) -> str:
    # isoformat() is several times cheaper than strftime, which matters when the emulator
    # generates a million records for the streaming benchmark.
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


class CapsuleEmulator(Emulator):
    name = "capsule"
    base_path = BASE

    def reset(self) -> None:
        rng = random.Random(self.seed)
        self.users = {uid: {"id": uid, "username": u, "name": n} for uid, u, n in USERS}
        self.teams = {2: {"id": 2, "name": "Delivery"}}
        self._seed_records()
        self.field_defs = {fid: {"id": fid, "name": n, "type": t} for fid, n, t in FIELD_DEFS}
        self.kases: dict[int, dict[str, Any]] = {}
        self.extra_parties: dict[int, list[int]] = {}
        self.next_id = 4800
        self.next_row = 99000
        base = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
        party_ids = list(self.parties)
        for i in range(40):
            created = base + timedelta(days=i * 3, minutes=i * 7)
            kid = self._new_id()
            owner = self.users[USERS[i % len(USERS)][0]]
            kase: dict[str, Any] = {
                "id": kid,
                "party": self._party_ref(party_ids[i % len(party_ids)]),
                "owner": dict(owner) if i % 7 else None,
                "team": dict(self.teams[2]) if i % 7 == 0 else None,
                "status": "CLOSED" if i % 5 == 0 else "OPEN",
                "opportunity": dict(self.opportunities[90200 + i % 6]) if i % 3 == 0 else None,
                "stage": dict(self.stages[150 + i % 3]),
                "createdAt": _iso(created),
                "updatedAt": _iso(created + timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23))),
                "expectedCloseOn": (created + timedelta(days=60)).date().isoformat() if i % 4 else None,
                "closedOn": (created + timedelta(days=30)).date().isoformat() if i % 5 == 0 else None,
                "lastContactedAt": _iso(created + timedelta(days=2)) if i % 2 else None,
                "name": f"{['Till installation', 'Network upgrade', 'Staff training', 'Website refresh'][i % 4]} #{i + 1}",
                "description": f"Sample project {i + 1}" if i % 3 else None,
                "tags": [dict(self.tags[5500 + i % len(TAGS)])] if i % 2 == 0 else [],
                "fields": [self._field_row(311, f"PO-2025-{100 + i}")] if i % 3 == 0 else [],
            }
            self.kases[kid] = kase
        self.valid_tokens = {"capsule-personal-token", "capsule-oauth-access"}
        self.token_expiry: dict[str, float] = {}
        self.refresh_tokens = {"capsule-refresh-1"}
        self.client = ("capsule-client", "capsule-secret")
        # Kept across resets: the routes are bound to this object.
        if not hasattr(self, "codes"):
            self.codes = AuthorizationCodes("Capsule CRM", {self.client[0]: self.client[1]})

    def _seed_records(self) -> None:
        """What projects point at: parties (organisations and people), opportunities, stages, tags.

        Full records in the shapes of Capsule's Party, Opportunity, Stage and Tag models, so the
        unified users/accounts/contacts/opportunities/stages/tags routes read what projects name.
        """
        users = [self.users[u[0]] for u in USERS]
        start = datetime(2024, 11, 4, 8, 30, tzinfo=UTC)
        self.users_full: dict[int, dict[str, Any]] = {}
        for i, (uid, username, name) in enumerate(USERS):
            # The User model of Capsule's /users docs (its example shows the user party inline).
            first, _, last = name.partition(" ")
            self.users_full[uid] = {
                "id": uid,
                "locale": "en_GB",
                "currency": "GBP",
                "status": "ACTIVE",
                "party": {
                    "id": 6000 + i,
                    "type": "person",
                    "firstName": first,
                    "lastName": last,
                    "pictureURL": f"https://facehub.appspot.com/default/person?text={first[0]}{last[0]}&size=100",
                },
                "username": username,
                "timezone": "Europe/London",
                "lastLoginAt": _iso(start + timedelta(days=20 + i, hours=i)),
                "name": name,
                "taskReminder": i % 2 == 0,
            }
        self.parties: dict[int, dict[str, Any]] = {}
        for i, org in enumerate(ORGS):
            slug = org.lower().replace(" ", "")
            self.parties[77000 + i] = {
                "id": 77000 + i,
                "type": "organisation",
                "name": org,
                "about": f"{org} is a sample organisation" if i % 2 == 0 else None,
                "owner": dict(users[i % len(users)]),
                "team": None,
                "createdAt": _iso(start + timedelta(days=i)),
                "updatedAt": _iso(start + timedelta(days=i + 10)),
                "lastContactedAt": _iso(start + timedelta(days=i + 3)) if i % 3 else None,
                "addresses": [
                    {
                        "id": 12000 + i,
                        "type": "Office",
                        "street": f"{10 + i} Market Street",
                        "city": "Manchester",
                        "state": None,
                        "country": "United Kingdom",
                        "zip": f"M{i + 1} 1AA",
                    }
                ],
                "phoneNumbers": [{"id": 13000 + i, "type": "Work", "number": f"+44 161 555 01{i:02d}"}],
                "websites": [
                    {
                        "id": 14000 + i,
                        "type": None,
                        "service": "URL",
                        "address": f"www.{slug}.example",
                        "url": f"http://www.{slug}.example",
                    }
                ],
                "emailAddresses": [{"id": 15000 + i, "type": "Work", "address": f"hello@{slug}.example"}],
                "pictureURL": "https://capsulecrm.com/theme/default/images/org_avatar_70.png",
                "tags": [],
                "fields": [],
            }
        for i, (first, last) in enumerate(PEOPLE):
            org_id = 77000 + i % len(ORGS)
            organisation = self.parties[org_id]
            self.parties[5000 + i] = {
                "id": 5000 + i,
                "type": "person",
                "title": None,
                "firstName": first,
                "lastName": last,
                "jobTitle": ("Operations Manager", "Buyer", "Director")[i % 3],
                "organisation": {"id": org_id, "name": organisation["name"], "pictureURL": organisation["pictureURL"]},
                "about": None,
                "owner": dict(users[i % len(users)]),
                "team": None,
                "createdAt": _iso(start + timedelta(days=20 + i)),
                "updatedAt": _iso(start + timedelta(days=30 + i)),
                "lastContactedAt": None,
                "addresses": [],
                "phoneNumbers": [{"id": 13100 + i, "type": "Mobile", "number": f"+44 7700 900{i:03d}"}],
                "websites": [],
                "emailAddresses": [{"id": 15100 + i, "type": "Work", "address": f"{first.lower()}@example.com"}],
                "pictureURL": "https://capsulecrm.com/theme/default/images/person_avatar_70.png",
                "tags": [],
                "fields": [],
            }
        self.milestones = {40 + i: {"id": 40 + i, "name": n} for i, n in enumerate(("New", "Proposal", "Won", "Lost"))}
        opp_names = (
            "Till replacement 2025",
            "Fleet tracking",
            "Cheese cave sensors",
            "Studio rebrand",
            "Hotel Wi-Fi",
            "Port cranes",
        )
        self.opportunities: dict[int, dict[str, Any]] = {}
        self.opportunities_full: dict[int, dict[str, Any]] = {}
        for i, name in enumerate(opp_names):
            oid = 90200 + i
            party = self.parties[77000 + i] if i % 3 else self.parties[5000 + i]
            closed = i % 3 == 2
            milestone = self.milestones[42 if closed and i % 2 == 0 else 43 if closed else 40 + i % 2]
            self.opportunities[oid] = {"id": oid, "name": name}
            self.opportunities_full[oid] = {
                "id": oid,
                "name": name,
                "description": f"Sample opportunity {i + 1}",
                "party": self._party_ref(party["id"]),
                "owner": dict(users[i % len(users)]),
                "team": None,
                "milestone": dict(milestone),
                "value": {"amount": 1500.0 * (i + 1), "currency": "GBP"},
                "expectedCloseOn": (start + timedelta(days=90 + i)).date().isoformat(),
                "probability": (100 if milestone["name"] == "Won" else 0) if closed else 50,
                "durationBasis": "FIXED",
                "duration": None,
                "closedOn": (start + timedelta(days=60)).date().isoformat() if closed else None,
                "lostReason": {"id": 3, "name": "Price"} if milestone["name"] == "Lost" else None,
                "createdAt": _iso(start + timedelta(days=40 + i)),
                "updatedAt": _iso(start + timedelta(days=50 + i)),
                "lastContactedAt": None,
                "tags": [],
                "fields": [],
            }
        self.boards = {7: {"id": 7, "name": "Delivery board"}}
        self.stages = {150 + i: {"id": 150 + i, "name": n} for i, n in enumerate(("Kick-off", "Delivery", "Review"))}
        self.stages_full = {
            sid: {
                "id": sid,
                "name": stage["name"],
                "description": None,
                "board": dict(self.boards[7]),
                "displayOrder": i + 1,
                "createdAt": _iso(start),
                "updatedAt": _iso(start),
            }
            for i, (sid, stage) in enumerate(self.stages.items())
        }
        self.tags: dict[int, dict[str, Any]] = {
            5500 + i: {"id": 5500 + i, "name": t, "dataTag": False} for i, t in enumerate(TAGS)
        }

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _party_ref(self, party_id: int) -> dict[str, Any]:
        party = self.parties[party_id]
        ref: dict[str, Any] = {k: party[k] for k in ("id", "type", "name", "firstName", "lastName") if k in party}
        ref["pictureURL"] = "https://capsulecrm.com/theme/default/images/org_avatar_70.png"
        return ref

    def _field_row(self, definition_id: int, value: Any) -> dict[str, Any]:
        self.next_row += 1
        definition = self.field_defs[definition_id]
        return {"id": self.next_row, "definition": {"id": definition_id, "name": definition["name"]}, "value": value}

    def context(self, base_url: str) -> dict[str, Any]:
        origin = base_url[: -len(BASE)] if base_url.endswith(BASE) else base_url
        # An OAuth2 account: the engine refreshes it at token_url before expiry and after a 401.
        self.token_expiry["capsule-oauth-access"] = time.time() + 3600
        return {
            "base_url": base_url,
            "access_token": "capsule-oauth-access",
            "refresh_token": "capsule-refresh-1",
            "client_id": self.client[0],
            "client_secret": self.client[1],
            "expires_at": int(time.time()) + 3600,
            "token_url": origin + "/oauth/token",
        }

    # ------------------------------------------------------------------ provider specifics
    def personal_credentials(self, base_url: str) -> dict[str, Any]:
        return {"base_url": base_url, "access_token": "capsule-personal-token"}

    def oauth_client(self) -> tuple[str, str] | None:
        return self.client

    def error_response(self, status: int, message: str) -> web.Response:
        return json_response({"message": message}, status)

    def rate_limited_response(self, retry_after: int, headers: dict[str, str]) -> web.Response:
        return json_response({"error": "rate limit reached"}, 429, headers)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/oauth/authorise", self.codes.consent)
        router.add_post("/oauth/authorise", self.codes.decide)
        router.add_post("/oauth/token", self.oauth_token)
        router.add_get(BASE + "/kases", self.list_kases)
        router.add_post(BASE + "/kases", self.create_kase)
        router.add_get(BASE + "/kases/fields/definitions", self.field_definitions)
        router.add_get(BASE + "/kases/tags", self.list_tags)
        router.add_get(BASE + "/kases/tags/{id}", self.get_tag)
        router.add_get(BASE + "/kases/{id}", self.get_kase)
        router.add_put(BASE + "/kases/{id}", self.update_kase)
        router.add_delete(BASE + "/kases/{id}", self.delete_kase)
        router.add_get(BASE + "/kases/{id}/parties", self.list_kase_parties)
        router.add_post(BASE + "/kases/{id}/parties/{party}", self.add_kase_party)
        router.add_delete(BASE + "/kases/{id}/parties/{party}", self.remove_kase_party)
        router.add_get(BASE + "/users", self.list_users)
        router.add_get(BASE + "/users/{id}", self.get_user)
        router.add_get(BASE + "/parties", self.list_parties)
        router.add_get(BASE + "/parties/{id}", self.get_party)
        router.add_get(BASE + "/opportunities", self.list_opportunities)
        router.add_get(BASE + "/opportunities/{id}", self.get_opportunity)
        router.add_get(BASE + "/stages", self.list_stages)
        router.add_get(BASE + "/stages/{id}", self.get_stage)

    def _authorised(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.token_expiry.get(token)
        if token in self.valid_tokens and (expiry is None or expiry > time.time()):
            return None
        return web.Response(
            body=b'{"message":"Unauthorized"}',
            status=401,
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="Capsule", error="invalid_token"'},
        )

    async def oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.count("token_requests")
        if form.get("grant_type") == "authorization_code":
            refused = self.codes.redeem({k: str(v) for k, v in form.items()})
            if refused:
                return json_response({"error": refused}, 401 if refused == "invalid_client" else 400)
            self.count("code_exchanges")
        elif form.get("grant_type") != "refresh_token":
            return json_response({"error": "unsupported_grant_type"}, 400)
        elif (form.get("client_id"), form.get("client_secret")) != self.client:
            return json_response({"error": "invalid_client"}, 401)
        else:
            refresh = str(form.get("refresh_token", ""))
            if refresh not in self.refresh_tokens:
                return json_response({"error": "invalid_grant"}, 400)
            # Capsule may rotate refresh tokens: this emulator always does, and the old one dies.
            self.refresh_tokens.discard(refresh)
            self.count("refreshes")
        new_refresh = "capsule-refresh-" + secrets.token_hex(6)
        self.refresh_tokens.add(new_refresh)
        access = "capsule-oauth-" + secrets.token_hex(8)
        self.valid_tokens.add(access)
        self.token_expiry[access] = time.time() + 3600
        return json_response(
            {
                "access_token": access,
                "refresh_token": new_refresh,
                "token_type": "bearer",
                "expires_in": 3600,
                "scope": "read write",
                "subdomain": "sample",
            }
        )

    def _not_found(self) -> web.Response:
        return json_response({"message": "Could not find resource"}, 404)

    def _kase_out(self, kase: dict[str, Any], embed: set[str]) -> dict[str, Any]:
        out = {k: v for k, v in kase.items() if k not in ("tags", "fields")}
        if "tags" in embed:
            out["tags"] = kase.get("tags", [])
        if "fields" in embed:
            out["fields"] = kase.get("fields", [])
        return out

    def _embed(self, request: web.Request) -> set[str]:
        return {e.strip() for e in request.query.get("embed", "").split(",") if e.strip()}

    def _synthetic(self, index: int) -> dict[str, Any]:
        created = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=index)
        return {
            "id": 1_000_000 + index,
            "party": self._party_ref(77000 + index % len(ORGS)),
            "owner": dict(self.users[318]),
            "team": None,
            "status": "OPEN",
            "opportunity": None,
            "stage": dict(self.stages[150]),
            "createdAt": _iso(created),
            "updatedAt": _iso(created),
            "expectedCloseOn": "2025-06-30",
            "closedOn": None,
            "lastContactedAt": None,
            "name": f"Synthetic project {index}",
            "description": None,
            "tags": [],
            "fields": [],
        }

    async def list_kases(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        try:
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("perPage", "50"))
        except ValueError:
            return json_response({"message": "page and perPage must be numbers"}, 400)
        if page < 1 or not 1 <= per_page <= 100:
            return json_response({"message": "perPage must be between 1 and 100"}, 400)
        embed = self._embed(request)
        since = request.query.get("since")
        start = (page - 1) * per_page
        if self.dataset_size:
            total = self.dataset_size
            items = [self._synthetic(i) for i in range(start, min(start + per_page, total))]
        else:
            kases = sorted(self.kases.values(), key=lambda k: k["id"])
            if since:
                try:
                    moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
                except ValueError:
                    return json_response({"message": "since must be an ISO8601 date"}, 400)
                kases = [k for k in kases if datetime.fromisoformat(k["updatedAt"].replace("Z", "+00:00")) > moment]
            total = len(kases)
            items = kases[start : start + per_page]
        headers = {}
        links = []
        base = f"{request.scheme}://{request.host}{request.path}"
        params = {k: v for k, v in request.query.items() if k != "page"}
        if start + per_page < total:
            links.append(f'<{base}?{urlencode({**params, "page": page + 1})}>; rel="next"')
        if page > 1:
            links.append(f'<{base}?{urlencode({**params, "page": page - 1})}>; rel="prev"')
        if links:
            headers["Link"] = ", ".join(links)
        return json_response({"kases": [self._kase_out(k, embed) for k in items]}, headers=headers)

    def _find(self, request: web.Request) -> dict[str, Any] | None:
        try:
            kid = int(request.match_info["id"])
        except ValueError:
            return None
        if kid in self.kases:
            return self.kases[kid]
        if self.dataset_size and 1_000_000 <= kid < 1_000_000 + self.dataset_size and kid not in self.deleted:
            return self._synthetic(kid - 1_000_000)
        return None

    @property
    def deleted(self) -> set[int]:
        return self.__dict__.setdefault("_deleted", set())

    async def get_kase(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        kase = self._find(request)
        if kase is None:
            return self._not_found()
        return json_response({"kase": self._kase_out(kase, self._embed(request))})

    async def field_definitions(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        return json_response({"definitions": list(self.field_defs.values())})

    # ------------------------------------------------------------------ what projects point at
    def _paged(self, request: web.Request, key: str, items: list[dict[str, Any]]) -> web.Response:
        """One page of a list in Capsule's form: `page`/`perPage` (1–100), `since`, Link header."""
        try:
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("perPage", "50"))
        except ValueError:
            return json_response({"message": "page and perPage must be numbers"}, 400)
        if page < 1 or not 1 <= per_page <= 100:
            return json_response({"message": "perPage must be between 1 and 100"}, 400)
        since = request.query.get("since")
        if since:
            try:
                moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                return json_response({"message": "since must be an ISO8601 date"}, 400)
            items = [
                i for i in items if "updatedAt" in i and datetime.fromisoformat(i["updatedAt"].replace("Z", "+00:00")) > moment
            ]
        start = (page - 1) * per_page
        embed = self._embed(request)
        chunk = [self._embedded(i, embed) for i in items[start : start + per_page]]
        base = f"{request.scheme}://{request.host}{request.path}"
        params = {k: v for k, v in request.query.items() if k != "page"}
        links = []
        if start + per_page < len(items):
            links.append(f'<{base}?{urlencode({**params, "page": page + 1})}>; rel="next"')
        if page > 1:
            links.append(f'<{base}?{urlencode({**params, "page": page - 1})}>; rel="prev"')
        return json_response({key: chunk}, headers={"Link": ", ".join(links)} if links else None)

    @staticmethod
    def _embedded(record: dict[str, Any], embed: set[str]) -> dict[str, Any]:
        # tags and fields are only in an answer when asked for with `embed`, as on kases.
        return {k: v for k, v in record.items() if k not in ("tags", "fields") or k in embed}

    def _one(self, request: web.Request, key: str, table: dict[int, dict[str, Any]]) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        raw = request.match_info["id"]
        record = table.get(int(raw)) if raw.isdigit() else None
        if record is None:
            return self._not_found()
        return json_response({key: self._embedded(record, self._embed(request))})

    def _list(self, request: web.Request, key: str, table: dict[int, dict[str, Any]]) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        return self._paged(request, key, [table[k] for k in sorted(table)])

    async def list_users(self, request: web.Request) -> web.Response:
        return self._list(request, "users", self.users_full)

    async def get_user(self, request: web.Request) -> web.Response:
        return self._one(request, "user", self.users_full)

    async def list_parties(self, request: web.Request) -> web.Response:
        return self._list(request, "parties", self.parties)

    async def get_party(self, request: web.Request) -> web.Response:
        return self._one(request, "party", self.parties)

    async def list_opportunities(self, request: web.Request) -> web.Response:
        return self._list(request, "opportunities", self.opportunities_full)

    async def get_opportunity(self, request: web.Request) -> web.Response:
        return self._one(request, "opportunity", self.opportunities_full)

    async def list_stages(self, request: web.Request) -> web.Response:
        return self._list(request, "stages", self.stages_full)

    async def get_stage(self, request: web.Request) -> web.Response:
        return self._one(request, "stage", self.stages_full)

    async def list_tags(self, request: web.Request) -> web.Response:
        return self._list(request, "tags", self.tags)

    async def get_tag(self, request: web.Request) -> web.Response:
        return self._one(request, "tag", self.tags)

    def _validate(self, body: dict[str, Any], current: dict[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """Apply a kase body onto `current` (or a new kase); returns (kase, errors)."""
        errors: list[dict[str, str]] = []
        kase = (
            dict(current)
            if current
            else {
                "status": "OPEN",
                "tags": [],
                "fields": [],
                "owner": None,
                "team": None,
                "opportunity": None,
                "stage": None,
                "description": None,
                "expectedCloseOn": None,
                "closedOn": None,
                "lastContactedAt": None,
            }
        )

        def err(field: str, message: str) -> None:
            errors.append({"message": message, "resource": "kase", "field": field})

        for key in ("name", "description"):
            if key in body:
                kase[key] = body[key]
        if "party" in body:
            pid = (body["party"] or {}).get("id") if isinstance(body["party"], dict) else None
            if pid is None:
                err("party", "party is required")
            elif pid not in self.parties:
                err("party", "party not found")
            else:
                kase["party"] = self._party_ref(pid)
        for key, table in (("owner", self.users), ("team", self.teams)):
            if key in body:
                value = body[key]
                if value is None:
                    kase[key] = None
                else:
                    ident = value.get("id") if isinstance(value, dict) else None
                    if ident not in table:
                        err(key, f"{key} not found")
                    else:
                        kase[key] = dict(table[ident])
                # a PUT that names only one of owner/team clears the other (Capsule does this)
                other = "team" if key == "owner" else "owner"
                if current is not None and other not in body:
                    kase[other] = None
        if "status" in body:
            if body["status"] not in STATUSES:
                err("status", "status is not valid, must be one of OPEN, CLOSED")
            else:
                kase["status"] = body["status"]
                kase["closedOn"] = datetime.now(UTC).date().isoformat() if body["status"] == "CLOSED" else None
        if "expectedCloseOn" in body:
            value = body["expectedCloseOn"]
            try:
                kase["expectedCloseOn"] = None if value is None else datetime.strptime(value, "%Y-%m-%d").date().isoformat()
            except (TypeError, ValueError):
                err("expectedCloseOn", "expectedCloseOn must be a date (yyyy-MM-dd)")
        if "opportunity" in body:
            value = body["opportunity"]
            ident = value.get("id") if isinstance(value, dict) else None
            if value is None:
                kase["opportunity"] = None
            elif ident not in self.opportunities:
                err("opportunity", "opportunity not found")
            else:
                kase["opportunity"] = dict(self.opportunities[ident])
        if "stage" in body:
            value = body["stage"]
            ident = value.get("id") if isinstance(value, dict) else value
            if ident not in self.stages:
                err("stage", "stage not found")
            else:
                kase["stage"] = dict(self.stages[ident])
        if "tags" in body:
            tags = list(kase.get("tags", []))
            for tag in body["tags"] or []:
                if tag.get("_delete"):
                    if not any(t["id"] == tag.get("id") for t in tags):
                        err("tags", "tag not found to delete")
                    tags = [t for t in tags if t["id"] != tag.get("id")]
                    continue
                found = None
                if tag.get("id") is not None:
                    found = self.tags.get(tag["id"])
                elif tag.get("name"):
                    found = next((t for t in self.tags.values() if t["name"].lower() == str(tag["name"]).lower()), None)
                    if found is None:
                        new_id = max(self.tags) + 1
                        found = self.tags[new_id] = {"id": new_id, "name": tag["name"], "dataTag": False}
                if found is None:
                    err("tags", "tag not found")
                elif not any(t["id"] == found["id"] for t in tags):
                    tags.append(dict(found))
            kase["tags"] = tags
        if "fields" in body:
            rows = list(kase.get("fields", []))
            for item in body["fields"] or []:
                definition = (item.get("definition") or {}).get("id")
                if definition not in self.field_defs:
                    err("fields", "field definition not found")
                    continue
                rows = [r for r in rows if r["definition"]["id"] != definition]
                if item.get("value") is not None:
                    rows.append(self._field_row(definition, str(item["value"])))
            kase["fields"] = rows
        if current is None:
            if not kase.get("name"):
                err("name", "name is required")
            if not kase.get("party"):
                err("party", "party is required")
            if not kase.get("owner") and not kase.get("team"):
                err("owner", "owner or team is required")
        elif "name" in body and not body["name"]:
            err("name", "name is required")
        return kase, errors

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            data = await request.json()
        except ValueError:
            return json_response({"message": "Could not parse the request body"}, 400)
        if not isinstance(data, dict) or not isinstance(data.get("kase"), dict):
            return json_response(
                {
                    "message": "Validation Failed",
                    "errors": [{"message": "kase is required", "resource": "kase", "field": "kase"}],
                },
                422,
            )
        return data["kase"]

    async def create_kase(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        kase, errors = self._validate(body, None)
        if errors:
            return json_response({"message": "Validation Failed", "errors": errors}, 422)
        now = _iso(datetime.now(UTC))
        kase.update(id=self._new_id(), createdAt=now, updatedAt=now)
        self.kases[kase["id"]] = kase
        self.count("creates")
        location = f"{request.scheme}://{request.host}{BASE}/kases/{kase['id']}"
        return json_response({"kase": self._kase_out(kase, self._embed(request))}, 201, {"Location": location})

    async def update_kase(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        current = self._find(request)
        if current is None:
            return self._not_found()
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        kase, errors = self._validate(body, current)
        if errors:
            return json_response({"message": "Validation Failed", "errors": errors}, 422)
        kase["updatedAt"] = _iso(datetime.now(UTC))
        self.kases[kase["id"]] = kase
        return json_response({"kase": self._kase_out(kase, self._embed(request))})

    async def delete_kase(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        kase = self._find(request)
        if kase is None:
            return self._not_found()
        self.kases.pop(kase["id"], None)
        self.deleted.add(kase["id"])
        return web.Response(status=204)

    async def list_kase_parties(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        kase = self._find(request)
        if kase is None:
            return self._not_found()
        ids = self.extra_parties.get(kase["id"], [])
        return json_response({"parties": [self.parties[p] for p in ids]})

    async def add_kase_party(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        kase = self._find(request)
        party = int(request.match_info["party"]) if request.match_info["party"].isdigit() else None
        if kase is None or party not in self.parties:
            return self._not_found()
        extra = self.extra_parties.setdefault(kase["id"], [])
        if party in extra:
            return json_response(
                {
                    "message": "Validation Failed",
                    "errors": [{"message": "party is already associated", "resource": "kase", "field": "parties"}],
                },
                422,
            )
        extra.append(party)
        return web.Response(status=204)

    async def remove_kase_party(self, request: web.Request) -> web.Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        kase = self._find(request)
        party = int(request.match_info["party"]) if request.match_info["party"].isdigit() else None
        if kase is None or party not in self.extra_parties.get(kase["id"], []):
            return self._not_found()
        self.extra_parties[kase["id"]].remove(party)
        return web.Response(status=204)


def build(seed: int = 1, dataset_size: int | None = None) -> CapsuleEmulator:
    """A Capsule emulator with seeded sample data."""
    return CapsuleEmulator(seed=seed, dataset_size=dataset_size)
