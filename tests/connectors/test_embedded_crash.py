"""kill -9 on the embedded backends: nothing acknowledged is lost, nothing is stored twice."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.buffer import InRecord
from connectors.sqlite_buffer import SqliteBuffer
from connectors.sqlite_store import SqliteStore
from connectors.store import SearchQuery
from newsflow.identity import content_hash, doc_id
from newsflow.indexer import Indexer
from newsflow.publish import encode
from newsflow.settings import IndexerSettings, KafkaSettings
from schemas import Article

_STORY_FIELDS = ("story_id", "near_duplicate_of", "story_similarity", "story_started_at")
"""Set by the indexer's story assignment (newsflow.stories)."""

ROOT = Path(__file__).resolve().parents[2]
ARTICLES = 300
BATCH = 20
KILL_AFTER_BATCHES = 3
TOPIC, DLQ, GROUP = "crash.articles", "crash.articles.dlq", "crash-indexer"

# The real indexer in a child process, whose store stalls (and says so) in batch
# KILL_AFTER_BATCHES, where the test kills it:
# - "after-store-ack": the store has committed the batch, the indexer has not yet committed
#   its offsets: the crash leaves documents stored whose records are delivered again;
# - "mid-write": halfway through the store's transaction: the crash must roll it back.
_INDEXER = """
import sys, time
from pathlib import Path
from connectors.sqlite_buffer import SqliteBuffer
from connectors.sqlite_store import SqliteStore
from connectors.store import SearchQuery
from newsflow.indexer import Indexer
from newsflow.settings import IndexerSettings, KafkaSettings

directory, kill_after, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stall = sys.argv[7]

def stop_here():
    print("stalled", flush=True)
    time.sleep(120)

class StallingStore(SqliteStore):
    batches = 0
    articles = 0

    def index_batch(self, articles):
        StallingStore.batches += 1
        outcome = super().index_batch(articles)
        if stall == "after-store-ack" and StallingStore.batches == kill_after:
            stop_here()
        return outcome

    @staticmethod
    def _write_article(db, article):
        written = SqliteStore._write_article(db, article)
        StallingStore.articles += 1
        if stall == "mid-write" and StallingStore.articles == (kill_after - 1) * batch + batch // 2:
            stop_here()
        return written

kafka = KafkaSettings(topic=sys.argv[4], dlq_topic=sys.argv[5], consumer_group=sys.argv[6])
settings = IndexerSettings(batch_size=batch, poll_timeout=0.2, idle_timeout=10)
buffer = SqliteBuffer(directory / "buffer.sqlite3")
store = StallingStore(directory / "store.sqlite3")
Indexer(buffer, store, kafka, settings).run(until_idle=True)
"""


def _articles() -> list[Article]:
    moment = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    articles = []
    for n in range(ARTICLES):
        url = f"https://news.example.com/politics/budget-{n}.html"
        text = f"The Senate debated amendment {n} of the budget late on Tuesday. " * 5
        fetched = moment + timedelta(seconds=n)
        articles.append(
            Article(
                doc_id=doc_id(url),
                revision=Article.revision_of(fetched),
                url=url,
                source_url=url + "?utm_source=rss",
                title=f"Senate votes on amendment {n}",
                text=text,
                authors=["Jane Doe"],
                published_at=fetched,
                fetched_at=fetched,
                language="en",
                source="Example News",
                domain="news.example.com",
                feed_url="https://news.example.com/feeds/politics.rss",
                tags=["politics"],
                content_hash=content_hash(text),
            )
        )
    return articles


def _wait_for_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output from the child within {timeout} s")
    return process.stdout.readline().strip()


def _committed(path: Path) -> int:
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(committed_offset), 0) FROM commits WHERE group_id = ?", (GROUP,)
        ).fetchone()
    return int(row[0])


def _kafka() -> KafkaSettings:
    return KafkaSettings(topic=TOPIC, dlq_topic=DLQ, consumer_group=GROUP)


@pytest.mark.parametrize(
    ("stall", "stored", "committed"),
    [
        ("after-store-ack", KILL_AFTER_BATCHES * BATCH, (KILL_AFTER_BATCHES - 1) * BATCH),
        ("mid-write", (KILL_AFTER_BATCHES - 1) * BATCH, (KILL_AFTER_BATCHES - 1) * BATCH),
    ],
)
def test_a_killed_indexer_loses_and_duplicates_nothing(
    tmp_path: Path, stall: str, stored: int, committed: int
) -> None:
    articles = _articles()
    buffer = SqliteBuffer(tmp_path / "buffer.sqlite3")
    buffer.ensure_topics([TOPIC, DLQ])
    buffer.publish(TOPIC, [encode(article) for article in articles])
    buffer.close()

    child = subprocess.Popen(
        [sys.executable, "-c", _INDEXER, str(tmp_path), str(KILL_AFTER_BATCHES), str(BATCH)]
        + [TOPIC, DLQ, GROUP, stall],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for_line(child, timeout=30) == "stalled"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    store = SqliteStore(tmp_path / "store.sqlite3")
    indexed_before = store.count()
    committed_before = _committed(tmp_path / "buffer.sqlite3")
    assert (indexed_before, committed_before) == (stored, committed)

    # Restart: this member takes over the dead child's group lease at once.
    buffer = SqliteBuffer(tmp_path / "buffer.sqlite3")
    started = time.monotonic()
    summary = Indexer(
        buffer,
        store,
        _kafka(),
        IndexerSettings(batch_size=BATCH, poll_timeout=0.2, idle_timeout=10),
    ).run(until_idle=True)
    assert time.monotonic() - started < 10, "the restart waited for the dead member's lease"

    assert summary.consumed == ARTICLES - committed_before
    assert summary.indexed == ARTICLES - indexed_before
    assert summary.duplicates == indexed_before - committed_before, "redelivered, not re-stored"
    assert summary.dead_lettered == 0
    assert store.count() == ARTICLES
    # Near-duplicates of each other (one number apart): counted as articles, not stories.
    assert store.search(SearchQuery(text="amendment", limit=1, collapse=False)).total == ARTICLES
    for article in articles:
        kept = store.get(article.doc_id)
        assert kept is not None
        assert kept.model_copy(update=dict.fromkeys(_STORY_FIELDS)) == article
        assert [a.revision for a in store.history(article.doc_id)] == [article.revision]
    assert _committed(tmp_path / "buffer.sqlite3") == ARTICLES
    store.close()
    buffer.close()


_PUBLISHER = """
import sys
from pathlib import Path
from connectors.buffer import OutRecord
from connectors.sqlite_buffer import SqliteBuffer

buffer = SqliteBuffer(Path(sys.argv[1]), partitions=3)
for batch in range(100_000):
    buffer.publish(
        "crash.articles",
        [OutRecord(key=f"k{i % 4}", value=f"{batch}:{i}".encode()) for i in range(10)],
    )
    print(batch, flush=True)
"""


def test_a_publisher_killed_mid_stream_keeps_every_acknowledged_batch(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    buffer = SqliteBuffer(path, partitions=3)
    buffer.ensure_topics([TOPIC])
    child = subprocess.Popen(
        [sys.executable, "-c", _PUBLISHER, str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = -1
    try:
        while acknowledged < 30:
            acknowledged = int(_wait_for_line(child, timeout=30))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)

    consumer = buffer.consumer(TOPIC, "check")
    got: list[InRecord] = []
    while batch := consumer.poll(1000, 0.3):
        got += batch
    consumer.close()
    buffer.close()
    per_batch = Counter(int(record.value.split(b":")[0]) for record in got)
    assert all(count == 10 for count in per_batch.values()), "a publish is all or nothing"
    assert sorted(per_batch) == list(range(len(per_batch))), "batches form a gapless prefix"
    assert len(per_batch) > acknowledged, "every acknowledged batch is in the log"
    for key in {r.key for r in got}:
        order = [tuple(map(int, r.value.split(b":"))) for r in got if r.key == key]
        assert order == sorted(order)
