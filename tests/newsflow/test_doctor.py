"""``newsflow doctor`` on the real stack, on the embedded backends and against Prefect."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from typer.testing import CliRunner

from connectors import open_buffer, open_store
from connectors.sqlite_buffer import SqliteBuffer
from newsflow.cli import app
from newsflow.doctor import Check, run_checks
from newsflow.publish import encode
from newsflow.settings import Settings
from schemas import Article


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def _doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, ["doctor", "--timeout", "5", *args], env=env)
    return result.exit_code, result.stdout.splitlines(), result.stderr


@pytest.fixture
def embedded_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Embedded backends under tmp_path, whatever the environment pointed at."""
    for name in list(os.environ):
        if name.startswith("NEWSFLOW_") or name == "PREFECT_API_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def _set_up(settings: Settings) -> None:
    buffer, store = open_buffer(settings), open_store(settings)
    try:
        buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
        store.ensure()
    finally:
        buffer.close()
        store.close()


def test_embedded_backends_not_created_yet_fail_with_a_line_each(embedded_env: Path) -> None:
    code, lines, stderr = _doctor()
    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 2
    assert "embedded buffer" in failed[0] and "buffer.sqlite3 does not exist" in failed[0]
    assert "embedded store" in failed[1] and "newsflow index" in failed[1]
    assert any(line.startswith("skip embedded topic news.articles ") for line in lines)
    assert "2 check(s) failed" in stderr
    assert not embedded_env.exists()  # the doctor looks; it creates nothing


def test_embedded_backends_set_up_pass_and_report_the_lag(
    embedded_env: Path, sample_article: Article
) -> None:
    settings = Settings()
    _set_up(settings)
    buffer = open_buffer(settings)
    try:
        buffer.publish(settings.kafka.topic, [encode(sample_article)])
    finally:
        buffer.close()
    code, lines, _ = _doctor()
    assert code == 0, lines
    checks = _by_name(run_checks(settings))
    assert checks["embedded buffer"].status == "ok" and "WAL" in checks["embedded buffer"].detail
    assert checks["embedded topic news.articles.dlq"].status == "ok"
    lag = checks["embedded lag newsflow-indexer"]
    assert lag.detail.startswith("total=1 (") and "not committed yet" in lag.detail
    assert checks["embedded store"].detail.endswith("0 article(s), 0 feed state(s)")
    assert checks["prefect api"].status == "skip"


def test_an_embedded_topic_with_another_partition_count_fails(embedded_env: Path) -> None:
    embedded_env.mkdir()
    SqliteBuffer(embedded_env / "buffer.sqlite3", partitions=2).ensure_topics(["news.articles"])
    checks = _by_name(run_checks(Settings()))
    assert checks["embedded topic news.articles"].failed
    assert "has 2 partitions" in checks["embedded topic news.articles"].detail
    assert checks["embedded topic news.articles.dlq"].detail.startswith("missing")


def test_a_file_that_is_not_a_database_fails(embedded_env: Path) -> None:
    embedded_env.mkdir()
    (embedded_env / "store.sqlite3").write_bytes(b"not a database at all" * 100)
    check = _by_name(run_checks(Settings()))["embedded store"]
    assert check.failed and "cannot be read" in check.detail


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_prefect_api_fails_the_doctor(embedded_env: Path) -> None:
    _set_up(Settings())
    url = f"http://127.0.0.1:{_closed_port()}/api"
    code, lines, stderr = _doctor(env={"PREFECT_API_URL": url})
    assert code == 1
    [failed] = [line for line in lines if line.startswith("FAIL")]
    assert "prefect api" in failed and f"{url}/health unreachable" in failed
    assert "1 check(s) failed" in stderr


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        ok = self.path == "/api/health"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"true" if ok else b"")

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def prefect_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def test_a_healthy_prefect_api_passes(embedded_env: Path, prefect_api: str) -> None:
    check = _by_name(run_checks(Settings(), prefect_api_url=prefect_api))["prefect api"]
    assert check.status == "ok"
    answering_404 = prefect_api.removesuffix("/api")
    check = _by_name(run_checks(Settings(), prefect_api_url=answering_404))["prefect api"]
    assert check.failed and "HTTP 404" in check.detail


@pytest.mark.integration
def test_the_real_stack_before_and_after_set_up(
    stack_env: str, monkeypatch: pytest.MonkeyPatch, sample_article: Article
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = Settings()
    kafka, es = settings.kafka, settings.elasticsearch

    code, lines, _ = _doctor()
    assert code == 1
    before = _by_name(run_checks(settings, timeout=5))
    assert before["kafka"].status == "ok"
    assert before["elasticsearch"].status == "ok"
    assert before[f"kafka topic {kafka.topic}"].failed
    assert before[f"kafka topic {kafka.topic}"].detail.startswith("missing")
    assert before[f"kafka topic {kafka.dlq_topic}"].failed
    assert before[f"kafka lag {kafka.consumer_group}"].status == "skip"
    assert before["elasticsearch template"].failed
    assert before[f"elasticsearch alias {es.index}"].failed
    assert before[f"elasticsearch alias {es.history_index}"].failed
    assert before[f"elasticsearch index {es.feeds_index}"].failed
    assert sum(line.startswith("FAIL") for line in lines) == 6

    _set_up(settings)
    buffer = open_buffer(settings)
    try:
        buffer.publish(kafka.topic, [encode(sample_article)])
    finally:
        buffer.close()
    code, lines, stderr = _doctor()
    assert code == 0, (lines, stderr)
    after = _by_name(run_checks(settings, timeout=5))
    assert after[f"kafka topic {kafka.topic}"].detail == (
        "3 partitions, replication 1, min.insync.replicas 1"
    )
    assert after[f"kafka lag {kafka.consumer_group}"].detail.startswith("total=1 (p0=")
    assert after[f"elasticsearch alias {es.index}"].detail.startswith(
        f"-> {es.index}-000001 (write)"
    )
    assert after[f"elasticsearch alias {es.history_index}"].status == "ok"
    assert after["elasticsearch template"].detail.endswith(
        f"covers {es.index}-*, {es.history_index}-*"
    )


@pytest.mark.integration
def test_wrong_partition_counts_and_an_index_in_place_of_the_alias_fail(
    stack_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings()
    _set_up(settings)
    monkeypatch.setenv("NEWSFLOW_KAFKA_PARTITIONS", "4")
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_HISTORY_INDEX", f"{stack_env}-plain")
    client = Elasticsearch(Settings().elasticsearch.url)
    try:
        client.indices.create(index=f"{stack_env}-plain")
        checks = _by_name(run_checks(Settings(), timeout=5))
    finally:
        client.indices.delete(index=f"{stack_env}-plain")
        client.close()
    topic = checks[f"kafka topic {settings.kafka.topic}"]
    assert topic.failed and "has 3 partitions, NEWSFLOW_KAFKA_PARTITIONS is 4" in topic.detail
    alias = checks[f"elasticsearch alias {stack_env}-plain"]
    assert alias.failed and "is an index, not an alias" in alias.detail
    assert checks["elasticsearch template"].failed  # it does not cover the new history name
