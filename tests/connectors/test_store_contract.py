"""The store contract: every Store implementation must pass these."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from connectors.store import Revisit, RevisitCounts, SearchQuery, Store, StoryMerge
from newsflow.identity import content_hash, doc_id
from schemas import Article, FeedEntry, FeedState


def _revision(article: Article, minutes: int, text: str | None = None) -> Article:
    moment = article.fetched_at + timedelta(minutes=minutes)
    body = text or article.text
    return article.model_copy(
        update={
            "revision": Article.revision_of(moment),
            "fetched_at": moment,
            "text": body,
            "content_hash": content_hash(body),
        }
    )


def test_ensure_is_idempotent(store: Store) -> None:
    store.ensure()
    store.ensure()
    assert store.count() == 0


def test_newest_revision_wins_whatever_the_order(store: Store, sample_article: Article) -> None:
    first = sample_article
    newer = _revision(first, 10, "Updated: the Senate passed the amended budget at night. " * 5)
    assert store.index_batch([newer]).indexed == 1
    late_old = store.index_batch([first])  # delivered after the newer one
    assert (late_old.indexed, late_old.duplicates) == (0, 1)
    replay = store.index_batch([newer])  # a redelivery
    assert (replay.indexed, replay.duplicates) == (0, 1)
    store.refresh()
    current = store.get(first.doc_id)
    assert current is not None and current.revision == newer.revision
    assert current.text.startswith("Updated:")
    assert store.count() == 1
    assert [a.revision for a in store.history(first.doc_id)] == [first.revision, newer.revision]


def test_lookup_matches_ids_and_aliases_in_one_call(store: Store, sample_article: Article) -> None:
    alias = doc_id("https://news.example.com/politics/budget.html?from=feed")
    article = sample_article.model_copy(update={"alias_ids": [alias]})
    other = sample_article.model_copy(
        update={"doc_id": doc_id("https://news.example.com/other"), "url": "https://x/other"}
    )
    store.index_batch([article, other])
    store.refresh()
    found = store.lookup([article.doc_id, alias, other.doc_id, doc_id("https://unknown/")])
    assert set(found) == {article.doc_id, alias, other.doc_id}
    assert found[alias].doc_id == article.doc_id
    assert found[alias].content_hash == article.content_hash
    assert found[alias].revision == article.revision


def test_search_ranks_highlights_and_filters(store: Store, sample_article: Article) -> None:
    german = sample_article.model_copy(
        update={
            "doc_id": doc_id("https://zeitung.example/haushalt"),
            "url": "https://zeitung.example/haushalt",
            "title": "Bundestag beschliesst Haushalt",
            "text": "Der Bundestag hat den Haushalt am Dienstag beschlossen. " * 5,
            "language": "de",
            "source": "Zeitung",
            "published_at": datetime(2020, 1, 1, tzinfo=UTC),
        }
    )
    store.index_batch([sample_article, german])
    store.refresh()
    result = store.search(SearchQuery(text="senate budget"))
    assert result.total == 1 and result.hits[0].doc_id == sample_article.doc_id
    assert "[[" in result.hits[0].snippet and "]]" in result.hits[0].snippet
    assert store.search(SearchQuery(text="Haushalt", language="de")).total == 1
    assert store.search(SearchQuery(text="Haushalt", language="en")).total == 0
    assert store.search(SearchQuery(text="Haushalt", source="Zeitung")).total == 1
    since = datetime(2021, 1, 1, tzinfo=UTC)
    assert store.search(SearchQuery(text="Haushalt", since=since)).total == 0


def test_a_document_the_store_refuses_is_rejected_not_raised(
    store: Store, sample_article: Article
) -> None:
    immense = sample_article.model_copy(
        update={"doc_id": doc_id("https://x/immense"), "url": "https://x/" + "a" * 40_000}
    )
    outcome = store.index_batch([sample_article, immense])
    assert outcome.indexed == 1
    assert list(outcome.rejected) == [1]
    assert outcome.rejected[1]


def _numbered(article: Article, number: int, text: str) -> Article:
    url = f"https://news.example.com/story-{number}"
    return article.model_copy(update={"doc_id": doc_id(url), "url": url, "text": text})


def test_bulk_requests_are_bounded_in_bytes_and_an_oversized_article_is_rejected_unsent(
    bounded_store: Store, sample_article: Article
) -> None:
    # Twelve 12 KB articles fill several requests of the bound; the 40 KB one (sent twice,
    # current and history) is larger than a request may be.
    articles = [_numbered(sample_article, n, f"Paragraph {n}. " + "x" * 12_000) for n in range(12)]
    huge = _numbered(sample_article, 99, "y" * 40_000)
    outcome = bounded_store.index_batch([*articles[:5], huge, *articles[5:]])
    assert (outcome.indexed, outcome.duplicates, outcome.retry) == (12, 0, [])
    assert list(outcome.rejected) == [5]
    assert "NEWSFLOW_ELASTICSEARCH_BULK_MAX_BYTES" in outcome.rejected[5]
    bounded_store.refresh()
    assert bounded_store.count() == 12
    assert bounded_store.get(huge.doc_id) is None


def test_a_request_refused_as_a_whole_is_split_down_to_the_article_at_fault(
    store: Store, sample_article: Article
) -> None:
    # A revision beyond a signed 64-bit version: Elasticsearch refuses the whole request
    # (400 x_content_parse_exception), not one item.
    good = [_numbered(sample_article, n, f"Story {n}. " * 40) for n in range(7)]
    bad = _numbered(sample_article, 50, "Out of range. " * 40).model_copy(
        update={"revision": 2**64}
    )
    outcome = store.index_batch([*good[:3], bad, *good[3:]])
    assert (outcome.indexed, outcome.retry) == (7, [])
    assert list(outcome.rejected) == [3]
    assert "range" in outcome.rejected[3]
    store.refresh()
    assert store.count() == 7
    assert all(store.get(article.doc_id) is not None for article in good)


def test_feed_state_round_trip(store: Store) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    state = FeedState(
        feed_url="https://news.example.com/feeds/a.rss",
        etag='"abc"',
        consecutive_failures=2,
        last_error_class="TransientFetchError",
        last_error_message="timed out",
        next_poll_at=now,
    )
    store.put_feed_states([state])
    store.refresh()
    loaded = store.feed_states([state.feed_url, "https://unknown/feed"])
    assert list(loaded) == [state.feed_url]
    assert loaded[state.feed_url] == state
    updated = state.model_copy(update={"consecutive_failures": 0, "last_status": "ok"})
    store.put_feed_states([updated])
    store.refresh()
    assert store.feed_states([state.feed_url])[state.feed_url].consecutive_failures == 0
    assert [s.feed_url for s in store.all_feed_states()] == [state.feed_url]


def test_feed_stats_count_recent_and_missing_fields_per_feed(
    store: Store, sample_article: Article
) -> None:
    feed = sample_article.feed_url
    other_feed = "https://news.example.com/feeds/other.rss"
    now = datetime.now(UTC)

    def article(path: str, **update: object) -> Article:
        url = f"https://news.example.com/{path}"
        return sample_article.model_copy(update={"doc_id": doc_id(url), "url": url, **update})

    store.index_batch(
        [
            article("a", fetched_at=now - timedelta(hours=1)),
            article("b", fetched_at=now - timedelta(hours=30), published_at=None),
            article("c", fetched_at=now, authors=[], text=" \n ", content_hash=content_hash("")),
            article("d", feed_url=other_feed, fetched_at=now - timedelta(days=3)),
        ]
    )
    store.refresh()
    stats = store.feed_stats([feed, other_feed, "https://unknown/feed"], now - timedelta(hours=24))
    assert list(stats) == [feed, other_feed, "https://unknown/feed"]
    mine = stats[feed]
    assert (mine.articles, mine.recent) == (3, 2)
    assert (mine.missing_published_at, mine.missing_authors, mine.missing_text) == (1, 1, 1)
    assert (stats[other_feed].articles, stats[other_feed].recent) == (1, 0)
    assert stats["https://unknown/feed"].articles == 0
    assert store.feed_stats([], now) == {}


def _revisit(feed: str, n: int, now: datetime, **update: object) -> Revisit:
    link = f"https://news.example.com/story-{n}.html"
    fields: dict[str, object] = {
        "feed_url": feed,
        "kind": "retry",
        "key": doc_id(link),
        "entry": FeedEntry(link=link, title=f"Story {n}", published_at=now),
        "attempts": 1,
        "first_at": now - timedelta(hours=1),
        "next_at": now,
        "last_error_class": "TransientHttpError",
        "last_error_message": f"{link}: HTTP 503",
    }
    fields.update(update)
    return Revisit(**fields)  # type: ignore[arg-type]


def test_revisits_round_trip_come_due_in_order_and_are_dropped(store: Store) -> None:
    feed, other = "https://news.example.com/feeds/a.rss", "https://news.example.com/feeds/b.rss"
    now = datetime.now(UTC).replace(microsecond=0)
    late = _revisit(feed, 1, now, next_at=now - timedelta(minutes=5))
    early = _revisit(feed, 2, now, next_at=now - timedelta(minutes=30), attempts=3)
    later = _revisit(feed, 3, now, next_at=now + timedelta(minutes=5))
    gone = _revisit(feed, 4, now, next_at=now - timedelta(hours=2), given_up=True)
    recheck = _revisit(feed, 5, now, kind="recheck", etag='"v1"', last_modified="Mon, 01 Jan")
    elsewhere = _revisit(other, 1, now, next_at=now - timedelta(hours=1))
    store.put_revisits([late, early, later, gone, recheck, elsewhere])
    store.refresh()

    assert store.due_revisits(feed, "retry", now, 10) == [early, late]
    assert store.due_revisits(feed, "retry", now, 1) == [early]
    assert store.due_revisits(feed, "retry", now, 0) == []
    assert store.due_revisits(feed, "recheck", now, 10) == [recheck]
    keys = [late.key, gone.key, recheck.key, doc_id("https://unknown/")]
    assert store.revisits(feed, "retry", keys) == {late.key: late, gone.key: gone}
    assert store.revisits(feed, "retry", []) == {}
    assert store.revisit_counts([feed, other, "https://unknown/feed"]) == {
        feed: RevisitCounts(retries=3, given_up=1, rechecks=1),
        other: RevisitCounts(retries=1),
        "https://unknown/feed": RevisitCounts(),
    }

    again = replace(late, attempts=2, next_at=now + timedelta(hours=1))
    store.put_revisits([again])
    store.drop_revisits(feed, "retry", [early.key, doc_id("https://unknown/")])
    store.drop_revisits(feed, "retry", [])
    store.refresh()
    assert store.due_revisits(feed, "retry", now, 10) == []
    assert store.revisits(feed, "retry", [late.key]) == {late.key: again}
    assert store.revisits(feed, "recheck", [recheck.key]) == {recheck.key: recheck}
    assert store.revisit_counts([feed])[feed] == RevisitCounts(retries=2, given_up=1, rechecks=1)


def test_check_passes_once_set_up_and_counts_what_is_stored(
    store: Store, sample_article: Article
) -> None:
    checks = store.check(timeout=5)
    assert checks and not any(check.failed for check in checks), checks
    store.index_batch([sample_article])
    store.refresh()
    details = " | ".join(check.detail for check in store.check(timeout=5))
    assert "1 article(s)" in details or "1 document(s)" in details, details


def test_check_fails_on_a_store_nobody_set_up(unset_store: Store) -> None:
    checks = unset_store.check(timeout=5)
    assert checks[0].name in ("elasticsearch", "embedded store")
    failed = [check for check in checks if check.failed]
    assert failed, checks
    assert all("newsflow index" in check.detail for check in failed), failed


# -- search as analysts expect, and stories -----------------------------------------


def _story_article(
    article: Article,
    number: int,
    text: str,
    *,
    story: str | None = None,
    published: datetime | None = None,
    **fields: object,
) -> Article:
    url = f"https://site{number % 3}.example/story-{number}"
    key = doc_id(url)
    update: dict[str, object] = {
        "doc_id": key,
        "url": url,
        "domain": f"site{number % 3}.example",
        "title": f"Story {number}",
        "text": text,
        "content_hash": content_hash(text),
        "story_id": story or key,
        "near_duplicate_of": None if story in (None, key) else story,
        "published_at": published or article.published_at,
        **fields,
    }
    return article.model_copy(update=update)


def test_search_requires_every_word_and_keeps_phrases(
    store: Store, sample_article: Article
) -> None:
    harbor = _story_article(sample_article, 1, "The harbor city council met on Monday. " * 5)
    council = _story_article(sample_article, 2, "The city council of the capital met. " * 5)
    harbor_words = _story_article(sample_article, 3, "Council members toured the city harbor. " * 5)
    store.index_batch([harbor, council, harbor_words])
    store.refresh()
    all_words = store.search(SearchQuery(text="harbor city council"))
    assert {hit.doc_id for hit in all_words.hits} == {harbor.doc_id, harbor_words.doc_id}
    phrase = store.search(SearchQuery(text='"harbor city council"'))
    assert [hit.doc_id for hit in phrase.hits] == [harbor.doc_id]
    assert store.search(SearchQuery(text='"city harbor" council')).total == 1


def test_search_filters_sorts_and_pages(store: Store, sample_article: Article) -> None:
    base = datetime(2024, 5, 1, tzinfo=UTC)
    articles = [
        _story_article(
            sample_article,
            n,
            f"Floods reached the river town {n}. " * 5,
            published=base + timedelta(days=n),
            tags=["weather"] if n % 2 else ["local"],
            authors=[f"Author {n % 2}"],
            feed_url=f"https://feeds.example/{n % 2}.rss",
            feed_name=f"Feed {n % 2}",
        )
        for n in range(6)
    ]
    store.index_batch(articles)
    store.refresh()

    def ids(**filters: object) -> set[str]:
        query = SearchQuery(text="floods", limit=50, **filters)  # type: ignore[arg-type]
        return {hit.doc_id for hit in store.search(query).hits}

    odd = {a.doc_id for n, a in enumerate(articles) if n % 2}
    assert ids(tag="weather") == odd
    assert ids(author="Author 1") == odd
    assert ids(feed="https://feeds.example/1.rss") == odd
    assert ids(feed="Feed 1") == odd
    assert ids(domain="site0.example") == {articles[0].doc_id, articles[3].doc_id}
    assert ids(since=base + timedelta(days=2), until=base + timedelta(days=4)) == {
        articles[2].doc_id,
        articles[3].doc_id,
    }
    newest = [a.doc_id for a in reversed(articles)]
    by_date = store.search(SearchQuery(text="floods", sort="date", limit=4))
    assert [hit.doc_id for hit in by_date.hits] == newest[:4]
    second = store.search(SearchQuery(text="floods", sort="date", limit=4, offset=4))
    assert [hit.doc_id for hit in second.hits] == newest[4:]
    assert second.total == 6


def test_near_duplicates_collapse_into_one_hit_per_story(
    store: Store, sample_article: Article
) -> None:
    text = "The wire service reported an earthquake near the coast on Sunday. " * 5
    original = _story_article(sample_article, 10, text)
    copies = [
        _story_article(sample_article, 11 + n, text + f" Copy {n}.", story=original.doc_id)
        for n in range(3)
    ]
    other = _story_article(sample_article, 20, "An earthquake drill was held in schools. " * 5)
    store.index_batch([original, *copies, other])
    store.refresh()
    collapsed = store.search(SearchQuery(text="earthquake"))
    assert (collapsed.total, collapsed.articles) == (2, 5)
    by_story = {hit.story_id: hit for hit in collapsed.hits}
    assert set(by_story) == {original.doc_id, other.doc_id}
    assert by_story[original.doc_id].copies == 3
    assert by_story[other.doc_id].copies == 0
    expanded = store.search(SearchQuery(text="earthquake", collapse=False))
    assert (expanded.total, len(expanded.hits)) == (5, 5)


def test_story_candidates_come_from_stored_keys_and_stories_merge(
    store: Store, sample_article: Article
) -> None:
    from newsflow.stories import fingerprint, story_keys

    text = " ".join(f"word{n}" for n in range(200))
    first = _story_article(sample_article, 30, text, fingerprint=fingerprint(text))
    second = _story_article(sample_article, 31, text, fingerprint=fingerprint(text))
    unrelated_text = " ".join(f"other{n}" for n in range(200))
    unrelated = _story_article(
        sample_article, 32, unrelated_text, fingerprint=fingerprint(unrelated_text)
    )
    store.index_batch([first, second, unrelated])
    (found,) = store.story_candidates([story_keys(first)], 10)
    assert [member.doc_id for member in found][0] == first.doc_id  # its own id key first
    assert {member.doc_id for member in found} == {first.doc_id, second.doc_id}
    assert found[0].fingerprint == first.fingerprint
    assert store.story_candidates([["b0:nothing"]], 10) == [[]]

    started = datetime(2020, 1, 1, tzinfo=UTC)
    store.merge_stories([StoryMerge(second.doc_id, first.doc_id, started)])
    store.refresh()
    moved = store.get(second.doc_id)
    assert moved is not None and moved.story_id == first.doc_id
    assert moved.near_duplicate_of == first.doc_id  # it defined its story, now it copies
    assert moved.story_started_at == started
    assert moved.revision == second.revision
    untouched = store.get(unrelated.doc_id)
    assert untouched is not None and untouched.story_id == unrelated.doc_id
