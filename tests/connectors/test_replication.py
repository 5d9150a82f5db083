"""Replication chosen from the cluster's size: Kafka topics and Elasticsearch indices."""

from __future__ import annotations

import pytest

from connectors import elasticsearch as es
from connectors.kafka import Replication, connection_options, replication
from newsflow.errors import ConfigError
from newsflow.settings import ElasticsearchSettings, KafkaSettings


@pytest.mark.parametrize(
    ("brokers", "expected"),
    [
        (1, Replication(1, 1)),
        (2, Replication(2, 2)),
        (3, Replication(3, 2)),
        (5, Replication(3, 2)),
    ],
)
def test_topic_replication_defaults_follow_the_broker_count(
    brokers: int, expected: Replication
) -> None:
    assert replication(KafkaSettings(), brokers) == expected


def test_explicit_topic_replication_wins_and_is_checked() -> None:
    settings = KafkaSettings(replication_factor=2, min_insync_replicas=1)
    assert replication(settings, 3) == Replication(2, 1)
    assert replication(KafkaSettings(replication_factor=3), 5) == Replication(3, 2)
    with pytest.raises(ConfigError, match="exceeds the 1 broker"):
        replication(KafkaSettings(replication_factor=3), 1)
    with pytest.raises(ConfigError, match="MIN_INSYNC_REPLICAS 3 exceeds"):
        replication(KafkaSettings(replication_factor=2, min_insync_replicas=3), 3)


def test_every_bootstrap_server_reaches_the_client() -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:44092, 127.0.0.1:44094,127.0.0.1:44096")
    assert connection_options(settings)["bootstrap_servers"] == [
        "127.0.0.1:44092",
        "127.0.0.1:44094",
        "127.0.0.1:44096",
    ]


@pytest.mark.parametrize(("nodes", "expected"), [(1, (0, 1)), (2, (1, 1)), (3, (1, 1))])
def test_index_replicas_default_to_one_on_a_cluster(nodes: int, expected: tuple[int, int]) -> None:
    assert es.replication(ElasticsearchSettings(), nodes) == expected


def test_explicit_index_replicas_and_active_shards() -> None:
    assert es.replication(ElasticsearchSettings(replicas=2), 3) == (2, 2)
    assert es.replication(ElasticsearchSettings(replicas=0), 3) == (0, 1)
    two_of_two = ElasticsearchSettings(replicas=1, wait_for_active_shards=2)
    assert es.replication(two_of_two, 3) == (1, 2)
    with pytest.raises(ConfigError, match="exceeds the 1 copies"):
        es.replication(ElasticsearchSettings(replicas=0, wait_for_active_shards=2), 3)


def test_a_comma_separated_url_gives_the_client_every_node() -> None:
    urls = "http://127.0.0.1:44200,http://127.0.0.1:44201, http://127.0.0.1:44202"
    assert es.node_urls(urls) == [
        "http://127.0.0.1:44200",
        "http://127.0.0.1:44201",
        "http://127.0.0.1:44202",
    ]
    client = es._client_for(ElasticsearchSettings(url=urls))
    try:
        hosts = sorted(node.port for node in client.transport.node_pool.all())
        assert hosts == [44200, 44201, 44202]
    finally:
        client.close()
