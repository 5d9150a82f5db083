"""The embedded buffer: a durable, partitioned log with consumer groups in one SQLite file.

Used when ``NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS`` is unset. It keeps Kafka's semantics where
newsflow relies on them:

- a record's partition is a stable hash of its key, so records of one key keep their order;
- :meth:`SqliteBuffer.publish` appends a whole call in one transaction and returns after
  the commit (WAL, ``synchronous=FULL``): that commit is the acknowledgement, and nothing
  acknowledged is lost when the process is killed;
- a group's committed offsets move only on :meth:`SqliteConsumer.commit`; records polled
  but not committed are delivered again to the next member of the group;
- a topic must exist (:meth:`SqliteBuffer.ensure_topics`) before it is published to.

Several processes may share the file (a poller publishing, an indexer consuming). A group
is served by one member at a time, unlike Kafka, which spreads partitions over members:
the member that polls first takes the group's *lease* (a row with a heartbeat); a second
member of the same group stays idle (polls nothing, ``lag() == {}``) until the lease is
released by :meth:`SqliteConsumer.close`, its holder's process has died (checked by pid on
the same host), or its heartbeat is older than :data:`LEASE_SECONDS`. A member that lost
its lease cannot commit (:class:`~newsflow.errors.BackendUnavailable`, like Kafka's failed
commit after a rebalance), so two members never both move a group's offsets.

Retention: a record older than ``retention`` seconds is deleted once every group that has
committed on its topic is past it (never while no group has committed). Unlike Kafka's
time-based retention this never drops a record an existing group has not consumed yet.

Layout: ``topics(name, partitions)``, ``log_ends(topic, partition, next_offset)``,
``records(topic, partition, offset, key, value, headers, ts)``,
``commits(group_id, topic, partition, committed_offset)`` and
``leases(group_id, topic, member, host, pid, heartbeat)``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path

from connectors._sqlite import (
    Database,
    connect,
    file_error,
    inspect_file,
    read_only,
    transaction,
    translated,
)
from connectors.buffer import InRecord, OutRecord
from connectors.health import SETUP_HINT, Check, describe_lag
from newsflow.errors import BackendUnavailable, PublishError

__all__ = ["LEASE_SECONDS", "SqliteBuffer", "SqliteConsumer", "partition_for"]

logger = logging.getLogger(__name__)

LEASE_SECONDS = 300.0
"""A group member that has not polled or committed for this long loses its lease
(Kafka's default ``max.poll.interval.ms``)."""

_WHAT = "embedded buffer"
_POLL_INTERVAL = 0.05
_PRUNE_INTERVAL = 600.0
_TABLES = {"topics", "log_ends", "records", "commits", "leases"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL CHECK (partitions > 0)
);
CREATE TABLE IF NOT EXISTS log_ends (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    key TEXT,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS commits (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    member TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    heartbeat REAL NOT NULL,
    PRIMARY KEY (group_id, topic)
) WITHOUT ROWID;
"""


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key``: stable across processes, runs and Python versions."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def _host_identity() -> str:
    """This host, and on Linux this pid namespace: where a lease holder's pid can be checked."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _lease_held(host: str, pid: int, heartbeat: float, now: float) -> bool:
    """Whether a lease taken by ``pid`` on ``host`` still counts at ``now``."""
    if now - heartbeat > LEASE_SECONDS:
        return False
    # Only on this host (and pid namespace) can the holder's pid be checked.
    return host != _host_identity() or _process_alive(pid)


class SqliteConsumer:
    """One member of a consumer group on one topic of a :class:`SqliteBuffer` file."""

    def __init__(self, path: Path, topic: str, group: str) -> None:
        self._path = path
        self._topic = topic
        self._group = group
        self._member = uuid.uuid4().hex
        self._host = _host_identity()
        self._lock = threading.Lock()
        self._connection = connect(path, _WHAT)
        self._positions: dict[int, int] | None = None
        """Next offset to deliver per partition while this member holds the lease."""
        self._last_beat = 0.0
        self._seen_version: int | None = None
        self._next_partition = 0
        self._closed = False

    # -- the lease -------------------------------------------------------------------

    def _lease_free(self, row: tuple[str, str, int, float] | None, now: float) -> bool:
        if row is None:
            return True
        member, host, pid, heartbeat = row
        return member == self._member or not _lease_held(host, pid, heartbeat, now)

    def _lease_row(self) -> tuple[str, str, int, float] | None:
        row = self._connection.execute(
            "SELECT member, host, pid, heartbeat FROM leases WHERE group_id = ? AND topic = ?",
            (self._group, self._topic),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]), float(row[3]))

    def _claim(self) -> bool:
        """Take or renew the group's lease; load committed positions when newly taken."""
        now = time.time()
        if not self._lease_free(self._lease_row(), now):  # cheap read before locking
            self._positions = None
            return False
        with transaction(self._connection) as db:
            row = self._lease_row()
            if not self._lease_free(row, now):
                self._positions = None
                return False
            topic = db.execute(
                "SELECT partitions FROM topics WHERE name = ?", (self._topic,)
            ).fetchone()
            if topic is None:
                return False  # nothing to assign until the topic exists
            db.execute(
                "INSERT OR REPLACE INTO leases (group_id, topic, member, host, pid, heartbeat) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self._group, self._topic, self._member, self._host, os.getpid(), now),
            )
            if row is not None and row[0] != self._member:
                logger.info(
                    "took over group=%s topic=%s from pid=%d host=%s",
                    self._group,
                    self._topic,
                    row[2],
                    row[1],
                )
            if self._positions is None or row is None or row[0] != self._member:
                committed = dict(
                    db.execute(
                        "SELECT partition, committed_offset FROM commits "
                        "WHERE group_id = ? AND topic = ?",
                        (self._group, self._topic),
                    ).fetchall()
                )
                self._positions = {p: int(committed.get(p, 0)) for p in range(int(topic[0]))}
                self._seen_version = None  # positions moved: look again even if nothing new
        self._last_beat = time.monotonic()
        return True

    def _assigned(self) -> bool:
        if self._positions is not None and time.monotonic() - self._last_beat < LEASE_SECONDS / 3:
            return True
        return self._claim()

    # -- Consumer --------------------------------------------------------------------

    def poll(self, max_records: int, timeout: float) -> list[InRecord]:
        deadline = time.monotonic() + timeout
        with self._lock, translated(_WHAT, self._path, "poll"):
            while True:
                if max_records > 0 and self._assigned():
                    records = self._fetch(max_records)
                    if records:
                        return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(_POLL_INTERVAL, remaining))

    def _fetch(self, max_records: int) -> list[InRecord]:
        # data_version changes only when another connection commits: skip the queries
        # while nothing was published since the last empty look.
        version = int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        if version == self._seen_version:
            return []
        positions = self._positions or {}
        partitions = sorted(positions)
        records: list[InRecord] = []
        # Start at a rotating partition so that a busy partition does not starve the others.
        for step in range(len(partitions)):
            partition = partitions[(self._next_partition + step) % len(partitions)]
            rows = self._connection.execute(
                'SELECT "offset", key, value, headers FROM records '
                'WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (self._topic, partition, positions[partition], max_records - len(records)),
            ).fetchall()
            for offset, key, value, headers in rows:
                records.append(
                    InRecord(
                        topic=self._topic,
                        partition=partition,
                        offset=int(offset),
                        key=key or None,  # as the Kafka consumer: an empty key reads as None
                        value=bytes(value),
                        headers=json.loads(headers),
                    )
                )
            if rows:
                positions[partition] = int(rows[-1][0]) + 1
            if len(records) >= max_records:
                break
        self._next_partition += 1
        if not records:
            self._seen_version = version
        return records

    def commit(self) -> None:
        with self._lock, translated(_WHAT, self._path, "offset commit"):
            if self._positions is None:
                return  # nothing assigned, nothing polled
            with transaction(self._connection) as db:
                row = self._lease_row()
                if row is None or row[0] != self._member:
                    self._positions = None
                    raise BackendUnavailable(
                        f"embedded buffer: group {self._group!r} on {self._topic!r} was taken "
                        "over by another member; uncommitted records will be delivered again"
                    )
                db.executemany(
                    "INSERT OR REPLACE INTO commits (group_id, topic, partition, committed_offset) "
                    "VALUES (?, ?, ?, ?)",
                    [(self._group, self._topic, p, o) for p, o in self._positions.items()],
                )
                db.execute(
                    "UPDATE leases SET heartbeat = ? WHERE group_id = ? AND topic = ?",
                    (time.time(), self._group, self._topic),
                )
            self._last_beat = time.monotonic()

    def lag(self) -> dict[int, int]:
        if self._positions is None:
            return {}  # like a Kafka member without assigned partitions
        return self._group_lag()

    def waiting(self) -> int:
        return sum(self._group_lag().values())

    def _group_lag(self) -> dict[int, int]:
        with self._lock, translated(_WHAT, self._path, "lag"):
            rows = self._connection.execute(
                "SELECT e.partition, e.next_offset - COALESCE(c.committed_offset, 0) "
                "FROM log_ends e LEFT JOIN commits c ON c.group_id = ? "
                "AND c.topic = e.topic AND c.partition = e.partition WHERE e.topic = ?",
                (self._group, self._topic),
            ).fetchall()
        return {int(partition): max(0, int(lag)) for partition, lag in rows}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._positions = None
            try:
                with transaction(self._connection) as db:
                    db.execute(
                        "DELETE FROM leases WHERE group_id = ? AND topic = ? AND member = ?",
                        (self._group, self._topic, self._member),
                    )
            except sqlite3.Error as exc:  # the lease then expires on its own
                logger.warning("embedded buffer: lease not released: %s", exc)
            finally:
                self._connection.close()


class SqliteBuffer:
    """The :class:`~connectors.buffer.Buffer` in one SQLite file (see the module docs)."""

    def __init__(
        self,
        path: Path,
        partitions: int = 6,
        *,
        retention: float | None = 7 * 86400.0,
        lazy: bool = False,
    ) -> None:
        """Open (creating if needed) the log at ``path``; ``lazy``: at its first use."""
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self._path = path
        self._partitions = partitions
        self._retention = retention
        self._db = Database(path, _WHAT, _SCHEMA, lazy=lazy)
        self._last_prune = float("-inf")

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def ensure_topics(self, topics: Sequence[str]) -> None:
        with self._db.lock, translated(_WHAT, self._path, "topic creation"):
            with transaction(self._db.connection()) as db:
                for topic in topics:
                    created = db.execute(
                        "INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)",
                        (topic, self._partitions),
                    ).rowcount
                    if created:
                        db.executemany(
                            "INSERT OR IGNORE INTO log_ends (topic, partition, next_offset) "
                            "VALUES (?, ?, 0)",
                            [(topic, p) for p in range(self._partitions)],
                        )
                        logger.info("created topic=%s partitions=%d", topic, self._partitions)

    def publish(self, topic: str, records: Sequence[OutRecord]) -> None:
        if not records:
            return
        now = time.time()
        with self._db.lock:
            try:
                with transaction(self._db.connection()) as db:
                    found = db.execute(
                        "SELECT partitions FROM topics WHERE name = ?", (topic,)
                    ).fetchone()
                    if found is None:
                        raise PublishError(
                            f"embedded buffer: topic {topic!r} does not exist ({self._path})"
                        )
                    partitions = int(found[0])
                    ends = dict(
                        db.execute(
                            "SELECT partition, next_offset FROM log_ends WHERE topic = ?",
                            (topic,),
                        ).fetchall()
                    )
                    rows = []
                    for record in records:
                        partition = partition_for(record.key, partitions)
                        offset = int(ends.get(partition, 0))
                        ends[partition] = offset + 1
                        rows.append(
                            (
                                topic,
                                partition,
                                offset,
                                record.key,
                                record.value,
                                json.dumps(record.headers, ensure_ascii=False),
                                now,
                            )
                        )
                    db.executemany(
                        "INSERT INTO records "
                        '(topic, partition, "offset", key, value, headers, ts) '
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                    db.executemany(
                        "INSERT OR REPLACE INTO log_ends (topic, partition, next_offset) "
                        "VALUES (?, ?, ?)",
                        [(topic, p, o) for p, o in ends.items()],
                    )
            except sqlite3.Error as exc:
                error = file_error(_WHAT, self._path, f"publish to {topic}", exc)
                raise error or PublishError(
                    f"embedded buffer did not store the records on {topic}: {exc}"
                ) from exc
            if time.monotonic() - self._last_prune > _PRUNE_INTERVAL:
                self._prune(topic)

    def prune(self) -> None:
        """Apply the retention to every topic now (publish does it every few minutes)."""
        with self._db.lock, translated(_WHAT, self._path, "retention"):
            topics = self._db.connection().execute("SELECT name FROM topics").fetchall()
            for (topic,) in topics:
                self._prune(str(topic))

    def _prune(self, topic: str) -> None:
        """Delete records past the retention that every group with commits has consumed."""
        self._last_prune = time.monotonic()
        if self._retention is None:
            return
        before = time.time() - self._retention
        try:
            with transaction(self._db.connection()) as db:
                commits = db.execute(
                    "SELECT group_id, partition, committed_offset FROM commits WHERE topic = ?",
                    (topic,),
                ).fetchall()
                groups: dict[str, dict[int, int]] = {}
                for group, partition, offset in commits:
                    groups.setdefault(str(group), {})[int(partition)] = int(offset)
                if not groups:
                    return
                partitions = [
                    int(p)
                    for (p,) in db.execute(
                        "SELECT partition FROM log_ends WHERE topic = ?", (topic,)
                    ).fetchall()
                ]
                deleted = 0
                for partition in partitions:
                    floor = min(offsets.get(partition, 0) for offsets in groups.values())
                    deleted += db.execute(
                        "DELETE FROM records WHERE topic = ? AND partition = ? "
                        'AND "offset" < ? AND ts < ?',
                        (topic, partition, floor, before),
                    ).rowcount
            if deleted:
                logger.info("pruned topic=%s records=%d", topic, deleted)
        except sqlite3.Error as exc:  # retention is housekeeping: try again later
            logger.warning("embedded buffer: retention pass failed: %s", exc)

    def consumer(self, topic: str, group: str) -> SqliteConsumer:
        with self._db.lock:
            self._db.connection()  # the member's queries need the tables
        return SqliteConsumer(self._path, topic, group)

    def check(self, topics: Sequence[str], group: str, *, timeout: float = 10.0) -> list[Check]:
        """The file, each topic and ``group``'s lag on ``topics[0]``; read-only.

        The lag is read from the committed offsets, without taking the group's lease.
        ``timeout`` is unused: a local file answers at once or not at all.
        """
        group_name = f"embedded lag {group}"

        def describe(db: sqlite3.Connection) -> str:
            count = int(db.execute("SELECT count(*) FROM records").fetchone()[0])
            return f"{count} record(s)"

        file_check = inspect_file(_WHAT, self._path, _TABLES, describe)
        if file_check.failed:
            return [
                file_check,
                *(Check.skip(f"embedded topic {t}", "buffer not readable") for t in topics),
                Check.skip(group_name, "buffer not readable"),
            ]
        checks = [file_check]
        try:
            with read_only(self._path) as db:
                # A handful of rows: every topic of the file.
                partitions = dict(db.execute("SELECT name, partitions FROM topics").fetchall())
                checks += [self._topic_check(topic, partitions.get(topic)) for topic in topics]
                if not topics:
                    return checks
                if topics[0] not in partitions:
                    checks.append(Check.skip(group_name, f"topic {topics[0]} missing"))
                    return checks
                rows = db.execute(
                    "SELECT e.partition, e.next_offset - COALESCE(c.committed_offset, 0), "
                    "c.committed_offset IS NOT NULL "
                    "FROM log_ends e LEFT JOIN commits c ON c.group_id = ? "
                    "AND c.topic = e.topic AND c.partition = e.partition WHERE e.topic = ?",
                    (group, topics[0]),
                ).fetchall()
                lease = db.execute(
                    "SELECT host, pid, heartbeat FROM leases WHERE group_id = ? AND topic = ?",
                    (group, topics[0]),
                ).fetchone()
        except sqlite3.Error as exc:
            checks.append(Check.fail(group_name, f"{self._path} cannot be read: {exc}"))
            return checks
        lag = {int(partition): max(0, int(waiting)) for partition, waiting, _ in rows}
        notes = []
        if not any(committed for _, _, committed in rows):
            notes.append("the group has not committed yet")
        if lease is not None:
            host, pid = str(lease[0]), int(lease[1])
            if _lease_held(host, pid, float(lease[2]), time.time()):
                notes.append(f"served by pid {pid} on {host.split('/')[0]}")
        checks.append(Check.ok(group_name, describe_lag(lag, "; ".join(notes))))
        return checks

    def _topic_check(self, topic: str, partitions: int | None) -> Check:
        name = f"embedded topic {topic}"
        if partitions is None:
            return Check.fail(name, f"missing; {SETUP_HINT}")
        if int(partitions) != self._partitions:
            return Check.fail(
                name,
                f"has {partitions} partitions, NEWSFLOW_KAFKA_PARTITIONS is "
                f"{self._partitions} (the embedded buffer keeps its first count)",
            )
        return Check.ok(name, f"{partitions} partitions")

    def close(self) -> None:
        self._db.close()
