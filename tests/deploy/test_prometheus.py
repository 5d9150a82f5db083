"""A real Prometheus scrapes a poller, an indexer and a Pushgateway; the alert rules load.

Prometheus, promtool and the Pushgateway are Debian's (``make system-deps``). The pipeline
runs on the embedded backends against the local fixture site, so only Prometheus is real
here; the ports come from the range this test owns (45000-45999).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from newsflow.feedlist import load_feeds
from newsflow.metrics import PrometheusMetrics, push
from newsflow.pipeline import PollRun
from newsflow.settings import Settings
from tests.support.site import Site

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_PORT, PUSHGATEWAY_PORT = 25090, 25091


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make system-deps)")
    return path


def test_the_alert_rules_are_valid() -> None:
    check = subprocess.run(
        [_tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 4 rules found" in check.stdout


def test_the_shipped_scrape_config_is_valid() -> None:
    config = REPO / "deploy" / "prometheus" / "prometheus.yml"
    check = subprocess.run(
        [_tool("promtool"), "check", "config", str(config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_alerts_fire_on_their_conditions() -> None:
    tests = REPO / "deploy" / "prometheus" / "alerts_test.yml"
    check = subprocess.run(
        [_tool("promtool"), "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        cwd=tests.parent,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    handle = log.open("w")
    return subprocess.Popen(
        argv, stdout=handle, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env
    )


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_http(url: str, process: subprocess.Popen[str], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer: {log.read_text()[-2000:]}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            _stop(process)


def _query(promql: str) -> list[dict[str, object]]:
    answer = httpx.get(
        f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query", params={"query": promql}, timeout=10
    ).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, object]] = answer["data"]["result"]
    return result


def _value(promql: str, timeout: float = 90) -> float:
    """The (first) value of ``promql`` once Prometheus has one that is > 0."""
    deadline = time.monotonic() + timeout
    while True:
        result = _query(promql)
        value = float(str(result[0]["value"][1])) if result else 0.0  # type: ignore[index]
        if value > 0 or time.monotonic() > deadline:
            return value
        time.sleep(1)


def _announced_port(process: subprocess.Popen[str], log: Path, timeout: float = 60) -> int:
    """The port a ``--metrics-port 0`` process says it serves on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            return int(found.group(1))
        assert process.poll() is None, log.read_text()
        time.sleep(0.2)
    raise AssertionError(f"no metrics endpoint announced: {log.read_text()[-2000:]}")


def _job(name: str, port: int) -> dict[str, object]:
    return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}


@pytest.mark.integration
def test_prometheus_scrapes_every_family(
    site: Site,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("NEWSFLOW_")]:
        monkeypatch.delenv(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env.update(
        NEWSFLOW_DATA_DIR=str(tmp_path / "data"),
        NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS="true",
        NEWSFLOW_FETCH_PER_HOST_DELAY="0",
    )
    env.pop("PREFECT_API_URL", None)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(site.read("feeds.toml"))

    pushgateway_log = tmp_path / "pushgateway.log"
    processes.append(
        _start(
            [
                _tool("prometheus-pushgateway"),
                f"--web.listen-address=127.0.0.1:{PUSHGATEWAY_PORT}",
            ],
            pushgateway_log,
        )
    )
    cli = [sys.executable, "-m", "newsflow.cli"]
    poller_log, indexer_log = tmp_path / "poller.log", tmp_path / "indexer.log"
    processes.append(
        _start(
            [*cli, "run", "-f", str(feeds), "--every", "5", "--metrics-port", "0"],
            poller_log,
            env,
        )
    )
    processes.append(_start([*cli, "index", "--metrics-port", "0"], indexer_log, env))
    poller_port = _announced_port(processes[1], poller_log)
    indexer_port = _announced_port(processes[2], indexer_log)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            _job("newsflow-poller", poller_port),
            _job("newsflow-indexer", indexer_port),
            {**_job("newsflow-pushgateway", PUSHGATEWAY_PORT), "honor_labels": True},
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus_log = tmp_path / "prometheus.log"
    processes.append(
        _start(
            [
                _tool("prometheus"),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
            ],
            prometheus_log,
        )
    )
    _wait_http(f"http://127.0.0.1:{PUSHGATEWAY_PORT}/-/ready", processes[0], pushgateway_log)
    _wait_http(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready", processes[3], prometheus_log)

    # A flow run's way: poll in a process of its own metrics, push them when done.
    settings = Settings(
        data_dir=tmp_path / "pushed",
        fetch={"allow_private_networks": True, "per_host_delay": 0},
    )
    pushed = PrometheusMetrics()
    with PollRun(settings, metrics=pushed) as run:
        run.poll([f for f in load_feeds(feeds) if f.enabled], force=True)
    push(pushed.registry, f"http://127.0.0.1:{PUSHGATEWAY_PORT}", "newsflow_poll_feeds")

    poller = '{job="newsflow-poller"}'
    families = {
        f"sum(newsflow_fetch_seconds_count{poller})": "page fetches",
        'sum(newsflow_fetch_seconds_count{job="newsflow-poller",status_class="2xx"})': "2xx",
        f"sum(newsflow_extract_seconds_count{poller})": "extractions",
        f"sum(newsflow_feed_polls_total{poller})": "feed polls",
        f"sum(newsflow_feed_poll_seconds_count{poller})": "feed poll latency",
        f"count(newsflow_feed_failing{poller})": "failing feeds",
        f"sum(newsflow_articles_published_total{poller})": "articles published",
        f"sum(newsflow_publish_seconds_count{poller})": "publish latency",
        f"count(newsflow_retry_set_size{poller})": "retry set by group",
        'sum(newsflow_extraction_quality_pages_total{job="newsflow-poller",flag="pages"})': (
            "extraction quality"
        ),
        'sum(newsflow_indexer_indexed_total{job="newsflow-indexer"})': "indexed",
        'sum(newsflow_indexer_bulk_seconds_count{job="newsflow-indexer"})': "bulk latency",
        'count(newsflow_indexer_consumer_lag{job="newsflow-indexer"})': "lag per partition",
        'sum(newsflow_articles_published_total{job="newsflow_poll_feeds"})': "pushed run",
    }
    missing = {what: promql for promql, what in families.items() if _value(promql) <= 0}
    assert not missing, (missing, poller_log.read_text()[-3000:], indexer_log.read_text()[-3000:])

    # Bounded labels: groups are first tags, never URLs; URLs only for failing feeds.
    groups = {str(r["metric"]["group"]) for r in _query("newsflow_feed_polls_total")}  # type: ignore[index]
    assert groups and not any("://" in g for g in groups), groups
    failing = {str(r["metric"]["feed"]) for r in _query("newsflow_feed_failing")}  # type: ignore[index]
    assert failing and all(f.startswith(site.base) for f in failing), failing

    rules = httpx.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/rules", timeout=10).json()
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert names == {
        "NewsflowIndexerLagGrowing",
        "NewsflowFeedFailing",
        "NewsflowDeadLetters",
        "NewsflowNothingPublished",
    }
