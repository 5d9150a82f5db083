"""The index_articles flow drains the real Kafka topic into Elasticsearch and stops."""

from __future__ import annotations

import pytest

from connectors import open_buffer, open_store
from flows.index_articles import index_articles
from newsflow.publish import publish
from newsflow.settings import Settings
from schemas import Article

pytestmark = pytest.mark.integration


def test_bounded_drain_indexes_what_is_waiting(stack_env: str, sample_article: Article) -> None:
    settings = Settings()
    buffer = open_buffer(settings)
    buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
    other = sample_article.model_copy(update={"doc_id": "e" * 32, "url": "https://x/other"})
    publish(buffer, settings.kafka.topic, [sample_article, other])
    buffer.close()

    summary = index_articles()
    assert summary["indexed"] == 2 and summary["consumed"] == 2
    assert index_articles()["consumed"] == 0, "offsets were committed"

    store = open_store(settings)
    store.refresh()
    assert store.count() == 2
    store.close()
