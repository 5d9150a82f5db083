"""Prometheus metrics: indexer counters over HTTP, the flow runs' textfile."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors import open_buffer, open_store
from connectors.buffer import InRecord, OutRecord
from newsflow.indexer import Indexer
from newsflow.metrics import IndexerMetrics, serve, write_textfile
from newsflow.publish import encode
from newsflow.settings import Settings
from newsflow.summary import IndexSummary
from schemas import Article

REPO = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``(sample name, sorted labels) -> value`` of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _articles(sample: Article, count: int) -> list[Article]:
    return [
        sample.model_copy(
            update={"doc_id": f"{n:032x}", "url": f"https://news.example.com/story-{n}"}
        )
        for n in range(1, count + 1)
    ]


class _Lagging:
    """A consumer whose lag is whatever the test says."""

    def __init__(self, lag: dict[int, int]) -> None:
        self.lag_now = lag

    def poll(self, max_records: int, timeout: float) -> list[InRecord]:
        return []

    def commit(self) -> None:
        return None

    def lag(self) -> dict[int, int]:
        return self.lag_now

    def waiting(self) -> int:
        return sum(self.lag_now.values())

    def close(self) -> None:
        return None


def test_batches_add_their_deltas_to_the_counters() -> None:
    metrics = IndexerMetrics()
    consumer = _Lagging({0: 5, 1: 0})
    first = IndexSummary(consumed=10, indexed=8, duplicates=1, dead_lettered=1)
    metrics.on_batch(first, consumer, 0.2)
    consumer.lag_now = {1: 3}  # partition 0 moved to another member
    second = IndexSummary(consumed=15, indexed=12, duplicates=2, dead_lettered=1, retries=2)
    metrics.on_batch(second, consumer, 1.5)
    registry = metrics.registry
    values = {
        name: registry.get_sample_value(f"newsflow_indexer_{name}_total")
        for name in ("consumed", "indexed", "duplicates", "dead_lettered", "retries")
    }
    assert values == {
        "consumed": 15,
        "indexed": 12,
        "duplicates": 2,
        "dead_lettered": 1,
        "retries": 2,
    }
    assert registry.get_sample_value("newsflow_indexer_batch_seconds_count") == 2
    assert registry.get_sample_value("newsflow_indexer_batch_seconds_sum") == pytest.approx(1.7)
    assert registry.get_sample_value("newsflow_indexer_batch_seconds_bucket", {"le": "0.25"}) == 1
    assert registry.get_sample_value("newsflow_indexer_consumer_lag", {"partition": "1"}) == 3
    assert registry.get_sample_value("newsflow_indexer_consumer_lag", {"partition": "0"}) is None


def test_the_endpoint_serves_the_registry() -> None:
    metrics = IndexerMetrics()
    metrics.observe_lag({2: 7})
    server = serve(metrics.registry, "127.0.0.1", 0)
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        response = httpx.get(server.url, timeout=10)
        assert response.status_code == 200
        samples = _samples(response.text)
        assert samples[("newsflow_indexer_consumer_lag", (("partition", "2"),))] == 7
        assert samples[("newsflow_indexer_indexed_total", ())] == 0
        assert samples[("process_resident_memory_bytes", ())] > 0
        with pytest.raises(OSError):
            serve(metrics.registry, "127.0.0.1", server.port)  # the port is taken
    finally:
        server.close()


def test_the_textfile_holds_the_last_run_and_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "newsflow.prom"
    counts: dict[str, object] = {
        "feeds_polled": 4,
        "published": 12,
        "skipped": 3,
        "skipped.robots": 1,
        "skipped.too_short": 2,
        "note": "not a number",
    }
    write_textfile(path, "poll_feeds", counts, success=True, duration=2.5, finished_at=1.7e9)
    samples = _samples(path.read_text())
    assert samples[("newsflow_poll_feeds_last_run", (("count", "published"),))] == 12
    assert samples[("newsflow_poll_feeds_last_run", (("count", "skipped"),))] == 3
    assert samples[("newsflow_poll_feeds_last_run_skipped", (("reason", "too_short"),))] == 2
    assert samples[("newsflow_poll_feeds_last_run_success", ())] == 1
    assert samples[("newsflow_poll_feeds_last_run_duration_seconds", ())] == 2.5
    assert samples[("newsflow_poll_feeds_last_run_timestamp_seconds", ())] == 1.7e9
    assert not any("note" in str(key) for key in samples)

    write_textfile(path, "poll_feeds", {}, success=False, duration=0.1)
    samples = _samples(path.read_text())
    assert samples[("newsflow_poll_feeds_last_run_success", ())] == 0
    assert ("newsflow_poll_feeds_last_run", (("count", "published"),)) not in samples
    assert [p.name for p in path.parent.iterdir()] == ["newsflow.prom"]  # no temporary left


@pytest.fixture
def embedded_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Embedded backends under tmp_path, whatever the environment pointed at."""
    for name in list(os.environ):
        if name.startswith("NEWSFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


@pytest.fixture
def indexer_process(embedded_env: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``newsflow index --metrics-port 0`` running on the embedded backends, and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "newsflow.cli", "index", "--metrics-port", "0"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    url = ""
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not url:
            line = process.stderr.readline()
            if not line:
                break
            found = re.search(r"serving metrics on (http://\S+)", line)
            url = found.group(1) if found else ""
        assert url, "the indexer did not announce its metrics endpoint"
        yield process, url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _scrape_until(url: str, name: str, value: float, timeout: float = 60) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        samples = {
            key[0] + ("" if not key[1] else str(dict(key[1]))): v
            for key, v in _samples(httpx.get(url, timeout=10).text).items()
        }
        if samples.get(name) == value or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_a_running_indexer_counts_what_it_indexes(
    indexer_process: tuple[subprocess.Popen[str], str], sample_article: Article
) -> None:
    process, url = indexer_process
    settings = Settings()
    articles = _articles(sample_article, 5)
    buffer = open_buffer(settings)
    try:
        buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
        buffer.publish(settings.kafka.topic, [encode(a) for a in articles])
        buffer.publish(settings.kafka.topic, [encode(articles[0])])  # a replay
        buffer.publish(settings.kafka.topic, [OutRecord(key="poison", value=b"{not json")])
    finally:
        buffer.close()

    samples = _scrape_until(url, "newsflow_indexer_consumed_total", 7)
    assert process.poll() is None
    assert samples["newsflow_indexer_consumed_total"] == 7
    assert samples["newsflow_indexer_indexed_total"] == 5
    assert samples["newsflow_indexer_duplicates_total"] == 1
    assert samples["newsflow_indexer_dead_lettered_total"] == 1
    assert samples["newsflow_indexer_retries_total"] == 0
    assert samples["newsflow_indexer_batch_seconds_count"] >= 1
    lags = {k: v for k, v in samples.items() if k.startswith("newsflow_indexer_consumer_lag")}
    assert len(lags) == settings.kafka.partitions and set(lags.values()) == {0}

    store = open_store(settings)
    try:
        assert store.count() == 5
    finally:
        store.close()


@pytest.mark.integration
def test_metrics_on_the_real_stack_follow_kafka(stack_env: str, sample_article: Article) -> None:
    settings = Settings()
    articles = _articles(sample_article, 4)
    newer = articles[0].model_copy(
        update={
            "revision": articles[0].revision + 1,
            "fetched_at": articles[0].fetched_at + timedelta(seconds=1),
        }
    )
    buffer, store = open_buffer(settings), open_store(settings)
    metrics = IndexerMetrics()
    server = serve(metrics.registry)
    try:
        buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
        buffer.publish(settings.kafka.topic, [encode(a) for a in [*articles, newer, articles[1]]])
        summary = Indexer(
            buffer, store, settings.kafka, settings.indexer, on_batch=metrics.on_batch
        ).run(until_idle=True)
        samples = _samples(httpx.get(server.url, timeout=10).text)
    finally:
        server.close()
        buffer.close()
        store.close()
    assert (summary.indexed, summary.duplicates) == (5, 1)
    assert samples[("newsflow_indexer_consumed_total", ())] == 6
    assert samples[("newsflow_indexer_indexed_total", ())] == 5
    assert samples[("newsflow_indexer_duplicates_total", ())] == 1
    assert samples[("newsflow_indexer_batch_seconds_count", ())] == summary.batches
    lag = {
        dict(labels)["partition"]: value
        for (name, labels), value in samples.items()
        if name == "newsflow_indexer_consumer_lag"
    }
    assert set(lag) == {str(p) for p in range(settings.kafka.partitions)}
    assert sum(lag.values()) == 0


def test_status_classes_and_feed_groups() -> None:
    from newsflow.metrics import feed_group, status_class
    from schemas import FeedConfig

    assert [status_class(s) for s in (200, 304, 404, 503, None, 99)] == [
        "2xx", "3xx", "4xx", "5xx", "error", "error",
    ]  # fmt: skip
    assert feed_group(FeedConfig(url="https://a.example/rss", tags=["world", "eu"])) == "world"
    assert feed_group(FeedConfig(url="https://a.example/rss", tags=["x"], group="wire")) == "wire"
    assert feed_group(FeedConfig(url="https://a.example/rss")) == "untagged"


def test_failing_feeds_have_a_series_only_while_they_fail() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from connectors.store import RevisitCounts
    from newsflow.metrics import PrometheusMetrics
    from schemas import FeedConfig

    metrics = PrometheusMetrics(CollectorRegistry())
    a = FeedConfig(url="https://a.example/rss", tags=["world"])
    b = FeedConfig(url="https://b.example/rss", tags=["world"])
    metrics.feed_polled(a, "failed", 0.5, 3)
    metrics.feed_polled(b, "ok", 0.2, 0)
    metrics.revisits(a, RevisitCounts(retries=2, given_up=1))
    metrics.revisits(b, RevisitCounts(retries=5))
    metrics.page_fetched("4xx", 0.1)
    samples = _samples(generate_latest(metrics.registry).decode())
    failing = ("newsflow_feed_failing", (("feed", a.url), ("group", "world")))
    assert samples[failing] == 3
    assert not any(k[0] == "newsflow_feed_failing" and ("feed", b.url) in k[1] for k in samples)
    polls = ("newsflow_feed_polls_total", (("group", "world"), ("outcome", "failed")))
    assert samples[polls] == 1
    assert samples[("newsflow_retry_set_size", (("group", "world"),))] == 7
    assert samples[("newsflow_retry_given_up", (("group", "world"),))] == 1
    fetched = ("newsflow_fetch_seconds_count", (("status_class", "4xx"),))
    assert samples[fetched] == 1
    metrics.feed_polled(a, "ok", 0.5, 0)  # recovered: its series goes
    samples = _samples(generate_latest(metrics.registry).decode())
    assert failing not in samples


def test_quality_flags_are_counted_by_feed_group() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from newsflow.metrics import PrometheusMetrics
    from schemas import FeedConfig

    metrics = PrometheusMetrics(CollectorRegistry())
    world = FeedConfig(url="https://a.example/rss", tags=["world"])
    metrics.quality(world, {"pages": 4, "no_date": 1, "teaser": 0})
    metrics.quality(FeedConfig(url="https://b.example/rss", tags=["world"]), {"pages": 2})
    samples = _samples(generate_latest(metrics.registry).decode())
    family = "newsflow_extraction_quality_pages_total"
    assert samples[(family, (("flag", "pages"), ("group", "world")))] == 6
    assert samples[(family, (("flag", "no_date"), ("group", "world")))] == 1
    assert (family, (("flag", "teaser"), ("group", "world"))) not in samples
