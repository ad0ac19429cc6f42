"""Cursors are opaque, signed, and bound to their account and filters."""

from __future__ import annotations

import pytest

from unicrm.engine.cursor import CursorCodec
from unicrm.engine.errors import ApiError

codec = CursorCodec(b"k" * 32)


def test_round_trip() -> None:
    cursor = codec.encode("acc", "f", {"page": 3})
    assert codec.decode(cursor, "acc", "f") == {"page": 3}


@pytest.mark.parametrize("mutate", [lambda c: c + "x", lambda c: "A" + c, lambda c: c.split(".")[0], lambda c: "%%%"])
def test_tampered(mutate: object) -> None:
    cursor = codec.encode("acc", "f", {"page": 3})
    with pytest.raises(ApiError) as err:
        codec.decode(mutate(cursor), "acc", "f")  # type: ignore[operator]
    assert err.value.status == 400


def test_foreign_account_and_filters() -> None:
    cursor = codec.encode("acc", "f", {"page": 3})
    with pytest.raises(ApiError, match="another integrated account"):
        codec.decode(cursor, "other", "f")
    with pytest.raises(ApiError, match="different filters"):
        codec.decode(cursor, "acc", "g")
    with pytest.raises(ApiError):
        CursorCodec(b"other").decode(cursor, "acc", "f")


def test_a_cursor_with_non_ascii_characters_is_a_400_not_a_500() -> None:
    import pytest

    from unicrm.engine.cursor import CursorCodec
    from unicrm.engine.errors import ApiError

    codec = CursorCodec(b"k" * 32)
    for cursor in (".\u00cc\u00f1", "eyJ9.\u00e9t\u00e9", "\u00e9.\u00e9"):
        with pytest.raises(ApiError) as caught:
            codec.decode(cursor, "acc", "")
        assert caught.value.status == 400
