"""The buffer contract: every Buffer implementation must pass these."""

from __future__ import annotations

import pytest

from connectors.buffer import Buffer, InRecord, OutRecord
from connectors.health import Check
from newsflow.settings import Settings


def _drain(buffer: Buffer, topic: str, group: str, want: int, commit: bool) -> list[InRecord]:
    consumer = buffer.consumer(topic, group)
    got: list[InRecord] = []
    try:
        for _ in range(60):
            got += consumer.poll(100, 0.5)
            if len(got) >= want:
                break
        if commit:
            consumer.commit()
    finally:
        consumer.close()
    return got


@pytest.fixture
def topic(buffer: Buffer) -> str:
    name = Settings().kafka.topic
    buffer.ensure_topics([name])
    buffer.ensure_topics([name])  # idempotent
    return name


def test_records_round_trip_with_keys_headers_and_per_key_order(buffer: Buffer, topic: str) -> None:
    records = [
        OutRecord(key=f"k{i % 3}", value=f"v{i}".encode(), headers={"schema-version": "1.0"})
        for i in range(30)
    ]
    buffer.publish(topic, records)
    got = _drain(buffer, topic, "contract-a", 30, commit=True)
    assert len(got) == 30
    assert all(r.headers["schema-version"] == "1.0" for r in got)
    for key in ("k0", "k1", "k2"):
        values = [r.value for r in got if r.key == key]
        expected = [r.value for r in records if r.key == key]
        assert values == expected, "records of one key must keep their order"


def test_uncommitted_records_are_delivered_again(buffer: Buffer, topic: str) -> None:
    buffer.publish(topic, [OutRecord(key="a", value=b"1"), OutRecord(key="a", value=b"2")])
    first = _drain(buffer, topic, "contract-b", 2, commit=False)
    assert [r.value for r in first] == [b"1", b"2"]
    again = _drain(buffer, topic, "contract-b", 2, commit=True)
    assert [r.value for r in again] == [b"1", b"2"]
    consumer = buffer.consumer(topic, "contract-b")
    try:
        leftovers = [r for _ in range(4) for r in consumer.poll(100, 0.5)]
        assert leftovers == []
        assert sum(consumer.lag().values()) == 0
    finally:
        consumer.close()


def test_lag_counts_uncommitted_records(buffer: Buffer, topic: str) -> None:
    buffer.publish(topic, [OutRecord(key=str(i), value=b"x") for i in range(7)])
    consumer = buffer.consumer(topic, "contract-c")
    try:
        seen = []
        for _ in range(40):
            seen += consumer.poll(100, 0.5)
            if len(seen) >= 7:
                break
        assert sum(consumer.lag().values()) == 7
        consumer.commit()
        assert sum(consumer.lag().values()) == 0
    finally:
        consumer.close()


def test_waiting_counts_the_groups_records_on_partitions_served_by_nobody_here(
    buffer: Buffer, topic: str
) -> None:
    buffer.publish(topic, [OutRecord(key=str(i), value=b"x") for i in range(5)])
    idle = buffer.consumer(topic, "contract-w")  # has not polled: serves no partition yet
    try:
        assert idle.lag() == {}
        assert idle.waiting() == 5
    finally:
        idle.close()
    consumer = buffer.consumer(topic, "contract-w")
    try:
        seen: list[object] = []
        for _ in range(40):
            seen += consumer.poll(100, 0.5)
            if len(seen) >= 5:
                break
        assert consumer.waiting() == 5  # polled, not committed
        consumer.commit()
        assert consumer.waiting() == 0
    finally:
        consumer.close()


def _named(checks: list[Check], suffix: str) -> Check:
    [check] = [c for c in checks if c.name.endswith(suffix)]
    return check


def test_check_reports_missing_topics_then_the_lag(buffer: Buffer) -> None:
    kafka = Settings().kafka
    topics, group = [kafka.topic, kafka.dlq_topic], "contract-check"
    before = buffer.check(topics, group, timeout=5)
    assert before[0].status == "ok", before  # reachable
    for topic in topics:
        assert _named(before, f"topic {topic}").failed
        assert _named(before, f"topic {topic}").detail.startswith("missing")
    assert _named(before, f"lag {group}").status == "skip"

    buffer.ensure_topics(topics)
    buffer.publish(kafka.topic, [OutRecord(key="a", value=b"1"), OutRecord(key="b", value=b"2")])
    waiting = buffer.check(topics, group, timeout=5)
    assert not any(check.failed for check in waiting), waiting
    assert _named(waiting, f"topic {kafka.topic}").detail.startswith("3 partitions")
    lag = _named(waiting, f"lag {group}")
    assert lag.detail.startswith("total=2 (") and "not committed yet" in lag.detail

    assert len(_drain(buffer, kafka.topic, group, 2, commit=True)) == 2
    done = _named(buffer.check(topics, group, timeout=5), f"lag {group}")
    assert done.status == "ok" and done.detail.startswith("total=0 ("), done
