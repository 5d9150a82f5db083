"""Shared fixtures: the local news site, the real stack's addresses, isolated settings."""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsflow.identity import content_hash, doc_id
from schemas import Article
from tests.support.site import Site, serve_site

# Prefect keeps its database and logs under PREFECT_HOME: never the developer's own. The
# home persists in .pytest_cache because a new database costs ~30 s of migrations.
_PREFECT_HOME = Path(__file__).resolve().parent.parent / ".pytest_cache" / "prefect-home"
_PREFECT_HOME.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("PREFECT_HOME", str(_PREFECT_HOME))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

KAFKA = os.environ.get("NEWSFLOW_TEST_KAFKA", "127.0.0.1:9092")
ELASTICSEARCH = os.environ.get("NEWSFLOW_TEST_ELASTICSEARCH", "http://127.0.0.1:9200")


@pytest.fixture(scope="session", autouse=True)
def _stop_prefect_temporary_server() -> Iterator[None]:
    """Stop Prefect's temporary API server while pytest still owns the output streams."""
    yield
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is not None:
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # send queued run logs before their server goes away
        server = server_module.SubprocessASGIServer()
        if server.running:
            server.stop()


@pytest.fixture
def site() -> Iterator[Site]:
    with serve_site() as running:
        yield running


def _kafka_up(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _elasticsearch_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """The real Kafka broker and Elasticsearch node; the test FAILS when they are down."""
    down = [
        name
        for name, up in (
            (f"Kafka at {KAFKA}", _kafka_up(KAFKA)),
            (f"Elasticsearch at {ELASTICSEARCH}", _elasticsearch_up(ELASTICSEARCH)),
        )
        if not up
    ]
    if down:
        pytest.fail(
            f"{' and '.join(down)} not reachable: start them with `deploy/local/stack up` "
            "(integration tests never skip)",
            pytrace=False,
        )
    return {"kafka": KAFKA, "elasticsearch": ELASTICSEARCH}


@pytest.fixture
def stack_env(
    stack: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """Point every NEWSFLOW_* setting at the real stack, with names unique to this test.

    The test's indices and topics are deleted afterwards: a node keeps at most 1000
    shards open, and a suite that left each test's indices behind would reach it.
    """
    run = uuid.uuid4().hex[:8]
    values = {
        "NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS": stack["kafka"],
        "NEWSFLOW_KAFKA_TOPIC": f"t{run}.articles",
        "NEWSFLOW_KAFKA_DLQ_TOPIC": f"t{run}.articles.dlq",
        "NEWSFLOW_KAFKA_CONSUMER_GROUP": f"t{run}-indexer",
        "NEWSFLOW_KAFKA_PARTITIONS": "3",
        "NEWSFLOW_ELASTICSEARCH_URL": stack["elasticsearch"],
        "NEWSFLOW_ELASTICSEARCH_INDEX": f"t{run}-articles",
        "NEWSFLOW_ELASTICSEARCH_HISTORY_INDEX": f"t{run}-history",
        "NEWSFLOW_ELASTICSEARCH_FEEDS_INDEX": f"t{run}-feeds",
        "NEWSFLOW_ELASTICSEARCH_REVISITS_INDEX": f"t{run}-revisits",
        "NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSFLOW_FETCH_PER_HOST_DELAY": "0",
        "NEWSFLOW_FETCH_PER_HOST_CONCURRENCY": "8",
        "NEWSFLOW_INDEXER_IDLE_TIMEOUT": "20",
        "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yield run
    _delete_test_data(stack, f"t{run}")


def _delete_test_data(stack: dict[str, str], prefix: str) -> None:
    """Best effort: the indices and topics whose names start with ``prefix``."""
    url = f"{stack['elasticsearch']}/_resolve/index/{prefix}*?expand_wildcards=all"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            found = json.load(response)
        names = [i["name"] for i in found.get("indices", [])]
        if names:
            request = urllib.request.Request(
                f"{stack['elasticsearch']}/{','.join(names)}", method="DELETE"
            )
            urllib.request.urlopen(request, timeout=30).close()
    except (OSError, ValueError):
        pass
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=stack["kafka"], request_timeout_ms=10_000)
    except Exception:  # noqa: BLE001 - clean-up is best effort
        return
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics)
    except Exception:  # noqa: BLE001, S110 - clean-up is best effort
        pass
    finally:
        admin.close()


@pytest.fixture
def sample_article() -> Article:
    """A valid article revision for tests that need one."""
    url = "https://news.example.com/politics/budget.html"
    text = "The Senate passed the budget late on Tuesday after a long debate. " * 5
    moment = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    return Article(
        doc_id=doc_id(url),
        revision=Article.revision_of(moment),
        url=url,
        source_url=url + "?utm_source=rss",
        title="Senate passes the budget",
        text=text,
        authors=["Jane Doe"],
        published_at=moment,
        fetched_at=moment,
        language="en",
        source="Example News",
        domain="news.example.com",
        feed_url="https://news.example.com/feeds/politics.rss",
        tags=["politics"],
        content_hash=content_hash(text),
    )
