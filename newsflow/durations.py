"""Durations as people type them (``"90s"``, ``"15m"``, ``"1h30m"``, ``"7d"``, ``"1w"``).

One reading of a duration for every place that takes one: a feed's ``poll_interval`` in a
feeds file, ``newsflow feeds add --interval`` and the age in ``newsflow search --since``;
and one way of printing one back (``newsflow feeds list`` and ``feeds status``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["MAX_DURATION", "format_duration", "parse_duration", "parse_since"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_DURATION = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[smhdw])+\s*", re.IGNORECASE)
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")
# Printed units, largest first. Weeks are read but never printed: a week prints as "7d".
_EXACT_UNITS = (("d", 86400), ("h", 3600), ("m", 60))
MAX_DURATION = 10 * 366 * 86400.0
"""Ten years: longer is a typo (and past what a datetime can add), never a schedule."""


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a duration string.

    A string is a plain number of seconds (``"45"``) or one or more number-unit parts
    (``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1w"``, ``"1h30m"``, ``" 1.5 H "``): units
    s, m, h, d and w in either case, spaces allowed around the parts. Raises
    :class:`ValueError` with a readable message for anything else, negative numbers and
    booleans included.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected seconds or a duration like '15m', got {value!r}")
    if isinstance(value, int | float):
        return _bounded(float(value), value)
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return _bounded(float(value), value)
        if _DURATION.fullmatch(value):
            return _bounded(_sum_parts(value), value)
    raise ValueError(f"expected seconds or a duration like '90s', '15m', '2h', '1d', got {value!r}")


def _bounded(seconds: float, value: object) -> float:
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    if not seconds <= MAX_DURATION:  # also refuses nan and inf
        raise ValueError(f"{value!r} is longer than ten years")
    return seconds


def _sum_parts(value: str) -> float:
    return sum(float(number) * _UNITS[unit.lower()] for number, unit in _PART.findall(value))


def format_duration(seconds: float, *, approximate: bool = False) -> str:
    """``seconds`` as a duration string that :func:`parse_duration` reads back.

    Exact (the default): the largest of d, h and m that divides ``seconds`` evenly
    (``"15m"``, ``"90m"``, ``"2d"``), else seconds (``"45s"``, ``"2.5s"``). With
    ``approximate``, for a glance at an age: whole seconds under a minute, whole minutes
    under an hour, then hours or days to one decimal (``"5m"``, ``"1.5h"``, ``"2.0d"``).
    """
    if approximate:
        if seconds < 60:
            return f"{seconds:.0f}s"
        if seconds < 3600:
            return f"{seconds / 60:.0f}m"
        if seconds < 86400:
            return f"{seconds / 3600:.1f}h"
        return f"{seconds / 86400:.1f}d"
    for unit, size in _EXACT_UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """The moment ``value`` names: an age before ``now`` or an ISO 8601 date or time.

    An age is a duration with a unit (``"12h"``, ``"7d"``, ``"1w"``, ``"1h30m"``; a bare
    number is not an age, it is read as a date such as ``"20240501"``). A date or time
    without a zone is taken as UTC. ``now`` defaults to the current time. Raises
    :class:`ValueError` saying what is accepted.
    """
    if _DURATION.fullmatch(value):
        age = _sum_parts(value)
        if age > 100 * 366 * 86400:
            raise ValueError(f"{value!r}: an age of more than a century")
        return (now or datetime.now(UTC)) - timedelta(seconds=age)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r}: use a date (2024-05-01) or an age (12h, 7d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
