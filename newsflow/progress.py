"""Progress reporting hook for long phases (fetch/extract, index).

Stages and flows report through :func:`reporter`; the CLI installs a rich progress bar
when attached to a terminal. Without one installed, reporting costs nothing.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullReporter", "Reporter", "install", "reporter"]


class Reporter(Protocol):
    def add(self, phase: str, total: int) -> None:
        """``total`` more units of work are expected in ``phase``."""
        ...

    def advance(self, phase: str, amount: int = 1) -> None:
        """``amount`` units of ``phase`` are done."""
        ...


class NullReporter:
    def add(self, phase: str, total: int) -> None:
        return None

    def advance(self, phase: str, amount: int = 1) -> None:
        return None


_current: Reporter = NullReporter()


def install(new: Reporter | None) -> None:
    """Make ``new`` the process-wide reporter (``None`` restores the silent one)."""
    global _current
    _current = new if new is not None else NullReporter()


def reporter() -> Reporter:
    """The process-wide reporter."""
    return _current
