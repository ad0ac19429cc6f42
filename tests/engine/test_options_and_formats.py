"""Request options and response shaping."""

from __future__ import annotations

import pytest

from unicrm.api.querystring import parse_query
from unicrm.engine.errors import ApiError
from unicrm.engine.formats import exclude_fields, key_by, normalize
from unicrm.engine.options import parse_options
from unicrm.model import FIELDS


def test_options() -> None:
    opts = parse_options(parse_query("limit=5&truto_response_format=debug&truto_exclude_fields=a,b&updated_at[gte]=2025-01-01"))
    assert opts.limit == 5 and opts.format == "debug" and opts.exclude_fields == ("a", "b")
    assert opts.filters[0].field == "updated_at" and opts.filters[0].op == "gte"


@pytest.mark.parametrize(
    "raw",
    [
        "limit=0",
        "limit=-1",
        "limit=1000000000",
        "limit=x",
        "truto_response_format=xml",
        "updated_at=2025",
        "updated_at[eq]=2025-01-01",
        "updated_at[gt]=soon",
        "remote_query=x",
        "truto_ignore_remote_data=maybe",
    ],
)
def test_bad_options(raw: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_options(parse_query(raw))
    assert err.value.status == 400


def test_normalize_fills_every_field_and_coerces() -> None:
    out = normalize({"id": "1", "amount": "12.5", "close_date": "2025-06-30", "contact": None, "remote_data": {}})
    assert set(out) == {f.name for f in FIELDS}
    assert out["amount"] == 12.5 and out["close_date"] == "2025-06-30T00:00:00Z" and out["contact"] == []


def test_exclude_and_key_by() -> None:
    record = {"id": "1", "owner": {"id": "2", "name": "N"}, "contact": [{"id": "3", "name": "C"}]}
    assert exclude_fields(record, ("owner.name", "contact.name")) == {"id": "1", "owner": {"id": "2"}, "contact": [{"id": "3"}]}
    assert key_by([{"id": "1"}, {"id": "2"}], "id") == {"1": {"id": "1"}, "2": {"id": "2"}}
    with pytest.raises(ApiError):
        key_by([{"id": "1", "owner": {"id": "x"}}], "owner")
