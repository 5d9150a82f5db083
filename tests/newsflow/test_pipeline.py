"""The whole pipeline as a plain library, on the embedded backends, without Prefect."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from connectors import open_store
from newsflow.feedlist import load_feeds
from newsflow.identity import canonical_url, doc_id
from newsflow.pipeline import PollRun, drain, poll_once, select_feeds
from newsflow.settings import Settings
from schemas import FeedConfig
from tests.support.site import FIXTURE_SITE, Site

MANIFEST = tomllib.loads((FIXTURE_SITE / "MANIFEST.toml").read_text(encoding="utf-8"))
INGESTED = [page for page in MANIFEST["pages"] if not page["skip"]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = Settings(data_dir=tmp_path / "data")
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"bootstrap_servers": None}),
            "elasticsearch": base.elasticsearch.model_copy(update={"url": None}),
            "fetch": base.fetch.model_copy(
                update={"allow_private_networks": True, "per_host_delay": 0.0}
            ),
            "indexer": base.indexer.model_copy(update={"poll_timeout": 0.2}),
            "extract": base.extract.model_copy(update={"workers": 2}),
        }
    )


@pytest.fixture
def feeds(site: Site, tmp_path: Path) -> list[FeedConfig]:
    path = tmp_path / "feeds.toml"
    path.write_text(site.read("feeds.toml"), encoding="utf-8")
    return select_feeds(load_feeds(path), None)


def test_poll_then_drain_indexes_every_article_once_without_prefect(
    site: Site, settings: Settings, feeds: list[FeedConfig]
) -> None:
    summary = poll_once(settings, feeds, force=True)
    assert summary.published == len(INGESTED)
    assert summary.failed == 1  # garbage.xml is not a feed
    assert summary.skipped["robots"] == 1 and summary.skipped["too_short"] == 1

    indexed = drain(settings)
    assert indexed.indexed == len(INGESTED) and indexed.dead_lettered == 0
    store = open_store(settings)
    try:
        assert store.count() == len(INGESTED)
        for page in INGESTED:
            assert store.get(doc_id(canonical_url(site.url(page["path"])))) is not None
        # Feed state moved on: the second poll sees every feed unchanged or not modified.
        assert {s.feed_url for s in store.all_feed_states()} == {f.url for f in feeds}
    finally:
        store.close()

    again = poll_once(settings, feeds, force=True)
    assert again.published == 0 and again.new == 0
    assert drain(settings).consumed == 0


def test_one_poll_run_serves_several_cycles(
    site: Site, settings: Settings, feeds: list[FeedConfig]
) -> None:
    with PollRun(settings) as run:
        first = run.poll(feeds, force=True)
        run.new_cycle()
        second = run.poll(feeds, force=True)
    assert first.published == len(INGESTED)
    # The feeds have not changed since: they answer 304, nothing is planned again.
    assert second.not_modified == len(feeds) - 1 and second.published == 0
    assert drain(settings).indexed == len(INGESTED)


def test_a_poll_run_refuses_use_outside_its_block(settings: Settings) -> None:
    run = PollRun(settings)
    with pytest.raises(RuntimeError, match="outside"):
        run.poll_feed(FeedConfig(url="http://127.0.0.1:9/feed.xml"), None)
