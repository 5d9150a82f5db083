"""Progress reporting hook for long phases (fetch/extract, index).

Stages report through :func:`reporter`; the CLI and the demo install a
:class:`BarsReporter` when attached to a terminal. Without one installed, reporting costs nothing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["BarsReporter", "NullReporter", "Reporter", "install", "reporter"]


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


class BarsReporter:
    """A :class:`Reporter` drawing one rich progress bar per phase.

    ``label`` prefixes each bar's description (the demo names its cycles). Feeds report
    from several threads at once, hence the lock.
    """

    def __init__(self, bars: Progress, label: str = "") -> None:
        self._bars = bars
        self._label = label
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def task(self, phase: str, total: int = 0) -> TaskID:
        """The bar of ``phase``, created (with ``total``) on first use."""
        with self._lock:
            if phase not in self._tasks:
                name = f"{self._label} {phase}" if self._label else phase
                self._tasks[phase] = self._bars.add_task(name, total=total)
            return self._tasks[phase]

    def add(self, phase: str, total: int) -> None:
        task = self.task(phase)
        with self._lock:
            current = self._bars.tasks[task].total or 0
            self._bars.update(task, total=current + total)

    def advance(self, phase: str, amount: int = 1) -> None:
        with self._lock:
            task = self._tasks.get(phase)
        if task is not None:
            self._bars.advance(task, amount)
