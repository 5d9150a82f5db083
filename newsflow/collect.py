"""Collect stage: a feed's entries -> article revisions worth publishing.

Three steps, each batched per feed:

1. :func:`plan` looks up every entry's id in the store in one request and keeps the
   entries never seen, or seen with an older update time than the feed now reports;
2. the pages are fetched concurrently (conditionally, for pages re-checked with their
   validators), each handed to the extraction pool as it arrives;
3. each page becomes an :class:`~schemas.Article` with its identity; a revision whose
   content is unchanged from the stored one (or that another feed of the same run
   already produced) is counted as a duplicate and dropped.

What became of each entry is reported as an :class:`EntryOutcome` by :func:`entry_key`,
so that the poller can keep its retry set and recheck schedule (:mod:`newsflow.revisits`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from connectors.store import SeenDoc, SeenLookup
from newsflow.errors import FetchError, Interrupted, TransientError
from newsflow.extract import Extractor, ExtractSkip, Page, PendingExtraction
from newsflow.fetch import (
    BlockedAddress,
    BodyTooLarge,
    Fetcher,
    FetchResponse,
    HttpStatusError,
    RobotsDisallowed,
)
from newsflow.identity import (
    canonical_url,
    content_hash,
    doc_id,
    domain_of,
    elsewhere_canonical,
)
from newsflow.metrics import NO_METRICS, PipelineMetrics, status_class
from newsflow.quality import assess, feed_text, is_teaser
from newsflow.summary import PollSummary
from schemas import Article, FeedConfig, FeedEntry, PageExtraction

__all__ = [
    "EARLIEST_DATE",
    "FUTURE_SKEW",
    "Claims",
    "Collected",
    "EntryOutcome",
    "OutcomeKind",
    "bounded_date",
    "build_article",
    "collect",
    "entry_key",
    "plan",
]

# Extraction outcomes that may pass on another attempt (a busy machine, a worker that
# died for another page's sake); too_short, no_text, memory and error come back the same.
_RETRYABLE_SKIPS = frozenset({"timeout", "worker_crashed"})
_MAX_MESSAGE = 500

logger = logging.getLogger(__name__)


class Claims:
    """doc_ids produced during one run, so two feeds carrying one story publish it once."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, doc_id: str) -> bool:
        """True the first time ``doc_id`` is claimed in this run."""
        with self._lock:
            if doc_id in self._ids:
                return False
            self._ids.add(doc_id)
            return True

    def release(self, doc_ids: Sequence[str]) -> None:
        """Forget claims whose publication failed, so a retry may publish them."""
        with self._lock:
            self._ids.difference_update(doc_ids)


def _link_id(link: str) -> str:
    return doc_id(canonical_url(link))


def entry_key(entry: FeedEntry) -> str:
    """The key of an entry within its feed: the id of its link (what plan deduplicates on)."""
    return _link_id(entry.link)


def _is_newer(entry: FeedEntry, seen: SeenDoc) -> bool:
    if entry.updated_at is None:
        return False
    known = seen.updated_at or seen.published_at
    return known is None or entry.updated_at > known


def plan(entries: Sequence[FeedEntry], store: SeenLookup) -> list[FeedEntry]:
    """Entries whose page must be fetched: unseen, or updated since it was indexed."""
    unique: dict[str, FeedEntry] = {}
    for entry in entries:
        unique.setdefault(_link_id(entry.link), entry)
    seen = store.lookup(list(unique))
    return [
        entry for key, entry in unique.items() if key not in seen or _is_newer(entry, seen[key])
    ]


def _skip_reason(error: Exception) -> str:
    if isinstance(error, Interrupted):
        return "interrupted"
    if not isinstance(error, FetchError):
        return "decode_error" if isinstance(error, UnicodeError | LookupError) else "error"
    if isinstance(error, RobotsDisallowed):
        return "robots"
    if isinstance(error, BlockedAddress):
        return "blocked_address"
    if isinstance(error, BodyTooLarge):
        return "too_large"
    if isinstance(error, HttpStatusError):
        return f"http_{error.status}"
    return "fetch_error"


EARLIEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)
"""No article date before this: an earlier one is a misread (a founding year, a typo)."""
FUTURE_SKEW = timedelta(days=1)
"""How far past the fetch an article date may lie (time zones, clocks a little ahead)."""


def bounded_date(moment: datetime | None, fetched_at: datetime) -> datetime | None:
    """``moment`` if it is a plausible article date for a page fetched at ``fetched_at``."""
    if moment is None or moment < EARLIEST_DATE or moment > fetched_at + FUTURE_SKEW:
        return None
    return moment


def build_article(
    feed: FeedConfig,
    entry: FeedEntry,
    final_url: str,
    page: PageExtraction,
    fetched_at: datetime,
    *,
    text_source: Literal["page", "feed"] = "page",
) -> Article:
    """One revision of an article from what the page and the feed say (page first)."""
    canonical = canonical_url(final_url, page.canonical_url)
    key = doc_id(canonical)
    aliases = {_link_id(entry.link), _link_id(final_url)} - {key}
    return Article(
        doc_id=key,
        revision=Article.revision_of(fetched_at),
        url=canonical,
        source_url=entry.link,
        alias_ids=sorted(aliases),
        title=page.title or entry.title or canonical,
        text=page.text,
        summary=page.description or entry.summary,
        authors=page.authors or entry.authors,
        # The page's date first, the feed's as the fallback; neither outside the bounds.
        published_at=bounded_date(page.published_at, fetched_at)
        or bounded_date(entry.published_at, fetched_at),
        updated_at=bounded_date(page.updated_at, fetched_at)
        or bounded_date(entry.updated_at, fetched_at),
        fetched_at=fetched_at,
        language=page.language or entry.language or feed.language,
        source=page.site_name or feed.name or domain_of(canonical),
        domain=domain_of(canonical),
        feed_url=feed.url,
        feed_name=feed.name,
        tags=list(dict.fromkeys([*page.tags, *entry.tags, *feed.tags])),
        image_url=page.image_url or entry.image_url,
        content_hash=content_hash(page.text),
        text_source=text_source,
        fingerprint=page.fingerprint,
        syndicated_from=elsewhere_canonical(final_url, page.canonical_url),
    )


OutcomeKind = Literal["published", "duplicate", "not_modified", "retryable", "skipped"]
"""``published``: a new revision to publish; ``duplicate``: content already stored or
produced in this run; ``not_modified``: a conditional GET answered 304; ``retryable``: a
failure that may pass (5xx, 429, timeouts, extraction timeout or crash); ``skipped``: one
that will not (4xx, robots, not HTML, too large, blocked address, no text)."""


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """What became of one entry's page."""

    kind: OutcomeKind
    error_class: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    """Seconds the server asked us to wait (Retry-After), for a retryable failure."""
    etag: str | None = None
    """The answer's validators (for a later conditional GET)."""
    last_modified: str | None = None
    first_seen: bool = False
    """Published, and the store had no revision of it yet."""


@dataclass(slots=True)
class Collected:
    """What :func:`collect` produced for one feed."""

    articles: list[Article] = field(default_factory=list)
    """New revisions to publish."""
    counts: PollSummary = field(default_factory=PollSummary)
    outcomes: dict[str, EntryOutcome] = field(default_factory=dict)
    """By :func:`entry_key`, for every entry collected."""
    quality_by_domain: dict[str, Counter[str]] = field(default_factory=dict)
    """Quality flags (:func:`newsflow.quality.assess`) per domain; totals in ``counts``."""

    def _flag(self, domain: str, flags: Counter[str]) -> None:
        self.counts.quality.update(flags)
        self.quality_by_domain.setdefault(domain, Counter()).update(flags)


def _failure(error: Exception) -> EntryOutcome:
    retry_after = getattr(error, "retry_after", None)
    return EntryOutcome(
        kind="retryable" if isinstance(error, TransientError) else "skipped",
        error_class=type(error).__name__,
        error_message=str(error)[:_MAX_MESSAGE],
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
    )


def _answered(kind: OutcomeKind, response: FetchResponse, first_seen: bool = False) -> EntryOutcome:
    return EntryOutcome(
        kind,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        first_seen=first_seen,
    )


@dataclass(frozen=True, slots=True)
class _Fetched:
    entry: FeedEntry
    response: FetchResponse
    fetched_at: datetime
    extraction: PendingExtraction
    handed_off: float = 0.0


_MAX_FETCH_THREADS = 16
_PUBLISH_EVERY = 25
"""Pages of a feed whose new revisions are handed on together (see ``on_articles``)."""


def collect(
    feed: FeedConfig,
    entries: Sequence[FeedEntry],
    *,
    fetcher: Fetcher,
    extractor: Extractor,
    store: SeenLookup,
    claims: Claims,
    respect_robots: bool | None = None,
    on_page: Callable[[], None] | None = None,
    conditional: Mapping[str, Mapping[str, str]] | None = None,
    stop: threading.Event | None = None,
    metrics: PipelineMetrics = NO_METRICS,
    on_articles: Callable[[list[Article]], None] | None = None,
) -> Collected:
    """Fetch, extract and identify the planned entries of one feed.

    Each page goes to the extraction pool as soon as it has arrived, so downloads and
    extraction overlap (within the feed and with the other feeds of the run); the
    pool's backlog bound holds the downloads back when extraction falls behind.
    ``conditional`` holds extra request headers (``If-None-Match``, ...) by
    :func:`entry_key`; a 304 answer is the outcome ``not_modified``. Once ``stop`` is
    set, pages not yet requested are not requested (the caller abandons the feed).
    ``metrics`` is told each fetch's latency and status class and each extraction's
    duration. With ``on_articles``, the new revisions are handed over every
    ``_PUBLISH_EVERY`` pages as they are ready (the caller publishes them while the rest
    of the feed is still being fetched) instead of collected in ``articles``; an error it
    raises ends the collection.
    """
    result = Collected()
    counts, outcomes = result.counts, result.outcomes
    conditional = conditional or {}

    def done() -> None:
        if on_page is not None:
            on_page()

    def fetch(entry: FeedEntry) -> _Fetched | Exception | FetchResponse:
        if stop is not None and stop.is_set():
            return Interrupted("not requested: the run is stopping")
        started = time.monotonic()
        try:
            try:
                response = fetcher.get(
                    entry.link,
                    headers=conditional.get(entry_key(entry)),
                    respect_robots=respect_robots,
                )
            except Exception as exc:
                status = exc.status if isinstance(exc, HttpStatusError) else None
                metrics.page_fetched(status_class(status), time.monotonic() - started)
                raise
            metrics.page_fetched(status_class(response.status), time.monotonic() - started)
            if response.status == 304 or not response.is_html:
                return response
            fetched_at = datetime.now(UTC)
            html = response.text()
        except FetchError as exc:
            return exc
        except Exception as exc:  # one page's bytes, or a bug they hit: that page's skip
            if stop is not None and stop.is_set():  # the run closed the client under us
                return Interrupted("cut: the run is stopping")
            logger.warning("page failed url=%s error=%r", entry.link, exc)
            return exc
        handed_off = time.monotonic()
        pending = extractor.submit(Page(url=response.url, html=html))
        # The body was decoded and handed on: keep the answer's URL and headers only, so
        # a feed's pages are not all held in memory until the feed is done.
        response = replace(response, body=b"")
        key = id(pending)

        def ended(_: object) -> None:
            finished[key] = time.monotonic()

        pending.future.add_done_callback(ended)
        return _Fetched(entry, response, fetched_at, pending, handed_off)

    def finish(fetched: list[_Fetched]) -> None:
        """Extraction results, identities and dedup for ``fetched``; hand the new ones on."""
        extractions = []
        for item in fetched:
            extraction = extractor.result(item.extraction)
            extractions.append(extraction)
            end = finished.get(id(item.extraction), time.monotonic())
            outcome = extraction.reason if isinstance(extraction, ExtractSkip) else "ok"
            metrics.page_extracted(outcome, max(0.0, end - item.handed_off))
            done()

        candidates: list[tuple[str, _Fetched, Article]] = []
        minimum = extractor.min_text_chars
        for item, extraction in zip(fetched, extractions, strict=True):
            key = entry_key(item.entry)
            own_text = feed_text(item.entry, minimum)
            page: PageExtraction | None = None
            if isinstance(extraction, ExtractSkip):
                if own_text and extraction.reason in ("too_short", "no_text"):
                    page = PageExtraction(text=own_text)  # a teaser: the feed has the story
            elif (
                own_text
                and len(own_text) > len(extraction.text)
                and is_teaser(extraction, item.entry)
            ):
                page = extraction.model_copy(update={"text": own_text})
            from_feed = page is not None
            if page is None and not isinstance(extraction, ExtractSkip):
                page = extraction
            if page is None:
                assert isinstance(extraction, ExtractSkip)  # noqa: S101  (narrowing only)
                result._flag(
                    domain_of(item.response.url),
                    assess(
                        extraction,
                        item.entry,
                        dated=bounded_date(item.entry.published_at, item.fetched_at) is not None,
                        authored=bool(item.entry.authors),
                        from_feed=False,
                    ),
                )
                counts.skipped[extraction.reason] += 1
                outcomes[key] = EntryOutcome(
                    "retryable" if extraction.reason in _RETRYABLE_SKIPS else "skipped",
                    error_class=f"extract_{extraction.reason}",
                    error_message=extraction.detail[:_MAX_MESSAGE],
                )
                continue
            counts.extracted += 1
            article = build_article(
                feed,
                item.entry,
                item.response.url,
                page,
                item.fetched_at,
                text_source="feed" if from_feed else "page",
            )
            result._flag(
                article.domain,
                assess(
                    extraction,
                    item.entry,
                    dated=article.published_at is not None,
                    authored=bool(article.authors),
                    from_feed=from_feed,
                ),
            )
            candidates.append((key, item, article))

        stored = store.lookup([article.doc_id for _, _, article in candidates])
        fresh: list[Article] = []
        for key, item, article in candidates:
            previous = stored.get(article.doc_id)
            unchanged = previous is not None and previous.content_hash == article.content_hash
            if unchanged or not claims.claim(article.doc_id):
                counts.duplicates += 1
                outcomes[key] = _answered("duplicate", item.response)
            else:
                fresh.append(article)
                outcomes[key] = _answered("published", item.response, first_seen=previous is None)
        if on_articles is not None and fresh:
            on_articles(fresh)
        else:
            result.articles.extend(fresh)

    finished: dict[int, float] = {}  # when each extraction ended, by id of its pending
    fetched: list[_Fetched] = []
    if entries:
        threads = min(_MAX_FETCH_THREADS, len(entries))
        with ThreadPoolExecutor(threads, thread_name_prefix="newsflow-collect") as pool:
            # In the order the pages arrive, not the feed's: one slow page must not hold
            # back the ones after it.
            asked = {pool.submit(fetch, entry): entry for entry in entries}
            for future in as_completed(asked):
                entry, answer = asked[future], future.result()
                key = entry_key(entry)
                if isinstance(answer, Exception):
                    counts.skipped[_skip_reason(answer)] += 1
                    outcomes[key] = _failure(answer)
                    done()
                elif isinstance(answer, FetchResponse):
                    if answer.status == 304:
                        counts.duplicates += 1
                        outcomes[key] = _answered("not_modified", answer)
                    else:
                        counts.fetched += 1
                        counts.skipped["not_html"] += 1
                        outcomes[key] = EntryOutcome("skipped", error_class="not_html")
                    done()
                else:
                    counts.fetched += 1
                    fetched.append(answer)
                    if on_articles is not None and len(fetched) >= _PUBLISH_EVERY:
                        finish(fetched)
                        fetched = []
    finish(fetched)
    return result
