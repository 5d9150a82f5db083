"""The Kafka buffer's error translation: kafka-python errors become newsflow's markers."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import (
    InvalidReplicationFactorError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from connectors import kafka as kafka_module
from connectors.kafka import KafkaBuffer, KafkaGroupConsumer, connection_options
from newsflow.errors import BackendUnavailable, ConfigError, PermanentError
from newsflow.settings import KafkaSettings


def test_a_missing_bootstrap_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS is not set"):
        connection_options(KafkaSettings(bootstrap_servers=None))


class _Admin:
    """Stands in for KafkaAdminClient: no broker is involved in these unit tests."""

    failure: Exception | None = None
    closed = False

    def __init__(self, **options: Any) -> None:
        self.options = options

    def list_topics(self) -> list[str]:
        return []

    def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"broker_id": 1}]}

    def create_topics(self, topics: list[Any]) -> None:
        if _Admin.failure is not None:
            raise _Admin.failure

    def close(self) -> None:
        _Admin.closed = True


@pytest.mark.parametrize(
    ("failure", "marker", "message"),
    [
        (KafkaTimeoutError("no answer"), BackendUnavailable, "topic creation failed"),
        (InvalidReplicationFactorError(), ConfigError, "NEWSFLOW_KAFKA_REPLICATION_FACTOR"),
        (TopicAuthorizationFailedError(), PermanentError, "refused"),
    ],
)
def test_ensure_topics_translates_kafka_errors(
    monkeypatch: pytest.MonkeyPatch, failure: Exception, marker: type[Exception], message: str
) -> None:
    monkeypatch.setattr(kafka_module, "KafkaAdminClient", _Admin)
    monkeypatch.setattr(_Admin, "failure", failure)
    buffer = KafkaBuffer(KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(marker, match=message) as raised:
        buffer.ensure_topics(["news.articles"])
    assert raised.value.__cause__ is failure
    assert not isinstance(raised.value, BackendUnavailable) or marker is BackendUnavailable
    assert _Admin.closed


class _Assigned:
    """Stands in for KafkaConsumer: one assigned partition whose offsets cannot be read."""

    def assignment(self) -> set[Any]:
        from kafka import TopicPartition

        return {TopicPartition("news.articles", 0)}

    def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        raise KafkaTimeoutError("Failed to get offsets by timestamps in 30000 ms")


def test_lag_translates_kafka_errors() -> None:
    consumer = object.__new__(KafkaGroupConsumer)
    consumer._consumer = _Assigned()
    with pytest.raises(BackendUnavailable, match="Kafka lag failed"):
        consumer.lag()


@pytest.mark.integration
def test_a_replication_factor_beyond_the_brokers_is_a_config_error(stack_env: str) -> None:
    settings = KafkaSettings(replication_factor=5)  # the local stack has one broker
    buffer = KafkaBuffer(settings)
    try:
        with pytest.raises(ConfigError, match="NEWSFLOW_KAFKA_REPLICATION_FACTOR"):
            buffer.ensure_topics([f"t{stack_env}.replicated"])
    finally:
        buffer.close()


@pytest.mark.integration
def test_the_session_timeout_reaches_the_consumer_with_heartbeats_to_match(stack_env: str) -> None:
    settings = KafkaSettings(session_timeout_ms=7_000)
    consumer = KafkaGroupConsumer(settings, f"t{stack_env}.session", f"t{stack_env}-session")
    try:
        config = consumer._consumer.config
        assert (config["session_timeout_ms"], config["heartbeat_interval_ms"]) == (7_000, 2_333)
    finally:
        consumer.close()
    with pytest.raises(ValueError, match="session_timeout_ms"):
        KafkaSettings(session_timeout_ms=1_000)  # below what brokers accept
