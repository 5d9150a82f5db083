"""`newsflow demo` end to end: Prefect flows, embedded buffer and store, no Kafka, no JVM."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rich.console import Console

from connectors import Store, open_store
from newsflow.demo import run_demo
from newsflow.demo.server import SITE_DIR
from newsflow.errors import ConfigError
from newsflow.identity import canonical_url, doc_id
from newsflow.settings import Settings
from schemas import Article, FeedState

MANIFEST = json.loads((SITE_DIR.parent / "manifest.json").read_text(encoding="utf-8"))
INDEXED = [page for page in MANIFEST["pages"] if page["outcome"] == "indexed"]
BOILERPLATE = [
    "Share on Facebook",
    "cookies",
    "Accept all",
    "All rights reserved",
    "Sign Me Up",
    "Listen to this article",
    "Leave a Reply",
    "Most Read",
]


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Kafka, no Elasticsearch: whatever the developer's shell says."""
    for name in ("NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS", "NEWSFLOW_ELASTICSEARCH_URL"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def store_in(data_dir: Path) -> Iterator[Store]:
    store = open_store(Settings(data_dir=data_dir))
    try:
        yield store
    finally:
        store.close()


def left_by_an_earlier_demo(data_dir: Path, sample_article: Article) -> None:
    """A data directory as an earlier demo run (on another port) leaves it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "demo.json").write_text('{"written_by": "newsflow demo"}\n', encoding="utf-8")
    with store_in(data_dir) as store:
        store.ensure()
        store.put_feed_states([FeedState(feed_url="http://127.0.0.1:1/feeds/politics.rss")])
        store.index_batch([sample_article])


def test_the_demo_runs_offline_and_shows_what_it_promises(
    embedded: None, tmp_path: Path, sample_article: Article
) -> None:
    data_dir = tmp_path / "data"
    left_by_an_earlier_demo(data_dir, sample_article)
    out = io.StringIO()

    result = run_demo(Settings(), Console(file=out, width=120), data_dir=data_dir)

    report = out.getvalue()
    assert result.ok, report
    first, second = result.cycles
    # Everything lands once: the earlier demo's leftovers are gone, the syndicated copy
    # and the tracking-parameter links fold into their originals.
    assert first.index.indexed >= 30
    assert result.unique_articles == len(INDEXED)
    assert result.documents == first.documents == second.documents == len(INDEXED)
    assert first.poll["published"] == len(INDEXED)
    assert first.poll["duplicates"] == 3
    assert first.poll["skipped.robots"] == 1 and first.poll["skipped.too_short"] == 1
    # The second poll: unchanged feeds answer 304; only the changed article is published.
    assert second.poll["not_modified"] == len(MANIFEST["feeds"]) - 2
    assert second.poll["fetched"] == 1 and second.poll["published"] == 1
    assert second.index.indexed == 1
    # The broken feed is a counted failure in both polls.
    assert first.poll["failed"] == 1 and second.poll["failed"] == 1

    site = result.site_url

    def page_id(path: str) -> str:
        return doc_id(canonical_url(f"{site}/{path}"))

    with store_in(data_dir) as store:
        assert store.count() == len(INDEXED)
        assert store.get(doc_id(sample_article.url)) is None
        changed = MANIFEST["changed"]
        history = store.history(page_id(changed["path"]))
        assert len(history) == 2 and history[0].revision < history[1].revision
        current = store.get(page_id(changed["path"]))
        assert current is not None and changed["update"] in current.text
        assert changed["update"] not in history[0].text
        (copy,) = [p for p in MANIFEST["pages"] if p["outcome"] == "syndicated"]
        assert store.get(page_id(copy["path"])) is None
        assert store.get(page_id(copy["canonical"])) is not None
        for page in INDEXED:
            article = store.get(page_id(page["path"]))
            assert article is not None, page["path"]
            assert article.title == page["title"]
            assert page["first_paragraph"] in article.text, page["path"]
            for boilerplate in BOILERPLATE:
                assert boilerplate not in article.text, (page["path"], boilerplate)
        states = {state.feed_url: state for state in store.all_feed_states()}
        assert states[f"{site}/feeds/opinion.rss"].last_status == "failed"
        assert states[f"{site}/feeds/opinion.rss"].consecutive_failures == 2

    top = [hit.doc_id for hit in result.search.hits[:3]]
    assert page_id(MANIFEST["reference"]) in top
    assert len(result.search.hits) >= 3
    assert all("[[" in hit.snippet for hit in result.search.hits)
    # The report: the table, the checks, the ranked hits, where the data is, what next.
    for line in (
        "published to the buffer",
        "not modified (304)",
        "documents in the store",
        "✓ every article indexed exactly once",
        "✓ changed article updated in place",
        f"{result.search.total} hits for 'Taliban'",
        "1. ",
        str(data_dir),
        "newsflow search",
    ):
        assert line in report, line
    assert "✗" not in report
    # The demo's data stays for `newsflow search`; the feeds file and marker with it.
    assert (data_dir / "demo-feeds.toml").is_file() and (data_dir / "demo.json").is_file()


def test_a_data_directory_with_other_newsflow_data_is_refused(
    embedded: None, tmp_path: Path, sample_article: Article
) -> None:
    with store_in(tmp_path) as store:
        store.ensure()
        store.index_batch([sample_article])
    with pytest.raises(ConfigError, match="already holds newsflow data"):
        run_demo(Settings(), Console(file=io.StringIO()), data_dir=tmp_path)
    with store_in(tmp_path) as store:
        assert store.count() == 1


def test_an_earlier_demo_directory_that_gained_other_feeds_is_refused(
    embedded: None, tmp_path: Path, sample_article: Article
) -> None:
    left_by_an_earlier_demo(tmp_path, sample_article)
    with store_in(tmp_path) as store:
        store.put_feed_states([FeedState(feed_url="https://news.example.com/feed.xml")])
    with pytest.raises(ConfigError, match="https://news.example.com/feed.xml"):
        run_demo(Settings(), Console(file=io.StringIO()), data_dir=tmp_path)
    with store_in(tmp_path) as store:
        assert store.count() == 1


def test_a_data_directory_that_is_a_file_is_one_config_error(
    embedded: None, tmp_path: Path
) -> None:
    target = tmp_path / "not-a-directory"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot be used"):
        run_demo(Settings(), Console(file=io.StringIO()), data_dir=target)
