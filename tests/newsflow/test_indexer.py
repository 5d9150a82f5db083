"""The indexer on the real stack: dead letters, replays and out-of-order revisions."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from connectors import open_buffer, open_store
from connectors.buffer import Consumer, InRecord, OutRecord
from connectors.elasticsearch import ElasticsearchStore
from connectors.kafka import KafkaBuffer
from connectors.sqlite_buffer import SqliteBuffer, SqliteConsumer
from connectors.sqlite_store import SqliteStore
from connectors.store import IndexOutcome
from newsflow.errors import BackendUnavailable, RequestRefused
from newsflow.identity import content_hash, doc_id
from newsflow.indexer import DecodeError, Indexer, decode
from newsflow.publish import encode
from newsflow.settings import IndexerSettings, KafkaSettings, Settings
from newsflow.summary import IndexSummary
from schemas import Article
from tests.support.indexing import index_until_idle


def _record(
    value: bytes, headers: dict[str, str] | None = None, key: str | None = None
) -> InRecord:
    return InRecord("t", 0, 7, key, value, headers or {})


def test_decode_accepts_an_encoded_article(sample_article: Article) -> None:
    out = encode(sample_article)
    assert decode(_record(out.value, out.headers, out.key)) == sample_article


@pytest.mark.parametrize(
    ("value", "headers", "message"),
    [
        (b"not json", {}, "invalid article"),
        (b'{"doc_id": "x"}', {}, "invalid article"),
        (b"{}", {"schema-version": "2.0"}, "unsupported schema version"),
    ],
)
def test_decode_explains_what_is_wrong(value: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(_record(value, headers))


def test_decode_refuses_a_key_that_is_not_the_doc_id(sample_article: Article) -> None:
    out = encode(sample_article)
    with pytest.raises(DecodeError, match="does not match"):
        decode(_record(out.value, out.headers, "0" * 32))


@pytest.mark.integration
def test_poison_goes_to_the_dlq_and_order_and_replays_do_not_matter(
    stack_env: str, sample_article: Article
) -> None:
    settings = Settings()
    newer_time = sample_article.fetched_at + timedelta(hours=1)
    newer_text = "Late update: the budget passed with amendments on Wednesday. " * 5
    newer = sample_article.model_copy(
        update={
            "revision": Article.revision_of(newer_time),
            "fetched_at": newer_time,
            "text": newer_text,
            "content_hash": content_hash(newer_text),
        }
    )
    buffer = open_buffer(settings)
    buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
    poison = OutRecord(key="poison", value=b"\x00garbage{", headers={"schema-version": "1.0"})
    # The newer revision arrives first, then the poison, then the older one, then a replay.
    buffer.publish(settings.kafka.topic, [encode(newer)])
    buffer.publish(settings.kafka.topic, [poison])
    buffer.publish(settings.kafka.topic, [encode(sample_article), encode(newer)])
    buffer.close()

    summary = index_until_idle()
    assert summary.consumed == 4
    assert (summary.indexed, summary.duplicates, summary.dead_lettered) == (1, 2, 1)

    store = open_store(settings)
    store.refresh()
    current = store.get(sample_article.doc_id)
    assert current is not None and current.revision == newer.revision
    assert store.count() == 1
    assert [a.revision for a in store.history(sample_article.doc_id)] == [
        sample_article.revision,
        newer.revision,
    ]
    store.close()

    dlq = KafkaConsumer(
        settings.kafka.dlq_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    letters = list(dlq)
    dlq.close()
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert letters[0].value == poison.value
    assert headers["origin-topic"] == settings.kafka.topic
    assert headers["error-class"] == "DecodeError"
    assert headers["origin-offset"].isdigit() and headers["origin-partition"].isdigit()

    # Everything was committed: a second run finds nothing to do.
    assert index_until_idle().consumed == 0


def test_transient_store_failures_are_retried_and_offsets_wait_for_success(
    tmp_path: Path, sample_article: Article
) -> None:
    events: list[str] = []
    sleeps: list[float] = []

    class FlakyStore(SqliteStore):
        calls = 0

        def index_batch(self, articles: Sequence[Article]) -> IndexOutcome:
            FlakyStore.calls += 1
            if FlakyStore.calls <= 2:  # the node is away twice
                events.append("unavailable")
                raise BackendUnavailable("connection refused")
            if FlakyStore.calls == 3:  # then throttles the first document once
                outcome = super().index_batch(articles[1:])
                outcome.retry.append(0)
                events.append(f"throttled {len(articles)}")
                return outcome
            events.append(f"indexed {len(articles)}")
            return super().index_batch(articles)

    class RecordingBuffer(SqliteBuffer):
        def consumer(self, topic: str, group: str) -> SqliteConsumer:
            inner = super().consumer(topic, group)
            original = inner.commit

            def commit() -> None:
                events.append("commit")
                original()

            inner.commit = commit  # type: ignore[method-assign]
            return inner

    kafka = KafkaSettings(topic="articles", dlq_topic="articles.dlq", partitions=1)
    buffer = RecordingBuffer(tmp_path / "buffer.sqlite3")
    store = FlakyStore(tmp_path / "store.sqlite3")
    buffer.ensure_topics([kafka.topic, kafka.dlq_topic])
    second = sample_article.model_copy(update={"doc_id": "f" * 32, "url": "https://x/2"})
    buffer.publish(kafka.topic, [encode(sample_article), encode(second)])

    summary = Indexer(
        buffer, store, kafka, IndexerSettings(idle_timeout=2), sleep=sleeps.append
    ).run(until_idle=True)

    assert events == ["unavailable", "unavailable", "throttled 2", "indexed 1", "commit"]
    assert (summary.indexed, summary.retries, summary.dead_lettered) == (2, 3, 0)
    assert len(sleeps) == 3 and sleeps[0] <= sleeps[1] * 2
    assert store.count() == 2
    buffer.close()
    store.close()


def _story(article: Article, number: int, **update: object) -> Article:
    url = f"https://news.example.com/story-{number}"
    return article.model_copy(update={"doc_id": doc_id(url), "url": url, **update})


def test_a_batch_the_store_refuses_whole_is_split_and_only_the_culprit_dead_lettered(
    tmp_path: Path, sample_article: Article
) -> None:
    culprit = _story(sample_article, 13)
    requests: list[int] = []

    class WholeRequestStore(SqliteStore):
        """Refuses every request that holds the culprit, as a server refusing a body."""

        def index_batch(self, articles: Sequence[Article]) -> IndexOutcome:
            requests.append(len(articles))
            if any(article.doc_id == culprit.doc_id for article in articles):
                raise RequestRefused("413 request entity too large")
            return super().index_batch(articles)

    kafka = KafkaSettings(topic="articles", dlq_topic="articles.dlq", partitions=1)
    buffer = SqliteBuffer(tmp_path / "buffer.sqlite3")
    store = WholeRequestStore(tmp_path / "store.sqlite3")
    buffer.ensure_topics([kafka.topic, kafka.dlq_topic])
    others = [_story(sample_article, n) for n in range(7)]
    buffer.publish(kafka.topic, [encode(a) for a in [*others[:5], culprit, *others[5:]]])

    settings = IndexerSettings(idle_timeout=2)
    summary = Indexer(buffer, store, kafka, settings, sleep=lambda _: None).run(until_idle=True)

    assert (summary.consumed, summary.indexed, summary.dead_lettered) == (8, 7, 1)
    assert requests[0] == 8 and len(requests) <= 2 * 3 + 1  # halving: about log2(8) levels
    assert store.count() == 7 and store.get(culprit.doc_id) is None
    dlq = buffer.consumer(kafka.dlq_topic, "check")
    (letter,) = dlq.poll(10, 1.0)
    dlq.close()
    assert letter.key == culprit.doc_id
    assert letter.headers["error-class"] == "Rejected"
    assert "413" in letter.headers["error"]
    # The offsets moved on: nothing is delivered again.
    again = Indexer(buffer, store, kafka, settings, sleep=lambda _: None).run(until_idle=True)
    assert again.consumed == 0
    buffer.close()
    store.close()


@pytest.mark.integration
def test_oversized_and_refused_records_are_dead_lettered_and_the_rest_committed(
    stack_env: str, sample_article: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_BULK_MAX_BYTES", str(64 * 1024))
    settings = Settings()
    normal = [_story(sample_article, n, text=f"Story {n}. " + "z" * 9_000) for n in range(20)]
    oversized = _story(sample_article, 98, text="o" * 50_000)
    refused = _story(sample_article, 99, revision=2**64)  # 400 for the whole request
    buffer = open_buffer(settings)
    buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
    records = [encode(a) for a in [*normal[:10], oversized, *normal[10:], refused]]
    buffer.publish(settings.kafka.topic, records)
    buffer.close()

    summary = index_until_idle(settings)
    assert (summary.consumed, summary.indexed, summary.dead_lettered) == (22, 20, 2)

    store = open_store(settings)
    store.refresh()
    assert store.count() == 20
    store.close()
    dlq = KafkaConsumer(
        settings.kafka.dlq_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    letters = {m.key.decode(): {k: v.decode() for k, v in m.headers} for m in dlq}
    dlq.close()
    assert set(letters) == {oversized.doc_id, refused.doc_id}
    assert "BULK_MAX_BYTES" in letters[oversized.doc_id]["error"]
    assert "out of range" in letters[refused.doc_id]["error"]
    assert index_until_idle(settings).consumed == 0  # committed: no wedge, no redelivery


@pytest.mark.integration
def test_a_member_joining_and_leaving_mid_drain_loses_nothing_and_duplicates_nothing(
    stack_env: str, sample_article: Article, caplog: pytest.LogCaptureFixture
) -> None:
    # A member that does not poll for 3 s loses its partitions (and its next commit).
    settings = Settings(kafka=KafkaSettings(max_poll_interval_ms=3_000))
    articles = [_story(sample_article, n) for n in range(90)]
    buffer = KafkaBuffer(settings.kafka)
    buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
    buffer.publish(settings.kafka.topic, [encode(a) for a in articles])
    buffer.close()
    second_joining = threading.Event()
    stop_second = threading.Event()

    class SlowStore(ElasticsearchStore):
        """The real store; the first member's batch in flight when the second joins is
        held past the poll interval, so the group moves on without it."""

        held = False

        def index_batch(self, batch: Sequence[Article]) -> IndexOutcome:
            if second_joining.is_set() and not SlowStore.held:
                SlowStore.held = True
                time.sleep(6)
            time.sleep(0.05)
            return super().index_batch(batch)

    indexer_settings = IndexerSettings(batch_size=5, idle_timeout=10)
    summaries: dict[str, IndexSummary] = {}
    failures: list[BaseException] = []

    def member(
        name: str,
        stop: threading.Event | None,
        on_batch: Callable[[IndexSummary, Consumer, float], None],
    ) -> None:
        own_buffer = KafkaBuffer(settings.kafka)
        store = SlowStore(settings.elasticsearch)
        try:
            summaries[name] = Indexer(
                own_buffer, store, settings.kafka, indexer_settings, on_batch=on_batch
            ).run(until_idle=stop is None, stop=stop)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            own_buffer.close()
            store.close()

    def second_batch(summary: IndexSummary, consumer: Consumer, seconds: float) -> None:
        if summary.batches >= 3:
            stop_second.set()  # leaves the group after three batches

    def first_batch(summary: IndexSummary, consumer: Consumer, seconds: float) -> None:
        if summary.batches == 3 and not second_joining.is_set():
            second_joining.set()
            threading.Thread(target=member, args=("second", stop_second, second_batch)).start()

    caplog.set_level(logging.WARNING, logger="newsflow.indexer")
    first = threading.Thread(target=member, args=("first", None, first_batch))
    first.start()
    first.join(timeout=240)
    assert not first.is_alive()
    stop_second.set()
    deadline = time.monotonic() + 60
    while "second" not in summaries and not failures and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not failures, failures
    assert set(summaries) == {"first", "second"}
    assert any("will be redelivered" in r.getMessage() for r in caplog.records)

    total = summaries["first"].indexed + summaries["second"].indexed
    assert total == len(articles)  # each document written once; redeliveries are duplicates
    store = ElasticsearchStore(settings.elasticsearch)
    store.refresh()
    assert store.count() == len({a.doc_id for a in articles})
    assert all(store.get(a.doc_id) is not None for a in articles)
    store.close()


class _CaughtUp:
    """A member whose own partitions are done while ``waiting`` records remain elsewhere
    in the group (another member's, or a crashed one's until its session expires)."""

    def __init__(self, waiting: int) -> None:
        self.polls = 0
        self._waiting = waiting

    def poll(self, max_records: int, timeout: float) -> list[InRecord]:
        self.polls += 1
        return []

    def commit(self) -> None:
        return None

    def lag(self) -> dict[int, int]:
        return {0: 0}

    def waiting(self) -> int:
        return self._waiting

    def close(self) -> None:
        return None


@pytest.mark.parametrize(("waiting", "stops_at_once"), [(0, True), (3, False)])
def test_until_idle_waits_for_the_whole_group_not_only_its_own_partitions(
    tmp_path: Path, waiting: int, stops_at_once: bool
) -> None:
    consumer = _CaughtUp(waiting)

    class Buffer(SqliteBuffer):
        def consumer(self, topic: str, group: str) -> Consumer:  # type: ignore[override]
            return consumer

    buffer = Buffer(tmp_path / "buffer.sqlite3")
    store = SqliteStore(tmp_path / "store.sqlite3")
    settings = IndexerSettings(idle_timeout=0.3, poll_timeout=0.01)
    try:
        Indexer(buffer, store, KafkaSettings(), settings).run(until_idle=True)
    finally:
        store.close()
        buffer.close()
    # Caught up group-wide: done after the first empty poll; else on until the idle timeout.
    assert (consumer.polls == 1) is stops_at_once, consumer.polls
