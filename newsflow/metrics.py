"""Prometheus metrics: the pipeline's observer, its ``/metrics`` endpoint, push and textfile.

The pipeline reports what it does to a :class:`PipelineMetrics` observer passed down
from the entry points (:data:`NO_METRICS`, which records nothing, by default);
:class:`PrometheusMetrics` turns the calls into Prometheus families in one registry.

Long-running: ``newsflow index --metrics-port PORT`` and ``newsflow run --every ...
--metrics-port PORT`` serve it over HTTP (:func:`serve`). A flow run in a Prefect worker,
a short-lived process, pushes its registry to a Pushgateway when it ends
(:func:`push`, ``NEWSFLOW_METRICS_PUSHGATEWAY``).

Batch runs: ``newsflow run`` writes the counts of its last cycle with
:func:`write_textfile` to ``NEWSFLOW_METRICS_TEXTFILE`` for node_exporter's textfile
collector (written to a temporary file and renamed, so a scrape never sees half a file).
Metric names and labels are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    push_to_gateway,
    start_http_server,
    write_to_textfile,
)

from connectors.buffer import Consumer
from connectors.store import RevisitCounts
from newsflow.summary import IndexSummary
from schemas import FeedConfig

__all__ = [
    "NO_METRICS",
    "BulkOutcome",
    "IndexerMetrics",
    "MetricsServer",
    "NoMetrics",
    "PipelineMetrics",
    "PrometheusMetrics",
    "feed_group",
    "push",
    "serve",
    "status_class",
    "write_textfile",
]

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
        self._count(summary, seconds)
        self.observe_lag(consumer.lag())

    def _count(self, summary: IndexSummary, seconds: float) -> None:
        with self._lock:
            for name, counter in self._counters.items():
                delta = getattr(summary, name) - getattr(self._last, name)
                if delta > 0:
                    counter.inc(delta)
            self._last = replace(summary)
            self._latency.observe(seconds)

    def observe_lag(self, lag: Mapping[int, int]) -> None:
        """Set the lag gauge per partition (partitions no longer assigned are dropped)."""
        with self._lock:
            self._lag.clear()
            for partition, records in lag.items():
                self._lag.labels(partition=str(partition)).set(records)


BulkOutcome = Literal["ok", "transient", "refused"]
"""How one bulk request ended: written (possibly with rejections or throttled documents),
failed transiently (retried), or refused as a whole (split)."""

StatusClass = Literal["2xx", "3xx", "4xx", "5xx", "error"]

_UNGROUPED = "untagged"
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def status_class(status: int | None) -> StatusClass:
    """``"2xx"`` .. ``"5xx"`` for an HTTP status; ``"error"`` when there was no answer."""
    if status is None or not 200 <= status <= 599:
        return "error"
    return ("2xx", "3xx", "4xx", "5xx")[status // 100 - 2]


def feed_group(feed: FeedConfig) -> str:
    """The feed's label in metrics: its ``group``, else its first tag, else ``untagged``.

    Never the URL, so that the number of series stays that of the groups, not the feeds.
    """
    return feed.group or (feed.tags[0] if feed.tags else _UNGROUPED)


class PipelineMetrics(Protocol):
    """What the pipeline reports as it runs; every method must be cheap and thread-safe."""

    def page_fetched(self, status: StatusClass, seconds: float) -> None:
        """One ``fetcher.get`` of an article page ended (answer or error) after ``seconds``."""

    def page_extracted(self, outcome: str, seconds: float) -> None:
        """One extraction ended: ``ok`` or the skip reason, ``seconds`` after its hand-off."""

    def feed_polled(
        self, feed: FeedConfig, outcome: str, seconds: float, consecutive_failures: int
    ) -> None:
        """One feed poll ended: ``outcome`` is the poll status (ok, failed, not_modified...)."""

    def published(self, feed: FeedConfig, articles: int, seconds: float) -> None:
        """One feed's new revisions were published to the buffer in ``seconds``."""

    def revisits(self, feed: FeedConfig, counts: RevisitCounts) -> None:
        """What ``feed`` has waiting in the retry set after its poll."""

    def quality(self, feed: FeedConfig, flags: Mapping[str, int]) -> None:
        """Extraction quality flags of one poll's pages (``newsflow.quality``)."""

    def bulk(self, documents: int, seconds: float, outcome: BulkOutcome) -> None:
        """One bulk request of the indexer to the store."""

    def consumer_lag(self, lag: Mapping[int, int]) -> None:
        """The indexer's lag per partition, after a batch."""


class NoMetrics:
    """The default observer: records nothing."""

    def page_fetched(self, status: StatusClass, seconds: float) -> None:
        pass

    def page_extracted(self, outcome: str, seconds: float) -> None:
        pass

    def feed_polled(
        self, feed: FeedConfig, outcome: str, seconds: float, consecutive_failures: int
    ) -> None:
        pass

    def published(self, feed: FeedConfig, articles: int, seconds: float) -> None:
        pass

    def revisits(self, feed: FeedConfig, counts: RevisitCounts) -> None:
        pass

    def quality(self, feed: FeedConfig, flags: Mapping[str, int]) -> None:
        pass

    def bulk(self, documents: int, seconds: float, outcome: BulkOutcome) -> None:
        pass

    def consumer_lag(self, lag: Mapping[int, int]) -> None:
        pass


NO_METRICS: PipelineMetrics = NoMetrics()


class PrometheusMetrics(IndexerMetrics):
    """:class:`PipelineMetrics` as Prometheus families, beside the indexer's counters.

    The families and their labels are listed in ``docs/metrics.md``. Labels are bounded:
    feeds appear by group, except in ``newsflow_feed_failing``, which holds a series only
    for the feeds failing right now.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self._fetch = Histogram(
            "newsflow_fetch_seconds",
            "Article page fetches, by status class of the final answer (error: none).",
            ["status_class"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self._extract = Histogram(
            "newsflow_extract_seconds",
            "Extractions, from hand-off to the pool to the result, by outcome.",
            ["outcome"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self._polls = Counter(
            "newsflow_feed_polls",
            "Feed polls by feed group and outcome.",
            ["group", "outcome"],
            registry=r,
        )
        self._poll_seconds = Histogram(
            "newsflow_feed_poll_seconds",
            "Whole feed polls (feed, pages, extraction, publication), by feed group.",
            ["group"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self._failing = Gauge(
            "newsflow_feed_failing",
            "Consecutive failed polls of each feed failing now (no series for healthy feeds).",
            ["group", "feed"],
            registry=r,
        )
        self._articles = Counter(
            "newsflow_articles_published",
            "Article revisions published to the buffer, by feed group.",
            ["group"],
            registry=r,
        )
        self._publish = Histogram(
            "newsflow_publish_seconds",
            "Publications of one feed's new revisions to the buffer (until acknowledged).",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self._retry_set = Gauge(
            "newsflow_retry_set_size",
            "Pages waiting in the retry set (not given up), by feed group.",
            ["group"],
            registry=r,
        )
        self._given_up = Gauge(
            "newsflow_retry_given_up",
            "Pages given up for good and still recorded, by feed group.",
            ["group"],
            registry=r,
        )
        self._bulk = Histogram(
            "newsflow_indexer_bulk_seconds",
            "Bulk requests of the indexer to the store, by outcome.",
            ["outcome"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self._bulk_docs = Counter(
            "newsflow_indexer_bulk_documents",
            "Documents sent in bulk requests (retries included), by outcome.",
            ["outcome"],
            registry=r,
        )
        self._quality = Counter(
            "newsflow_extraction_quality_pages",
            "Pages extracted or skipped (flag=pages) and those of them with each quality "
            "flag (no_date, no_author, short_text, teaser, paywall, timeout, feed_text), "
            "by feed group.",
            ["group", "flag"],
            registry=r,
        )
        self._revisit_counts: dict[str, tuple[str, RevisitCounts]] = {}
        for status in ("2xx", "3xx", "4xx", "5xx", "error"):
            self._fetch.labels(status_class=status)  # every class from 0, for rate()

    def page_fetched(self, status: StatusClass, seconds: float) -> None:
        self._fetch.labels(status_class=status).observe(seconds)

    def page_extracted(self, outcome: str, seconds: float) -> None:
        self._extract.labels(outcome=outcome).observe(seconds)

    def feed_polled(
        self, feed: FeedConfig, outcome: str, seconds: float, consecutive_failures: int
    ) -> None:
        group = feed_group(feed)
        self._polls.labels(group=group, outcome=outcome).inc()
        if outcome in ("not_due", "disabled"):
            return
        self._poll_seconds.labels(group=group).observe(seconds)
        self._articles.labels(group=group)  # the group's series exists from its first poll
        with self._lock:
            if consecutive_failures > 0:
                self._failing.labels(group=group, feed=feed.url).set(consecutive_failures)
            else:
                try:
                    self._failing.remove(group, feed.url)
                except KeyError:
                    pass

    def published(self, feed: FeedConfig, articles: int, seconds: float) -> None:
        self._articles.labels(group=feed_group(feed)).inc(articles)
        self._publish.observe(seconds)

    def revisits(self, feed: FeedConfig, counts: RevisitCounts) -> None:
        with self._lock:
            self._revisit_counts[feed.url] = (feed_group(feed), counts)
            retries: dict[str, int] = {}
            given_up: dict[str, int] = {}
            for group, each in self._revisit_counts.values():
                retries[group] = retries.get(group, 0) + each.retries
                given_up[group] = given_up.get(group, 0) + each.given_up
            for group, value in retries.items():
                self._retry_set.labels(group=group).set(value)
                self._given_up.labels(group=group).set(given_up[group])

    def quality(self, feed: FeedConfig, flags: Mapping[str, int]) -> None:
        group = feed_group(feed)
        for flag, count in flags.items():
            if count:
                self._quality.labels(group=group, flag=flag).inc(count)

    def on_batch(self, summary: IndexSummary, consumer: Consumer, seconds: float) -> None:
        """Counts and batch latency only: the indexer reports the lag to :meth:`consumer_lag`
        itself when it has this observer, so it is read once per batch."""
        self._count(summary, seconds)

    def bulk(self, documents: int, seconds: float, outcome: BulkOutcome) -> None:
        self._bulk.labels(outcome=outcome).observe(seconds)
        self._bulk_docs.labels(outcome=outcome).inc(documents)

    def consumer_lag(self, lag: Mapping[int, int]) -> None:
        self.observe_lag(lag)


def push(
    registry: CollectorRegistry,
    gateway: str,
    job: str,
    *,
    instance: str | None = None,
    timeout: float = 10.0,
) -> None:
    """Replace the group ``{job, instance}`` on the Pushgateway at ``gateway`` with ``registry``.

    ``instance`` defaults to the host name, so workers on different hosts keep their own
    group; runs on one host replace each other's (the last run's values are what is kept).
    """
    grouping = {"instance": instance or socket.gethostname()}
    push_to_gateway(gateway, job=job, registry=registry, grouping_key=grouping, timeout=timeout)


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
