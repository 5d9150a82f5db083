"""The buffer interface: an ordered, partitioned, durable log with consumer groups.

Two implementations share this contract (and one contract test suite): Kafka and the
embedded SQLite log. Values are bytes; encoding and decoding are the caller's job so
that a malformed record reaches the indexer (and its dead-letter path) intact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from connectors.health import Check

__all__ = ["Buffer", "Consumer", "InRecord", "OutRecord"]


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to publish. Records with the same key keep their order."""

    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InRecord:
    """A record as consumed, with its position in the log."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, str]


class Consumer(Protocol):
    """One member of a consumer group on one topic."""

    def poll(self, max_records: int, timeout: float) -> list[InRecord]:
        """Up to ``max_records`` records after the group's position; [] after ``timeout``."""
        ...

    def commit(self) -> None:
        """Mark every record returned by ``poll`` so far as done for the group.

        Raises :class:`newsflow.errors.CommitLost` when the group rebalanced meanwhile:
        the uncommitted records will be delivered again; polling rejoins the group.
        """
        ...

    def lag(self) -> dict[int, int]:
        """Records not yet committed by the group, per partition this member serves."""
        ...

    def waiting(self) -> int:
        """Records not yet committed by the group over every partition of the topic,
        those other members serve (or a crashed one still holds) included."""
        ...

    def close(self) -> None:
        """Leave the group. Uncommitted records are delivered again to the next member."""
        ...


class Buffer(Protocol):
    """Publishes to and consumes from topics."""

    def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the topics if they do not exist (idempotent)."""
        ...

    def publish(self, topic: str, records: Sequence[OutRecord]) -> None:
        """Append ``records``; returns once every one is durably acknowledged.

        Raises :class:`newsflow.errors.PublishError` when any record was not.
        """
        ...

    def consumer(self, topic: str, group: str) -> Consumer:
        """Join ``group`` on ``topic``; a new group starts at the earliest record."""
        ...

    def check(self, topics: Sequence[str], group: str, *, timeout: float = 10.0) -> list[Check]:
        """This buffer's own health, read-only (``newsflow doctor`` lists it).

        Reachability, each of ``topics`` and the lag of ``group`` on ``topics[0]``, read
        from its committed offsets without joining it (which would make a running member
        rebalance). Never raises for what it finds; ``timeout`` bounds each request.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
