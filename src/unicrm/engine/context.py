"""Checks an integrated account's context before it is stored: bounds, characters, destinations.

Run on create and on every patch (on the merged context), so that a stored account can only
send its credentials to an allowed origin; `outbound` checks the same again on every call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from unicrm.engine.errors import bad_request
from unicrm.outbound.policy import HOW_TO_ALLOW, Destinations, OriginError, origin_of, render_url
from unicrm.providers.declaration import Provider

MAX_VALUE_CHARS = 8192
MAX_CONTEXT_CHARS = 32768


def check_context(provider: Provider, destinations: Destinations, context: Mapping[str, Any]) -> None:
    """Raise a 400 naming the key when a context value is too long, malformed or points elsewhere."""
    total = 0
    for key, value in context.items():
        text = value if isinstance(value, str) else str(value)
        total += len(key) + len(text)
        if len(text) > MAX_VALUE_CHARS:
            raise bad_request(
                f"Context key {key} is {len(text)} characters long; the most a value may hold is {MAX_VALUE_CHARS}."
            )
        if not text.isprintable():
            raise bad_request(
                f"Context key {key} holds control characters (such as CR or LF); its value becomes part of a request "
                "header or URL, so it must be printable text."
            )
    if total > MAX_CONTEXT_CHARS:
        raise bad_request(
            f"The context is {total} characters long; the most an account's context may hold is {MAX_CONTEXT_CHARS}."
        )
    fields = {c.name: c for c in provider.context}
    for key, value in context.items():
        spec = fields.get(key)
        if spec is None or value in (None, ""):
            continue
        if spec.pattern and not re.fullmatch(spec.pattern, str(value)):
            raise bad_request(
                f"Context key {key} must match {spec.pattern} (it becomes part of {provider.label}'s host name); got {value!r}."
            )
        if spec.is_url:
            _check_url(provider, destinations, key, str(value))
    if not context.get("base_url"):
        defaults = {c.name: c.default for c in provider.context if c.default is not None}
        rendered = render_url(provider.base_url, {**defaults, **{k: v for k, v in context.items() if v not in (None, "")}})
        templated = sorted(set(re.findall(r"\{([a-z_][a-z0-9_]*)\}", provider.base_url.split("/", 3)[2])))
        _check_url(provider, destinations, ", ".join(templated) or "base_url", rendered)


def _check_url(provider: Provider, destinations: Destinations, key: str, url: str) -> None:
    try:
        origin = origin_of(url)
    except OriginError as exc:
        raise bad_request(f"Context key {key} must be an http(s) URL: {url!r} {exc}.") from None
    if destinations.rule_for(url) is None:
        declared = ", ".join(r.text for r in destinations.declared) or "none"
        raise bad_request(
            f"Context key {key} points at {origin}, which is not an origin of {provider.label} (declared: {declared}) "
            f"nor one this server allows. Provider calls carry the account's credentials, so to use it "
            + HOW_TO_ALLOW.format(origin=origin)
            + "."
        )
