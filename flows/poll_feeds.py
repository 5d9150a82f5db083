"""The ``poll_feeds`` flow: :class:`newsflow.pipeline.PollRun`, one Prefect task per feed.

The pipeline lives in :mod:`newsflow.pipeline`; this flow adds what Prefect is for: a
task per feed (never per article) that Prefect retries on transient errors only, a slot
of the global ``newsflow-fetch`` concurrency limit held while a feed's pages are fetched,
the run logger and a summary artifact. With ``NEWSFLOW_METRICS_PUSHGATEWAY`` set, the run
pushes its metrics there when it ends (a worker's flow run is a short-lived process that
no Prometheus could scrape).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner
from prometheus_client import CollectorRegistry

from flows import summary_artifact, transient_only
from newsflow.feedlist import load_feeds
from newsflow.metrics import PrometheusMetrics, push
from newsflow.pipeline import FetchSlot, PollRun, select_feeds
from newsflow.settings import Settings, load_settings
from newsflow.summary import PollSummary
from schemas import FeedConfig, FeedState

__all__ = ["FETCH_LEASE", "FETCH_LIMIT", "poll_feeds"]

FETCH_LIMIT = "newsflow-fetch"
"""Prefect global concurrency limit a feed holds one slot of while its pages are fetched."""

FETCH_LEASE = 60.0
"""Seconds a fetch slot is leased for; the run renews the lease every 3/4 of it.

The lease is what gives back the slot of a run that died holding it (a worker host lost,
``kill -9``): the server's repossessor frees it once the lease has run out. Prefect's own
default is 300 s, long enough for a few killed runs to take every slot of the limit and
stall fetching on every worker for five minutes; 60 s is the shortest the server accepts.
"""


_LEASE_MIN, _LEASE_MAX = 60.0, 86400.0
"""The leases the Prefect server grants (its /increment-with-lease endpoint)."""


@task(
    name="poll_feed",
    task_run_name="poll {feed.url}",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)
def poll_feed_task(
    run: PollRun,
    feed: FeedConfig,
    state: FeedState | None,
    *,
    force: bool,
    fetch_limit: str | None = None,
    fetch_lease: float = FETCH_LEASE,
) -> PollSummary:
    if fetch_limit is None:
        return run.poll_feed(feed, state, force=force)
    limit = fetch_limit

    def slot() -> AbstractContextManager[object]:
        return concurrency(limit, lease_duration=fetch_lease)

    fetch_slot: FetchSlot = slot
    return run.poll_feed(feed, state, force=force, fetch_slot=fetch_slot)


def _existing_limit(name: str | None) -> str | None:
    """``name`` if that global concurrency limit exists, else None (and one log line).

    Prefect skips a missing limit on every acquisition with a warning each time; asking
    once per run keeps a run without the limit (a fresh server) quiet.
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


@flow(name="poll_feeds", log_prints=False)
def poll_feeds(
    feeds_path: str,
    tags: list[str] | None = None,
    force: bool = False,
    fetch_limit: str | None = FETCH_LIMIT,
    settings: Settings | None = None,
    fetch_lease: float = FETCH_LEASE,
) -> dict[str, object]:
    """Poll the due feeds listed in ``feeds_path`` (OPML, TOML or YAML) once.

    ``fetch_limit`` names the Prefect global concurrency limit each feed holds a slot of
    while its pages are fetched; a limit that does not exist caps nothing. The slot is
    leased for ``fetch_lease`` seconds at a time (60 to 86400, see :data:`FETCH_LEASE`).
    ``settings`` default to the ``NEWSFLOW_*`` environment of the worker (a deployment's
    run).
    """
    if not _LEASE_MIN <= fetch_lease <= _LEASE_MAX:
        # The server refuses other leases, and would do so at each feed's first slot.
        raise ValueError(
            f"fetch_lease={fetch_lease:g}: a fetch slot's lease is {_LEASE_MIN:g} to "
            f"{_LEASE_MAX:g} seconds"
        )
    settings = settings if settings is not None else load_settings()
    feeds = select_feeds(load_feeds(Path(feeds_path)), tags)
    gateway = settings.metrics_pushgateway
    metrics = PrometheusMetrics(CollectorRegistry()) if gateway else None
    try:
        summary = _poll(settings, feeds, force, fetch_limit, fetch_lease, metrics)
    finally:
        if gateway and metrics is not None:
            try:
                push(metrics.registry, gateway, job="newsflow_poll_feeds")
            except OSError as exc:
                get_run_logger().warning("metrics not pushed to %s: %s", gateway, exc)
    get_run_logger().info("poll_feeds summary %s", summary.line())
    summary_artifact("poll_feeds", summary.as_dict(), key="poll-feeds-summary")
    return summary.as_dict()


def _poll(
    settings: Settings,
    feeds: list[FeedConfig],
    force: bool,
    fetch_limit: str | None,
    fetch_lease: float,
    metrics: PrometheusMetrics | None,
) -> PollSummary:
    summary = PollSummary()
    # As many feeds at once as a direct run polls (NEWSFLOW_FEED_CONCURRENCY), not one
    # thread per feed of the file.
    runner: ThreadPoolTaskRunner[PollSummary] = ThreadPoolTaskRunner(
        max_workers=settings.feed.concurrency
    )
    with PollRun(settings, metrics=metrics) as run, runner:
        states = run.feed_states(feeds)
        limit = _existing_limit(fetch_limit)
        futures: list[PrefectFuture[PollSummary]] = [
            runner.submit(
                poll_feed_task,
                {
                    "run": run,
                    "feed": feed,
                    "state": states.get(feed.url),
                    "force": force,
                    "fetch_limit": limit,
                    "fetch_lease": fetch_lease,
                },
            )
            for feed in feeds
        ]
        # Wait for every feed before raising one's failure: leaving the block closes the
        # HTTP client and the pool under the feeds still running.
        wait(futures)
        for future in futures:
            summary.merge(future.result())
    return summary
