"""Feed administration: editing TOML feeds files, importing OPML, per-feed health."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.sqlite_store import SqliteStore
from connectors.store import FeedStats
from newsflow.errors import ConfigError
from newsflow.feedadmin import (
    FeedHealth,
    add_feed,
    domain_quality_rows,
    feed_health,
    feed_rows,
    health_rows,
    import_feeds,
    read_feeds,
    remove_feed,
)
from newsflow.feedlist import load_feeds
from newsflow.identity import doc_id
from schemas import Article, FeedConfig, FeedQuality, FeedState
from tests.support.site import FIXTURE_SITE

BASE = "http://127.0.0.1:8000"
COMMENTED = """\
# Our feeds. Keep politics first.
[[feeds]]
url = "https://news.example.com/politics.rss"  # the main one
name = "Politics"
poll_interval = "15m"

[[feeds]]
url = "https://news.example.com/sport.rss"
tags = ["sport"]
"""


@pytest.fixture
def opml(tmp_path: Path) -> Path:
    path = tmp_path / "subscriptions.opml"
    text = (FIXTURE_SITE / "feeds.opml").read_text(encoding="utf-8")
    path.write_text(text.replace("{{BASE}}", BASE), encoding="utf-8")
    return path


def test_add_creates_the_file_and_keeps_the_interval_as_typed(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    feed = add_feed(
        path,
        " https://news.example.com/world.atom ",
        name="World",
        tags=["world", " world ", "news"],
        interval="2h",
        language="en",
        respect_robots=False,
    )
    assert feed.url == "https://news.example.com/world.atom"
    assert 'poll_interval = "2h"' in path.read_text(encoding="utf-8")
    assert load_feeds(path) == [
        FeedConfig(
            url="https://news.example.com/world.atom",
            name="World",
            poll_interval=7200,
            tags=["world", "news"],
            language="en",
            respect_robots=False,
        )
    ]
    add_feed(path, "https://news.example.com/science.rss", interval="600")
    assert load_feeds(path)[1].poll_interval == 600


def test_add_keeps_comments_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    add_feed(path, "https://news.example.com/tech.rss", tags=["tech"])
    text = path.read_text(encoding="utf-8")
    assert text.startswith(COMMENTED)
    assert text.endswith(
        '\n\n[[feeds]]\nurl = "https://news.example.com/tech.rss"\ntags = ["tech"]\n'
    )
    assert [f.url for f in read_feeds(path)][-1] == "https://news.example.com/tech.rss"


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("HTTPS://NEWS.example.com/politics.rss", {}, "already listed"),
        ("https://news.example.com/sport.rss", {"name": "again"}, "already listed"),
        ("ftp://news.example.com/feed", {}, "not an http"),
        ("news.example.com/feed", {}, "not an http"),
        ("https://news.example.com/new.rss", {"interval": "soon"}, "--interval"),
    ],
)
def test_add_refuses_duplicates_and_invalid_feeds_and_leaves_the_file_alone(
    tmp_path: Path, url: str, options: dict[str, str], message: str
) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        add_feed(path, url, **options)  # type: ignore[arg-type]
    assert path.read_text(encoding="utf-8") == COMMENTED
    assert [p.name for p in tmp_path.iterdir()] == ["feeds.toml"]  # no temporary left


def test_add_appends_to_an_inline_feeds_array(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('feeds = [{ url = "https://a.example/feed" }]\n', encoding="utf-8")
    add_feed(path, "https://b.example/feed", name="B")
    assert [(f.url, f.name) for f in load_feeds(path)] == [
        ("https://a.example/feed", None),
        ("https://b.example/feed", "B"),
    ]


def test_a_broken_feeds_file_is_not_edited(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    broken = '[[feeds]]\nurl = "https://a.example/feed"\npoll_interval = "often"\n'
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match="poll_interval"):
        add_feed(path, "https://b.example/feed")
    assert path.read_text(encoding="utf-8") == broken


def test_only_toml_files_are_edited(tmp_path: Path, opml: Path) -> None:
    with pytest.raises(ConfigError, match="TOML feeds files only"):
        add_feed(opml, "https://b.example/feed")
    with pytest.raises(ConfigError, match="TOML feeds files only"):
        remove_feed(opml, f"{BASE}/feeds/politics.rss")


def test_remove_drops_one_feed_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    removed = remove_feed(path, "https://NEWS.example.com/politics.rss")
    assert removed.name == "Politics"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Our feeds. Keep politics first.\n")
    assert [f.url for f in load_feeds(path)] == ["https://news.example.com/sport.rss"]
    with pytest.raises(ConfigError, match="not listed"):
        remove_feed(path, "https://news.example.com/politics.rss")
    with pytest.raises(ConfigError, match="no feeds file"):
        remove_feed(tmp_path / "other.toml", "https://news.example.com/sport.rss")


def test_import_merges_opml_folders_as_tags_and_skips_known_feeds(
    tmp_path: Path, opml: Path
) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        f'[[feeds]]\nurl = "{BASE}/feeds/politics.rss"\nname = "Mine"\n', encoding="utf-8"
    )
    progress: list[tuple[int, int]] = []
    result = import_feeds(path, opml, on_feed=lambda done, total: progress.append((done, total)))
    assert result.as_dict() == {"read": 6, "added": 5, "already_listed": 1}
    assert progress == [(n, 6) for n in range(1, 7)]
    feeds = {f.url: f for f in load_feeds(path)}
    assert len(feeds) == 6
    assert feeds[f"{BASE}/feeds/politics.rss"].name == "Mine"  # the listed one is kept
    assert feeds[f"{BASE}/feeds/business.rss"].tags == ["Business & Tech"]
    assert feeds[f"{BASE}/feeds/world.atom"].tags == ["News", "World"]

    before = path.stat().st_mtime_ns, path.read_bytes()
    again = import_feeds(path, opml)
    assert again.as_dict() == {"read": 6, "added": 0, "already_listed": 6}
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before  # nothing new: not rewritten


def test_reading_a_missing_feeds_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="newsflow feeds add"):
        read_feeds(tmp_path / "feeds.toml")


def test_feed_rows_show_defaults_readably() -> None:
    rows = feed_rows(
        [
            FeedConfig(url="https://a.example/feed"),
            FeedConfig(
                url="https://b.example/feed",
                name="B",
                enabled=False,
                poll_interval=5400,
                tags=["x", "y"],
                respect_robots=False,
            ),
        ]
    )
    assert rows[0] == {
        "url": "https://a.example/feed",
        "name": "",
        "enabled": "yes",
        "interval": "default",
        "tags": "",
        "language": "",
        "robots": "default",
    }
    assert (rows[1]["enabled"], rows[1]["interval"], rows[1]["tags"], rows[1]["robots"]) == (
        "no",
        "90m",
        "x,y",
        "ignore",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "store.sqlite3")
    opened.ensure()
    yield opened
    opened.close()


def test_health_joins_feed_state_and_article_counts(
    store: SqliteStore, sample_article: Article
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    good, failing, quiet, gone = (f"https://news.example.com/{n}.rss" for n in "abcd")
    store.put_feed_states(
        [
            FeedState(
                feed_url=good,
                last_attempt_at=now - timedelta(minutes=5),
                last_success_at=now - timedelta(minutes=5),
                next_poll_at=now + timedelta(minutes=10),
                last_status="ok",
            ),
            FeedState(
                feed_url=failing,
                last_attempt_at=now - timedelta(minutes=1),
                last_success_at=now - timedelta(days=2),
                consecutive_failures=3,
                last_error_class="HttpStatusError",
                last_error_message=f"{failing}: HTTP 503 from news.example.com " + "x" * 80,
                last_status="failed",
            ),
            FeedState(feed_url=gone, name="Old feed", last_attempt_at=now - timedelta(days=9)),
        ]
    )

    def article(n: int, feed: str, **update: object) -> Article:
        url = f"https://news.example.com/story-{n}"
        fields = {"doc_id": doc_id(url), "url": url, "feed_url": feed, "fetched_at": now}
        return sample_article.model_copy(update={**fields, **update})

    store.index_batch(
        [
            article(1, good),
            article(2, good, published_at=None),
            article(3, good, authors=[], fetched_at=now - timedelta(days=2)),
            article(4, good, authors=[]),
            article(5, gone),
        ]
    )
    feeds = [
        FeedConfig(url=good, name="Good"),
        FeedConfig(url=failing),
        FeedConfig(url=quiet, enabled=False),
    ]
    report = feed_health(feeds, store, now)
    assert [(h.url, h.health) for h in report] == [
        (good, "ok"),
        (failing, "failing"),
        (quiet, "disabled"),
        (gone, "not configured"),
    ]
    assert (report[0].stats.articles, report[0].stats.recent) == (4, 3)
    assert report[0].share(report[0].stats.missing_authors) == 0.5
    assert report[1].share(report[1].stats.missing_authors) is None  # no articles
    assert report[3].name == "Old feed" and report[3].stats.articles == 1
    assert [h.url for h in feed_health(feeds, store, now, include_unlisted=False)] == [
        good,
        failing,
        quiet,
    ]

    human = health_rows(report, now, human=True)
    assert human[0] == {
        "feed": "Good",
        "health": "ok",
        "last_success": "5m ago",
        "failures": "0",
        "last_error": "",
        "next_poll": "in 10m",
        "retries": "0",
        "given_up": "0",
        "articles": "4",
        "last_24h": "3",
        "no_date": "25%",
        "no_author": "50%",
        "no_text": "0%",
        "pages": "0",
        "q_no_date": "-",
        "q_no_author": "-",
        "q_short_text": "-",
        "q_teaser": "-",
        "q_timeout": "-",
        "q_feed_text": "-",
    }
    assert human[1]["last_success"] == "2.0d ago"
    assert human[1]["last_error"].startswith("HttpStatusError: HTTP 503")
    assert len(human[1]["last_error"]) == 60
    assert human[1]["no_date"] == "-"

    plain = health_rows(report, now, human=False)
    assert plain[0]["feed"] == good
    assert plain[0]["last_success"] == (now - timedelta(minutes=5)).isoformat()
    assert (plain[0]["no_date"], plain[0]["no_author"]) == ("0.250", "0.500")
    assert (
        plain[1]["last_error"]
        == f"HttpStatusError: {failing}: HTTP 503 from news.example.com " + "x" * 80
    )
    assert plain[2]["last_success"] == "" and plain[2]["health"] == "disabled"


def test_status_shows_quality_over_stored_and_skipped_pages() -> None:
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)
    quality = FeedQuality(pages=8, no_date=2, short_text=4, teaser=3, timeout=1, feed_text=2)
    state = FeedState(feed_url="http://q.example/feed", last_attempt_at=now, quality=quality)
    health = FeedHealth("http://q.example/feed", None, True, True, state, FeedStats())
    human = health_rows([health], now, human=True)[0]
    assert (human["pages"], human["q_no_date"], human["q_short_text"]) == ("8", "25%", "50%")
    assert (human["q_teaser"], human["q_timeout"], human["q_feed_text"]) == ("38%", "12%", "25%")
    assert human["no_text"] == "-"  # the stored-article count knows nothing of skipped pages
    plain = health_rows([health], now, human=False)[0]
    assert plain["q_short_text"] == "0.500" and plain["q_no_author"] == "0.000"


def test_import_keeps_every_field_of_a_toml_source(tmp_path: Path) -> None:
    source = tmp_path / "source.toml"
    source.write_text(
        '[[feeds]]\nurl = "https://news.example.com/a.rss"\ngroup = "wires"\n'
        'recheck = false\ntags = ["world"]\n',
        encoding="utf-8",
    )
    target = tmp_path / "feeds.toml"
    import_feeds(target, source)
    (feed,) = load_feeds(target)
    assert (feed.group, feed.recheck, feed.tags) == ("wires", False, ["world"])


def test_quality_by_domain_adds_up_over_feeds_most_pages_first() -> None:
    def health(url: str, domains: dict[str, FeedQuality]) -> FeedHealth:
        state = FeedState(feed_url=url, quality_by_domain=domains)
        return FeedHealth(url, None, True, True, state, FeedStats())

    report = [
        health(
            "https://a.example/rss",
            {
                "wire.example": FeedQuality(pages=4, no_date=1, teaser=2),
                "a.example": FeedQuality(pages=1, no_author=1),
            },
        ),
        health("https://b.example/rss", {"wire.example": FeedQuality(pages=4, teaser=2)}),
        FeedHealth("https://never.example/rss", None, True, True, None, FeedStats()),
    ]
    rows = domain_quality_rows(report, human=False)
    assert [(r["domain"], r["feeds"], r["pages"]) for r in rows] == [
        ("wire.example", "2", "8"),
        ("a.example", "1", "1"),
    ]
    assert (rows[0]["q_no_date"], rows[0]["q_teaser"], rows[1]["q_no_author"]) == (
        "0.125",
        "0.500",
        "1.000",
    )
    assert domain_quality_rows(report, human=True)[0]["q_teaser"] == "50%"
