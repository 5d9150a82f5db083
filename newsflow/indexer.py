"""Index stage: buffer -> store, at least once.

A batch is polled, decoded here (not in a client deserializer, so a malformed record
reaches the dead-letter topic intact), bulk-written, and only when the store has
acknowledged every document of the batch and the dead letters are published are the
offsets committed. Transient store failures are retried with backoff for as long as it
takes; nothing is skipped. What the store refuses for good goes to the dead-letter topic
and nothing else does: a batch refused as a whole (too large, one record out of range) is
halved until the records at fault are alone, so no record can wedge the indexer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import ValidationError

from connectors.buffer import Buffer, Consumer, InRecord, OutRecord
from connectors.store import ArticleWriter, StoryIndex
from newsflow.errors import CommitLost, DecodeError, RequestRefused, TransientError
from newsflow.metrics import NO_METRICS, PipelineMetrics
from newsflow.publish import SCHEMA_HEADER
from newsflow.settings import IndexerSettings, KafkaSettings
from newsflow.stories import StoryAssigner
from newsflow.summary import IndexSummary
from schemas import SCHEMA_VERSION, Article

__all__ = ["DecodeError", "Indexer", "decode"]

logger = logging.getLogger(__name__)


def decode(record: InRecord) -> Article:
    """The article in ``record``, or :class:`DecodeError` saying what is wrong with it."""
    version = record.headers.get(SCHEMA_HEADER, SCHEMA_VERSION)
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise DecodeError(f"unsupported schema version {version!r} (this indexer reads 1.x)")
    try:
        article = Article.model_validate_json(record.value)
    except ValidationError as exc:
        raise DecodeError(f"invalid article: {exc.error_count()} errors: {exc}") from exc
    if record.key is not None and record.key != article.doc_id:
        raise DecodeError(f"key {record.key!r} does not match doc_id {article.doc_id!r}")
    return article


@runtime_checkable
class _StoryStore(ArticleWriter, StoryIndex, Protocol):
    """A writer that also finds near-duplicate candidates (both stores are)."""


@dataclass(frozen=True, slots=True)
class _DeadLetter:
    record: InRecord
    error_class: str
    error: str

    def out(self) -> OutRecord:
        headers = dict(self.record.headers)
        headers.update(
            {
                "error-class": self.error_class,
                "error": self.error[:2000],
                "origin-topic": self.record.topic,
                "origin-partition": str(self.record.partition),
                "origin-offset": str(self.record.offset),
            }
        )
        return OutRecord(key=self.record.key or "", value=self.record.value, headers=headers)


class Indexer:
    """One consumer-group member writing articles into the store."""

    def __init__(
        self,
        buffer: Buffer,
        store: ArticleWriter,
        kafka: KafkaSettings,
        settings: IndexerSettings,
        *,
        on_batch: Callable[[IndexSummary, Consumer, float], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        metrics: PipelineMetrics = NO_METRICS,
    ) -> None:
        self._buffer = buffer
        self._store = store
        self._kafka = kafka
        self._settings = settings
        self._on_batch = on_batch
        self._sleep = sleep
        self._metrics = metrics
        # Stories need the store's candidate keys; a writer without them indexes as before.
        self._stories = StoryAssigner(store) if isinstance(store, _StoryStore) else None

    def run(self, *, until_idle: bool = False, stop: threading.Event | None = None) -> IndexSummary:
        """Index until ``stop`` is set, or with ``until_idle`` until nothing is left."""
        summary = IndexSummary()
        self._buffer.ensure_topics([self._kafka.topic, self._kafka.dlq_topic])
        self._store.ensure()
        consumer = self._buffer.consumer(self._kafka.topic, self._kafka.consumer_group)
        try:
            idle_since = time.monotonic()
            while stop is None or not stop.is_set():
                records = consumer.poll(self._settings.batch_size, self._settings.poll_timeout)
                if records:
                    started = time.monotonic()
                    self._process(records, consumer, summary)
                    if self._metrics is not NO_METRICS:
                        self._metrics.consumer_lag(consumer.lag())
                    if self._on_batch is not None:
                        self._on_batch(summary, consumer, time.monotonic() - started)
                    idle_since = time.monotonic()
                elif until_idle and self._drained(consumer, idle_since):
                    break
        finally:
            consumer.close()
        return summary

    def _drained(self, consumer: Consumer, idle_since: float) -> bool:
        if time.monotonic() - idle_since >= self._settings.idle_timeout:
            return True
        if not consumer.lag():  # {} until partitions are assigned
            return False
        # Every partition, not only this member's: records may wait on those a crashed
        # member still holds (until its session expires and they move here).
        return consumer.waiting() == 0

    def _process(
        self, records: Sequence[InRecord], consumer: Consumer, summary: IndexSummary
    ) -> None:
        summary.consumed += len(records)
        summary.batches += 1
        dead: list[_DeadLetter] = []
        articles: list[Article] = []
        origins: list[InRecord] = []
        for record in records:
            try:
                articles.append(decode(record))
                origins.append(record)
            except DecodeError as exc:
                dead.append(_DeadLetter(record, "DecodeError", str(exc)))

        if self._stories is not None and articles:
            articles = self._assign_stories(self._stories, articles, summary)

        # Groups of positions still to write; a refused group is halved, a throttled part
        # comes back, until every article is written or dead-lettered.
        groups = [list(range(len(articles)))] if articles else []
        attempt = 0
        indexed_before, duplicates_before = summary.indexed, summary.duplicates
        while groups:
            pending = groups.pop()
            sent = time.monotonic()
            try:
                outcome = self._store.index_batch([articles[i] for i in pending])
            except TransientError as exc:
                self._metrics.bulk(len(pending), time.monotonic() - sent, "transient")
                attempt += 1
                summary.retries += 1
                self._backoff(attempt, f"bulk request failed: {exc}")
                groups.append(pending)
                continue
            except RequestRefused as exc:
                self._metrics.bulk(len(pending), time.monotonic() - sent, "refused")
                if len(pending) == 1:
                    dead.append(_DeadLetter(origins[pending[0]], "Rejected", str(exc)))
                else:
                    logger.warning("%d articles refused as a whole, splitting", len(pending))
                    half = len(pending) // 2
                    groups += [pending[half:], pending[:half]]
                continue
            self._metrics.bulk(len(pending), time.monotonic() - sent, "ok")
            summary.indexed += outcome.indexed
            summary.duplicates += outcome.duplicates
            for position, reason in outcome.rejected.items():
                dead.append(_DeadLetter(origins[pending[position]], "Rejected", reason))
            throttled = [pending[i] for i in outcome.retry]
            if throttled:
                attempt += 1
                summary.retries += 1
                self._backoff(attempt, f"{len(throttled)} documents throttled")
                groups.append(throttled)

        if dead:
            # The dead letters must be safe before the offsets move past their origins.
            self._buffer.publish(self._kafka.dlq_topic, [d.out() for d in dead])
            summary.dead_lettered += len(dead)
            for letter in dead:
                logger.warning(
                    "dead-lettered topic=%s partition=%d offset=%d error=%s",
                    letter.record.topic,
                    letter.record.partition,
                    letter.record.offset,
                    letter.error[:200],
                )
        try:
            consumer.commit()
        except CommitLost as exc:
            # Another member owns (some of) these partitions now and gets the records
            # again; the store counts them as duplicates. The next poll rejoins.
            logger.warning("offsets not committed, records will be redelivered: %s", exc)
        logger.info(
            "batch records=%d indexed=%d duplicates=%d dead_lettered=%d retries=%d",
            len(records),
            summary.indexed - indexed_before,
            summary.duplicates - duplicates_before,
            len(dead),
            attempt,
        )

    def _assign_stories(
        self, stories: StoryAssigner, articles: list[Article], summary: IndexSummary
    ) -> list[Article]:
        """Story fields for the batch (newsflow.stories), retried like the bulk write."""
        attempt = 0
        while True:
            try:
                return stories.assign(articles)
            except TransientError as exc:
                attempt += 1
                summary.retries += 1
                self._backoff(attempt, f"story lookup failed: {exc}")

    def _backoff(self, attempt: int, why: str) -> None:
        ceiling = min(self._settings.retry_backoff_max, 0.5 * 2 ** min(attempt, 16))
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  (jitter, not crypto)
        logger.warning("retrying in %.1f s (attempt %d): %s", delay, attempt, why)
        self._sleep(delay)
