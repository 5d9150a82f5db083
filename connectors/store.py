"""The store interface: deduplicated article documents, their history, feed state, search.

Two implementations share this contract (and one contract test suite): Elasticsearch and
the embedded SQLite FTS5 store. Rules every implementation keeps:

- an article's id is its ``doc_id``; a revision replaces the stored one only when its
  ``revision`` is higher, whatever order revisions arrive in;
- a revision already stored (same or higher revision present) counts as a duplicate;
- every revision written is also kept in the history.

Callers ask for the role they use: :class:`ArticleWriter` (the indexer),
:class:`SeenLookup` (the poller), :class:`FeedStateStore` (the poller's feed state),
:class:`ArticleSearch` (search), :class:`FeedStatsReader` (feed health); :class:`Store`
is all of them, as :func:`connectors.open_store` returns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from connectors.health import Check
from schemas import Article, FeedState

__all__ = [
    "ArticleSearch",
    "ArticleWriter",
    "FeedHealthSource",
    "FeedStateStore",
    "FeedStats",
    "FeedStatsReader",
    "IndexOutcome",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
    "SeenDoc",
    "SeenLookup",
    "Store",
]


@dataclass(frozen=True, slots=True)
class SeenDoc:
    """What the store knows of an indexed article, for skip-work-already-done checks."""

    doc_id: str
    revision: int
    content_hash: str
    updated_at: datetime | None
    published_at: datetime | None


@dataclass(slots=True)
class IndexOutcome:
    """Result of one ``index_batch``: positions refer to the input sequence."""

    indexed: int = 0
    duplicates: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    """Input position -> reason, for documents the store refused for good."""
    retry: list[int] = field(default_factory=list)
    """Input positions that failed transiently (e.g. 429) and must be sent again."""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A full-text query with optional filters."""

    text: str
    source: str | None = None
    since: datetime | None = None
    language: str | None = None
    limit: int = 10


@dataclass(frozen=True, slots=True)
class SearchHit:
    doc_id: str
    score: float
    title: str
    url: str
    source: str | None
    published_at: datetime | None
    snippet: str
    """Fragment of the text with matches wrapped in ``[[`` and ``]]``."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    hits: list[SearchHit]


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Counts over the stored articles (current revisions) of one feed."""

    articles: int = 0
    recent: int = 0
    """Articles fetched (first seen or revised) at or after ``since``."""
    missing_published_at: int = 0
    missing_authors: int = 0
    missing_text: int = 0
    """Articles whose text is empty once whitespace is normalised away."""


class ArticleWriter(Protocol):
    """What the indexer needs: set up, write revisions, make them visible."""

    def ensure(self) -> None:
        """Create indices / tables, templates and aliases if missing (idempotent)."""
        ...

    def index_batch(self, articles: Sequence[Article]) -> IndexOutcome:
        """Write revisions; transient failures raise, permanent ones are ``rejected``."""
        ...

    def refresh(self) -> None:
        """Make every write so far visible to search (a no-op where writes are)."""
        ...


class SeenLookup(Protocol):
    """What the poller needs to skip work already done."""

    def lookup(self, ids: Sequence[str]) -> dict[str, SeenDoc]:
        """One request: the stored article for each id, matched on ``doc_id`` or an alias."""
        ...


class FeedStateStore(Protocol):
    """Per-feed state: conditional-GET validators, health, backoff."""

    def feed_states(self, feed_urls: Sequence[str]) -> dict[str, FeedState]:
        """Stored state of each known feed, by configured URL."""
        ...

    def put_feed_states(self, states: Sequence[FeedState]) -> None:
        """Replace the stored state of these feeds."""
        ...

    def all_feed_states(self) -> list[FeedState]:
        """Every stored feed state."""
        ...


class ArticleSearch(Protocol):
    """What ``newsflow search`` and the demo read."""

    def get(self, doc_id: str) -> Article | None:
        """The current revision of one article."""
        ...

    def history(self, doc_id: str) -> list[Article]:
        """Every revision of one article, oldest first."""
        ...

    def count(self) -> int:
        """Articles in the store (one per ``doc_id``)."""
        ...

    def search(self, query: SearchQuery) -> SearchResult:
        """Ranked full-text search over title and text."""
        ...


class FeedStatsReader(Protocol):
    """Article counts per feed, for feed health."""

    def feed_stats(self, feed_urls: Sequence[str], since: datetime) -> dict[str, FeedStats]:
        """Article counts per ``feed_url``: one entry per requested URL, zeros if none."""
        ...


class FeedHealthSource(FeedStateStore, FeedStatsReader, Protocol):
    """What feed health joins: the feeds' state and their articles' counts."""


class Store(ArticleWriter, SeenLookup, FeedStateStore, ArticleSearch, FeedStatsReader, Protocol):
    """Every role, as :func:`connectors.open_store` returns it; plus health and closing."""

    def check(self, *, timeout: float = 10.0) -> list[Check]:
        """This store's own health, read-only (``newsflow doctor`` lists it).

        Never raises for what it finds; ``timeout`` bounds each request (seconds).
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
