"""Parses Truto's bracket query syntax in every form real clients send (PRODUCT §3.1).

`a[]=x&a[]=y`, `a[0]=x&a[1]=y` (qs indices), repeated `a=x&a=y` (requests), nested
`a[b][c]=v`, `a[][k]=v` lists of objects (Truto's Python SDK), percent-encoded brackets,
`+` and `%20` for spaces. The literal `None` (Truto's Python SDK for a missing value) and an
empty `next_cursor=` mean "absent".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

ABSENT_VALUES = frozenset({"None"})
EMPTY_MEANS_ABSENT = frozenset({"next_cursor", "integrated_account_id", "truto_response_format", "limit"})
MAX_DEPTH = 8
MAX_PAIRS = 256
MAX_INDEX_DIGITS = 6


class QueryStringError(ValueError):
    """A query string that cannot be read (the message says which key)."""


class _Indexed(dict[int, Any]):
    """A node built from `a[0]`, `a[1]` ... keys; becomes a list once parsing ends."""


def _split_key(key: str) -> list[str]:
    start = key.find("[")
    if start <= 0 or not key.endswith("]"):
        return [key]
    parts = [key[:start]]
    rest = key[start:]
    while rest:
        if not rest.startswith("["):
            raise QueryStringError(f"malformed key {key!r}")
        end = rest.find("]")
        if end < 0:
            raise QueryStringError(f"malformed key {key!r}")
        parts.append(rest[1:end])
        rest = rest[end + 1 :]
    if len(parts) > MAX_DEPTH:
        raise QueryStringError(f"key {key!r} is nested too deeply")
    return parts


def _assign(node: dict[Any, Any], parts: list[str], value: str, full_key: str) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        if head in node and not isinstance(node[head], dict | list):
            existing = node[head]
            node[head] = [*existing, value] if isinstance(existing, list) else [existing, value]
        elif head in node and isinstance(node[head], list):
            node[head].append(value)
        elif head in node:
            raise QueryStringError(f"{full_key!r} mixes a value with nested keys")
        else:
            node[head] = value
        return
    child_key = rest[0]
    if child_key == "":
        lst = node.setdefault(head, [])
        if not isinstance(lst, list):
            raise QueryStringError(f"{full_key!r} mixes a list with other forms")
        if len(rest) == 1:
            lst.append(value)
            return
        # a[][k]=v: add to the last object unless it already has k (then start a new one).
        if not lst or not isinstance(lst[-1], dict) or rest[1] in lst[-1]:
            lst.append({})
        _assign(lst[-1], rest[1:], value, full_key)
        return
    if child_key.isascii() and child_key.isdigit() and len(child_key) <= MAX_INDEX_DIGITS:
        idx = node.setdefault(head, _Indexed())
        if not isinstance(idx, _Indexed):
            raise QueryStringError(f"{full_key!r} mixes list indices with other forms")
        _assign(idx, [int(child_key), *rest[1:]] if len(rest) > 1 else [int(child_key)], value, full_key)  # type: ignore[list-item]
        return
    child = node.setdefault(head, {})
    if not isinstance(child, dict) or isinstance(child, _Indexed):
        if isinstance(child, str):
            raise QueryStringError(f"{full_key!r} mixes a value with nested keys")
        raise QueryStringError(f"{full_key!r} mixes a list with nested keys")
    _assign(child, rest, value, full_key)


def _finish(value: Any) -> Any:
    if isinstance(value, _Indexed):
        return [_finish(value[k]) for k in sorted(value)]
    if isinstance(value, dict):
        return {k: _finish(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finish(v) for v in value]
    return value


def parse_query(raw: str | bytes) -> dict[str, Any]:
    """Parse a raw query string into nested dicts/lists of strings."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    out: dict[str, Any] = {}
    if not text:
        return out
    pairs = text.split("&")
    if len(pairs) > MAX_PAIRS:
        raise QueryStringError(f"it has {len(pairs)} parameters; the most unicrm reads is {MAX_PAIRS}")
    for pair in pairs:
        if not pair:
            continue
        key_raw, _, value_raw = pair.partition("=")
        # Most parameters need no decoding; unquote_plus would return them unchanged, slowly.
        key = unquote_plus(key_raw) if "%" in key_raw or "+" in key_raw else key_raw
        value = unquote_plus(value_raw) if "%" in value_raw or "+" in value_raw else value_raw
        if not key:
            continue
        if value in ABSENT_VALUES or (value == "" and key in EMPTY_MEANS_ABSENT):
            continue
        _assign(out, _split_key(key), value, key)
    return _finish(out)


def as_list(value: Any) -> list[str]:
    """A list-valued parameter from any form: list, comma list, or single value."""
    if value is None:
        return []
    if isinstance(value, list):
        items: list[str] = []
        for item in value:
            items.extend(as_list(item))
        return items
    if isinstance(value, dict):
        return as_list(list(value.values()))
    return [part.strip() for part in str(value).split(",") if part.strip()]


def as_bool(value: Any, name: str) -> bool:
    """A boolean parameter (`true`/`false`/`1`/`0`, case-insensitive; bare key = true)."""
    if value is None:
        return False
    if isinstance(value, list):
        value = value[-1]
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", ""}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise QueryStringError(f"{name} must be true or false, got {value!r}")
