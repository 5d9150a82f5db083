"""The pipeline as a plain library: one poll of the feeds, one drain of the buffer.

:func:`poll_once` runs feeds -> fetch -> extract -> publish for a set of feeds and
:func:`drain` runs buffer -> store until nothing is waiting. Both take their settings as
an argument and need nothing but the connectors: the CLI calls them directly, and the
Prefect flows in ``flows/`` wrap the same calls in tasks for schedules, retries and
artifacts.

A poll is organised around a :class:`PollRun`, which owns what the feeds of a run share
(the buffer, the store, one HTTP client, one extraction pool and the run's claims) and
polls one feed at a time through :meth:`PollRun.poll_feed`. A Prefect task wraps exactly
that method, so that a feed is the unit Prefect retries; :func:`poll_once` calls it for
every feed on a small thread pool.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import UTC, datetime

from connectors import Buffer, Store, open_buffer, open_store
from connectors.buffer import Consumer
from newsflow import revisits
from newsflow.collect import Claims, collect, plan
from newsflow.errors import Interrupted
from newsflow.extract import Extractor
from newsflow.feeds import poll_feed
from newsflow.fetch import Fetcher
from newsflow.indexer import Indexer
from newsflow.metrics import NO_METRICS, PipelineMetrics
from newsflow.progress import reporter
from newsflow.publish import publish
from newsflow.quality import add_quality
from newsflow.settings import Settings
from newsflow.summary import IndexSummary, PollSummary
from schemas import Article, FeedConfig, FeedState

__all__ = [
    "BatchCallback",
    "Clock",
    "FetchSlot",
    "PollRun",
    "drain",
    "observe_batches",
    "observe_pipeline",
    "poll_once",
    "select_feeds",
]

logger = logging.getLogger(__name__)

FetchSlot = Callable[[], AbstractContextManager[object]]
"""Makes the context a feed holds while its pages are fetched and extracted.

The Prefect flow passes one that takes a slot of a global concurrency limit, so that
fetching is capped across every run on every worker; by default nothing is held.
"""


BatchCallback = Callable[[IndexSummary, Consumer, float], None]
"""Called after every indexed batch with the running counts, the consumer and its seconds."""


Clock = Callable[[], datetime]
"""What time it is (timezone-aware); tests pass their own."""


def _no_slot() -> AbstractContextManager[object]:
    return nullcontext()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def select_feeds(feeds: Sequence[FeedConfig], tags: Sequence[str] | None) -> list[FeedConfig]:
    """Enabled feeds, restricted to those carrying one of ``tags`` when given."""
    wanted = set(tags or [])
    return [f for f in feeds if f.enabled and (not wanted or wanted.intersection(f.tags))]


class PollRun:
    """What the feeds of one polling run share, and the per-feed pipeline.

    Use it as a context manager: entering opens the buffer and the store (creating the
    topics and indices when missing), the HTTP client and the extraction pool; leaving
    closes them. One instance may serve several cycles (``newsflow run --every``), so the
    extraction pool is started once. ``clock`` tells the time that polls, retries and
    rechecks are scheduled by; ``rng`` draws the retry jitter; ``metrics`` is told what
    each feed poll did (default: the :func:`observe_pipeline` observer, else nothing).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = _utc_now,
        rng: random.Random | None = None,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else _pipeline_metrics
        self.clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - scheduling jitter, not security
        self._stack = ExitStack()
        self._parts: tuple[Buffer, Store, Fetcher, Extractor] | None = None
        self.claims = Claims()
        self._cycle_at: datetime | None = None
        self._stopping = threading.Event()

    def __enter__(self) -> PollRun:
        settings = self.settings
        with ExitStack() as stack:
            buffer = open_buffer(settings)
            stack.callback(buffer.close)
            store = open_store(settings)
            stack.callback(store.close)
            buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
            store.ensure()
            fetcher = stack.enter_context(Fetcher(settings.fetch))
            extractor = stack.enter_context(Extractor(settings.extract))
            self._stack = stack.pop_all()
        self._parts = (buffer, store, fetcher, extractor)
        self.new_cycle()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._parts = None
        self._stack.close()

    def _open(self) -> tuple[Buffer, Store, Fetcher, Extractor]:
        if self._parts is None:
            raise RuntimeError("PollRun used outside its `with` block")
        return self._parts

    def new_cycle(self) -> None:
        """Start a cycle: forget the previous cycle's claims, and read the clock once.

        Every feed of a cycle is scheduled from the cycle's start, not from the moment
        its turn came: a feed polled late in one cycle is still due at the start of the
        cycle one interval later (``newsflow run --every`` with the feeds' interval).
        """
        self.claims = Claims()
        self._cycle_at = self.clock()

    def feed_states(self, feeds: Sequence[FeedConfig]) -> dict[str, FeedState]:
        """The stored state of each feed that has one, by configured URL."""
        _, store, _, _ = self._open()
        return store.feed_states([f.url for f in feeds])

    def poll_feed(
        self,
        feed: FeedConfig,
        state: FeedState | None,
        *,
        force: bool = False,
        fetch_slot: FetchSlot = _no_slot,
    ) -> PollSummary:
        """Poll one feed: plan its entries, collect their pages, publish the new revisions.

        Besides the feed's new entries, every poll (a 304 or an unchanged feed too) fetches
        the feed's due retries and rechecks (:mod:`newsflow.revisits`), and records what
        became of them once the articles are in the buffer.

        A feed that fails (unreachable, malformed) is counted, not raised: its health is
        in its state. Only an unreachable buffer or store raises, and then the feed's
        state does not move on, so that the next attempt plans the same entries again.
        """
        buffer, store, fetcher, extractor = self._open()
        settings = self.settings.feed
        now = self._cycle_at or self.clock()
        counts = PollSummary()
        started = time.monotonic()
        polled = poll_feed(feed, state, fetcher, settings, now=now, force=force, runner=extractor)
        if polled.status in ("not_due", "disabled"):
            self.metrics.feed_polled(feed, polled.status, time.monotonic() - started, 0)
            counts.feeds_not_due += 1
            return counts
        counts.feeds_polled += 1
        counts.not_modified += polled.status in ("not_modified", "unchanged")
        counts.failed += polled.status == "failed"
        counts.parsed_with_errors += polled.state.bozo
        counts.entries_seen += len(polled.entries)
        entries = plan(polled.entries, store) if polled.entries else []
        counts.new += len(entries)
        due = revisits.gather(feed, entries, store, settings, now)
        counts.retried += len(due.retries)
        counts.rechecked += len(due.rechecks)
        work = [*entries, *due.entries]
        if work:
            progress = reporter()
            progress.add("fetch+extract", len(work))

            def publish_now(articles: list[Article]) -> None:
                # Published as they are ready, while the feed's other pages download:
                # the indexer need not wait for the feed's last page.
                try:
                    publishing = time.monotonic()
                    published = publish(buffer, self.settings.kafka.topic, articles)
                except Exception:
                    self.claims.release([a.doc_id for a in articles])
                    raise
                counts.published += published
                self.metrics.published(feed, published, time.monotonic() - publishing)

            with fetch_slot():
                collected = collect(
                    feed,
                    work,
                    fetcher=fetcher,
                    extractor=extractor,
                    store=store,
                    claims=self.claims,
                    respect_robots=feed.respect_robots,
                    on_page=lambda: progress.advance("fetch+extract"),
                    conditional=due.conditional(),
                    stop=self._stopping,
                    metrics=self.metrics,
                    on_articles=publish_now,
                )
            self._check_stop(feed)
            counts.merge(collected.counts)
            counts.merge(
                revisits.settle(
                    feed, work, collected.outcomes, due, store, settings, now, self._rng
                )
            )
        state_now = polled.state
        if work:
            state_now = add_quality(
                state_now, collected.counts.quality, collected.quality_by_domain
            )
            self.metrics.quality(feed, collected.counts.quality)
        # Feed state moves on only once its articles are safe in the buffer.
        store.put_feed_states([state_now])
        if self.metrics is not NO_METRICS:
            self.metrics.revisits(feed, store.revisit_counts([feed.url])[feed.url])
        failures = polled.state.consecutive_failures
        self.metrics.feed_polled(feed, polled.status, time.monotonic() - started, failures)
        return counts

    def stop(self) -> None:
        """Stop the feeds in flight: requests under way are cut (the HTTP client closes),
        pages not yet requested are not requested, and a feed stopped before its articles
        were published keeps its old state, so the next run polls it again. Feeds that
        already published finish normally. The run cannot poll again afterwards."""
        self._stopping.set()
        if self._parts is not None:
            self._parts[2].close()

    def _check_stop(self, feed: FeedConfig) -> None:
        if self._stopping.is_set():
            raise Interrupted(f"stopped before {feed.url} was done; it is polled again next run")

    def poll(self, feeds: Sequence[FeedConfig], *, force: bool = False) -> PollSummary:
        """Poll ``feeds`` concurrently (one thread per feed, up to the feed concurrency).

        When feeds fail on the backends, the first such error is raised once all are done.
        """
        summary = PollSummary()
        if not feeds:
            return summary
        states = self.feed_states(feeds)
        workers = max(1, min(len(feeds), self.settings.feed.concurrency))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
            futures = [
                pool.submit(self.poll_feed, feed, states.get(feed.url), force=force)
                for feed in feeds
            ]
            # Every feed runs to its end (its state saved or not) before a backend failure
            # of one is raised, so none is left half-done behind it.
            try:
                errors = [f.exception() for f in futures]
            except KeyboardInterrupt:
                self.stop()
                left = sum(not f.done() for f in futures)
                for future in futures:
                    future.cancel()
                logger.warning(
                    "interrupted: %d feeds stop after the pages in flight, without saving "
                    "their state (Ctrl-C again to quit at once)",
                    left,
                )
                raise
            for future, error in zip(futures, errors, strict=True):
                if error is None:
                    summary.merge(future.result())
            for error in errors:
                if error is not None:
                    raise error
        return summary


def poll_once(
    settings: Settings, feeds: Sequence[FeedConfig], *, force: bool = False
) -> PollSummary:
    """Poll the due ones of ``feeds`` once and publish what is new; the run's counts."""
    with PollRun(settings) as run:
        summary = run.poll(feeds, force=force)
    logger.info("poll summary %s", summary.line())
    return summary


_batch_observer: BatchCallback | None = None
_pipeline_metrics: PipelineMetrics = NO_METRICS


@contextmanager
def observe_pipeline(metrics: PipelineMetrics) -> Iterator[None]:
    """Make ``metrics`` the observer of every :class:`PollRun` and :func:`drain` started
    within the block that is not given one.

    How the CLI instruments a poll or a drain that runs inside a Prefect flow, whose
    parameters must stay serialisable.
    """
    global _pipeline_metrics
    previous, _pipeline_metrics = _pipeline_metrics, metrics
    try:
        yield
    finally:
        _pipeline_metrics = previous


@contextmanager
def observe_batches(callback: BatchCallback) -> Iterator[None]:
    """Make ``callback`` every :func:`drain` call's batch callback within the block.

    How the CLI shows progress and serves metrics for a drain that runs inside a Prefect
    flow, whose parameters must stay serialisable.
    """
    global _batch_observer
    previous, _batch_observer = _batch_observer, callback
    try:
        yield
    finally:
        _batch_observer = previous


def drain(
    settings: Settings,
    *,
    until_idle: bool = True,
    on_batch: BatchCallback | None = None,
    metrics: PipelineMetrics | None = None,
) -> IndexSummary:
    """Index what waits in the buffer into the store (forever unless ``until_idle``)."""
    on_batch = on_batch if on_batch is not None else _batch_observer
    metrics = metrics if metrics is not None else _pipeline_metrics
    buffer = open_buffer(settings)
    try:
        store = open_store(settings)
        try:
            indexer = Indexer(
                buffer, store, settings.kafka, settings.indexer, on_batch=on_batch, metrics=metrics
            )
            return indexer.run(until_idle=until_idle)
        finally:
            store.close()
    finally:
        buffer.close()
