"""The Elasticsearch store's settings, names and error translation; side-by-side
deployments on the real node (``integration``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from pydantic import ValidationError
from typer.testing import CliRunner

from connectors.elasticsearch import ElasticsearchStore
from newsflow.cli import app
from newsflow.errors import BackendUnavailable, ConfigError, PermanentError, TransientError
from newsflow.identity import content_hash, doc_id
from newsflow.settings import ElasticsearchSettings, Settings, index_name
from newsflow.stories import in_own_story
from schemas import Article, FeedState


def test_a_missing_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NEWSFLOW_ELASTICSEARCH_URL is not set"):
        ElasticsearchStore(ElasticsearchSettings(url=None))


def test_a_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NEWSFLOW_ELASTICSEARCH"):
        ElasticsearchStore(ElasticsearchSettings(url="127.0.0.1:9200"))


class _Bulk:
    """Stands in for the client's bulk call: every item answered with ``status``."""

    def __init__(self, status: int, error_type: str) -> None:
        self._item = {
            "index": {"status": status, "error": {"type": error_type, "reason": error_type}}
        }

    def bulk(self, operations: list[Any]) -> dict[str, Any]:
        return {"errors": True, "items": [self._item] * (len(operations) // 2)}

    def close(self) -> None:
        return None


def _put(client: _Bulk) -> None:
    store = ElasticsearchStore(ElasticsearchSettings(url=None), client)  # type: ignore[arg-type]
    store.put_feed_states([FeedState(feed_url="https://news.example.com/feed.rss")])


def test_a_feed_state_the_mapping_rejects_is_permanent() -> None:
    with pytest.raises(PermanentError, match="feed state not stored") as raised:
        _put(_Bulk(400, "strict_dynamic_mapping_exception"))
    assert not isinstance(raised.value, TransientError)


def test_a_throttled_feed_state_write_is_transient() -> None:
    with pytest.raises(BackendUnavailable, match="feed state not stored"):
        _put(_Bulk(429, "es_rejected_execution_exception"))


def test_every_name_derives_from_the_prefix_and_explicit_names_override() -> None:
    default = ElasticsearchSettings()
    assert (default.index, default.history_index, default.feeds_index) == (
        "news-articles",
        "news-articles-history",
        "newsflow-feeds",
    )
    acme = ElasticsearchSettings(prefix="acme-eu")
    assert (acme.index, acme.history_index, acme.feeds_index) == (
        "acme-eu-articles",
        "acme-eu-articles-history",
        "acme-eu-feeds",
    )
    assert ElasticsearchSettings(prefix="acme", feeds_index="legacy").feeds_index == "legacy"
    assert index_name("acme", "feeds_index") == "acme-feeds"


@pytest.mark.parametrize("prefix", ["news-articles", "a-articles-b", "newsflow", "Upper", "-x"])
def test_a_prefix_whose_names_could_overlap_another_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="prefix"):
        ElasticsearchSettings(prefix=prefix)


@pytest.mark.integration
def test_two_deployments_share_a_node_without_seeing_each_other(
    stack: dict[str, str], sample_article: Article
) -> None:
    run = uuid.uuid4().hex[:8]
    # The second prefix starts with the first: their template patterns still cannot overlap.
    first, second = (
        ElasticsearchStore(ElasticsearchSettings(url=stack["elasticsearch"], prefix=prefix))
        for prefix in (f"t{run}", f"t{run}-b")
    )
    try:
        first.ensure()
        second.ensure()  # a 400 (overlapping templates) before the prefix existed
        other = sample_article.model_copy(
            update={"doc_id": doc_id("https://x/other"), "url": "https://x/other"}
        )
        assert first.index_batch([sample_article]).indexed == 1
        assert second.index_batch([other]).indexed == 1
        first.put_feed_states([FeedState(feed_url="https://a/feed", consecutive_failures=1)])
        second.put_feed_states([FeedState(feed_url="https://b/feed", consecutive_failures=2)])
        first.refresh()
        second.refresh()
        for mine, theirs, store in (
            (sample_article, other, first),
            (other, sample_article, second),
        ):
            assert store.count() == 1
            assert store.get(mine.doc_id) is not None and store.get(theirs.doc_id) is None
            assert [a.doc_id for a in store.history(mine.doc_id)] == [mine.doc_id]
            assert store.history(theirs.doc_id) == []
            assert not any(check.failed for check in store.check(timeout=5))
        assert [s.feed_url for s in first.all_feed_states()] == ["https://a/feed"]
        assert [s.feed_url for s in second.all_feed_states()] == ["https://b/feed"]
    finally:
        first.close()
        second.close()
        client = Elasticsearch(stack["elasticsearch"])
        names = list(client.indices.get(index=f"t{run}-*", expand_wildcards="all"))
        client.indices.delete(index=names, ignore_unavailable=True)
        for prefix in (f"t{run}", f"t{run}-b"):
            client.indices.delete_index_template(name=f"{prefix}-articles-template")
        client.close()


def _revised(article: Article, minutes: int) -> Article:
    moment = article.fetched_at + timedelta(minutes=minutes)
    text = f"Revised {minutes} minutes later. " * 20
    return article.model_copy(
        update={
            "revision": Article.revision_of(moment),
            "fetched_at": moment,
            "text": text,
            "content_hash": content_hash(text),
        }
    )


@pytest.mark.integration
def test_after_a_reindex_an_update_is_still_one_document_and_the_newest_wins(
    stack_env: str, sample_article: Article
) -> None:
    settings = Settings().elasticsearch
    store = ElasticsearchStore(settings)
    client = Elasticsearch(settings.url)
    try:
        store.ensure()
        first, second, third = (_revised(sample_article, m) for m in (0, 10, 20))
        store.index_batch([second])

        result = CliRunner().invoke(app, ["reindex"])  # keeps the old index
        assert result.exit_code == 0, result.output
        assert "copied=1" in result.output
        assert list(client.indices.get_alias(name=settings.index)) == [f"{settings.index}-000002"]
        assert client.indices.exists(index=f"{settings.index}-000001")

        assert store.index_batch([first]).duplicates == 1  # the older revision still loses
        assert store.index_batch([third]).indexed == 1
        store.refresh()
        assert store.count() == 1
        current = store.get(sample_article.doc_id)
        assert current is not None and current.revision == third.revision

        done = store.reindex(delete_old=True)
        assert (done.new, done.copied) == (f"{settings.index}-000003", 1)
        assert not client.indices.exists(index=f"{settings.index}-000002")
        assert store.index_batch([second]).duplicates == 1
        store.refresh()
        assert store.count() == 1 and store.get(sample_article.doc_id) == in_own_story(current)

        # The history moves the same way; a replay adds no second entry.
        history = store.reindex(history=True)
        assert history.copied == 3  # the late older revision is history too
        assert store.index_batch([third]).duplicates == 1
        store.refresh()
        revisions = [a.revision for a in store.history(sample_article.doc_id)]
        assert revisions == [first.revision, second.revision, third.revision]
        assert not any(check.failed for check in store.check(timeout=5))
    finally:
        store.close()
        client.close()


@pytest.mark.integration
def test_the_doctor_fails_a_rolled_over_articles_alias_and_history_replays_stay_single(
    stack_env: str, sample_article: Article
) -> None:
    settings = Settings().elasticsearch
    store = ElasticsearchStore(settings)
    client = Elasticsearch(settings.url)
    try:
        store.ensure()
        store.index_batch([sample_article])
        client.indices.rollover(alias=settings.index)  # what an ILM policy would do
        client.indices.rollover(alias=settings.history_index)
        checks = {check.name: check for check in store.check(timeout=5)}
        alias = checks[f"elasticsearch alias {settings.index}"]
        assert alias.failed and "newsflow reindex" in alias.detail
        assert not checks[f"elasticsearch alias {settings.history_index}"].failed
        store.index_batch([sample_article])  # a replay after the history rolled over
        store.refresh()
        history = store.history(sample_article.doc_id)
        assert [a.revision for a in history] == [sample_article.revision]
    finally:
        store.close()
        client.close()
