"""The embedded buffer beyond the shared contract: durability, partitioning, leases, processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.buffer import InRecord, OutRecord
from connectors.sqlite_buffer import LEASE_SECONDS, SqliteBuffer, SqliteConsumer, partition_for
from newsflow.errors import BackendUnavailable, PublishError

TOPIC = "news.articles"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "buffer.sqlite3"


@pytest.fixture
def buffer(path: Path) -> Iterator[SqliteBuffer]:
    opened = SqliteBuffer(path, partitions=4)
    opened.ensure_topics([TOPIC])
    yield opened
    opened.close()


def _drain(consumer: SqliteConsumer, want: int, timeout: float = 10.0) -> list[InRecord]:
    got: list[InRecord] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += consumer.poll(100, 0.2)
    return got


def _records(count: int, keys: int = 5, prefix: str = "v") -> list[OutRecord]:
    return [OutRecord(key=f"k{i % keys}", value=f"{prefix}{i}".encode()) for i in range(count)]


def test_the_log_is_in_wal_mode(buffer: SqliteBuffer, path: Path) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_records_and_commits_survive_reopening(path: Path) -> None:
    first = SqliteBuffer(path, partitions=4)
    first.ensure_topics([TOPIC])
    first.publish(TOPIC, _records(10))
    first.close()

    second = SqliteBuffer(path, partitions=4)
    consumer = second.consumer(TOPIC, "g")
    got = _drain(consumer, 10)
    assert sorted(r.value for r in got) == sorted(r.value for r in _records(10))
    consumer.poll(100, 0.1)
    consumer.commit()
    consumer.close()
    second.close()

    third = SqliteBuffer(path, partitions=4)
    consumer = third.consumer(TOPIC, "g")
    assert consumer.poll(100, 0.3) == []
    assert sum(consumer.lag().values()) == 0
    consumer.close()
    third.close()


def test_partition_is_a_stable_hash_of_the_key(buffer: SqliteBuffer) -> None:
    # Pinned: a key must map to the same partition in every process, run and version
    # (Python's hash() would not), or per-key order breaks across a restart.
    keys = ["k0", "k1", "k2", "0123456789abcdef0123456789abcdef"]
    assert [partition_for(key, 6) for key in keys] == [3, 1, 3, 4]
    assert partition_for("doc-äöü", 6) == partition_for("doc-äöü", 6)
    buffer.publish(TOPIC, _records(40, keys=8))
    consumer = buffer.consumer(TOPIC, "g")
    got = _drain(consumer, 40)
    consumer.close()
    assert len(got) == 40
    for record in got:
        assert record.key is not None
        assert record.partition == partition_for(record.key, 4)
    assert len({r.partition for r in got}) > 1, "keys must spread over partitions"
    for partition in {r.partition for r in got}:
        offsets = [r.offset for r in got if r.partition == partition]
        assert offsets == list(range(len(offsets))), "offsets are dense and increasing"


def test_publishing_to_a_missing_topic_fails_and_writes_nothing(
    buffer: SqliteBuffer, path: Path
) -> None:
    with pytest.raises(PublishError, match="does not exist"):
        buffer.publish("no.such.topic", _records(3))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 0


def test_a_publish_is_all_or_nothing(buffer: SqliteBuffer, path: Path) -> None:
    broken = OutRecord(key="k1", value=object())  # type: ignore[arg-type]
    with pytest.raises(PublishError):
        buffer.publish(TOPIC, [OutRecord(key="k0", value=b"ok"), broken])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    buffer.publish(TOPIC, [OutRecord(key="k0", value=b"ok")])
    consumer = buffer.consumer(TOPIC, "g")
    assert [(r.offset, r.value) for r in _drain(consumer, 1)] == [(0, b"ok")]
    consumer.close()


def test_an_empty_key_reads_as_none_like_kafka(buffer: SqliteBuffer) -> None:
    buffer.publish(TOPIC, [OutRecord(key="", value=b"x", headers={"a": "ü"})])
    consumer = buffer.consumer(TOPIC, "g")
    [record] = _drain(consumer, 1)
    consumer.close()
    assert (record.key, record.value, record.headers) == (None, b"x", {"a": "ü"})


def test_poll_waits_for_records_published_meanwhile(buffer: SqliteBuffer, path: Path) -> None:
    consumer = buffer.consumer(TOPIC, "g")
    started = time.monotonic()
    assert consumer.poll(10, 0.3) == []
    assert time.monotonic() - started >= 0.3
    publisher = SqliteBuffer(path)

    def later() -> None:
        time.sleep(0.3)
        publisher.publish(TOPIC, [OutRecord(key="k", value=b"late")])

    thread = threading.Thread(target=later)
    thread.start()
    started = time.monotonic()
    got = consumer.poll(10, 10.0)
    waited = time.monotonic() - started
    thread.join()
    publisher.close()
    consumer.close()
    assert [r.value for r in got] == [b"late"]
    assert 0.2 < waited < 5.0


def test_max_records_is_respected_and_the_rest_follows(buffer: SqliteBuffer) -> None:
    buffer.publish(TOPIC, _records(25))
    consumer = buffer.consumer(TOPIC, "g")
    first = consumer.poll(10, 1.0)
    assert len(first) == 10
    rest = _drain(consumer, 15)
    consumer.close()
    assert len(rest) == 15
    assert {r.value for r in first} | {r.value for r in rest} == {r.value for r in _records(25)}


def test_a_second_member_waits_while_the_first_holds_the_group(buffer: SqliteBuffer) -> None:
    buffer.publish(TOPIC, _records(6))
    first = buffer.consumer(TOPIC, "g")
    second = buffer.consumer(TOPIC, "g")
    try:
        assert len(_drain(first, 6)) == 6
        assert second.poll(100, 0.3) == [], "the group is served by one member at a time"
        assert second.lag() == {}
        first.close()  # without commit: everything goes to the next member
        assert len(_drain(second, 6)) == 6
        second.commit()
        assert sum(second.lag().values()) == 0
    finally:
        first.close()
        second.close()


def test_another_group_reads_independently(buffer: SqliteBuffer) -> None:
    buffer.publish(TOPIC, _records(5))
    a, b = buffer.consumer(TOPIC, "a"), buffer.consumer(TOPIC, "b")
    try:
        assert len(_drain(a, 5)) == 5
        a.commit()
        assert len(_drain(b, 5)) == 5
        assert sum(b.lag().values()) == 5
    finally:
        a.close()
        b.close()


def _set_lease(path: Path, **values: object) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE leases SET {assignments}", values)  # noqa: S608


def test_the_lease_of_a_dead_process_is_taken_over_at_once(
    buffer: SqliteBuffer, path: Path
) -> None:
    buffer.publish(TOPIC, _records(3))
    holder = buffer.consumer(TOPIC, "g")
    assert len(_drain(holder, 3)) == 3
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True
    )
    _set_lease(path, member="crashed", pid=int(gone.stdout))  # a process that has exited
    successor = buffer.consumer(TOPIC, "g")
    try:
        assert len(_drain(successor, 3, timeout=2.0)) == 3
        with pytest.raises(BackendUnavailable, match="taken over"):
            holder.commit()  # fenced: it no longer owns the group
        successor.commit()
    finally:
        holder.close()
        successor.close()


def test_a_stale_lease_is_taken_over_and_a_fresh_one_is_not(
    buffer: SqliteBuffer, path: Path
) -> None:
    buffer.publish(TOPIC, _records(3))
    holder = buffer.consumer(TOPIC, "g")
    assert len(_drain(holder, 3)) == 3
    # A live process on another host: its pid cannot be checked, only its heartbeat.
    _set_lease(path, member="elsewhere", host="other-host/1", pid=os.getpid())
    waiting = buffer.consumer(TOPIC, "g")
    try:
        assert waiting.poll(100, 0.3) == []
        _set_lease(path, heartbeat=time.time() - LEASE_SECONDS - 1)
        assert len(_drain(waiting, 3, timeout=2.0)) == 3
    finally:
        holder.close()
        waiting.close()


def test_retention_drops_only_what_every_group_has_committed(path: Path) -> None:
    buffer = SqliteBuffer(path, partitions=1, retention=0.0)
    buffer.ensure_topics([TOPIC])
    buffer.publish(TOPIC, _records(4, keys=1))
    buffer.prune()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 4, "no group yet"
    consumer = buffer.consumer(TOPIC, "g")
    assert len(_drain(consumer, 4)) == 4
    consumer.commit()
    consumer.close()
    buffer.publish(TOPIC, _records(2, keys=1, prefix="new"))
    buffer.prune()
    consumer = buffer.consumer(TOPIC, "fresh-group")
    got = _drain(consumer, 2)
    consumer.close()
    buffer.close()
    # Offsets continue after the pruned records; a new group starts at the earliest kept.
    assert [(r.offset, r.value) for r in got] == [(4, b"new0"), (5, b"new1")]


def test_threads_share_one_buffer(buffer: SqliteBuffer) -> None:
    def publish(thread: int) -> None:
        for batch in range(10):
            buffer.publish(TOPIC, _records(5, keys=5, prefix=f"t{thread}b{batch}-"))

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    consumer = buffer.consumer(TOPIC, "g")
    got = _drain(consumer, 200)
    consumer.close()
    assert len(got) == 200
    assert len({(r.partition, r.offset) for r in got}) == 200


_PUBLISHER = """
import sys
from pathlib import Path
from connectors.buffer import OutRecord
from connectors.sqlite_buffer import SqliteBuffer

buffer = SqliteBuffer(Path(sys.argv[1]), partitions=4)
buffer.ensure_topics(["news.articles"])
name = sys.argv[2]
for batch in range(int(sys.argv[3])):
    buffer.publish(
        "news.articles",
        [OutRecord(key=f"{name}-{i % 3}", value=f"{name}:{batch}:{i}".encode()) for i in range(5)],
    )
buffer.close()
"""


def test_processes_publish_and_consume_the_same_file(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    publishers = [
        subprocess.Popen([sys.executable, "-c", _PUBLISHER, str(path), name, "40"], env=env)
        for name in ("p1", "p2")
    ]
    buffer = SqliteBuffer(path, partitions=4)
    buffer.ensure_topics([TOPIC])
    consumer = buffer.consumer(TOPIC, "g")
    try:
        got = _drain(consumer, 400, timeout=60.0)
    finally:
        consumer.close()
        buffer.close()
        for publisher in publishers:
            publisher.wait(timeout=60)
    assert [p.returncode for p in publishers] == [0, 0]
    assert len(got) == 400 and len({r.value for r in got}) == 400
    for key in {r.key for r in got}:
        values = [r.value.decode().split(":") for r in got if r.key == key]
        order = [(int(batch), int(i)) for _, batch, i in values]
        assert order == sorted(order), f"records of {key} out of order"
