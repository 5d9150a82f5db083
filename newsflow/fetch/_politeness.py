"""Concurrency and politeness: a global and a per-host limit on requests in flight, and a
minimum delay between the starts of requests to one host.

The clock and the sleep are injectable so the schedule can be tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Politeness"]


@dataclass(slots=True)
class _Host:
    semaphore: threading.BoundedSemaphore
    delay: float
    next_start: float = 0.0


class Politeness:
    """Hands out request slots; thread-safe, one per :class:`~newsflow.fetch.Fetcher`."""

    def __init__(
        self,
        *,
        concurrency: int,
        per_host_concurrency: int,
        per_host_delay: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._per_host_concurrency = per_host_concurrency
        self._per_host_delay = per_host_delay
        self._clock = clock
        self._sleep = sleep
        self._global = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        with self._lock:
            state = self._hosts.get(host)
            if state is None:
                state = _Host(
                    threading.BoundedSemaphore(self._per_host_concurrency), self._per_host_delay
                )
                self._hosts[host] = state
            return state

    def set_delay(self, host: str, delay: float) -> None:
        """Space requests to ``host`` ``delay`` seconds apart (never less than the setting)."""
        state = self._host(host)
        with self._lock:
            state.delay = max(self._per_host_delay, delay)

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold a per-host and a global slot, starting no sooner than the host's delay."""
        state = self._host(host)
        with state.semaphore:
            with self._lock:
                now = self._clock()
                start = max(now, state.next_start)
                state.next_start = start + state.delay
            if start > now:
                self._sleep(start - now)
            with self._global:
                with self._lock:
                    # Waiting for the global slot may have pushed our start later.
                    state.next_start = max(state.next_start, self._clock() + state.delay)
                yield
