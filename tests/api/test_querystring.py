"""The query-string parser accepts every form Truto's clients send (PRODUCT §3.1)."""

from __future__ import annotations

import pytest

from unicrm.api.querystring import QueryStringError, as_bool, as_list, parse_query


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("truto_exclude_fields[]=id&truto_exclude_fields[]=name", {"truto_exclude_fields": ["id", "name"]}),
        ("truto_exclude_fields%5B%5D=id&truto_exclude_fields%5B%5D=name", {"truto_exclude_fields": ["id", "name"]}),
        ("truto_exclude_fields%5B0%5D=id&truto_exclude_fields%5B1%5D=name", {"truto_exclude_fields": ["id", "name"]}),
        ("truto_exclude_fields[1]=name&truto_exclude_fields[0]=id", {"truto_exclude_fields": ["id", "name"]}),
        ("truto_exclude_fields=id&truto_exclude_fields=name", {"truto_exclude_fields": ["id", "name"]}),
        ("remote_query[filter][status]=open", {"remote_query": {"filter": {"status": "open"}}}),
        ("remote_query%5Bfoo%5D=bar&remote_query%5Bnested%5D%5Ba%5D=1", {"remote_query": {"foo": "bar", "nested": {"a": "1"}}}),
        ("arr%5B%5D%5Ba%5D=1&arr%5B%5D%5Bb%5D=2", {"arr": [{"a": "1", "b": "2"}]}),
        ("arr[][a]=1&arr[][a]=2", {"arr": [{"a": "1"}, {"a": "2"}]}),
        ("q=hello+world&r=hello%20world", {"q": "hello world", "r": "hello world"}),
        ("next_cursor=&limit=5", {"limit": "5"}),
        ("truto_key_by=None&limit=5", {"limit": "5"}),
        ("updated_at[gt]=2025-01-01T00:00:00Z", {"updated_at": {"gt": "2025-01-01T00:00:00Z"}}),
        ("", {}),
        ("a=1&&b=2", {"a": "1", "b": "2"}),
    ],
)
def test_forms(raw: str, expected: dict[str, object]) -> None:
    assert parse_query(raw) == expected


def test_conflicting_forms_are_refused() -> None:
    with pytest.raises(QueryStringError):
        parse_query("a=1&a[b]=2")
    with pytest.raises(QueryStringError):
        parse_query("a[]=1&a[b]=2")


def test_list_and_bool_helpers() -> None:
    assert as_list("id,name") == ["id", "name"]
    assert as_list(["id,name", "owner.name"]) == ["id", "name", "owner.name"]
    assert as_bool("TRUE", "x") and not as_bool("false", "x") and as_bool("", "x")
    with pytest.raises(QueryStringError):
        as_bool("maybe", "x")
