"""The Kafka buffer (kafka-python): idempotent producer, manual-commit group consumer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from connectors.buffer import InRecord, OutRecord
from newsflow.errors import BackendUnavailable, PublishError
from newsflow.settings import KafkaSettings

__all__ = ["KafkaBuffer", "KafkaGroupConsumer", "connection_options"]

logger = logging.getLogger(__name__)


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python client options (servers, security) shared by every Kafka client."""
    if not settings.bootstrap_servers:
        raise BackendUnavailable("NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS is not set")
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.bootstrap_servers.split(",")],
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


class KafkaGroupConsumer:
    """One consumer-group member; offsets are committed only by :meth:`commit`."""

    def __init__(self, settings: KafkaSettings, topic: str, group: str) -> None:
        try:
            self._consumer = KafkaConsumer(
                topic,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # Large enough for a full poll of 100 KB articles; bounded by max_records.
                fetch_max_bytes=64 * 1024 * 1024,
                max_partition_fetch_bytes=settings.max_request_size,
                **connection_options(settings),
            )
        except KafkaError as exc:
            raise BackendUnavailable(f"Kafka unreachable at {settings.bootstrap_servers}") from exc

    def poll(self, max_records: int, timeout: float) -> list[InRecord]:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        except KafkaError as exc:
            raise BackendUnavailable(f"Kafka poll failed: {exc}") from exc
        records: list[InRecord] = []
        for batch in batches.values():
            for message in batch:
                records.append(
                    InRecord(
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        key=message.key.decode("utf-8", "replace") if message.key else None,
                        value=message.value or b"",
                        headers={
                            name: value.decode("utf-8", "replace")
                            for name, value in (message.headers or [])
                        },
                    )
                )
        return records

    def commit(self) -> None:
        try:
            self._consumer.commit()
        except KafkaError as exc:
            raise BackendUnavailable(f"Kafka offset commit failed: {exc}") from exc

    def lag(self) -> dict[int, int]:
        partitions: set[TopicPartition] = self._consumer.assignment()
        if not partitions:
            return {}
        ends: dict[TopicPartition, int] = self._consumer.end_offsets(list(partitions))
        lags: dict[int, int] = {}
        for tp in partitions:
            committed = self._consumer.committed(tp) or 0
            lags[tp.partition] = max(0, ends.get(tp, 0) - committed)
        return lags

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaBuffer:
    """Publishes with ``acks=all`` and idempotence on; creates topics on request."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer: KafkaProducer | None = None

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            s = self._settings
            try:
                self._producer = KafkaProducer(
                    acks="all",
                    enable_idempotence=True,
                    compression_type=None if s.compression_type == "none" else s.compression_type,
                    linger_ms=s.linger_ms,
                    batch_size=s.batch_size,
                    max_request_size=s.max_request_size,
                    **connection_options(s),
                )
            except KafkaError as exc:
                raise BackendUnavailable(f"Kafka unreachable at {s.bootstrap_servers}") from exc
        return self._producer

    def ensure_topics(self, topics: Sequence[str]) -> None:
        try:
            admin = KafkaAdminClient(**connection_options(self._settings))
        except KafkaError as exc:
            raise BackendUnavailable(
                f"Kafka unreachable at {self._settings.bootstrap_servers}"
            ) from exc
        try:
            existing = set(admin.list_topics())
            missing = [
                NewTopic(
                    name=topic,
                    num_partitions=self._settings.partitions,
                    replication_factor=self._settings.replication_factor,
                )
                for topic in topics
                if topic not in existing
            ]
            if missing:
                try:
                    admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass  # another process created it between list and create
                logger.info("created topics=%s", ",".join(t.name for t in missing))
        finally:
            admin.close()

    def publish(self, topic: str, records: Sequence[OutRecord]) -> None:
        if not records:
            return
        producer = self._get_producer()
        try:
            futures = [
                producer.send(
                    topic,
                    key=record.key.encode("utf-8"),
                    value=record.value,
                    headers=[(k, v.encode("utf-8")) for k, v in record.headers.items()],
                )
                for record in records
            ]
            producer.flush(timeout=self._settings.request_timeout_ms / 1000 * 4)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            raise PublishError(f"Kafka did not acknowledge a record on {topic}: {exc}") from exc

    def consumer(self, topic: str, group: str) -> KafkaGroupConsumer:
        return KafkaGroupConsumer(self._settings, topic, group)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
