"""The store interface: deduplicated article documents, their history, feed state, search.

Two implementations share this contract (and one contract test suite): Elasticsearch and
the embedded SQLite FTS5 store. Rules every implementation keeps:

- an article's id is its ``doc_id``; a revision replaces the stored one only when its
  ``revision`` is higher, whatever order revisions arrive in;
- a revision already stored (same or higher revision present) counts as a duplicate;
- every revision written is also kept in the history.

Callers ask for the role they use: :class:`ArticleWriter` (the indexer),
:class:`SeenLookup` (the poller), :class:`FeedStateStore` (the poller's feed state),
:class:`ArticleSearch` (search), :class:`FeedStatsReader` (feed health),
:class:`RevisitStore` (pages the poller fetches again: failed ones and ones to re-check),
:class:`StoryIndex` (the indexer's near-duplicate candidates, see ``newsflow.stories``);
:class:`Store` is all of them, as :func:`connectors.open_store` returns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from connectors.health import Check
from schemas import Article, FeedEntry, FeedState

__all__ = [
    "ArticleSearch",
    "ArticleWriter",
    "FeedHealthSource",
    "FeedStateStore",
    "FeedStats",
    "FeedStatsReader",
    "IndexOutcome",
    "Revisit",
    "RevisitCounts",
    "RevisitKind",
    "RevisitStore",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
    "SearchSort",
    "SeenDoc",
    "SeenLookup",
    "Store",
    "StoryIndex",
    "StoryMember",
    "StoryMerge",
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


SearchSort = Literal["relevance", "date"]
"""``relevance``: best match first; ``date``: newest ``published_at`` first (undated last)."""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A full-text query with optional filters.

    Every word of ``text`` must match (in title, summary, text or authors) and every
    ``"quoted phrase"`` must match as a phrase. Filters are exact values: ``source`` (site
    name), ``domain``, ``feed`` (a feed's URL or name), ``tag``, ``author``, ``language``;
    ``since`` / ``until`` bound ``published_at`` (inclusive / exclusive). With
    ``collapse`` (the default) near-duplicates count once: a story's best-matching
    article stands for it, with the number of its matching copies.
    """

    text: str
    source: str | None = None
    since: datetime | None = None
    language: str | None = None
    limit: int = 10
    until: datetime | None = None
    domain: str | None = None
    feed: str | None = None
    tag: str | None = None
    author: str | None = None
    sort: SearchSort = "relevance"
    offset: int = 0
    """Hits (stories when collapsed) to skip: paging."""
    collapse: bool = True


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
    story_id: str | None = None
    copies: int = 0
    """Other matching articles of the same story, folded into this hit (collapsed only)."""
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    """Matching stories when the query collapses, else matching articles."""
    hits: list[SearchHit]
    articles: int | None = None
    """Matching articles, copies included (None where not counted)."""


@dataclass(frozen=True, slots=True)
class StoryMember:
    """A stored article as story assignment sees it (``newsflow.stories``)."""

    doc_id: str
    story_id: str
    story_started_at: datetime
    fingerprint: str | None
    keys: tuple[str, ...]
    """Its identity keys (``newsflow.stories.identity_keys``)."""
    near_duplicate_of: str | None = None
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class StoryMerge:
    """Every article of story ``old`` moves to story ``new`` (which started at ``started_at``)."""

    old: str
    new: str
    started_at: datetime


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


RevisitKind = Literal["retry", "recheck"]
"""``retry``: a page that failed for a reason that may pass; ``recheck``: a page already
stored, fetched again on a schedule for corrections its feed does not announce."""


@dataclass(frozen=True, slots=True)
class Revisit:
    """One page a feed's poll fetches again outside its feed's news.

    Keyed by ``(feed_url, kind, key)``; ``key`` is the id of the entry's link
    (:func:`newsflow.collect.entry_key`).
    """

    feed_url: str
    kind: RevisitKind
    key: str
    entry: FeedEntry
    """The feed entry as first planned: enough to plan it again."""
    attempts: int
    """Failed attempts (retry) or checks done (recheck)."""
    first_at: datetime
    """First failure (retry) or first seen (recheck)."""
    next_at: datetime
    """When it is due."""
    last_error_class: str | None = None
    last_error_message: str | None = None
    given_up: bool = False
    """A retry past the give-up horizon: kept and counted, never due again."""
    etag: str | None = None
    """A recheck's validators for the conditional GET."""
    last_modified: str | None = None

    def as_document(self) -> dict[str, Any]:
        """JSON-ready fields (datetimes as ISO 8601 strings), as both stores keep them."""
        return {
            "feed_url": self.feed_url,
            "kind": self.kind,
            "key": self.key,
            "entry": self.entry.model_dump(mode="json"),
            "attempts": self.attempts,
            "first_at": self.first_at.isoformat(),
            "next_at": self.next_at.isoformat(),
            "last_error_class": self.last_error_class,
            "last_error_message": self.last_error_message,
            "given_up": self.given_up,
            "etag": self.etag,
            "last_modified": self.last_modified,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Revisit:
        """The inverse of :meth:`as_document`."""
        return cls(
            feed_url=doc["feed_url"],
            kind=doc["kind"],
            key=doc["key"],
            entry=FeedEntry.model_validate(doc["entry"]),
            attempts=int(doc["attempts"]),
            first_at=datetime.fromisoformat(doc["first_at"]),
            next_at=datetime.fromisoformat(doc["next_at"]),
            last_error_class=doc.get("last_error_class"),
            last_error_message=doc.get("last_error_message"),
            given_up=bool(doc.get("given_up")),
            etag=doc.get("etag"),
            last_modified=doc.get("last_modified"),
        )


@dataclass(frozen=True, slots=True)
class RevisitCounts:
    """What one feed has waiting to be fetched again."""

    retries: int = 0
    """Retries still pending (not given up)."""
    given_up: int = 0
    rechecks: int = 0


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


class RevisitStore(Protocol):
    """Pages to fetch again, per feed: the retry set and the recheck schedule."""

    def due_revisits(
        self, feed_url: str, kind: RevisitKind, now: datetime, limit: int
    ) -> list[Revisit]:
        """At most ``limit`` of the feed's revisits due at ``now``, soonest first.

        Given-up retries are never due.
        """
        ...

    def revisits(self, feed_url: str, kind: RevisitKind, keys: Sequence[str]) -> dict[str, Revisit]:
        """The stored revisits of these keys (due or not, given up or not), by key."""
        ...

    def put_revisits(self, revisits: Sequence[Revisit]) -> None:
        """Insert or replace these revisits."""
        ...

    def drop_revisits(self, feed_url: str, kind: RevisitKind, keys: Sequence[str]) -> None:
        """Forget these revisits (unknown keys are ignored)."""
        ...

    def revisit_counts(self, feed_urls: Sequence[str]) -> dict[str, RevisitCounts]:
        """What each feed has waiting: one entry per requested URL, zeros if none."""
        ...


class StoryIndex(Protocol):
    """What story assignment needs: candidates by key, and merging stories."""

    def story_candidates(
        self, key_lists: Sequence[Sequence[str]], limit: int
    ) -> list[list[StoryMember]]:
        """For each list of keys, the stored articles having any of them (one request).

        At most ``limit`` per list: articles sharing an identity key (``u:...``) first,
        then those sharing most keys. Every write so far is visible to it.
        """
        ...

    def merge_stories(self, merges: Sequence[StoryMerge]) -> None:
        """Move the stored articles of each ``old`` story to its ``new`` one.

        The old story's founder records ``near_duplicate_of = new`` (it no longer defines
        a story); revisions and history are unchanged.
        """
        ...


class FeedHealthSource(FeedStateStore, FeedStatsReader, RevisitStore, Protocol):
    """What feed health joins: the feeds' state, their articles' and revisits' counts."""


class Store(
    ArticleWriter,
    SeenLookup,
    FeedStateStore,
    ArticleSearch,
    FeedStatsReader,
    RevisitStore,
    StoryIndex,
    Protocol,
):
    """Every role, as :func:`connectors.open_store` returns it; plus health and closing."""

    def check(self, *, timeout: float = 10.0) -> list[Check]:
        """This store's own health, read-only (``newsflow doctor`` lists it).

        Never raises for what it finds; ``timeout`` bounds each request (seconds).
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
