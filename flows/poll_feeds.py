"""The ``poll_feeds`` flow: feeds -> fetch -> extract -> publish.

One task per feed (never per article): it polls the feed, plans which entries need their
page, collects them through the run's shared HTTP client and extraction pool, and
publishes the new revisions. Feed-level failures are feed health, not task failures;
a task fails (and is retried) only when the buffer or the store is unreachable.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from connectors import Buffer, Store, open_buffer, open_store
from flows import transient_only
from newsflow.collect import Claims, collect, plan
from newsflow.extract import Extractor
from newsflow.feedlist import load_feeds
from newsflow.feeds import poll_feed
from newsflow.fetch import Fetcher
from newsflow.progress import reporter
from newsflow.publish import publish
from newsflow.settings import Settings
from newsflow.summary import PollSummary
from schemas import FeedConfig, FeedState

__all__ = ["FETCH_LIMIT", "poll_feeds", "select_feeds"]

FETCH_LIMIT = "newsflow-fetch"
"""Prefect global concurrency limit a feed holds one slot of while its pages are fetched."""


def select_feeds(feeds: Sequence[FeedConfig], tags: Sequence[str] | None) -> list[FeedConfig]:
    """Enabled feeds, restricted to those carrying one of ``tags`` when given."""
    wanted = set(tags or [])
    return [f for f in feeds if f.enabled and (not wanted or wanted.intersection(f.tags))]


@task(
    name="poll_feed",
    task_run_name="poll {feed.url}",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)
def poll_feed_task(
    feed: FeedConfig,
    state: FeedState | None,
    *,
    settings: Settings,
    buffer: Buffer,
    store: Store,
    fetcher: Fetcher,
    extractor: Extractor,
    claims: Claims,
    force: bool,
    fetch_limit: str | None = None,
) -> PollSummary:
    counts = PollSummary()
    polled = poll_feed(feed, state, fetcher, settings.feed, force=force)
    if polled.status in ("not_due", "disabled"):
        counts.feeds_not_due += 1
        return counts
    counts.feeds_polled += 1
    counts.not_modified += polled.status in ("not_modified", "unchanged")
    counts.failed += polled.status == "failed"
    counts.entries_seen += len(polled.entries)
    entries = plan(polled.entries, store) if polled.entries else []
    counts.new += len(entries)
    if entries:
        progress = reporter()
        progress.add("fetch+extract", len(entries))
        # One slot per feed while its pages are fetched caps fetching across every run
        # on every worker; the run's own Fetcher still caps requests within the run.
        slot: AbstractContextManager[None] = (
            concurrency(fetch_limit) if fetch_limit else nullcontext()
        )
        with slot:
            articles, collected = collect(
                feed,
                entries,
                fetcher=fetcher,
                extractor=extractor,
                store=store,
                claims=claims,
                respect_robots=feed.respect_robots,
                on_page=lambda: progress.advance("fetch+extract"),
            )
        counts.merge(collected)
        try:
            counts.published += publish(buffer, settings.kafka.topic, articles)
        except Exception:
            claims.release([a.doc_id for a in articles])
            raise
    # Feed state moves on only once its articles are safe in the buffer.
    store.put_feed_states([polled.state])
    return counts


def _existing_limit(name: str | None) -> str | None:
    """``name`` if that global concurrency limit exists, else None (and one log line).

    Prefect skips a missing limit on every acquisition with a warning each time; asking
    once per run keeps a run without the limit (the CLI, a fresh server) quiet.
    """
    if not name:
        return None
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            get_run_logger().info(
                "global concurrency limit %s does not exist: fetching is not capped across runs",
                name,
            )
            return None
    return name


def _summary_markdown(summary: PollSummary) -> str:
    rows = "\n".join(f"| {key} | {value} |" for key, value in summary.as_dict().items())
    return f"### poll_feeds\n\n| count | value |\n|---|---|\n{rows}\n"


@flow(name="poll_feeds", log_prints=False)
def poll_feeds(
    feeds_path: str,
    tags: list[str] | None = None,
    force: bool = False,
    fetch_limit: str | None = FETCH_LIMIT,
) -> dict[str, object]:
    """Poll the due feeds listed in ``feeds_path`` (OPML, TOML or YAML) once.

    ``fetch_limit`` names the Prefect global concurrency limit each feed holds a slot of
    while its pages are fetched; a limit that does not exist caps nothing.
    """
    logger = get_run_logger()
    settings = Settings()
    feeds = select_feeds(load_feeds(Path(feeds_path)), tags)
    summary = PollSummary()
    buffer = open_buffer(settings)
    store = open_store(settings)
    try:
        buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
        store.ensure()
        states = store.feed_states([f.url for f in feeds])
        claims = Claims()
        limit = _existing_limit(fetch_limit)
        with Fetcher(settings.fetch) as fetcher, Extractor(settings.extract) as extractor:
            futures = [
                poll_feed_task.submit(
                    feed,
                    states.get(feed.url),
                    settings=settings,
                    buffer=buffer,
                    store=store,
                    fetcher=fetcher,
                    extractor=extractor,
                    claims=claims,
                    force=force,
                    fetch_limit=limit,
                )
                for feed in feeds
            ]
            for future in futures:
                summary.merge(future.result())
    finally:
        buffer.close()
        store.close()
    line = summary.line()
    logger.info("poll_feeds summary %s", line)
    create_markdown_artifact(
        _summary_markdown(summary),
        key="poll-feeds-summary",
        description=f"poll_feeds at {datetime.now(UTC).isoformat(timespec='seconds')}",
    )
    return summary.as_dict()
