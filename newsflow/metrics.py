"""Prometheus metrics: the indexer's ``/metrics`` endpoint and the flow runs' textfile.

Long-running: ``newsflow index --metrics-port PORT`` serves :class:`IndexerMetrics` over
HTTP, updated after every batch through the indexer's ``on_batch`` callback.

Batch runs: ``newsflow run`` writes the counts of its last cycle with
:func:`write_textfile` to ``NEWSFLOW_METRICS_TEXTFILE`` for node_exporter's textfile
collector (written to a temporary file and renamed, so a scrape never sees half a file).
Metric names and labels are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
    write_to_textfile,
)

from connectors.buffer import Consumer
from newsflow.summary import IndexSummary

__all__ = ["IndexerMetrics", "MetricsServer", "serve", "write_textfile"]

_BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_COUNTERS = {
    "consumed": "Records polled from the buffer.",
    "indexed": "Article revisions written to the store.",
    "duplicates": "Revisions the store already had (same or newer revision).",
    "dead_lettered": "Records sent to the dead-letter topic.",
    "retries": "Bulk requests sent again after a transient failure.",
}


class IndexerMetrics:
    """Counters, batch latency and consumer lag of one indexer, in their own registry.

    The registry also carries the process's CPU, memory and file descriptors, Python's
    garbage collector and version (``process_*``, ``python_*``) like the default one.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                registry.register(collector)
        self.registry = registry
        self._counters = {
            name: Counter(f"newsflow_indexer_{name}", help_, registry=self.registry)
            for name, help_ in _COUNTERS.items()
        }
        self._latency = Histogram(
            "newsflow_indexer_batch_seconds",
            "Time from a batch's poll to its offset commit.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self._lag = Gauge(
            "newsflow_indexer_consumer_lag",
            "Records of the topic not yet committed by the group, after the last batch.",
            ["partition"],
            registry=self.registry,
        )
        self._last = IndexSummary()
        self._lock = threading.Lock()

    def on_batch(self, summary: IndexSummary, consumer: Consumer, seconds: float) -> None:
        """The indexer's ``on_batch`` callback: ``summary`` holds the run's totals so far."""
        with self._lock:
            for name, counter in self._counters.items():
                delta = getattr(summary, name) - getattr(self._last, name)
                if delta > 0:
                    counter.inc(delta)
            self._last = replace(summary)
            self._latency.observe(seconds)
        self.observe_lag(consumer.lag())

    def observe_lag(self, lag: Mapping[int, int]) -> None:
        """Set the lag gauge per partition (partitions no longer assigned are dropped)."""
        with self._lock:
            self._lag.clear()
            for partition, records in lag.items():
                self._lag.labels(partition=str(partition)).set(records)


class MetricsServer:
    """A running ``/metrics`` endpoint."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = int(server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve ``registry`` on ``http://host:port/metrics`` from a daemon thread.

    ``port=0`` picks a free port (see :attr:`MetricsServer.port`). Raises :class:`OSError`
    when the address is taken.
    """
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread, host)


def _metric_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key).lower()


def write_textfile(
    path: Path,
    job: str,
    counts: Mapping[str, object],
    *,
    success: bool,
    duration: float,
    finished_at: float | None = None,
) -> None:
    """Write one run's counts to ``path`` in the Prometheus text format, atomically.

    Each numeric count ``key`` becomes ``newsflow_<job>_last_run{count="key"}``; counts
    named ``skipped.<reason>`` become ``newsflow_<job>_last_run_skipped{reason=...}``.
    Non-numeric values are left out.
    """
    registry = CollectorRegistry()
    prefix = f"newsflow_{_metric_name(job)}_last_run"
    last = Gauge(prefix, f"Counts of the last {job} run.", ["count"], registry=registry)
    skipped = Gauge(
        f"{prefix}_skipped",
        f"Pages skipped in the last {job} run, by reason.",
        ["reason"],
        registry=registry,
    )
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key.startswith("skipped."):
            skipped.labels(reason=key.removeprefix("skipped.")).set(value)
        else:
            last.labels(count=key).set(value)
    Gauge(
        f"{prefix}_success", f"1 when the last {job} run succeeded, else 0.", registry=registry
    ).set(1 if success else 0)
    Gauge(
        f"{prefix}_timestamp_seconds",
        f"When the last {job} run ended (Unix time).",
        registry=registry,
    ).set(finished_at if finished_at is not None else time.time())
    Gauge(
        f"{prefix}_duration_seconds", f"How long the last {job} run took.", registry=registry
    ).set(duration)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
