"""``newsflow doctor``: is every backend the settings select reachable and set up?

:func:`run_checks` looks, read-only, at the buffer (Kafka: brokers, topics, the indexer
group's lag; embedded: the SQLite file, its tables, the group's lag), the store
(Elasticsearch: cluster health, index template, aliases and their write indices, the
feeds index; embedded: the SQLite file and its tables) and, when an address is given,
Prefect's API. It never creates, joins or changes anything: the lag is read from the
group's committed offsets, without joining the group (which would make a running
indexer rebalance).

Each check is one :class:`Check`: ``ok``, ``FAIL`` (with what is wrong and what to do)
or ``skip`` (not applicable, or not checkable because an earlier check failed).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from connectors.sqlite_buffer import LEASE_SECONDS
from newsflow.settings import ElasticsearchSettings, KafkaSettings, Settings

__all__ = ["Check", "run_checks"]

Status = Literal["ok", "FAIL", "skip"]

_SETUP_HINT = "created when `newsflow index` or `newsflow run` starts"
_BUFFER_TABLES = {"topics", "log_ends", "records", "commits", "leases"}
_STORE_TABLES = {"articles", "articles_fts", "aliases", "history", "feeds"}


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def _fail(name: str, detail: str) -> Check:
    return Check(name, "FAIL", detail)


def _skip(name: str, detail: str) -> Check:
    return Check(name, "skip", detail)


def _lag_detail(lag: Mapping[int, int], note: str = "") -> str:
    parts = " ".join(f"p{partition}={lag[partition]}" for partition in sorted(lag))
    text = f"total={sum(lag.values())}" + (f" ({parts})" if parts else "")
    return f"{text}; {note}" if note else text


# --- Kafka -------------------------------------------------------------------------------


def _kafka_checks(settings: KafkaSettings, timeout: float) -> list[Check]:
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import OffsetSpec
    from kafka.errors import KafkaError

    from connectors.kafka import connection_options

    topics = [settings.topic, settings.dlq_topic]
    group = f"kafka lag {settings.consumer_group}"
    budget = int(timeout * 1000)
    options = {
        **connection_options(settings),
        "request_timeout_ms": budget,
        "bootstrap_timeout_ms": budget,
    }
    try:
        admin = KafkaAdminClient(**options)
    except (KafkaError, OSError, ValueError) as exc:
        return [
            _fail("kafka", f"unreachable at {settings.bootstrap_servers}: {exc}"),
            *(_skip(f"kafka topic {topic}", "Kafka unreachable") for topic in topics),
            _skip(group, "Kafka unreachable"),
        ]
    checks: list[Check] = []
    try:
        try:
            cluster = admin.describe_cluster()
            brokers = cluster.get("brokers") or []
            checks.append(
                _ok(
                    "kafka",
                    f"{len(brokers)} broker(s) at {settings.bootstrap_servers}, "
                    f"controller {cluster.get('controller_id')}",
                )
            )
        except KafkaError as exc:
            checks.append(_fail("kafka", f"metadata request failed: {exc}"))
            return [*checks, *(_skip(f"kafka topic {t}", "no metadata") for t in topics)]

        partitions: dict[str, list[int]] = {}
        described = {info["name"]: info for info in admin.describe_topics(topics)}
        for topic in topics:
            name = f"kafka topic {topic}"
            info = described.get(topic)
            if info is None or info.get("error_code") or not info.get("partitions"):
                checks.append(
                    _fail(name, f"missing; {_SETUP_HINT} ({settings.partitions} partitions)")
                )
                continue
            found = info["partitions"]
            partitions[topic] = sorted(int(p["partition_index"]) for p in found)
            replicas = min(len(p.get("replica_nodes") or []) for p in found)
            problems = []
            if len(found) != settings.partitions:
                problems.append(
                    f"has {len(found)} partitions, NEWSFLOW_KAFKA_PARTITIONS is "
                    f"{settings.partitions}"
                )
            if replicas < settings.replication_factor:
                problems.append(
                    f"replication factor {replicas} < NEWSFLOW_KAFKA_REPLICATION_FACTOR "
                    f"{settings.replication_factor}"
                )
            if problems:
                checks.append(_fail(name, "; ".join(problems)))
            else:
                checks.append(_ok(name, f"{len(found)} partitions, replication {replicas}"))

        if settings.topic not in partitions:
            checks.append(_skip(group, f"topic {settings.topic} missing"))
            return checks
        wanted = [TopicPartition(settings.topic, p) for p in partitions[settings.topic]]
        try:
            committed = admin.list_group_offsets({settings.consumer_group: wanted}).get(
                settings.consumer_group, {}
            )
            committed = {tp: meta for tp, meta in committed.items() if meta.offset >= 0}
            ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in wanted})
            # Without a commit the group starts at the earliest record still kept.
            uncommitted = {tp: OffsetSpec.EARLIEST for tp in wanted if tp not in committed}
            starts = admin.list_partition_offsets(uncommitted) if uncommitted else {}
        except KafkaError as exc:
            checks.append(_fail(group, f"offsets not readable: {exc}"))
            return checks
        lag = {
            tp.partition: max(
                0,
                ends[tp].offset - (committed[tp].offset if tp in committed else starts[tp].offset),
            )
            for tp in wanted
        }
        note = "" if committed else "the group has not committed yet"
        checks.append(_ok(group, _lag_detail(lag, note)))
    finally:
        admin.close()
    return checks


# --- Elasticsearch -----------------------------------------------------------------------


def _elasticsearch_checks(settings: ElasticsearchSettings, timeout: float) -> list[Check]:
    import elasticsearch

    from connectors.elasticsearch import ElasticsearchStore

    alias, history, feeds = settings.index, settings.history_index, settings.feeds_index
    names = [
        "elasticsearch template",
        f"elasticsearch alias {alias}",
        f"elasticsearch alias {history}",
        f"elasticsearch index {feeds}",
    ]
    store = ElasticsearchStore(settings)
    client = store.client.options(request_timeout=timeout)
    try:
        try:
            health = client.cluster.health()
        except elasticsearch.TransportError as exc:
            return [
                _fail("elasticsearch", f"unreachable at {settings.url}: {exc}"),
                *(_skip(name, "Elasticsearch unreachable") for name in names),
            ]
        except elasticsearch.ApiError as exc:
            return [
                _fail("elasticsearch", f"cluster health failed: {exc}"),
                *(_skip(name, "no cluster health") for name in names),
            ]
        status = str(health["status"])
        detail = (
            f"{status} at {settings.url}, {health['number_of_nodes']} node(s), "
            f"{health['unassigned_shards']} unassigned shard(s)"
        )
        checks = [(_fail if status == "red" else _ok)("elasticsearch", detail)]
        checks.append(_template_check(client, names[0], alias, history))
        checks.append(_alias_check(client, names[1], alias))
        checks.append(_alias_check(client, names[2], history))
        try:
            if client.indices.exists(index=feeds):
                count = int(client.count(index=feeds)["count"])
                checks.append(_ok(names[3], f"{count} feed state(s)"))
            else:
                checks.append(_fail(names[3], f"missing; {_SETUP_HINT}"))
        except elasticsearch.ApiError as exc:
            checks.append(_fail(names[3], str(exc)))
        return checks
    finally:
        store.close()


def _template_check(client: Any, name: str, alias: str, history: str) -> Check:
    import elasticsearch

    template = f"{alias}-template"
    try:
        found = client.indices.get_index_template(name=template)["index_templates"]
    except elasticsearch.NotFoundError:
        return _fail(name, f"{template} missing; {_SETUP_HINT}")
    except elasticsearch.ApiError as exc:
        return _fail(name, f"{template}: {exc}")
    patterns = set(found[0]["index_template"]["index_patterns"]) if found else set()
    missing = {f"{alias}-*", f"{history}-*"} - patterns
    if missing:
        return _fail(name, f"{template} does not cover {', '.join(sorted(missing))}")
    return _ok(name, f"{template} covers {', '.join(sorted(patterns))}")


def _alias_check(client: Any, name: str, alias: str) -> Check:
    import elasticsearch

    try:
        indices = dict(client.indices.get_alias(name=alias))
    except elasticsearch.NotFoundError:
        try:
            is_index = bool(client.indices.exists(index=alias))
        except elasticsearch.ApiError:
            is_index = False
        if is_index:
            return _fail(name, f"{alias} is an index, not an alias: newsflow cannot roll it over")
        return _fail(name, f"missing; {_SETUP_HINT}")
    except elasticsearch.ApiError as exc:
        return _fail(name, str(exc))
    writers = [
        index
        for index, body in indices.items()
        if body["aliases"][alias].get("is_write_index") or len(indices) == 1
    ]
    if len(writers) != 1:
        return _fail(name, f"{len(writers)} write indices behind {alias}: {', '.join(writers)}")
    try:
        count = int(client.count(index=alias)["count"])
    except elasticsearch.ApiError as exc:
        return _fail(name, f"-> {writers[0]} (write), count failed: {exc}")
    return _ok(name, f"-> {writers[0]} (write), {len(indices)} index(es), {count} document(s)")


# --- the embedded backends -----------------------------------------------------------------


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    uri = path.resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as connection:
        yield connection


def _sqlite_file(
    name: str, path: Path, tables: set[str], describe: Callable[[sqlite3.Connection], str]
) -> Check:
    if not path.exists():
        return _fail(name, f"{path} does not exist; {_SETUP_HINT}")
    try:
        with _read_only(path) as db:
            mode = str(db.execute("PRAGMA journal_mode").fetchone()[0])
            found = {
                str(row[0])
                for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            missing = tables - found
            if missing:
                return _fail(
                    name, f"{path} lacks tables {', '.join(sorted(missing))}; {_SETUP_HINT}"
                )
            if mode.lower() != "wal":
                return _fail(name, f"{path} is in {mode} journal mode, expected WAL")
            return _ok(name, f"{path} (WAL, {path.stat().st_size / 1e6:.1f} MB), {describe(db)}")
    except sqlite3.Error as exc:
        return _fail(name, f"{path} cannot be read: {exc}")


def _lease_held(host: str, pid: int, heartbeat: float) -> bool:
    """Whether a group lease still counts (as the embedded buffer decides it)."""
    if time.time() - heartbeat > LEASE_SECONDS:
        return False
    if host.split("/")[0] != socket.gethostname():
        return True  # another host: only the heartbeat tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _buffer_checks(settings: Settings) -> list[Check]:
    path = settings.data_dir / "buffer.sqlite3"
    kafka = settings.kafka
    topics = [kafka.topic, kafka.dlq_topic]
    group = f"embedded lag {kafka.consumer_group}"

    def describe(db: sqlite3.Connection) -> str:
        count = int(db.execute("SELECT count(*) FROM records").fetchone()[0])
        return f"{count} record(s)"

    file_check = _sqlite_file("embedded buffer", path, _BUFFER_TABLES, describe)
    if file_check.failed:
        return [
            file_check,
            *(_skip(f"embedded topic {t}", "buffer not readable") for t in topics),
            _skip(group, "buffer not readable"),
        ]
    checks = [file_check]
    try:
        with _read_only(path) as db:
            partitions = dict(
                db.execute(
                    "SELECT name, partitions FROM topics WHERE name IN (?, ?)", topics
                ).fetchall()
            )
            for topic in topics:
                name = f"embedded topic {topic}"
                if topic not in partitions:
                    checks.append(_fail(name, f"missing; {_SETUP_HINT}"))
                elif int(partitions[topic]) != kafka.partitions:
                    checks.append(
                        _fail(
                            name,
                            f"has {partitions[topic]} partitions, NEWSFLOW_KAFKA_PARTITIONS is "
                            f"{kafka.partitions} (the embedded buffer keeps its first count)",
                        )
                    )
                else:
                    checks.append(_ok(name, f"{partitions[topic]} partitions"))
            if kafka.topic not in partitions:
                checks.append(_skip(group, f"topic {kafka.topic} missing"))
                return checks
            rows = db.execute(
                "SELECT e.partition, e.next_offset - COALESCE(c.committed_offset, 0), "
                "c.committed_offset IS NOT NULL "
                "FROM log_ends e LEFT JOIN commits c ON c.group_id = ? "
                "AND c.topic = e.topic AND c.partition = e.partition WHERE e.topic = ?",
                (kafka.consumer_group, kafka.topic),
            ).fetchall()
            lease = db.execute(
                "SELECT host, pid, heartbeat FROM leases WHERE group_id = ? AND topic = ?",
                (kafka.consumer_group, kafka.topic),
            ).fetchone()
    except sqlite3.Error as exc:
        checks.append(_fail(group, f"{path} cannot be read: {exc}"))
        return checks
    lag = {int(partition): max(0, int(waiting)) for partition, waiting, _ in rows}
    notes = []
    if not any(committed for _, _, committed in rows):
        notes.append("the group has not committed yet")
    if lease is not None and _lease_held(str(lease[0]), int(lease[1]), float(lease[2])):
        notes.append(f"served by pid {lease[1]} on {str(lease[0]).split('/')[0]}")
    checks.append(_ok(group, _lag_detail(lag, "; ".join(notes))))
    return checks


def _store_checks(settings: Settings) -> list[Check]:
    def describe(db: sqlite3.Connection) -> str:
        articles = int(db.execute("SELECT count(*) FROM articles").fetchone()[0])
        feeds = int(db.execute("SELECT count(*) FROM feeds").fetchone()[0])
        return f"{articles} article(s), {feeds} feed state(s)"

    return [
        _sqlite_file("embedded store", settings.data_dir / "store.sqlite3", _STORE_TABLES, describe)
    ]


# --- Prefect -----------------------------------------------------------------------------


def _prefect_check(url: str | None, timeout: float) -> Check:
    if not url:
        return _skip("prefect api", "PREFECT_API_URL not set: each run starts a temporary API")
    health = url.rstrip("/") + "/health"
    try:
        response = httpx.get(health, timeout=timeout)
    except httpx.HTTPError as exc:
        return _fail("prefect api", f"{health} unreachable: {type(exc).__name__}: {exc}")
    if response.status_code != 200:
        return _fail("prefect api", f"{health} answered HTTP {response.status_code}")
    return _ok("prefect api", f"{health} healthy")


# --- all of it ---------------------------------------------------------------------------


def run_checks(
    settings: Settings, *, prefect_api_url: str | None = None, timeout: float = 10.0
) -> list[Check]:
    """Every check for the backends ``settings`` select; never raises for a failed check.

    ``timeout`` bounds each network request (seconds).
    """
    checks: list[Check] = []
    if settings.kafka.bootstrap_servers:
        checks.extend(_guarded("kafka", lambda: _kafka_checks(settings.kafka, timeout)))
    else:
        checks.extend(_guarded("embedded buffer", lambda: _buffer_checks(settings)))
    if settings.elasticsearch.url:
        checks.extend(
            _guarded(
                "elasticsearch", lambda: _elasticsearch_checks(settings.elasticsearch, timeout)
            )
        )
    else:
        checks.extend(_guarded("embedded store", lambda: _store_checks(settings)))
    checks.append(_prefect_check(prefect_api_url, timeout))
    return checks


def _guarded(name: str, checks: Callable[[], list[Check]]) -> list[Check]:
    """A check that crashed is a failed check, not a crashed doctor."""
    try:
        return checks()
    except Exception as exc:  # reported, with its type, as a FAIL line
        return [_fail(name, f"check crashed: {type(exc).__name__}: {exc}")]
