"""The proxy API (Truto's `/proxy/{resource}`): native provider paths with the account's credentials.

A proxy call goes through the same `ProviderCall` as the unified operations, so credentials,
OAuth2 refresh, outbound rules, redaction, retries of reads, rate-limit headers and the unified
error shape are the same. What the declaration says shapes it, without provider names:

- the native path is `<base URL><proxy_prefix>/<resource>[/<id>]`;
- a list is sent the way the provider's projects list is (its method, query or RPC body) and
  paged with its declared pagination; the answer comes back as `{result, next_cursor}`;
- get, update and delete follow the projects endpoint of the same operation: an id in the
  path (REST) or, for an RPC endpoint (POST with the id in the body), in the body under the
  declared key; a create is a POST of the body as sent;
- query parameters and the body are forwarded as they are (our own parameters removed).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from unicrm.engine.calls import ProviderCall, rate_limit_headers
from unicrm.engine.errors import ApiError, bad_request
from unicrm.engine.mapping import deep_merge, get_path, set_path
from unicrm.engine.operations import JSON, AccountLike, Result
from unicrm.engine.pagination import paginator_for
from unicrm.outbound.http import ProviderResponse, flatten_params
from unicrm.providers.declaration import Endpoint, Op, Provider

if TYPE_CHECKING:
    from unicrm.engine.operations import Engine

#: Query parameters of ours, never forwarded to the provider.
OWN_PARAMS = frozenset({"integrated_account_id", "next_cursor", "limit"})
#: Characters left as they are in a native resource path (RFC 3986 pchar and `/`).
PATH_SAFE = "/:@!$&'()*+,;="
PROXY_OPS: dict[str, Op] = {"GET": "get", "PATCH": "update", "PUT": "update", "DELETE": "delete"}


def forwarded_query(raw: str) -> list[tuple[str, str]]:
    """The request's query pairs as sent, minus ours (`integrated_account_id`, `limit`, `next_cursor`, `truto_*`)."""
    return [(k, v) for k, v in parse_qsl(raw, keep_blank_values=True) if k not in OWN_PARAMS and not k.startswith("truto_")]


def _rpc(endpoint: Endpoint) -> bool:
    """An RPC endpoint: POST with parameters in the body (`<kind>.list`, `<kind>.info` methods)."""
    return endpoint.method == "POST" and endpoint.params_in == "body"


def records_of(provider: Provider, resource: str, body: Any) -> list[Any] | None:
    """The records of a native list answer: a bare array, the array at the provider's list path
    (`data`), the array named like the resource (`parties` for `/parties`), or the only array."""
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        return None
    for path in (provider.list_path, resource.rsplit("/", 1)[-1].split(".")[0]):
        if path and isinstance(found := get_path(body, path), list):
            return found
    arrays = [v for v in body.values() if isinstance(v, list)]
    return arrays[0] if len(arrays) == 1 else None


class Proxy:
    """Serves `/proxy/...` for the engine's providers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _call(self, account: AccountLike) -> tuple[Provider, ProviderCall]:
        provider = self.engine.providers.get(account.integration)
        if provider is None:
            raise ApiError(400, f"Integration {account.integration!r} of this account is not available on this server.")
        # Provider field errors are named back as they are: a proxy body has no unified fields.
        mapping = replace(self.engine.mappings[provider.name], remote_to_unified={})
        return provider, self.engine.call_for(account, provider, mapping)

    @staticmethod
    def _url(call: ProviderCall, provider: Provider, resource: str, record_id: str | None = None) -> str:
        if not resource or resource.startswith(".") or ".." in resource.split("/"):
            raise bad_request(f"{resource!r} is not a resource path of {provider.label}.")
        # Quoted so a decoded `?`, `#` or `%` stays part of the path, never a query or fragment.
        path = provider.proxy_prefix + "/" + quote(resource, safe=PATH_SAFE)
        if record_id is not None:
            path += "/" + quote(record_id, safe="")
        return call.base_url + path

    async def list(self, account: AccountLike, resource: str, raw_query: str, limit: int | None, cursor: str | None) -> Result:
        provider, call = self._call(account)
        endpoint = provider.endpoints["list"]
        paginator = paginator_for(provider.pagination)
        spec = provider.pagination
        size = min(limit or spec.default_size, spec.max_size)
        query = forwarded_query(raw_query)
        fingerprint = f"proxy:{resource}:{sorted(query)!r}:{size}"
        state = self.engine.codec.decode(cursor, account.id, fingerprint) if cursor else paginator.first()
        url = self._url(call, provider, resource)
        paging = paginator.params(state, size)
        if _rpc(endpoint):
            body: dict[str, Any] = {}
            for key, value in paging.items():
                set_path(body, str(key), value)
            for key, value in query:
                set_path(body, key, value)
            response = await call.request(endpoint.method, url, [], body, retriable=endpoint.retriable)
        else:
            pairs = flatten_params(paging) + query
            response = await call.request("GET", url, pairs, None, retriable=True)
        try:
            answer = response.json()
        except ValueError:
            raise _unreadable(provider, response) from None
        records = records_of(provider, resource, answer)
        if records is None:
            raise _unreadable(provider, response)
        nxt = paginator.next(state, size, response, records)
        next_cursor = self.engine.codec.encode(account.id, fingerprint, nxt) if nxt and nxt != state and records else None
        # Truto's proxy envelope is the unified one: prev_cursor and result_count too.
        envelope = {"result": records, "next_cursor": next_cursor, "prev_cursor": None, "result_count": len(records)}
        return Result(body=envelope, headers=rate_limit_headers(provider, response))

    async def single(
        self, account: AccountLike, method: str, resource: str, record_id: str | None, raw_query: str, body: Any
    ) -> Result:
        """get, create, update or delete: the provider's answer verbatim."""
        provider, call = self._call(account)
        query = forwarded_query(raw_query)
        op: Op = "create" if record_id is None else PROXY_OPS[method]
        endpoint = provider.endpoints.get(op)
        if (
            endpoint is not None
            and record_id is not None
            and "{id}" not in endpoint.path
            and endpoint.id_in_body
            and _rpc(endpoint)
        ):
            # RPC: `POST /<resource>` with the id (and any query) in the body, as the provider's own calls.
            payload: dict[str, Any] = {}
            for key, value in query:
                set_path(payload, key, value)
            if isinstance(body, dict):
                deep_merge(payload, body)
            payload[endpoint.id_in_body] = call.provider_id(record_id)
            response = await call.request(
                endpoint.method, self._url(call, provider, resource), [], payload, retriable=op == "get" and endpoint.retriable
            )
        else:
            send_method = "POST" if record_id is None else method
            response = await call.request(
                send_method, self._url(call, provider, resource, record_id), query, body, retriable=send_method == "GET"
            )
        headers = rate_limit_headers(provider, response)
        status = 201 if record_id is None and response.status == 201 else 200
        if not response.body.strip():
            # A 204 (delete, some updates): Truto answers JSON; the id is all there is to say.
            return Result(status=status, body={"id": record_id} if record_id is not None else {}, headers=headers)
        content_type = response.content_type
        return Result(status=status, raw=response.body, content_type=content_type or JSON, headers=headers)


def _unreadable(provider: Provider, response: ProviderResponse) -> ApiError:
    return ApiError(
        502,
        f"{provider.label} answered HTTP {response.status} without a list the proxy can page "
        "(a JSON array, or an object holding one). Call a list resource, or a single record with /proxy/{resource}/{id}.",
        remote=True,
        raw_response=response.json_or_text(),
    )
