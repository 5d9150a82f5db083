"""The indexer on the real stack: dead letters, replays and out-of-order revisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from connectors import open_buffer, open_store
from connectors.buffer import InRecord, OutRecord
from connectors.sqlite_buffer import SqliteBuffer, SqliteConsumer
from connectors.sqlite_store import SqliteStore
from connectors.store import IndexOutcome
from newsflow.errors import BackendUnavailable
from newsflow.identity import content_hash
from newsflow.indexer import DecodeError, Indexer, decode
from newsflow.publish import encode
from newsflow.settings import IndexerSettings, KafkaSettings, Settings
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
