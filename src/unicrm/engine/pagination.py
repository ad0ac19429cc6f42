"""Provider paginators by style name (the `Pagination.style` of a declaration).

Each paginator turns an opaque page state (stored in our cursor) into provider parameters and
reads the next state from the provider's answer. States are small JSON-able dicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from unicrm.engine.mapping import get_path
from unicrm.outbound.http import ProviderResponse
from unicrm.providers.declaration import Pagination

State = dict[str, Any]
_LINK = re.compile(r"<([^>]*)>\s*;\s*([^,]*)")


def next_link(header: str | None) -> str | None:
    """The `rel="next"` URL of an RFC 5988 Link header."""
    if not header:
        return None
    for url, params in _LINK.findall(header):
        if re.search(r'rel\s*=\s*"?next"?', params):
            return url
    return None


class Paginator:
    """Base class: `first()`, `params(state, size)`, `next(state, size, response, records)`."""

    def __init__(self, spec: Pagination) -> None:
        self.spec = spec

    def first(self) -> State:
        return {}

    def params(self, state: State, size: int) -> dict[str, Any]:
        return {self.spec.size_param: size} if self.spec.size_param else {}

    def next(self, state: State, size: int, response: ProviderResponse, records: list[Any]) -> State | None:
        raise NotImplementedError


class LinkHeaderPaginator(Paginator):
    def first(self) -> State:
        return {"page": self.spec.first_page}

    def params(self, state: State, size: int) -> dict[str, Any]:
        return {**super().params(state, size), str(self.spec.page_param): state["page"]}

    def next(self, state: State, size: int, response: ProviderResponse, records: list[Any]) -> State | None:
        url = next_link(response.headers.get("Link"))
        if not url:
            return None
        values = parse_qs(urlsplit(url).query).get(str(self.spec.page_param))
        page = int(values[0]) if values and values[0].isdigit() else int(state["page"]) + 1
        return {"page": page}


class CursorPaginator(Paginator):
    def params(self, state: State, size: int) -> dict[str, Any]:
        out = super().params(state, size)
        if state.get("after"):
            out[str(self.spec.cursor_param)] = state["after"]
        return out

    def next(self, state: State, size: int, response: ProviderResponse, records: list[Any]) -> State | None:
        body = response.json()
        token = get_path(body, self.spec.next_cursor_path)
        more = get_path(body, self.spec.has_more_path) if self.spec.has_more_path else bool(token)
        if not more or not token:
            return None
        return {"after": token}


class OffsetPaginator(Paginator):
    def first(self) -> State:
        return {"offset": 0}

    def params(self, state: State, size: int) -> dict[str, Any]:
        return {**super().params(state, size), str(self.spec.offset_param): state["offset"]}

    def next(self, state: State, size: int, response: ProviderResponse, records: list[Any]) -> State | None:
        # A short page ends the data: offset APIs give no other signal.
        if len(records) < size:
            return None
        return {"offset": int(state["offset"]) + len(records)}


class PageNumberPaginator(Paginator):
    def first(self) -> State:
        return {"page": self.spec.first_page}

    def params(self, state: State, size: int) -> dict[str, Any]:
        return {**super().params(state, size), str(self.spec.page_param): state["page"]}

    def next(self, state: State, size: int, response: ProviderResponse, records: list[Any]) -> State | None:
        page = int(state["page"])
        if self.spec.last_page_path:
            last = get_path(response.json(), self.spec.last_page_path)
            if isinstance(last, int | float | str) and str(last).isdigit():
                return {"page": page + 1} if page < int(last) else None
        if len(records) < size:
            return None
        return {"page": page + 1}


PAGINATORS: dict[str, Callable[[Pagination], Paginator]] = {
    "link_header": LinkHeaderPaginator,
    "cursor": CursorPaginator,
    "offset": OffsetPaginator,
    "page_number": PageNumberPaginator,
}


def paginator_for(spec: Pagination) -> Paginator:
    """The paginator a declaration names."""
    return PAGINATORS[spec.style](spec)
