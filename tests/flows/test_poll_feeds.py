"""End to end on the real stack: local site -> poll_feeds -> Kafka -> indexer -> Elasticsearch."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import Store, open_store
from flows.poll_feeds import poll_feeds
from newsflow.identity import canonical_url, doc_id
from newsflow.settings import Settings
from newsflow.summary import IndexSummary
from tests.support.indexing import index_until_idle
from tests.support.site import FIXTURE_SITE, Site

pytestmark = pytest.mark.integration

MANIFEST = tomllib.loads((FIXTURE_SITE / "MANIFEST.toml").read_text(encoding="utf-8"))
INGESTED = [page for page in MANIFEST["pages"] if not page["skip"]]


@pytest.fixture
def feeds_file(site: Site, tmp_path: Path, stack_env: str) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(site.read("feeds.toml"), encoding="utf-8")
    return path


@pytest.fixture
def store(stack_env: str) -> Iterator[Store]:
    opened = open_store(Settings())
    yield opened
    opened.close()


def cycle(feeds_file: Path) -> tuple[dict[str, object], IndexSummary]:
    polled = poll_feeds(feeds_path=str(feeds_file), force=True)
    return polled, index_until_idle()


def page_id(site: Site, path: str) -> str:
    return doc_id(canonical_url(site.url(path)))


def test_articles_land_exactly_once_and_a_second_cycle_adds_nothing(
    site: Site, feeds_file: Path, store: Store
) -> None:
    polled, indexed = cycle(feeds_file)
    assert polled["published"] == len(INGESTED)
    assert polled["failed"] == 1  # garbage.xml is not a feed
    assert polled["skipped.robots"] == 1 and polled["skipped.too_short"] == 1
    assert indexed.indexed == len(INGESTED) and indexed.dead_lettered == 0
    store.refresh()
    assert store.count() == len(INGESTED)
    for page in INGESTED:
        article = store.get(page_id(site, page["path"]))
        assert article is not None, page["path"]
        assert article.title == page["title"]
        for sentence in page["must_contain"]:
            assert sentence in article.text
        for boilerplate in page["must_not_contain"]:
            assert boilerplate not in article.text

    # Feeds answer 304 now: no feed is parsed, no article page is requested.
    site.reset_hits()
    polled, indexed = cycle(feeds_file)
    assert polled["not_modified"] == 4 and polled["published"] == 0
    assert site.article_hits() == 0
    # A server that ignores conditional headers and returns the same bytes: same result.
    site.conditional = False
    site.reset_hits()
    polled, indexed = cycle(feeds_file)
    assert polled["not_modified"] == 4 and polled["published"] == 0
    assert site.article_hits() == 0
    store.refresh()
    assert store.count() == len(INGESTED)


def test_only_unseen_entries_are_fetched_and_tracking_variants_do_not_duplicate(
    site: Site, feeds_file: Path, store: Store
) -> None:
    cycle(feeds_file)
    # The politics feed gains one new story plus a tracking-parameter variant of a known one.
    feed = site.read("feeds/politics.rss")
    extra = (
        "<item><title>Extra: harbour vote</title>"
        f"<link>{site.url('world/harbor-strike-blockquote.html')}?utm_source=x&amp;fbclid=y</link>"
        "<pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate></item>"
        "<item><title>Brand new</title>"
        f"<link>{site.url('new/fresh-story.html')}</link>"
        "<pubDate>Wed, 03 Jan 2024 10:00:00 GMT</pubDate></item>"
    )
    site.set("feeds/politics.rss", feed.replace("</channel>", extra + "</channel>"),
             "application/rss+xml")  # fmt: skip
    fresh = site.read("politics/senate-budget-vote.html").replace(
        "senate-budget-vote.html", "../new/fresh-story.html"
    )
    site.set("new/fresh-story.html", re.sub(r"<h1[^>]*>.*?</h1>", "<h1>Fresh</h1>", fresh))
    site.reset_hits()
    polled, indexed = cycle(feeds_file)
    assert site.hits["/new/fresh-story.html"] == 1
    assert site.article_hits() == 1, f"only the unseen story is fetched: {site.hits}"
    assert polled["published"] == 1
    store.refresh()
    assert store.count() == len(INGESTED) + 1


def test_a_changed_article_updates_in_place_with_history(
    site: Site, feeds_file: Path, store: Store
) -> None:
    cycle(feeds_file)
    path = "world/harbor-strike-blockquote.html"
    key = page_id(site, path)
    store.refresh()
    before = store.get(key)
    assert before is not None
    page = site.read(path)
    last_paragraph = "resume talks on Thursday.</p>"
    assert last_paragraph in page
    update = (
        f"{last_paragraph}<p>UPDATE: The strike ended on Friday night after the port "
        "authority accepted the union's final offer.</p>"
    )
    site.set(path, page.replace(last_paragraph, update, 1))
    atom = site.read("feeds/world.atom")
    # The feed reports a newer update time for that entry only.
    entry_start = atom.index(path.split("/")[-1])
    head, tail = atom[:entry_start], atom[entry_start:]
    newer = "<updated>2030-01-01T00:00:00Z</updated>"
    tail = re.sub(r"<updated>[^<]+</updated>", newer, tail, count=1)
    site.set("feeds/world.atom", head + tail, "application/atom+xml")
    polled, indexed = cycle(feeds_file)
    assert polled["published"] == 1 and indexed.indexed == 1
    store.refresh()
    after = store.get(key)
    assert after is not None and "UPDATE: The strike ended" in after.text
    assert after.revision > before.revision
    assert [a.revision for a in store.history(key)] == [before.revision, after.revision]
    assert store.count() == len(INGESTED)
