"""Extraction quality flags, the teaser rule and the bounds on article dates."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from newsflow.collect import EARLIEST_DATE, bounded_date, build_article
from newsflow.extract import ExtractSkip
from newsflow.feeds._parse import parse_feed
from newsflow.quality import add_quality, assess, feed_text, is_teaser
from schemas import FeedConfig, FeedEntry, FeedState, PageExtraction

FETCHED = datetime(2025, 6, 1, 12, tzinfo=UTC)
LONG = "The full story as the feed carries it. " * 40


def test_dates_outside_the_bounds_are_dropped() -> None:
    assert bounded_date(FETCHED + timedelta(hours=20), FETCHED) is not None  # clock skew
    assert bounded_date(FETCHED + timedelta(days=2), FETCHED) is None
    assert bounded_date(datetime(1989, 12, 31, tzinfo=UTC), FETCHED) is None
    assert bounded_date(EARLIEST_DATE, FETCHED) == EARLIEST_DATE
    assert bounded_date(None, FETCHED) is None


def test_build_article_falls_back_to_the_feed_date_when_the_page_date_is_implausible() -> None:
    feed = FeedConfig(url="http://news.example/feed")
    entry = FeedEntry(link="http://news.example/a", published_at=datetime(2025, 5, 30, tzinfo=UTC))
    future = PageExtraction(text="text", published_at=FETCHED + timedelta(days=30))
    article = build_article(feed, entry, entry.link, future, FETCHED)
    assert article.published_at == entry.published_at
    ancient = PageExtraction(text="text", published_at=datetime(1970, 1, 1, tzinfo=UTC))
    undated = build_article(feed, FeedEntry(link=entry.link), entry.link, ancient, FETCHED)
    assert undated.published_at is None
    assert undated.text_source == "page"


def test_a_teaser_is_short_beside_the_feed_or_marked_paywalled() -> None:
    entry = FeedEntry(link="http://news.example/a", content=LONG)
    assert is_teaser(PageExtraction(text="Subscribe to read."), entry)
    assert not is_teaser(PageExtraction(text=LONG), entry)
    assert is_teaser(PageExtraction(text=LONG, paywalled=True), FeedEntry(link=entry.link))
    assert not is_teaser(PageExtraction(text="short"), FeedEntry(link=entry.link))
    assert feed_text(entry, 200) == LONG
    assert feed_text(FeedEntry(link=entry.link, content="tiny"), 200) is None


def test_skipped_pages_are_counted_too() -> None:
    entry = FeedEntry(link="http://news.example/a", summary="A summary of the story, long enough.")
    short = assess(ExtractSkip("too_short", "", paywalled=True), entry, dated=False,
                   authored=True, from_feed=False)  # fmt: skip
    assert short == Counter(pages=1, short_text=1, teaser=1, paywall=1, no_date=1)
    timeout = assess(ExtractSkip("timeout"), entry, dated=True, authored=False, from_feed=False)
    assert timeout == Counter(pages=1, timeout=1, no_author=1)
    served = assess(PageExtraction(text="x"), entry, dated=True, authored=True, from_feed=True)
    assert served == Counter(pages=1, teaser=1, feed_text=1)


def test_quality_adds_up_in_the_feed_state() -> None:
    state = FeedState(feed_url="http://news.example/feed")
    once = add_quality(state, Counter(pages=2, no_date=1), {"news.example": Counter(pages=2)})
    twice = add_quality(once, Counter(pages=1, timeout=1), {"cdn.example": Counter(pages=1)})
    assert (twice.quality.pages, twice.quality.no_date, twice.quality.timeout) == (3, 1, 1)
    assert set(twice.quality_by_domain) == {"news.example", "cdn.example"}
    assert FeedState.model_validate_json(twice.model_dump_json()) == twice


def test_the_feed_content_is_read_from_content_encoded() -> None:
    body = f"""<?xml version="1.0"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>
<title>T</title><link>http://news.example/</link>
<item><title>A</title><link>http://news.example/a</link><description>Teaser.</description>
<content:encoded><![CDATA[<p>{LONG}</p><p>More.</p>]]></content:encoded></item>
</channel></rss>""".encode()
    parsed = parse_feed(
        body, {}, "http://news.example/feed", FeedConfig(url="http://news.example/feed"), 50
    )
    entry = parsed.entries[0]
    assert entry.content is not None and entry.content.startswith("The full story")
    assert entry.content.endswith("More.")
