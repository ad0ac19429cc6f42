"""The declaration's converters: the fast string paths agree with the full parse."""

from __future__ import annotations

import pytest

from unicrm.providers.declaration import Scale, iso_utc, parse_iso_datetime, to_iso_utc


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-14T08:31:05Z",
        "2025-01-14T08:31:05.412Z",
        "2025-01-14T08:31:05.000Z",
        "2025-01-14 08:31:05",
        "2025-01-14 08:31:05.123456+00:00",
        "2025-01-14 08:31:05.000000+00:00",
        "2025-01-14T08:31:05+00:00",
        "2025-01-14T08:31:05.5Z",
        "2025-01-14T10:31:05+02:00",
        "2025-01-14T08:31:05.412-01:30",
    ],
)
def test_to_iso_utc_matches_the_full_parse(text: str) -> None:
    assert to_iso_utc(text) == iso_utc(parse_iso_datetime(text))


def test_to_iso_utc_forms() -> None:
    assert to_iso_utc("2025-01-14 08:31:05") == "2025-01-14T08:31:05Z"
    assert to_iso_utc("2025-01-14T08:31:05.000Z") == "2025-01-14T08:31:05Z"
    assert to_iso_utc("2025-01-14T10:31:05+02:00") == "2025-01-14T08:31:05Z"


@pytest.mark.parametrize(("thousands", "unified"), [(1.1, 1100.0), (86.5, 86500.0), (0.001, 1.0), (12, 12000.0), ("2.5", 2500.0)])
def test_scale_is_exact(thousands: object, unified: float) -> None:
    scale = Scale(1000)
    assert scale.read(thousands, {}) == unified
    assert scale.write(unified, {}) == float(str(thousands))
