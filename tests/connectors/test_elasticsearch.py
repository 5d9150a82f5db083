"""The Elasticsearch store's settings and error translation (no node needed)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.elasticsearch import ElasticsearchStore
from newsflow.errors import BackendUnavailable, ConfigError, PermanentError, TransientError
from newsflow.settings import ElasticsearchSettings
from schemas import FeedState


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
