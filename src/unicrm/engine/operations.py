"""The unified operations: list, get, create, update, delete (PRODUCT §3), for every resource.

`Engine` is built once at start-up from the provider declarations (one compiled mapping per
provider and resource), and serves every request by reading those declarations: it contains
no provider names. A resource is served through the provider's view of it
(`Provider.for_resource`), so projects, users, accounts, ... share one code path.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from unicrm.engine.calls import (
    AccountGateway,
    CallSetup,
    Exchange,
    ProviderCall,
    rate_limit_headers,
    rate_limit_state,
    record_of,
)
from unicrm.engine.cursor import CursorCodec
from unicrm.engine.errors import ApiError, bad_request
from unicrm.engine.formats import exclude_fields, key_by, normalize
from unicrm.engine.mapping import CompiledMapping, MappingError, compile_mapping, deep_merge, get_path, set_path
from unicrm.engine.meta import missing_resource_message
from unicrm.engine.options import Filter, Options, parse_options
from unicrm.engine.pacing import DEFAULT_MAX_WAIT_S, Pacer
from unicrm.engine.pagination import Paginator, paginator_for
from unicrm.engine.validation import validate_body
from unicrm.outbound.http import ProviderResponse
from unicrm.outbound.policy import Destinations, OriginPolicy
from unicrm.outbound.pool import SessionPool
from unicrm.outbound.trace import current_trace
from unicrm.providers.declaration import ConversionError, Endpoint, Lookups, Op, Provider

log = logging.getLogger("unicrm")
JSON = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"
# A list request follows at most this many provider pages looking for one that is not empty
# after engine-side filtering, so that an empty page never carries a cursor.
MAX_PAGES_PER_REQUEST = 50


class AccountLike(Protocol):
    """What the engine needs of an integrated account (the store's `Account` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def integration(self) -> str: ...
    @property
    def context(self) -> dict[str, Any]: ...
    @property
    def status(self) -> str: ...


@dataclass
class Result:
    """What an operation answers; the HTTP layer renders it."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None


@dataclass
class _Page:
    records: list[dict[str, Any]]
    mapped: list[dict[str, Any]]
    next_state: dict[str, Any] | None
    looping: bool
    response: ProviderResponse


class Engine:
    """Runs unified operations against any declared provider."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        pool: SessionPool,
        gateway: AccountGateway,
        codec: CursorCodec,
        stream_max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        self.providers = dict(providers)
        #: (provider, resource) → the provider's declaration as seen by that resource.
        self.views: dict[tuple[str, str], Provider] = {}
        for name, provider in providers.items():
            for resource in provider.resource_names():
                view = provider.for_resource(resource)
                assert view is not None
                self.views[(name, resource)] = view
        self.resource_mappings: dict[tuple[str, str], CompiledMapping] = {k: compile_mapping(v) for k, v in self.views.items()}
        self.resource_paginators: dict[tuple[str, str], Paginator] = {
            k: paginator_for(v.pagination) for k, v in self.views.items()
        }
        # The projects mappings and paginators by provider, as before resources existed.
        self.mappings: dict[str, CompiledMapping] = {name: self.resource_mappings[(name, "projects")] for name in providers}
        self.paginators: dict[str, Paginator] = {name: self.resource_paginators[(name, "projects")] for name in providers}
        # Every resource of a provider calls the same origins: one set per provider.
        self.destinations: dict[str, Destinations] = {name: destinations_of(p, pool.policy) for name, p in providers.items()}
        self.pool = pool
        self.gateway = gateway
        self.codec = codec
        #: the longest a stream waits for a provider's rate limit, in total for one page
        self.stream_max_wait_s = stream_max_wait_s
        self._lookups: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
        # (account id, provider view) -> (its context object, the view, what a call derives from both)
        self._setups: dict[tuple[str, int], tuple[dict[str, Any], Provider, CallSetup]] = {}

    # ------------------------------------------------------------------ plumbing
    def _open(self, account: AccountLike, op: Op, resource: str = "projects") -> tuple[Provider, CompiledMapping, ProviderCall]:
        base = self.providers.get(account.integration)
        if base is None:
            raise ApiError(400, f"Integration {account.integration!r} of this account is not available on this server.")
        provider = self.views.get((base.name, resource))
        if provider is None:
            raise ApiError(405, missing_resource_message(base, resource))
        if op not in provider.endpoints:
            can = ", ".join(o for o in ("list", "get", "create", "update", "delete") if o in provider.endpoints)
            suffix = "" if resource == "projects" else f" It supports: {can}."
            raise ApiError(405, f"{provider.label} does not support {op} for {resource}.{suffix}")
        mapping = self.resource_mappings[(provider.name, resource)]
        return provider, mapping, self.call_for(account, provider, mapping)

    def call_for(self, account: AccountLike, provider: Provider, mapping: CompiledMapping) -> ProviderCall:
        """The account's calls to its provider (credentials, refresh, errors), unless it needs reauth."""
        if account.status == "needs_reauth":
            raise ApiError(
                401,
                f"This integrated account needs to be reconnected: {provider.label} rejected its credentials. "
                "Update its context (PATCH /integrated-account/{id}) with valid credentials.",
                remote=True,
            )
        context = account.context
        key = (account.id, id(provider))
        cached = self._setups.get(key)
        if cached is None or cached[0] is not context or cached[1] is not provider:
            # Once per account and provider view (again when the context object changes), not per request.
            cached = (context, provider, ProviderCall.learn(provider, context))
            self._setups[key] = cached
        destinations = self.destinations[provider.name]
        call = ProviderCall(provider, mapping, account.id, dict(context), self.pool, self.gateway, destinations, cached[2])
        trace = current_trace()
        if trace is not None:
            trace.redact = call.redact
        return call

    async def _lookups_for(self, provider: Provider, call: ProviderCall, pacer: Pacer | None = None) -> Lookups:
        if not provider.lookups:
            return {}
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for lookup in provider.lookups:
            key = (call.account_id, provider.resource, lookup.name)
            cached = self._lookups.get(key)
            if cached and cached[0] > now:
                out[lookup.name] = cached[1]
                continue
            if pacer is None:
                response = await call.call(lookup.endpoint)
            else:
                # A stream's reference data counts against the same limit as its pages.
                response = await pacer.run(functools.partial(call.call, lookup.endpoint), lambda r: rate_limit_state(provider, r))
            records = get_path(_json(provider, response), lookup.records_path) or []
            table = {str(get_path(r, lookup.key)): get_path(r, lookup.value) for r in records if isinstance(r, Mapping)}
            self._lookups[key] = (now + lookup.ttl_s, table)
            out[lookup.name] = table
        call.lookups = out
        return out

    async def probe(self, integration: str, context: Mapping[str, Any]) -> None:
        """One read-only call with these credentials (the first project of the first page).

        Raises the `ApiError` the provider's answer maps to (401 for rejected credentials).
        Nothing is stored: the probe's gateway refreshes in memory and marks no account.
        """
        provider = self.providers[integration]
        endpoint = provider.endpoints["list"]
        paginator = self.paginators[integration]
        destinations = self.destinations[integration]
        call = ProviderCall(
            provider, self.mappings[integration], "probe", dict(context), self.pool, _ProbeGateway(), destinations
        )
        await call.call(endpoint, params=paginator.params(paginator.first(), 1))

    def forget_account(self, account_id: str) -> None:
        """Drop cached reference data of an account (its context changed)."""
        for key in [k for k in self._lookups if k[0] == account_id]:
            del self._lookups[key]
        for setup_key in [k for k in self._setups if k[0] == account_id]:
            del self._setups[setup_key]

    # ------------------------------------------------------------------ list
    async def list(self, account: AccountLike, query: dict[str, Any], resource: str = "projects") -> Result:
        opts = parse_options(query)
        provider, mapping, call = self._open(account, "list", resource)
        endpoint = provider.endpoints["list"]
        paginator = self.resource_paginators[(provider.name, resource)]
        kinds = mapping.model.kinds
        keep = provider.keep
        spec = provider.pagination
        size = spec.max_size if opts.format == "stream" else min(opts.limit or spec.default_size, spec.max_size)
        if opts.ignore_limit:
            size = spec.default_size
        native, residual = self._split_filters(provider, mapping, opts.filters)
        # A stream's cursor continues only a stream: its pages are the provider's largest, and a
        # page-numbered provider's page 7 of 100 is not page 7 of 10.
        fingerprint = opts.fingerprint() + ("|stream" if opts.format == "stream" else "")
        state = self.codec.decode(opts.next_cursor, account.id, fingerprint) if opts.next_cursor else paginator.first()
        base_params: dict[str, Any] = {}
        for flt, build in native:
            deep_merge(base_params, build(flt.op, flt.moment))

        def params_for(page_state: dict[str, Any]) -> dict[str, Any]:
            params = deep_merge(dict(base_params), paginator.params(page_state, size))
            return deep_merge(params, opts.remote_query)

        if opts.skip_api_call:
            return Result(body=self._dry_run(call, endpoint, None, params_for(state), None))
        pacer = Pacer(provider.label, self.stream_max_wait_s) if opts.format == "stream" else None
        lookups = await self._lookups_for(provider, call, pacer)
        to_unified = mapping.to_unified
        residual_check = _residual_filter(residual)

        async def fetch(page_state: dict[str, Any]) -> _Page:
            response = await call.call(endpoint, params=params_for(page_state))
            body = _json(provider, response)
            records = get_path(body, provider.records_path)
            if not isinstance(records, list):
                raise _unreadable(provider, response, "a list of records")
            nxt = paginator.next(page_state, size, response, records)
            looping = nxt is not None and nxt == page_state
            if keep is not None:
                # One provider endpoint serves two resources: only this resource's records count.
                records = [r for r in records if isinstance(r, dict) and keep(r)]
            mapped: list[dict[str, Any]] = []
            after_read = provider.hooks.after_read
            for record in records:
                if not isinstance(record, dict):
                    continue
                unified = to_unified(after_read(record), lookups)
                if residual_check is None or residual_check(unified):
                    unified["remote_data"] = record
                    mapped.append(unified)
            return _Page(records, mapped, None if looping else nxt, looping, response)

        if pacer is not None:

            def paced(page_state: dict[str, Any]) -> Awaitable[_Page]:
                return pacer.run(lambda: fetch(page_state), lambda page: rate_limit_state(provider, page.response))

            def cursor_of(page_state: dict[str, Any]) -> str:
                return self.codec.encode(account.id, fingerprint, page_state)

            first = await paced(state)
            return Result(
                content_type=NDJSON,
                stream=self._stream(first, paced, opts, cursor_of, kinds),
                headers=rate_limit_headers(provider, first.response),
            )

        page = await fetch(state)
        pages = 1
        while not page.mapped and page.next_state is not None and pages < MAX_PAGES_PER_REQUEST:
            page = await fetch(page.next_state)
            pages += 1
        next_cursor = self.codec.encode(account.id, fingerprint, page.next_state) if page.next_state and page.mapped else None
        headers = rate_limit_headers(provider, page.response)
        if opts.format == "raw":
            return Result(body={"result": page.records, "next_cursor": next_cursor}, headers=headers)
        records_out = [self._shape(r, opts, kinds) for r in page.mapped]
        result: Any = key_by(records_out, opts.key_by) if opts.key_by else records_out
        envelope = {"result": result, "next_cursor": next_cursor, "prev_cursor": None, "result_count": len(records_out)}
        if opts.format == "debug":
            envelope = {
                "result": envelope,
                "debug": {
                    **self._debug(call),
                    "nextCursor": next_cursor,
                    "isLooping": page.looping,
                    "isEmptyResult": not records_out,
                    "resultCount": len(records_out),
                },
            }
        return Result(body=envelope, headers=headers)

    async def _stream(
        self,
        first: _Page,
        fetch: Callable[[dict[str, Any]], Awaitable[_Page]],
        opts: Options,
        cursor_of: Callable[[dict[str, Any]], str],
        kinds: Any = None,
    ) -> AsyncIterator[bytes]:
        """Every page, one NDJSON line per record; the next page is fetched while this one is sent.

        At most two pages are held at once, so memory stays flat whatever the total. A page is
        written whole or not at all, so when a page cannot be had the last line is the error
        with the cursor of that page: the same request with that `next_cursor` resumes exactly
        there, no record lost or repeated.
        """
        page = first
        trace = current_trace()
        pending: asyncio.Task[_Page] | None = None
        try:
            while True:
                # Ask the provider for page n+1 before serialising page n: the provider (another
                # process, another machine) works while we map, serialise and write.
                upcoming = page.next_state
                pending = asyncio.ensure_future(fetch(upcoming)) if upcoming is not None else None
                if page.mapped:
                    shaped = [self._shape(r, opts, kinds) for r in page.mapped]
                    if trace is not None:
                        trace.stream_records += len(shaped)
                    yield b"\n".join(map(orjson.dumps, shaped)) + b"\n"
                if pending is None or upcoming is None:
                    return
                try:
                    page = await pending
                except ApiError as exc:
                    # Headers are long gone; the last line says what failed and where to resume.
                    yield _error_line(exc, cursor_of(upcoming))
                    return
                except Exception:
                    log.exception("stream page failed")
                    yield _error_line(_UNEXPECTED_PAGE_ERROR, cursor_of(upcoming))
                    return
                finally:
                    pending = None
        finally:
            if pending is not None:
                pending.cancel()

    def _split_filters(
        self, provider: Provider, mapping: CompiledMapping, filters: tuple[Filter, ...]
    ) -> tuple[builtins.list[tuple[Filter, Callable[[str, Any], Mapping[str, Any]]]], builtins.list[Filter]]:
        native: builtins.list[tuple[Filter, Callable[[str, Any], Mapping[str, Any]]]] = []
        residual: builtins.list[Filter] = []
        for flt in filters:
            spec = next((n for n in provider.filters if n.field == flt.field and flt.op in n.ops), None)
            # A provider filter parameter carries one condition: a second condition on the same
            # field (a range) would overwrite the first, so the engine applies it itself.
            if spec is not None and any(f.field == flt.field for f, _ in native) and flt.field in mapping.readable:
                residual.append(flt)
            elif spec is not None:
                native.append((flt, spec.build))
            elif flt.field in mapping.readable:
                residual.append(flt)
            else:
                raise bad_request(
                    f"{provider.label} cannot filter {provider.resource} on {flt.field}: its API does not expose that field. "
                    f"See GET /unified/crm/{provider.resource}/{provider.name}/meta/list for the filters it honours."
                )
        return native, residual

    # ------------------------------------------------------------------ get
    async def get(self, account: AccountLike, record_id: str, query: dict[str, Any], resource: str = "projects") -> Result:
        opts = parse_options(query)
        provider, mapping, call = self._open(account, "get", resource)
        endpoint = provider.endpoints["get"]
        if opts.skip_api_call:
            return Result(body=self._dry_run(call, endpoint, record_id, {**opts.remote_query}, None))
        lookups = await self._lookups_for(provider, call)
        response = await call.call(endpoint, record_id, params=opts.remote_query)
        headers = rate_limit_headers(provider, response)
        if provider.keep is not None and not provider.keep(self._record(provider, endpoint, response)):
            raise ApiError(404, f"{provider.label} has no {mapping.model.singular} {record_id} ({provider.keep_note}).")
        if opts.format == "raw":
            return Result(raw=response.body, content_type=response.content_type, headers=headers)
        record = self._record(provider, endpoint, response)
        return self._single(call, mapping, record, lookups, opts, 200, headers)

    # ------------------------------------------------------------------ create / update
    async def create(
        self, account: AccountLike, body: Any, query: dict[str, Any], reference: str | None = None, resource: str = "projects"
    ) -> Result:
        """Create a record; `reference` (derived from the Idempotency-Key) lets a lost answer be settled."""
        return await self._write("create", account, None, body, query, reference, resource)

    async def update(
        self, account: AccountLike, record_id: str, body: Any, query: dict[str, Any], resource: str = "projects"
    ) -> Result:
        return await self._write("update", account, record_id, body, query, resource=resource)

    async def _write(
        self,
        op: Op,
        account: AccountLike,
        record_id: str | None,
        body: Any,
        query: dict[str, Any],
        reference: str | None = None,
        resource: str = "projects",
    ) -> Result:
        opts = parse_options(query)
        provider, mapping, call = self._open(account, op, resource)
        endpoint = provider.endpoints[op]
        fields, remote_data = validate_body(body, op, mapping)
        # Reference data (currencies, field definitions) is read even for a dry run: it is
        # needed to map the body, and reading it changes nothing.
        lookups = await self._lookups_for(provider, call)
        try:
            provider_body = mapping.to_provider(fields, op, lookups)
            if op == "create" and provider.create_defaults:
                # Defaults sit under the mapped body: whatever the client sent wins, key by key.
                defaults = {k: (v(call.context, lookups) if callable(v) else v) for k, v in provider.create_defaults.items()}
                provider_body = deep_merge(defaults, provider_body)
        except MappingError as exc:
            raise ApiError(
                400,
                f"Invalid field value(s): {exc.field} {exc.message}.",
                insight={"invalid_fields": [{"field": exc.field, "message": exc.message}]},
            ) from None
        except ConversionError as exc:
            raise ApiError(400, f"{provider.label} needs a default this account cannot supply: {exc}.") from None
        deep_merge(provider_body, remote_data)
        if opts.skip_api_call:
            return Result(body=self._dry_run(call, endpoint, record_id, opts.remote_query, provider_body))
        before = None
        if op == "update" and provider.hooks.needs_before_update:
            assert record_id is not None
            before_resp = await call.call(provider.endpoints["get"], record_id)
            before = self._record(provider, provider.endpoints["get"], before_resp)
        provider_body = await provider.hooks.before_write(op, call, record_id, fields, provider_body, before)
        spec = provider.external_reference
        if op != "create" or spec is None or not reference or get_path(provider_body, spec.write_path) not in (None, ""):
            # Only a reference of ours settles an outcome: one the client set may be shared by other records.
            reference = None
        else:
            set_path(provider_body, spec.write_path, reference)
        record: dict[str, Any] | None = None
        response: ProviderResponse | None = None
        new_id: str | None = record_id
        # An update whose fields are all changed by the hooks' own calls (relations, status
        # actions) leaves an empty body: sending it would only spend a provider request.
        nothing_to_send = op == "update" and not provider_body and bool(fields)
        if not nothing_to_send:
            answered_by = endpoint
            try:
                response = await call.call(endpoint, record_id, params=opts.remote_query, body=provider_body)
            except ApiError as exc:
                if exc.outcome != "unknown":
                    raise
                found = await self._settle(provider, call, reference)
                if found is None:
                    exc.insight = {**exc.insight, **_unknown_outcome(provider, op, account.id)}
                    raise
                # The answer was lost but the record is there: the create happened, once.
                assert spec is not None
                response, answered_by = found, spec.lookup
            try:
                if answered_by.returns == "record":
                    record = self._record(provider, answered_by, response)
                    new_id = _record_id(mapping, record, lookups)
                elif answered_by.returns == "id":
                    new_id = str(get_path(_json(provider, response), answered_by.id_path))
                if not new_id or new_id == "None":
                    raise _unreadable(provider, response, "the id of the record")
            except ApiError as exc:
                # The provider said yes (2xx) in a form we cannot read: it did write.
                raise _written(exc, provider, op, account.id, None) from None
        assert new_id is not None
        try:
            changed = await provider.hooks.after_write(op, call, new_id, fields, before)
            if record is None or changed:
                # The provider answered with less than the whole record: read it back.
                get_ep = provider.endpoints["get"]
                record = self._record(provider, get_ep, await call.call(get_ep, new_id))
        except ApiError as exc:
            raise _written(exc, provider, op, account.id, new_id) from None
        last = call.last_response or response
        assert last is not None
        headers = rate_limit_headers(provider, last)
        if opts.format == "raw":
            return Result(status=201 if op == "create" else 200, body=record, headers=headers)
        return self._single(call, mapping, record, lookups, opts, 201 if op == "create" else 200, headers)

    async def _settle(self, provider: Provider, call: ProviderCall, reference: str | None) -> ProviderResponse | None:
        """The record a lost create wrote, found by our reference; None when not found (yet).

        Not found does not prove nothing was written (a timed-out request may still land), so
        it leaves the outcome unknown; only a found record settles it.
        """
        spec = provider.external_reference
        if spec is None or not reference:
            return None
        try:
            return await call.call(spec.lookup, reference)
        except ApiError:
            return None

    # ------------------------------------------------------------------ delete
    async def delete(self, account: AccountLike, record_id: str, query: dict[str, Any], resource: str = "projects") -> Result:
        opts = parse_options(query)
        provider, mapping, call = self._open(account, "delete", resource)
        endpoint = provider.endpoints["delete"]
        if opts.skip_api_call:
            return Result(body=self._dry_run(call, endpoint, record_id, opts.remote_query, None))
        answer = await provider.hooks.delete(call, record_id)
        response = call.last_response
        if answer is NotImplemented:
            response = await call.call(endpoint, record_id, params=opts.remote_query)
        assert response is not None
        headers = rate_limit_headers(provider, response)
        if opts.format == "raw":
            return Result(raw=response.body or b"", content_type=response.content_type, headers=headers)
        record = None
        if endpoint.returns == "record" and response.body.strip():
            try:
                candidate = record_of(endpoint, response)
            except ValueError:
                candidate = None
            if isinstance(candidate, dict) and candidate:
                record = candidate
        if record is None:
            out: dict[str, Any] = {"id": record_id}
            if opts.format == "debug":
                return Result(body={"result": out, "debug": self._debug(call)}, headers=headers)
            return Result(body=exclude_fields(out, opts.exclude_fields), headers=headers)
        lookups = await self._lookups_for(provider, call)
        result = self._single(call, mapping, record, lookups, opts, 200, headers)
        if isinstance(result.body, dict) and "id" in result.body and not result.body["id"]:
            result.body["id"] = record_id
        return result

    # ------------------------------------------------------------------ shaping
    def _record(self, provider: Provider, endpoint: Endpoint, response: ProviderResponse) -> dict[str, Any]:
        try:
            record = get_path(response.json(), endpoint.record_path)
        except ValueError:
            raise _unreadable(provider, response, "a JSON record") from None
        if not isinstance(record, dict):
            raise _unreadable(provider, response, "a record")
        return record

    def _shape(self, unified: dict[str, Any], opts: Options, kinds: Any = None) -> dict[str, Any]:
        if opts.format == "normalized":
            unified = normalize(unified, kinds) if kinds is not None else normalize(unified)
        elif opts.ignore_remote_data:
            unified.pop("remote_data", None)
        return exclude_fields(unified, opts.exclude_fields) if opts.exclude_fields else unified

    def _single(
        self,
        call: ProviderCall,
        mapping: CompiledMapping,
        record: dict[str, Any],
        lookups: Lookups,
        opts: Options,
        status: int,
        headers: dict[str, str],
    ) -> Result:
        unified = mapping.to_unified(mapping.provider.hooks.after_read(record), lookups)
        unified["remote_data"] = record
        shaped = self._shape(unified, opts, mapping.model.kinds)
        if opts.format == "debug":
            return Result(status=status, body={"result": shaped, "debug": self._debug(call)}, headers=headers)
        return Result(status=status, body=shaped, headers=headers)

    def _debug(self, call: ProviderCall) -> dict[str, Any]:
        exchanges = call.debug_exchanges()
        last = exchanges[-1] if exchanges else None
        data = None
        if call.last_response is not None:
            data = call.redact(call.last_response.json_or_text())
        return {
            "requestUrl": last.url if last else None,
            "requestOptions": _options(last) if last else None,
            "data": data,
            "responseHeaders": last.response_headers if last else None,
            "requests": [_options(e) | {"url": e.url, "status": e.status} for e in exchanges],
        }

    def _dry_run(
        self, call: ProviderCall, endpoint: Endpoint, record_id: str | None, params: Mapping[str, Any], body: Any
    ) -> dict[str, Any]:
        planned = call.plan(endpoint, record_id, params, body)
        return {
            "result": None,
            "debug": None,
            "truto_skip_api_call": True,
            "request": {"url": planned.url, **_options(planned)},
        }


_UNEXPECTED_PAGE_ERROR = ApiError(500, "unicrm hit an unexpected error reading the next page; it was logged.")


def _error_line(exc: ApiError, next_cursor: str) -> bytes:
    """A stream's last line: the unified error, and the cursor that resumes the stream there."""
    body = exc.body()
    body["message"] = (
        f"{body['message']} The stream stopped before this page: send the same request with "
        "next_cursor set to this line's next_cursor to resume it."
    )
    return orjson.dumps({"error": body, "next_cursor": next_cursor}) + b"\n"


class _ProbeGateway:
    """The gateway of a credential probe: no account exists yet, so nothing is persisted."""

    async def refresh_context(
        self,
        account_id: str,
        needs: Callable[[dict[str, Any]], bool],
        refresh: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        raise ApiError(401, "These OAuth credentials need a refresh before use; connect again.", remote=True)

    async def mark_needs_reauth(self, account_id: str, message: str) -> None:
        return None


def destinations_of(provider: Provider, policy: OriginPolicy) -> Destinations:
    """The origins a provider's calls may reach: its declared ones and the operator's."""
    patterns = {c.name: c.pattern for c in provider.context}
    return policy.destinations(provider.label, provider.origin_templates(), patterns)


def _options(exchange: Exchange) -> dict[str, Any]:
    return {"method": exchange.method, "headers": exchange.headers, "query": dict(exchange.params), "body": exchange.body}


def _unknown_outcome(provider: Provider, op: Op, account_id: str) -> dict[str, Any]:
    """`truto_error_insight` for a write whose answer was lost after it was sent."""
    done = "created" if op == "create" else "updated"
    return {
        "write_outcome_unknown": {
            "description": (
                f"The request reached {provider.label} and its answer was lost, so the project may have been {done}. "
                f"Check before writing again: list recent projects (GET /unified/crm/projects?integrated_account_id={account_id}"
                "&updated_at[gte]=<when you sent it>) and look for it. A retry with the same Idempotency-Key replays this "
                "answer and writes nothing; use a new key only once you know the write did not happen."
            ),
        }
    }


def _written(exc: ApiError, provider: Provider, op: Op, account_id: str, record_id: str | None) -> ApiError:
    """A failure after the provider accepted the write: the write happened; say so, never invite a resend."""
    done = "created" if op == "create" else "updated"
    where = (
        f"Read it with GET /unified/crm/projects/{record_id}?integrated_account_id={account_id}."
        if record_id
        else f"Find it by listing projects (GET /unified/crm/projects?integrated_account_id={account_id})."
    )
    exc.outcome = "written"
    exc.insight = {
        **exc.insight,
        "write_happened": {
            "description": f"{provider.label} {done} the project, but a later step failed. Do not send it again. {where}",
            "id": record_id,
        },
    }
    return exc


def _json(provider: Provider, response: ProviderResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _unreadable(provider, response, "JSON") from None


def _unreadable(provider: Provider, response: ProviderResponse, wanted: str) -> ApiError:
    return ApiError(
        502,
        f"{provider.label} answered HTTP {response.status} without {wanted}; the answer could not be read. "
        "Nothing was retried. Try again later.",
        remote=True,
        raw_response=response.json_or_text(),
    )


def _record_id(mapping: CompiledMapping, record: Mapping[str, Any], lookups: Lookups) -> str | None:
    value = mapping.to_unified(record, lookups).get("id")
    return None if value is None else str(value)


def _residual_filter(filters: list[Filter]) -> Callable[[dict[str, Any]], bool] | None:
    """Engine-side filtering for filters the provider cannot apply (compared in UTC)."""
    if not filters:
        return None
    from unicrm.providers.declaration import parse_iso_datetime

    def check(record: dict[str, Any]) -> bool:
        for flt in filters:
            value = record.get(flt.field)
            if value is None:
                return False
            try:
                moment = parse_iso_datetime(str(value))
            except ValueError:
                return False
            if flt.op == "gt" and not moment > flt.moment:
                return False
            if flt.op == "gte" and not moment >= flt.moment:
                return False
            if flt.op == "lt" and not moment < flt.moment:
                return False
            if flt.op == "lte" and not moment <= flt.moment:
                return False
        return True

    return check
