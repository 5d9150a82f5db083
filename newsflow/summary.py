"""Run counters: what a polling or indexing run did, as one key=value line or a table."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, fields

__all__ = ["IndexSummary", "PollSummary"]


def _line(values: dict[str, object]) -> str:
    return " ".join(f"{key}={value}" for key, value in values.items())


@dataclass
class PollSummary:
    """Counts of one ``poll_feeds`` run (merged from per-feed counts)."""

    feeds_polled: int = 0
    feeds_not_due: int = 0
    not_modified: int = 0
    failed: int = 0
    entries_seen: int = 0
    new: int = 0
    fetched: int = 0
    extracted: int = 0
    published: int = 0
    duplicates: int = 0
    retried: int = 0
    """Pages of the retry set fetched again."""
    recovered: int = 0
    """Pages of the retry set that made it this time (published or duplicate)."""
    given_up: int = 0
    """Pages that passed the give-up horizon in this run."""
    rechecked: int = 0
    """Stored articles fetched again on the recheck schedule."""
    recheck_changed: int = 0
    """Rechecks that found changed content (a new revision published)."""
    parsed_with_errors: int = 0
    """Feeds polled whose last parsed body was malformed but usable (bozo)."""
    skipped: Counter[str] = field(default_factory=Counter)
    quality: Counter[str] = field(default_factory=Counter)
    """Extraction quality flags of the pages extracted or skipped (newsflow.quality):
    ``pages``, ``no_date``, ``no_author``, ``short_text``, ``teaser``, ``paywall``,
    ``timeout``, ``feed_text``."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def merge(self, other: PollSummary) -> None:
        """Add ``other``'s counts to these (thread-safe)."""
        with self._lock:
            for f in fields(self):
                if f.name == "_lock":
                    continue
                if f.name == "skipped":
                    self.skipped.update(other.skipped)
                elif f.name == "quality":
                    self.quality.update(other.quality)
                else:
                    setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, object]:
        values: dict[str, object] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("_lock", "skipped", "quality")
        }
        values["skipped"] = sum(self.skipped.values())
        for reason, count in sorted(self.skipped.items()):
            values[f"skipped.{reason}"] = count
        for flag, count in sorted(self.quality.items()):
            values[f"quality.{flag}"] = count
        return values

    def line(self) -> str:
        """One ``key=value`` line, e.g. for logs."""
        return _line(self.as_dict())


@dataclass
class IndexSummary:
    """Counts of one indexer run."""

    consumed: int = 0
    indexed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def line(self) -> str:
        """One ``key=value`` line, e.g. for logs."""
        return _line(self.as_dict())
