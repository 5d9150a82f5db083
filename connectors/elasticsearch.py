"""The Elasticsearch store: deduplicated articles, their history and feed state.

Layout (all created by :meth:`ElasticsearchStore.ensure`, idempotently):

- an index template over ``<index>-*`` and ``<history_index>-*`` with the article mapping;
- ``<index>-000001`` behind the alias ``<index>``: an entity index, one document per
  article, never rolled over (external versions are compared within one concrete index
  only); :meth:`ElasticsearchStore.reindex` moves the alias to a new index instead;
- ``<history_index>-000001`` behind the alias ``<history_index>``: one document per
  revision, id ``<doc_id>:<revision>``;
- ``<feeds_index>``: one document per feed;
- ``<revisits_index>``: the pages polls fetch again (retries and rechecks), one document
  per feed, kind and entry.

Newest-revision-wins is Elasticsearch's external versioning with ``version=revision``:
an older or repeated revision gets a 409, which is counted as a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import elasticsearch
from elasticsearch import Elasticsearch, helpers

from connectors.health import SETUP_HINT, Check
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
from newsflow.errors import (
    BackendUnavailable,
    ConfigError,
    PermanentError,
    RequestRefused,
    TransientError,
)
from newsflow.identity import content_hash
from newsflow.settings import ElasticsearchSettings
from newsflow.stories import identity_keys, in_own_story, story_keys
from schemas import Article, FeedQuality, FeedState

__all__ = [
    "ARTICLE_MAPPING",
    "FEED_MAPPING",
    "REVISIT_MAPPING",
    "ElasticsearchStore",
    "Reindexed",
    "node_urls",
    "replication",
]

logger = logging.getLogger(__name__)

_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}
ARTICLE_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "schema_version": _KEYWORD,
        "doc_id": _KEYWORD,
        "revision": {"type": "long"},
        "url": _KEYWORD,
        "source_url": _KEYWORD,
        "alias_ids": _KEYWORD,
        "title": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
        "text": {"type": "text"},
        "summary": {"type": "text"},
        "authors": {"type": "keyword", "fields": {"text": {"type": "text"}}},
        "published_at": _DATE,
        "updated_at": _DATE,
        "fetched_at": _DATE,
        "language": _KEYWORD,
        "source": {"type": "keyword", "fields": {"text": {"type": "text"}}},
        "domain": _KEYWORD,
        "feed_url": _KEYWORD,
        "feed_name": _KEYWORD,
        "tags": _KEYWORD,
        "image_url": {"type": "keyword", "index": False, "doc_values": False},
        "content_hash": _KEYWORD,
        "text_source": _KEYWORD,
        "fingerprint": {"type": "keyword", "index": False, "doc_values": False},
        "syndicated_from": _KEYWORD,
        "story_id": _KEYWORD,
        "near_duplicate_of": _KEYWORD,
        "story_similarity": {"type": "float"},
        "story_started_at": _DATE,
        # Not an Article field: the near-duplicate candidate keys (newsflow.stories), on
        # current articles only.
        "story_keys": _KEYWORD,
    },
}
"""Mapping of article and history indices; the Kibana objects rely on these types."""

_QUALITY_COUNTS = list(FeedQuality.model_fields)
FEED_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "feed_url": _KEYWORD,
        "fetch_url": _KEYWORD,
        "name": _KEYWORD,
        "etag": {"type": "keyword", "index": False},
        "last_modified": {"type": "keyword", "index": False},
        "body_hash": {"type": "keyword", "index": False},
        "ttl_seconds": {"type": "float"},
        "last_attempt_at": _DATE,
        "last_success_at": _DATE,
        "next_poll_at": _DATE,
        "consecutive_failures": {"type": "integer"},
        "last_error_class": _KEYWORD,
        "last_error_message": {"type": "text", "fields": {"keyword": _KEYWORD}},
        "last_status": _KEYWORD,
        "bozo_message": {"type": "text"},
        "bozo": {"type": "boolean"},
        "entries_seen": {"type": "integer"},
        "quality": {"properties": {name: {"type": "integer"} for name in _QUALITY_COUNTS}},
        "quality_by_domain": {"type": "object", "enabled": False},
    },
}  # fmt: skip

REVISIT_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "feed_url": _KEYWORD,
        "kind": _KEYWORD,
        "key": _KEYWORD,
        "entry": {"type": "object", "enabled": False},
        "attempts": {"type": "integer"},
        "first_at": _DATE,
        "next_at": _DATE,
        "last_error_class": _KEYWORD,
        "last_error_message": {"type": "text"},
        "given_up": {"type": "boolean"},
        "etag": {"type": "keyword", "index": False},
        "last_modified": {"type": "keyword", "index": False},
    },
}  # fmt: skip
"""Mapping of the revisits index: the retry set and the recheck schedule."""

_SEEN_FIELDS = ["doc_id", "revision", "content_hash", "updated_at", "published_at", "alias_ids"]
_TRANSIENT_STATUSES = {429, 502, 503, 504}
_REFUSED_STATUSES = {400, 413}  # for what the request carries (not auth, not a missing index)
_EMPTY_TEXT_HASH = content_hash("")  # what an article without text is hashed to
_STATS_CHUNK = 1000  # feeds per aggregation request


@dataclass(frozen=True, slots=True)
class Reindexed:
    """What :meth:`ElasticsearchStore.reindex` did."""

    alias: str
    old: list[str]
    new: str
    copied: int
    caught_up: int
    """Documents copied again after the swap (written to the old index meanwhile)."""
    deleted_old: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "alias": self.alias,
            "old": ",".join(self.old),
            "new": self.new,
            "copied": self.copied,
            "caught_up": self.caught_up,
            "old_deleted": self.deleted_old,
        }


def _next_index(alias: str, existing: Sequence[str]) -> str:
    """``<alias>-NNNNNN``, numbered after the highest of ``existing``."""
    numbers = [
        int(name.rsplit("-", 1)[1])
        for name in existing
        if name.startswith(f"{alias}-") and name.rsplit("-", 1)[1].isdigit()
    ]
    return f"{alias}-{max(numbers, default=len(existing)) + 1:06d}"


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _history_id(article: Article) -> str:
    return f"{article.doc_id}:{article.revision}"


def _feed_key(feed_url: str) -> str:
    return hashlib.sha256(feed_url.encode("utf-8")).hexdigest()[:32]


def _revisit_key(feed_url: str, kind: str, key: str) -> str:
    return hashlib.sha256(f"{feed_url}\n{kind}\n{key}".encode()).hexdigest()[:32]


def _raise_for_bulk_errors(response: Any, what: str) -> None:
    """A bulk answer's item errors as newsflow's markers (429 and 5xx are transient)."""
    if not response["errors"]:
        return
    items = [next(iter(item.values())) for item in response["items"]]
    failed = [item for item in items if item.get("error") and int(item["status"]) != 404]
    if not failed:
        return  # deleting what is already gone is fine
    reasons = "; ".join(sorted({str(item["error"].get("reason")) for item in failed}))
    if any(int(item["status"]) in _TRANSIENT_STATUSES for item in failed):
        raise BackendUnavailable(f"{what}: {reasons}")
    raise PermanentError(f"{what}: {reasons}")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _article(source: dict[str, Any]) -> Article:
    """The article of a stored document (without the store's own fields)."""
    return Article.model_validate({k: v for k, v in source.items() if k != "story_keys"})


def _member(source: dict[str, Any]) -> StoryMember:
    started = source.get("story_started_at") or source.get("published_at") or source["fetched_at"]
    return StoryMember(
        doc_id=source["doc_id"],
        story_id=source.get("story_id") or source["doc_id"],
        story_started_at=datetime.fromisoformat(started),
        fingerprint=source.get("fingerprint"),
        keys=tuple(
            identity_keys(
                source["doc_id"], source.get("alias_ids", []), source.get("syndicated_from")
            )
        ),
        near_duplicate_of=source.get("near_duplicate_of"),
        similarity=source.get("story_similarity"),
    )


_MEMBER_FIELDS = [
    "doc_id", "alias_ids", "syndicated_from", "fingerprint", "story_id", "story_started_at",
    "near_duplicate_of", "story_similarity", "published_at", "fetched_at",
]  # fmt: skip
_SEARCH_FIELDS = ["title^3", "summary^2", "text", "authors.text"]
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|([^\s"]+)')


def _text_query(text: str) -> list[dict[str, Any]]:
    """Every word in some field (cross_fields, AND) and every quoted phrase as a phrase."""
    words: list[str] = []
    clauses: list[dict[str, Any]] = []
    for match in _PHRASE_OR_WORD.finditer(text):
        if match.group(1) is not None:
            if any(c.isalnum() for c in match.group(1)):
                clauses.append(
                    {
                        "multi_match": {
                            "query": match.group(1),
                            "type": "phrase",
                            "fields": _SEARCH_FIELDS,
                        }
                    }
                )
        elif any(c.isalnum() for c in match.group(2)):
            words.append(match.group(2))
    if words:
        clauses.insert(
            0,
            {
                "multi_match": {
                    "query": " ".join(words),
                    "type": "cross_fields",
                    "operator": "and",
                    "fields": _SEARCH_FIELDS,
                }
            },
        )
    return clauses


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn client exceptions into newsflow's transient/permanent markers."""
    try:
        yield
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
        raise BackendUnavailable(f"Elasticsearch unreachable during {action}: {exc}") from exc
    except elasticsearch.ApiError as exc:
        if exc.meta.status in _TRANSIENT_STATUSES or exc.meta.status >= 500:
            raise BackendUnavailable(f"Elasticsearch {action} failed: {exc}") from exc
        if exc.meta.status in _REFUSED_STATUSES:
            raise RequestRefused(f"Elasticsearch {action} refused: {exc}") from exc
        raise PermanentError(f"Elasticsearch {action} failed: {exc}") from exc


def node_urls(url: str) -> list[str]:
    """The node URLs of ``NEWSFLOW_ELASTICSEARCH_URL``: one URL or a comma-separated list."""
    return [part.strip() for part in url.split(",") if part.strip()]


def replication(settings: ElasticsearchSettings, data_nodes: int) -> tuple[int, int]:
    """Replicas and ``wait_for_active_shards`` of new indices on ``data_nodes`` nodes.

    Unset, an index gets one replica as soon as there is a second node to hold it, and a
    write waits for two active copies only when there are three or more: with two copies,
    requiring both would stall every write while either node is away.
    """
    replicas = settings.replicas if settings.replicas is not None else min(1, data_nodes - 1)
    active = settings.wait_for_active_shards or (2 if replicas >= 2 else 1)
    if active > replicas + 1:
        raise ConfigError(
            f"NEWSFLOW_ELASTICSEARCH_WAIT_FOR_ACTIVE_SHARDS {active} exceeds the "
            f"{replicas + 1} copies of a shard (NEWSFLOW_ELASTICSEARCH_REPLICAS {replicas})"
        )
    return max(0, replicas), active


def _client_for(settings: ElasticsearchSettings) -> Elasticsearch:
    """The client for these settings; a missing or malformed setting is a ConfigError."""
    if not settings.url:
        raise ConfigError("NEWSFLOW_ELASTICSEARCH_URL is not set")
    tls: dict[str, Any] = {"ca_certs": str(settings.ca_certs)} if settings.ca_certs else {}
    sniffing: dict[str, Any] = (
        {"sniff_on_start": True, "sniff_on_node_failure": True, "sniff_timeout": 5.0}
        if settings.sniff
        else {}
    )
    if settings.ssl_assert_fingerprint:
        # The certificate is pinned instead of verified against a CA.
        tls["ssl_assert_fingerprint"] = settings.ssl_assert_fingerprint.replace(":", "").lower()
    try:
        return Elasticsearch(
            node_urls(settings.url),
            basic_auth=(
                (settings.username, settings.password.get_secret_value())
                if settings.username and settings.password
                else None
            ),
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            verify_certs=settings.verify_certs,
            **tls,
            request_timeout=settings.request_timeout,
            # Retries live in the indexer (with backoff), not in the transport.
            max_retries=0,
            retry_on_timeout=False,
            **sniffing,
        )
    except (ValueError, TypeError) as exc:  # e.g. a URL without scheme, a bad CA file
        raise ConfigError(f"NEWSFLOW_ELASTICSEARCH_* settings rejected: {exc}") from exc


class ElasticsearchStore:
    """Store implementation on an Elasticsearch 8 cluster."""

    def __init__(
        self, settings: ElasticsearchSettings, client: Elasticsearch | None = None
    ) -> None:
        self._settings = settings
        self._alias = settings.index
        self._history = settings.history_index
        self._feeds = settings.feeds_index
        self._revisits = settings.revisits_index
        self._client = client or _client_for(settings)

    # -- set-up ----------------------------------------------------------------------

    def _index_settings(self) -> dict[str, Any]:
        s = self._settings
        nodes = 1
        if s.replicas is None:  # only then does the cluster's size matter
            with _translated("cluster health"):
                nodes = int(self._client.cluster.health()["number_of_data_nodes"])
        replicas, active = replication(s, nodes)
        return {
            "number_of_shards": s.shards,
            "number_of_replicas": replicas,
            "index.write.wait_for_active_shards": str(active),
        }

    def ensure(self) -> None:
        index_settings = self._index_settings()
        with _translated("set-up"):
            self._client.indices.put_index_template(
                name=f"{self._alias}-template",
                index_patterns=[f"{self._alias}-*", f"{self._history}-*"],
                template={"settings": index_settings, "mappings": ARTICLE_MAPPING},
                priority=100,
                meta={"managed_by": "newsflow"},
            )
            for alias in (self._alias, self._history):
                if not self._client.indices.exists_alias(name=alias):
                    self._create_index(f"{alias}-000001", {alias: {"is_write_index": True}})
                else:  # fields added since (schema minors, e.g. text_source): additive
                    self._client.indices.put_mapping(
                        index=alias, properties=ARTICLE_MAPPING["properties"]
                    )
            if not self._client.indices.exists(index=self._feeds):
                self._create_index(
                    self._feeds, None, settings=index_settings, mappings=FEED_MAPPING
                )
            else:
                # Fields added since the index was created (new fields only: additive).
                self._client.indices.put_mapping(
                    index=self._feeds, properties=FEED_MAPPING["properties"]
                )
            if not self._client.indices.exists(index=self._revisits):
                self._create_index(
                    self._revisits, None, settings=index_settings, mappings=REVISIT_MAPPING
                )

    def _create_index(
        self,
        name: str,
        aliases: dict[str, Any] | None,
        settings: dict[str, Any] | None = None,
        mappings: dict[str, Any] | None = None,
    ) -> None:
        try:
            self._client.indices.create(
                index=name, aliases=aliases, settings=settings, mappings=mappings
            )
            logger.info("created index=%s", name)
        except elasticsearch.BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise  # another process may have created it concurrently: that is fine

    # -- index lifecycle -------------------------------------------------------------

    def reindex(self, *, history: bool = False, delete_old: bool = False) -> Reindexed:
        """Move the articles (or with ``history`` the history) to a new concrete index.

        The new index gets the current mapping; every document is copied with its
        revision as external version (history entries with ``create``), the alias is
        swapped to it in one ``_aliases`` request, and the documents written to the old
        index during the copy are copied once more (older versions lose, with 409). The
        old index is kept, outside the alias, unless ``delete_old``.
        """
        alias = self._history if history else self._alias
        self.ensure()  # the template, and so the mapping, of this version
        with _translated("reindex"):
            old = sorted(self._client.indices.get_alias(name=alias))
            new = _next_index(alias, old)
            self._create_index(new, None, settings=self._index_settings(), mappings=ARTICLE_MAPPING)
            copied = self._copy(old, new, versioned=not history)
            actions: list[dict[str, Any]] = [
                {"remove": {"index": index, "alias": alias}} for index in old
            ]
            actions.append({"add": {"index": new, "alias": alias, "is_write_index": True}})
            self._client.indices.update_aliases(actions=actions)
            caught_up = self._copy(old, new, versioned=not history)
            if delete_old:
                self._client.indices.delete(index=old)
        logger.info("reindexed alias=%s old=%s new=%s copied=%d", alias, ",".join(old), new, copied)
        return Reindexed(alias, old, new, copied, caught_up, delete_old)

    def _copy(self, sources: Sequence[str], target: str, *, versioned: bool) -> int:
        """Copy every document of ``sources`` into ``target``; the number written."""

        def actions() -> Iterator[dict[str, Any]]:
            for hit in helpers.scan(self._client, index=list(sources)):
                action: dict[str, Any] = {
                    "_index": target,
                    "_id": hit["_id"],
                    "_source": hit["_source"],
                }
                if versioned:
                    action.update(version=int(hit["_source"]["revision"]), version_type="external")
                else:
                    action["_op_type"] = "create"
                yield action

        self._client.indices.refresh(index=list(sources))
        written = 0
        for ok, item in helpers.streaming_bulk(
            self._client,
            actions(),
            max_chunk_bytes=self._settings.bulk_max_bytes,
            raise_on_error=False,
            raise_on_exception=True,
        ):
            result = next(iter(item.values()))
            if ok:
                written += 1
            elif int(result.get("status", 0)) != 409:  # 409: the newer revision is there
                raise PermanentError(f"reindex into {target} failed: {result.get('error')}")
        self._client.indices.refresh(index=target)
        return written

    # -- articles --------------------------------------------------------------------

    def _articles(self, action: str, **request: Any) -> Any:
        """One search request on the articles alias, with errors translated."""
        with _translated(action):
            return self._client.search(index=self._alias, **request)

    def index_batch(self, articles: Sequence[Article]) -> IndexOutcome:
        """Write ``articles`` in bulk requests of at most ``bulk_max_bytes`` each.

        Each article is serialised once. One too large for a request on its own is
        rejected unsent; a request refused as a whole for good (413, or a 400 such as a
        version out of range) is split until the article(s) at fault are alone, and only
        those are rejected. A transient failure before anything was written raises; after
        a first request succeeded, the articles not yet written come back in ``retry``.
        """
        outcome = IndexOutcome()
        limit = self._settings.bulk_max_bytes
        chunks: list[list[tuple[int, bytes]]] = []
        size = 0
        for position, article in enumerate(articles):
            lines = self._bulk_lines(article)
            if len(lines) > limit:
                outcome.rejected[position] = (
                    f"request_too_large: the article's bulk lines are {len(lines)} bytes, "
                    f"NEWSFLOW_ELASTICSEARCH_BULK_MAX_BYTES is {limit}"
                )
                continue
            if not chunks or size + len(lines) > limit:
                chunks.append([])
                size = 0
            chunks[-1].append((position, lines))
            size += len(lines)
        sent_any = False
        for number, chunk in enumerate(chunks):
            try:
                self._send(chunk, outcome)
            except TransientError:
                if not sent_any:
                    raise
                outcome.retry.extend(p for later in chunks[number:] for p, _ in later)
                break
            sent_any = True
        return outcome

    def _bulk_lines(self, article: Article) -> bytes:
        """The four NDJSON lines of one article: current revision and history entry."""
        doc = article.model_dump_json().encode("utf-8")
        # Every current article is in a story (its own, until assignment says otherwise),
        # so collapsing never lumps articles without one together.
        stored = doc if article.story_id else in_own_story(article).model_dump_json().encode()
        keys = _json(story_keys(article))
        current = b'%s,"story_keys":%s}' % (stored[:-1], keys)  # a JSON object
        main = {
            "index": {
                "_index": self._alias,
                "_id": article.doc_id,
                "version": article.revision,
                "version_type": "external",
            }
        }
        history = {"create": {"_index": self._history, "_id": _history_id(article)}}
        return b"%s\n%s\n%s\n%s\n" % (_json(main), current, _json(history), doc)

    def _send(self, chunk: Sequence[tuple[int, bytes]], outcome: IndexOutcome) -> None:
        """One bulk request for ``chunk``, halved while the server refuses it whole."""
        try:
            with _translated("bulk index"):
                # The NDJSON serialiser forwards bytes as they are: nothing is encoded twice.
                response = self._client.bulk(operations=cast(Any, [lines for _, lines in chunk]))
        except RequestRefused as exc:
            if len(chunk) == 1:
                outcome.rejected[chunk[0][0]] = f"request refused: {exc}"
                return
            logger.warning("bulk request of %d articles refused, splitting: %s", len(chunk), exc)
            half = len(chunk) // 2
            self._send(chunk[:half], outcome)
            self._send(chunk[half:], outcome)
            return
        items = response["items"]
        for offset, (position, _) in enumerate(chunk):
            self._count(position, items[2 * offset]["index"], items[2 * offset + 1], outcome)

    @staticmethod
    def _count(
        position: int, main: dict[str, Any], history_item: dict[str, Any], outcome: IndexOutcome
    ) -> None:
        history = history_item["create"]
        status = int(main["status"])
        history_status = int(history["status"])
        if status in _TRANSIENT_STATUSES or history_status in _TRANSIENT_STATUSES:
            outcome.retry.append(position)
        elif status in (200, 201):
            outcome.indexed += 1
        elif status == 409:
            outcome.duplicates += 1
        else:
            error = main.get("error") or history.get("error") or {}
            outcome.rejected[position] = f"{error.get('type')}: {error.get('reason')}"
        if (
            position not in outcome.rejected
            and history_status not in (200, 201, 409)
            and history_status not in _TRANSIENT_STATUSES
        ):
            error = history.get("error") or {}
            outcome.rejected[position] = f"history {error.get('type')}: {error.get('reason')}"

    def lookup(self, ids: Sequence[str]) -> dict[str, SeenDoc]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        response = self._articles(
            "lookup",
            query={
                "bool": {
                    "should": [
                        {"ids": {"values": wanted}},
                        {"terms": {"alias_ids": wanted}},
                    ]
                }
            },
            source_includes=_SEEN_FIELDS,
            size=len(wanted) * 2,
        )
        found: dict[str, SeenDoc] = {}
        wanted_set = set(wanted)
        for hit in response["hits"]["hits"]:
            source = hit["_source"]
            seen = SeenDoc(
                doc_id=source["doc_id"],
                revision=int(source["revision"]),
                content_hash=source["content_hash"],
                updated_at=_time(source.get("updated_at")),
                published_at=_time(source.get("published_at")),
            )
            for key in [source["doc_id"], *source.get("alias_ids", [])]:
                if key in wanted_set:
                    found[key] = seen
        return found

    def get(self, doc_id: str) -> Article | None:
        response = self._articles("get", query={"ids": {"values": [doc_id]}}, size=1)
        hits = response["hits"]["hits"]
        return _article(hits[0]["_source"]) if hits else None

    def history(self, doc_id: str) -> list[Article]:
        with _translated("history"):
            response = self._client.search(
                index=self._history,
                query={"term": {"doc_id": doc_id}},
                sort=[{"revision": "asc"}],
                size=1000,
            )
        # After a rollover of the history alias a replayed revision is stored once per
        # concrete index; it is still one revision.
        revisions = {int(hit["_source"]["revision"]): hit for hit in response["hits"]["hits"]}
        return [_article(hit["_source"]) for hit in revisions.values()]

    def count(self) -> int:
        with _translated("count"):
            return int(self._client.count(index=self._alias)["count"])

    def search(self, query: SearchQuery) -> SearchResult:
        must = _text_query(query.text)
        if not must:
            return SearchResult(total=0, hits=[], articles=0)  # nothing searchable
        filters: list[dict[str, Any]] = []
        for name, value in (
            ("source", query.source),
            ("language", query.language),
            ("domain", query.domain),
            ("tags", query.tag),
            ("authors", query.author),
        ):
            if value:
                filters.append({"term": {name: value}})
        if query.feed:
            filters.append(
                {
                    "bool": {
                        "should": [
                            {"term": {"feed_url": query.feed}},
                            {"term": {"feed_name": query.feed}},
                        ]
                    }
                }
            )
        published: dict[str, str] = {}
        if query.since:
            published["gte"] = query.since.isoformat()
        if query.until:
            published["lt"] = query.until.isoformat()
        if published:
            filters.append({"range": {"published_at": published}})
        request: dict[str, Any] = {
            "query": {"bool": {"must": must, "filter": filters}},
            "highlight": {
                "fields": {"text": {}, "title": {"number_of_fragments": 0}},
                "pre_tags": ["[["],
                "post_tags": ["]]"],
                "fragment_size": 180,
                "number_of_fragments": 1,
            },
            "source_excludes": ["text", "story_keys", "fingerprint"],
            "size": query.limit,
            "from_": query.offset,
            "track_total_hits": True,
        }
        if query.sort == "date":
            request["sort"] = [
                {"published_at": {"order": "desc", "missing": "_last"}},
                "_score",
                {"doc_id": "asc"},
            ]
        if query.collapse:
            # Per story the best hit; inner hits only to count the story's matching copies.
            request["collapse"] = {
                "field": "story_id",
                "inner_hits": {"name": "copies", "size": 0},
            }
            # Near exact up to 40,000 stories (the most Elasticsearch allows; 12,247 for
            # 12,249 in bench.stories), approximate (HyperLogLog++) beyond: a total of
            # hits to show, not a number to reconcile.
            request["aggs"] = {
                "stories": {"cardinality": {"field": "story_id", "precision_threshold": 40_000}}
            }
        response = self._articles("search", **request)
        hits: list[SearchHit] = []
        for hit in response["hits"]["hits"]:
            source = hit["_source"]
            snippet = (hit.get("highlight", {}).get("text") or [source.get("summary") or ""])[0]
            copies = 0
            if query.collapse:
                copies = int(hit["inner_hits"]["copies"]["hits"]["total"]["value"]) - 1
            hits.append(
                SearchHit(
                    doc_id=source["doc_id"],
                    score=float(hit["_score"] or 0.0),
                    title=source["title"],
                    url=source["url"],
                    source=source.get("source"),
                    published_at=_time(source.get("published_at")),
                    snippet=snippet,
                    story_id=source.get("story_id"),
                    copies=max(0, copies),
                    domain=source.get("domain"),
                )
            )
        articles = int(response["hits"]["total"]["value"])
        total = int(response["aggregations"]["stories"]["value"]) if query.collapse else articles
        return SearchResult(total=total, hits=hits, articles=articles)

    # -- stories ---------------------------------------------------------------------

    def story_candidates(
        self, key_lists: Sequence[Sequence[str]], limit: int
    ) -> list[list[StoryMember]]:
        if not key_lists:
            return []
        searches: list[dict[str, Any]] = []
        for keys in key_lists:
            # Identity keys weigh more than all band keys together: a declared copy first.
            should = [
                {
                    "term": {
                        "story_keys": {"value": key, "boost": 1000.0 if key[:2] == "u:" else 1.0}
                    }
                }
                for key in keys
            ]
            searches.append({"index": self._alias})
            searches.append(
                {
                    "query": {"bool": {"should": should, "minimum_should_match": 1}},
                    "_source": _MEMBER_FIELDS,
                    "sort": ["_score", {"doc_id": "asc"}],
                    "size": limit,
                }
            )
        with _translated("story candidates"):
            # Candidates must include the previous batches: make them searchable now.
            self._client.indices.refresh(index=self._alias)
            response = self._client.msearch(searches=searches)
        found: list[list[StoryMember]] = []
        for answer in response["responses"]:
            if "error" in answer:
                status = int(answer.get("status", 500))
                error = answer["error"]
                message = f"story candidates failed: {error}"
                if status in _TRANSIENT_STATUSES or status >= 500:
                    raise BackendUnavailable(message)
                raise PermanentError(message)
            found.append([_member(hit["_source"]) for hit in answer["hits"]["hits"]])
        return found

    def merge_stories(self, merges: Sequence[StoryMerge]) -> None:
        if not merges:
            return
        target = {merge.old: merge for merge in merges}
        with _translated("story merge"):
            self._client.indices.refresh(index=self._alias)
            members = list(
                helpers.scan(
                    self._client,
                    index=self._alias,
                    query={"query": {"terms": {"story_id": list(target)}}},
                    version=True,
                )
            )
            operations: list[Any] = []
            for hit in members:
                source = hit["_source"]
                merge = target[source["story_id"]]
                if source["doc_id"] == merge.old and not source.get("near_duplicate_of"):
                    source["near_duplicate_of"] = merge.new
                source["story_id"] = merge.new
                source["story_started_at"] = merge.started_at.isoformat()
                # Same revision again (external_gte): a newer revision written meanwhile
                # wins with 409, and was assigned its story on its own.
                operations.append(
                    {
                        "index": {
                            "_index": hit["_index"],
                            "_id": hit["_id"],
                            "version": int(source["revision"]),
                            "version_type": "external_gte",
                        }
                    }
                )
                operations.append(source)
            if operations:
                response = self._client.bulk(operations=operations, refresh=True)
                items = [next(iter(item.values())) for item in response["items"]]
                if any(item.get("error") and int(item["status"]) != 409 for item in items):
                    _raise_for_bulk_errors(
                        {
                            "errors": True,
                            "items": [
                                {"index": i} for i in items if int(i.get("status", 0)) != 409
                            ],
                        },
                        "story merge",
                    )

    # -- feed state ------------------------------------------------------------------

    def feed_states(self, feed_urls: Sequence[str]) -> dict[str, FeedState]:
        if not feed_urls:
            return {}
        with _translated("feed state read"):
            response = self._client.mget(
                index=self._feeds, ids=[_feed_key(url) for url in feed_urls]
            )
        states: dict[str, FeedState] = {}
        for doc in response["docs"]:
            if doc.get("found"):
                state = FeedState.model_validate(doc["_source"])
                states[state.feed_url] = state
        return states

    def put_feed_states(self, states: Sequence[FeedState]) -> None:
        if not states:
            return
        operations: list[dict[str, Any]] = []
        for state in states:
            operations.append({"index": {"_index": self._feeds, "_id": _feed_key(state.feed_url)}})
            operations.append(state.model_dump(mode="json"))
        with _translated("feed state write"):
            response = self._client.bulk(operations=operations)
        if response["errors"]:
            failed = [item["index"] for item in response["items"] if item["index"].get("error")]
            reasons = "; ".join(sorted({str(item["error"].get("reason")) for item in failed}))
            if any(int(item["status"]) in _TRANSIENT_STATUSES for item in failed):
                raise BackendUnavailable(f"feed state not stored: {reasons}")
            # A mapping or validation refusal comes back the same on every retry.
            raise PermanentError(f"feed state not stored: {reasons}")

    def all_feed_states(self) -> list[FeedState]:
        """Every stored feed state (for ``newsflow feeds status``)."""
        with _translated("feed state read"):
            response = self._client.search(index=self._feeds, size=10_000)
        return [FeedState.model_validate(hit["_source"]) for hit in response["hits"]["hits"]]

    def feed_stats(self, feed_urls: Sequence[str], since: datetime) -> dict[str, FeedStats]:
        stats = {url: FeedStats() for url in feed_urls}
        aggs = {
            "recent": {"filter": {"range": {"fetched_at": {"gte": since.isoformat()}}}},
            "no_date": {"missing": {"field": "published_at"}},
            "no_authors": {"missing": {"field": "authors"}},
            "no_text": {"filter": {"term": {"content_hash": _EMPTY_TEXT_HASH}}},
        }
        for url, bucket in self._per_feed(self._alias, feed_urls, aggs, "feed stats"):
            stats[url] = FeedStats(
                articles=int(bucket["doc_count"]),
                recent=int(bucket["recent"]["doc_count"]),
                missing_published_at=int(bucket["no_date"]["doc_count"]),
                missing_authors=int(bucket["no_authors"]["doc_count"]),
                missing_text=int(bucket["no_text"]["doc_count"]),
            )
        return stats

    def _per_feed(
        self, index: str, feed_urls: Sequence[str], aggs: dict[str, Any], action: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``aggs`` over the documents of each of ``feed_urls`` in ``index``: (url, bucket)."""
        wanted = list(dict.fromkeys(feed_urls))
        for start in range(0, len(wanted), _STATS_CHUNK):
            chunk = wanted[start : start + _STATS_CHUNK]
            with _translated(action):
                response = self._client.search(
                    index=index,
                    size=0,
                    query={"terms": {"feed_url": chunk}},
                    aggs={
                        "feeds": {
                            "terms": {"field": "feed_url", "size": len(chunk)},
                            "aggs": aggs,
                        }
                    },
                )
            for bucket in response["aggregations"]["feeds"]["buckets"]:
                yield bucket["key"], bucket

    # -- revisits -------------------------------------------------------------------

    def due_revisits(
        self, feed_url: str, kind: RevisitKind, now: datetime, limit: int
    ) -> list[Revisit]:
        if limit <= 0:
            return []
        with _translated("revisit read"):
            response = self._client.search(
                index=self._revisits,
                query={
                    "bool": {
                        "filter": [
                            {"term": {"feed_url": feed_url}},
                            {"term": {"kind": kind}},
                            {"term": {"given_up": False}},
                            {"range": {"next_at": {"lte": now.isoformat()}}},
                        ]
                    }
                },
                sort=[{"next_at": "asc"}, {"key": "asc"}],
                size=limit,
            )
        return [Revisit.from_document(hit["_source"]) for hit in response["hits"]["hits"]]

    def revisits(self, feed_url: str, kind: RevisitKind, keys: Sequence[str]) -> dict[str, Revisit]:
        if not keys:
            return {}
        with _translated("revisit read"):
            response = self._client.mget(
                index=self._revisits, ids=[_revisit_key(feed_url, kind, key) for key in keys]
            )
        found = (Revisit.from_document(d["_source"]) for d in response["docs"] if d.get("found"))
        return {revisit.key: revisit for revisit in found}

    def put_revisits(self, revisits: Sequence[Revisit]) -> None:
        if not revisits:
            return
        operations: list[dict[str, Any]] = []
        for revisit in revisits:
            key = _revisit_key(revisit.feed_url, revisit.kind, revisit.key)
            operations.append({"index": {"_index": self._revisits, "_id": key}})
            operations.append(revisit.as_document())
        with _translated("revisit write"):
            response = self._client.bulk(operations=operations)
        _raise_for_bulk_errors(response, "revisits not stored")

    def drop_revisits(self, feed_url: str, kind: RevisitKind, keys: Sequence[str]) -> None:
        if not keys:
            return
        operations = [
            {"delete": {"_index": self._revisits, "_id": _revisit_key(feed_url, kind, key)}}
            for key in keys
        ]
        with _translated("revisit write"):
            response = self._client.bulk(operations=operations)
        _raise_for_bulk_errors(response, "revisits not dropped")

    def revisit_counts(self, feed_urls: Sequence[str]) -> dict[str, RevisitCounts]:
        counts = {url: RevisitCounts() for url in feed_urls}
        retry = {"term": {"kind": "retry"}}

        def retries(given_up: bool) -> dict[str, Any]:
            return {"filter": {"bool": {"filter": [retry, {"term": {"given_up": given_up}}]}}}

        aggs = {
            "retries": retries(False),
            "given_up": retries(True),
            "rechecks": {"filter": {"term": {"kind": "recheck"}}},
        }
        for url, bucket in self._per_feed(self._revisits, feed_urls, aggs, "revisit counts"):
            counts[url] = RevisitCounts(
                retries=int(bucket["retries"]["doc_count"]),
                given_up=int(bucket["given_up"]["doc_count"]),
                rechecks=int(bucket["rechecks"]["doc_count"]),
            )
        return counts

    def refresh(self) -> None:
        with _translated("refresh"):
            self._client.indices.refresh(
                index=[self._alias, self._history, self._feeds, self._revisits]
            )

    # -- health ----------------------------------------------------------------------

    def check(self, *, timeout: float = 10.0) -> list[Check]:
        """Cluster health, the index template, both aliases and the feeds index."""
        alias, history, feeds = self._alias, self._history, self._feeds
        names = [
            "elasticsearch template",
            f"elasticsearch alias {alias}",
            f"elasticsearch alias {history}",
            f"elasticsearch index {feeds}",
        ]
        client = self._client.options(request_timeout=timeout)
        url = self._settings.url
        try:
            health = client.cluster.health()
        except elasticsearch.TransportError as exc:
            return [
                Check.fail("elasticsearch", f"unreachable at {url}: {exc}"),
                *(Check.skip(name, "Elasticsearch unreachable") for name in names),
            ]
        except elasticsearch.ApiError as exc:
            return [
                Check.fail("elasticsearch", f"cluster health failed: {exc}"),
                *(Check.skip(name, "no cluster health") for name in names),
            ]
        status = str(health["status"])
        detail = (
            f"{status} at {url}, {health['number_of_nodes']} node(s), "
            f"{health['unassigned_shards']} unassigned shard(s)"
        )
        checks = [(Check.fail if status == "red" else Check.ok)("elasticsearch", detail)]
        checks.append(self._template_check(client, names[0]))
        checks.append(_alias_check(client, names[1], alias, entity=True))
        checks.append(_alias_check(client, names[2], history))
        try:
            if client.indices.exists(index=feeds):
                count = int(client.count(index=feeds)["count"])
                checks.append(Check.ok(names[3], f"{count} feed state(s)"))
            else:
                checks.append(Check.fail(names[3], f"missing; {SETUP_HINT}"))
        except elasticsearch.ApiError as exc:
            checks.append(Check.fail(names[3], str(exc)))
        return checks

    def _template_check(self, client: Elasticsearch, name: str) -> Check:
        template = f"{self._alias}-template"
        try:
            found = client.indices.get_index_template(name=template)["index_templates"]
        except elasticsearch.NotFoundError:
            return Check.fail(name, f"{template} missing; {SETUP_HINT}")
        except elasticsearch.ApiError as exc:
            return Check.fail(name, f"{template}: {exc}")
        patterns = set(found[0]["index_template"]["index_patterns"]) if found else set()
        missing = {f"{self._alias}-*", f"{self._history}-*"} - patterns
        if missing:
            return Check.fail(name, f"{template} does not cover {', '.join(sorted(missing))}")
        return Check.ok(name, f"{template} covers {', '.join(sorted(patterns))}")

    def close(self) -> None:
        self._client.close()


def _alias_check(client: Elasticsearch, name: str, alias: str, *, entity: bool = False) -> Check:
    """An alias with exactly one write index; with ``entity`` exactly one index at all.

    External versions are compared within one concrete index only: behind an articles
    alias rolled over, an update would become a second document.
    """
    try:
        indices = dict(client.indices.get_alias(name=alias))
    except elasticsearch.NotFoundError:
        try:
            is_index = bool(client.indices.exists(index=alias))
        except elasticsearch.ApiError:
            is_index = False
        if is_index:
            return Check.fail(
                name, f"{alias} is an index, not an alias: newsflow cannot roll it over"
            )
        return Check.fail(name, f"missing; {SETUP_HINT}")
    except elasticsearch.ApiError as exc:
        return Check.fail(name, str(exc))
    writers = [
        index
        for index, body in indices.items()
        if body["aliases"][alias].get("is_write_index") or len(indices) == 1
    ]
    if len(writers) != 1:
        return Check.fail(
            name, f"{len(writers)} write indices behind {alias}: {', '.join(writers)}"
        )
    if entity and len(indices) > 1:
        return Check.fail(
            name,
            f"{len(indices)} indices behind {alias} ({', '.join(sorted(indices))}): it must "
            "not be rolled over (updates would duplicate); use `newsflow reindex`",
        )
    try:
        count = int(client.count(index=alias)["count"])
    except elasticsearch.ApiError as exc:
        return Check.fail(name, f"-> {writers[0]} (write), count failed: {exc}")
    return Check.ok(name, f"-> {writers[0]} (write), {len(indices)} index(es), {count} document(s)")
