"""Health records: what a connector's ``check()`` reports about its own backend.

Each :class:`Check` is one line of ``newsflow doctor``: ``ok``, ``FAIL`` (with what is
wrong and what to do) or ``skip`` (not applicable, or not checkable because an earlier
check failed). Checks only look: they never create, join or change anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["SETUP_HINT", "Check", "Status", "describe_lag"]

Status = Literal["ok", "FAIL", "skip"]

SETUP_HINT = "created when `newsflow index` or `newsflow run` starts"
"""What a missing topic, index or table is told to wait for."""


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    @classmethod
    def ok(cls, name: str, detail: str) -> Check:
        return cls(name, "ok", detail)

    @classmethod
    def fail(cls, name: str, detail: str) -> Check:
        return cls(name, "FAIL", detail)

    @classmethod
    def skip(cls, name: str, detail: str) -> Check:
        return cls(name, "skip", detail)


def describe_lag(lag: Mapping[int, int], note: str = "") -> str:
    """``total=N (p0=.. p1=..)`` and an optional note, as a lag check's detail."""
    parts = " ".join(f"p{partition}={lag[partition]}" for partition in sorted(lag))
    text = f"total={sum(lag.values())}" + (f" ({parts})" if parts else "")
    return f"{text}; {note}" if note else text
