"""The cluster fixture: one 3-broker / 3-node stack per test module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reuse = os.environ.get("NEWSFLOW_TEST_CLUSTER_HOME")
    running = Cluster(Path(reuse) if reuse else tmp_path_factory.mktemp("cluster") / "home")
    if reuse:
        running.owned = False
        running.up()  # restarts what a previous test left dead; no-op otherwise
        yield running
        return
    try:
        running.up()
        yield running
    finally:
        running.down()


@pytest.fixture
def cluster_env(cluster: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """NEWSFLOW_* pointed at the cluster, names unique to this test; the run id."""
    run = uuid.uuid4().hex[:8]
    values = {
        "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "NEWSFLOW_KAFKA_TOPIC": f"c{run}.articles",
        "NEWSFLOW_KAFKA_DLQ_TOPIC": f"c{run}.articles.dlq",
        "NEWSFLOW_KAFKA_CONSUMER_GROUP": f"c{run}-indexer",
        "NEWSFLOW_KAFKA_PARTITIONS": "6",
        "NEWSFLOW_KAFKA_REQUEST_TIMEOUT_MS": "15000",
        "NEWSFLOW_KAFKA_MAX_POLL_INTERVAL_MS": "60000",
        # A killed indexer's partitions move after 10 s, not the default 45 s.
        "NEWSFLOW_KAFKA_SESSION_TIMEOUT_MS": "10000",
        "NEWSFLOW_ELASTICSEARCH_URL": cluster.es_urls,
        "NEWSFLOW_ELASTICSEARCH_PREFIX": f"c{run}",
        "NEWSFLOW_ELASTICSEARCH_SHARDS": "3",
        "NEWSFLOW_ELASTICSEARCH_REQUEST_TIMEOUT": "20",
        "NEWSFLOW_INDEXER_BATCH_SIZE": "50",
        "NEWSFLOW_INDEXER_IDLE_TIMEOUT": "20",
        "NEWSFLOW_INDEXER_RETRY_BACKOFF_MAX": "3",
        "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return run
