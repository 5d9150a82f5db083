"""``newsflow doctor``: is every backend the settings select reachable and set up?

:func:`run_checks` aggregates what the connectors report about themselves
(:meth:`connectors.buffer.Buffer.check`, :meth:`connectors.store.Store.check`: Kafka's
brokers, topics and the indexer group's lag, or the embedded buffer's file, topics and
lag; Elasticsearch's cluster, template, aliases and feeds index, or the embedded store's
file) and, when an address is given, Prefect's API. Nothing is created, joined or
changed: the connectors are opened with ``create=False`` and their checks only look.

Each check is one :class:`~connectors.health.Check`: ``ok``, ``FAIL`` (with what is wrong
and what to do) or ``skip`` (not applicable, or not checkable because an earlier check
failed).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from connectors import open_buffer, open_store
from connectors.health import Check
from newsflow.settings import Settings

__all__ = ["Check", "run_checks"]


def _buffer_checks(settings: Settings, timeout: float) -> list[Check]:
    kafka = settings.kafka
    buffer = open_buffer(settings, create=False)
    try:
        return buffer.check([kafka.topic, kafka.dlq_topic], kafka.consumer_group, timeout=timeout)
    finally:
        buffer.close()


def _store_checks(settings: Settings, timeout: float) -> list[Check]:
    store = open_store(settings, create=False)
    try:
        return store.check(timeout=timeout)
    finally:
        store.close()


# --- Prefect -----------------------------------------------------------------------------


def _prefect_check(url: str | None, timeout: float) -> Check:
    if not url:
        return Check.skip("prefect api", "PREFECT_API_URL not set: each run starts a temporary API")
    health = url.rstrip("/") + "/health"
    try:
        response = httpx.get(health, timeout=timeout)
    except httpx.HTTPError as exc:
        return Check.fail("prefect api", f"{health} unreachable: {type(exc).__name__}: {exc}")
    if response.status_code != 200:
        return Check.fail("prefect api", f"{health} answered HTTP {response.status_code}")
    return Check.ok("prefect api", f"{health} healthy")


# --- all of it ---------------------------------------------------------------------------


def run_checks(
    settings: Settings, *, prefect_api_url: str | None = None, timeout: float = 10.0
) -> list[Check]:
    """Every check for the backends ``settings`` select; never raises for a failed check.

    ``timeout`` bounds each network request (seconds).
    """
    buffer_name = "kafka" if settings.kafka.bootstrap_servers else "embedded buffer"
    store_name = "elasticsearch" if settings.elasticsearch.url else "embedded store"
    return [
        *_guarded(buffer_name, lambda: _buffer_checks(settings, timeout)),
        *_guarded(store_name, lambda: _store_checks(settings, timeout)),
        _prefect_check(prefect_api_url, timeout),
    ]


def _guarded(name: str, checks: Callable[[], list[Check]]) -> list[Check]:
    """A check that crashed is a failed check, not a crashed doctor."""
    try:
        return checks()
    except Exception as exc:  # reported, with its type, as a FAIL line
        return [Check.fail(name, f"check crashed: {type(exc).__name__}: {exc}")]
