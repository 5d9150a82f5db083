"""The embedded store: articles, their history, feed state and full-text search in SQLite.

Used when ``NEWSFLOW_ELASTICSEARCH_URL`` is unset; keeps the Elasticsearch store's rules:

- newest revision wins whatever the arrival order: a revision replaces the stored one only
  when it is higher, an equal or lower one counts as a duplicate (Elasticsearch's external
  versioning answers those with 409);
- every revision is kept in ``history``, keyed ``(doc_id, revision)``;
- a document Elasticsearch would refuse for good is ``rejected``, not raised: a keyword
  value longer than 32766 bytes of UTF-8 (Lucene's "immense term"), a revision beyond a
  signed 64-bit version, or an article too large for one bulk request
  (``NEWSFLOW_ELASTICSEARCH_BULK_MAX_BYTES``). Nothing is throttled, so ``retry`` stays
  empty.

Search is FTS5 with BM25 over title (weight 3), summary (2), text and authors (1), the
boosts of the Elasticsearch ``multi_match``; like it, every word of a query must match
(in any of those columns) and ranking sorts the best matches first. Near-duplicates are
collapsed as Elasticsearch's field collapsing on ``story_id`` does: per story the best
match, with the number of the story's matching articles. Words are split and lower-cased by the
``unicode61`` tokenizer without accent folding, close to Elasticsearch's standard analyzer.
User text never reaches FTS5's query syntax: every word, and every ``"quoted phrase"``,
becomes a quoted FTS5 phrase. FTS5's BM25 scores a document as a whole (column weights
multiply term frequencies), where Elasticsearch's ``best_fields`` takes the best field, so
scores and close rankings differ between the two.

Layout (created by :meth:`SqliteStore.ensure`): ``articles`` (the current revision; title,
summary and text as columns, the other fields as JSON), ``articles_fts`` (external-content
FTS5 index on it, kept in step by triggers), ``aliases(alias_id, doc_id)``,
``history(doc_id, revision, doc)``, ``feeds(feed_url, state)``, ``revisits(feed_url,
kind, key, ...)`` (the retry set and the recheck schedule) and ``story_keys(key,
article)`` (the near-duplicate candidate keys of each current article, by ``articles.id``;
``newsflow.stories``). Datetimes are stored as ISO
8601 in UTC, ``published_at`` and a revisit's ``next_at`` also as epoch seconds for range
filters.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors import _sqlite
from connectors.health import Check
from connectors.store import (
    FeedStats,
    IndexOutcome,
    Revisit,
    RevisitCounts,
    RevisitKind,
    SearchHit,
    SearchQuery,
    SearchResult,
    SeenDoc,
    StoryMember,
    StoryMerge,
)
from newsflow.identity import content_hash
from newsflow.settings import ElasticsearchSettings
from newsflow.stories import identity_keys, in_own_story, story_keys
from schemas import Article, FeedState

__all__ = ["MAX_TERM_BYTES", "SqliteStore", "fts_query"]

logger = logging.getLogger(__name__)

MAX_TERM_BYTES = 32766
"""Longest keyword value Elasticsearch (Lucene) indexes, in bytes of UTF-8."""

DEFAULT_BULK_MAX_BYTES: int = ElasticsearchSettings.model_fields["bulk_max_bytes"].default
_WHAT = "embedded store"
_TABLES = {"articles", "articles_fts", "aliases", "history", "feeds", "revisits"}
_NOT_SET_UP = "run the indexer, or call ensure()"
_MAX_VERSION = 2**63 - 1
_KEYWORD_FIELDS = (
    "doc_id", "url", "source_url", "alias_ids", "authors", "language", "source", "domain",
    "feed_url", "feed_name", "tags", "content_hash",
)  # fmt: skip
"""Fields the Elasticsearch mapping indexes as keywords (title.keyword has ignore_above)."""
_COLUMNS_OUTSIDE_JSON = {"title", "summary", "text"}
_WEIGHTS = "3.0, 2.0, 1.0, 1.0"  # title, summary, text, authors
_SNIPPET_TOKENS = 32  # about the 180 characters of the Elasticsearch highlight
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|([^\s"]+)')

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL UNIQUE,
    revision INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    url TEXT NOT NULL,
    source TEXT,
    language TEXT,
    published_at TEXT,
    published_ts REAL,
    updated_at TEXT,
    title TEXT NOT NULL,
    summary TEXT,
    text TEXT NOT NULL,
    authors TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_source ON articles (source);
CREATE INDEX IF NOT EXISTS articles_language ON articles (language);
CREATE INDEX IF NOT EXISTS articles_published ON articles (published_ts);
CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5 (
    title, summary, text, authors,
    content = 'articles', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0'
);
CREATE TRIGGER IF NOT EXISTS articles_fts_insert AFTER INSERT ON articles BEGIN
    INSERT INTO articles_fts (rowid, title, summary, text, authors)
    VALUES (new.id, new.title, new.summary, new.text, new.authors);
END;
CREATE TRIGGER IF NOT EXISTS articles_fts_delete AFTER DELETE ON articles BEGIN
    INSERT INTO articles_fts (articles_fts, rowid, title, summary, text, authors)
    VALUES ('delete', old.id, old.title, old.summary, old.text, old.authors);
END;
CREATE TRIGGER IF NOT EXISTS articles_fts_update AFTER UPDATE ON articles BEGIN
    INSERT INTO articles_fts (articles_fts, rowid, title, summary, text, authors)
    VALUES ('delete', old.id, old.title, old.summary, old.text, old.authors);
    INSERT INTO articles_fts (rowid, title, summary, text, authors)
    VALUES (new.id, new.title, new.summary, new.text, new.authors);
END;
CREATE TABLE IF NOT EXISTS aliases (
    alias_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (alias_id, doc_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aliases_doc ON aliases (doc_id);
CREATE TABLE IF NOT EXISTS history (
    doc_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (doc_id, revision)
);
CREATE TABLE IF NOT EXISTS feeds (
    feed_url TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revisits (
    feed_url TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    next_ts REAL NOT NULL,
    given_up INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (feed_url, kind, key)
);
CREATE INDEX IF NOT EXISTS revisits_due ON revisits (feed_url, kind, given_up, next_ts);
CREATE TABLE IF NOT EXISTS story_keys (
    key TEXT NOT NULL,
    article INTEGER NOT NULL,
    PRIMARY KEY (key, article)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS story_keys_article ON story_keys (article);
CREATE INDEX IF NOT EXISTS articles_story ON articles (json_extract(doc, '$.story_id'));
"""

_SEARCH_FILTERS = """
    articles_fts MATCH :query
    AND (:source IS NULL OR a.source = :source)
    AND (:language IS NULL OR a.language = :language)
    AND (:since IS NULL OR a.published_ts >= :since)
    AND (:until IS NULL OR a.published_ts < :until)
    AND (:domain IS NULL OR json_extract(a.doc, '$.domain') = :domain)
    AND (:feed IS NULL OR json_extract(a.doc, '$.feed_url') = :feed
         OR json_extract(a.doc, '$.feed_name') = :feed)
    AND (:tag IS NULL OR EXISTS (SELECT 1 FROM json_each(a.doc, '$.tags') WHERE value = :tag))
    AND (:author IS NULL
         OR EXISTS (SELECT 1 FROM json_each(a.doc, '$.authors') WHERE value = :author))
"""
_MATCHED = f"""
WITH matched AS (
    SELECT a.id, a.doc_id, bm25(articles_fts, {_WEIGHTS}) AS bm25_score, a.published_ts,
           coalesce(json_extract(a.doc, '$.story_id'), a.doc_id) AS story
    FROM articles_fts JOIN articles AS a ON a.id = articles_fts.rowid
    WHERE {_SEARCH_FILTERS}
)"""  # noqa: S608 (constant fragments only; values are bound parameters)
_ORDER = {
    "relevance": "bm25_score, doc_id",
    "date": "published_ts IS NULL, published_ts DESC, bm25_score, doc_id",
}
# Per story the best match stands for it (pos = 1); members counts the story's matches.
_PAGE_SQL = {
    (sort, collapse): f"""{_MATCHED}, ranked AS (
    SELECT *, row_number() OVER (PARTITION BY story ORDER BY bm25_score, doc_id) AS pos,
           count(*) OVER (PARTITION BY story) AS members
    FROM matched
)
SELECT id, bm25_score, members FROM ranked {"WHERE pos = 1" if collapse else ""}
ORDER BY {order} LIMIT :limit OFFSET :offset
"""  # noqa: S608 (constant fragments only)
    for sort, order in _ORDER.items()
    for collapse in (True, False)
}
_COUNT_SQL = f"{_MATCHED} SELECT count(*), count(DISTINCT story) FROM matched"  # noqa: S608
_HITS_SQL = f"""
SELECT a.id, a.doc_id, a.title, a.url, a.source, a.published_at, a.summary,
       json_extract(a.doc, '$.story_id'), json_extract(a.doc, '$.domain'),
       snippet(articles_fts, 2, '[[', ']]', '…', {_SNIPPET_TOKENS})
FROM articles_fts JOIN articles AS a ON a.id = articles_fts.rowid
WHERE articles_fts MATCH :query AND a.id IN (SELECT value FROM json_each(:ids))
"""  # noqa: S608 (constant fragments only)
_CANDIDATES_SQL = """
SELECT a.doc_id, a.doc, max(k.key LIKE 'u:%') AS by_identity, count(*) AS n
FROM story_keys AS k JOIN articles AS a ON a.id = k.article
WHERE k.key IN (SELECT value FROM json_each(:keys))
GROUP BY a.id ORDER BY by_identity DESC, n DESC, a.doc_id LIMIT :limit
"""
# Feed URL and fetch time live in the JSON document; a full scan is fine at embedded sizes.
_FEED_STATS_SQL = """
SELECT json_extract(doc, '$.feed_url') AS feed, count(*),
       sum(julianday(json_extract(doc, '$.fetched_at')) >= julianday(:since)),
       sum(published_at IS NULL), sum(authors = ''), sum(content_hash = :empty_text)
FROM articles
WHERE json_extract(doc, '$.feed_url') IN (SELECT value FROM json_each(:feeds))
GROUP BY feed
"""
_EMPTY_TEXT_HASH = content_hash("")  # what an article without text is hashed to


def fts_query(text: str) -> str:
    """A safe FTS5 query for free text: quoted words and phrases, all required (AND).

    ``"double-quoted"`` parts stay phrases; every other run of non-blank characters is a
    phrase of its own, so operators (AND, OR, NOT, NEAR), prefixes (``*``), column
    filters and brackets are plain text. An unbalanced quote is ignored. Returns ``""``
    when nothing searchable is left (no letter or digit).
    """
    phrases: list[str] = []
    # NUL would end the query string inside SQLite's C code ("unterminated string").
    for match in _PHRASE_OR_WORD.finditer(text.replace("\x00", " ")):
        part = match.group(1) if match.group(1) is not None else match.group(2)
        if any(character.isalnum() for character in part):
            phrases.append('"' + part.replace('"', '""') + '"')
    return " AND ".join(dict.fromkeys(phrases))


def _utc(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _member(doc_id: str, doc: str) -> StoryMember:
    fields: dict[str, Any] = json.loads(doc)
    started = fields.get("story_started_at") or fields.get("published_at") or fields["fetched_at"]
    return StoryMember(
        doc_id=doc_id,
        story_id=fields.get("story_id") or doc_id,
        story_started_at=datetime.fromisoformat(started),
        fingerprint=fields.get("fingerprint"),
        keys=tuple(
            identity_keys(doc_id, fields.get("alias_ids", []), fields.get("syndicated_from"))
        ),
        near_duplicate_of=fields.get("near_duplicate_of"),
        similarity=fields.get("story_similarity"),
    )


def _refusal(article: Article, bulk_max_bytes: int) -> str | None:
    """Why Elasticsearch would refuse ``article`` for good, or None."""
    size = 2 * len(article.model_dump_json().encode("utf-8"))
    if size > bulk_max_bytes:
        return (
            f"request_too_large: the article's two copies are {size} bytes, "
            f"NEWSFLOW_ELASTICSEARCH_BULK_MAX_BYTES is {bulk_max_bytes}"
        )
    if article.revision > _MAX_VERSION:
        return (
            "illegal_argument_exception: version "
            f"{article.revision} is out of range for external versioning"
        )
    for name in _KEYWORD_FIELDS:
        value = getattr(article, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and len(item.encode("utf-8")) > MAX_TERM_BYTES:
                return (
                    "illegal_argument_exception: Document contains at least one immense "
                    f'term in field="{name}" (whose UTF8 encoding is longer than the max '
                    f"length {MAX_TERM_BYTES})"
                )
    return None


class SqliteStore:
    """The :class:`~connectors.store.Store` in one SQLite file (see the module docs)."""

    def __init__(
        self, path: Path, *, lazy: bool = False, bulk_max_bytes: int = DEFAULT_BULK_MAX_BYTES
    ) -> None:
        """Open (creating if needed) the file at ``path``; ``lazy``: at its first use.

        ``bulk_max_bytes`` is the Elasticsearch store's request bound: an article whose
        two copies (current and history) exceed it is rejected, as there.
        """
        self._path = path
        self._bulk_max_bytes = bulk_max_bytes
        self._db = _sqlite.Database(path, _WHAT, lazy=lazy)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @contextmanager
    def _session(self, action: str, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, in a transaction, with errors translated."""
        with (
            self._db.lock,
            _sqlite.translated(_WHAT, self._path, action, setup_hint=_NOT_SET_UP),
            _sqlite.transaction(self._db.connection(), write=write) as db,
        ):
            yield db

    # -- set-up ----------------------------------------------------------------------

    def ensure(self) -> None:
        with self._session("set-up", write=True) as db:
            existed = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'articles'"
            ).fetchone()
            for statement in _sqlite.statements(_SCHEMA):
                db.execute(statement)
        if not existed:
            logger.info("created embedded store=%s", self._path)

    # -- articles --------------------------------------------------------------------

    def index_batch(self, articles: Sequence[Article]) -> IndexOutcome:
        outcome = IndexOutcome()
        if not articles:
            return outcome
        with self._session("bulk index", write=True) as db:
            for position, article in enumerate(articles):
                reason = _refusal(article, self._bulk_max_bytes)
                if reason is not None:
                    outcome.rejected[position] = reason
                    continue
                if self._write_article(db, article):
                    outcome.indexed += 1
                else:
                    outcome.duplicates += 1
        return outcome

    @staticmethod
    def _write_article(db: sqlite3.Connection, article: Article) -> bool:
        """Store one revision; False when the same or a newer one is already current."""
        db.execute(
            "INSERT OR IGNORE INTO history (doc_id, revision, doc) VALUES (?, ?, ?)",
            (article.doc_id, article.revision, article.model_dump_json()),
        )
        stored = db.execute(
            "SELECT revision FROM articles WHERE doc_id = ?", (article.doc_id,)
        ).fetchone()
        if stored is not None and int(stored[0]) >= article.revision:
            return False
        # Every current article is in a story (its own, until assignment says otherwise).
        rest = in_own_story(article).model_dump(mode="json", exclude=_COLUMNS_OUTSIDE_JSON)
        values = {
            "doc_id": article.doc_id,
            "revision": article.revision,
            "content_hash": article.content_hash,
            "url": article.url,
            "source": article.source,
            "language": article.language,
            "published_at": _utc(article.published_at),
            "published_ts": article.published_at.timestamp() if article.published_at else None,
            "updated_at": _utc(article.updated_at),
            "title": article.title,
            "summary": article.summary,
            "text": article.text,
            "authors": "\n".join(article.authors),
            "doc": json.dumps(rest, ensure_ascii=False),
        }
        if stored is None:
            db.execute(
                "INSERT INTO articles (doc_id, revision, content_hash, url, source, language, "
                "published_at, published_ts, updated_at, title, summary, text, authors, doc) "
                "VALUES (:doc_id, :revision, :content_hash, :url, :source, :language, "
                ":published_at, :published_ts, :updated_at, :title, :summary, :text, "
                ":authors, :doc)",
                values,
            )
        else:
            db.execute(
                "UPDATE articles SET revision = :revision, content_hash = :content_hash, "
                "url = :url, source = :source, language = :language, "
                "published_at = :published_at, published_ts = :published_ts, "
                "updated_at = :updated_at, title = :title, summary = :summary, text = :text, "
                "authors = :authors, doc = :doc WHERE doc_id = :doc_id",
                values,
            )
            db.execute("DELETE FROM aliases WHERE doc_id = ?", (article.doc_id,))
        db.executemany(
            "INSERT OR IGNORE INTO aliases (alias_id, doc_id) VALUES (?, ?)",
            [(alias, article.doc_id) for alias in article.alias_ids],
        )
        (row_id,) = db.execute(
            "SELECT id FROM articles WHERE doc_id = ?", (article.doc_id,)
        ).fetchone()
        db.execute("DELETE FROM story_keys WHERE article = ?", (row_id,))
        db.executemany(
            "INSERT OR IGNORE INTO story_keys (key, article) VALUES (?, ?)",
            [(key, row_id) for key in story_keys(article)],
        )
        return True

    def lookup(self, ids: Sequence[str]) -> dict[str, SeenDoc]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self._session("lookup") as db:
            rows = db.execute(
                "WITH wanted(id) AS (SELECT value FROM json_each(:ids)) "
                "SELECT w.id, a.doc_id, a.revision, a.content_hash, a.updated_at, "
                "a.published_at FROM wanted AS w JOIN articles AS a ON a.doc_id = w.id "
                "UNION "
                "SELECT w.id, a.doc_id, a.revision, a.content_hash, a.updated_at, "
                "a.published_at FROM wanted AS w JOIN aliases AS x ON x.alias_id = w.id "
                "JOIN articles AS a ON a.doc_id = x.doc_id",
                {"ids": json.dumps(wanted)},
            ).fetchall()
        found: dict[str, SeenDoc] = {}
        for key, doc, revision, hash_, updated_at, published_at in rows:
            # An id that is one article's doc_id and another's alias: the doc_id wins.
            if key in found and found[key].doc_id == key:
                continue
            found[key] = SeenDoc(
                doc_id=doc,
                revision=int(revision),
                content_hash=hash_,
                updated_at=_time(updated_at),
                published_at=_time(published_at),
            )
        return found

    def get(self, doc_id: str) -> Article | None:
        with self._session("get") as db:
            row = db.execute(
                "SELECT doc, title, summary, text FROM articles WHERE doc_id = ?", (doc_id,)
            ).fetchone()
        if row is None:
            return None
        doc, title, summary, text = row
        fields: dict[str, Any] = json.loads(doc)
        fields.update(title=title, summary=summary, text=text)
        return Article.model_validate(fields)

    def history(self, doc_id: str) -> list[Article]:
        with self._session("history") as db:
            rows = db.execute(
                "SELECT doc FROM history WHERE doc_id = ? ORDER BY revision", (doc_id,)
            ).fetchall()
        return [Article.model_validate_json(doc) for (doc,) in rows]

    def count(self) -> int:
        with self._session("count") as db:
            return int(db.execute("SELECT count(*) FROM articles").fetchone()[0])

    def search(self, query: SearchQuery) -> SearchResult:
        match = fts_query(query.text)
        if not match:
            return SearchResult(total=0, hits=[], articles=0)  # nothing searchable
        parameters = {
            "query": match,
            "source": query.source,
            "language": query.language,
            "since": query.since.timestamp() if query.since else None,
            "until": query.until.timestamp() if query.until else None,
            "domain": query.domain,
            "feed": query.feed,
            "tag": query.tag,
            "author": query.author,
            "limit": max(0, query.limit),
            "offset": max(0, query.offset),
        }
        with self._session("search") as db:
            articles, stories = db.execute(_COUNT_SQL, parameters).fetchone()
            page = (
                db.execute(_PAGE_SQL[query.sort, query.collapse], parameters).fetchall()
                if query.limit > 0
                else []
            )
            # Snippets only for the page: snippet() over every match would cost a scan.
            details = {
                row[0]: row[1:]
                for row in db.execute(
                    _HITS_SQL, {"query": match, "ids": json.dumps([row[0] for row in page])}
                )
            }
        hits = []
        for row_id, bm25_score, members in page:
            doc, title, url, source, published_at, summary, story, domain, snippet = details[row_id]
            hits.append(
                SearchHit(
                    doc_id=doc,
                    score=-float(bm25_score),  # bm25() is lower-is-better
                    title=title,
                    url=url,
                    source=source,
                    published_at=_time(published_at),
                    # As the Elasticsearch store: the summary when the text has no match.
                    snippet=snippet if "[[" in (snippet or "") else (summary or ""),
                    story_id=story,
                    copies=int(members) - 1 if query.collapse else 0,
                    domain=domain,
                )
            )
        total = int(stories) if query.collapse else int(articles)
        return SearchResult(total=total, hits=hits, articles=int(articles))

    # -- stories ---------------------------------------------------------------------

    def story_candidates(
        self, key_lists: Sequence[Sequence[str]], limit: int
    ) -> list[list[StoryMember]]:
        found: list[list[StoryMember]] = []
        with self._session("story candidates") as db:
            for keys in key_lists:
                rows = db.execute(
                    _CANDIDATES_SQL, {"keys": json.dumps(list(keys)), "limit": limit}
                ).fetchall()
                found.append([_member(doc_id, doc) for doc_id, doc, _, _ in rows])
        return found

    def merge_stories(self, merges: Sequence[StoryMerge]) -> None:
        if not merges:
            return
        with self._session("story merge", write=True) as db:
            for merge in merges:
                # The founder of the old story now copies the new one.
                db.execute(
                    "UPDATE articles SET doc = json_set(doc, '$.near_duplicate_of', :new) "
                    "WHERE doc_id = :old AND json_extract(doc, '$.story_id') = :old",
                    {"old": merge.old, "new": merge.new},
                )
                db.execute(
                    "UPDATE articles SET doc = json_set(doc, '$.story_id', :new, "
                    "'$.story_started_at', :started) "
                    "WHERE json_extract(doc, '$.story_id') = :old",
                    {"old": merge.old, "new": merge.new, "started": _utc(merge.started_at)},
                )

    # -- feed state ------------------------------------------------------------------

    def feed_states(self, feed_urls: Sequence[str]) -> dict[str, FeedState]:
        if not feed_urls:
            return {}
        with self._session("feed state read") as db:
            rows = dict(
                db.execute(
                    "SELECT feed_url, state FROM feeds "
                    "WHERE feed_url IN (SELECT value FROM json_each(?))",
                    (json.dumps(list(feed_urls)),),
                ).fetchall()
            )
        return {
            url: FeedState.model_validate_json(rows[url])
            for url in dict.fromkeys(feed_urls)
            if url in rows
        }

    def put_feed_states(self, states: Sequence[FeedState]) -> None:
        if not states:
            return
        with self._session("feed state write", write=True) as db:
            db.executemany(
                "INSERT OR REPLACE INTO feeds (feed_url, state) VALUES (?, ?)",
                [(state.feed_url, state.model_dump_json()) for state in states],
            )

    def all_feed_states(self) -> list[FeedState]:
        with self._session("feed state read") as db:
            rows = db.execute("SELECT state FROM feeds ORDER BY feed_url").fetchall()
        return [FeedState.model_validate_json(state) for (state,) in rows]

    def feed_stats(self, feed_urls: Sequence[str], since: datetime) -> dict[str, FeedStats]:
        wanted = list(dict.fromkeys(feed_urls))
        stats = {url: FeedStats() for url in wanted}
        if not wanted:
            return stats
        parameters = {
            "feeds": json.dumps(wanted),
            "since": since.astimezone(UTC).isoformat(),
            "empty_text": _EMPTY_TEXT_HASH,
        }
        with self._session("feed stats") as db:
            rows = db.execute(_FEED_STATS_SQL, parameters).fetchall()
        for feed, articles, recent, no_date, no_authors, no_text in rows:
            stats[str(feed)] = FeedStats(
                articles=int(articles),
                recent=int(recent or 0),
                missing_published_at=int(no_date or 0),
                missing_authors=int(no_authors or 0),
                missing_text=int(no_text or 0),
            )
        return stats

    # -- revisits -------------------------------------------------------------------

    def due_revisits(
        self, feed_url: str, kind: RevisitKind, now: datetime, limit: int
    ) -> list[Revisit]:
        if limit <= 0:
            return []
        with self._session("revisit read") as db:
            rows = db.execute(
                "SELECT doc FROM revisits WHERE feed_url = ? AND kind = ? AND given_up = 0 "
                "AND next_ts <= ? ORDER BY next_ts, key LIMIT ?",
                (feed_url, kind, now.timestamp(), limit),
            ).fetchall()
        return [Revisit.from_document(json.loads(doc)) for (doc,) in rows]

    def revisits(self, feed_url: str, kind: RevisitKind, keys: Sequence[str]) -> dict[str, Revisit]:
        if not keys:
            return {}
        with self._session("revisit read") as db:
            rows = db.execute(
                "SELECT doc FROM revisits WHERE feed_url = ? AND kind = ? "
                "AND key IN (SELECT value FROM json_each(?))",
                (feed_url, kind, json.dumps(list(keys))),
            ).fetchall()
        found = (Revisit.from_document(json.loads(doc)) for (doc,) in rows)
        return {revisit.key: revisit for revisit in found}

    def put_revisits(self, revisits: Sequence[Revisit]) -> None:
        if not revisits:
            return
        with self._session("revisit write", write=True) as db:
            db.executemany(
                "INSERT OR REPLACE INTO revisits (feed_url, kind, key, next_ts, given_up, doc) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.feed_url,
                        r.kind,
                        r.key,
                        r.next_at.timestamp(),
                        int(r.given_up),
                        json.dumps(r.as_document(), ensure_ascii=False),
                    )
                    for r in revisits
                ],
            )

    def drop_revisits(self, feed_url: str, kind: RevisitKind, keys: Sequence[str]) -> None:
        if not keys:
            return
        with self._session("revisit write", write=True) as db:
            db.execute(
                "DELETE FROM revisits WHERE feed_url = ? AND kind = ? "
                "AND key IN (SELECT value FROM json_each(?))",
                (feed_url, kind, json.dumps(list(keys))),
            )

    def revisit_counts(self, feed_urls: Sequence[str]) -> dict[str, RevisitCounts]:
        wanted = list(dict.fromkeys(feed_urls))
        counts = {url: RevisitCounts() for url in wanted}
        if not wanted:
            return counts
        with self._session("revisit read") as db:
            rows = db.execute(
                "SELECT feed_url, sum(kind = 'retry' AND given_up = 0), "
                "sum(kind = 'retry' AND given_up = 1), sum(kind = 'recheck') FROM revisits "
                "WHERE feed_url IN (SELECT value FROM json_each(?)) GROUP BY feed_url",
                (json.dumps(wanted),),
            ).fetchall()
        for feed, retries, given_up, rechecks in rows:
            counts[str(feed)] = RevisitCounts(
                retries=int(retries or 0), given_up=int(given_up or 0), rechecks=int(rechecks or 0)
            )
        return counts

    def refresh(self) -> None:
        """Nothing to do: a committed write is visible to every later read."""

    def check(self, *, timeout: float = 10.0) -> list[Check]:
        """The file, its tables and what they hold; read-only (``timeout`` is unused)."""

        def describe(db: sqlite3.Connection) -> str:
            articles = int(db.execute("SELECT count(*) FROM articles").fetchone()[0])
            feeds = int(db.execute("SELECT count(*) FROM feeds").fetchone()[0])
            return f"{articles} article(s), {feeds} feed state(s)"

        return [_sqlite.inspect_file(_WHAT, self._path, _TABLES, describe)]

    def close(self) -> None:
        self._db.close()
