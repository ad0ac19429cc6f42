"""Reads Truto's request parameters (PRODUCT §3.2–3.5) into one typed object, or a 400."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from unicrm.api.querystring import QueryStringError, as_bool, as_list
from unicrm.engine.errors import bad_request
from unicrm.providers.declaration import parse_iso_datetime

Format = Literal["unified", "normalized", "raw", "stream", "debug"]
FORMATS: tuple[Format, ...] = ("unified", "normalized", "raw", "stream", "debug")
FILTER_FIELDS = ("updated_at", "created_at")
FILTER_OPS = ("gt", "gte", "lt", "lte")
MAX_LIMIT = 1000
# Parameters of ours; anything else in the query is a mistake worth reporting.
KNOWN = frozenset(
    {
        "integrated_account_id",
        "truto_response_format",
        "truto_ignore_remote_data",
        "truto_exclude_fields",
        "truto_key_by",
        "truto_ignore_limit",
        "truto_skip_api_call",
        "remote_query",
        "limit",
        "next_cursor",
        *FILTER_FIELDS,
    }
)


@dataclass(frozen=True)
class Filter:
    """One incremental filter, e.g. `updated_at[gt]=2025-01-01T00:00:00Z`."""

    field: str
    op: str
    moment: datetime
    raw: str


@dataclass(frozen=True)
class Options:
    """Everything a unified call's query string asks for."""

    format: Format = "unified"
    ignore_remote_data: bool = False
    exclude_fields: tuple[str, ...] = ()
    key_by: str | None = None
    ignore_limit: bool = False
    skip_api_call: bool = False
    limit: int | None = None
    next_cursor: str | None = None
    remote_query: dict[str, Any] = field(default_factory=dict)
    filters: tuple[Filter, ...] = ()

    def fingerprint(self) -> str:
        """What a cursor must continue: the filters and the remote query."""
        parts = [f"{f.field}[{f.op}]={f.raw}" for f in self.filters]
        return "&".join(sorted(parts)) + "|" + repr(sorted(self.remote_query.items(), key=lambda kv: kv[0]))


def _single(query: dict[str, Any], name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, dict):
        raise bad_request(f"{name} must be a single value, not an object.")
    return None if value is None else str(value)


def parse_options(query: dict[str, Any]) -> Options:
    """Validate and read the Truto parameters of a unified call."""
    if len(query) == 1 and "integrated_account_id" in query:
        return Options()  # the common case: nothing but the account
    try:
        fmt = (_single(query, "truto_response_format") or "unified").lower()
        if fmt not in FORMATS:
            raise bad_request(f"truto_response_format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
        limit_raw = _single(query, "limit")
        limit: int | None = None
        if limit_raw is not None and limit_raw != "":
            try:
                limit = int(limit_raw)
            except ValueError:
                raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}; got {limit_raw!r}.") from None
            if not 1 <= limit <= MAX_LIMIT:
                raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}; got {limit}.")
        remote_query = query.get("remote_query") or {}
        if not isinstance(remote_query, dict):
            raise bad_request("remote_query must be an object: use remote_query[param]=value.")
        filters: list[Filter] = []
        for name in FILTER_FIELDS:
            spec = query.get(name)
            if spec is None:
                continue
            if not isinstance(spec, dict):
                raise bad_request(f"{name} needs an operator: {name}[gt|gte|lt|lte]=<ISO 8601 date-time>.")
            for op, raw in spec.items():
                if op not in FILTER_OPS:
                    raise bad_request(f"{name}[{op}] is not a filter; use one of gt, gte, lt, lte.")
                text = raw[-1] if isinstance(raw, list) else raw
                try:
                    moment = parse_iso_datetime(str(text))
                except ValueError:
                    raise bad_request(
                        f"{name}[{op}] must be an ISO 8601 date-time such as 2025-01-31T00:00:00Z; got {text!r}."
                    ) from None
                filters.append(Filter(name, op, moment, str(text)))
        return Options(
            format=fmt,
            ignore_remote_data=as_bool(query.get("truto_ignore_remote_data"), "truto_ignore_remote_data"),
            exclude_fields=tuple(as_list(query.get("truto_exclude_fields"))),
            key_by=_single(query, "truto_key_by") or None,
            ignore_limit=as_bool(query.get("truto_ignore_limit"), "truto_ignore_limit"),
            skip_api_call=as_bool(query.get("truto_skip_api_call"), "truto_skip_api_call"),
            limit=limit,
            next_cursor=_single(query, "next_cursor") or None,
            remote_query=remote_query,
            filters=tuple(filters),
        )
    except QueryStringError as exc:
        raise bad_request(str(exc)) from None
