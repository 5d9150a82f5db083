"""The command line on the embedded backends: feeds, run, index, status, search, logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

import flows.poll_feeds  # noqa: F401 - Prefect sets up its logging now, not inside a test
from connectors import open_buffer, open_store
from newsflow import logs
from newsflow.cli import app
from newsflow.feedlist import load_feeds
from newsflow.publish import encode
from newsflow.settings import Settings
from schemas import Article
from tests.support.site import FIXTURE_SITE, Site

REPO = Path(__file__).resolve().parents[2]
MANIFEST = tomllib.loads((FIXTURE_SITE / "MANIFEST.toml").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _root_logger() -> Iterator[None]:
    """The CLI configures the root logger; give the next test the one it had."""
    root = logging.getLogger()
    handlers, level, configured = list(root.handlers), root.level, list(logs._configured)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._configured[:] = configured


@pytest.fixture
def embedded_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Embedded backends under tmp_path, whatever the environment pointed at."""
    for name in list(os.environ):
        if name.startswith("NEWSFLOW_") or name == "PREFECT_API_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _invoke(*args: str, code: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result.stdout, result.stderr


def _tsv(text: str) -> list[dict[str, str]]:
    header, *lines = text.splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def _pairs(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_feeds_add_list_remove(embedded_env: Path) -> None:
    _, stderr = _invoke(
        "feeds", "add", "https://news.example.com/politics.rss", "--name", "Politics",
        "--tag", "politics", "--tag", "us", "--interval", "15m", "--language", "en",
        "--no-robots",
    )  # fmt: skip
    assert "added https://news.example.com/politics.rss to feeds.toml" in stderr
    _invoke("feeds", "add", "https://news.example.com/sport.rss")
    stdout, _ = _invoke("feeds", "list")
    assert _tsv(stdout) == [
        {
            "url": "https://news.example.com/politics.rss",
            "name": "Politics",
            "enabled": "yes",
            "interval": "15m",
            "tags": "politics,us",
            "language": "en",
            "robots": "ignore",
        },
        {
            "url": "https://news.example.com/sport.rss",
            "name": "",
            "enabled": "yes",
            "interval": "default",
            "tags": "",
            "language": "",
            "robots": "default",
        },
    ]
    _, stderr = _invoke("feeds", "add", "https://NEWS.example.com/sport.rss", code=2)
    assert "already listed" in stderr
    _, stderr = _invoke("feeds", "add", "file:///etc/passwd", code=2)
    assert "not an http(s) feed URL" in stderr

    _invoke("feeds", "remove", "https://news.example.com/politics.rss")
    assert [f.url for f in load_feeds(embedded_env / "feeds.toml")] == [
        "https://news.example.com/sport.rss"
    ]
    _, stderr = _invoke("feeds", "remove", "https://news.example.com/politics.rss", code=2)
    assert "not listed" in stderr


def test_the_feeds_file_comes_from_the_option_or_the_environment(
    embedded_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _invoke("feeds", "add", "https://a.example/feed", "--feeds", "lists/mine.toml")
    monkeypatch.setenv("NEWSFLOW_FEEDS_FILE", str(embedded_env / "lists" / "mine.toml"))
    stdout, _ = _invoke("feeds", "list")
    assert [row["url"] for row in _tsv(stdout)] == ["https://a.example/feed"]
    monkeypatch.delenv("NEWSFLOW_FEEDS_FILE")
    _, stderr = _invoke("feeds", "list", code=2)
    assert "no feeds file" in stderr and "newsflow feeds add" in stderr


def _opml(site_base: str, directory: Path) -> Path:
    path = directory / "subscriptions.opml"
    text = (FIXTURE_SITE / "feeds.opml").read_text(encoding="utf-8")
    path.write_text(text.replace("{{BASE}}", site_base), encoding="utf-8")
    return path


def test_feeds_import_reports_counts_and_skips_known_feeds(embedded_env: Path) -> None:
    opml = _opml("http://127.0.0.1:8000", embedded_env)
    _invoke("feeds", "add", "http://127.0.0.1:8000/feeds/politics.rss")
    stdout, _ = _invoke("feeds", "import", str(opml))
    assert _pairs(stdout) == {"read": "6", "added": "5", "already_listed": "1"}
    stdout, _ = _invoke("feeds", "import", str(opml))
    assert _pairs(stdout) == {"read": "6", "added": "0", "already_listed": "6"}
    _, stderr = _invoke("feeds", "import", str(embedded_env / "missing.opml"), code=2)
    assert "does not exist" in stderr


def test_search_json_after_indexing_a_sample_article(
    embedded_env: Path, sample_article: Article
) -> None:
    settings = Settings()
    buffer = open_buffer(settings)
    try:
        buffer.ensure_topics([settings.kafka.topic, settings.kafka.dlq_topic])
        buffer.publish(settings.kafka.topic, [encode(sample_article)])
    finally:
        buffer.close()
    stdout, _ = _invoke("index", "--until-idle")
    assert _pairs(stdout)["indexed"] == "1"
    stdout, _ = _invoke("search", "senate budget", "--json")
    [hit] = [json.loads(line) for line in stdout.splitlines()]
    assert hit["doc_id"] == sample_article.doc_id
    assert hit["title"] == "Senate passes the budget"
    assert hit["published_at"] == "2024-05-01T12:30:00+00:00"
    assert "[[" in hit["snippet"]
    stdout, _ = _invoke("search", "nothing like this", "--json")
    assert stdout == ""


def test_json_logs_are_one_object_per_line(embedded_env: Path) -> None:
    environment = {**os.environ}
    completed = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "--log-format", "json", "index", "--until-idle"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    entries = [json.loads(line) for line in completed.stderr.splitlines()]
    assert entries, completed.stderr
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert {"connectors.sqlite_buffer", "connectors.sqlite_store"} <= {
        entry["logger"] for entry in entries
    }
    assert any(entry["message"].startswith("created topic=news.articles") for entry in entries)
    assert _pairs(completed.stdout)["consumed"] == "0"  # the summary stays on stdout

    environment["NEWSFLOW_LOG_FORMAT"] = "json"
    completed = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "index", "--until-idle", "--metrics-port", "0"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [announced] = [
        entry
        for entry in map(json.loads, completed.stderr.splitlines())
        if entry["message"].startswith("serving metrics on")
    ]
    assert announced["metrics_url"].startswith("http://127.0.0.1:")  # an extra of its own


def test_an_unknown_log_format_is_a_usage_error(embedded_env: Path) -> None:
    result = CliRunner().invoke(app, ["--log-format", "xml", "doctor"])
    assert result.exit_code == 2
    assert "xml" in result.stderr


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.parametrize("mode", ["direct", "prefect"])
def test_run_index_status_doctor_end_to_end(
    embedded_env: Path, site: Site, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The same commands, run directly (no PREFECT_API_URL) or as Prefect flow runs."""
    prefect = ["--prefect"] if mode == "prefect" else []
    monkeypatch.setenv("NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("NEWSFLOW_FETCH_PER_HOST_DELAY", "0")
    textfile = embedded_env / "textfile" / "newsflow.prom"
    monkeypatch.setenv("NEWSFLOW_METRICS_TEXTFILE", str(textfile))
    _invoke("feeds", "import", str(_opml(site.base, embedded_env)))

    stdout, stderr = _invoke("run", "--once", "--feeds", "feeds.toml", *prefect)
    assert ("not recorded in Prefect" in stderr) is (mode == "direct")
    polled = _pairs(stdout)
    assert int(polled["published"]) > 0
    samples = _samples(textfile.read_text())
    assert samples[("newsflow_poll_feeds_last_run", (("count", "published"),))] == int(
        polled["published"]
    )
    assert samples[("newsflow_poll_feeds_last_run_success", ())] == 1

    stdout, _ = _invoke("index", "--until-idle", *prefect)
    assert _pairs(stdout)["indexed"] == polled["published"]

    stdout, _ = _invoke("feeds", "status")
    rows = {row["feed"]: row for row in _tsv(stdout)}
    politics = rows[site.url("feeds/politics.rss")]
    assert politics["health"] == "ok"
    assert politics["failures"] == "0" and politics["last_error"] == ""
    assert politics["last_success"] and politics["next_poll"]
    expected = [p for p in MANIFEST["pages"] if not p["skip"] and p["feed"] == "feeds/politics.rss"]
    assert int(politics["articles"]) == int(politics["last_24h"]) == len(expected)
    assert 0 <= float(politics["no_date"]) <= 1
    missing = rows[site.url("feeds/legacy-opinion.rss")]
    assert missing["health"] == "failing"
    assert missing["failures"] == "1" and "404" in missing["last_error"]
    assert missing["articles"] == "0" and missing["no_author"] == ""
    store = open_store(Settings())
    try:
        assert sum(int(row["articles"]) for row in rows.values()) == store.count()
    finally:
        store.close()

    stdout, _ = _invoke("doctor")
    assert "ok   embedded lag newsflow-indexer" in stdout
    assert "total=0" in stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [("NEWSFLOW_FETCH_DEADLINE", "abc"), ("NEWSFLOW_INDEXER_BATCH_SIZE", "-5")],
)
@pytest.mark.parametrize("command", [["run", "--once", "--feeds", "feeds.toml"], ["index"]])
def test_an_invalid_setting_is_one_line_naming_the_variable(
    embedded_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    command: list[str],
) -> None:
    (embedded_env / "feeds.toml").write_text('[[feeds]]\nurl = "http://127.0.0.1:9/x"\n')
    monkeypatch.setenv(variable, value)
    _, stderr = _invoke(*command, code=2)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:") and variable in lines[0]


def _deep_opml(path: Path, levels: int) -> Path:
    nested = '<outline text="folder">' * levels + "</outline>" * levels
    path.write_text(
        f'<?xml version="1.0"?><opml version="2.0"><head/><body>{nested}'
        '<outline text="f" xmlUrl="https://news.example.com/f.rss"/></body></opml>',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    "command", [["feeds", "import", "deep.opml"], ["run", "--once", "--feeds", "deep.opml"]]
)
def test_a_deeply_nested_opml_file_is_one_error_line(
    embedded_env: Path, command: list[str]
) -> None:
    _deep_opml(embedded_env / "deep.opml", 5000)
    _, stderr = _invoke(*command, code=2)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "deep.opml" in errors[0] and "nested" in errors[0], stderr
    assert "Traceback" not in stderr


def test_a_store_path_that_cannot_be_opened_is_one_error_line(embedded_env: Path) -> None:
    (embedded_env / "feeds.toml").write_text('[[feeds]]\nurl = "http://127.0.0.1:9/x"\n')
    (embedded_env / "data" / "buffer.sqlite3").mkdir(parents=True)  # a directory, no file
    _, stderr = _invoke("run", "--once", "--feeds", "feeds.toml", code=2)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "buffer.sqlite3" in errors[0], stderr
    assert "NEWSFLOW_DATA_DIR" in errors[0] and "Traceback" not in stderr


def test_feeds_status_shows_pending_retries_given_up_and_bozo_feeds(
    embedded_env: Path, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSFLOW_FETCH_ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("NEWSFLOW_FETCH_PER_HOST_DELAY", "0")
    textfile = embedded_env / "newsflow.prom"
    monkeypatch.setenv("NEWSFLOW_METRICS_TEXTFILE", str(textfile))
    monkeypatch.setenv("NEWSFLOW_FEED_PAGE_RETRY_BASE", "0.001")
    site.set("business/coffee-prices-jsonld.html", "<h1>busy</h1>", status=503)
    _invoke("feeds", "add", site.url("feeds/business.rss"))
    _invoke("feeds", "add", site.url("feeds/broken.rss"))
    stdout, _ = _invoke("run", "--once", "--feeds", "feeds.toml")
    assert _pairs(stdout)["parsed_with_errors"] == "1"
    samples = _samples(textfile.read_text())
    assert samples[("newsflow_poll_feeds_last_run", (("count", "parsed_with_errors"),))] == 1
    for count in ("retried", "recovered", "given_up", "rechecked", "recheck_changed"):
        assert ("newsflow_poll_feeds_last_run", (("count", count),)) in samples

    stdout, _ = _invoke("feeds", "status")
    rows = {row["feed"]: row for row in _tsv(stdout)}
    business, broken = rows[site.url("feeds/business.rss")], rows[site.url("feeds/broken.rss")]
    assert (business["health"], business["retries"], business["given_up"]) == ("ok", "1", "0")
    assert broken["health"] == "parsed with errors"
    stdout, _ = _invoke("feeds", "status", "--by-domain")
    (domain,) = _tsv(stdout)  # every page of the fixture site is on one host
    assert domain["domain"] == urlsplit(site.url("")).hostname
    assert int(domain["pages"]) == int(business["pages"]) + int(broken["pages"]) > 0

    # Due again at once (a tiny backoff), still failing, and past the give-up horizon (0 s
    # here): given up, and kept in view.
    monkeypatch.setenv("NEWSFLOW_FEED_PAGE_RETRY_GIVE_UP", "0")
    stdout, _ = _invoke("run", "--once", "--force", "--feeds", "feeds.toml")
    polled = _pairs(stdout)
    assert (polled["retried"], polled["given_up"], polled["not_modified"]) == ("1", "1", "2")
    stdout, _ = _invoke("feeds", "status")
    rows = {row["feed"]: row for row in _tsv(stdout)}
    business, broken = rows[site.url("feeds/business.rss")], rows[site.url("feeds/broken.rss")]
    assert (business["retries"], business["given_up"]) == ("0", "1")
    assert broken["health"] == "parsed with errors"  # a 304 says nothing new
