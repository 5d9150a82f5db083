"""The ``index_articles`` flow: :func:`newsflow.pipeline.drain` as a retried Prefect task."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import summary_artifact, transient_only
from newsflow import pipeline
from newsflow.settings import Settings, load_settings
from newsflow.summary import IndexSummary

__all__ = ["index_articles"]


@task(
    name="drain",
    retries=3,
    retry_delay_seconds=[5, 30, 120],
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)
def drain(settings: Settings) -> IndexSummary:
    return pipeline.drain(settings, until_idle=True)


@flow(name="index_articles", log_prints=False)
def index_articles(settings: Settings | None = None) -> dict[str, object]:
    """Index everything waiting in the buffer, then stop.

    ``settings`` default to the ``NEWSFLOW_*`` environment of the worker.
    """
    summary = drain(settings if settings is not None else load_settings())
    get_run_logger().info("index_articles summary %s", summary.line())
    summary_artifact("index_articles", summary.as_dict(), key="index-articles-summary")
    return summary.as_dict()
