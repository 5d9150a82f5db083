"""Reading and printing durations: poll intervals, feed ages and `search --since`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from newsflow.durations import format_duration, parse_duration, parse_since

NOW = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("45", 45.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        (" 1.5 H ", 5400.0),
        ("1d 12h", 129600.0),
    ],
)
def test_duration_strings(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["soon", "15 minutes", "-5m", "", "m", "1y", "5m-", True, -1, None, [1]]
)
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="expected seconds|must not be negative"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (2.5, "2.5s"),
        (900.0, "15m"),
        (5400, "90m"),
        (7200, "2h"),
        (86400, "1d"),
        (604800, "7d"),
        (90061, "90061s"),
    ],
)
def test_format_duration_is_exact_and_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "0s"),
        (59.4, "59s"),
        (60, "1m"),
        (299.0, "5m"),
        (3599, "60m"),
        (5400, "1.5h"),
        (86399, "24.0h"),
        (172800, "2.0d"),
        (10 * 86400, "10.0d"),
    ],
)
def test_format_duration_approximate(seconds: float, text: str) -> None:
    assert format_duration(seconds, approximate=True) == text


@pytest.mark.parametrize(
    ("age", "before"),
    [
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_since_an_age(age: str, before: timedelta) -> None:
    assert parse_since(age, now=NOW) == NOW - before


def test_since_an_age_defaults_to_now() -> None:
    before = datetime.now(UTC)
    moment = parse_since("1d")
    after = datetime.now(UTC)
    assert before - timedelta(days=1) <= moment <= after - timedelta(days=1)


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("20240501", datetime(2024, 5, 1, tzinfo=UTC)),  # a bare number is a date, not an age
        ("2024-05-01T06:30", datetime(2024, 5, 1, 6, 30, tzinfo=UTC)),
        (
            "2024-05-01T06:30+02:00",
            datetime(2024, 5, 1, 6, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_since_a_date(value: str, moment: datetime) -> None:
    parsed = parse_since(value, now=NOW)
    assert parsed == moment
    assert parsed.utcoffset() == moment.utcoffset()


@pytest.mark.parametrize("value", ["yesterday", "-7d", "7 days", "", "2024-13-01"])
def test_since_refuses_anything_else(value: str) -> None:
    with pytest.raises(ValueError, match=r"use a date \(2024-05-01\) or an age \(12h, 7d\)"):
        parse_since(value, now=NOW)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "99999999999d", 10 * 367 * 86400])
def test_durations_past_ten_years_are_refused(value: object) -> None:
    # Past a datetime's range they would crash every poll of the feed.
    with pytest.raises(ValueError):
        parse_duration(value)


def test_an_age_of_more_than_a_century_is_refused() -> None:
    with pytest.raises(ValueError, match="century"):
        parse_since("99999999999d")
