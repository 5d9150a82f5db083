"""The ``index_articles`` flow: a bounded drain of the buffer into the store."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from connectors import open_buffer, open_store
from flows import transient_only
from newsflow.indexer import Indexer
from newsflow.settings import Settings
from newsflow.summary import IndexSummary

__all__ = ["index_articles"]


@task(
    name="drain",
    retries=3,
    retry_delay_seconds=[5, 30, 120],
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
)
def drain() -> IndexSummary:
    settings = Settings()
    buffer = open_buffer(settings)
    store = open_store(settings)
    try:
        return Indexer(buffer, store, settings.kafka, settings.indexer).run(until_idle=True)
    finally:
        buffer.close()
        store.close()


@flow(name="index_articles", log_prints=False)
def index_articles() -> dict[str, object]:
    """Index everything waiting in the buffer, then stop."""
    summary = drain()
    get_run_logger().info("index_articles summary %s", summary.line())
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.as_dict().items())
    create_markdown_artifact(
        f"### index_articles\n\n| count | value |\n|---|---|\n{rows}\n",
        key="index-articles-summary",
    )
    return summary.as_dict()
