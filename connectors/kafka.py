"""The Kafka buffer (kafka-python): idempotent producer, manual-commit group consumer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic, OffsetSpec
from kafka.errors import (
    AuthorizationError,
    CommitFailedError,
    IllegalGenerationError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    KafkaConfigurationError,
    KafkaError,
    PolicyViolationError,
    RebalanceInProgressError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
    UnknownMemberIdError,
)

from connectors.buffer import InRecord, OutRecord
from connectors.health import SETUP_HINT, Check, describe_lag
from newsflow.errors import (
    BackendUnavailable,
    CommitLost,
    ConfigError,
    NewsflowError,
    PermanentError,
    PublishError,
)
from newsflow.settings import KafkaSettings

__all__ = ["KafkaBuffer", "KafkaGroupConsumer", "Replication", "connection_options", "replication"]

logger = logging.getLogger(__name__)

_REFUSED = (
    AuthorizationError,
    InvalidPartitionsError,
    InvalidTopicError,
    PolicyViolationError,
    SaslAuthenticationFailedError,
)
"""Answers that come back the same however often the request is sent."""

_GROUP_MOVED_ON = (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
"""Commit answers meaning the group rebalanced: the member rejoins at its next poll."""


def _translated(exc: KafkaError, action: str) -> NewsflowError:
    """A kafka-python error as newsflow's marker: settings and refusals are permanent."""
    if isinstance(exc, KafkaConfigurationError):
        return ConfigError(f"Kafka {action}: invalid NEWSFLOW_KAFKA_* setting: {exc}")
    if isinstance(exc, InvalidReplicationFactorError):
        return ConfigError(
            f"Kafka {action}: NEWSFLOW_KAFKA_REPLICATION_FACTOR exceeds the brokers: {exc}"
        )
    if isinstance(exc, _REFUSED):
        return PermanentError(f"Kafka {action} refused: {exc}")
    return BackendUnavailable(f"Kafka {action} failed: {exc}")


@dataclass(frozen=True, slots=True)
class Replication:
    """How many copies a topic newsflow creates gets, and how many must be in sync."""

    factor: int
    min_insync: int


def replication(settings: KafkaSettings, brokers: int) -> Replication:
    """The settings' replication, its unset parts chosen from the cluster's ``brokers``.

    Unset, a topic gets ``min(3, brokers)`` copies of which ``min(2, factor)`` must be in
    sync: on three brokers, one may fail without an acknowledged (``acks=all``) record
    being lost or writes being refused. Explicit values win, and are checked here.
    """
    factor = settings.replication_factor or max(1, min(3, brokers))
    min_insync = settings.min_insync_replicas or min(2, factor)
    if factor > brokers:
        raise ConfigError(
            f"NEWSFLOW_KAFKA_REPLICATION_FACTOR {factor} exceeds the {brokers} broker(s)"
        )
    if min_insync > factor:
        raise ConfigError(
            f"NEWSFLOW_KAFKA_MIN_INSYNC_REPLICAS {min_insync} exceeds the replication "
            f"factor {factor}: no acks=all write could succeed"
        )
    return Replication(factor, min_insync)


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python client options (servers, security) shared by every Kafka client."""
    if not settings.bootstrap_servers:
        raise ConfigError("NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS is not set")
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.bootstrap_servers.split(",")],
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    if settings.security_protocol.startswith("SASL_") and settings.sasl_mechanism:
        # kafka-python takes the SCRAM credentials under the PLAIN names too.
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_check_hostname"] = settings.ssl_check_hostname
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(settings, name)
            if path is not None:
                if not path.is_file():
                    variable = f"NEWSFLOW_KAFKA_{name.upper()}"
                    raise ConfigError(f"{variable}={str(path)!r}: no such file")
                options[name] = str(path)
        if settings.ssl_password is not None:
            options["ssl_password"] = settings.ssl_password.get_secret_value()
    return options


class KafkaGroupConsumer:
    """One consumer-group member; offsets are committed only by :meth:`commit`."""

    def __init__(self, settings: KafkaSettings, topic: str, group: str) -> None:
        self._topic = topic
        try:
            self._consumer = KafkaConsumer(
                topic,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # Large enough for a full poll of 100 KB articles; bounded by max_records.
                fetch_max_bytes=64 * 1024 * 1024,
                max_partition_fetch_bytes=settings.max_request_size,
                max_poll_interval_ms=settings.max_poll_interval_ms,
                session_timeout_ms=settings.session_timeout_ms,
                # Three heartbeats per session at least, as Kafka recommends.
                heartbeat_interval_ms=min(3_000, settings.session_timeout_ms // 3),
                **connection_options(settings),
            )
        except KafkaConfigurationError as exc:
            raise _translated(exc, "consumer set-up") from exc
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
        except _GROUP_MOVED_ON as exc:
            raise CommitLost(f"Kafka offset commit lost to a rebalance: {exc}") from exc
        except KafkaError as exc:
            raise BackendUnavailable(f"Kafka offset commit failed: {exc}") from exc

    def lag(self) -> dict[int, int]:
        partitions: set[TopicPartition] = self._consumer.assignment()
        return {tp.partition: n for tp, n in self._uncommitted(list(partitions)).items()}

    def waiting(self) -> int:
        try:
            numbers = self._consumer.partitions_for_topic(self._topic) or set()
        except KafkaError as exc:
            raise _translated(exc, "lag") from exc
        return sum(self._uncommitted([TopicPartition(self._topic, n) for n in numbers]).values())

    def _uncommitted(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Records past the group's committed offset of each of ``partitions``; committed()
        asks the group's coordinator for partitions this member is not assigned."""
        if not partitions:
            return {}
        try:
            ends: dict[TopicPartition, int] = self._consumer.end_offsets(partitions)
            committed = {tp: self._consumer.committed(tp) or 0 for tp in partitions}
        except KafkaError as exc:
            raise _translated(exc, "lag") from exc
        return {tp: max(0, ends.get(tp, 0) - committed[tp]) for tp in partitions}

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
            except KafkaConfigurationError as exc:
                raise _translated(exc, "producer set-up") from exc
            except KafkaError as exc:
                raise BackendUnavailable(f"Kafka unreachable at {s.bootstrap_servers}") from exc
        return self._producer

    def _admin(self, **overrides: Any) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(**{**connection_options(self._settings), **overrides})
        except KafkaConfigurationError as exc:
            raise _translated(exc, "admin set-up") from exc
        except KafkaError as exc:
            raise BackendUnavailable(
                f"Kafka unreachable at {self._settings.bootstrap_servers}: {exc}"
            ) from exc

    def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the missing ``topics``, replicated as :func:`replication` decides."""
        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            wanted = [topic for topic in topics if topic not in existing]
            if not wanted:
                return
            copies = replication(self._settings, len(admin.describe_cluster()["brokers"]))
            missing = [
                NewTopic(
                    name=topic,
                    num_partitions=self._settings.partitions,
                    replication_factor=copies.factor,
                    topic_configs={"min.insync.replicas": str(copies.min_insync)},
                )
                for topic in wanted
            ]
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create
            logger.info(
                "created topics=%s replication=%d min_insync=%d",
                ",".join(t.name for t in missing),
                copies.factor,
                copies.min_insync,
            )
        except KafkaError as exc:
            raise _translated(exc, "topic creation") from exc
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

    def check(self, topics: Sequence[str], group: str, *, timeout: float = 10.0) -> list[Check]:
        """Brokers, each topic (partitions, replication) and ``group``'s lag on ``topics[0]``.

        The lag is read with the admin client from the committed offsets: joining the
        group would make a running indexer rebalance.
        """
        servers = self._settings.bootstrap_servers
        group_name = f"kafka lag {group}"
        budget = int(timeout * 1000)
        try:
            admin = self._admin(request_timeout_ms=budget, bootstrap_timeout_ms=budget)
        except (NewsflowError, OSError, ValueError) as exc:
            cause = exc.__cause__ or exc
            return [
                Check.fail("kafka", f"unreachable at {servers}: {cause}"),
                *(Check.skip(f"kafka topic {topic}", "Kafka unreachable") for topic in topics),
                Check.skip(group_name, "Kafka unreachable"),
            ]
        try:
            try:
                cluster = admin.describe_cluster()
            except KafkaError as exc:
                return [
                    Check.fail("kafka", f"metadata request failed: {exc}"),
                    *(Check.skip(f"kafka topic {t}", "no metadata") for t in topics),
                ]
            brokers = cluster.get("brokers") or []
            checks = [
                Check.ok(
                    "kafka",
                    f"{len(brokers)} broker(s) at {servers}, "
                    f"controller {cluster.get('controller_id')}",
                )
            ]
            try:
                copies: Replication | str = replication(self._settings, len(brokers))
            except ConfigError as exc:
                copies = str(exc)
            described = {info["name"]: info for info in admin.describe_topics(list(topics))}
            insync = self._min_insync(admin, [t for t in topics if t in described])
            partitions: dict[str, list[int]] = {}
            for topic in topics:
                check, found = self._topic_check(
                    topic, described.get(topic), copies, insync.get(topic)
                )
                checks.append(check)
                if found is not None:
                    partitions[topic] = found
            if topics:
                checks.append(self._lag_check(admin, group_name, group, topics[0], partitions))
            return checks
        finally:
            admin.close()

    @staticmethod
    def _min_insync(admin: KafkaAdminClient, topics: Sequence[str]) -> dict[str, int]:
        """Each topic's ``min.insync.replicas``; empty when the configs are not readable."""
        if not topics:
            return {}
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})
            for topic in topics
        ]
        try:
            found = admin.describe_configs(resources, config_filter="all").get("topic", {})
        except KafkaError as exc:
            logger.warning("topic configs not readable: %s", exc)
            return {}
        values: dict[str, int] = {}
        for topic, configs in found.items():
            entry = configs.get("min.insync.replicas") or {}
            value = entry.get("value") if isinstance(entry, dict) else entry
            if value is not None:
                values[topic] = int(value)
        return values

    def _topic_check(
        self,
        topic: str,
        info: dict[str, Any] | None,
        copies: Replication | str,
        min_insync: int | None,
    ) -> tuple[Check, list[int] | None]:
        """The check of one described topic, and its partitions when it exists."""
        name = f"kafka topic {topic}"
        wanted = self._settings
        if info is None or info.get("error_code") or not info.get("partitions"):
            return Check.fail(name, f"missing; {SETUP_HINT} ({wanted.partitions} partitions)"), None
        found = info["partitions"]
        replicas = min(len(p.get("replica_nodes") or []) for p in found)
        in_sync = min(len(p.get("isr_nodes") or []) for p in found)
        problems = []
        if len(found) != wanted.partitions:
            problems.append(
                f"has {len(found)} partitions, NEWSFLOW_KAFKA_PARTITIONS is {wanted.partitions}"
            )
        if isinstance(copies, str):
            problems.append(copies)
        else:
            if replicas < copies.factor:
                problems.append(
                    f"replication factor {replicas} < {copies.factor} "
                    "(NEWSFLOW_KAFKA_REPLICATION_FACTOR, default min(3, brokers))"
                )
            if min_insync is not None and min_insync < copies.min_insync:
                problems.append(
                    f"min.insync.replicas {min_insync} < {copies.min_insync} "
                    "(NEWSFLOW_KAFKA_MIN_INSYNC_REPLICAS, default min(2, replication))"
                )
            if min_insync is not None and in_sync < min_insync:
                problems.append(
                    f"a partition has {in_sync} in-sync replica(s) < min.insync.replicas "
                    f"{min_insync}: acks=all writes are refused"
                )
        ids = sorted(int(p["partition_index"]) for p in found)
        if problems:
            return Check.fail(name, "; ".join(problems)), ids
        detail = f"{len(found)} partitions, replication {replicas}"
        if min_insync is not None:
            detail += f", min.insync.replicas {min_insync}"
        return Check.ok(name, detail), ids

    @staticmethod
    def _lag_check(
        admin: KafkaAdminClient,
        name: str,
        group: str,
        topic: str,
        partitions: dict[str, list[int]],
    ) -> Check:
        if topic not in partitions:
            return Check.skip(name, f"topic {topic} missing")
        wanted = [TopicPartition(topic, p) for p in partitions[topic]]
        try:
            committed = admin.list_group_offsets({group: wanted}).get(group, {})
            committed = {tp: meta for tp, meta in committed.items() if meta.offset >= 0}
            ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in wanted})
            # Without a commit the group starts at the earliest record still kept.
            uncommitted = {tp: OffsetSpec.EARLIEST for tp in wanted if tp not in committed}
            starts = admin.list_partition_offsets(uncommitted) if uncommitted else {}
        except KafkaError as exc:
            return Check.fail(name, f"offsets not readable: {exc}")
        lag = {
            tp.partition: max(
                0,
                ends[tp].offset - (committed[tp].offset if tp in committed else starts[tp].offset),
            )
            for tp in wanted
        }
        return Check.ok(
            name, describe_lag(lag, "" if committed else "the group has not committed yet")
        )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
