"""Retries and rechecks through the whole poll, on the embedded backends, with a fake clock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors import open_store
from connectors.store import RevisitCounts
from newsflow.collect import entry_key
from newsflow.identity import canonical_url, doc_id
from newsflow.pipeline import PollRun, drain
from newsflow.revisits import retry_wait
from newsflow.settings import FeedSettings, Settings
from newsflow.summary import PollSummary
from schemas import FeedConfig
from tests.support.site import Site

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FEED = "feeds/business.rss"
PAGES = [
    "business/quarterly-earnings-table.html",
    "business/supply-chain-lists.html",
    "business/coffee-prices-jsonld.html",
    "tech/battery-startup.html",
    "tech/open-source-maintainers.html",
]
COFFEE = "business/coffee-prices-jsonld.html"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = Settings(data_dir=tmp_path / "data")
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"bootstrap_servers": None}),
            "elasticsearch": base.elasticsearch.model_copy(update={"url": None}),
            "fetch": base.fetch.model_copy(
                update={"allow_private_networks": True, "per_host_delay": 0.0}
            ),
            "indexer": base.indexer.model_copy(update={"poll_timeout": 0.1, "idle_timeout": 0.3}),
            "extract": base.extract.model_copy(update={"workers": 1}),
        }
    )


def _with_feed(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"feed": settings.feed.model_copy(update=update)})


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Poller:
    """One PollRun over the business feed; each poll starts a new cycle, then drains."""

    def __init__(self, run: PollRun, settings: Settings, feed: FeedConfig) -> None:
        self.run, self.settings, self.feed = run, settings, feed

    def poll(self, *, force: bool = False) -> PollSummary:
        self.run.new_cycle()
        state = self.run.feed_states([self.feed]).get(self.feed.url)
        summary = self.run.poll_feed(self.feed, state, force=force)
        drain(self.settings)
        return summary

    def counts(self) -> RevisitCounts:
        store = open_store(self.settings)
        try:
            return store.revisit_counts([self.feed.url])[self.feed.url]
        finally:
            store.close()


@contextmanager
def _poller(site: Site, settings: Settings, clock: Clock, **feed: object) -> Iterator[Poller]:
    config = FeedConfig(url=site.url(FEED), **feed)
    with PollRun(settings, clock=clock, rng=random.Random(7)) as run:  # noqa: S311
        yield Poller(run, settings, config)


@pytest.fixture
def poller(site: Site, settings: Settings, clock: Clock) -> Iterator[Poller]:
    with _poller(site, settings, clock) as running:
        yield running


def _page_key(site: Site, path: str) -> str:
    return doc_id(canonical_url(site.url(path)))


def test_a_page_that_answered_503_is_retried_by_later_polls_until_it_makes_it(
    site: Site, poller: Poller, clock: Clock
) -> None:
    site.set(COFFEE, "<h1>busy</h1>", status=503, headers={"Retry-After": "3600"})
    first = poller.poll()
    assert (first.published, first.skipped["http_503"]) == (4, 1)
    assert poller.counts().retries == 1

    # The feed (ttl 30 min) is due again and unchanged (304); the page is not due yet.
    clock.advance(minutes=31)
    site.reset_hits()
    early = poller.poll()
    assert early.not_modified == 1 and early.retried == 0
    assert site.hits[f"/{COFFEE}"] == 0

    # Still failing when due: one more attempt, still pending.
    clock.advance(minutes=31)
    again = poller.poll()
    assert (again.retried, again.recovered, again.skipped["http_503"]) == (1, 0, 1)
    assert poller.counts().retries == 1

    # A forced poll plans the due retry too; the page answers now.
    del site.overrides[f"/{COFFEE}"]
    clock.advance(hours=1)
    recovered = poller.poll(force=True)
    assert recovered.not_modified == 1 and recovered.new == 0
    assert (recovered.retried, recovered.recovered, recovered.published) == (1, 1, 1)
    assert poller.counts() == RevisitCounts(rechecks=5)  # now on the recheck schedule
    store = open_store(poller.settings)
    try:
        assert store.get(_page_key(site, COFFEE)) is not None
    finally:
        store.close()


def test_the_retry_record_keeps_the_entry_attempts_error_and_retry_after(
    site: Site, poller: Poller, clock: Clock
) -> None:
    site.set(COFFEE, "<h1>slow down</h1>", status=429, headers={"Retry-After": "7200"})
    poller.poll()
    store = open_store(poller.settings)
    try:
        key = _page_key(site, COFFEE)
        record = store.revisits(poller.feed.url, "retry", [key])[key]
    finally:
        store.close()
    assert record.entry.link.startswith(site.url(COFFEE)) and entry_key(record.entry) == key
    assert record.attempts == 1 and record.first_at == T0 and not record.given_up
    assert record.last_error_class == "TransientHttpError" and "429" in (
        record.last_error_message or ""
    )
    assert record.next_at >= T0 + timedelta(seconds=7200)


def test_pages_that_fail_for_good_are_not_retried(site: Site, poller: Poller, clock: Clock) -> None:
    site.set(PAGES[0], "<h1>gone</h1>", status=410)
    site.set(PAGES[1], "<h1>missing</h1>", status=404)
    site.set(PAGES[2], b"%PDF-1.4", content_type="application/pdf")
    first = poller.poll()
    assert first.skipped["http_410"] == first.skipped["http_404"] == first.skipped["not_html"] == 1
    assert poller.counts() == RevisitCounts(rechecks=2)
    clock.advance(days=1)
    site.reset_hits()
    assert poller.poll(force=True).retried == 0
    assert site.article_hits() == 2  # the two rechecks, nothing else


def test_a_page_failing_past_the_horizon_is_given_up_and_kept(
    site: Site, settings: Settings, clock: Clock
) -> None:
    settings = _with_feed(settings, page_retry_give_up=3 * 3600.0, recheck_after=())
    site.set(COFFEE, "<h1>down</h1>", status=503)
    with _poller(site, settings, clock) as poller:
        poller.poll()
        clock.advance(hours=2)
        assert (poller.poll(force=True).retried, poller.counts().retries) == (1, 1)
        clock.advance(hours=2)
        last = poller.poll(force=True)
        assert (last.retried, last.given_up) == (1, 1)
        assert poller.counts() == RevisitCounts(given_up=1)
        clock.advance(hours=12)
        assert poller.poll(force=True).retried == 0  # given up: never due again


def test_retries_are_bounded_per_poll(site: Site, settings: Settings, clock: Clock) -> None:
    settings = _with_feed(settings, page_retries_per_poll=2)
    for page in PAGES:
        site.set(page, "<h1>down</h1>", status=502)
    with _poller(site, settings, clock) as poller:
        assert poller.poll().skipped["http_502"] == 5
        clock.advance(days=1)
        assert poller.poll(force=True).retried == 2
        assert poller.counts().retries == 5


def test_retry_waits_grow_with_jitter_up_to_the_cap_and_honour_retry_after() -> None:
    settings = FeedSettings(page_retry_base=100.0, page_retry_max=1000.0)
    rng = random.Random(1)  # noqa: S311
    for attempts, ceiling in [(1, 100.0), (2, 200.0), (3, 400.0), (5, 1000.0), (90, 1000.0)]:
        wait = retry_wait(attempts, None, settings, rng)
        assert ceiling / 2 <= wait <= ceiling
    assert retry_wait(1, 600.0, settings, rng) == 600.0
    assert retry_wait(1, 10**6, settings, rng) == 1000.0  # capped at page_retry_max
    assert 50.0 <= retry_wait(1, 0.0, settings, rng) <= 100.0


def test_new_articles_are_rechecked_on_schedule_with_conditional_gets(
    site: Site, poller: Poller, clock: Clock
) -> None:
    site.set(PAGES[0], site.read(PAGES[0]), headers={"ETag": '"v1"'})
    first = poller.poll()
    assert first.published == 5 and poller.counts() == RevisitCounts(rechecks=5)

    clock.advance(minutes=30)
    assert poller.poll().rechecked == 0  # the first check is 1 h after first seen

    # The feed says nothing, but one page was corrected and another answers 304.
    original = site.read(PAGES[1])
    corrected = original.replace("Retailers typically", "Correction: retailers usually", 1)
    assert corrected != original
    site.set(PAGES[1], corrected)
    site.set(PAGES[0], "", status=304, headers={"ETag": '"v1"'})
    clock.advance(minutes=31)
    site.reset_hits()
    checked = poller.poll()
    assert checked.not_modified == 1 and checked.new == 0
    assert (checked.rechecked, checked.recheck_changed, checked.published) == (5, 1, 1)
    assert checked.duplicates == 4
    sent = dict(site.request_headers)
    assert sent[f"/{PAGES[0]}"].get("if-none-match") == '"v1"'
    store = open_store(poller.settings)
    try:
        assert len(store.history(_page_key(site, PAGES[1]))) == 2
        due = store.revisits(poller.feed.url, "recheck", [_page_key(site, PAGES[1])])
        assert list(due.values())[0].next_at == T0 + timedelta(hours=6)
    finally:
        store.close()

    # After the last point of the schedule (72 h) the articles leave it.
    clock.advance(hours=80)
    assert poller.poll(force=True).rechecked == 5
    assert poller.counts() == RevisitCounts()


def test_a_feed_can_opt_out_of_rechecks(site: Site, settings: Settings, clock: Clock) -> None:
    with _poller(site, settings, clock, recheck=False) as poller:
        assert poller.poll().published == 5
        assert poller.counts() == RevisitCounts()


def test_rechecks_are_bounded_per_poll(site: Site, settings: Settings, clock: Clock) -> None:
    with _poller(site, _with_feed(settings, rechecks_per_poll=2), clock) as poller:
        poller.poll()
        clock.advance(hours=2)
        assert poller.poll(force=True).rechecked == 2


def test_a_bozo_feed_stays_parsed_with_errors_across_unchanged_polls(
    site: Site, settings: Settings, clock: Clock
) -> None:
    feed = FeedConfig(url=site.url("feeds/broken.rss"), recheck=False)
    with PollRun(settings, clock=clock) as run:
        first = run.poll_feed(feed, None, force=True)
        state = run.feed_states([feed])[feed.url]
        clock.advance(hours=1)
        second = run.poll_feed(feed, state, force=True)
        state = run.feed_states([feed])[feed.url]
    assert first.parsed_with_errors == 1 and second.parsed_with_errors == 1
    assert second.not_modified == 1
    assert state.bozo and state.bozo_message and state.last_status == "not_modified"
